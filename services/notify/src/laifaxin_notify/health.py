"""Mailbox health alerts: tell the owner when a mailbox breaks, when its authorization code expires, and when it
works again.

Where incidents come from (notify meets the other services only on Kafka):

- ``mailbox.verified`` (from binding): who owns the mailbox, its address and the authorization code's expiry
  date (``credential_expires_at``). Kept per mailbox in the ``mailbox_health`` collection. Incidents are
  closed by sync's ``ok``, not by a verification (a key rotation re-emits every mailbox).
- ``mailbox.sync_status`` (from sync, and from the send service with ``source: send``): each status opens or
  closes an incident of its *source*:

  - ``ok`` closes the open incident; when that incident was alerted, a "working again" alert goes out.
  - ``syncing`` changes nothing; ``throttled`` / ``rate_limited`` / ``too_many_connections`` are waits, never
    alerts (the help pages: throttling is "wait", not "broken").
  - unreachable (state ``unreachable``, or codes ``timeout``, ``connection_refused``, ``dns_failed``,
    ``server_unavailable``) opens an incident that alerts only once it has lasted
    ``NOTIFY_HEALTH_UNREACHABLE_AFTER_S`` (checked on every status and by the periodic :meth:`MailboxHealth.tick`,
    since sync reports a state on change, not per poll).
  - any other failing status (``auth_failed``, ``credential_expired``, ``oauth_revoked`` or any other OAuth code,
    ``ip_denied``, ``protocol_disabled``, ``uidvalidity_unstable``, sending paused, ...) alerts at once.

  One alert per incident: a status with the same code as the open incident adds nothing; another code replaces
  the incident (and alerts for the new one). A failure status older than ``NOTIFY_HEALTH_MAX_STATUS_AGE_S`` (a
  replay of the topic's history when notify first starts) opens its incident silently.
- Expiry: :meth:`MailboxHealth.tick` (every ``NOTIFY_HEALTH_CHECK_INTERVAL_S``, clock injectable) warns
  ``NOTIFY_HEALTH_EXPIRY_WARN_DAYS`` (14 and 3) days before ``credential_expires_at`` and once it has passed,
  each stage once per expiry date; a later stage reached first skips the earlier ones.

Delivery goes through :meth:`~.pipeline.Notifier.alert_user`: the owner's channels, quiet hours (defer or drop)
and dedupe as for mail alerts, never digested; the preference ``mailbox_health`` (on by default) turns them off.
Each alert's event id is derived from the incident (mailbox, source, code, start time), so a redelivered status
never alerts twice. The text is the shared error taxonomy's message (with the server's own reply, ``server_text``) and fix in the
owner's language (preference ``language``, ``zh`` or ``en``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from laifaxin_shared.events import MailboxRemoved, MailboxSyncStatus, MailboxVerified
from laifaxin_shared.logging import get_logger
from laifaxin_shared.providers.errors import CODES, ErrorCode

from .models import AlertContent
from .pipeline import Notifier

log = get_logger(__name__)

CATEGORY = "mailbox_health"
WAIT_CODES = frozenset({"rate_limited", "too_many_connections"})
UNREACHABLE_CODES = frozenset({"timeout", "connection_refused", "dns_failed", "server_unavailable"})
QUIET_STATES = frozenset({"ok", "syncing"})

TITLES = {
    "broken": ("Mailbox stopped syncing", "邮箱已停止同步"),
    "send": ("Sending paused", "发信已暂停"),
    "unreachable": ("Mailbox unreachable", "邮箱服务器无法连接"),
    "recovered": ("Mailbox working again", "邮箱已恢复正常"),
    "expiring": ("Authorization code expires in {days} days", "授权码将在 {days} 天后过期"),
    "expired": ("Authorization code expired", "授权码已过期"),
}
EXPIRY_FIX = (
    "Generate a new authorization password in the mailbox's settings and update it in Laifaxin (mailbox edit → "
    "password, then verify and save) before {date}, to avoid send/receive interruptions.",
    "请在 {date} 之前到邮箱设置中生成新的授权密码，并在来发信中修改该邮箱的密码并“验证并保存”，以免收发中断。",
)
RECOVERED_TEXT = ("{email} syncs and sends again.", "{email} 已恢复正常收发。")


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


@dataclass(frozen=True)
class HealthLimits:
    """Settings of the health checks: unreachable threshold (seconds) and expiry warning days."""

    unreachable_after_s: float = 1800.0
    expiry_warn_days: tuple[int, ...] = (14, 3)
    max_status_age_s: float = 86400.0
    """A failure status older than this (a replay of the topic's history, e.g. notify's first start) opens its
    incident without an alert, and its recovery is not announced either."""


class MailboxHealth:
    """Incidents per mailbox and source, stored in notify's ``mailbox_health`` collection.

    Document (``_id`` ``tenant|mailbox``): ``tenant_id``, ``mailbox_id``, ``user_id``, ``email``,
    ``expires_at`` (aware UTC or None), ``expiry_alerted`` (stages already alerted for that date: ``"14"``,
    ``"3"``, ``"expired"``), ``incidents`` (per source: ``code``, ``kind`` broken/unreachable/send, ``since``,
    ``alerted``, ``message``/``fix`` and ``message_zh``/``fix_zh``).
    """

    def __init__(
        self,
        notifier: Notifier,
        *,
        limits: HealthLimits | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.notifier = notifier
        self.collection = notifier.store.db["mailbox_health"]
        self.limits = limits or HealthLimits()
        self.clock = clock or notifier.clock

    # state ------------------------------------------------------------------------------------------------
    async def _load(self, tenant_id: str, mailbox_id: str) -> dict[str, Any] | None:
        doc: dict[str, Any] | None = await self.collection.find_one({"_id": f"{tenant_id}|{mailbox_id}"})
        return doc

    async def _save(self, doc: dict[str, Any]) -> None:
        await self.collection.replace_one({"_id": doc["_id"]}, doc, upsert=True)

    # events -----------------------------------------------------------------------------------------------
    async def handle_verified(self, event: MailboxVerified) -> list[str]:
        """Remember owner, address and expiry date. A new expiry date (a new code was saved) restarts the expiry
        schedule, with a "working again" alert when the old one had been announced expired. Open incidents stay
        open: a verification (or a key rotation's re-emitted event) does not prove sync works; sync's next ``ok``
        closes them. Returns the alert kinds sent."""
        doc = await self._load(event.tenant_id, event.mailbox_id) or {
            "_id": f"{event.tenant_id}|{event.mailbox_id}",
            "tenant_id": event.tenant_id,
            "mailbox_id": event.mailbox_id,
            "incidents": {},
            "expiry_alerted": [],
        }
        sent: list[str] = []
        doc.update(user_id=event.user_id, email=event.email)
        expires = event.credential_expires_at
        old = doc.get("expires_at")
        old_aware = old.replace(tzinfo=UTC) if isinstance(old, datetime) and old.tzinfo is None else old
        if old_aware != expires:
            if "expired" in doc.get("expiry_alerted", []) and old_aware is not None:
                sent += await self._recovered(doc, f"expiry:{_iso(old_aware)}")
            doc["expires_at"] = expires
            doc["expiry_alerted"] = []
        await self._save(doc)
        return sent

    async def handle_removed(self, event: MailboxRemoved) -> None:
        """Forget the mailbox."""
        await self.collection.delete_one({"_id": f"{event.tenant_id}|{event.mailbox_id}"})

    async def handle_status(self, event: MailboxSyncStatus) -> list[str]:
        """Open, keep or close the incident of the status's source; returns the alert kinds sent
        (``broken``, ``send``, ``unreachable``, ``recovered``)."""
        doc = await self._load(event.tenant_id, event.mailbox_id)
        if doc is None:  # no mailbox.verified seen yet: nobody to tell
            log.info("health status for an unknown mailbox", mailbox_id=event.mailbox_id)
            return []
        source = str(getattr(event, "source", None) or "sync")
        incidents: dict[str, Any] = doc.setdefault("incidents", {})
        current = incidents.get(source)
        code = event.error_code or event.state
        sent: list[str] = []
        if event.state in QUIET_STATES:
            if event.state == "ok" and current is not None:
                if current.get("alerted") and not current.get("silent"):
                    sent += await self._recovered(doc, f"{source}:{current['code']}:{current['since']}")
                del incidents[source]
                await self._save(doc)
            return sent
        if event.state == "throttled" or code in WAIT_CODES:
            return sent
        kind = "send" if source == "send" else "broken"
        if event.state == "unreachable" or code in UNREACHABLE_CODES:
            kind = "unreachable"
        if current is None or current["code"] != code:
            current = {
                "code": code,
                "kind": kind,
                "since": _iso(event.occurred_at),
                "since_at": event.occurred_at,
                "alerted": False,
                "message": event.message,
                "fix": event.fix,
                "message_zh": event.message_zh,
                "fix_zh": event.fix_zh,
                "server_text": getattr(event, "server_text", None) or "",
            }
            if (self.clock() - event.occurred_at).total_seconds() > self.limits.max_status_age_s:
                current.update(alerted=True, silent=True)  # history, not news
            incidents[source] = current
        if not current["alerted"] and self._due(current, self.clock()):
            sent += await self._incident_alert(doc, source, current)
            current["alerted"] = True
        await self._save(doc)
        return sent

    def _due(self, incident: dict[str, Any], now: datetime) -> bool:
        if incident["kind"] != "unreachable":
            return True
        since: datetime = incident["since_at"]
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        return (now - since).total_seconds() >= self.limits.unreachable_after_s

    # the schedule -----------------------------------------------------------------------------------------
    async def tick(self, now: datetime | None = None) -> list[tuple[str, str]]:
        """One pass of the periodic check: expiry stages reached and unreachable incidents past the threshold.
        Returns (mailbox_id, alert kind) pairs sent."""
        now = now or self.clock()
        out: list[tuple[str, str]] = []
        async for doc in self.collection.find({}):
            changed = False
            for source, incident in doc.get("incidents", {}).items():
                if not incident.get("alerted") and self._due(incident, now):
                    out += [(doc["mailbox_id"], k) for k in await self._incident_alert(doc, source, incident)]
                    incident["alerted"] = True
                    changed = True
            expires = doc.get("expires_at")
            if isinstance(expires, datetime):
                if expires.tzinfo is None:
                    expires = expires.replace(tzinfo=UTC)
                stage = self._expiry_stage(expires, now)
                alerted: list[str] = doc.setdefault("expiry_alerted", [])
                if stage is not None and stage not in alerted:
                    out += [
                        (doc["mailbox_id"], k) for k in await self._expiry_alert(doc, expires, stage, now)
                    ]
                    alerted += [s for s in self._stages_up_to(stage) if s not in alerted]
                    changed = True
            if changed:
                await self._save(doc)
        return out

    def _stages(self) -> list[str]:
        return [str(d) for d in sorted(self.limits.expiry_warn_days, reverse=True)] + ["expired"]

    def _stages_up_to(self, stage: str) -> list[str]:
        stages = self._stages()
        return stages[: stages.index(stage) + 1]

    def _expiry_stage(self, expires: datetime, now: datetime) -> str | None:
        if now >= expires:
            return "expired"
        for days in sorted(self.limits.expiry_warn_days):
            if now >= expires - timedelta(days=days):
                return str(days)
        return None

    # rendering and sending --------------------------------------------------------------------------------
    def _url(self, doc: dict[str, Any]) -> str:
        return f"{self.notifier.app_base_url.rstrip('/')}/mailboxes/{quote(doc['mailbox_id'], safe='')}"

    async def _send(
        self, doc: dict[str, Any], event_id: str, en: AlertContent, zh: AlertContent
    ) -> list[str]:
        results = await self.notifier.alert_user(
            doc["tenant_id"], doc["user_id"], event_id, doc["mailbox_id"], {"en": en, "zh": zh}
        )
        log.info("mailbox health alert", mailbox_id=doc["mailbox_id"], event_id=event_id, results=results)
        return results

    def _content(self, doc: dict[str, Any], title: str, subject: str, snippet: str) -> AlertContent:
        return AlertContent(
            title=title,
            sender=str(doc.get("email", "")),
            subject=subject[:500],
            snippet=snippet[:280],
            category=CATEGORY,
            url=self._url(doc),
            arrived_at=self.clock(),
        )

    async def _incident_alert(self, doc: dict[str, Any], source: str, incident: dict[str, Any]) -> list[str]:
        code = incident["code"]
        info = CODES.get(ErrorCode(code)) if code in ErrorCode._value2member_map_ else None
        message = incident.get("message") or (info.message.en if info else code)
        fix = incident.get("fix") or (info.fix.en if info else "")
        message_zh = incident.get("message_zh") or (info.message.zh if info else code)
        fix_zh = incident.get("fix_zh") or (info.fix.zh if info else "")
        if server := incident.get("server_text"):  # the provider's own words, after the explanation
            message, message_zh = f"{message} (server: {server})", f"{message_zh}（服务器：{server}）"
        title_en, title_zh = TITLES[incident["kind"]]
        event_id = f"health:{doc['mailbox_id']}:{source}:{code}:{incident['since']}"
        en = self._content(doc, f"{title_en} ({code})", message, fix)
        zh = self._content(doc, f"{title_zh}（{code}）", message_zh, fix_zh)
        await self._send(doc, event_id, en, zh)
        return [incident["kind"]]

    async def _recovered(self, doc: dict[str, Any], incident_id: str) -> list[str]:
        email = str(doc.get("email", ""))
        en = self._content(doc, TITLES["recovered"][0], RECOVERED_TEXT[0].format(email=email), "")
        zh = self._content(doc, TITLES["recovered"][1], RECOVERED_TEXT[1].format(email=email), "")
        await self._send(doc, f"health:{doc['mailbox_id']}:{incident_id}:recovered", en, zh)
        return ["recovered"]

    async def _expiry_alert(
        self, doc: dict[str, Any], expires: datetime, stage: str, now: datetime
    ) -> list[str]:
        date = expires.astimezone(UTC).strftime("%Y-%m-%d")
        if stage == "expired":
            title_en, title_zh = TITLES["expired"]
            info = CODES[ErrorCode.CREDENTIAL_EXPIRED]
            msg_en, msg_zh, fix_en, fix_zh = info.message.en, info.message.zh, info.fix.en, info.fix.zh
        else:
            days = max(1, (expires - now).days + (1 if (expires - now).seconds else 0))
            title_en, title_zh = (t.format(days=days) for t in TITLES["expiring"])
            msg_en = f"The authorization code of {doc.get('email', '')} expires on {date}."
            msg_zh = f"{doc.get('email', '')} 的授权码将于 {date} 过期。"
            fix_en, fix_zh = (t.format(date=date) for t in EXPIRY_FIX)
        event_id = f"health:{doc['mailbox_id']}:expiry:{_iso(expires)}:{stage}"
        en = self._content(doc, f"{title_en} (credential_expired)", msg_en, fix_en)
        zh = self._content(doc, f"{title_zh}（credential_expired）", msg_zh, fix_zh)
        await self._send(doc, event_id, en, zh)
        return ["expired" if stage == "expired" else f"expiring_{stage}d"]
