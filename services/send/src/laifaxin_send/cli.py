"""``laifaxin-mail send`` sub-commands (registered by :mod:`laifaxin_cli.main`).

- ``send plan EMAIL_OR_PROVIDER [--bound-days N]``: the pacing of a mailbox of that provider N days after it
  was bound, as one JSON object ``{"provider", "daily_cap", "min_spacing_seconds", "max_spacing_seconds",
  "source"}`` (:func:`laifaxin_send.pacing.plan_for`); an unknown domain gets the warm-up ramp (``custom``).
- ``send submit --mailbox ID --to ADDR [--to ...] --subject S (--text T | --html H) [--kind reply|campaign]
  [--command-id ID] [--wait SECONDS]``: POST the command to the send API and wait for its outcome
  (:func:`submit_and_wait`); prints the final state as JSON.

The API is ``--api`` (env ``LAIFAXIN_SEND_URL``, default ``http://127.0.0.1:8083``) with ``--token`` (env
``LAIFAXIN_TOKEN``). Exit codes: 0 sent (or a plan printed), 1 failed/unknown/deferred or refused, 2 bad input,
3 the API cannot be reached or the wait ran out.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import uuid
from typing import Any

import httpx

from laifaxin_send.pacing import plan_for, resolve_provider

FINAL_STATES = ("sent", "failed", "unknown", "deferred")


async def submit_and_wait(
    base_url: str,
    token: str,
    body: dict[str, Any],
    *,
    timeout: float = 120.0,
    poll: float = 0.5,
    client: httpx.AsyncClient | None = None,
) -> dict[str, Any]:
    """POST ``body`` to ``/v1/send`` and poll ``GET /v1/send/{command_id}`` until the state is final (``sent``,
    ``failed``, ``unknown``) or ``deferred``; returns the last answer (the API's SendStatus as a dict).

    Raises:
        httpx.HTTPStatusError: the API refused the command (the body holds the code and fix).
        TimeoutError: no final state within ``timeout`` seconds.
    """
    body = {"command_id": f"cli-{uuid.uuid4().hex[:16]}", **body}
    headers = {"Authorization": f"Bearer {token}"}
    own = client is None
    http = client or httpx.AsyncClient(base_url=base_url, timeout=30)
    try:
        accepted = await http.post("/v1/send", json=body, headers=headers)
        accepted.raise_for_status()
        state: dict[str, Any] = accepted.json()
        async with asyncio.timeout(timeout):
            while state.get("state") not in FINAL_STATES:
                await asyncio.sleep(poll)
                got = await http.get(f"/v1/send/{body['command_id']}", headers=headers)
                if got.status_code == 404:
                    continue  # not stored by the worker yet
                got.raise_for_status()
                state = got.json()
        return state
    finally:
        if own:
            await http.aclose()


def _plan(args: argparse.Namespace) -> int:
    provider = resolve_provider(args.target)
    plan = plan_for(provider, args.bound_days)
    sys.stdout.write(json.dumps(plan.to_dict(), ensure_ascii=False) + "\n")
    return 0


def _submit(args: argparse.Namespace) -> int:
    token = args.token or os.environ.get("LAIFAXIN_TOKEN")
    if not token:
        sys.stderr.write("a bearer token is needed: --token or LAIFAXIN_TOKEN\n")
        return 2
    if args.text is None and args.html is None:
        sys.stderr.write("--text or --html is needed\n")
        return 2
    body: dict[str, Any] = {
        "mailbox_id": args.mailbox,
        "to": [{"email": a} for a in args.to],
        "subject": args.subject,
        "text": args.text,
        "html": args.html,
        "kind": args.kind,
    }
    if args.command_id:
        body["command_id"] = args.command_id
    try:
        state = asyncio.run(submit_and_wait(args.api, token, body, timeout=args.wait))
    except httpx.HTTPStatusError as exc:
        sys.stdout.write(exc.response.text + "\n")
        return 1
    except (httpx.TransportError, TimeoutError) as exc:
        sys.stderr.write(f"send API not reachable or no outcome in time: {type(exc).__name__}\n")
        return 3
    sys.stdout.write(json.dumps(state, ensure_ascii=False) + "\n")
    return 0 if state.get("state") == "sent" else 1


def register(subparsers: Any) -> None:
    """Add ``send plan`` and ``send submit``."""
    send = subparsers.add_parser("send", help="sending mail from bound mailboxes (pacing, submit)")
    sub = send.add_subparsers(dest="send_command", required=True)
    plan = sub.add_parser("plan", help="daily cap and spacing for a provider or address after N days")
    plan.add_argument("target", metavar="EMAIL_OR_PROVIDER")
    plan.add_argument(
        "--bound-days", type=int, default=0, help="days since the mailbox was bound (default 0)"
    )
    plan.set_defaults(handler=_plan)
    submit = sub.add_parser("submit", help="send one message through the send API and wait for its outcome")
    submit.add_argument("--api", default=os.environ.get("LAIFAXIN_SEND_URL", "http://127.0.0.1:8083"))
    submit.add_argument("--token", help="bearer token (env LAIFAXIN_TOKEN)")
    submit.add_argument("--mailbox", required=True, help="mailbox id")
    submit.add_argument("--to", action="append", required=True, help="recipient (repeat for more)")
    submit.add_argument("--subject", default="")
    submit.add_argument("--text")
    submit.add_argument("--html")
    submit.add_argument("--kind", choices=("reply", "campaign"), default="reply")
    submit.add_argument("--command-id", help="idempotency key (default: a new one)")
    submit.add_argument("--wait", type=float, default=120.0, help="seconds to wait for the outcome")
    submit.set_defaults(handler=_submit)
