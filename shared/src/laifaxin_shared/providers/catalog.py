"""Load the provider catalog (package data ``catalog.yaml``) and look providers up by id, domain or MX host.

The data file is read with :mod:`importlib.resources` and validated by :class:`~.models.Catalog` the first
time it is needed (never at import time) and cached. Matching rules follow providers.md §5: exact email domain,
then MX host patterns matched **on label boundaries** (``evilqq.com`` is not ``qq.com``; Nylas's ``endswith``
is the mistake to avoid).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from importlib import resources

import yaml
from pydantic import ValidationError

from laifaxin_shared.providers.models import Catalog, Provider


class CatalogError(RuntimeError):
    """The catalog data file is missing, not YAML, or does not validate; the message names the field."""


def parse_catalog(text: str) -> Catalog:
    """Parse and validate catalog YAML ``text``.

    Raises:
        CatalogError: not YAML, or a field is missing, unknown (``extra="forbid"``) or invalid.
    """
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CatalogError(f"catalog is not valid YAML: {exc}") from exc
    try:
        return Catalog.model_validate(data)
    except ValidationError as exc:
        raise CatalogError(f"catalog does not validate:\n{exc}") from exc


@cache
def load_catalog() -> Catalog:
    """The bundled catalog (``laifaxin_shared/providers/catalog.yaml``), validated once and cached.

    Raises:
        CatalogError: the bundled file is invalid (a packaging or editing mistake; the tests catch it).
    """
    text = resources.files("laifaxin_shared.providers").joinpath("catalog.yaml").read_text(encoding="utf-8")
    return parse_catalog(text)


def normalise_domain(domain: str) -> str:
    """Lower-case, strip whitespace and one trailing dot, and IDNA-encode (``例子.公司`` → ``xn--…``).

    Raises:
        ValueError: not encodable as a DNS name.
    """
    cleaned = domain.strip().rstrip(".").lower()
    if not cleaned:
        raise ValueError("empty domain")
    try:
        return cleaned.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise ValueError(f"not a valid domain name: {domain!r}") from exc


def split_email(email: str) -> tuple[str, str]:
    """Split ``local@domain`` into the local part and the normalised domain.

    Raises:
        ValueError: no ``@``, empty local part or an invalid domain.
    """
    local, sep, domain = email.strip().rpartition("@")
    if not sep or not local:
        raise ValueError(f"not an email address: {email!r}")
    return local, normalise_domain(domain)


def is_same_or_subdomain(host: str, domain: str) -> bool:
    """True if ``host`` equals ``domain`` or ends with ``.`` + ``domain`` (a label-boundary suffix match)."""
    host = host.rstrip(".").lower()
    domain = domain.rstrip(".").lower()
    return host == domain or host.endswith("." + domain)


def mx_matches(pattern: str, host: str) -> bool:
    """Whether MX ``host`` matches catalog ``pattern``, comparing whole labels.

    A leading ``*`` label stands for one or more labels; every other label is an :func:`fnmatch.fnmatchcase`
    pattern confined to one label (``mx[1-3]``, ``alt[1-4]``). So ``*.qq.com`` matches ``mx1.qq.com`` but
    not ``evilqq.com`` or ``qq.com.example``.
    """
    host_labels = host.rstrip(".").lower().split(".")
    pattern_labels = pattern.lower().split(".")
    if pattern_labels[0] == "*":
        tail = pattern_labels[1:]
        if len(host_labels) <= len(tail):
            return False
        host_labels = host_labels[len(host_labels) - len(tail) :]
        pattern_labels = tail
    if len(host_labels) != len(pattern_labels):
        return False
    return all(fnmatch.fnmatchcase(h, p) for h, p in zip(host_labels, pattern_labels, strict=True))


def _specificity(pattern: str) -> tuple[int, int]:
    labels = pattern.split(".")
    literal = sum(1 for label in labels if not any(ch in label for ch in "*?["))
    return (literal, len(labels))


@dataclass(frozen=True, slots=True)
class MxMatch:
    """A provider found through one of the domain's MX hosts."""

    provider: Provider
    mx_host: str
    pattern: str


def _catalog(catalog: Catalog | None) -> Catalog:
    return catalog if catalog is not None else load_catalog()


def get_provider(provider_id: str, catalog: Catalog | None = None) -> Provider:
    """The provider with ``provider_id``.

    Raises:
        KeyError: no such provider.
    """
    for provider in _catalog(catalog).providers:
        if provider.id == provider_id:
            return provider
    raise KeyError(provider_id)


def find_provider(provider_id: str | None, catalog: Catalog | None = None) -> Provider | None:
    """The provider with ``provider_id``, or None when there is none (or no id: custom servers)."""
    if provider_id is None:
        return None
    try:
        return get_provider(provider_id, catalog)
    except KeyError:
        return None


def provider_for_domain(domain: str, catalog: Catalog | None = None) -> Provider | None:
    """The provider serving email ``domain`` exactly (``qq.com``), or by a ``domain_suffixes`` entry
    (``contoso.onmicrosoft.com``); ``None`` when the catalog does not know it.

    Raises:
        ValueError: ``domain`` is not a valid domain name.
    """
    domain = normalise_domain(domain)
    providers = _catalog(catalog).providers
    for provider in providers:
        if domain in provider.domains:
            return provider
    for provider in providers:
        if any(
            is_same_or_subdomain(domain, suffix) and domain != suffix for suffix in provider.domain_suffixes
        ):
            return provider
    return None


def provider_for_mx(mx_hosts: Iterable[str], catalog: Catalog | None = None) -> MxMatch | None:
    """The provider whose MX pattern matches the first MX host (in the given order, lowest preference
    first) that matches any pattern; among several patterns for one host the most literal one wins
    (``mxbiz1.qq.com`` is Exmail, not QQ). ``None`` when no host matches.
    """
    providers = _catalog(catalog).providers
    for host in mx_hosts:
        best: tuple[tuple[int, int], Provider, str] | None = None
        for provider in providers:
            for pattern in provider.mx_patterns:
                if mx_matches(pattern, host):
                    rank = _specificity(pattern)
                    if best is None or rank > best[0]:
                        best = (rank, provider, pattern)
        if best is not None:
            return MxMatch(provider=best[1], mx_host=host.rstrip(".").lower(), pattern=best[2])
    return None


def known_server_hosts(catalog: Catalog | None = None) -> frozenset[str]:
    """Every IMAP and SMTP host name in the catalog (preferred and backups); used for typo suggestions
    and to decide whether a discovered server is a known one."""
    hosts: set[str] = set()
    for provider in _catalog(catalog).providers:
        for settings in (provider.imap, provider.smtp):
            hosts.update(server.host for server in settings.servers)
    return frozenset(hosts)
