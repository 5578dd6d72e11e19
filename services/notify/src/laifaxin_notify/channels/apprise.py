"""Extra channels the user adds as Apprise URLs: their own WeCom group robot, DingTalk, Feishu/Lark, Telegram,
Slack, or a generic JSON / form webhook (issue 6), behind the same dedupe and retries as the other channels.

Apprise (https://github.com/caronc/apprise, BSD-2-Clause, pinned in ``uv.lock``) parses and validates the URL
and sends for every supported scheme except the chat robots (``wecombot``, ``dingtalk``, ``feishu``, ``lark``):

- **Chat robots**: WeCom, DingTalk and Feishu/Lark answer a refused message with HTTP 200 (Feishu sometimes 400)
  and a code in the body, and Apprise's plugins (2.2.0: ``NotifyWeComBot``, ``NotifyDingTalk``, ``NotifyFeishu``,
  ``NotifyLark``) check only the HTTP status, so Apprise reports ``{"errcode":45009}`` or ``{"code":19024}`` as
  a success (reference/notify.md section 0.4, re-read in the installed source). Apprise still parses the URL
  (token, secret); the POST is ours, over one shared ``aiohttp.ClientSession`` (not httpx: its connection pool
  costs ~5 ms of CPU per request under load, encode/httpcore#1035, see channels/wechat.py), one code path for
  the three vendors (:class:`RobotVendor`:
  request, answer code, :class:`CodeRules`). The body's code decides; 0 is sent, anything unknown is a
  permanent failure (dead letter). API bases are settings (``NOTIFY_WECOM_BOT_API_BASE``,
  ``NOTIFY_DINGTALK_API_BASE``, ``NOTIFY_FEISHU_API_BASE``, ``NOTIFY_LARK_API_BASE``), which is how the tests
  point them at loopback robots.

  - WeCom (``wecombot://KEY`` or ``https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=KEY``):
    ``POST {base}/cgi-bin/webhook/send?key=KEY`` with ``{"msgtype":"text","text":{"content":...}}``, content at
    most 2048 bytes of UTF-8 (WeCom robot doc 91770). Codes: :func:`classify_wecom_errcode`, from WeCom's global
    error-code table (document 90313): -1 busy -> retry; 45009 frequency limit (20 messages/minute per robot)
    -> retry after ``NOTIFY_WECOM_BOT_RATE_LIMIT_DELAY_S``; 93000 invalid webhook URL -> permanent, binding
    disabled, dead letter; payload errors -> dead letter and alert.
  - DingTalk custom robot (``dingtalk://TOKEN/``, signed: ``dingtalk://SECRET@TOKEN/`` or ``?secret=SECRET``,
    Apprise's own syntax; phone numbers in the path are @-mentioned): ``POST {base}/robot/send?access_token=TOKEN``
    with ``{"msgtype":"text","text":{"content":...}}``; signed: ``&timestamp=MS&sign=S`` where
    ``S = base64(HMAC-SHA256(key=secret, msg="MS\\nsecret"))``, URL-encoded once (DingTalk "custom robot
    security settings", https://help.dingtalk.io/open/dingstart/customize-robot-security-settings). Request at
    most 20000 bytes (Apprise's plugin note). Codes: :func:`classify_dingtalk_errcode` (DingTalk "custom robot
    sends group messages", https://open.dingtalk.com/document/orgapp/custom-robots-send-group-messages, and the
    older custom-robot-access page): 130101 "send too fast, exceed 20 times per minute" / 410100 -> retry after
    ``NOTIFY_DINGTALK_RATE_LIMIT_DELAY_S`` (the robot is throttled for 10 minutes); 310000 keyword, signature,
    timestamp or IP whitelist mismatch -> dead letter (the user's robot settings); 300001/300005/400101 token
    does not exist, 400102 robot stopped, 400106 robot not in the group, 400013 group dissolved -> binding
    disabled, dead letter; -1 busy -> retry.
  - Feishu / Lark custom bot (``feishu://TOKEN``, ``lark://TOKEN``; signed: ``SECRET@TOKEN`` or
    ``?secret=SECRET``, our extension: Apprise 2.2.0 has no signing for these): ``POST
    {base}/open-apis/bot/v2/hook/TOKEN`` with ``{"msg_type":"text","content":{"text":...}}`` plus
    ``"timestamp"`` (seconds) and ``"sign": base64(HMAC-SHA256(key="timestamp\\nsecret", msg=""))`` when signed;
    body at most 20 KB; 100 messages/minute and 5/second per bot (Feishu "custom bot guide",
    https://open.feishu.cn/document/client-docs/bot-v3/add-custom-bot). The answer is ``{"code":0,"msg":
    "success"}`` (older replies: ``{"StatusCode":0}`` only; ``code`` wins when both are present). Codes:
    :func:`classify_feishu_code`: 9499 "too many request" or 11232 -> retry after
    ``NOTIFY_FEISHU_RATE_LIMIT_DELAY_S``, 9499 "Bad Request" -> dead letter and alert (our payload); 19021 sign
    or timestamp, 19022 IP not allowed, 19024 keyword not found -> dead letter; 19001 "incoming webhook access
    token invalid", 19007 bot not enabled -> binding disabled, dead letter.
- **Other schemes**: the plugin's synchronous ``notify()`` (``requests``) runs in this sender's own thread pool
  (``NOTIFY_APPRISE_CONCURRENCY`` threads), never on the event loop. Apprise answers only True/False, so the
  plugin's warning lines are captured (per thread, never forwarded to our logs) to read the HTTP status:
  408/425/429/5xx and connection errors retry, other 4xx are permanent (dead letter). Apprise's own retries
  are off (``retry=0``); ours are the retry topics. Redirects are not followed, certificates are verified,
  and the timeouts are ours.

Secrets: the URL carries the token or webhook key, so it is stored only sealed with notify's own key ring
(:class:`laifaxin_shared.crypto.KeyRing`, AES-256-GCM, associated data bound to the tenant, the user and the
binding id), opened only here to send, and shown everywhere else as :func:`redact` (scheme, host, ``****``).
Apprise's logger is detached from the root logger (its debug lines print URLs with keys), outcomes carry
status codes, never the URL, and transport errors are reported by type only (aiohttp's ``InvalidURL`` and
response errors quote the URL). aiohttp logs no request lines; urllib3 (Apprise's ``requests``) logs the path
and query at DEBUG, masked while a URL is sent (:class:`_MaskSecrets`). A robot's answer message is masked for
its token, secret and signature (a DingTalk ``sign`` rides in the query string) before it becomes a detail.

Generic ``json://`` / ``form://`` targets name the user's own host: it must resolve to public addresses only,
unless ``NOTIFY_HOST_ALLOWLIST`` names it (ARCHITECTURE.md "Credentials and tenancy"; the tests allowlist
loopback); checked when the URL is added, before each send, and when the send connects: Apprise's ``requests``
connects only to the addresses checked for the host (:meth:`laifaxin_notify.egress.EgressGuard.blocking`, no
second DNS lookup, so no rebinding window), and a refusal there disables the binding like one at the check.

Secrets are sealed with notify's own key ring (``NOTIFY_SECRETS_KEYS``), not the mailbox credential ring.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import contextvars
import dataclasses
import hashlib
import hmac
import json
import logging
import re
import secrets
import time
import urllib.parse
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import aiohttp
import apprise
from apprise.plugins import url_to_dict

from laifaxin_shared.crypto import CredentialError, KeyRing
from laifaxin_shared.events.base import EncryptedCredential
from laifaxin_shared.netguard import HostAllowlist

from ..egress import EgressGuard
from ..models import AlertContent, DeliveryTask
from ..store import Binding
from .base import Outcome

SCHEMES: dict[str, str] = {
    "wecombot": "qyapi.weixin.qq.com",
    "dingtalk": "oapi.dingtalk.com",
    "feishu": "open.feishu.cn",
    "lark": "open.larksuite.com",
    "tgram": "api.telegram.org",
    "slack": "hooks.slack.com",
    "json": "",
    "jsons": "",
    "form": "",
    "forms": "",
}
"""Apprise schemes the product accepts -> the provider's fixed host (empty: the URL names the user's host)."""
GENERIC_SCHEMES = frozenset(s for s, host in SCHEMES.items() if not host)
SUPPORTED_TEXT = (
    "wecombot:// (WeCom group robot), dingtalk://, feishu:// or lark://, tgram:// (Telegram), slack://, "
    "json:// or jsons:// (JSON webhook), form:// or forms:// (form webhook)"
)
ROBOT_SCHEMES = frozenset({"wecombot", "dingtalk", "feishu", "lark"})
"""Chat robots sent by our own aiohttp call (:class:`RobotVendor`), not by Apprise's plugin."""
MAX_URL_CHARS = 2048
WECOM_TEXT_BYTES = 2048
"""Most bytes of UTF-8 in a WeCom robot text message (robot doc 91770)."""
ROBOT_BODY_BYTES = 20_000
"""Most bytes of a DingTalk or Feishu/Lark robot request body (Feishu: "20 KB"; Apprise's DingTalk plugin:
20000 bytes)."""
RETRY_STATUSES = frozenset({408, 425, 429})


class AppriseUrlError(ValueError):
    """An Apprise URL was refused; the message is safe to show (it never contains the URL)."""

    def __init__(self, message: str, code: str = "invalid_apprise_url") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class AppriseTarget:
    """A parsed, accepted Apprise URL.

    Attributes:
        scheme: the Apprise scheme (``wecombot``, ``json`` ...), also for a provider's native URL.
        display: the redacted form shown to users (:func:`redact`).
        host: the URL's host: the user's host for generic schemes (checked against the allowlist); for
            provider schemes Apprise's first token (secret, never displayed).
        params: Apprise's parsed URL tokens, with our overrides (no redirects, verified TLS, timeouts, no
            Apprise retries). Secret: never log it.
        canonical: the plugin's own rendering of the URL (``url(privacy=False)``, set by
            :meth:`AppriseSender.inspect`): equal for two spellings of one target, e.g. ``wecombot://KEY`` and
            the robot's https URL. Secret.
    """

    scheme: str
    display: str
    host: str
    params: dict[str, Any]
    canonical: str = ""

    def __repr__(self) -> str:
        return f"AppriseTarget({self.display!r})"

    def secrets(self, url: str) -> tuple[str, ...]:
        """Strings of this URL to mask in any log line made while it is sent (:class:`_MaskSecrets`): the URL,
        and every token Apprise parsed from it (host = token for provider schemes, user, password, path,
        query values), longest first."""
        found = {url}
        stack: list[Any] = [self.params]
        while stack:
            item = stack.pop()
            if isinstance(item, dict):
                stack.extend(item.values())
            elif isinstance(item, list | tuple | set | frozenset):
                stack.extend(item)
            elif isinstance(item, str) and len(item) >= 6 and item.lower() not in _NOT_SECRET:
                found.add(item)
        if self.scheme in GENERIC_SCHEMES:
            found.discard(self.host)
        return tuple(sorted(found, key=len, reverse=True))

    @property
    def wecom_key(self) -> str:
        """The WeCom robot's webhook key (``wecombot`` only). Secret."""
        return str(self.params.get("key") or "")

    @property
    def robot_token(self) -> str:
        """The chat robot's webhook key or access token (:data:`ROBOT_SCHEMES`). Secret."""
        if self.scheme == "wecombot":
            return self.wecom_key
        return str(self.params.get("token") or "")

    @property
    def robot_secret(self) -> str:
        """The robot's signing secret, empty when signing is off. DingTalk: Apprise's own ``secret`` token
        (``SECRET@TOKEN`` or ``?secret=``); Feishu/Lark (no signing in Apprise 2.2.0): the URL's user part or
        its ``secret`` query value, read from Apprise's parse. Secret."""
        if self.scheme == "dingtalk":
            return str(self.params.get("secret") or "")
        if self.scheme in ("feishu", "lark"):
            qsd = self.params.get("qsd") or {}
            return str(qsd.get("secret") or self.params.get("user") or "")
        return ""


def redact(scheme: str, host: str, port: int | None = None) -> str:
    """What users see of a URL: ``scheme://host/****`` (generic schemes keep the user's host and port; provider
    schemes show the provider's host, since their "host" is the token). Never any path, query or user info."""
    shown = SCHEMES.get(scheme) or host
    if port and not SCHEMES.get(scheme):
        shown = f"{shown}:{port}"
    return f"{scheme}://{shown}/****"


# Apprise logging: detached from our logs, captured per thread -------------------------------------------------
_captured: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("apprise_captured", default=None)
_sending: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("apprise_sending", default=())
_NOT_SECRET = frozenset({*SCHEMES, "https", "http", "post", "get", "upstream", "markdown", "text", "html"})
HTTP_LOGGERS = ("urllib3.connectionpool",)
"""Loggers that print request URLs (urllib3 at DEBUG, for Apprise's plugins): masked while a URL is being sent.
The robots' aiohttp calls log no URLs."""


class _MaskSecrets(logging.Filter):
    """Masks the secrets of the URL being sent in this thread (:data:`_sending`) in HTTP client log lines:
    urllib3 logs ``"POST /hook?token=KEY HTTP/1.1" 200`` at DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = _sending.get()
        if secrets:
            try:
                text = record.getMessage()
            except Exception:  # noqa: BLE001  # unformattable: drop it rather than risk the raw args
                return False
            for secret in secrets:
                text = text.replace(secret, "****")
            record.msg, record.args = text, None
        return True


class _Capture(logging.Filter):
    """Keeps the Apprise warnings of the send running in this thread (they carry the HTTP status) and drops
    every Apprise record, so no handler (ours, or one a framework attaches to the logger) ever sees one."""

    def filter(self, record: logging.LogRecord) -> bool:
        buf = _captured.get()
        if buf is not None:
            with contextlib.suppress(Exception):  # a malformed record must not break the send
                buf.append(record.getMessage())
        return False


def _quiet_apprise_logger() -> None:
    """Silence Apprise's logger (its lines include URLs and parsed tokens with keys, e.g. "Could not load
    WeCom Bot URL: {... 'key': ...}"): records are captured by :class:`_Capture` and dropped, never handled
    nor propagated; below WARNING they are not even made. Idempotent."""
    logger = logging.getLogger("apprise")
    logger.propagate = False
    logger.setLevel(logging.WARNING)
    if not any(isinstance(f, _Capture) for f in logger.filters):
        logger.addFilter(_Capture())
    for name in HTTP_LOGGERS:
        http_logger = logging.getLogger(name)
        if not any(isinstance(f, _MaskSecrets) for f in http_logger.filters):
            http_logger.addFilter(_MaskSecrets())


_STATUS = re.compile(r"(?:\berror=|notification failed: )(\d{3})\b")


def classify_apprise_failure(messages: Iterable[str], scheme: str) -> Outcome:
    """Outcome of a plugin ``notify()`` that returned False, from its captured warnings.

    An HTTP status 408/425/429 or 5xx retries, another 4xx is permanent (dead letter: the user's URL is wrong
    or revoked); no status (connection error, timeout) retries. The detail names the scheme and the status only.
    """
    status = None
    for message in messages:
        found = _STATUS.search(message)
        if found:
            status = int(found.group(1))
    if status is None:
        return Outcome("retry", f"apprise {scheme}: not accepted (connection error or timeout)")
    detail = f"apprise {scheme}: http {status}"
    if status in RETRY_STATUSES or status >= 500:
        return Outcome("retry", detail)
    return Outcome("failed", detail, dead_letter=True)


_RATE_LIMIT_MSG = re.compile(r"too many request|too fast|freq", re.IGNORECASE)
"""A frequency-limit answer, whatever its code (Feishu's 9499 is both "Bad Request" and "too many request")."""


@dataclass(frozen=True)
class CodeRules:
    """How a chat robot's answer code (in the body) maps to an outcome; one instance per vendor.

    Order: 0 is sent; ``retry`` codes retry at the ladder's pace; ``rate_limited`` codes, and any code outside
    ``disable``/``config`` whose message names a frequency limit, retry after the vendor's rate-limit delay;
    ``disable`` codes (the webhook is gone) are permanent, disable the binding and dead-letter; ``payload``
    codes (our request is wrong) dead-letter and alert; ``config`` codes (the user's robot refuses: keyword,
    signature, IP whitelist) and every unknown code dead-letter.
    """

    vendor: str
    field: str = "errcode"
    retry: frozenset[int] = frozenset({-1})
    rate_limited: frozenset[int] = frozenset()
    disable: frozenset[int] = frozenset()
    payload: frozenset[int] = frozenset()
    config: frozenset[int] = frozenset()

    def classify(self, code: int, msg: str, rate_limit_delay_s: float = 60.0) -> Outcome:
        detail = f"{self.vendor} {self.field} {code}: {msg}"[:300]
        if code == 0:
            return Outcome("sent", "ok")
        if code in self.retry:
            return Outcome("retry", detail)
        if code in self.rate_limited or (
            code not in self.disable | self.config and _RATE_LIMIT_MSG.search(msg)
        ):
            return Outcome("retry", detail, retry_after_s=rate_limit_delay_s)
        if code in self.disable:
            return Outcome("failed", detail, dead_letter=True, binding_action="disable")
        if code in self.payload:
            return Outcome("failed", detail, dead_letter=True, alert=True)
        return Outcome("failed", detail, dead_letter=True)


WECOM_RULES = CodeRules(
    "wecom robot",
    rate_limited=frozenset({45009}),
    disable=frozenset({93000}),
    payload=frozenset({40008, 40058, 44004, 45002}),
)
"""WeCom global error codes (developer.work.weixin.qq.com, document 90313), robot doc 91770, reference/notify.md
sections 2.4-2.5: -1 system busy; 45009 API frequency over the limit (20 messages per minute per robot); 93000
invalid webhook URL (the robot was removed or the key is wrong); 40008 / 40058 / 44004 / 45002 message type,
parameter, empty or oversized content."""

DINGTALK_RULES = CodeRules(
    "dingtalk robot",
    rate_limited=frozenset({130101, 410100}),
    disable=frozenset({300001, 300005, 400013, 400101, 400102, 400106}),
    payload=frozenset({40035, 43004, 400105}),
    config=frozenset({310000}),
)
"""DingTalk custom robot codes (https://open.dingtalk.com/document/orgapp/custom-robots-send-group-messages and
the older custom-robot-access page): -1 system busy; 130101 "send too fast, exceed 20 times per minute", 410100
"sending too fast, throttled" (20 messages per minute per robot, then 10 minutes of throttling); 310000
security check failed ("keywords not in content", "sign not match", "ip ... not in whitelist", invalid
timestamp: the user's robot settings); 300001 / 300005 / 400101 token does not exist, 400102 robot stopped,
400106 robot not in the group, 400013 group dissolved; 40035 missing parameter, 43004 wrong Content-Type,
400105 unsupported message type (our request). 430101-430104 (unsafe link or content) are left to the unknown
rule: permanent for that message."""

FEISHU_RULES = CodeRules(
    "feishu bot",
    field="code",
    retry=frozenset(),
    rate_limited=frozenset({11232}),
    disable=frozenset({19001, 19007}),
    payload=frozenset({9499}),
    config=frozenset({19021, 19022, 19024}),
)
"""Feishu/Lark custom bot codes (https://open.feishu.cn/document/client-docs/bot-v3/add-custom-bot): 9499
"Bad Request" (malformed or over 20 KB: our request) or "too many request" (over 100 messages/minute or
5/second: told apart by the message); 11232 throttled under system load; 19021 "sign match fail or timestamp is
not within one hour", 19022 "Ip Not Allowed", 19024 "Key Words Not Found" (the user's bot settings); 19001
"param invalid: incoming webhook access token invalid" and 19007 "Bot Not Enabled" (the webhook is gone)."""


def classify_wecom_errcode(errcode: int, errmsg: str, rate_limit_delay_s: float = 60.0) -> Outcome:
    """Map a WeCom robot ``errcode`` (in an HTTP 200 body) to an outcome (:data:`WECOM_RULES`).

    - 0: sent. -1 (system busy): retry.
    - 45009 (API frequency over the limit): retry after ``rate_limit_delay_s`` (the robot's minute window).
    - 93000 (invalid webhook URL: the robot was removed or the key is wrong): permanent; the binding is
      disabled (the user must add it again) and the task dead-lettered.
    - 40008 / 40058 / 44004 / 45002 (message type, parameter, empty or oversized content): our payload bug:
      dead letter and alert. Any other code: permanent, dead letter.
    """
    return WECOM_RULES.classify(errcode, errmsg, rate_limit_delay_s)


def classify_dingtalk_errcode(errcode: int, errmsg: str, rate_limit_delay_s: float = 600.0) -> Outcome:
    """Map a DingTalk custom robot ``errcode`` (in an HTTP 200 body) to an outcome (:data:`DINGTALK_RULES`).

    - 0: sent. -1 (system busy): retry.
    - 130101 / 410100 (over 20 messages per minute; DingTalk then throttles the robot for 10 minutes): retry
      after ``rate_limit_delay_s``.
    - 310000 (keyword, signature, timestamp or IP whitelist check failed): the user's robot settings:
      permanent, dead letter; the binding stays (fixing the robot's settings is enough).
    - 300001 / 300005 / 400101 (token does not exist), 400102 (robot stopped), 400106 (robot not in the
      group), 400013 (group dissolved): permanent, binding disabled, dead letter.
    - 40035 / 43004 / 400105: our request: dead letter and alert. Any other code: permanent, dead letter.
    """
    return DINGTALK_RULES.classify(errcode, errmsg, rate_limit_delay_s)


def classify_feishu_code(code: int, msg: str, rate_limit_delay_s: float = 60.0) -> Outcome:
    """Map a Feishu/Lark custom bot ``code`` (HTTP 200, or 400 for 9499) to an outcome (:data:`FEISHU_RULES`).

    - 0: sent.
    - 9499 "too many request", 11232 (frequency limit): retry after ``rate_limit_delay_s``; 9499 "Bad Request"
      (malformed or oversized body): our request: dead letter and alert.
    - 19021 (signature or timestamp), 19022 (IP not allowed), 19024 (keyword not found): the user's bot
      settings: permanent, dead letter; the binding stays.
    - 19001 (incoming webhook access token invalid), 19007 (bot not enabled): permanent, binding disabled,
      dead letter. Any other code: permanent, dead letter.
    """
    return FEISHU_RULES.classify(code, msg, rate_limit_delay_s)


def dingtalk_sign(timestamp_ms: int, secret: str) -> str:
    """DingTalk's robot signature: base64 of HMAC-SHA256 keyed by the secret over ``"{timestamp_ms}\\n{secret}"``
    (not yet URL-encoded: the query encoding does that once)."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def feishu_sign(timestamp_s: int, secret: str) -> str:
    """Feishu/Lark's bot signature: base64 of HMAC-SHA256 keyed by ``"{timestamp_s}\\n{secret}"`` over an empty
    message."""
    digest = hmac.new(f"{timestamp_s}\n{secret}".encode(), b"", hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


@dataclass(frozen=True)
class RobotRequest:
    """One robot POST: path under the API base, query, JSON body (UTF-8 bytes) and the strings it carries that
    must be masked besides the URL's own (signatures), e.g. in an answer message that quotes the request."""

    path: str
    params: dict[str, str]
    body: bytes
    secrets: tuple[str, ...] = ()


def _json_bytes(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def _wecom_request(target: AppriseTarget, text: str, now: float) -> RobotRequest:
    payload = {"msgtype": "text", "text": {"content": text}}
    return RobotRequest("/cgi-bin/webhook/send", {"key": target.robot_token}, _json_bytes(payload))


def _dingtalk_request(target: AppriseTarget, text: str, now: float) -> RobotRequest:
    payload: dict[str, Any] = {"msgtype": "text", "text": {"content": text}}
    mobiles = [str(m) for m in target.params.get("targets") or []]
    if mobiles:
        payload["at"] = {"atMobiles": mobiles, "isAtAll": False}
    params = {"access_token": target.robot_token}
    masked: tuple[str, ...] = ()
    if target.robot_secret:
        timestamp = int(now * 1000)
        sign = dingtalk_sign(timestamp, target.robot_secret)
        params.update(timestamp=str(timestamp), sign=sign)
        masked = (sign, urllib.parse.quote(sign, safe=""))
    return RobotRequest("/robot/send", params, _json_bytes(payload), masked)


def _feishu_request(target: AppriseTarget, text: str, now: float) -> RobotRequest:
    payload: dict[str, Any] = {"msg_type": "text", "content": {"text": text}}
    masked: tuple[str, ...] = ()
    if target.robot_secret:
        timestamp = int(now)
        sign = feishu_sign(timestamp, target.robot_secret)
        payload = {"timestamp": str(timestamp), "sign": sign, **payload}
        masked = (sign,)
    path = f"/open-apis/bot/v2/hook/{urllib.parse.quote(target.robot_token, safe='')}"
    return RobotRequest(path, {}, _json_bytes(payload), masked)


def _errcode_of(answer: dict[str, Any]) -> tuple[int, str] | None:
    if "errcode" not in answer:
        return None
    return int(answer["errcode"]), str(answer.get("errmsg", ""))


def _feishu_code_of(answer: dict[str, Any]) -> tuple[int, str] | None:
    for code, msg in (("code", "msg"), ("StatusCode", "StatusMessage")):  # ``code`` wins: the current field
        if code in answer:
            return int(answer[code]), str(answer.get(msg, ""))
    return None


@dataclass(frozen=True)
class RobotVendor:
    """A chat robot sent by our own aiohttp call: how to build the request and read the answer's code.

    Attributes:
        name: the vendor in outcome details (``dingtalk robot`` ...).
        rules: the answer code's meaning.
        build: ``(target, text, now)`` -> the request (``now``: Unix seconds, for signatures).
        code_of: the ``(code, message)`` of a JSON answer, None when it has none.
        text_bytes: most bytes of UTF-8 in the text.
        body_bytes: most bytes of the request body (the text is cut to fit), None: no limit of its own.
    """

    name: str
    rules: CodeRules
    build: Callable[[AppriseTarget, str, float], RobotRequest]
    code_of: Callable[[dict[str, Any]], tuple[int, str] | None]
    text_bytes: int
    body_bytes: int | None = None

    def request(self, target: AppriseTarget, text: str, now: float) -> RobotRequest:
        """The request for ``text``, cut (never splitting a character) to :attr:`text_bytes` and until the
        body fits :attr:`body_bytes` (JSON escapes count)."""
        text = cut_utf8(text, self.text_bytes)
        req = self.build(target, text, now)
        while self.body_bytes is not None and len(req.body) > self.body_bytes and text:
            excess = len(req.body) - self.body_bytes
            text = cut_utf8(text, max(len(text.encode()) - excess - 3, 0))
            req = self.build(target, text, now)
        return req


WECOM = RobotVendor("wecom robot", WECOM_RULES, _wecom_request, _errcode_of, WECOM_TEXT_BYTES)
DINGTALK = RobotVendor(
    "dingtalk robot", DINGTALK_RULES, _dingtalk_request, _errcode_of, ROBOT_BODY_BYTES, ROBOT_BODY_BYTES
)
FEISHU = RobotVendor(
    "feishu bot", FEISHU_RULES, _feishu_request, _feishu_code_of, ROBOT_BODY_BYTES, ROBOT_BODY_BYTES
)
LARK = dataclasses.replace(
    FEISHU, name="lark bot", rules=dataclasses.replace(FEISHU_RULES, vendor="lark bot")
)
ROBOTS: dict[str, RobotVendor] = {"wecombot": WECOM, "dingtalk": DINGTALK, "feishu": FEISHU, "lark": LARK}


def alert_text(content: AlertContent) -> tuple[str, str]:
    """(title, body) of an alert as plain text: the headline, then sender and subject, snippet and link."""
    lines = [f"{content.sender}: {content.subject}" if content.sender else content.subject]
    if content.snippet:
        lines.append(content.snippet)
    if content.url:
        lines.append(content.url)
    return content.title, "\n".join(line for line in lines if line)


def cut_utf8(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` bytes of UTF-8 without splitting a character."""
    raw = text.encode()
    if len(raw) <= limit:
        return text
    return raw[: max(limit - 3, 0)].decode(errors="ignore") + "…"


def credential_object_id(user_id: str, target_id: str) -> str:
    """The object id a sealed URL is bound to (the AEAD associated data is
    ``laifaxin:cred:v1:{tenant}:notify.apprise:{user}:{target}``): an envelope copied to another binding, user
    or tenant fails to open."""
    return f"notify.apprise:{user_id}:{target_id}"


def new_target_id() -> str:
    """A random binding id (32 hex chars). Not derived from the URL, so it reveals nothing about the secret."""
    return secrets.token_hex(16)


class HostGuard:
    """Refuses generic webhook hosts that resolve to non-public addresses (SSRF), unless allowlisted: the
    shared rule of :class:`laifaxin_shared.netguard.HostAllowlist` (the one binding and sync apply to mail
    servers), with Apprise URL errors. Allowlist: comma-separated CIDRs or host names
    (``NOTIFY_HOST_ALLOWLIST``)."""

    def __init__(self, allowlist: str = "", *, timeout_s: float = 5.0) -> None:
        self.allowlist = HostAllowlist.parse(allowlist)
        self.timeout_s = timeout_s

    async def check(self, host: str) -> None:
        """Resolve ``host`` and check every address.

        Raises:
            AppriseUrlError: ``host_not_allowed`` (a non-public address) or ``dns_failed``.
        """
        name = host.lower().strip("[]").rstrip(".")
        if not name:
            raise AppriseUrlError("the webhook URL has no host", "invalid_apprise_url")
        try:
            address = await self.allowlist.refused_address(name, timeout=self.timeout_s)
        except (OSError, TimeoutError):
            raise AppriseUrlError(f"the host {name} does not resolve", "dns_failed") from None
        if address is not None:
            raise AppriseUrlError(
                f"the host {name} resolves to a non-public address; ask the platform operator to allowlist it",
                "host_not_allowed",
            )


class AppriseSender:
    """Sends alerts to users' Apprise URLs (see the module docstring for the rules).

    Args:
        keyring: notify's own key ring (``NOTIFY_SECRETS_KEYS``) that seals and opens the URLs.
        wecom_base_url: WeCom API base for robots (``https://qyapi.weixin.qq.com``).
        timeout_s: connect and read timeout of each provider call.
        concurrency: threads running Apprise's blocking sends (and URL parsing) at once.
        host_allowlist: ``NOTIFY_HOST_ALLOWLIST`` for generic webhook hosts.
        wecom_rate_limit_delay_s: wait after WeCom errcode 45009.
        max_connections: keep-alive connections of the chat robots' ``aiohttp.ClientSession``.
        dingtalk_base_url: DingTalk API base for custom robots (``https://oapi.dingtalk.com``).
        dingtalk_rate_limit_delay_s: wait after DingTalk errcode 130101 / 410100.
        feishu_base_url: Feishu API base for custom bots (``https://open.feishu.cn``).
        lark_base_url: Lark API base for custom bots (``https://open.larksuite.com``).
        feishu_rate_limit_delay_s: wait after Feishu/Lark code 9499 "too many request" or 11232.
        clock: Unix time in seconds, for the robots' signatures (tests may pass one).
    """

    def __init__(
        self,
        *,
        keyring: KeyRing,
        wecom_base_url: str = "https://qyapi.weixin.qq.com",
        timeout_s: float = 10.0,
        concurrency: int = 8,
        host_allowlist: str = "",
        wecom_rate_limit_delay_s: float = 60.0,
        max_connections: int = 50,
        dingtalk_base_url: str = "https://oapi.dingtalk.com",
        dingtalk_rate_limit_delay_s: float = 600.0,
        feishu_base_url: str = "https://open.feishu.cn",
        lark_base_url: str = "https://open.larksuite.com",
        feishu_rate_limit_delay_s: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        _quiet_apprise_logger()
        self._asset = apprise.AppriseAsset(
            http_redirects=False, storage_mode="memory", result_log_disk_size=0, secure_logging=True
        )
        self.keyring = keyring
        self.guard = HostGuard(host_allowlist, timeout_s=timeout_s)
        self.egress = EgressGuard(host_allowlist, timeout_s=timeout_s)
        """Connect-time check of the plugins' connections (same allowlist)."""
        self.timeout_s = timeout_s
        self.robot_bases = {
            "wecombot": wecom_base_url.rstrip("/"),
            "dingtalk": dingtalk_base_url.rstrip("/"),
            "feishu": feishu_base_url.rstrip("/"),
            "lark": lark_base_url.rstrip("/"),
        }
        """API base per robot scheme."""
        self.rate_limit_delays_s = {
            "wecombot": wecom_rate_limit_delay_s,
            "dingtalk": dingtalk_rate_limit_delay_s,
            "feishu": feishu_rate_limit_delay_s,
            "lark": feishu_rate_limit_delay_s,
        }
        """Wait after each robot's frequency-limit code."""
        self.clock = clock
        self._pool = ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="apprise")
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return "AppriseSender()"

    def _http(self) -> aiohttp.ClientSession:
        """The robots' session, created on first use (inside the event loop)."""
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._max_connections)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=self.timeout_s)
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _blocking(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    # parsing and sealing -------------------------------------------------------------------------------------
    def _parse_blocking(self, url: str) -> AppriseTarget:
        token = _captured.set([])  # parse warnings may quote the URL: keep them out of every log
        try:
            results = url_to_dict(url, secure_logging=True)
        finally:
            _captured.reset(token)
        typed = url.partition("://")[0].lower()
        scheme = str((results or {}).get("schema", "")).lower()
        if not results and typed in SCHEMES:
            raise AppriseUrlError(
                f"the {typed}:// URL is incomplete or malformed (a token or key is missing or invalid)"
            )
        if not results or scheme not in SCHEMES:
            raise AppriseUrlError(
                f"unsupported notification URL; supported: {SUPPORTED_TEXT}", "unsupported_apprise_scheme"
            )
        params = dict(results)
        params.update(
            {
                "verify": True,
                "redirect": False,
                "cto": self.timeout_s,
                "rto": self.timeout_s,
                "retry": 0,
            }
        )
        host = str(params.get("host") or "")
        port = params.get("port")
        return AppriseTarget(scheme, redact(scheme, host, port), host, params)

    def _instantiate_blocking(self, target: AppriseTarget) -> Any:
        token = _captured.set([])
        try:
            return apprise.Apprise.instantiate(
                dict(target.params), asset=self._asset, suppress_exceptions=True
            )
        finally:
            _captured.reset(token)

    async def inspect(self, url: str) -> AppriseTarget:
        """Parse and validate a URL the user adds (no message is sent).

        Raises:
            AppriseUrlError: ``unsupported_apprise_scheme`` (the message lists the supported schemes),
                ``invalid_apprise_url`` (Apprise refused its tokens), ``host_not_allowed`` / ``dns_failed``
                (generic webhooks). Messages never contain the URL.
        """
        url = url.strip()
        if not url or len(url) > MAX_URL_CHARS or any(c.isspace() for c in url):
            raise AppriseUrlError(f"the URL must be 1-{MAX_URL_CHARS} characters without spaces")
        target: AppriseTarget = await self._blocking(self._parse_blocking, url)
        plugin = await self._blocking(self._instantiate_blocking, target)
        if plugin is None:
            raise AppriseUrlError(
                f"the {target.scheme}:// URL is incomplete or malformed (a token or key is missing or invalid)"
            )
        target = dataclasses.replace(target, canonical=str(plugin.url(privacy=False)))
        if target.scheme in ROBOT_SCHEMES and not target.robot_token:
            raise AppriseUrlError(f"the {target.scheme}:// URL has no token or key")
        if target.scheme in GENERIC_SCHEMES:
            await self.guard.check(target.host)
        return target

    async def find_same(self, target: AppriseTarget, bindings: Iterable[Binding]) -> Binding | None:
        """The binding among ``bindings`` that sends to the same target (same :attr:`AppriseTarget.canonical`),
        if any; bindings that no longer open or parse are ignored."""
        for binding in bindings:
            try:
                other = await self.inspect(self.open(binding))
            except (AppriseUrlError, CredentialError, KeyError, ValueError):
                continue
            if other.canonical == target.canonical:
                return binding
        return None

    def seal(self, url: str, *, tenant_id: str, user_id: str, target_id: str) -> dict[str, str]:
        """The sealed URL as stored in ``bindings.data.credential`` (key id, nonce, ciphertext)."""
        envelope = self.keyring.seal(
            url.strip(), tenant_id=tenant_id, mailbox_id=credential_object_id(user_id, target_id)
        )
        return envelope.model_dump(mode="json")

    def open(self, binding: Binding) -> str:
        """The plaintext URL of an Apprise binding.

        Raises:
            CredentialError: unknown key id, tampered envelope, or an envelope of another binding.
            KeyError / ValueError: the binding has no envelope.
        """
        envelope = EncryptedCredential.model_validate(binding.data["credential"])
        return self.keyring.open(
            envelope,
            tenant_id=binding.tenant_id,
            mailbox_id=credential_object_id(binding.user_id, binding.target_id),
        )

    # sending -------------------------------------------------------------------------------------------------
    async def send(self, task: DeliveryTask, binding: Binding) -> Outcome:
        """Send the task's alert to the binding's URL once; classify the answer (never raises for it: an
        unexpected error is a retry named by its type, since its message may quote the URL)."""
        try:
            return await self._send(task, binding)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001
            return Outcome("retry", f"apprise: {type(exc).__name__}")

    async def _send(self, task: DeliveryTask, binding: Binding) -> Outcome:
        try:
            url = self.open(binding)
        except (CredentialError, KeyError, ValueError) as exc:
            return Outcome(
                "failed", f"apprise url cannot be opened: {type(exc).__name__}", dead_letter=True, alert=True
            )
        try:
            target: AppriseTarget = await self._blocking(self._parse_blocking, url)
            if target.scheme in GENERIC_SCHEMES:
                await self.guard.check(target.host)
        except AppriseUrlError as exc:
            if exc.code == "dns_failed":
                return Outcome("retry", f"apprise: {exc}")
            return Outcome("failed", f"apprise: {exc.code}", binding_action="disable")
        title, body = alert_text(task.content)
        if target.scheme in ROBOT_SCHEMES:
            return await self._send_robot(target, f"{title}\n{body}".strip(), target.secrets(url))
        return await self._send_apprise(target, title, body, target.secrets(url))

    async def _send_robot(self, target: AppriseTarget, text: str, secrets: tuple[str, ...]) -> Outcome:
        """One POST to a chat robot; the code in its answer decides (:class:`RobotVendor`)."""
        vendor = ROBOTS[target.scheme]
        req = vendor.request(target, text, self.clock())
        secrets = tuple(sorted({*secrets, *req.secrets}, key=len, reverse=True))
        try:
            async with self._http().post(
                self.robot_bases[target.scheme] + req.path,
                params=req.params,
                data=req.body,
                headers={"Content-Type": "application/json; charset=utf-8"},
                allow_redirects=False,
            ) as resp:
                status, raw = resp.status, await resp.read()
        except (
            aiohttp.ClientError,
            TimeoutError,
            OSError,
        ) as exc:  # some quote the URL with the token: type only
            return Outcome("retry", f"{vendor.name} transport: {type(exc).__name__}")
        try:
            answer = json.loads(raw)
            found = vendor.code_of(answer) if isinstance(answer, dict) else None
        except (ValueError, TypeError):
            found = None
        if found is not None:
            code, msg = found
            for secret in secrets:
                msg = msg.replace(secret, "****")
            if status == 200 or (code != 0 and 400 <= status < 500):
                return vendor.rules.classify(code, msg, self.rate_limit_delays_s[target.scheme])
        if status != 200:
            detail = f"{vendor.name} http {status}"
            if status in RETRY_STATUSES or status >= 500:
                return Outcome("retry", detail)
            return Outcome("failed", detail, dead_letter=True)
        return Outcome("retry", f"{vendor.name}: answer without {vendor.rules.field}")

    def _notify_blocking(
        self, target: AppriseTarget, title: str, body: str, secrets: tuple[str, ...]
    ) -> tuple[bool | None, list[str], bool]:
        """Run the plugin's send in this pool thread; returns (accepted, or None when the URL no longer
        instantiates; the captured warnings; whether a connection was refused by the egress guard)."""
        buf: list[str] = []
        token = _captured.set(buf)
        masked = _sending.set(secrets)  # this pool thread's own context: set and reset around the send
        try:
            plugin = apprise.Apprise.instantiate(
                dict(target.params), asset=self._asset, suppress_exceptions=True
            )
            if plugin is None:
                return None, buf, False
            with self.egress.blocking() as refusals:
                ok = bool(plugin.notify(body=body, title=title))
            return ok, buf, bool(refusals)
        finally:
            _sending.reset(masked)
            _captured.reset(token)

    async def _send_apprise(
        self, target: AppriseTarget, title: str, body: str, secrets: tuple[str, ...]
    ) -> Outcome:
        try:
            ok, messages, refused = await self._blocking(self._notify_blocking, target, title, body, secrets)
        except Exception as exc:  # noqa: BLE001  # a plugin bug is a failed attempt, retried, never a crash
            return Outcome("retry", f"apprise {target.scheme}: {type(exc).__name__}")
        if refused:  # the host resolved to a non-public address when connecting (e.g. DNS rebinding)
            return Outcome("failed", "apprise: host_not_allowed", binding_action="disable")
        if ok is None:
            return Outcome("failed", f"apprise {target.scheme}: url no longer accepted", dead_letter=True)
        if ok:
            return Outcome("sent", "ok")
        return classify_apprise_failure(messages, target.scheme)
