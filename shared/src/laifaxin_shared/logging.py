"""structlog JSON logging with secret redaction, for every service.

Every log line is one JSON object on stdout. The :func:`redact_secrets` processor replaces the value of any key
that looks secret (password, passwd, pwd, secret, token, authorization, auth, credential, api_key, cookie,
private_key, encoding_aes_key, access_token ...) with ``"[REDACTED]"`` at any depth, and masks secrets inside
strings and bytes (:func:`redact_text`: ``password=...``, ``Bearer ...``, IMAP ``LOGIN``, SASL ``AUTHENTICATE``/
``AUTH`` payloads, POP3 ``PASS``, URL-encoded pairs ...), so a careless ``log.info("login", password=pw)`` never
writes the password. Standard-library loggers (aiokafka, pymongo, uvicorn) are routed through the same
processors, and the loggers of protocol libraries (aioimaplib at DEBUG logs every command it sends) carry a
:class:`RedactingFilter` of their own, so their records are masked for every handler.

:func:`redact_text` is the one text redaction of the platform: ``laifaxin_shared.providers.errors.redact``
(server replies shown to users) calls :func:`mask_secrets` from here.
"""

from __future__ import annotations

import base64
import logging
import re
import sys
import urllib.parse
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

import structlog

REDACTED = "[REDACTED]"

_SECRET_KEY = re.compile(
    r"(pass(word|wd|phrase)?|pwd|secret|token|authori[sz]ation|credential|api[_-]?key|cookie|private[_-]?key|"
    r"auth[_-]?code|app[_-]?password|session[_-]?key|ciphertext|client[_-]?secret|aes[_-]?key|signing[_-]?key|"
    r"^auth$|[_-]auth$|^auth[_-]?(data|string|header|info)$)",
    re.IGNORECASE,
)
_INLINE_KEYS = (
    r"password|passwd|pwd|secret|client_secret|token|access_token|refresh_token|api_key|app_password|"
    r"encoding_aes_key|aes_key|authorization|(?-i:auth)"  # lower-case only: IMAP's "AUTH=PLAIN" is a capability
)
_INLINE = re.compile(
    rf"(?i)(\b(?:{_INLINE_KEYS})[\"']?\s*[=:]\s*)"
    r"(\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|[^\s,;&]+)"
)
"""``password=x``, ``token: "x"``, ``"secret": "x"`` (quoted values may contain escaped quotes)."""
_URL_ENCODED = re.compile(
    rf"(?i)((?<![A-Za-z_])(?:{_INLINE_KEYS})(?:%22)?(?:%3D|%3A)(?:%22)?)((?:(?!%26|%22)[^&\s\"',;])+)"
)
"""The same pairs URL-encoded inside a query or form value: ``password%3Dx%26...``."""
_BEARER = re.compile(r"(?i)\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}")
_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]+:)([^@\s]+)(@)")
_EOL = re.compile(r"(?<!\\)(?:\\\\)*(?P<escaped>\\r\\n|\\n)|(?P<real>\r\n|\r|\n)")
"""End of a protocol line in a log message: a real CR/LF, or the ``\\r\\n`` of a bytes repr (aioimaplib logs
``Sending : b'A1 LOGIN ...\\r\\n'``) — only an escape that is not itself escaped: a password's own backslash
shows as ``\\\\`` in the repr, and the ``n`` after it must not end the line early."""
_LITERAL_END = re.compile(r"\{(\d{1,6})\+?\}$")
_IMAP_LOGIN = re.compile(r"(?<!NO )(?<!OK )(?<!BAD )(?<!BYE )\bLOGIN +(?=\S)")
"""An IMAP ``LOGIN`` command (RFC 3501 6.2.3), not a server's ``NO LOGIN ...`` reply; clients send it upper-case."""
_SASL_INITIAL = re.compile(r"\b((?:AUTHENTICATE|AUTH) +[A-Z0-9_-]+ +)(?=\S)")
"""``AUTHENTICATE PLAIN <b64>`` (IMAP, RFC 4959) / ``AUTH PLAIN|LOGIN|XOAUTH2 <b64>`` (SMTP RFC 4954, POP3 RFC 5034)."""
_POP_PASS = re.compile(r"(?<![A-Za-z])PASS +(?=\S)")
"""POP3 ``PASS`` (RFC 1939 7)."""
_AUTH_LOGIN_PROMPT = re.compile(r"\b334 +(VXNlcm5hbWU6|UGFzc3dvcmQ6)\S*\s*?(?:\\r\\n|\r?\n) *(?=\S)")
"""SMTP AUTH LOGIN's ``334 Username:`` / ``334 Password:`` prompts (base64): the next line is the answer."""
_B64_TOKEN = re.compile(r"[A-Za-z0-9+/]{12,}={0,2}")
"""A base64 run of 12+ characters (a real SASL PLAIN blob is longer); only those with a digit, ``+``, ``/`` or
padding and a length that is a multiple of 4 are decoded (:func:`_sasl_blob_masked`)."""
_B64_SIGNS = frozenset("0123456789+/=")
_INLINE_HINTS = ("pass", "pwd", "secret", "token", "key", "auth")
"""Substrings one of which every key of :data:`_INLINE` contains (a fast test before the regex)."""


def is_secret_key(key: str) -> bool:
    """True when a mapping key names something secret (see module docstring)."""
    return bool(_SECRET_KEY.search(key))


def _to_line_end(text: str, start: int, *, literals: bool) -> int:
    """Index where the protocol line starting at ``start`` ends; with ``literals``, a line ending in an IMAP
    literal ``{n}`` continues after its n octets (RFC 3501 4.3)."""
    i = start
    while True:
        eol = _EOL.search(text, i)
        line_end = (eol.start("escaped") if eol.group("escaped") else eol.start("real")) if eol else len(text)
        literal = _LITERAL_END.search(text, i, line_end) if literals else None
        if literal is None or eol is None:
            return line_end
        i = min(len(text), eol.end() + int(literal.group(1)))


def _mask_commands(text: str, pattern: re.Pattern[str], *, literals: bool = False) -> str:
    """Mask what follows each match of ``pattern`` up to the end of its protocol line."""
    out: list[str] = []
    pos = 0
    for m in pattern.finditer(text):
        if m.start() < pos:
            continue
        out += [text[pos : m.end()], REDACTED]
        pos = _to_line_end(text, m.end(), literals=literals)
    return "".join(out) + text[pos:] if out else text


def _sasl_blob_masked(match: re.Match[str]) -> str:
    token = match.group(0)
    if len(token) % 4 or _B64_SIGNS.isdisjoint(token):
        return token
    return REDACTED if _is_sasl_blob(token) else token


def _is_sasl_blob(token: str) -> bool:
    """A base64 token that decodes to a SASL credential: PLAIN ``authzid NUL authcid NUL passwd`` (RFC 4616) or
    XOAUTH2 ``user=...^Aauth=Bearer ...``."""
    try:
        raw = base64.b64decode(token + "=" * (-len(token) % 4), validate=True)
    except ValueError:
        return False
    return raw.count(b"\0") >= 2 or b"auth=Bearer" in raw or b"\x01auth=" in raw


def secret_forms(secret: str) -> set[str]:
    """The ways a known secret shows up in protocol traffic and logs: as typed, whitespace-stripped, base64 (SMTP
    AUTH LOGIN), IMAP-quoted (RFC 3501 4.3: ``\\`` and ``\"`` escaped, as aioimaplib sends it, also as a bytes
    repr doubles the backslashes) and URL-encoded. Forms shorter than 3 characters are left out."""
    forms = {secret}
    stripped = "".join(secret.split())
    forms.add(stripped)
    for value in (secret, stripped):
        forms.add(base64.b64encode(value.encode()).decode())
        quoted = value.replace("\\", "\\\\").replace('"', '\\"')
        forms |= {
            quoted,
            quoted.replace("\\", "\\\\"),
            urllib.parse.quote(value, safe=""),
            urllib.parse.quote_plus(value),
        }
    return {form for form in forms if len(form) >= 3}


def mask_secrets(text: str, secrets: Iterable[str | None], marker: str = REDACTED) -> str:
    """Replace every known secret (each of its :func:`secret_forms`) and every base64 token that decodes to
    contain one (SMTP ``AUTH PLAIN`` blobs) with ``marker``."""
    for secret in secrets:
        if not secret:
            continue
        for form in sorted(secret_forms(secret), key=len, reverse=True):
            text = text.replace(form, marker)
        # AUTH PLAIN sends base64("authzid\0user\0password"); drop any base64 token that decodes to contain it.
        for token in set(re.findall(r"[A-Za-z0-9+/]{8,}={0,2}", text)):
            try:
                decoded = base64.b64decode(token, validate=True)
            except ValueError:
                continue
            if secret.encode() in decoded:
                text = text.replace(token, marker)
    return text


def redact_text(text: str, secrets: Iterable[str | None] = ()) -> str:
    """Mask secrets inside free text (log messages, exception texts); the one implementation every redaction of
    the platform uses.

    Masked: the ``secrets`` given (:func:`mask_secrets`); ``key=value`` / ``"key": "value"`` pairs whose key
    names a secret, also URL-encoded (``password%3D...``); ``Bearer``/``Basic`` tokens; URL passwords
    (``scheme://user:pw@``); the arguments of an IMAP ``LOGIN`` to the end of the line, literals included
    (``{9}\\r\\npassword9``); the initial response of ``AUTHENTICATE``/``AUTH`` (any SASL mechanism); POP3
    ``PASS``; the answer after SMTP ``334`` Username/Password prompts; and any base64 token decoding to a SASL
    PLAIN or XOAUTH2 credential (an ``AUTHENTICATE PLAIN`` continuation line). Protocol verbs are matched
    upper-case, as clients send them.
    """
    text = mask_secrets(text, secrets)
    # Each pattern runs only when its marker is in the text: most log lines have none (bench_foundation).
    if "LOGIN" in text:
        text = _mask_commands(text, _IMAP_LOGIN, literals=True)
    if "AUTH" in text:
        text = _mask_commands(text, _SASL_INITIAL)
    if "PASS" in text:
        text = _mask_commands(text, _POP_PASS)
    if "334" in text:
        text = _mask_commands(text, _AUTH_LOGIN_PROMPT)
    text = _B64_TOKEN.sub(_sasl_blob_masked, text)
    if "earer" in text or "asic" in text:  # before the pairs: "Authorization: Bearer x"
        text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    lowered = text.lower()
    if any(hint in lowered for hint in _INLINE_HINTS):
        text = _INLINE.sub(lambda m: m.group(1) + REDACTED, text)
    if "%3" in text:
        text = _URL_ENCODED.sub(lambda m: m.group(1) + REDACTED, text)
    if "://" in text:
        text = _URL_PASSWORD.sub(lambda m: m.group(1) + REDACTED + m.group(3), text)
    return text


def redact(value: Any, _depth: int = 0) -> Any:
    """Return ``value`` with secret-looking keys and fragments masked; containers are copied, not mutated.

    Strings go through :func:`redact_text`; ``bytes``/``bytearray``/``memoryview`` are decoded (UTF-8, invalid
    bytes replaced) and returned as the redacted text when something was masked, unchanged otherwise.
    """
    if _depth > 8:
        return value
    if isinstance(value, Mapping):
        return {
            k: (REDACTED if isinstance(k, str) and is_secret_key(k) else redact(v, _depth + 1))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        items = [redact(v, _depth + 1) for v in value]
        return items if isinstance(value, set | frozenset) else type(value)(items)
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, bytes | bytearray | memoryview):
        text = bytes(value).decode("utf-8", errors="replace")
        masked = redact_text(text)
        return masked if masked != text else value
    return value


class RedactingFilter(logging.Filter):
    """A standard-library logging filter that runs :func:`redact_text` over each record's message (``msg % args``
    then masked; ``args`` dropped) and its formatted exception. Installed on the loggers of libraries that log
    protocol traffic (:data:`PROTOCOL_LOGGERS`), so every handler — ours, pytest's, a debugger's — sees the
    masked text."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, dict):  # structlog's own event dict: redacted by :func:`redact_secrets`
            return True
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a malformed %-format: keep what can be shown
            message = str(record.msg)
        record.msg = redact_text(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        return True


PROTOCOL_LOGGERS = ("aioimaplib", "aioimaplib.aioimaplib", "httpx", "httpcore", "mail.log")
"""Loggers of libraries that log what goes over the wire: aioimaplib logs every IMAP command at DEBUG (its own
scrub misses a password with ``"`` or ``\\``, which LOGIN sends escaped), httpx logs request URLs (WeChat's
``access_token`` is a query parameter), aiosmtpd logs the SMTP dialogue. (urllib3's request lines are masked by
notify's Apprise sender, which knows the URL being sent, and by the service handler's filter.)"""

_FILTER = RedactingFilter()


def install_redaction(names: Iterable[str] = PROTOCOL_LOGGERS) -> None:
    """Put :class:`RedactingFilter` on each named logger (idempotent). Done when this module is imported and
    again by :func:`configure_logging`; a logger's filter applies to the records it creates, whatever handler
    takes them."""
    for name in names:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


install_redaction()


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor applying :func:`redact` to every field of the event."""
    for key in list(event_dict):
        if is_secret_key(key):
            event_dict[key] = REDACTED
        else:
            event_dict[key] = redact(event_dict[key])
    return event_dict


def configure_logging(service: str, level: str = "INFO", *, json: bool = True) -> None:
    """Configure structlog and the standard library for ``service``; idempotent.

    Args:
        service: added to every line as ``service``.
        level: minimum level name (``DEBUG``, ``INFO`` ...).
        json: one JSON object per line (production) or coloured console lines (local debugging).
    """

    def add_service(_l: Any, _m: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        event_dict.setdefault("service", service)
        return event_dict

    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        add_service,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        redact_secrets,
    ]
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)
    handler.addFilter(_FILTER)  # every record, whichever library logged it, is masked before it is formatted
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, root.level))
    install_redaction()


def get_logger(name: str | None = None) -> Any:
    """A structlog logger (``BoundLogger``) named ``name``."""
    return structlog.get_logger(name)
