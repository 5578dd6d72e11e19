"""Send's own refusals (a stable code, an HTTP status for the API, message and fix in English and Chinese).

Send-time failures reported by a server use the shared taxonomy
(:func:`laifaxin_shared.providers.errors.explain_send`); these are the cases decided before or without a server.
"""

from __future__ import annotations

from typing import Any

from laifaxin_shared.providers.models import Text


def _t(en: str, zh: str) -> Text:
    return Text(en=en, zh=zh)


class SendError(Exception):
    """A refusal shown as ``{"code", "message", "fix", "message_zh", "fix_zh", ...}``."""

    def __init__(self, code: str, status: int, message: Text, fix: Text, **extra: Any) -> None:
        super().__init__(f"{code}: {message.en}")
        self.code = code
        self.status = status
        self.message = message
        self.fix = fix
        self.extra = extra

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message.en,
            "fix": self.fix.en,
            "message_zh": self.message.zh,
            "fix_zh": self.fix.zh,
            **self.extra,
        }


REFUSALS: dict[str, tuple[int, Text, Text]] = {
    "unauthorized": (
        401,
        _t("Missing or invalid bearer token.", "缺少或无效的访问令牌。"),
        _t(
            "Sign in again and send the token as Authorization: Bearer.",
            "请重新登录，并以 Authorization: Bearer 发送令牌。",
        ),
    ),
    "invalid_command": (
        422,
        _t("The send command is not valid.", "发信指令无效。"),
        _t(
            "Correct the fields named in details and send it again.",
            "请按 details 中列出的字段修改后重新提交。",
        ),
    ),
    "command_not_found": (
        404,
        _t("No send command with this id (yet).", "没有该编号的发信指令（或尚未入库）。"),
        _t(
            "Check the id; a command just submitted is stored within a second or two, so ask again shortly.",
            "请检查编号；刚提交的指令会在一两秒内入库，请稍后再查询。",
        ),
    ),
    "mailbox_unknown": (
        404,
        _t("The mailbox is not bound, or not yours.", "该邮箱未绑定，或不属于你。"),
        _t(
            "Bind the mailbox first (and wait for its verification), then send.",
            "请先绑定邮箱（并等待验证完成），再发送。",
        ),
    ),
    "mailbox_not_owned": (
        403,
        _t("The mailbox belongs to another tenant.", "该邮箱属于其他租户。"),
        _t("Send from one of your own mailboxes.", "请使用你自己的邮箱发送。"),
    ),
    "attachment_unsupported": (
        422,
        _t(
            "Attachments by reference (content_ref) are not supported yet; only inline attachments up to "
            "512 KiB each and 640 KiB in total.",
            "暂不支持以引用方式（content_ref）附加的文件；仅支持内嵌附件，单个不超过 512 KiB，合计不超过 640 KiB。",
        ),
        _t(
            "Attach the file inline if it is small enough, or put a download link in the text.",
            "若文件足够小请改为内嵌附件，否则请在正文中放下载链接。",
        ),
    ),
    "address_needs_smtputf8": (
        422,
        _t(
            "An address is not ASCII, and this mailbox's SMTP server does not offer SMTPUTF8 (RFC 6531).",
            "有地址包含非 ASCII 字符，而该邮箱的 SMTP 服务器不支持 SMTPUTF8（RFC 6531）。",
        ),
        _t("Use the recipient's ASCII address.", "请使用收件人的 ASCII 地址。"),
    ),
    "credential_unreadable": (
        500,
        _t("The mailbox's stored password could not be opened.", "无法解密该邮箱保存的密码。"),
        _t(
            "Operators: check that the send service has the same credential key ring as binding; users: "
            "re-enter the mailbox's password.",
            "运维：请确认发信服务与绑定服务使用同一套凭据密钥；用户：请重新填写邮箱密码。",
        ),
    ),
}


def refusal(code: str, **extra: Any) -> SendError:
    """The :class:`SendError` of one of :data:`REFUSALS`."""
    status, message, fix = REFUSALS[code]
    return SendError(code, status, message, fix, **extra)


def http_error(status: int, detail: str) -> SendError:
    """An error raised by the HTTP layer itself (400 a body that is not JSON, 404 an unknown path, 405), in the
    same shape as every other error of the API."""
    code = {400: "malformed_request", 404: "not_found", 405: "method_not_allowed"}.get(
        status, f"http_{status}"
    )
    return SendError(
        code,
        status,
        _t(f"{detail}.", f"请求无法处理（{detail}）。"),
        _t(
            "Send a JSON body as the API document describes, to a path and method it lists.",
            "请按照 API 文档发送 JSON 请求体，并使用文档列出的路径和方法。",
        ),
    )
