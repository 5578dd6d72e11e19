"""A POP3 server given as the IMAP server is refused as ``pop3_unsupported`` before any connection: by port
(110, RFC 1939 §3; 995, POP3 over implicit TLS) or by host name (``pop.*``); and the POP3 greeting ``+OK``
(RFC 1939 §4) is recognised. No network."""

from __future__ import annotations

import pytest

from laifaxin_binding.verify import (
    Endpoint,
    VerifyRequest,
    pop3_server_error,
)
from laifaxin_shared.imap import greeting_protocol
from laifaxin_shared.providers.catalog import get_provider
from laifaxin_shared.providers.errors import ErrorCode, MailServerError
from laifaxin_shared.providers.models import Security

SSL, STARTTLS = Security.SSL, Security.STARTTLS


@pytest.mark.parametrize(
    ("endpoint", "rule"),
    [
        (Endpoint("mail.acme.example", 995, SSL), "pop3:port"),
        (Endpoint("mail.acme.example", 110, STARTTLS), "pop3:port"),
        (Endpoint("127.0.0.1", 995, SSL), "pop3:port"),
        (Endpoint("pop.163.com", 993, SSL), "pop3:host"),
        (Endpoint("pop3.acme.example", 993, SSL), "pop3:host"),
        (Endpoint("POP.QQ.COM.", 993, SSL), "pop3:host"),
        (Endpoint("pops.acme.example", 143, STARTTLS), "pop3:host"),
        (Endpoint("hwpop.exmail.qq.com", 993, SSL), "pop3:host"),
    ],
)
def test_pop3_ports_and_host_names_are_refused(endpoint: Endpoint, rule: str) -> None:
    error = pop3_server_error(endpoint)
    assert error is not None
    assert error.code is ErrorCode.POP3_UNSUPPORTED
    assert error.protocol == "imap" and error.rule == rule
    assert error.message.en.startswith("POP3 is not supported") and error.message.zh
    assert "IMAP" in error.fix.en and "IMAP" in error.fix.zh


@pytest.mark.parametrize(
    "endpoint",
    [
        Endpoint("imap.163.com", 993, SSL),
        Endpoint("imap.pop.example", 993, SSL),  # only the first label counts
        Endpoint("popular.example", 993, SSL),
        Endpoint("mail.acme.example", 143, STARTTLS),
        Endpoint("127.0.0.1", 10993, SSL),
    ],
)
def test_imap_servers_pass(endpoint: Endpoint) -> None:
    assert pop3_server_error(endpoint) is None


def test_the_fix_names_the_catalog_imap_server_when_the_provider_is_known() -> None:
    error = pop3_server_error(Endpoint("pop.163.com", 995, SSL), get_provider("netease"))
    assert error is not None
    assert "Port 995 is a POP3 port." in error.fix.en
    assert "imap.163.com, port 993 (SSL)" in error.fix.en
    assert "imap.163.com" in error.fix.zh and "995 是 POP3 端口" in error.fix.zh
    assert error.provider_id == "netease"


def test_the_fix_says_why_without_a_catalog_provider() -> None:
    error = pop3_server_error(Endpoint("pop.acme.example", 993, SSL))
    assert error is not None
    assert error.fix.en.startswith("pop.acme.example is a POP3 server name.")
    assert "port 993" in error.fix.en  # the taxonomy's own fix follows
    assert error.provider_id is None and error.server_text is None


def test_building_a_request_with_a_pop3_imap_server_is_refused() -> None:
    with pytest.raises(MailServerError) as info:
        VerifyRequest.build(
            "a@qq.com", "s3cret-auth-code", provider=get_provider("qq"), imap=Endpoint("pop.qq.com", 995, SSL)
        )
    assert info.value.code is ErrorCode.POP3_UNSUPPORTED
    assert "imap.qq.com" in info.value.error.fix.en
    assert "s3cret" not in str(info.value) + str(info.value.error.to_dict())


def test_a_pop3_host_is_only_checked_on_the_imap_side() -> None:
    # SMTP servers are never POP3 by name; a submission host called pop.* would be odd but is not ours to refuse.
    request = VerifyRequest.build(
        "a@acme.example",
        "x",
        provider=None,
        imap=Endpoint("imap.acme.example", 993, SSL),
        smtp=Endpoint("pop.acme.example", 465, SSL),
    )
    assert request.smtp == (Endpoint("pop.acme.example", 465, SSL),)


@pytest.mark.parametrize(
    ("line", "protocol"),
    [
        ("+OK POP3 ready", "pop3"),
        ("+OK Dovecot ready.", "pop3"),
        ("-ERR [SYS/TEMP] server busy", "pop3"),
        ("+ continue", None),  # an IMAP continuation request is not a greeting
        ("* OK [CAPABILITY IMAP4rev1] ready", "imap"),
        ("220 smtp.example ESMTP", "smtp"),
    ],
)
def test_pop3_greetings_are_recognised(line: str, protocol: str | None) -> None:
    assert greeting_protocol(line) == protocol
