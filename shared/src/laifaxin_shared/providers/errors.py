"""IMAP/SMTP error taxonomy: stable codes, bilingual message + fix, and the explainers that produce them.

Binding reports these codes when verification fails; sync reports the same codes (and their fixes) on
``mailbox.sync_status``. Two entry points share one vocabulary:

- :func:`explain` maps a raw server reply (``str`` or undecoded ``bytes``) to a :class:`MailError`;
- :func:`explain_exception` maps a Python exception raised while connecting (DNS, TCP, TLS, timeouts) to one.

:class:`MailServerError` is the exception that carries a :class:`MailError` through verifier and sync code.

Rules and their order follow providers.md §3 (exact server texts, with sources) and §5.5 (classify ``[ALERT]``
text and response codes, then provider strings, then the bare SMTP code; throttling is "wait", never "wrong
password"). IMAP response codes are RFC 5530; SMTP enhanced status codes RFC 3463; the user-facing wording
matches the product's error-code table (product page email-account, §3 "Common Error Code Troubleshooting").

No password ever reaches a :class:`MailError`: server text is redacted with :func:`redact` against the secrets
the caller passes (plain and base64 AUTH PLAIN/LOGIN forms), and the exception's ``str``/``repr`` hold only the
code, the message and the redacted server text.
"""

from __future__ import annotations

import errno
import re
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Literal

from laifaxin_shared.events.mailbox import SyncState
from laifaxin_shared.imap import ImapConnectionClosedError, NotImapGreetingError
from laifaxin_shared.logging import mask_secrets
from laifaxin_shared.providers.catalog import find_provider, known_server_hosts, load_catalog
from laifaxin_shared.providers.models import AuthMethod, Protocol, Provider, QuirkCode, Text

MAX_SERVER_TEXT = 500
"""Server text kept on a :class:`MailError` is cut to this many characters (events cap fields at 2000)."""


class ErrorCode(StrEnum):
    """Stable error codes (issue 3, "Error taxonomy"); values are part of the event and API contract."""

    AUTH_FAILED = "auth_failed"
    APP_PASSWORD_REQUIRED = "app_password_required"  # noqa: S105  # enum value naming a kind of password, not a secret
    PROTOCOL_DISABLED = "protocol_disabled"
    OAUTH_REQUIRED = "oauth_required"
    OAUTH_REVOKED = "oauth_revoked"
    """The provider refused the stored OAuth grant (``invalid_grant``: revoked, expired from inactivity, or
    ended by a password change); only signing in again restores access."""
    CONNECTION_REFUSED = "connection_refused"
    TIMEOUT = "timeout"
    TLS_MISMATCH = "tls_mismatch"
    CERTIFICATE_INVALID = "certificate_invalid"
    DNS_FAILED = "dns_failed"
    RATE_LIMITED = "rate_limited"
    TOO_MANY_CONNECTIONS = "too_many_connections"
    IP_DENIED = "ip_denied"
    UNSAFE_LOGIN = "unsafe_login"
    ACCOUNT_DISABLED = "account_disabled"
    SENDER_MISMATCH = "sender_mismatch"
    SERVER_UNAVAILABLE = "server_unavailable"
    BACKUP_SERVER_NEEDED = "backup_server_needed"
    """Internal signal (NetEase ``ERR.LOGIN.DOMAINNOTEXIST``): retry on the catalog's backup pair."""
    POP3_UNSUPPORTED = "pop3_unsupported"
    WRONG_PORT = "wrong_port"
    """The port answers with another protocol's greeting (an SMTP banner on the IMAP port, or the reverse)."""
    HOST_NOT_ALLOWED = "host_not_allowed"
    """The server name resolves to a private, loopback, link-local or metadata address (refused before
    connecting, unless the operator allowlists it)."""
    UIDVALIDITY_UNSTABLE = "uidvalidity_unstable"
    """Sync only: the server changed a folder's UIDVALIDITY (RFC 3501 2.3.1.1) many times in a row, so its
    message numbers cannot be trusted; re-reading the folder is held and retried later."""
    CREDENTIAL_EXPIRED = "credential_expired"
    """The password / authorization code was right but has expired (IMAP response code ``EXPIRED``, RFC 5530
    §3; "Password expired" replies; NetEase Enterprise authorization passwords carry an expiry date)."""
    CREDENTIAL_MISMATCH = "credential_mismatch"
    """Sync only: the sealed password does not open for the servers and login sync was told to use (settings that
    binding did not verify, or a credential key this worker lacks); nothing is sent to the server."""
    # -- send time (SMTP submission of a message: MAIL, RCPT, DATA; see explain_send)
    RECIPIENT_UNKNOWN = "recipient_unknown"
    MESSAGE_TOO_LARGE = "message_too_large"
    TOO_MANY_RECIPIENTS = "too_many_recipients"
    CONTENT_REJECTED_SPAM = "content_rejected_spam"
    DAILY_QUOTA_REACHED = "daily_quota_reached"
    SENDER_NOT_ALLOWED = "sender_not_allowed"
    IP_BLOCKED = "ip_blocked"
    UNKNOWN_OUTCOME = "unknown_outcome"
    """No reply after the message data was sent: accepted or not cannot be known (RFC 1047)."""
    SENDING_PAUSED = "sending_paused"
    """Send's bounce-rate guard holds campaign mail of the mailbox back (replies still go)."""
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class CodeInfo:
    """Fixed facts about one code: default wording, whether retrying later can help, the sync state."""

    message: Text
    fix: Text
    retryable: bool
    sync_state: SyncState


def _t(en: str, zh: str) -> Text:
    return Text(en=en, zh=zh)


CODES: dict[ErrorCode, CodeInfo] = {
    ErrorCode.AUTH_FAILED: CodeInfo(
        _t("The server rejected the username or password.", "服务器拒绝了用户名或密码。"),
        _t(
            "Check the address and use the app password / authorization code made in the mailbox's settings, "
            "not the login password, then verify again.",
            "请检查邮箱地址，并使用在邮箱设置中生成的应用专用密码/授权码（不是登录密码），然后重新验证。",
        ),
        False,
        "auth_failed",
    ),
    ErrorCode.APP_PASSWORD_REQUIRED: CodeInfo(
        _t(
            "The login password was refused: this mailbox requires an app password or authorization code.",
            "登录密码被拒绝：该邮箱要求使用应用专用密码或授权码。",
        ),
        _t(
            "Generate an app password / authorization code in the mailbox's security settings and enter it "
            "instead of the login password.",
            "请在邮箱安全设置中生成应用专用密码/授权码，用它代替登录密码。",
        ),
        False,
        "auth_failed",
    ),
    ErrorCode.PROTOCOL_DISABLED: CodeInfo(
        _t("IMAP/SMTP access is not enabled for this mailbox.", "该邮箱未开启 IMAP/SMTP 服务。"),
        _t(
            "Enable third-party client access (IMAP/SMTP) in the mailbox settings, or ask the mail admin to "
            "enable it, then verify again.",
            "请在邮箱设置中开启第三方客户端（IMAP/SMTP）服务，或请邮箱管理员开启，然后重新验证。",
        ),
        False,
        "auth_failed",
    ),
    ErrorCode.OAUTH_REQUIRED: CodeInfo(
        _t(
            "This mailbox accepts only the provider's own sign-in (OAuth2): passwords and app passwords are "
            "refused.",
            "该邮箱只接受服务商自己的授权登录（OAuth2），密码和应用专用密码均被拒绝。",
        ),
        _t(
            'Bind it with "Sign in with Microsoft" (Outlook.com, Hotmail, Live, Microsoft 365) or "Sign in '
            'with Google" (Gmail, Google Workspace) instead of a password: `laifaxin-mail mailbox add` opens the '
            "sign-in for you.",
            "请改用“使用微软账号登录”（Outlook.com、Hotmail、Live、Microsoft 365）或“使用 Google 账号登录”"
            "（Gmail、Google Workspace）绑定，而不是输入密码：`laifaxin-mail mailbox add` 会为你打开登录页面。",
        ),
        False,
        "auth_failed",
    ),
    ErrorCode.OAUTH_REVOKED: CodeInfo(
        _t(
            "The provider no longer accepts Laifaxin's access to this mailbox: the sign-in was revoked, expired "
            "after long disuse, or ended by a password change.",
            "服务商已不再接受来发信对该邮箱的访问授权：授权已被撤销、因长期未使用而过期，或因修改密码而失效。",
        ),
        _t(
            "Sign in again with Microsoft or Google for this mailbox (mailbox list → sign in again, or "
            "`laifaxin-mail mailbox add` with the same address); sync resumes right after.",
            "请为该邮箱重新使用微软或 Google 账号登录授权（邮箱列表 → 重新登录，或用同一地址运行 "
            "`laifaxin-mail mailbox add`），之后同步会立即恢复。",
        ),
        False,
        "auth_failed",
    ),
    ErrorCode.CONNECTION_REFUSED: CodeInfo(
        _t("The server refused the connection.", "服务器拒绝了连接。"),
        _t(
            "Check the server address and port against the provider's settings (IMAP 993, SMTP 465 or 587).",
            "请对照服务商的参数检查服务器地址和端口（IMAP 993，SMTP 465 或 587）。",
        ),
        True,
        "unreachable",
    ),
    ErrorCode.TIMEOUT: CodeInfo(
        _t("The server did not answer in time.", "连接服务器超时。"),
        _t(
            "A firewall or VPN may be blocking the mail ports (993/465/587): turn off the VPN, ask IT to open "
            "the ports, or try another network.",
            "防火墙或 VPN 可能拦截了邮件端口（993/465/587）：请关闭 VPN、让 IT 开放端口或更换网络。",
        ),
        True,
        "unreachable",
    ),
    ErrorCode.TLS_MISMATCH: CodeInfo(
        _t(
            "The TLS handshake failed: the encryption setting does not match the port.",
            "SSL/TLS 握手失败：加密方式与端口不匹配。",
        ),
        _t(
            "Use SSL on ports 993 and 465, and STARTTLS on ports 143 and 587.",
            "端口 993 和 465 请选 SSL，端口 143 和 587 请选 STARTTLS。",
        ),
        False,
        "tls_error",
    ),
    ErrorCode.CERTIFICATE_INVALID: CodeInfo(
        _t(
            "The server's TLS certificate is not valid for this host name or not trusted.",
            "服务器的 TLS 证书与主机名不符或不受信任。",
        ),
        _t(
            "Use the provider's official server name (not an IP address or an alias); if it is your company's "
            "server, ask IT to install a valid certificate.",
            "请使用服务商官方的服务器地址（不要用 IP 或别名）；若是公司自建服务器，请让 IT 安装有效证书。",
        ),
        False,
        "tls_error",
    ),
    ErrorCode.DNS_FAILED: CodeInfo(
        _t("The server name could not be resolved.", "无法解析服务器地址（DNS 解析失败）。"),
        _t(
            "Check the server address for typos; copy it from the provider's help page rather than typing it.",
            "请检查服务器地址是否拼写错误，建议从服务商帮助文档复制而不是手动输入。",
        ),
        True,
        "unreachable",
    ),
    ErrorCode.RATE_LIMITED: CodeInfo(
        _t(
            "The provider is throttling logins from this account or address.",
            "服务商正在限制该账号或 IP 的登录频率。",
        ),
        _t(
            "Wait before retrying (at least 15 minutes) and keep the sync interval at 5-10 minutes; repeated "
            "attempts extend the block.",
            "请稍候再试（至少 15 分钟），并把同步间隔设为 5-10 分钟；频繁重试会延长限制时间。",
        ),
        True,
        "throttled",
    ),
    ErrorCode.TOO_MANY_CONNECTIONS: CodeInfo(
        _t(
            "Too many simultaneous connections to this mailbox; this is not a wrong password.",
            "该邮箱同时连接数过多；这不是密码错误。",
        ),
        _t(
            "Close other mail clients or devices using this mailbox, or wait a few minutes, and keep the sync "
            "interval at 5-10 minutes.",
            "请关闭使用该邮箱的其他客户端或设备，或等待几分钟，并将同步间隔设为 5-10 分钟。",
        ),
        True,
        "throttled",
    ),
    ErrorCode.IP_DENIED: CodeInfo(
        _t(
            "The mail admin's IP login restriction blocks our servers; this is not a wrong password.",
            "邮箱管理员设置的 IP 登录限制拦截了我们的服务器；这不是密码错误。",
        ),
        _t(
            "Ask the mail admin to lift the IP / region login restriction (allow all regions), then verify again.",
            "请联系邮箱管理员解除 IP/地区登录限制（允许所有地区），然后重新验证。",
        ),
        False,
        "auth_failed",
    ),
    ErrorCode.UNSAFE_LOGIN: CodeInfo(
        _t("The provider blocked this sign-in as unsafe.", "服务商认为本次登录不安全并拦截了它。"),
        _t(
            "Sign in to the web mail once from your usual device, confirm the security prompt, then verify again.",
            "请在常用设备上登录一次网页版邮箱并确认安全提示，然后重新验证。",
        ),
        True,
        "auth_failed",
    ),
    ErrorCode.CREDENTIAL_EXPIRED: CodeInfo(
        _t(
            "The password or authorization code has expired: the server no longer accepts it "
            "(mail apps show this as repeated password prompts).",
            "密码或授权码已过期，服务器不再接受（邮件客户端表现为反复提示输入密码）。",
        ),
        _t(
            "Generate a new authorization password / app password in the mailbox's settings (NetEase Enterprise: "
            "Settings → Client Authorization Password, note its expiration date), then update it in Laifaxin "
            "(mailbox edit → password) and verify and save.",
            "请在邮箱设置中生成新的授权密码/应用专用密码（网易企业邮箱：设置 → 客户端授权密码，并记下有效期），"
            "然后在来发信中修改该邮箱的密码并点击“验证并保存”。",
        ),
        False,
        "auth_failed",
    ),
    ErrorCode.ACCOUNT_DISABLED: CodeInfo(
        _t("The mailbox account is disabled, suspended or expired.", "该邮箱账号已被停用、冻结或已过期。"),
        _t(
            "Sign in to the web mail to see why, or ask the mail admin to re-enable the account.",
            "请登录网页版邮箱查看原因，或请邮箱管理员恢复该账号。",
        ),
        False,
        "auth_failed",
    ),
    ErrorCode.SENDER_MISMATCH: CodeInfo(
        _t(
            "The SMTP server only sends mail from the address you logged in with.",
            "SMTP 服务器只允许使用登录账号作为发件人。",
        ),
        _t(
            "Send from the bound address itself (not an alias or another address).",
            "请使用绑定的邮箱地址本身作为发件人（不要用别名或其他地址）。",
        ),
        False,
        "error",
    ),
    ErrorCode.SERVER_UNAVAILABLE: CodeInfo(
        _t("The mail server is temporarily unavailable.", "邮件服务器暂时不可用。"),
        _t("Try again in a few minutes.", "请几分钟后重试。"),
        True,
        "unreachable",
    ),
    ErrorCode.BACKUP_SERVER_NEEDED: CodeInfo(
        _t(
            "This server group does not serve your domain; the backup servers must be used.",
            "当前服务器组不服务你的域名，需要改用备用服务器。",
        ),
        _t(
            "Switch to the provider's backup servers and verify again.",
            "请改用服务商的备用服务器后重新验证。",
        ),
        True,
        "unreachable",
    ),
    ErrorCode.POP3_UNSUPPORTED: CodeInfo(
        _t(
            "POP3 is not supported; Laifaxin receives mail over IMAP only.",
            "不支持 POP3，来发信只通过 IMAP 收信。",
        ),
        _t(
            "Choose IMAP (port 993, SSL) for receiving and SMTP for sending.",
            "收信请选择 IMAP（端口 993，SSL），发信选择 SMTP。",
        ),
        False,
        "error",
    ),
    ErrorCode.WRONG_PORT: CodeInfo(
        _t(
            "The server on this port speaks another protocol (for example SMTP on the IMAP port).",
            "该端口上运行的是其他协议的服务（例如在 IMAP 端口上的是 SMTP 服务）。",
        ),
        _t(
            "Check the port: IMAP uses 993 (SSL) or 143 (STARTTLS), SMTP uses 465 (SSL) or 587 (STARTTLS).",
            "请检查端口：IMAP 使用 993（SSL）或 143（STARTTLS），SMTP 使用 465（SSL）或 587（STARTTLS）。",
        ),
        False,
        "unreachable",
    ),
    ErrorCode.HOST_NOT_ALLOWED: CodeInfo(
        _t(
            "The server address points to a private or internal network address, which is not allowed.",
            "服务器地址指向私有或内部网络地址，不允许使用。",
        ),
        _t(
            "Use the provider's public server name; if the server is inside your company network, ask the "
            "platform operator to allowlist it.",
            "请使用服务商的公网服务器地址；若服务器位于公司内网，请联系平台运维将其加入白名单。",
        ),
        False,
        "error",
    ),
    ErrorCode.UIDVALIDITY_UNSTABLE: CodeInfo(
        _t(
            "The mail server keeps renumbering a folder (its UIDVALIDITY changes at every visit), so new mail "
            "cannot be told apart from old; syncing that folder is paused and retried later.",
            "邮件服务器反复重新编号某个文件夹（每次访问 UIDVALIDITY 都会变化），无法区分新旧邮件；"
            "该文件夹的同步已暂停，稍后会自动重试。",
        ),
        _t(
            "No action is needed if it stops by itself; if it goes on, ask the mail provider or your IT "
            "department to check the server's mail storage (index files being rebuilt on every login).",
            "若自行恢复则无需处理；若持续出现，请联系邮箱服务商或公司 IT 检查服务器的邮件存储"
            "（每次登录都在重建索引文件）。",
        ),
        True,
        "error",
    ),
    ErrorCode.CREDENTIAL_MISMATCH: CodeInfo(
        _t(
            "The saved password could not be opened for this mailbox's current servers and login, so sync did "
            "not connect: the settings sync received are not the ones the password was verified with (or it "
            "was sealed with a key this worker does not have).",
            "保存的密码无法用于该邮箱当前的服务器和登录名，因此同步没有连接：同步收到的设置不是验证密码时使用的设置"
            "（或密码由本节点没有的密钥加密）。",
        ),
        _t(
            "Verify the mailbox again (or edit and save its settings) so the password is sealed for the current "
            "servers. If it happens again without anyone changing the mailbox, tell your administrator: a "
            "mailbox event may have been altered, or the credential keys differ between services.",
            "请重新验证该邮箱（或编辑并保存其设置），使密码按当前服务器重新加密。如果无人修改邮箱却再次出现，"
            "请通知管理员：邮箱事件可能被篡改，或各服务的凭据密钥不一致。",
        ),
        False,
        "error",
    ),
    ErrorCode.RECIPIENT_UNKNOWN: CodeInfo(
        _t(
            "The recipient's address does not exist or does not accept mail.",
            "收件人地址不存在或不接收邮件。",
        ),
        _t(
            "Check the address for typos; remove it from the campaign list (sending again hurts the mailbox's "
            "reputation).",
            "请检查地址是否拼写错误；并将其移出群发名单（重复发送会损害邮箱信誉）。",
        ),
        False,
        "error",
    ),
    ErrorCode.MESSAGE_TOO_LARGE: CodeInfo(
        _t("The message is larger than the server accepts.", "邮件大小超过了服务器的限制。"),
        _t(
            "Send large files as a download link instead of an attachment, or compress them.",
            "请把大文件改为下载链接而不是附件，或先压缩。",
        ),
        False,
        "error",
    ),
    ErrorCode.TOO_MANY_RECIPIENTS: CodeInfo(
        _t(
            "The message has more recipients than the server accepts at once.",
            "单封邮件的收件人数超过服务器限制。",
        ),
        _t(
            "Send one message per recipient (campaigns do), or split the recipients into smaller groups.",
            "请一封邮件只发一个收件人（群发即如此），或把收件人拆分成更小的组。",
        ),
        False,
        "error",
    ),
    ErrorCode.CONTENT_REJECTED_SPAM: CodeInfo(
        _t("The server refused the message's content as spam.", "服务器判定邮件内容为垃圾邮件并拒收。"),
        _t(
            "Do not send the same content again: change the subject and text (fewer links, no URL shorteners, "
            "no all-image mail), and send more slowly from this mailbox.",
            "请勿重复发送相同内容：修改主题和正文（减少链接、不用短链接、不要整封图片），并降低该邮箱的发送频率。",
        ),
        False,
        "error",
    ),
    ErrorCode.DAILY_QUOTA_REACHED: CodeInfo(
        _t(
            "The provider's daily sending limit for this mailbox is reached.",
            "该邮箱已达到服务商的每日发信上限。",
        ),
        _t(
            "Sending resumes in the next day's window; spread campaigns over more days or more mailboxes.",
            "将在次日的发送窗口恢复发送；请把群发分散到更多天或更多邮箱。",
        ),
        True,
        "throttled",
    ),
    ErrorCode.SENDER_NOT_ALLOWED: CodeInfo(
        _t(
            "The provider does not let this mailbox send this message (SMTP not enabled, From not the login, "
            "or sending blocked on the account).",
            "服务商不允许该邮箱发送此邮件（未开启 SMTP、发件人与登录账号不一致，或账号发信被限制）。",
        ),
        _t(
            "Sign in to the web mail: enable SMTP, send from the bound address itself, and clear any security "
            "check or block the provider shows; then send again.",
            "请登录网页版邮箱：开启 SMTP 服务、使用绑定的邮箱地址作为发件人，并处理服务商提示的安全验证或发信限制，然后重新发送。",
        ),
        False,
        "error",
    ),
    ErrorCode.IP_BLOCKED: CodeInfo(
        _t(
            "The provider is refusing mail from our sending servers' address.",
            "服务商暂时拒收来自我们发信服务器地址的邮件。",
        ),
        _t(
            "Nothing to change in the mailbox: sending is retried later; contact support if it persists.",
            "无需修改邮箱设置：系统稍后会重试；若持续出现，请联系客服。",
        ),
        True,
        "throttled",
    ),
    ErrorCode.UNKNOWN_OUTCOME: CodeInfo(
        _t(
            "The connection broke after the message was handed over; whether it was accepted is unknown.",
            "邮件内容发出后连接中断，无法确定服务器是否已接收。",
        ),
        _t(
            "Check the mailbox's Sent folder or ask the recipient; it is not resent automatically, to avoid a "
            "duplicate.",
            "请查看该邮箱的已发送文件夹或询问收件人；为避免重复发送，系统不会自动重发。",
        ),
        False,
        "error",
    ),
    ErrorCode.SENDING_PAUSED: CodeInfo(
        _t(
            "Campaign sending from this mailbox is paused: too many of its recent messages bounced (over 3% in "
            "7 days). Replies still go.",
            "该邮箱的群发已暂停：近 7 天退信率超过 3%。回复邮件仍可正常发送。",
        ),
        _t(
            "Clean the recipient list (remove the addresses that bounced), then resume sending; it also resumes "
            "by itself once the bounce rate falls.",
            "请清理收件人名单（删除退信地址），然后恢复发送；退信率回落后也会自动恢复。",
        ),
        True,
        "error",
    ),
    ErrorCode.UNKNOWN: CodeInfo(
        _t("The server returned an error we do not recognise.", "服务器返回了无法识别的错误。"),
        _t(
            "Check the server's message below; if it does not help, send it to support with a screenshot.",
            "请查看下方服务器原文；若仍无法解决，请截图发给客服。",
        ),
        False,
        "error",
    ),
}


@dataclass(frozen=True, slots=True)
class MailError:
    """One classified failure: what happened and how to fix it, in English and Chinese.

    ``server_text`` is the server's reply (redacted, at most :data:`MAX_SERVER_TEXT` characters); ``rule`` names
    the classification rule that matched (for support and tests); ``suggestion`` is a corrected host name for
    ``dns_failed`` typos; ``backup_servers`` lists ``host:port`` pairs to retry for ``backup_server_needed``.
    """

    code: ErrorCode
    message: Text
    fix: Text
    protocol: Protocol | None = None
    provider_id: str | None = None
    server_text: str | None = None
    rule: str | None = None
    suggestion: str | None = None
    backup_servers: tuple[str, ...] = ()
    retryable: bool = False
    sync_state: SyncState = "error"

    def sync_status_fields(self) -> dict[str, str]:
        """The ``mailbox.sync_status`` fields this error fills (:class:`~laifaxin_shared.events.mailbox.
        MailboxSyncStatus`): ``state``, ``error_code``, ``message``, ``fix``, ``message_zh``, ``fix_zh``, each
        text cut to the event's 2000-character cap, and ``server_text`` (already redacted) when there is one."""
        extra = {"server_text": self.server_text[:MAX_SERVER_TEXT]} if self.server_text else {}
        return {
            **extra,
            "state": self.sync_state,
            "error_code": self.code.value,
            "message": self.message.en[:2000],
            "fix": self.fix.en[:2000],
            "message_zh": self.message.zh[:2000],
            "fix_zh": self.fix.zh[:2000],
        }

    def to_dict(self) -> dict[str, object]:
        """JSON-ready view: ``code``, ``message``, ``fix``, ``message_zh``, ``fix_zh`` and the optional fields."""
        data: dict[str, object] = {
            "code": self.code.value,
            "message": self.message.en,
            "fix": self.fix.en,
            "message_zh": self.message.zh,
            "fix_zh": self.fix.zh,
            "protocol": self.protocol,
            "provider": self.provider_id,
            "retryable": self.retryable,
            "sync_state": self.sync_state,
            "rule": self.rule,
        }
        if self.server_text is not None:
            data["server_text"] = self.server_text
        if self.suggestion is not None:
            data["suggestion"] = self.suggestion
        if self.backup_servers:
            data["backup_servers"] = list(self.backup_servers)
        return data


class MailServerError(Exception):
    """A failure with its :class:`MailError`; ``str()`` is ``"<code>: <message> (server: <text>)"``.

    The constructor takes a code plus optional details (``secrets`` are redacted from ``server_text``), or a
    ready :class:`MailError` via :meth:`from_error`; pass the password tried as a secret wherever server or
    exception text is involved, so it can never reach ``str()``, ``repr()``, a log line or an event.

    Raises:
        ValueError: ``code`` is not an :class:`ErrorCode` value.
    """

    def __init__(
        self,
        code: ErrorCode | str,
        *,
        protocol: Protocol | None = None,
        provider_id: str | None = None,
        server_text: str | None = None,
        secrets: Iterable[str | None] = (),
    ) -> None:
        text = redact(server_text, secrets) if server_text is not None else None
        error = make_error(ErrorCode(code), protocol=protocol, provider_id=provider_id, server_text=text)
        self.error = error
        super().__init__(self._text(error))

    @classmethod
    def from_error(cls, error: MailError) -> MailServerError:
        """Wrap an already classified :class:`MailError`."""
        exc = cls.__new__(cls)
        exc.error = error
        Exception.__init__(exc, cls._text(error))
        return exc

    @property
    def code(self) -> ErrorCode:
        """The taxonomy code."""
        return self.error.code

    @staticmethod
    def _text(error: MailError) -> str:
        text = f"{error.code.value}: {error.message.en}"
        if error.server_text:
            text += f" (server: {error.server_text})"
        return text

    def __repr__(self) -> str:
        return f"MailServerError({self.error.code.value!r}, rule={self.error.rule!r})"


# --------------------------------------------------------------------------------------------- decoding, redaction


def decode_reply(reply: str | bytes) -> str:
    """Decode a server reply: UTF-8, falling back to GBK (QQ sends Chinese SMTP replies GBK-encoded,
    providers.md §3), and finally UTF-8 with replacement characters. ``str`` input is returned unchanged."""
    if isinstance(reply, str):
        return reply
    for encoding in ("utf-8", "gbk"):
        try:
            return reply.decode(encoding)
        except UnicodeDecodeError:
            continue
    return reply.decode("utf-8", errors="replace")


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """Replace every occurrence of each secret (as typed, whitespace-stripped, base64 as in AUTH LOGIN, IMAP-quoted,
    URL-encoded) and of base64 AUTH PLAIN blobs that contain it with ``***``.

    Only the known secrets: a server's reply keeps its words (``NO LOGIN ...``), which the rules then match. The
    implementation is the platform's one redaction, :func:`laifaxin_shared.logging.mask_secrets`.
    """
    return mask_secrets(text, secrets, marker="***")


# --------------------------------------------------------------------------------------------- building errors


def _quirk_text(provider: Provider, code: QuirkCode) -> Text | None:
    for quirk in provider.quirks:
        if quirk.code is code:
            return quirk.text
    return None


def _join(base: Text, extra: Text | None) -> Text:
    if extra is None:
        return base
    return Text(en=f"{base.en} {extra.en}", zh=f"{base.zh}{extra.zh}")


def _provider_fix(code: ErrorCode, fix: Text, provider: Provider | None) -> Text:
    """Append the provider's own instructions (where to make the code, admin toggles) to the generic fix."""
    if provider is None:
        return fix
    name = provider.name
    where = provider.password.where
    label = provider.password.label
    if code in (ErrorCode.AUTH_FAILED, ErrorCode.APP_PASSWORD_REQUIRED, ErrorCode.OAUTH_REQUIRED):
        if provider.auth is AuthMethod.OAUTH2 and code is not ErrorCode.AUTH_FAILED:
            return _join(fix, Text(en=f"{name.en}: {where.en}", zh=f"{name.zh}：{where.zh}"))
        return _join(
            fix,
            Text(
                en=f"{name.en} needs its {label.en}: {where.en}.",
                zh=f"{name.zh}需要使用{label.zh}：{where.zh}。",
            ),
        )
    if code is ErrorCode.PROTOCOL_DISABLED:
        return _join(
            fix,
            _quirk_text(provider, QuirkCode.ENABLE_PROTOCOL_FIRST)
            or _quirk_text(provider, QuirkCode.ADMIN_MAY_DISABLE_IMAP),
        )
    if code is ErrorCode.IP_DENIED:
        return _join(fix, _quirk_text(provider, QuirkCode.IP_RESTRICTION))
    if code is ErrorCode.TOO_MANY_CONNECTIONS:
        return _join(fix, _quirk_text(provider, QuirkCode.MAX_CONNECTIONS))
    if code is ErrorCode.UNSAFE_LOGIN and provider.has_quirk(QuirkCode.IMAP_ID_REQUIRED):
        return _join(
            fix,
            Text(
                en=f"{name.en} also requires the IMAP ID command after login; the client must send it.",
                zh=f"{name.zh}还要求登录后发送 IMAP ID 命令，客户端必须发送。",
            ),
        )
    if code is ErrorCode.BACKUP_SERVER_NEEDED:
        return _join(fix, _quirk_text(provider, QuirkCode.BACKUP_SERVERS))
    return fix


def make_error(
    code: ErrorCode,
    *,
    protocol: Protocol | None = None,
    provider_id: str | None = None,
    server_text: str | None = None,
    rule: str | None = None,
    fix: Text | None = None,
    suggestion: str | None = None,
) -> MailError:
    """Build a :class:`MailError` for ``code`` with the default wording, the rule's own fix if given, and the
    provider's instructions appended (e.g. where 163 users make the authorization code)."""
    info = CODES[code]
    provider = find_provider(provider_id)
    if fix is None or code in (ErrorCode.AUTH_FAILED, ErrorCode.APP_PASSWORD_REQUIRED):
        full_fix = _provider_fix(code, fix or info.fix, provider)
    else:
        full_fix = fix  # a rule's own fix is already provider-specific
    backups: tuple[str, ...] = ()
    if code is ErrorCode.BACKUP_SERVER_NEEDED and provider is not None:
        protocols: tuple[Protocol, ...] = (protocol,) if protocol else ("imap", "smtp")
        backups = tuple(
            f"{server.host}:{server.port}" for p in protocols for server in provider.settings(p).backups
        )
    if suggestion is not None:
        full_fix = _join(
            full_fix, Text(en=f"Did you mean {suggestion}?", zh=f"你是不是要输入 {suggestion}？")
        )
    if server_text is not None:
        server_text = server_text.strip()[:MAX_SERVER_TEXT]
    return MailError(
        code=code,
        message=info.message,
        fix=full_fix,
        protocol=protocol,
        provider_id=provider.id if provider else provider_id,
        server_text=server_text,
        rule=rule,
        suggestion=suggestion,
        backup_servers=backups,
        retryable=info.retryable,
        sync_state=info.sync_state,
    )


# --------------------------------------------------------------------------------------------- reply rules


@dataclass(frozen=True, slots=True)
class Rule:
    """One classification rule: a regex over the decoded reply, the code, and optionally a specific fix."""

    name: str
    pattern: re.Pattern[str]
    code: ErrorCode
    protocols: frozenset[Protocol] = frozenset({"imap", "smtp"})
    fix: Text | None = None
    source: str = ""
    providers: frozenset[str] = field(default_factory=frozenset)
    """When non-empty, the rule applies only if the caller named one of these providers."""


def _rule(
    name: str,
    regex: str,
    code: ErrorCode,
    *,
    protocols: Iterable[Protocol] = ("imap", "smtp"),
    fix: tuple[str, str] | None = None,
    source: str = "",
    providers: Iterable[str] = (),
) -> Rule:
    return Rule(
        name=name,
        pattern=re.compile(regex, re.IGNORECASE | re.DOTALL),
        code=code,
        protocols=frozenset(protocols),
        fix=Text(en=fix[0], zh=fix[1]) if fix else None,
        source=source,
        providers=frozenset(providers),
    )


E = ErrorCode

# Ordered: throttling and connection limits first (never "wrong password"), then provider-specific strings,
# then IMAP response codes (RFC 5530), then bare SMTP reply codes. First match wins.
RULES: tuple[Rule, ...] = (
    # -- QQ's catch-all names throttling among other causes; match it before the throttling rules
    _rule(
        "qq_account_abnormal",
        r"Account is abnormal, service is not open",
        E.AUTH_FAILED,
        fix=(
            "QQ gives one answer for several causes: check that the IMAP/SMTP service is on, regenerate the "
            "authorization code and enter it, and if you retried many times, wait 15 minutes first.",
            "QQ 对多种原因返回同一提示：请确认已开启 IMAP/SMTP 服务，重新生成并填写授权码；"
            "若已多次重试，请先等待 15 分钟。",
        ),
        source="providers.md §3 (many 2025-26 public hits)",
    ),
    # -- connection limits and throttling (providers.md §3, §5.5)
    _rule(
        "too_many_connections",
        r"too many (simultaneous|concurrent) connections|concurrent connections limit exceeded|"
        r"maximum number of connections|too many connections",
        E.TOO_MANY_CONNECTIONS,
        source="Gmail IMAP (wildduck#35, MailKit#377); O365 SMTP 432 4.3.2 (fastapi-mail#75)",
    ),
    _rule(
        "netease_verifycode",
        r"ERR\.REQ\.VERIFYCODE",
        E.RATE_LIMITED,
        fix=(
            "Too many wrong passwords: sign in to the web mail once to pass the verification code, wait "
            "15 minutes, then check the authorization password.",
            "密码错误次数过多：请先登录一次网页版完成验证码校验，等待 15 分钟后再检查授权密码。",
        ),
        source="NetEase error-code map (providers.md §3)",
    ),
    _rule(
        "yahoo_auth005",
        r"#AUTH005|too many bad auth attempts",
        E.RATE_LIMITED,
        fix=(
            "Yahoo locked logins after too many failures, usually because the normal password was used: wait, "
            "then use a Yahoo app password.",
            "多次失败后雅虎暂时锁定了登录（通常是用了普通密码）：请等待后改用雅虎应用密码。",
        ),
        source="PHPMailer#2034; FE FAQ",
    ),
    _rule(
        "too_many_logins",
        r"too many login attempts|login frequency limited|rate limit",
        E.RATE_LIMITED,
        source="Gmail SMTP gsmtp (GmailAuthSMTP#12)",
    ),
    _rule(
        "netease_spam",
        r"DT:SPM",
        E.RATE_LIMITED,
        fix=(
            "NetEase flagged the traffic as spam or saw too many attempts: wait before retrying and do not "
            "use this mailbox for bulk sending.",
            "网易判定为垃圾邮件或尝试次数过多：请稍后再试，且不要用该邮箱群发。",
        ),
        source="jumpserver#644",
    ),
    # -- an expired password / authorization code, said in words (before the generic "authentication failed"
    #    and the RFC 5530 codes, so "NO [AUTHENTICATIONFAILED] Password expired" is not "wrong password")
    _rule(
        "password_expired",
        r"\b(password|passphrase|passcode|authori[sz]ation code)\s+(has\s+|is\s+)?expired|"
        r"(密码|授权码|授权密码|客户端授权密码)(已)?过期",
        E.CREDENTIAL_EXPIRED,
        source="RFC 5530 §3 EXPIRED; Dovecot/Exchange 'Password expired'; NetEase help page (授权密码有效期)",
    ),
    # -- NetEase Enterprise error codes (NetEase error-code map; LF 204)
    _rule(
        "netease_ipdeny",
        r"ERR\.LOGIN\.IPDENY",
        E.IP_DENIED,
        fix=(
            "The admin must lift the IP login restriction: qiye.163.com/admin → Security & Audit → Secure "
            "Login → Login Restriction → set the restricted region to All Provinces/Cities.",
            "需由管理员解除 IP 登录限制：qiye.163.com/admin → 安全与审计 → 安全登录 → 登录限制 → "
            "将限制登录地区改为“全部省市”。",
        ),
        source="LF 204; product page 204 §4",
    ),
    _rule(
        "netease_domainnotexist",
        r"ERR\.LOGIN\.DOMAINNOTEXIST",
        E.BACKUP_SERVER_NEEDED,
        fix=(
            "This server group does not know the domain: switch to the backup servers imap.qiye.163.com / "
            "smtp.qiye.163.com. If that also fails, the domain has no NetEase enterprise mailbox.",
            "当前服务器组不认识该域名：请改用备用服务器 imap.qiye.163.com / smtp.qiye.163.com；"
            "若仍失败，说明该域名未开通网易企业邮箱。",
        ),
        source="NetEase error-code map; LF 204; product page 204",
    ),
    _rule(
        "netease_reqcode",
        r"ERR\.LOGIN\.REQCODE",
        E.APP_PASSWORD_REQUIRED,
        source="NetEase error-code map (客户端授权码错误)",
    ),
    _rule("netease_passerr", r"ERR\.LOGIN\.PASSERR", E.AUTH_FAILED, source="NetEase error-code map"),
    _rule(
        "netease_userstatus",
        r"ERR\.LOGIN\.(USERSTATUS|USEREXP|DOMAINEXPED)",
        E.ACCOUNT_DISABLED,
        source="NetEase error-code map",
    ),
    _rule(
        "netease_email_format",
        r"email format login fail",
        E.AUTH_FAILED,
        fix=(
            "Log in with the full email address (name@company.com) as the username.",
            "用户名必须填写完整邮箱地址（name@company.com）。",
        ),
        source="NetEase qiye SMTP (public code)",
    ),
    # -- NetEase personal
    _rule(
        "netease_unsafe_login",
        r"Unsafe Login",
        E.UNSAFE_LOGIN,
        protocols=("imap",),
        fix=(
            "NetEase accepted the login but refused SELECT because the client did not identify itself: the "
            "client must send the IMAP ID command after login (Laifaxin does). If it persists, sign in to "
            "the web mail and check the security notices.",
            "网易接受了登录，但因客户端未表明身份而拒绝 SELECT：客户端须在登录后发送 IMAP ID 命令"
            "（来发信会发送）。若仍出现，请登录网页版查看安全提醒。",
        ),
        source="offlineimap3#71; himalaya#651",
    ),
    _rule(
        "netease_no_permission",
        r"\b550\b.*User has no permission",
        E.PROTOCOL_DISABLED,
        protocols=("smtp",),
        source="open-falcon/mail-provider#6",
    ),
    _rule(
        "user_suspended",
        r"user suspended|account (is )?(suspended|disabled|locked|frozen|blocked)|"
        r"account has been (suspended|disabled|locked)",
        E.ACCOUNT_DISABLED,
        source="163 'Login error user suspended' (providers.md §3: not found in public sources)",
    ),
    # -- Microsoft (Outlook.com / Microsoft 365); providers.md §3, §4
    _rule(
        "ms_smtp_auth_disabled_tenant",
        r"SmtpClientAuthentication is disabled",
        E.PROTOCOL_DISABLED,
        protocols=("smtp",),
        fix=(
            "SMTP AUTH is turned off for the tenant or this mailbox: the Microsoft 365 admin must enable "
            "Authenticated SMTP (https://aka.ms/smtp_auth_disabled).",
            "租户或该邮箱关闭了 SMTP AUTH：需由 Microsoft 365 管理员开启“经过身份验证的 SMTP”"
            "（https://aka.ms/smtp_auth_disabled）。",
        ),
        source="email-oauth2-proxy#193",
    ),
    _rule(
        "ms_basic_auth_disabled",
        r"basic authentication is (disabled|not supported)",
        E.OAUTH_REQUIRED,
        source="uxc#445; nodemailer#1714; techcommunity 4114750",
    ),
    _rule(
        "ms_token_expired",
        r"Command Error\. 10\b",
        E.OAUTH_REQUIRED,
        source="FE FAQ (errors)",
    ),
    _rule(
        "ms_authenticated_not_connected",
        r"User is authenticated but not connected",
        E.PROTOCOL_DISABLED,
        protocols=("imap",),
        fix=(
            "Turn on 'Let devices and apps use IMAP' in Outlook settings → Mail → Forwarding and IMAP; also "
            "try without a VPN and close other clients.",
            "请在 Outlook 设置 → 邮件 → 转发和 IMAP 中开启“允许设备和应用使用 IMAP”；并尝试关闭 VPN、"
            "关闭其他客户端。",
        ),
        source="FE FAQ §139",
    ),
    _rule(
        "exchange_login_failed",
        r"LOGIN failed\..*Microsoft Exchange|Microsoft Exchange.*LOGIN failed\.",
        E.OAUTH_REQUIRED,
        protocols=("imap",),
        fix=(
            "Microsoft's IMAP refuses password logins (basic auth is off) and Laifaxin binds with passwords "
            "only: forward the mail (Outlook: Settings → Mail → Forwarding) to a mailbox bound to Laifaxin. "
            "If this is a company Exchange server, check that IMAP is enabled for the mailbox and the password.",
            "微软 IMAP 已拒绝密码登录（基本认证已关闭），而来发信仅支持密码绑定：请开启自动转发（Outlook："
            "设置 → 邮件 → 转发）到已绑定来发信的邮箱。若是公司 Exchange 服务器，请确认该邮箱已开启 IMAP 且密码正确。",
        ),
        source="imapclient#602",
    ),
    # -- Google (providers.md §3)
    _rule(
        "google_app_password_required",
        r"Application-specific password required|InvalidSecondFactor",
        E.APP_PASSWORD_REQUIRED,
        source="mutt-wizard#831; openmail#1",
    ),
    _rule(
        "google_web_login",
        r"Please log in via your web (browser|login)|WebLoginRequired",
        E.UNSAFE_LOGIN,
        fix=(
            "Google blocked the sign-in after a risk check (e.g. VPN): sign in at mail.google.com from your "
            "usual device and confirm it was you, then use an app password.",
            "Google 风控拦截了本次登录（如使用 VPN）：请在常用设备上登录 mail.google.com 并确认是本人操作，"
            "然后使用应用专用密码。",
        ),
        source="robotframework-imaplibrary#23",
    ),
    _rule(
        "google_imap_not_allowed",
        r"IMAP access is not allowed for this account",
        E.PROTOCOL_DISABLED,
        fix=(
            "This Google account (e.g. a Family Link child account) may not use IMAP: bind another account.",
            "该 Google 账号（如 Family Link 儿童账号）不允许使用 IMAP：请绑定其他账号。",
        ),
        source="FE FAQ §6",
    ),
    _rule(
        "google_imap_disabled_domain",
        r"IMAP access is disabled for your domain",
        E.PROTOCOL_DISABLED,
        fix=(
            "The Google Workspace admin disabled IMAP for the domain: ask the admin to enable IMAP access.",
            "Google Workspace 管理员为该域关闭了 IMAP：请联系管理员开启 IMAP 访问。",
        ),
        source="NY inbox/auth/gmail.py",
    ),
    _rule(
        "google_not_enabled_for_imap",
        r"not enabled for IMAP use",
        E.PROTOCOL_DISABLED,
        fix=(
            "IMAP is off for this account. Consumer Gmail has no IMAP switch since 2025-01, so this is most "
            "likely a Google Workspace policy: ask the admin to allow IMAP.",
            "该账号未开启 IMAP。个人 Gmail 自 2025-01 起已无 IMAP 开关，多半是 Google Workspace 策略所致："
            "请联系管理员允许 IMAP。",
        ),
        source="GE js/imap/client.js",
    ),
    # -- Tencent QQ / Exmail (providers.md §3)
    _rule(
        "qq_open_smtp_flag",
        r"open smtp flag",
        E.PROTOCOL_DISABLED,
        protocols=("smtp",),
        source="suifengcool/graduation-project mailer comment",
    ),
    _rule(
        "qq_sender_mismatch",
        r"mail from address must be same as authorization user",
        E.SENDER_MISMATCH,
        protocols=("smtp",),
        source="suifengcool/graduation-project mailer comment",
    ),
    _rule(
        "exmail_weixin_token",
        r"using weixin token",
        E.APP_PASSWORD_REQUIRED,
        fix=(
            "Exmail requires secure login: turn on Secure login in Settings → Account and generate a "
            "client-specific password; use it instead of the login password.",
            "腾讯企业邮箱要求安全登录：请在 设置 → 账户 中开启安全登录并生成客户端专用密码，用它代替登录密码。",
        ),
        source="NY generic.py",
    ),
    _rule(
        "qq_authorization_code",
        r"authori[sz]ation code|authorized code|请使用授权码",
        E.APP_PASSWORD_REQUIRED,
        fix=(
            "Log in with a QQ Mail authorization code, not the QQ password: enable the IMAP/SMTP service and "
            "generate a code (a code generated for POP3 only does not work on IMAP).",
            "请用 QQ 邮箱授权码登录，而不是 QQ 密码：开启 IMAP/SMTP 服务并生成授权码"
            "（仅为 POP3 生成的授权码不能用于 IMAP）。",
        ),
        source="uptime-kuma#3434; qqbot#221; qqbot#139",
    ),
    # -- generic IMAP response codes (RFC 5530) and common texts
    _rule(
        "imap_unavailable", r"\[UNAVAILABLE\]", E.SERVER_UNAVAILABLE, protocols=("imap",), source="RFC 5530"
    ),
    _rule(
        "imap_privacyrequired",
        r"\[PRIVACYREQUIRED\]|LOGINDISABLED",
        E.TLS_MISMATCH,
        protocols=("imap",),
        source="RFC 5530; RFC 3501 §6.2.3",
    ),
    _rule("imap_limit", r"\[LIMIT\]", E.RATE_LIMITED, protocols=("imap",), source="RFC 5530"),
    _rule(
        "imap_contactadmin", r"\[CONTACTADMIN\]", E.ACCOUNT_DISABLED, protocols=("imap",), source="RFC 5530"
    ),
    _rule(
        "imap_expired",
        r"\[EXPIRED\]",
        E.CREDENTIAL_EXPIRED,
        protocols=("imap",),
        source="RFC 5530 §3 EXPIRED (example: 'b NO [EXPIRED] That password isn't valid any more')",
    ),
    _rule(
        "imap_authenticationfailed",
        r"\[(AUTHENTICATIONFAILED|AUTHORIZATIONFAILED)\]",
        E.AUTH_FAILED,
        protocols=("imap",),
        source="RFC 5530; Gmail, Yahoo, iCloud replies (providers.md §3)",
    ),
    # 534 means the mechanism/password kind is too weak (app password needed), whatever text follows
    _rule(
        "smtp_534",
        r"^\s*534\b",
        E.APP_PASSWORD_REQUIRED,
        protocols=("smtp",),
        source="RFC 4954 534 (mechanism too weak); product page error table: 534 = 2FA on, regular password",
    ),
    _rule(
        "login_error_password_error",
        r"login error or password error|LOGIN auth error|invalid credentials|"
        r"incorrect username or password|username and password not accepted|authentication failed|"
        r"authentication unsuccessful|login fail",
        E.AUTH_FAILED,
        source="163 (modern-email/defects#25), Sina, Yahoo, Gmail, O365, QQ replies (providers.md §3)",
    ),
    _rule(
        "exchange_login_failed_plain",
        r"\bLOGIN failed\b",
        E.AUTH_FAILED,
        protocols=("imap",),
        source="imapclient#602",
    ),
    _rule(
        "login_disabled_text",
        r"\blogin disabled\b|\b(IMAP|SMTP) (access|service) is (disabled|not enabled|not open)\b",
        E.PROTOCOL_DISABLED,
        source="product page email-account error table (Login disabled)",
    ),
    # -- client-side error texts that support staff paste (product page email-account error table)
    _rule(
        "text_certificate",
        r"CERTIFICATE_VERIFY_FAILED|certificate verify failed|self[- ]signed certificate|"
        r"hostname mismatch|certificate has expired",
        E.CERTIFICATE_INVALID,
        source="OpenSSL/Python ssl error texts",
    ),
    _rule(
        "text_tls",
        r"WRONG_VERSION_NUMBER|wrong version number|SSL handshake failed|handshake failure|"
        r"unknown protocol|record layer failure",
        E.TLS_MISMATCH,
        source="OpenSSL error texts; product page error table (SSL handshake failed)",
    ),
    _rule(
        "text_dns",
        r"Name or service not known|nodename nor servname|getaddrinfo failed|No address associated|"
        r"Temporary failure in name resolution|NXDOMAIN|DNS resolution failed",
        E.DNS_FAILED,
        source="glibc/macOS/Windows resolver texts; product page error table (DNS resolution failed)",
    ),
    _rule(
        "text_refused",
        r"Connection refused|actively refused|ECONNREFUSED",
        E.CONNECTION_REFUSED,
        source="OS error texts; product page error table (Connection refused)",
    ),
    _rule(
        "text_timeout",
        r"timed out|\btimeout\b|ETIMEDOUT",
        E.TIMEOUT,
        source="OS error texts; product page error table (Connection timeout)",
    ),
    # -- bare SMTP reply codes (RFC 5321 / RFC 4954 / RFC 3463)
    _rule(
        "smtp_530_starttls", r"^\s*530\b.*STARTTLS", E.TLS_MISMATCH, protocols=("smtp",), source="RFC 3207"
    ),
    _rule("smtp_535", r"^\s*535\b", E.AUTH_FAILED, protocols=("smtp",), source="RFC 4954 535"),
    _rule("smtp_421", r"^\s*421\b", E.SERVER_UNAVAILABLE, protocols=("smtp",), source="RFC 5321 421"),
    _rule(
        "smtp_454",
        r"^\s*454\b",
        E.SERVER_UNAVAILABLE,
        protocols=("smtp",),
        source="RFC 4954 454 (temporary authentication failure)",
    ),
)


def _applies(rule: Rule, protocol: Protocol, provider_id: str | None) -> bool:
    if protocol not in rule.protocols:
        return False
    return not rule.providers or provider_id in rule.providers


def explain(
    protocol: Literal["imap", "smtp"],
    reply: str | bytes,
    provider_id: str | None = None,
    *,
    secrets: Iterable[str | None] = (),
) -> MailError:
    """Classify a raw server reply into a :class:`MailError`.

    Args:
        protocol: ``"imap"`` or ``"smtp"`` (rules specific to one protocol only fire on it).
        reply: the server's reply line(s); ``bytes`` are decoded as UTF-8, falling back to GBK.
        provider_id: catalog id when known; appends that provider's instructions to the fix, and turns
            ``auth_failed`` into ``oauth_required`` where the catalog says the protocol needs OAuth2
            (Outlook.com, Microsoft 365 IMAP: providers.md §4).
        secrets: values to redact from the kept server text (the password the caller tried).

    Returns:
        The first matching rule's code (order: throttling, provider strings, IMAP response codes, SMTP
        codes), or ``unknown`` carrying the server's text. Never raises for any input.
    """
    text = redact(decode_reply(reply), secrets)
    provider = find_provider(provider_id)
    for rule in RULES:
        if _applies(rule, protocol, provider_id) and rule.pattern.search(text):
            code, fix = rule.code, rule.fix
            if (
                code is ErrorCode.AUTH_FAILED
                and provider is not None
                and provider.settings(protocol).auth is AuthMethod.OAUTH2
            ):
                code, fix, name = ErrorCode.OAUTH_REQUIRED, None, f"{rule.name}+catalog_oauth2"
            else:
                name = rule.name
            suggestion = _suggest_from_text(text) if code is ErrorCode.DNS_FAILED else None
            return make_error(
                code,
                protocol=protocol,
                provider_id=provider_id,
                server_text=text,
                rule=name,
                fix=fix,
                suggestion=suggestion,
            )
    return make_error(ErrorCode.UNKNOWN, protocol=protocol, provider_id=provider_id, server_text=text)


# --------------------------------------------------------------------------------------------- send time

SendStage = Literal["connect", "auth", "mail", "rcpt", "data"]
"""The SMTP step that answered (RFC 5321 section 3.3): aiosmtplib raises ``SMTPSenderRefused`` at MAIL,
``SMTPRecipientRefused`` at RCPT and ``SMTPDataError`` at DATA, each with ``.code`` and ``.message``."""

_FREQ = "(Connection|Ip|Sender|Domain) frequency limited"

# Ordered: provider tokens and phrases first (exact texts, sources in the send research notes section 2:
# NetEase's reply-code list help.163.com/09/1224/17/5RAJ4LMH00753VB8.html, Google's "Gmail SMTP errors and
# codes" support.google.com/a/answer/3726730 and "Gmail sending limits" /a/answer/166852, Exchange Online
# limits, sisimai's rhost tables, Zoho's rates-and-limits page, public issue threads quoting the replies),
# then RFC 3463 enhanced status codes, then the bare reply code by SMTP step. First match wins. Chinese
# providers put rate limits under 550/554 (QQ "frequency limited", NetEase MI:STC), so "5xx = permanent" is
# not assumed; NetEase's 451 DT:SPM is temporary although it names spam.
SEND_RULES: tuple[Rule, ...] = (
    # -- NetEase 163/126/yeah and NetEase Enterprise (qiye)
    _rule(
        "netease_dt_spm_temporary",
        r"^\s*4\d\d\b.*DT:SPM",
        E.RATE_LIMITED,
        protocols=("smtp",),
        source="NetEase reply-code list: 451 DT:SPM, retry after 2 minutes",
    ),
    _rule(
        "netease_dt_spm",
        r"DT:SPM",
        E.CONTENT_REJECTED_SPAM,
        protocols=("smtp",),
        source="NetEase reply-code list: 554 DT:SPM; jumpserver#644; zmail#57",
    ),
    _rule(
        "netease_quota_window",
        r"MI:SFQ|RP:QRC|MI:DMC|RP:DRC|HL:I[CF]C|HL:REP|HL:MEP",
        E.RATE_LIMITED,
        protocols=("smtp",),
        source="NetEase reply-code list: 451 MI:SFQ (15-minute sender quota) and others",
    ),
    _rule(
        "netease_daily",
        r"MI:STC|RP:TRC|exceed daily message limit",
        E.DAILY_QUOTA_REACHED,
        protocols=("smtp",),
        source="NetEase reply-code list: 554 MI:STC, 550 RP:TRC; DiscuzX#2",
    ),
    _rule(
        "netease_recipients",
        r"RP:RCL|too much recipient",
        E.TOO_MANY_RECIPIENTS,
        protocols=("smtp",),
        source="NetEase reply-code list: 550 RP:RCL",
    ),
    _rule(
        "netease_sender",
        r"DT:SUM|User has no permission|MI:SPB|WM:BLU|too much fail authentication",
        E.SENDER_NOT_ALLOWED,
        protocols=("smtp",),
        source="NetEase reply-code list: 554 DT:SUM, 550 User has no permission; open-falcon/mail-provider#6",
    ),
    _rule(
        "netease_ip",
        r"HL:IHU|HL:IPB|IP in blacklist|DT:RBL|HL:ITC",
        E.IP_BLOCKED,
        protocols=("smtp",),
        source="NetEase reply-code list: 554 HL:IHU, 554 IP in blacklist, 450 DT:RBL",
    ),
    _rule(
        "netease_size",
        r"exceeded mailsize limit",
        E.MESSAGE_TOO_LARGE,
        protocols=("smtp",),
        source="NetEase reply-code list: 552 exceeded mailsize limit",
    ),
    _rule(
        "netease_attachment",
        r"Illegal Attachment",
        E.CONTENT_REJECTED_SPAM,
        protocols=("smtp",),
        source="NetEase reply-code list: 552 Illegal Attachment",
    ),
    # -- Google (Gmail, Workspace)
    _rule(
        "gmail_daily",
        r"Daily user sending (limit|quota) exceeded|Daily SMTP relay limit exceeded",
        E.DAILY_QUOTA_REACHED,
        protocols=("smtp",),
        source="support.google.com/a/answer/166852; onepub#543; gen_smtp#140; PHPMailer#2113",
    ),
    _rule(
        "gmail_peak_relay",
        r"Peak SMTP relay limit exceeded",
        E.RATE_LIMITED,
        protocols=("smtp",),
        source="sisimai google.rb; wazuh#15825",
    ),
    _rule(
        "gmail_content",
        r"likely unsolicited mail|suspicious due to the nature of the content",
        E.CONTENT_REJECTED_SPAM,
        protocols=("smtp",),
        source="sisimai google.rb",
    ),
    _rule(
        "gmail_ip_rate_temporary",
        r"^\s*4\d\d\b.*unusual rate of unsolicited mail",
        E.RATE_LIMITED,
        protocols=("smtp",),
        source="support.google.com/a/answer/3726730; nylas-mail#2796",
    ),
    _rule(
        "gmail_ip_rate",
        r"unusual rate of unsolicited mail|5\.7\.28",
        E.IP_BLOCKED,
        protocols=("smtp",),
        source="support.google.com/a/answer/3726730; sisimai google.rb",
    ),
    _rule(
        "gmail_size",
        r"exceeded Google's message size limits",
        E.MESSAGE_TOO_LARGE,
        protocols=("smtp",),
        source="sisimai google.rb",
    ),
    _rule(
        "gmail_login_attempts",
        r"Too many login attempts",
        E.RATE_LIMITED,
        protocols=("smtp",),
        source="sisimai google.rb",
    ),
    _rule(
        "gmail_sending_denied",
        r"Mail sending denied",
        E.SENDER_NOT_ALLOWED,
        protocols=("smtp",),
        source="sisimai google.rb (support.google.com/a/answer/6140680)",
    ),
    # -- Microsoft (Outlook.com, Microsoft 365)
    _rule(
        "outlook_refuse_quota",
        r"OutboundSpamException.*RefuseQuota",
        E.DAILY_QUOTA_REACHED,
        protocols=("smtp",),
        source="nodejs-nodemailer-outlook#11",
    ),
    _rule(
        "outlook_hip",
        r"OutboundSpamException.*HipNotify",
        E.SENDER_NOT_ALLOWED,
        protocols=("smtp",),
        source="Valine-Admin#26",
    ),
    _rule(
        "m365_daily",
        r"SubmissionQuotaExceededException|daily limit for message recipients|"
        r"exceeded its daily limit for sending email",
        E.DAILY_QUOTA_REACHED,
        protocols=("smtp",),
        source="Exchange Online limits; OfficeDocs-Support#1150; OfficeDocs-Exchange#2729",
    ),
    _rule(
        "m365_concurrent",
        r"Concurrent connections limit exceeded",
        E.RATE_LIMITED,
        protocols=("smtp",),
        source="fastapi-mail#75 (432 4.3.2)",
    ),
    _rule(
        "m365_send_as",
        r"SendAsDenied|does not have permissions to send as",
        E.SENDER_NOT_ALLOWED,
        protocols=("smtp",),
        source="swiftmailer#1030; OfficeDocs-Support#1187",
    ),
    _rule(
        "m365_spam_abuse",
        r"spam abuse detected|banned sender|5\.7\.50[1-3]|5\.7\.520|5\.7\.515",
        E.SENDER_NOT_ALLOWED,
        protocols=("smtp",),
        source="sisimai microsoft.rb; fm/smtp-codes#7",
    ),
    _rule(
        "m365_ip",
        r"traffic not accepted from this IP|tenant has exceeded threshold|5\.7\.7[0-4]\d|5\.7\.750",
        E.IP_BLOCKED,
        protocols=("smtp",),
        source="office365-mail#11; OfficeDocs-Exchange#1745",
    ),
    _rule(
        "microsoft_size",
        r"Message size exceeds fixed maximum",
        E.MESSAGE_TOO_LARGE,
        protocols=("smtp",),
        source="sisimai microsoft.rb",
    ),
    # -- Yahoo
    _rule("yahoo_tss04", r"\[TSS04\]", E.RATE_LIMITED, protocols=("smtp",), source="postal#881"),
    _rule("yahoo_tss06", r"\[TSS06\]", E.IP_BLOCKED, protocols=("smtp",), source="hardware/mailserver#202"),
    _rule(
        "yahoo_error_sending",
        r"6\.6\.0 Error sending message",
        E.SENDER_NOT_ALLOWED,
        protocols=("smtp",),
        source="nodemailer#1515; MailKit#1855",
    ),
    _rule(
        "yahoo_mailbox_unavailable_after_data",
        r"Request failed; Mailbox unavailable",
        E.CONTENT_REJECTED_SPAM,
        protocols=("smtp",),
        source="PHPMailer#2685 (low confidence)",
    ),
    # -- Zoho
    _rule(
        "zoho_relaying",
        r"Relaying disallowed",
        E.SENDER_NOT_ALLOWED,
        protocols=("smtp",),
        source="erpnext#19057; mybb#2644",
    ),
    _rule(
        "zoho_blocked",
        r"5\.1\.8 .*Blocked",
        E.SENDER_NOT_ALLOWED,
        protocols=("smtp",),
        source="help.zoho.com community (554 5.1.8 Email Outgoing Blocked)",
    ),
    # -- Tencent QQ / Exmail
    _rule(
        "qq_frequency",
        _FREQ,
        E.RATE_LIMITED,
        protocols=("smtp",),
        source="sisimai tencent.rb; walle-web#289; service.mail.qq.com/detail/122/172",
    ),
    _rule(
        "qq_content",
        r"inappropriate words or content|Mail content denied|rejected by antispam",
        E.CONTENT_REJECTED_SPAM,
        protocols=("smtp",),
        source="TrendRadar#373; PMail#220; yapi#1964 (service.mail.qq.com/detail/122/171)",
    ),
    _rule(
        "qq_sender",
        r"mail from address must be same as authorization user|Invalid input from",
        E.SENDER_NOT_ALLOWED,
        protocols=("smtp",),
        source="gophish#1627; MTeam-CLI#12",
    ),
    _rule(
        "qq_mailbox_not_found",
        r"mailbox not found",
        E.RECIPIENT_UNKNOWN,
        protocols=("smtp",),
        source="sisimai tencent.rb (help 122/169)",
    ),
    _rule(
        "qq_too_large",
        r"message too large",
        E.MESSAGE_TOO_LARGE,
        protocols=("smtp",),
        source="sisimai tencent.rb (help 122/168)",
    ),
    # -- Alibaba, Sina, Sohu
    _rule(
        "alibaba_frequency",
        r"ANTISPAM_BAT|too frequently sending|currently unexpected sending",
        E.RATE_LIMITED,
        protocols=("smtp",),
        source="Alibaba mail help (reseller copies: aliyun123.cn/news/568)",
    ),
    _rule(
        "sina_connections",
        r"Too many connect",
        E.RATE_LIMITED,
        protocols=("smtp",),
        source="Sina reply quoted in public code (low confidence)",
    ),
    _rule(
        "sohu_sender_reject",
        r"SENDER REJECT",
        E.DAILY_QUOTA_REACHED,
        protocols=("smtp",),
        source="Sohu reply quoted in public code (count over limit; low confidence)",
    ),
    _rule(
        "sohu_ip_reject",
        r"IP REJECT",
        E.IP_BLOCKED,
        protocols=("smtp",),
        source="Sohu reply quoted in public code (low confidence)",
    ),
    # -- common recipient texts, then RFC 3463 enhanced status codes
    _rule(
        "recipient_does_not_exist",
        r"does not exist|user unknown|no such user|unknown user|"
        r"recipient not found|invalid recipient|address rejected",
        E.RECIPIENT_UNKNOWN,
        protocols=("smtp",),
        source="Haraka#936 (Gmail 550 5.1.1); common MTA texts",
    ),
    _rule(
        "status_x_1_bad_mailbox",
        r"\b[45]\.1\.(1|2|3|6|10)\b",
        E.RECIPIENT_UNKNOWN,
        protocols=("smtp",),
        source="RFC 3463 X.1.1 bad destination mailbox, X.1.2 bad system, X.1.10 null MX (RFC 7505)",
    ),
    _rule(
        "status_x_3_4_too_big",
        r"\b[45]\.3\.4\b",
        E.MESSAGE_TOO_LARGE,
        protocols=("smtp",),
        source="RFC 3463 X.3.4 message too big for system",
    ),
    _rule(
        "status_x_5_3_too_many",
        r"\b[45]\.5\.3\b|too many recipients",
        E.TOO_MANY_RECIPIENTS,
        protocols=("smtp",),
        source="RFC 3463 X.5.3 too many recipients",
    ),
    _rule(
        "status_x_4_5_congestion",
        r"\b4\.4\.5\b|\b4\.7\.0\b",
        E.RATE_LIMITED,
        protocols=("smtp",),
        source="RFC 3463 X.4.5 system congestion; 4.7.0 temporary policy",
    ),
    _rule(
        "smtp_552",
        r"^\s*552\b",
        E.MESSAGE_TOO_LARGE,
        protocols=("smtp",),
        source="RFC 5321 552 exceeded storage allocation (RFC 1870 SIZE)",
    ),
)


def explain_send(
    reply: str | bytes,
    *,
    smtp_code: int | None = None,
    stage: SendStage = "data",
    provider_id: str | None = None,
    secrets: Iterable[str | None] = (),
) -> MailError:
    """Classify the submission server's answer to a message (MAIL, RCPT or DATA) into a :class:`MailError`.

    Args:
        reply: the reply text; with ``smtp_code`` given and missing from the text, ``"<code> "`` is put in
            front (aiosmtplib's exceptions carry code and text apart). ``bytes`` are decoded as by
            :func:`decode_reply` (QQ answers in GBK).
        smtp_code: the reply code (RFC 5321 section 4.2), when known.
        stage: the step that answered; ``auth`` and ``connect`` fall through to :func:`explain` (login rules:
            ``auth_failed``, ``app_password_required``, ...).
        provider_id: catalog id, for the fix of login errors.
        secrets: redacted from the kept text.

    Returns:
        The first :data:`SEND_RULES` match; then the login taxonomy (:func:`explain`) for anything it knows;
        then by bare code and step: 452 at RCPT -> ``too_many_recipients`` (RFC 5321 4.5.3.1.10), 550/551/553
        at RCPT -> ``recipient_unknown``, other 4xx -> ``rate_limited`` (retryable), anything else
        ``unknown`` with the text. Never raises.
    """
    text = redact(decode_reply(reply), secrets).strip()
    if smtp_code is not None and not text.startswith(str(smtp_code)):
        text = f"{smtp_code} {text}"

    def build(code: ErrorCode, rule: str, fix: Text | None = None) -> MailError:
        return make_error(
            code, protocol="smtp", provider_id=provider_id, server_text=text, rule=rule, fix=fix
        )

    if stage not in ("auth", "connect"):
        for rule in SEND_RULES:
            if rule.pattern.search(text):
                return build(rule.code, rule.name, rule.fix)
    general = explain("smtp", text, provider_id)
    if general.code is not ErrorCode.UNKNOWN and (
        stage in ("auth", "connect") or general.code is not ErrorCode.SERVER_UNAVAILABLE
    ):
        return general
    code = smtp_code
    if code is None:
        head = re.match(r"\s*(\d{3})\b", text)
        code = int(head.group(1)) if head else None
    if code is not None:
        if stage == "rcpt" and code == 452:
            return build(ErrorCode.TOO_MANY_RECIPIENTS, "smtp_452_rcpt")
        if stage == "rcpt" and code in (550, 551, 553):
            return build(ErrorCode.RECIPIENT_UNKNOWN, f"smtp_{code}_rcpt")
        if 400 <= code < 500:
            return build(ErrorCode.RATE_LIMITED, "smtp_4xx")
    return general


# --------------------------------------------------------------------------------------------- typo suggestion


def _edit_distance(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def suggest_host(host: str, candidates: Iterable[str] | None = None, max_distance: int = 2) -> str | None:
    """The catalog server host closest to a mistyped ``host`` (Levenshtein distance ≤ ``max_distance``),
    e.g. ``imap.gmal.com`` → ``imap.gmail.com``; ``None`` if ``host`` is itself known or nothing is close.
    Ties go to the alphabetically first host."""
    host = host.strip().rstrip(".").lower()
    pool = sorted(candidates if candidates is not None else known_server_hosts(load_catalog()))
    if host in pool:
        return None
    best: tuple[int, str] | None = None
    for candidate in pool:
        if abs(len(candidate) - len(host)) > max_distance:
            continue
        distance = _edit_distance(host, candidate)
        if distance <= max_distance and (best is None or distance < best[0]):
            best = (distance, candidate)
    return best[1] if best else None


_HOST_TOKEN = re.compile(r"(?<![\w.-])((?:[a-z0-9-]+\.)+[a-z]{2,})(?![\w-])", re.IGNORECASE)


def _suggest_from_text(text: str) -> str | None:
    """A typo suggestion for the first host name in ``text`` that has one."""
    for token in _HOST_TOKEN.findall(text):
        suggestion = suggest_host(token)
        if suggestion is not None:
            return suggestion
    return None


# --------------------------------------------------------------------------------------------- exceptions


_IMPLICIT_TLS_PORTS = frozenset({993, 465})
_STARTTLS_PORTS = frozenset({143, 587, 25})


def explain_exception(
    exc: BaseException,
    protocol: Protocol | None = None,
    *,
    host: str | None = None,
    port: int | None = None,
    security: Literal["ssl", "starttls"] | None = None,
    provider_id: str | None = None,
    secrets: Iterable[str | None] = (),
) -> MailError:
    """Map an exception raised while connecting or talking to a server to a :class:`MailError`.

    - :class:`MailServerError` → its own error;
    - :class:`ssl.SSLCertVerificationError` → ``certificate_invalid``;
    - other :class:`ssl.SSLError` (``WRONG_VERSION_NUMBER``: TLS spoken to a plain port; EOF or reset during
      the handshake) → ``tls_mismatch`` (product error table: "SSL handshake failed → wrong encryption");
    - :class:`socket.gaierror` → ``dns_failed`` with a typo ``suggestion`` for ``host`` from the catalog;
    - :class:`~laifaxin_shared.imap.NotImapGreetingError` → ``pop3_unsupported`` for a POP3 greeting (RFC 1939
      section 4), ``wrong_port`` for an SMTP banner, ``unknown`` otherwise;
    - :class:`~laifaxin_shared.imap.ImapConnectionClosedError` → the server's ``BYE`` text classified like a
      reply (:func:`explain`: a throttling or provider rule wins), ``server_unavailable`` otherwise or without
      a ``BYE`` (``tls_mismatch`` on a port whose usual security differs from ``security``);
    - :class:`ConnectionRefusedError` → ``connection_refused``; unreachable network/host → same;
    - :class:`TimeoutError` → ``timeout``, or ``tls_mismatch`` when STARTTLS was tried on an implicit-TLS
      port (993/465: the server waits for a ClientHello while the client waits for a greeting);
    - :class:`ConnectionResetError`, :class:`EOFError` → ``server_unavailable`` (``tls_mismatch`` on a port
      whose usual security differs from ``security``);
    - anything else → ``unknown`` with the exception's type and redacted text.
    """
    if isinstance(exc, MailServerError):
        return exc.error
    text = redact(f"{type(exc).__name__}: {exc}", secrets)
    mismatched_port = port is not None and (
        (security == "starttls" and port in _IMPLICIT_TLS_PORTS)
        or (security == "ssl" and port in _STARTTLS_PORTS)
    )

    def build(code: ErrorCode, suggestion: str | None = None) -> MailError:
        return make_error(
            code,
            protocol=protocol,
            provider_id=provider_id,
            server_text=text,
            rule=f"exception:{type(exc).__name__}",
            suggestion=suggestion,
        )

    if isinstance(exc, ssl.SSLCertVerificationError):
        return build(ErrorCode.CERTIFICATE_INVALID)
    if isinstance(exc, ssl.SSLError):
        return build(ErrorCode.TLS_MISMATCH)
    if isinstance(exc, socket.gaierror):
        return build(ErrorCode.DNS_FAILED, suggest_host(host) if host else None)
    if isinstance(exc, NotImapGreetingError):
        if exc.protocol == "pop3":
            return build(ErrorCode.POP3_UNSUPPORTED)
        return build(ErrorCode.WRONG_PORT if exc.protocol == "smtp" else ErrorCode.UNKNOWN)
    if isinstance(exc, ImapConnectionClosedError):
        if exc.bye:
            said = explain(protocol or "imap", exc.bye, provider_id, secrets=secrets)
            if said.code is not ErrorCode.UNKNOWN:
                return replace(said, server_text=text, rule=f"bye:{said.rule}")
        return build(ErrorCode.TLS_MISMATCH if mismatched_port else ErrorCode.SERVER_UNAVAILABLE)
    if isinstance(exc, ConnectionRefusedError):
        return build(ErrorCode.CONNECTION_REFUSED)
    if isinstance(exc, TimeoutError):
        return build(ErrorCode.TLS_MISMATCH if mismatched_port else ErrorCode.TIMEOUT)
    if isinstance(exc, ConnectionResetError | ConnectionAbortedError | BrokenPipeError | EOFError):
        return build(ErrorCode.TLS_MISMATCH if mismatched_port else ErrorCode.SERVER_UNAVAILABLE)
    if isinstance(exc, OSError) and exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return build(ErrorCode.CONNECTION_REFUSED)
    return build(ErrorCode.UNKNOWN)


def refuse_pop3(protocol: str) -> None:
    """Raise ``pop3_unsupported`` before any connection when ``protocol`` names POP3 (product page: "POP3
    not supported"). Accepts ``pop``, ``pop3``, ``pop3s`` in any case.

    Raises:
        MailServerError: code ``pop3_unsupported``.
    """
    if protocol.strip().lower() in {"pop", "pop3", "pop3s"}:
        raise MailServerError(ErrorCode.POP3_UNSUPPORTED)


def with_protocol(error: MailError, protocol: Protocol) -> MailError:
    """A copy of ``error`` tagged with ``protocol``."""
    return replace(error, protocol=protocol)
