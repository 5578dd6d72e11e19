"""``laifaxin-mail`` sub-commands of the binding service (registered by :mod:`laifaxin_cli.main`).

- ``providers detect EMAIL [--offline] [--nameserver HOST[:PORT]] [--autoconfig-base-url URL]``: one JSON object
  (:class:`laifaxin_binding.detect.Detection`).
- ``providers list``: every catalog entry's id, name, kind and domains as a JSON array.
- ``providers show ID``: one catalog entry as JSON.
- ``errors explain --protocol imap|smtp [--provider ID] REPLY|-``: one JSON object with ``code``, ``message``,
  ``fix`` and their Chinese versions (``-`` reads the reply from stdin, as bytes, so GBK replies work).

- ``mailbox add EMAIL [--provider ID] [--imap HOST:PORT:ssl|starttls] [--smtp ...] [--nickname N]
  [--interval SECONDS]``: verify and save through the API; the password is read from a prompt (no echo) or,
  when stdin is not a terminal, from its first line; never from the command line. Without ``--provider`` and
  servers, the API detects them (catalog, MX, autoconfig, SRV); ``servers_need_confirmation`` and
  ``servers_required`` answers say which ``--imap``/``--smtp`` to add.
- ``mailbox edit ID [--password] [--expires DATE|none] [--interval S] [--nickname N] [--sync on|off]
  [--imap ...] [--smtp ...] [--email E] [--provider ID]``: what ``PATCH /v1/mailboxes/{id}`` can change, with
  the same verification (the API re-verifies when a login setting changes and changes nothing if that fails).
  ``--password`` asks for the new password (prompt without echo, or the first line of stdin); it is never taken
  from the command line. ``--expires`` is the authorization code's expiry date (``YYYY-MM-DD``, midnight
  UTC+8 as NetEase shows it, or an ISO 8601 date-time with its offset). ``--interval`` and ``--sync`` keep the
  mailbox's other sync settings (read first with ``GET``).
  When the provider signs in with OAuth (Outlook.com, Hotmail, Live, MSN, Microsoft 365; Gmail and Google
  Workspace with ``--oauth``), no password is asked: a sign-in is started (``POST /v1/oauth/sign-ins``), the URL
  to open is printed (and handed to the system browser unless ``--no-browser``), and the command waits, polling
  ``GET /v1/oauth/sign-ins/{id}``, until the binding is done, failed or expired.
- ``mailbox list`` / ``mailbox verify ID`` / ``mailbox remove ID``: the API's list, re-verify and delete.
- ``mailbox token --tenant T --user U [--ttl S] [--admin]``: mint a binding token with ``BINDING_JWT_SECRET``
  and ``BINDING_JWT_AUDIENCE`` (local use; the lifetime at most ``BINDING_JWT_MAX_LIFETIME_SECONDS``).

The ``mailbox`` commands talk to the binding API at ``--api`` (env ``LAIFAXIN_API_URL``, default
``http://127.0.0.1:8080``) with ``--token`` (env ``LAIFAXIN_TOKEN``) and print the JSON answer; an API error
prints its JSON (code, message, fix) and ``code: message / fix`` on stderr.

Exit codes: 0 on success, 2 on bad input (argparse convention), 1 when the provider id is unknown or the API
refused the request, 3 when the API cannot be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import getpass
import json
import os
import sys
import time
import webbrowser
from typing import Any

import dns.asyncresolver
import httpx

from laifaxin_binding.auth import issue_token
from laifaxin_binding.detect import Detector
from laifaxin_binding.settings import BindingSettings
from laifaxin_shared.providers.catalog import get_provider, load_catalog, provider_for_domain
from laifaxin_shared.providers.errors import explain
from laifaxin_shared.providers.models import AuthMethod, Provider


def _print_json(data: object) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
    sys.stdout.flush()


def _resolver(nameserver: str | None) -> dns.asyncresolver.Resolver | None:
    if nameserver is None:
        return None
    host, _, port = nameserver.rpartition(":") if nameserver.count(":") == 1 else (nameserver, "", "")
    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers = [host]
    if port:
        resolver.port = int(port)
    resolver.lifetime = 4.0
    return resolver


def _detect(args: argparse.Namespace) -> int:
    detector = Detector(resolver=_resolver(args.nameserver), autoconfig_base_url=args.autoconfig_base_url)
    try:
        detection = asyncio.run(detector.detect(args.email, offline=args.offline))
    except ValueError as exc:
        sys.stderr.write(f"laifaxin-mail: {exc}\n")
        return 2
    _print_json(detection.model_dump(mode="json"))
    return 0


def _list(args: argparse.Namespace) -> int:
    del args
    _print_json(
        [
            {"id": p.id, "name": p.name.model_dump(), "kind": p.kind, "domains": list(p.domains)}
            for p in load_catalog().providers
        ]
    )
    return 0


def _show(args: argparse.Namespace) -> int:
    try:
        provider = get_provider(args.provider_id)
    except KeyError:
        sys.stderr.write(f"laifaxin-mail: unknown provider {args.provider_id!r}\n")
        return 1
    _print_json(provider.model_dump(mode="json"))
    return 0


def _explain(args: argparse.Namespace) -> int:
    reply: str | bytes = sys.stdin.buffer.read() if args.reply == "-" else args.reply
    if args.provider is not None:
        try:
            get_provider(args.provider)
        except KeyError:
            sys.stderr.write(f"laifaxin-mail: unknown provider {args.provider!r}\n")
            return 1
    _print_json(explain(args.protocol, reply, args.provider).to_dict())
    return 0


def _server(spec: str) -> dict[str, Any]:
    """``HOST:PORT[:ssl|starttls]`` (security defaults to ssl) -> the API's server object."""
    parts = spec.rsplit(":", 2) if spec.count(":") >= 2 else [*spec.rsplit(":", 1), "ssl"]
    if len(parts) != 3 or not parts[1].isdigit() or parts[2] not in ("ssl", "starttls"):
        raise argparse.ArgumentTypeError(f"expected HOST:PORT[:ssl|starttls], got {spec!r}")
    return {"host": parts[0], "port": int(parts[1]), "security": parts[2]}


def _read_password(email: str) -> str:
    if sys.stdin.isatty():
        return getpass.getpass(f"App password / authorization code for {email}: ")
    return sys.stdin.readline().rstrip("\r\n")


def _api(args: argparse.Namespace) -> httpx.Client:
    token = args.token or os.environ.get("LAIFAXIN_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=args.api, headers=headers, timeout=args.timeout)


def _answer(response: httpx.Response) -> int:
    try:
        data = response.json() if response.content else None
    except ValueError:
        data = {"code": "bad_response", "message": response.text[:500], "fix": ""}
    if data is not None:
        _print_json(data)
    if response.is_success:
        return 0
    if isinstance(data, dict):
        sys.stderr.write(
            f"laifaxin-mail: {data.get('code')}: {data.get('message')}\n  fix: {data.get('fix')}\n"
        )
    return 1


def _call(args: argparse.Namespace, method: str, path: str, **kwargs: Any) -> int:
    try:
        with _api(args) as client:
            return _answer(client.request(method, path, **kwargs))
    except httpx.TransportError as exc:
        sys.stderr.write(f"laifaxin-mail: cannot reach the binding API at {args.api}: {type(exc).__name__}\n")
        return 3


def _catalog_provider(args: argparse.Namespace) -> Provider | None:
    if args.provider:
        try:
            return get_provider(args.provider)
        except KeyError:
            return None
    try:
        return provider_for_domain(args.email.rpartition("@")[2])
    except ValueError:
        return None


def _signs_in_with_oauth(args: argparse.Namespace) -> bool:
    """Whether ``mailbox add`` runs the OAuth sign-in: the provider accepts nothing else, or ``--oauth``."""
    provider = _catalog_provider(args)
    if provider is None or provider.oauth is None:
        return False
    return bool(args.oauth) or provider.auth is AuthMethod.OAUTH2


def _mailbox_add_oauth(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"email": args.email, "nickname": args.nickname}
    for key in ("imap", "smtp"):
        if getattr(args, key):
            body[key] = getattr(args, key)
    if args.provider:
        body["provider_id"] = args.provider
    if args.interval is not None:
        body["sync"] = {"interval_seconds": args.interval}
    try:
        with _api(args) as client:
            started = client.post("/v1/oauth/sign-ins", json=body)
            if not started.is_success:
                return _answer(started)
            sign_in = started.json()
            url = sign_in["authorization_url"]
            who = str(sign_in["identity"]).title()
            sys.stderr.write(
                f"{args.email} signs in with {who}. Open this address in a browser and sign in:\n\n  {url}\n\n"
                f"Waiting for the sign-in (until {sign_in['expires_at']}; Ctrl-C to stop)...\n"
            )
            sys.stderr.flush()
            if not args.no_browser:
                webbrowser.open(url)
            while True:
                time.sleep(args.poll)
                state = client.get(f"/v1/oauth/sign-ins/{sign_in['id']}")
                if not state.is_success:
                    return _answer(state)
                data = state.json()
                if data["status"] == "bound":
                    _print_json(data["mailbox"])
                    return 0
                if data["status"] == "failed":
                    error = data.get("error") or {}
                    _print_json(error)
                    sys.stderr.write(
                        f"laifaxin-mail: {error.get('code')}: {error.get('message')}\n  fix: {error.get('fix')}\n"
                    )
                    return 1
                if time.time() > _epoch(sign_in["expires_at"]) + args.poll:
                    sys.stderr.write("laifaxin-mail: the sign-in expired; run the command again\n")
                    return 1
    except httpx.TransportError as exc:
        sys.stderr.write(f"laifaxin-mail: cannot reach the binding API at {args.api}: {type(exc).__name__}\n")
        return 3


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _mailbox_add(args: argparse.Namespace) -> int:
    if _signs_in_with_oauth(args):
        return _mailbox_add_oauth(args)
    body: dict[str, Any] = {
        "email": args.email,
        "password": _read_password(args.email),
        "nickname": args.nickname,
    }
    if args.provider:
        body["provider_id"] = args.provider
    if args.imap:
        body["imap"] = args.imap
    if args.smtp:
        body["smtp"] = args.smtp
    if args.interval is not None:
        body["sync"] = {"interval_seconds": args.interval}
    return _call(args, "POST", "/v1/mailboxes", json=body)


CHINA = datetime.timezone(datetime.timedelta(hours=8))


def _expiry(text: str) -> datetime.datetime:
    """``YYYY-MM-DD`` (midnight in UTC+8, the time zone NetEase shows the date in) or an ISO 8601 date-time with
    an offset -> an aware datetime."""
    try:
        if len(text) == 10:
            return datetime.datetime.combine(datetime.date.fromisoformat(text), datetime.time(), CHINA)
        value = datetime.datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"expected YYYY-MM-DD or an ISO 8601 date-time, got {text!r}"
        ) from exc
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"give the date-time's offset (e.g. +08:00), got {text!r}")
    return value


def _mailbox_edit(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {}
    if args.email:
        body["email"] = args.email
    if args.provider:
        body["provider_id"] = args.provider
    if args.imap:
        body["imap"] = args.imap
    if args.smtp:
        body["smtp"] = args.smtp
    if args.nickname is not None:
        body["nickname"] = args.nickname
    if args.expires is not None:
        body["credential_expires_at"] = args.expires.isoformat()
    try:
        with _api(args) as client:
            if args.interval is not None or args.sync is not None:
                current = client.get(f"/v1/mailboxes/{args.mailbox_id}")
                if not current.is_success:
                    return _answer(current)
                sync = dict(current.json()["sync"])
                if args.interval is not None:
                    sync["interval_seconds"] = args.interval
                if args.sync is not None:
                    sync["enabled"] = args.sync == "on"
                body["sync"] = sync
            if args.password:
                body["password"] = _read_password(args.email or args.mailbox_id)
            if not body:
                sys.stderr.write("laifaxin-mail: nothing to change (see mailbox edit --help)\n")
                return 2
            return _answer(client.patch(f"/v1/mailboxes/{args.mailbox_id}", json=body))
    except httpx.TransportError as exc:
        sys.stderr.write(f"laifaxin-mail: cannot reach the binding API at {args.api}: {type(exc).__name__}\n")
        return 3


def _mailbox_list(args: argparse.Namespace) -> int:
    return _call(args, "GET", "/v1/mailboxes")


def _mailbox_verify(args: argparse.Namespace) -> int:
    return _call(args, "POST", f"/v1/mailboxes/{args.mailbox_id}/verify")


def _mailbox_remove(args: argparse.Namespace) -> int:
    return _call(args, "DELETE", f"/v1/mailboxes/{args.mailbox_id}")


def _mailbox_token(args: argparse.Namespace) -> int:
    settings = BindingSettings()
    try:
        token = issue_token(
            settings,
            args.tenant,
            args.user,
            args.ttl,
            mailbox_limit=args.mailbox_limit,
            role="admin" if args.admin else None,
        )
    except ValueError as exc:  # a ttl over BINDING_JWT_MAX_LIFETIME_SECONDS: binding would refuse the token
        sys.stderr.write(f"{exc} (BINDING_JWT_MAX_LIFETIME_SECONDS)\n")
        return 2
    sys.stdout.write(token + "\n")
    return 0


def _register_mailbox(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    mailbox = subparsers.add_parser("mailbox", help="bind, list, re-verify and remove mailboxes via the API")
    mailbox.add_argument(
        "--api",
        default=os.environ.get("LAIFAXIN_API_URL", "http://127.0.0.1:8080"),
        help="binding API base URL (env LAIFAXIN_API_URL)",
    )
    mailbox.add_argument("--token", help="bearer token (env LAIFAXIN_TOKEN)")
    mailbox.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    sub = mailbox.add_subparsers(dest="mailbox_command", required=True)

    add = sub.add_parser("add", help="verify and bind a mailbox (password from a prompt or stdin)")
    add.add_argument("email")
    add.add_argument(
        "--provider",
        help="catalog id (when absent with no servers, detected from the catalog, MX, autoconfig, SRV)",
    )
    add.add_argument("--imap", type=_server, help="HOST:PORT[:ssl|starttls], overrides the catalog")
    add.add_argument("--smtp", type=_server, help="HOST:PORT[:ssl|starttls], overrides the catalog")
    add.add_argument("--nickname", default="")
    add.add_argument("--interval", type=int, help="sync interval in seconds (minimum 180, default 300)")
    add.add_argument(
        "--oauth",
        action="store_true",
        help="sign in with Google instead of an app password (Gmail, Google Workspace); Microsoft accounts "
        "always sign in",
    )
    add.add_argument("--no-browser", action="store_true", help="only print the sign-in address")
    add.add_argument("--poll", type=float, default=2.0, help="seconds between sign-in status checks")
    add.set_defaults(handler=_mailbox_add)

    edit = sub.add_parser(
        "edit", help="change a mailbox's password, expiry date, interval, nickname, sync on/off or servers"
    )
    edit.add_argument("mailbox_id")
    edit.add_argument(
        "--password",
        action="store_true",
        help="ask for the new password / authorization code (prompt or stdin; never on the command line)",
    )
    edit.add_argument(
        "--expires",
        type=_expiry,
        help="the authorization code's expiry date: YYYY-MM-DD (UTC+8) or an ISO 8601 date-time with offset",
    )
    edit.add_argument("--interval", type=int, help="sync interval in seconds (minimum 180)")
    edit.add_argument("--nickname")
    edit.add_argument("--sync", choices=["on", "off"], help="turn syncing on or off")
    edit.add_argument("--imap", type=_server, help="HOST:PORT[:ssl|starttls] (re-verifies; needs --password)")
    edit.add_argument("--smtp", type=_server, help="HOST:PORT[:ssl|starttls] (re-verifies; needs --password)")
    edit.add_argument("--email", help="a new address (re-verifies)")
    edit.add_argument("--provider", help="catalog id (re-verifies)")
    edit.set_defaults(handler=_mailbox_edit)

    sub.add_parser("list", help="list bound mailboxes with status").set_defaults(handler=_mailbox_list)
    verify = sub.add_parser("verify", help="re-verify a mailbox's stored settings")
    verify.add_argument("mailbox_id")
    verify.set_defaults(handler=_mailbox_verify)
    remove = sub.add_parser("remove", help="unbind a mailbox")
    remove.add_argument("mailbox_id")
    remove.set_defaults(handler=_mailbox_remove)

    token = sub.add_parser("token", help="mint a bearer token with BINDING_JWT_SECRET (local use)")
    token.add_argument("--tenant", required=True)
    token.add_argument("--user", required=True)
    token.add_argument(
        "--ttl",
        type=int,
        default=3600,
        help="seconds (at most BINDING_JWT_MAX_LIFETIME_SECONDS, 24 h by default)",
    )
    token.add_argument(
        "--admin", action="store_true", help="role=admin: the token sees every mailbox of the tenant"
    )
    token.add_argument("--mailbox-limit", type=int, help="the plan's mailbox limit (mailbox_limit claim)")
    token.set_defaults(handler=_mailbox_token)


def _credentials_rotate(args: argparse.Namespace) -> int:
    import asyncio

    from laifaxin_binding.app import rotate_credentials
    from laifaxin_binding.settings import BindingSettings

    counts = asyncio.run(rotate_credentials(BindingSettings()))
    print(json.dumps(counts))
    return 1 if counts["failed"] else 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this service's sub-commands; each sets ``handler=callable(args) -> int``."""
    providers = subparsers.add_parser("providers", help="provider catalog and autodetection")
    providers_sub = providers.add_subparsers(dest="providers_command", required=True)

    detect = providers_sub.add_parser("detect", help="detect IMAP/SMTP settings for an email address (JSON)")
    detect.add_argument("email", help="the email address, e.g. name@163.com")
    detect.add_argument("--offline", action="store_true", help="catalog only: no DNS, no HTTP")
    detect.add_argument("--nameserver", help="DNS server HOST[:PORT] to query instead of the system resolver")
    detect.add_argument(
        "--autoconfig-base-url",
        help="fetch autoconfig from this base URL (with the real host in the Host header) instead of https://<host>",
    )
    detect.set_defaults(handler=_detect)

    list_parser = providers_sub.add_parser(
        "list", help="list catalog providers: id, name, kind, domains (JSON)"
    )
    list_parser.set_defaults(handler=_list)

    show = providers_sub.add_parser("show", help="print one catalog entry (JSON)")
    show.add_argument("provider_id", help="catalog id, e.g. netease_qiye")
    show.set_defaults(handler=_show)

    credentials = subparsers.add_parser("credentials", help="credential key operations (binding's settings)")
    cred_sub = credentials.add_subparsers(dest="credentials_command", required=True)
    cred_sub.add_parser(
        "rotate",
        help="reseal every stored credential under LAIFAXIN_CREDENTIAL_ACTIVE_KEY_ID and emit mailbox.verified",
    ).set_defaults(handler=_credentials_rotate)

    errors = subparsers.add_parser("errors", help="IMAP/SMTP error taxonomy")
    errors_sub = errors.add_subparsers(dest="errors_command", required=True)
    explain_parser = errors_sub.add_parser(
        "explain", help="explain a server reply: code, message, fix (JSON)"
    )
    explain_parser.add_argument("--protocol", choices=["imap", "smtp"], required=True)
    explain_parser.add_argument(
        "--provider", help="catalog id, to add that provider's instructions to the fix"
    )
    explain_parser.add_argument("reply", help="the server's reply text, or - to read it from stdin")
    explain_parser.set_defaults(handler=_explain)

    _register_mailbox(subparsers)
