"""Errors of the binding API: a stable ``code``, an HTTP status, and message + fix in English and Chinese.

Verification failures carry the shared taxonomy's :class:`~laifaxin_shared.providers.errors.MailError`
(``auth_failed``, ``tls_mismatch``...); the service's own refusals (not found, limits, rate limits, bad
tokens) have the codes below. Nothing here ever holds a password: MailErrors are redacted at the source.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from laifaxin_shared.providers.errors import MailError
from laifaxin_shared.providers.models import Text


class BindingError(Exception):
    """A refusal to show the caller as ``{"code", "message", "fix", "message_zh", "fix_zh", ...}``."""

    def __init__(
        self, code: str, status: int, message: Text, fix: Text, *, extra: dict[str, Any] | None = None
    ) -> None:
        super().__init__(f"{code}: {message.en}")
        self.code = code
        self.status = status
        self.message = message
        self.fix = fix
        self.extra = extra or {}
        self.headers: dict[str, str] = {}

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message.en,
            "fix": self.fix.en,
            "message_zh": self.message.zh,
            "fix_zh": self.fix.zh,
            **self.extra,
        }


def _t(en: str, zh: str) -> Text:
    return Text(en=en, zh=zh)


def verification_failed(error: MailError, errors: list[MailError]) -> BindingError:
    """422 with the first failure's code and texts, and every failure under ``errors``."""
    data = error.to_dict()
    extra: dict[str, Any] = {
        k: data[k]
        for k in ("protocol", "server_text", "suggestion", "backup_servers", "provider")
        if k in data
    }
    extra["errors"] = [e.to_dict() for e in errors]
    return BindingError(error.code.value, 422, error.message, error.fix, extra=extra)


def from_mail_error(error: MailError, status: int = 422) -> BindingError:
    """A refusal decided before any connection (POP3, OAuth-only provider, host not allowed)."""
    return (
        verification_failed(error, [error])
        if status == 422
        else BindingError(error.code.value, status, error.message, error.fix)
    )


def not_found() -> BindingError:
    return BindingError(
        "not_found",
        404,
        _t("No such mailbox.", "找不到该邮箱。"),
        _t("Refresh the mailbox list; it may have been removed.", "请刷新邮箱列表，该邮箱可能已被删除。"),
    )


def mailbox_exists(email: str) -> BindingError:
    return BindingError(
        "mailbox_exists",
        409,
        _t(f"{email} is already bound.", f"{email} 已经绑定。"),
        _t("Edit the existing mailbox instead of adding it again.", "请编辑已有的邮箱，而不是重复添加。"),
    )


def password_required(email: str, new_places: Sequence[str]) -> BindingError:
    """422 ``password_required``: an edit without the password would send the stored password somewhere it was
    never verified (``new_places``: ``"imap server host:port"``, ``"smtp login name"``...)."""
    listed = ", ".join(new_places)
    return BindingError(
        "password_required",
        422,
        _t(
            f"This change would send the stored password of {email} to a new server or login ({listed}); "
            "it is only sent there when you enter it again.",
            f"此修改会把 {email} 已保存的密码发送到新的服务器或登录名（{listed}）；只有重新输入密码后才会发送。",
        ),
        _t(
            "Send the app password / authorization code again with the change (the password field of the "
            "request); the servers are verified with it before anything is saved.",
            "请在修改时重新提交应用专用密码/授权码（请求中的 password 字段）；保存前会先用它验证服务器。",
        ),
        extra={"new_destinations": list(new_places)},
    )


def mailbox_limit(limit: int) -> BindingError:
    return BindingError(
        "mailbox_limit_reached",
        403,
        _t(f"Your plan allows {limit} mailboxes.", f"当前套餐最多可绑定 {limit} 个邮箱。"),
        _t("Remove a mailbox you no longer use, or upgrade the plan.", "请删除不再使用的邮箱，或升级套餐。"),
    )


def interval_too_short(minimum: int, given: int) -> BindingError:
    return BindingError(
        "sync_interval_too_short",
        422,
        _t(
            f"A sync interval of {given} s is too short: providers rate-limit frequent logins and may lock the "
            f"mailbox, so the minimum is {minimum} s ({minimum // 60} minutes).",
            f"同步间隔 {given} 秒太短：服务商会限制频繁登录并可能锁定邮箱，最短为 {minimum} 秒（{minimum // 60} 分钟）。",
        ),
        _t("Choose 3-5 minutes (180-300 s).", "请设置为 3～5 分钟（180～300 秒）。"),
        extra={"minimum_seconds": minimum},
    )


def rate_limited(retry_after: int, scope: str) -> BindingError:
    error = BindingError(
        "verification_rate_limited",
        429,
        _t(
            "Too many verification attempts"
            + (" for this address" if scope == "address" else " for your organisation")
            + "; providers block an IP after about ten failed logins.",
            "验证尝试次数过多"
            + ("（该邮箱地址）" if scope == "address" else "（贵组织）")
            + "；服务商在约十次登录失败后会封禁 IP。",
        ),
        _t(
            f"Check the app password / authorization code and try again in {max(1, retry_after // 60)} minutes.",
            f"请检查应用专用密码/授权码，并在 {max(1, retry_after // 60)} 分钟后重试。",
        ),
        extra={"retry_after_seconds": retry_after, "scope": scope},
    )
    error.headers["Retry-After"] = str(retry_after)
    return error


def servers_required(email: str, tried: Sequence[tuple[str, str]] | None = None) -> BindingError:
    """422: no provider and no servers for ``email``. ``tried`` is what detection looked at, as (source, outcome)
    pairs (:attr:`laifaxin_binding.detect.Detection.attempts`): the message then names the catalog, MX,
    autoconfig and SRV steps with what each found, and the body carries them under ``tried``."""
    command = f"laifaxin-mail mailbox add {email} --imap HOST:993:ssl --smtp HOST:465:ssl"
    fix = _t(
        "Copy the IMAP and SMTP servers (host, port, SSL or STARTTLS) from your provider's help page or ask your "
        f"mail administrator, and send them as imap and smtp with the request (command line: {command}).",
        "请从邮箱服务商的帮助页面（或向邮箱管理员）获取 IMAP 和 SMTP 服务器（地址、端口、SSL 或 STARTTLS），"
        f"并以 imap 和 smtp 随请求提交（命令行：{command}）。",
    )
    if tried is None:
        return BindingError(
            "servers_required",
            422,
            _t(
                f"The provider of {email} is not in our catalog, so its servers must be given.",
                f"{email} 的邮箱服务商不在我们的目录中，需要填写服务器参数。",
            ),
            fix,
        )
    domain = email.rpartition("@")[2]
    return BindingError(
        "servers_required",
        422,
        _t(
            f"No IMAP/SMTP servers were found for {domain}. Tried: {_tried_summary(tried)}.",
            f"未能找到 {domain} 的 IMAP/SMTP 服务器。已尝试：{_tried_summary(tried, zh=True)}。",
        ),
        fix,
        extra={"tried": [{"source": source, "outcome": outcome} for source, outcome in tried]},
    )


_STEPS = (
    ("catalog", "provider catalog", "服务商目录"),
    ("mx", "MX records (a catalog provider's mail hosts)", "MX 记录（是否为目录中服务商的邮件主机）"),
    (
        "autoconfig",
        "autoconfig (Thunderbird clientConfig)",
        "autoconfig 自动配置（Thunderbird clientConfig）",
    ),
    ("srv", "SRV records (RFC 6186)", "SRV 记录（RFC 6186）"),
)


def _tried_summary(tried: Sequence[tuple[str, str]], zh: bool = False) -> str:
    """``provider catalog: no match; MX records (...): ...; ...`` with every detection step, in order; a step the
    time budget cut off is ``not reached``; DNS failures and the budget note come last. Outcomes stay as the
    detector wrote them (host names, HTTP statuses)."""
    by_source: dict[str, list[str]] = {}
    for source, outcome in tried:
        by_source.setdefault(source, []).append(outcome)
    known = {source for source, _, _ in _STEPS}
    missing = "未执行" if zh else "not reached"
    parts = [
        f"{label_zh if zh else label}: {', '.join(by_source.get(source, [missing]))}"
        for source, label, label_zh in _STEPS
    ]
    parts += [
        f"{source}: {', '.join(outcomes)}" for source, outcomes in by_source.items() if source not in known
    ]
    return "; ".join(parts)


def servers_need_confirmation(
    email: str, source: str, imap: dict[str, Any], smtp: dict[str, Any], hosts: Sequence[str]
) -> BindingError:
    """422: detection found servers (``imap`` / ``smtp`` as ``{host, port, security}``) through ``source``
    (``autoconfig`` or ``srv``), but ``hosts`` lie outside the address's domain and the catalog. DNS and autoconfig
    are unauthenticated, so the password is not sent there until the user confirms the servers by giving them
    (:mod:`laifaxin_binding.detect`: ``needs_confirmation``; Thunderbird asks the user too)."""
    domain = email.rpartition("@")[2]
    found = "autoconfig" if source == "autoconfig" else "SRV records"
    listed = ", ".join(hosts)

    def spec(server: dict[str, Any]) -> str:
        return f"{server['host']}:{server['port']}:{server['security']}"

    command = f"laifaxin-mail mailbox add {email} --imap {spec(imap)} --smtp {spec(smtp)}"
    return BindingError(
        "servers_need_confirmation",
        422,
        _t(
            f"The servers found for {domain} through {found} ({listed}) lie outside {domain} and are not in our "
            "catalog; DNS and autoconfig answers can be forged, so the password was not sent there.",
            f"通过 {found} 为 {domain} 找到的服务器（{listed}）不属于 {domain}，也不在我们的目录中；"
            "DNS 和 autoconfig 应答可能被伪造，因此没有向其发送密码。",
        ),
        _t(
            f"If IMAP {spec(imap)} and SMTP {spec(smtp)} are your provider's servers, confirm them by sending them "
            f"as imap and smtp with the request (command line: {command}).",
            f"如果 IMAP {spec(imap)} 和 SMTP {spec(smtp)} 确实是你的邮箱服务商的服务器，请将其作为 imap 和 smtp "
            f"随请求提交以确认（命令行：{command}）。",
        ),
        extra={"detected": {"source": source, "imap": imap, "smtp": smtp, "unconfirmed_hosts": list(hosts)}},
    )


def unknown_provider(provider_id: str) -> BindingError:
    return BindingError(
        "unknown_provider",
        422,
        _t(f"Unknown provider {provider_id!r}.", f"未知的邮箱服务商 {provider_id!r}。"),
        _t(
            "Use an id from GET /v1/providers, or leave it out to detect it.",
            "请使用 GET /v1/providers 中的 id，或不填以自动检测。",
        ),
    )


def invalid_email(email: str) -> BindingError:
    return BindingError(
        "invalid_email",
        422,
        _t(f"{email!r} is not an email address.", f"{email!r} 不是有效的邮箱地址。"),
        _t("Enter the full address, e.g. name@163.com.", "请输入完整的邮箱地址，例如 name@163.com。"),
    )


def unauthorized(reason: str) -> BindingError:
    error = BindingError(
        "unauthorized",
        401,
        _t(f"Missing or invalid bearer token ({reason}).", f"缺少或无效的访问令牌（{reason}）。"),
        _t("Sign in again to get a fresh token.", "请重新登录以获取新的令牌。"),
    )
    error.headers["WWW-Authenticate"] = "Bearer"
    return error


def unavailable(what: str) -> BindingError:
    return BindingError(
        "service_unavailable",
        503,
        _t(f"{what} is unavailable; nothing was changed.", f"{what} 暂不可用；未做任何更改。"),
        _t("Try again in a minute.", "请一分钟后重试。"),
    )


def invalid_request(details: str) -> BindingError:
    return BindingError(
        "invalid_request",
        422,
        _t(f"The request is not valid: {details}", f"请求无效：{details}"),
        _t("Correct the named fields and send it again.", "请更正所列字段后重新提交。"),
    )
