"""The provider catalog: loads strictly, holds every provider of providers.md §2 with its facts, matches MX
hosts on label boundaries."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from laifaxin_shared.providers.catalog import (
    CatalogError,
    get_provider,
    known_server_hosts,
    load_catalog,
    mx_matches,
    parse_catalog,
    provider_for_domain,
    provider_for_mx,
    split_email,
)
from laifaxin_shared.providers.models import AuthMethod, PasswordType, QuirkCode, Security

CATALOG_FILE = (
    Path(__file__).resolve().parents[3] / "shared" / "src" / "laifaxin_shared" / "providers" / "catalog.yaml"
)

# Every provider the issue and providers.md §2 list, by catalog id.
REQUIRED_IDS = [
    "gmail",
    "google_workspace",
    "outlook",
    "microsoft365",
    "yahoo",
    "icloud",
    "aol",
    "yandex",
    "mailru",
    "qq",
    "netease",
    "sina",
    "sohu",
    "aliyun",
    "china_mobile_139",
    "china_telecom_189",
    "china_telecom_21cn",
    "perfect_mail_88",
    "perfect_mail_111",
    "perfect_mail_email_cn",
    "tencent_exmail",
    "netease_qiye",
    "alibaba_qiye",
    "alibaba_foreign_trade",
    "zoho",
    "zoho_eu",
    "zoho_in",
    "zoho_au",
    "zoho_jp",
    "zoho_ca",
]

S, T = Security.SSL, Security.STARTTLS

# (email domain, provider id, IMAP host, port, security, SMTP host, port, security): providers.md §2 table.
TABLE = [
    ("gmail.com", "gmail", "imap.gmail.com", 993, S, "smtp.gmail.com", 465, S),
    ("googlemail.com", "gmail", "imap.gmail.com", 993, S, "smtp.gmail.com", 465, S),
    ("hotmail.com", "outlook", "outlook.office365.com", 993, S, "smtp-mail.outlook.com", 587, T),
    ("outlook.com", "outlook", "outlook.office365.com", 993, S, "smtp-mail.outlook.com", 587, T),
    ("live.cn", "outlook", "outlook.office365.com", 993, S, "smtp-mail.outlook.com", 587, T),
    ("msn.com", "outlook", "outlook.office365.com", 993, S, "smtp-mail.outlook.com", 587, T),
    (
        "contoso.onmicrosoft.com",
        "microsoft365",
        "outlook.office365.com",
        993,
        S,
        "smtp.office365.com",
        587,
        T,
    ),
    ("yahoo.com", "yahoo", "imap.mail.yahoo.com", 993, S, "smtp.mail.yahoo.com", 465, S),
    ("ymail.com", "yahoo", "imap.mail.yahoo.com", 993, S, "smtp.mail.yahoo.com", 465, S),
    ("aol.com", "aol", "imap.aol.com", 993, S, "smtp.aol.com", 465, S),
    ("icloud.com", "icloud", "imap.mail.me.com", 993, S, "smtp.mail.me.com", 587, T),
    ("me.com", "icloud", "imap.mail.me.com", 993, S, "smtp.mail.me.com", 587, T),
    ("yandex.ru", "yandex", "imap.yandex.com", 993, S, "smtp.yandex.com", 465, S),
    ("ya.ru", "yandex", "imap.yandex.com", 993, S, "smtp.yandex.com", 465, S),
    ("mail.ru", "mailru", "imap.mail.ru", 993, S, "smtp.mail.ru", 465, S),
    ("bk.ru", "mailru", "imap.mail.ru", 993, S, "smtp.mail.ru", 465, S),
    ("qq.com", "qq", "imap.qq.com", 993, S, "smtp.qq.com", 465, S),
    ("foxmail.com", "qq", "imap.qq.com", 993, S, "smtp.qq.com", 465, S),
    ("vip.qq.com", "qq", "imap.qq.com", 993, S, "smtp.qq.com", 465, S),
    ("163.com", "netease", "imap.163.com", 993, S, "smtp.163.com", 465, S),
    ("126.com", "netease", "imap.163.com", 993, S, "smtp.163.com", 465, S),
    ("yeah.net", "netease", "imap.163.com", 993, S, "smtp.163.com", 465, S),
    ("188.com", "netease", "imap.163.com", 993, S, "smtp.163.com", 465, S),
    ("sina.com", "sina", "imap.sina.com", 993, S, "smtp.sina.com", 465, S),
    ("sina.cn", "sina", "imap.sina.com", 993, S, "smtp.sina.com", 465, S),
    ("sohu.com", "sohu", "imap.sohu.com", 993, S, "smtp.sohu.com", 465, S),
    ("aliyun.com", "aliyun", "imap.aliyun.com", 993, S, "smtp.aliyun.com", 465, S),
    ("139.com", "china_mobile_139", "imap.139.com", 993, S, "smtp.139.com", 465, S),
    ("189.cn", "china_telecom_189", "imap.189.cn", 993, S, "smtp.189.cn", 465, S),
    ("21cn.com", "china_telecom_21cn", "imap.21cn.com", 993, S, "smtp.21cn.com", 465, S),
    ("88.com", "perfect_mail_88", "imap.88.com", 993, S, "smtp.88.com", 465, S),
    ("111.com", "perfect_mail_111", "imap.111.com", 993, S, "smtp.111.com", 465, S),
    ("email.cn", "perfect_mail_email_cn", "imap.email.cn", 993, S, "smtp.email.cn", 465, S),
    ("zoho.com", "zoho", "imap.zoho.com", 993, S, "smtp.zoho.com", 465, S),
    ("zoho.eu", "zoho_eu", "imap.zoho.eu", 993, S, "smtp.zoho.eu", 465, S),
    ("zoho.in", "zoho_in", "imap.zoho.in", 993, S, "smtp.zoho.in", 465, S),
    ("zoho.com.au", "zoho_au", "imap.zoho.com.au", 993, S, "smtp.zoho.com.au", 465, S),
    ("zoho.jp", "zoho_jp", "imap.zoho.jp", 993, S, "smtp.zoho.jp", 465, S),
    ("zohocloud.ca", "zoho_ca", "imap.zohocloud.ca", 993, S, "smtp.zohocloud.ca", 465, S),
]


def test_catalog_loads_and_lists_every_provider() -> None:
    ids = [p.id for p in load_catalog().providers]
    assert sorted(ids) == sorted(REQUIRED_IDS)


@pytest.mark.parametrize("provider_id", REQUIRED_IDS)
def test_every_entry_has_usable_bilingual_fields(provider_id: str) -> None:
    provider = get_provider(provider_id)
    assert provider.name.en and provider.name.zh
    assert provider.password.label.en and provider.password.label.zh
    assert provider.password.where.en and provider.password.where.zh
    assert provider.sources
    assert provider.imap.port in (993, 143)
    assert provider.smtp.port in (465, 587)
    for quirk in provider.quirks:
        assert quirk.text.en and quirk.text.zh
    if provider.kind == "personal":
        assert provider.domains


@pytest.mark.parametrize(("domain", "provider_id", "ih", "ip", "isec", "sh", "sp", "ssec"), TABLE)
def test_provider_table_facts(
    domain: str, provider_id: str, ih: str, ip: int, isec: Security, sh: str, sp: int, ssec: Security
) -> None:
    provider = provider_for_domain(domain)
    assert provider is not None
    assert provider.id == provider_id
    assert (provider.imap.host, provider.imap.port, provider.imap.security) == (ih, ip, isec)
    assert (provider.smtp.host, provider.smtp.port, provider.smtp.security) == (sh, sp, ssec)


def test_oauth_required_for_outlook_and_m365_imap_only_outlook_smtp() -> None:
    outlook, m365, gmail = get_provider("outlook"), get_provider("microsoft365"), get_provider("gmail")
    assert outlook.imap.auth is AuthMethod.OAUTH2 and outlook.smtp.auth is AuthMethod.OAUTH2
    assert outlook.auth is AuthMethod.OAUTH2 and outlook.password.type is PasswordType.OAUTH2
    assert m365.imap.auth is AuthMethod.OAUTH2 and m365.smtp.auth is AuthMethod.PASSWORD
    assert m365.auth is AuthMethod.OAUTH2
    assert gmail.auth is AuthMethod.PASSWORD and gmail.oauth2_available


def test_backup_servers_exmail_and_netease_enterprise() -> None:
    exmail = get_provider("tencent_exmail")
    assert [s.host for s in exmail.imap.servers] == ["imap.exmail.qq.com", "hwimap.exmail.qq.com"]
    assert [s.host for s in exmail.smtp.servers] == ["smtp.exmail.qq.com", "hwsmtp.exmail.qq.com"]
    qiye = get_provider("netease_qiye")
    assert [(s.host, s.port) for s in qiye.imap.servers] == [
        ("hwhzimap.qiye.163.com", 993),
        ("imap.qiye.163.com", 993),
    ]
    assert [(s.host, s.port) for s in qiye.smtp.servers] == [
        ("hwhzsmtp.qiye.163.com", 465),
        ("smtp.qiye.163.com", 465),
    ]
    alibaba = get_provider("alibaba_qiye")
    assert alibaba.imap.host == "imap.qiye.aliyun.com"
    assert alibaba.imap.backups[0].host == "imap.mxhichina.com"
    foreign = get_provider("alibaba_foreign_trade")
    assert (foreign.imap.host, foreign.smtp.host) == ("imap.alibaba.com", "smtp.alibaba.com")


def test_quirks_from_providers_md() -> None:
    assert get_provider("netease").has_quirk(QuirkCode.IMAP_ID_REQUIRED)
    assert get_provider("netease_qiye").has_quirk(QuirkCode.AUTH_CODE_EXPIRES)
    assert get_provider("netease_qiye").has_quirk(QuirkCode.IP_RESTRICTION)
    assert get_provider("gmail").has_quirk(QuirkCode.STRIP_PASSWORD_WHITESPACE)
    assert get_provider("qq").has_quirk(QuirkCode.SMTP_FROM_MUST_MATCH_LOGIN)
    assert not get_provider("gmail").has_quirk(QuirkCode.IMAP_ID_REQUIRED)


def test_password_types() -> None:
    assert get_provider("aliyun").password.type is PasswordType.LOGIN_PASSWORD
    assert get_provider("china_telecom_21cn").password.type is PasswordType.LOGIN_PASSWORD
    assert get_provider("netease").password.type is PasswordType.APP_PASSWORD
    assert "授权码" in get_provider("netease").password.label.zh
    assert "独立密码" in get_provider("sohu").password.label.zh


@pytest.mark.parametrize(
    ("provider_id", "protocol", "expected"),
    [
        ("qq", "imap", ("u@qq.com", "u")),
        ("qq", "smtp", ("u@qq.com",)),
        ("icloud", "imap", ("u@qq.com", "u")),
        ("netease_qiye", "imap", ("u@qq.com",)),
        ("gmail", "imap", ("u@qq.com",)),
    ],
)
def test_username_candidates(provider_id: str, protocol: str, expected: tuple[str, ...]) -> None:
    policy = get_provider(provider_id).username
    assert policy.candidates("u@qq.com", protocol) == expected  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- strictness


def _raw() -> dict[str, object]:
    data = yaml.safe_load(CATALOG_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_unknown_key_is_refused() -> None:
    data = _raw()
    data["providers"][0]["imap"]["hostname"] = "imap.gmail.com"  # type: ignore[index]
    with pytest.raises(CatalogError, match="hostname"):
        parse_catalog(yaml.safe_dump(data, allow_unicode=True))


def test_unknown_top_level_key_and_bad_security_are_refused() -> None:
    data = _raw()
    data["extra"] = 1
    with pytest.raises(CatalogError):
        parse_catalog(yaml.safe_dump(data, allow_unicode=True))
    data = _raw()
    data["providers"][0]["imap"]["security"] = "plain"  # type: ignore[index]
    with pytest.raises(CatalogError, match="security"):
        parse_catalog(yaml.safe_dump(data, allow_unicode=True))


def test_duplicate_domain_across_providers_is_refused() -> None:
    data = _raw()
    data["providers"][1]["domains"] = ["gmail.com"]  # type: ignore[index]
    with pytest.raises(CatalogError, match=r"gmail\.com"):
        parse_catalog(yaml.safe_dump(data, allow_unicode=True))


def test_not_yaml_is_refused() -> None:
    with pytest.raises(CatalogError):
        parse_catalog("providers: [unclosed")


# ---------------------------------------------------------------------------------------------- matching


@pytest.mark.parametrize(
    ("pattern", "host", "expected"),
    [
        ("*.qq.com", "mx1.qq.com", True),
        ("*.qq.com", "a.b.qq.com", True),
        ("*.qq.com", "qq.com", False),
        ("*.qq.com", "evilqq.com", False),
        ("*.qq.com", "mx1.evilqq.com", False),
        ("*.qq.com", "mx1.qq.com.example", False),
        ("mx[1-3].qq.com", "mx2.qq.com", True),
        ("mx[1-3].qq.com", "mx4.qq.com", False),
        ("mx[1-3].qq.com", "mxbiz1.qq.com", False),
        ("mx[1-3].qq.com", "evilmx1.qq.com", False),
        ("163mx0[0-3].mxmail.netease.com", "163mx02.mxmail.netease.com", True),
        ("163mx0[0-3].mxmail.netease.com", "qiye163mx01.mxmail.netease.com", False),
        ("*.mail.*.outlook.com", "x.mail.eo.outlook.com", True),
        ("*.mail.*.outlook.com", "eur.olc.protection.outlook.com", False),
        ("aspmx.l.google.com", "ASPMX.L.GOOGLE.COM.", True),
        ("aspmx.l.google.com", "aspmx.l.google.com.evil.net", False),
    ],
)
def test_mx_matches_on_label_boundaries(pattern: str, host: str, expected: bool) -> None:
    assert mx_matches(pattern, host) is expected


@pytest.mark.parametrize(
    ("mx_host", "provider_id"),
    [
        ("mx.qiye.163.com", "netease_qiye"),
        ("qiye163mx01.mxmail.netease.com", "netease_qiye"),
        ("163mx00.mxmail.netease.com", "netease"),
        ("126mx01.mxmail.netease.com", "netease"),
        ("mxbiz1.qq.com", "tencent_exmail"),
        ("mx3.qq.com", "qq"),
        ("aspmx.l.google.com", "google_workspace"),
        ("alt2.aspmx.l.google.com", "google_workspace"),
        ("gmail-smtp-in.l.google.com", "gmail"),
        ("contoso-com.mail.protection.outlook.com", "microsoft365"),
        ("eur.olc.protection.outlook.com", "outlook"),
        ("mta6.am0.yahoodns.net", "yahoo"),
        ("mx-aol.mail.gm0.yahoodns.net", "aol"),
        ("mxw.mxhichina.com", "alibaba_qiye"),
        ("mx.yandex.net", "yandex"),
        ("mx.zoho.com", "zoho"),
        ("mx.zoho.eu", "zoho_eu"),
        ("mx.zoho.com.au", "zoho_au"),
        ("mx1.mail.icloud.com", "icloud"),
        ("mxs.mail.ru", "mailru"),
    ],
)
def test_provider_for_mx(mx_host: str, provider_id: str) -> None:
    match = provider_for_mx([mx_host])
    assert match is not None
    assert match.provider.id == provider_id


@pytest.mark.parametrize(
    "mx_host",
    [
        "evilqq.com.example",
        "mx1.evilqq.com",
        "mx1.qq.com.evil.net",
        "163mx00.mxmail.netease.com.cn",
        "example.com",
    ],
)
def test_provider_for_mx_refuses_lookalikes(mx_host: str) -> None:
    assert provider_for_mx([mx_host]) is None


def test_provider_for_mx_takes_first_matching_host_in_order() -> None:
    match = provider_for_mx(["mx.unknown.example", "mxbiz2.qq.com", "mx1.qq.com"])
    assert match is not None
    assert (match.provider.id, match.mx_host) == ("tencent_exmail", "mxbiz2.qq.com")


@pytest.mark.parametrize(
    "domain",
    ["evilqq.com", "evilqq.com.example", "x163.com", "qq.com.evil", "onmicrosoft.com", "mail.qq.com"],
)
def test_provider_for_domain_is_exact(domain: str) -> None:
    assert provider_for_domain(domain) is None


def test_provider_for_domain_normalises() -> None:
    provider = provider_for_domain(" QQ.COM. ")
    assert provider is not None and provider.id == "qq"
    assert split_email("Name@126.COM") == ("Name", "126.com")
    assert split_email("a@例子.公司")[1].startswith("xn--")
    with pytest.raises(ValueError, match="not an email"):
        split_email("no-at-sign")


def test_get_provider_unknown_raises() -> None:
    with pytest.raises(KeyError):
        get_provider("nope")


def test_known_server_hosts_include_backups() -> None:
    hosts = known_server_hosts()
    assert {"imap.gmail.com", "hwimap.exmail.qq.com", "imap.qiye.163.com", "smtp.office365.com"} <= hosts
