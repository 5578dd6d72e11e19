"""Reply matching, pure parts: subject prefixes of real clients, contact status, the evaluation figures on the
generated corpus, and ``laifaxin-mail replies match``."""

from __future__ import annotations

import asyncio
import json
import mailbox
from pathlib import Path

import pytest

from laifaxin_classifier.matching.cli import DEV_REPLY_TOKEN_KEYS
from laifaxin_classifier.matching.corpus import generate
from laifaxin_classifier.matching.evaluate import score
from laifaxin_classifier.matching.status import contact_status, status_kind
from laifaxin_classifier.matching.subjects import reply_subject, subject_key
from laifaxin_cli.main import main
from laifaxin_shared.events import BounceInfo, MailClassified, ReplyMatch
from laifaxin_shared.replytoken import ReplyTokens
from laifaxin_shared.topics import spec


@pytest.mark.parametrize(
    "subject",
    [
        "Re: Quotation for LED panels",
        "RE: Quotation for LED panels",
        "RE: RE: Quotation for LED panels",
        "回复：Quotation for LED panels",
        "回复: Quotation for LED panels",
        "答复: Quotation for LED panels",
        "回覆：Quotation for LED panels",
        "Antw: Quotation for LED panels",
        "AW: Quotation for LED panels",
        "SV: Quotation for LED panels",
        "Odp: Quotation for LED panels",
        "Re：Quotation for LED panels",
        "Ynt: Quotation for LED panels",
        "Vá: Quotation for LED panels",
        "Re[2]: Quotation for LED panels",
        "Automatic reply: Quotation for LED panels",
        "自动回复: Quotation for LED panels",
        "[External] RE: Quotation  for LED panels",
    ],
)
def test_reply_prefixes_of_real_clients_lead_to_the_sent_subject(subject: str) -> None:
    stripped = reply_subject(subject)
    assert stripped is not None and stripped[1] >= 1
    assert subject_key(stripped[0]) == subject_key("Quotation for LED panels")


@pytest.mark.parametrize(
    "subject", ["Fwd: Quotation", "FW: Quotation", "转发: Quotation", "WG: Quotation", "Re: Fwd: x"]
)
def test_forwards_are_not_replies(subject: str) -> None:
    assert reply_subject(subject) is None


def test_a_subject_without_prefix_is_not_marked_a_reply() -> None:
    assert reply_subject("Quotation for LED panels") == ("quotation for led panels", 0)
    assert reply_subject("Reunion plans") == ("reunion plans", 0)


def _classified(**update: object) -> MailClassified:
    base = MailClassified.model_validate(spec("mail.classified").examples()[0])
    match = ReplyMatch(
        sent_message_id="lfx.1@mail.laifaxin.test",
        sent_mailbox_id="mbx_system",
        owner_tenant_id="tenant-acme",
        owner_user_id="u_42",
        campaign_id="cmp_1",
        recipient="maria@buyer.example",
        method="in_reply_to",
        confidence=1.0,
        system_mailbox=True,
    )
    return base.model_copy(update={"match": match, **update})


@pytest.mark.parametrize(
    ("category", "bounce", "reasons", "status"),
    [
        ("to_reply", None, [], "replied"),
        ("inquiry", None, [], "replied"),
        ("ooo", None, [], "out_of_office"),
        ("rejection", None, ["rule:opt-out-phrase"], "opted_out"),
        ("bounce", BounceInfo(kind="hard", status="5.1.1"), [], "bounced_hard"),
        ("bounce", BounceInfo(kind="soft", status="4.2.2"), [], "bounced_soft"),
        ("bounce", BounceInfo(kind="unknown"), [], "bounced_soft"),
        ("notification", None, ["report:feedback-report"], "opted_out"),
        ("notification", None, ["header:list-id"], None),
    ],
)
def test_status_from_the_category(
    category: str, bounce: BounceInfo | None, reasons: list[str], status: str | None
) -> None:
    assert status_kind(_classified(category=category, bounce=bounce, reasons=reasons)) == status


def test_contact_status_carries_owner_evidence_and_return_date() -> None:
    from datetime import date

    c = _classified(category="ooo", ooo_return_date=date(2026, 12, 15))
    s = contact_status(c)
    assert s is not None
    assert (s.tenant_id, s.user_id, s.recipient, s.status) == (
        "tenant-acme",
        "u_42",
        "maria@buyer.example",
        "out_of_office",
    )
    assert s.return_date == date(2026, 12, 15)
    assert s.evidence.sent_message_id == "lfx.1@mail.laifaxin.test" and s.evidence.reply == c.ref
    assert s.key() == "tenant-acme:maria@buyer.example"
    assert contact_status(c) == s  # deterministic event id
    assert contact_status(c.model_copy(update={"match": None})) is None


def test_precision_and_recall_on_the_generated_corpus() -> None:
    """The figures the brief asks for: overall precision >= 0.99 and recall >= 0.95; threading headers and
    reply tokens stripped (heuristic and DSN only) precision >= 0.95."""
    tokens = ReplyTokens.parse(DEV_REPLY_TOKEN_KEYS, "dev")
    corpus = generate(tokens, n_sent=300, seed=11)
    full = asyncio.run(score(corpus, tokens))
    bare = asyncio.run(score(corpus, tokens, stripped=True))
    print(
        f"all: precision={full['precision']} recall={full['recall']}; stripped: precision={bare['precision']}"
    )
    assert full["precision"] >= 0.99, full["errors"]
    assert full["recall"] >= 0.95, full["errors"]
    assert bare["precision"] >= 0.95, bare["errors"]
    assert {"in_reply_to", "reply_token", "dsn", "heuristic"} <= set(full["by_method"])
    assert set(bare["by_method"]) <= {"dsn", "heuristic"}


def test_cli_replies_match_reads_sent_jsonl_and_a_maildir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tokens = ReplyTokens.parse(DEV_REPLY_TOKEN_KEYS, "dev")
    corpus = generate(tokens, n_sent=30, seed=3)
    acme = [c for c in corpus.cases if c.mailbox.mailbox_id == "mbx_acme"]
    sent = [s for s in corpus.sent if s.mailbox_id == "mbx_acme"]
    sent_file = tmp_path / "sent.jsonl"
    sent_file.write_text("\n".join(s.model_dump_json(by_alias=True) for s in sent) + "\n", encoding="utf-8")
    box = mailbox.Maildir(tmp_path / "md", create=True)
    keys = [box.add(c.raw) for c in acme]
    code = main(["replies", "match", "--sent", str(sent_file), str(tmp_path / "md")])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 0 and len(lines) == len(acme)
    expected = {k: c.expected for k, c in zip(keys, acme, strict=True)}
    for line in lines:
        assert set(line) >= {
            "path",
            "matched",
            "sent_message_id",
            "campaign_id",
            "recipient",
            "method",
            "confidence",
        }
        assert line["sent_message_id"] == expected[line["key"]]
        assert line["matched"] is (line["sent_message_id"] is not None)


def test_cli_replies_match_refuses_a_bad_sent_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "sent.jsonl"
    bad.write_text('{"not": "a mail.sent"}\n', encoding="utf-8")
    eml = tmp_path / "a.eml"
    eml.write_bytes(b"From: a@b.example\nSubject: hi\n\nhello\n")
    assert main(["replies", "match", "--sent", str(bad), str(eml)]) == 2
    assert "sent.jsonl:1" in capsys.readouterr().err
