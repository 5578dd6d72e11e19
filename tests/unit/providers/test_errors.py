"""The error taxonomy: every exact server text of providers.md §3 maps to its code; decoding, provider fixes,
redaction, the exception mapper (with real TLS and TCP failures on loopback) and the typo suggestion."""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
from collections.abc import AsyncIterator

import pytest
import trustme

from laifaxin_shared.providers.errors import (
    CODES,
    ErrorCode,
    MailServerError,
    decode_reply,
    explain,
    explain_exception,
    make_error,
    redact,
    refuse_pop3,
    suggest_host,
)

E = ErrorCode

# (provider id from the table's Provider column, protocol, exact text from providers.md §3, expected code)
EXACT_TEXTS: list[tuple[str | None, str, str, ErrorCode]] = [
    ("gmail", "imap", "NO [AUTHENTICATIONFAILED] Invalid credentials (Failure)", E.AUTH_FAILED),
    (
        "gmail",
        "imap",
        "NO [ALERT] Application-specific password required: https://support.google.com/accounts/answer/185833 (Failure)",
        E.APP_PASSWORD_REQUIRED,
    ),
    (
        "gmail",
        "smtp",
        "534-5.7.9 Application-specific password required. … https://support.google.com/mail/?p=InvalidSecondFactor",
        E.APP_PASSWORD_REQUIRED,
    ),
    (
        "gmail",
        "smtp",
        "535-5.7.8 Username and Password not accepted. Learn more at … https://support.google.com/mail/?p=BadCredentials",
        E.AUTH_FAILED,
    ),
    (
        "gmail",
        "imap",
        "[ALERT] Please log in via your web browser: http://support.google.com/mail/accounts/bin/answer.py?answer=78754 (Failure)",
        E.UNSAFE_LOGIN,
    ),
    (
        "gmail",
        "imap",
        "[ALERT] Your account is not enabled for IMAP use. Please visit your Gmail settings page and enable your account for IMAP access. (Failure)",
        E.PROTOCOL_DISABLED,
    ),
    ("google_workspace", "imap", "IMAP access is disabled for your domain.", E.PROTOCOL_DISABLED),
    ("gmail", "imap", "[ALERT] IMAP access is not allowed for this account.", E.PROTOCOL_DISABLED),
    ("gmail", "imap", "NO [ALERT] Too many simultaneous connections. (Failure)", E.TOO_MANY_CONNECTIONS),
    ("gmail", "smtp", "Too many login attempts, please try again later. … - gsmtp", E.RATE_LIMITED),
    (
        "outlook",
        "imap",
        "NO LOGIN failed.\r\n* BYE Microsoft Exchange Server IMAP4 server signing off.",
        E.OAUTH_REQUIRED,
    ),
    ("outlook", "imap", "NO LOGIN failed.", E.OAUTH_REQUIRED),
    ("outlook", "imap", "a1 NO Basic authentication is disabled.", E.OAUTH_REQUIRED),
    (
        "outlook",
        "smtp",
        "535 5.7.139 Authentication unsuccessful, basic authentication is disabled. [<host>]",
        E.OAUTH_REQUIRED,
    ),
    (
        "microsoft365",
        "smtp",
        "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled for more information.",
        E.PROTOCOL_DISABLED,
    ),
    ("microsoft365", "smtp", "535 5.7.3 Authentication unsuccessful [<host>]", E.AUTH_FAILED),
    (
        "microsoft365",
        "smtp",
        "550 5.7.30 Basic authentication is not supported for Client Submission.",
        E.OAUTH_REQUIRED,
    ),
    ("outlook", "imap", "User is authenticated but not connected", E.PROTOCOL_DISABLED),
    ("outlook", "imap", "a5 BAD … Command Error. 10", E.OAUTH_REQUIRED),
    (
        "microsoft365",
        "smtp",
        "432 4.3.2 Concurrent connections limit exceeded. Visit https://aka.ms/concurrent_sending",
        E.TOO_MANY_CONNECTIONS,
    ),
    (
        "qq",
        "smtp",
        "535 Login Fail. Please enter your authorization code to login. More information in http://service.mail.qq.com/cgi-bin/help?subtype=1&&id=28&&no=1001256",
        E.APP_PASSWORD_REQUIRED,
    ),
    (
        "qq",
        "smtp",
        "535 Error: 请使用授权码登录。详情请看: http://service.mail.qq.com/…",
        E.APP_PASSWORD_REQUIRED,
    ),
    (
        "qq",
        "imap",
        "Please using authorized code to login. More information at http://service.mail.qq.com/cgi-bin/help?subtype=1&&id=28&&no=1001256",
        E.APP_PASSWORD_REQUIRED,
    ),
    ("qq", "imap", "-ERR Please using authorized code to login.", E.APP_PASSWORD_REQUIRED),
    (
        "qq",
        "smtp",
        "535 Login fail. Account is abnormal, service is not open, password is incorrect, login frequency limited, or system is busy.",
        E.AUTH_FAILED,
    ),
    ("qq", "smtp", "454 Authentication failed, please open smtp flag first!", E.PROTOCOL_DISABLED),
    ("qq", "smtp", "501 mail from address must be same as authorization user", E.SENDER_MISMATCH),
    ("tencent_exmail", "imap", "Login fail. Please using weixin token", E.APP_PASSWORD_REQUIRED),
    ("netease", "imap", "NO SELECT Unsafe Login. Please contact kefu@188.com for help", E.UNSAFE_LOGIN),
    ("netease", "imap", "NO EXAMINE Unsafe Login. Please contact kefu@188.com for help", E.UNSAFE_LOGIN),
    ("netease", "imap", "a NO LOGIN Login error or password error", E.AUTH_FAILED),
    ("netease", "smtp", "535 Error: authentication failed", E.AUTH_FAILED),
    ("netease", "smtp", "550 User has no permission", E.PROTOCOL_DISABLED),
    (
        "netease",
        "smtp",
        "554 DT:SPM 163 smtp14,… please see http://mail.163.com/help/help_spam_16.htm?…",
        E.RATE_LIMITED,
    ),
    ("netease_qiye", "smtp", "535 ERR.LOGIN.REQCODE", E.APP_PASSWORD_REQUIRED),
    ("netease_qiye", "smtp", "535 email format login fail", E.AUTH_FAILED),
    ("netease_qiye", "imap", "ERR.LOGIN.DOMAINNOTEXIST", E.BACKUP_SERVER_NEEDED),
    ("netease_qiye", "smtp", "ERR.LOGIN.DOMAINNOTEXIST", E.BACKUP_SERVER_NEEDED),
    ("netease_qiye", "imap", "ERR.LOGIN.IPDENY", E.IP_DENIED),
    ("netease_qiye", "smtp", "535 ERR.LOGIN.IPDENY", E.IP_DENIED),
    ("netease_qiye", "imap", "ERR.LOGIN.PASSERR", E.AUTH_FAILED),
    ("netease_qiye", "imap", "ERR.LOGIN.USERSTATUS", E.ACCOUNT_DISABLED),
    ("netease_qiye", "imap", "ERR.LOGIN.USEREXP", E.ACCOUNT_DISABLED),
    ("netease_qiye", "imap", "ERR.LOGIN.DOMAINEXPED", E.ACCOUNT_DISABLED),
    ("netease_qiye", "imap", "ERR.REQ.VERIFYCODE", E.RATE_LIMITED),
    ("netease", "imap", "NO LOGIN Login error user suspended", E.ACCOUNT_DISABLED),
    ("yahoo", "imap", "NO [AUTHENTICATIONFAILED] LOGIN Invalid credentials", E.AUTH_FAILED),
    ("yahoo", "imap", "NO [AUTHENTICATIONFAILED] AUTHENTICATE Invalid credentials", E.AUTH_FAILED),
    ("yahoo", "smtp", "535 5.7.0 (#AUTH005) Too many bad auth attempts.", E.RATE_LIMITED),
    ("yahoo", "smtp", "535 5.7.0 (#MBR1212) Incorrect username or password.", E.AUTH_FAILED),
    ("icloud", "imap", "NO [AUTHENTICATIONFAILED] Authentication failed", E.AUTH_FAILED),
    ("sina", "imap", "LOGIN auth error", E.AUTH_FAILED),
]


@pytest.mark.parametrize(("provider_id", "protocol", "text", "code"), EXACT_TEXTS)
def test_exact_server_texts_with_provider(
    provider_id: str | None, protocol: str, text: str, code: ErrorCode
) -> None:
    error = explain(protocol, text, provider_id)  # type: ignore[arg-type]
    assert error.code is code, error.rule
    assert error.server_text == text.strip()
    assert error.message.en and error.message.zh and error.fix.en and error.fix.zh


# The same texts without the provider: only the OAuth upgrade of a plain "LOGIN failed." depends on the catalog.
@pytest.mark.parametrize(
    ("provider_id", "protocol", "text", "code"),
    [case for case in EXACT_TEXTS if case[2] != "NO LOGIN failed."],
)
def test_exact_server_texts_without_provider(
    provider_id: str | None, protocol: str, text: str, code: ErrorCode
) -> None:
    assert explain(protocol, text).code is code  # type: ignore[arg-type]


def test_plain_login_failed_without_provider_is_auth_failed() -> None:
    assert explain("imap", "NO LOGIN failed.").code is E.AUTH_FAILED


@pytest.mark.parametrize(
    "text",
    [
        "NO [ALERT] Too many simultaneous connections. (Failure)",
        "a1 NO [AUTHENTICATIONFAILED] Too many simultaneous connections. (Failure)",
        "432 4.3.2 Concurrent connections limit exceeded.",
        "NO Maximum number of connections from user+IP exceeded (mail_max_userip_connections=10)",
    ],
)
def test_connection_limits_are_never_a_wrong_password(text: str) -> None:
    error = explain("imap", text, "gmail")
    assert error.code is E.TOO_MANY_CONNECTIONS
    assert error.sync_state == "throttled"
    assert "not a wrong password" in error.message.en


def test_gbk_encoded_reply_bytes_are_decoded() -> None:
    raw = "535 Error: 请使用授权码登录。详情请看: http://service.mail.qq.com/".encode("gbk")
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    error = explain("smtp", raw, "qq")
    assert error.code is E.APP_PASSWORD_REQUIRED
    assert error.server_text is not None and "请使用授权码登录" in error.server_text


def test_utf8_bytes_and_undecodable_bytes() -> None:
    assert explain("imap", b"NO LOGIN Login error or password error").code is E.AUTH_FAILED
    assert decode_reply("中文".encode()) == "中文"
    error = explain("smtp", b"\xff\xfe\xfa garbage")
    assert error.code is E.UNKNOWN
    assert error.server_text


def test_unknown_carries_the_server_text() -> None:
    error = explain("imap", "a1 NO something nobody has seen before")
    assert error.code is E.UNKNOWN
    assert error.server_text == "a1 NO something nobody has seen before"
    assert error.to_dict()["server_text"] == "a1 NO something nobody has seen before"


def test_fix_is_parameterised_by_provider() -> None:
    generic = explain("smtp", "535 Error: authentication failed")
    netease = explain("smtp", "535 Error: authentication failed", "netease")
    assert netease.fix.en.startswith(generic.fix.en)
    assert "POP3/SMTP/IMAP" in netease.fix.en and "Client authorization" in netease.fix.en
    assert "客户端授权" in netease.fix.zh
    qiye = explain("imap", "ERR.LOGIN.IPDENY", "netease_qiye")
    assert "Login Restriction" in qiye.fix.en and "登录限制" in qiye.fix.zh
    assert "not a wrong password" in qiye.message.en


def test_auth_failure_on_oauth_provider_becomes_oauth_required() -> None:
    error = explain("imap", "NO [AUTHENTICATIONFAILED] Authentication failed", "outlook")
    assert error.code is E.OAUTH_REQUIRED
    assert "Microsoft" in error.fix.en
    # Microsoft 365 SMTP still accepts passwords where the tenant allows it.
    assert explain("smtp", "535 5.7.3 Authentication unsuccessful", "microsoft365").code is E.AUTH_FAILED


def test_backup_server_needed_lists_the_backup_pair() -> None:
    error = explain("imap", "a1 NO ERR.LOGIN.DOMAINNOTEXIST", "netease_qiye")
    assert error.code is E.BACKUP_SERVER_NEEDED
    assert error.backup_servers == ("imap.qiye.163.com:993",)
    assert error.retryable


def test_to_dict_shape() -> None:
    data = explain("smtp", "535 Error: authentication failed", "netease").to_dict()
    assert {"code", "message", "fix", "message_zh", "fix_zh", "retryable", "sync_state"} <= data.keys()
    assert data["code"] == "auth_failed"


def test_every_code_has_bilingual_wording_and_a_sync_state() -> None:
    assert set(CODES) == set(ErrorCode)
    for info in CODES.values():
        assert info.message.en and info.message.zh and info.fix.en and info.fix.zh
    assert len({info.message.en for info in CODES.values()}) == len(CODES)


# ---------------------------------------------------------------------------------------------- no passwords


def test_secrets_are_redacted_from_server_text_and_exception() -> None:
    password = "abcd efgh ijkl mnop"
    plain_blob = base64.b64encode(b"\0user@163.com\0" + password.encode()).decode()
    reply = f"a1 NO LOGIN Login error or password error for {password} / {plain_blob} / abcdefghijklmnop"
    error = explain("imap", reply, "netease", secrets=[password])
    assert error.server_text is not None
    assert password not in error.server_text
    assert "abcdefghijklmnop" not in error.server_text
    assert plain_blob not in error.server_text
    exc = MailServerError.from_error(error)
    assert password not in str(exc) and password not in repr(exc)
    assert "abcdefghijklmnop" not in str(exc)
    assert str(exc).startswith("auth_failed: ")


def test_redact_leaves_text_without_secrets_alone() -> None:
    assert redact("535 Error: authentication failed", ["hunter22"]) == "535 Error: authentication failed"
    assert redact("x", [None, ""]) == "x"


def test_mail_server_error_from_code() -> None:
    exc = MailServerError(
        "ip_denied", protocol="imap", provider_id="netease_qiye", server_text="ERR.LOGIN.IPDENY"
    )
    assert exc.code is E.IP_DENIED
    assert "ERR.LOGIN.IPDENY" in str(exc)
    leaky = MailServerError(
        "auth_failed", server_text="NO bad password hunter2-secret", secrets=["hunter2-secret"]
    )
    assert "hunter2-secret" not in str(leaky) and "hunter2-secret" not in repr(leaky)
    with pytest.raises(ValueError, match="nonsense"):
        MailServerError("nonsense")


def test_refuse_pop3() -> None:
    with pytest.raises(MailServerError) as info:
        refuse_pop3("POP3")
    assert info.value.code is E.POP3_UNSUPPORTED
    refuse_pop3("imap")


# ---------------------------------------------------------------------------------------------- exceptions


@pytest.fixture
async def plain_imap_port() -> AsyncIterator[int]:
    """A loopback server that speaks plain text (an IMAP greeting) like a STARTTLS port."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"* OK IMAP4rev1 ready\r\n")
        await writer.drain()
        await asyncio.sleep(0.2)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield port
    finally:
        server.close()
        await server.wait_closed()


async def test_tls_against_a_plain_port_is_tls_mismatch(plain_imap_port: int) -> None:
    context = ssl.create_default_context()
    with pytest.raises(ssl.SSLError) as info:
        await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", plain_imap_port, ssl=context, server_hostname="localhost"), 5
        )
    error = explain_exception(info.value, "imap", host="127.0.0.1", port=plain_imap_port, security="ssl")
    assert error.code is E.TLS_MISMATCH
    assert error.sync_state == "tls_error"


async def test_untrusted_certificate_is_certificate_invalid() -> None:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_context)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(ssl.SSLCertVerificationError) as info:
            await asyncio.wait_for(
                asyncio.open_connection(
                    "127.0.0.1", port, ssl=ssl.create_default_context(), server_hostname="localhost"
                ),
                5,
            )
    finally:
        server.close()
        await server.wait_closed()
    assert explain_exception(info.value, "imap").code is E.CERTIFICATE_INVALID


async def test_refused_port_is_connection_refused() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ConnectionRefusedError) as info:
        await asyncio.open_connection("127.0.0.1", port)
    assert explain_exception(info.value, "smtp", port=port).code is E.CONNECTION_REFUSED


def test_exception_mapping_table() -> None:
    assert explain_exception(TimeoutError(), "imap").code is E.TIMEOUT
    # STARTTLS against implicit-TLS 993: the client waits for a greeting that never comes.
    assert explain_exception(TimeoutError(), "imap", port=993, security="starttls").code is E.TLS_MISMATCH
    assert explain_exception(ConnectionResetError(), "smtp", port=587, security="ssl").code is E.TLS_MISMATCH
    assert explain_exception(ConnectionResetError(), "smtp").code is E.SERVER_UNAVAILABLE
    wrong_version = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1000)")
    assert explain_exception(wrong_version, "imap").code is E.TLS_MISMATCH
    wrapped = MailServerError("rate_limited")
    assert explain_exception(wrapped).code is E.RATE_LIMITED
    assert explain_exception(RuntimeError("boom"), "imap").code is E.UNKNOWN


def test_gaierror_is_dns_failed_with_typo_suggestion() -> None:
    exc = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    error = explain_exception(exc, "imap", host="imap.gmal.com", port=993)
    assert error.code is E.DNS_FAILED
    assert error.suggestion == "imap.gmail.com"
    assert "Did you mean imap.gmail.com?" in error.fix.en
    assert "imap.gmail.com" in error.fix.zh
    assert error.to_dict()["suggestion"] == "imap.gmail.com"


def test_exception_text_is_redacted() -> None:
    error = explain_exception(RuntimeError("LOGIN user s3cr3t-pass failed"), "imap", secrets=["s3cr3t-pass"])
    assert error.server_text is not None and "s3cr3t-pass" not in error.server_text


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("imap.gmal.com", "imap.gmail.com"),
        ("imap.gmial.com", "imap.gmail.com"),
        ("smtp.163.cm", "smtp.163.com"),
        ("imap.qq.con", "imap.qq.com"),
        ("hwhzimap.qiye.163.cmo", "hwhzimap.qiye.163.com"),
        ("IMAP.GMAL.COM.", "imap.gmail.com"),
        ("imap.gmail.com", None),
        ("mail.totally-different.example", None),
    ],
)
def test_suggest_host(typed: str, expected: str | None) -> None:
    assert suggest_host(typed) == expected


def test_make_error_without_provider_uses_default_fix() -> None:
    error = make_error(E.TIMEOUT, protocol="smtp")
    assert error.fix == CODES[E.TIMEOUT].fix
    assert error.retryable


# The product's own error-code table (product page email-account §3), as support staff would paste it.
@pytest.mark.parametrize(
    ("protocol", "text", "code"),
    [
        ("smtp", "535 Authentication failed", E.AUTH_FAILED),
        ("smtp", "534 Authentication failed", E.APP_PASSWORD_REQUIRED),
        ("imap", "[Errno 111] Connection refused", E.CONNECTION_REFUSED),
        ("smtp", "Connection timeout", E.TIMEOUT),
        ("smtp", "TimeoutError: timed out", E.TIMEOUT),
        ("imap", "SSL handshake failed", E.TLS_MISMATCH),
        ("imap", "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)", E.TLS_MISMATCH),
        (
            "imap",
            "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate",
            E.CERTIFICATE_INVALID,
        ),
        ("imap", "Login disabled", E.PROTOCOL_DISABLED),
        ("imap", "Too many connections", E.TOO_MANY_CONNECTIONS),
        ("imap", "DNS resolution failed", E.DNS_FAILED),
    ],
)
def test_product_error_table_texts(protocol: str, text: str, code: ErrorCode) -> None:
    assert explain(protocol, text).code is code  # type: ignore[arg-type]


def test_pasted_dns_error_suggests_the_catalog_host() -> None:
    error = explain("imap", "socket.gaierror: [Errno -2] Name or service not known (imap.gmal.com:993)")
    assert error.code is E.DNS_FAILED
    assert error.suggestion == "imap.gmail.com"
    assert explain("imap", "Name or service not known: mail.nothing-like-it.example").suggestion is None


def test_sync_status_fields_fit_the_event() -> None:
    from laifaxin_shared.events.mailbox import MailboxSyncStatus

    error = explain("imap", "NO [ALERT] Too many simultaneous connections. (Failure)", "gmail")
    event = MailboxSyncStatus(tenant_id="t1", mailbox_id="mbx-1", **error.sync_status_fields())  # type: ignore[arg-type]
    assert (event.state, event.error_code) == ("throttled", "too_many_connections")
    assert event.fix_zh == error.fix.zh


# An expired password / authorization code (RFC 5530 §3 EXPIRED; "Password expired" replies; NetEase Enterprise
# authorization passwords have an expiry date): each exact reply becomes credential_expired, never "wrong password".
EXPIRED_TEXTS: list[tuple[str | None, str, str]] = [
    # RFC 5530 §3, the example of the EXPIRED response code
    (None, "imap", "b NO [EXPIRED] That password isn't valid any more"),
    # the response code with an AUTHENTICATIONFAILED-style wording after it
    ("gmail", "imap", "a1 NO [EXPIRED] Authentication failed"),
    # Dovecot / Exchange-style wording without a response code
    (None, "imap", "a1 NO [AUTHENTICATIONFAILED] Password expired"),
    (None, "smtp", "535 5.7.8 Authentication failed: password has expired"),
    # NetEase Enterprise: the authorization password is past its expiration date (help page: 授权密码有效期)
    ("netease_qiye", "imap", "a1 NO 客户端授权密码已过期"),
    ("netease_qiye", "smtp", "535 授权码已过期"),
]


@pytest.mark.parametrize(("provider_id", "protocol", "text"), EXPIRED_TEXTS)
def test_expired_credentials_are_credential_expired(
    provider_id: str | None, protocol: str, text: str
) -> None:
    error = explain(protocol, text, provider_id)  # type: ignore[arg-type]
    assert error.code is ErrorCode.CREDENTIAL_EXPIRED
    assert error.sync_state == "auth_failed"
    assert not error.retryable
    # the help pages' fix: generate a new authorization password, update it in Laifaxin (EN and ZH)
    assert "Generate a new authorization password" in error.fix.en
    assert "update it in Laifaxin" in error.fix.en
    assert "生成新的授权密码" in error.fix.zh and "来发信" in error.fix.zh
    # the help pages' "repeated password prompts" symptom is named in the message
    assert "repeated password prompts" in error.message.en
    assert "反复提示输入密码" in error.message.zh


def test_authenticationfailed_without_expiry_stays_auth_failed() -> None:
    assert explain("imap", "a1 NO [AUTHENTICATIONFAILED] Invalid credentials").code is E.AUTH_FAILED
    # an expired account (not its password) is still account_disabled
    assert explain("imap", "ERR.LOGIN.USEREXP", "netease_qiye").code is E.ACCOUNT_DISABLED
