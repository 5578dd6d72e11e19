"""Linking a user's WeChat to their Laifaxin account through a temporary QR code, and follow/unfollow events.

The Official Account linking flow (WeChat docs "生成带参数的二维码" and "接收事件推送"):

1. ``POST /v1/bindings/wechat/qrcode`` (app.py) makes a random scene id (:func:`new_scene_id`, 48 characters of
   ``[A-Za-z0-9_-]``, 256 bits; WeChat allows 1..64), stores a pending link scene id -> (tenant, user) with its
   expiry (:meth:`~.store.Store.create_wechat_link`; only the scene id's SHA-256 is stored) and asks WeChat for a
   temporary ``QR_STR_SCENE`` code with that ``scene_str``. The scene carries no secret and no JWT.
2. The user scans it. WeChat pushes an XML event to ``/wechat/callback``: ``ToUserName`` (our account),
   ``FromUserName`` (the user's openid for our account), ``CreateTime`` (seconds), ``MsgType`` ``event``, and
   ``Event``:

   - ``subscribe`` with ``EventKey`` ``qrscene_<scene_str>``: the user followed the account through the code;
   - ``SCAN`` with ``EventKey`` ``<scene_str>``: the user already followed and scanned the code;
   - ``subscribe`` without a scene: followed by other means (search, a card): nothing to link;
   - ``unsubscribe``: the user unfollowed.

3. :func:`handle_event`: a follow/scan with a known, unexpired, unconsumed scene binds that openid for the link's
   (tenant, user) (:meth:`~.store.Store.put_binding`, which also re-enables a disabled binding; this is the only
   way an openid is bound: ``PUT /v1/bindings/wechat`` is refused) and consumes the link (first openid wins; the code cannot bind a
   second WeChat). ``unsubscribe`` marks every WeChat binding of that openid inactive with the store call the
   pipeline uses for errcode 43004 "require subscribe" (:meth:`~.store.Store.set_binding_active`), so no more
   sends are attempted; binding again (a new QR code) re-enables it.

Redelivery (WeChat retries an event 3 times within 15 s when it gets no answer in 5 s): the same follow/scan again
finds the link consumed by the same openid and binds again, which changes nothing; a follow/scan older than the
openid's latest ``unsubscribe`` (by ``CreateTime``) is ignored, so a late retry cannot undo an unfollow; an
``unsubscribe`` again finds the bindings inactive. Unknown, expired or already-used scenes are ignored with a log
line. Logs never carry the openid or the scene id in clear: :func:`ref` (a short SHA-256 prefix) stands for them.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from laifaxin_shared.logging import get_logger

from .store import Binding, Store

log = get_logger(__name__)

SCENE_PREFIX = "qrscene_"
"""Prefix of ``EventKey`` on a ``subscribe`` made through a parameter QR code ("接收事件推送")."""

LinkResult = Literal[
    "bound", "rebound", "unknown_scene", "stale", "no_scene", "unsubscribed", "ignored", "too_many"
]


def new_scene_id() -> str:
    """A random, unguessable QR scene id: 48 URL-safe characters (256 bits), within WeChat's 64."""
    return secrets.token_urlsafe(36)


def ref(value: str) -> str:
    """A short stand-in for an openid or scene id in logs: the first 12 hex characters of its SHA-256."""
    return hashlib.sha256(value.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class WeChatEvent:
    """The fields of a pushed event this service reads ("接收事件推送").

    Attributes:
        event: ``Event`` as sent (``subscribe``, ``SCAN``, ``unsubscribe``, ``TEMPLATESENDJOBFINISH`` ...).
        openid: ``FromUserName``, the user's openid for our account.
        create_time: ``CreateTime``, seconds since the epoch (0 when absent or not a number).
        event_key: ``EventKey`` (``qrscene_<scene>`` on a QR follow, ``<scene>`` on ``SCAN``; may be empty).
    """

    event: str
    openid: str
    create_time: int
    event_key: str

    @classmethod
    def from_xml(cls, root: Any) -> WeChatEvent:
        """Read the event from a parsed ``<xml>`` element (missing fields become empty / 0)."""
        raw_time = (root.findtext("CreateTime") or "").strip()
        return cls(
            event=(root.findtext("Event") or "").strip(),
            openid=(root.findtext("FromUserName") or "").strip(),
            create_time=int(raw_time) if raw_time.isdigit() else 0,
            event_key=(root.findtext("EventKey") or "").strip(),
        )

    @property
    def scene(self) -> str:
        """The QR scene id of a follow or scan through a parameter code, else ``""``."""
        if self.event == "subscribe":
            return self.event_key[len(SCENE_PREFIX) :] if self.event_key.startswith(SCENE_PREFIX) else ""
        if self.event == "SCAN":
            return self.event_key
        return ""


async def handle_event(
    store: Store, ev: WeChatEvent, now: datetime, *, max_bindings: int | None = None
) -> LinkResult:
    """Apply a ``subscribe`` / ``SCAN`` / ``unsubscribe`` event (module docstring); idempotent.

    Returns what happened: ``bound`` (link consumed, binding stored), ``rebound`` (a redelivery of a consumed
    link: bound again, no change), ``unknown_scene`` (unknown, expired or used by another openid), ``stale``
    (older than the openid's latest unsubscribe), ``no_scene`` (a follow not through our code),
    ``unsubscribed``, ``ignored`` (another event, or no openid), ``too_many`` (the user already has
    ``max_bindings`` other WeChat accounts linked: codes made before the last link was added are not honoured
    past the cap).
    """
    if not ev.openid or ev.event not in ("subscribe", "SCAN", "unsubscribe"):
        return "ignored"
    who = ref(ev.openid)
    if ev.event == "unsubscribe":
        await store.record_wechat_unsubscribe(ev.openid, ev.create_time)
        disabled = 0
        for b in await store.bindings_of_target("wechat", ev.openid):
            if b.active:
                await store.set_binding_active(b.tenant_id, b.user_id, "wechat", b.target_id, False)
                disabled += 1
        log.info("wechat unsubscribe", openid_ref=who, bindings_disabled=disabled)
        return "unsubscribed"
    scene = ev.scene
    if not scene:
        log.info("wechat follow without a link scene", openid_ref=who, event=ev.event)
        return "no_scene"
    if await store.wechat_unsubscribed_after(ev.openid, ev.create_time):
        log.info("wechat link event older than the unfollow, ignored", openid_ref=who, scene_ref=ref(scene))
        return "stale"
    link, fresh = await store.consume_wechat_link(scene, ev.openid, now)
    if link is None:
        log.info("wechat link scene unknown, expired or used, ignored", openid_ref=who, scene_ref=ref(scene))
        return "unknown_scene"
    tenant_id, user_id = str(link["tenant_id"]), str(link["user_id"])
    if max_bindings is not None:
        linked = await store.list_bindings(tenant_id, user_id, ["wechat"])
        if all(b.target_id != ev.openid for b in linked) and len(linked) >= max_bindings:
            log.warning("wechat link refused: too many WeChat accounts", tenant_id=tenant_id, user_id=user_id)
            return "too_many"
    await store.put_binding(Binding(tenant_id, user_id, "wechat", ev.openid, {}))
    log.info(
        "wechat linked by qr code" if fresh else "wechat link event redelivered",
        tenant_id=tenant_id,
        user_id=user_id,
        openid_ref=who,
        event=ev.event,
    )
    return "bound" if fresh else "rebound"
