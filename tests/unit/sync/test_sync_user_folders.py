"""Which of a mailbox's folders are synced as the user's own (SYNC_USER_FOLDERS): SPECIAL-USE attributes
(RFC 6154), localized names where the server does not advertise SPECIAL-USE, the cap, and the loop's LIST."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from imapclient import imap_utf7

from laifaxin_shared.crypto import KeyRing
from laifaxin_shared.settings import DEV_CREDENTIAL_KEYS
from laifaxin_sync import mailbox_loop
from laifaxin_sync.imap_parse import find_junk, find_user_folders, parse_list
from laifaxin_sync.mailbox_loop import MailboxLoop, WorkerContext
from laifaxin_sync.metrics import SyncMetrics
from laifaxin_sync.settings import SyncSettings


def utf7(name: str) -> bytes:
    """A folder name as a quoted LIST name in modified UTF-7 (RFC 3501 5.1.3)."""
    return b'"' + imap_utf7.encode(name) + b'"'


def chosen(lines: list[bytes], *, special_use: bool, limit: int = 50) -> list[str]:
    entries = parse_list(lines)
    found = find_user_folders(entries, junk=find_junk(entries), special_use=special_use, limit=limit)
    return [e.name for e in found.chosen]


GMAIL = [
    b'(\\HasNoChildren) "/" "INBOX"',
    b'(\\HasNoChildren) "/" "Customers"',
    b'(\\HasChildren) "/" "Clients"',
    b'(\\HasNoChildren) "/" "Clients/Europe"',
    b'(\\HasChildren \\Noselect) "/" "[Gmail]"',
    b'(\\All \\HasNoChildren) "/" "[Gmail]/All Mail"',
    b'(\\Drafts \\HasNoChildren) "/" "[Gmail]/Drafts"',
    b'(\\HasNoChildren \\Important) "/" "[Gmail]/Important"',
    b'(\\HasNoChildren \\Sent) "/" "[Gmail]/Sent Mail"',
    b'(\\HasNoChildren \\Junk) "/" "[Gmail]/Spam"',
    b'(\\Flagged \\HasNoChildren) "/" "[Gmail]/Starred"',
    b'(\\HasNoChildren \\Trash) "/" "[Gmail]/Trash"',
]


def test_special_use_folders_and_containers_are_not_user_folders() -> None:
    # Gmail advertises SPECIAL-USE: labels are folders; All Mail, Important and Starred would repeat INBOX.
    assert chosen(GMAIL, special_use=True) == ["Customers", "Clients", "Clients/Europe"]


def test_dovecot_archive_and_nonexistent_are_skipped() -> None:
    lines = [
        b'(\\HasNoChildren) "/" INBOX',
        b'(\\HasNoChildren \\UnMarked \\Archive) "/" Archive',
        b'(\\HasNoChildren \\Junk) "/" Junk',
        b'(\\NonExistent \\HasChildren) "/" Gone',
        b'(\\HasNoChildren) "/" Gone/Kept',
        b'(\\HasNoChildren) "/" Customers',
        b'(\\HasNoChildren) "/" Customers',  # listed twice: counted once
    ]
    assert chosen(lines, special_use=True) == ["Gone/Kept", "Customers"]


def test_qq_mail_names_without_special_use() -> None:
    lines = [
        b'(\\HasNoChildren) "/" "INBOX"',
        b'(\\HasNoChildren) "/" "Sent Messages"',
        b'(\\HasNoChildren) "/" "Drafts"',
        b'(\\HasNoChildren) "/" "Deleted Messages"',
        b'(\\HasNoChildren) "/" "Junk"',
        b'(\\HasChildren \\Noselect) "/" ' + utf7("其他文件夹"),
        b'(\\HasNoChildren) "/" ' + utf7("其他文件夹/客户回复"),
        b'(\\HasNoChildren) "/" ' + utf7("QQ邮件订阅"),
    ]
    assert chosen(lines, special_use=False) == ["其他文件夹/客户回复", "QQ邮件订阅"]


def test_netease_names_without_special_use() -> None:
    names = ["INBOX", "草稿箱", "已发送", "已删除", "垃圾邮件", "病毒邮件", "广告邮件", "订阅邮件", "询盘"]
    lines = [b'(\\HasNoChildren) "/" ' + utf7(n) for n in names]
    assert chosen(lines, special_use=False) == ["订阅邮件", "询盘"]


@pytest.mark.parametrize(
    "name",
    [
        "Sent",
        "Sent Items",
        "INBOX.Sent",
        "INBOX.Trash",
        "Deleted Items",
        "Outbox",
        "Bin",
        "[Gmail]/All Mail",
        "[Gmail]/已发邮件",
        "[Gmail]/已删除邮件",
        "[Gmail]/草稿",
        "寄件備份",
        "Spam",
    ],
)
def test_usual_names_are_skipped_only_without_special_use(name: str) -> None:
    delimiter = b"/" if "/" in name else b"."
    lines = [b'(\\HasNoChildren) "/" INBOX', b'(\\HasNoChildren) "' + delimiter + b'" ' + utf7(name)]
    assert chosen(lines, special_use=False) == []
    # A server that advertises SPECIAL-USE marks its own Sent/Trash: a folder named so without the attribute
    # is the user's.
    if name != "Spam":  # the Junk folder found by name stays Junk whatever the capability
        assert chosen(lines, special_use=True) == [name]


def test_inbox_any_case_and_its_children() -> None:
    lines = [
        b'(\\HasChildren) "." "Inbox"',
        b'(\\HasNoChildren) "." "INBOX.Customers"',
        b'(\\HasNoChildren) "." "INBOX.Sent Messages"',
    ]
    assert chosen(lines, special_use=False) == ["INBOX.Customers"]


def test_the_cap_keeps_the_first_in_list_order() -> None:
    lines = [b'(\\HasNoChildren) "/" INBOX'] + [b'(\\HasNoChildren) "/" F%d' % i for i in range(5)]
    entries = parse_list(lines)
    found = find_user_folders(entries, junk=None, special_use=True, limit=3)
    assert [e.name for e in found.chosen] == ["F0", "F1", "F2"]
    assert [e.name for e in found.left_out] == ["F3", "F4"]
    none = find_user_folders(entries, junk=None, special_use=True, limit=0)
    assert none.chosen == [] and len(none.left_out) == 5


# ---------------------------------------------------------------------------------------------- the loop's LIST


@dataclass
class Reply:
    result: str
    lines: list[Any]


@dataclass
class FakeClient:
    lines: list[bytes]
    capabilities: set[str] = field(default_factory=lambda: {"SPECIAL-USE"})
    lists: int = 0

    async def list(self, reference: str, pattern: str) -> Reply:
        assert (reference, pattern) == ('""', "*")
        self.lists += 1
        return Reply("OK", [*self.lines, b"List completed (0.001 + 0.000 secs)."])

    def has_capability(self, name: str) -> bool:
        return name in self.capabilities


def make_loop(**settings: Any) -> tuple[MailboxLoop, SyncMetrics]:
    metrics = SyncMetrics()
    ctx = WorkerContext(
        SyncSettings(environment="test", http_port=0, **settings),
        None,  # type: ignore[arg-type]  # the LIST touches neither the store nor the publisher
        None,  # type: ignore[arg-type]
        metrics,
        KeyRing.parse(DEV_CREDENTIAL_KEYS, "dev-0"),
    )
    config = {"_id": "mbx_1", "partition": 0, "tenant_id": "t1", "user_id": "u1"}
    return MailboxLoop(config, ctx), metrics


class Log:
    def __init__(self) -> None:
        self.warnings: list[tuple[str, dict[str, Any]]] = []

    def warning(self, event: str, **fields: Any) -> None:
        self.warnings.append((event, fields))

    def info(self, event: str, **fields: Any) -> None:
        pass


async def test_list_gives_junk_and_user_folders_and_logs_the_left_out_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log = Log()
    monkeypatch.setattr(mailbox_loop, "log", log)
    loop, metrics = make_loop(max_user_folders=2)
    client = FakeClient(
        [
            b'(\\HasNoChildren) "/" INBOX',
            b'(\\HasNoChildren \\Junk) "/" Junk',
            b'(\\HasNoChildren \\Sent) "/" Sent',
            b'(\\HasNoChildren) "/" Customers',
            b'(\\HasNoChildren) "/" ' + utf7("询盘"),
            b'(\\HasNoChildren) "/" Newsletters',
        ]
    )
    listed = await loop._list_folders(client)  # type: ignore[arg-type]
    assert listed is not None
    junk, others = listed
    assert junk is not None and (junk.name, junk.role) == ("Junk", "junk")
    assert [(f.name, f.command_name, f.role) for f in others] == [
        ("Customers", "Customers", "other"),
        ("询盘", imap_utf7.encode("询盘").decode(), "other"),
    ]
    assert [(e, f["folders"], f["left_out"]) for e, f in log.warnings] == [
        ("user folders over the limit are not synced", ["Newsletters"], 1)
    ]
    await loop._list_folders(client)  # type: ignore[arg-type]
    assert len(log.warnings) == 1  # logged once while the same folders are left out
    loop._count_user_folders(len(others))
    assert metrics.user_folders._value.get() == 2
    loop._count_user_folders(0)
    assert metrics.user_folders._value.get() == 0


async def test_user_folders_off_keeps_inbox_and_junk_only() -> None:
    loop, _ = make_loop(user_folders=False)
    client = FakeClient([b'(\\HasNoChildren) "/" INBOX', b'(\\HasNoChildren) "/" Customers'])
    assert await loop._list_folders(client) == (None, [])  # type: ignore[arg-type]
