"""The whole classifier: each layer decides what it should, bad input never raises, the event helper."""

from __future__ import annotations

from datetime import date

import pytest

from laifaxin_classifier.classify import Classification, Classifier, make_snippet, to_mail_classified
from laifaxin_classifier.message import ClassifierInput
from laifaxin_shared.events.mail import MailClassified

from .conftest import make_eml
from .test_message import DSN, _event

QUOTE = (
    "\n\nOn Mon, Nov 16, 2026 at 9:12 AM Lily Zhang <lily@ningbo.cn> wrote:\n"
    "> Dear buyer, our MOQ is 100 pcs, best price, free samples and catalogue.\n"
    "> If you do not want our emails, reply unsubscribe.\n"
)


def classify_eml(classifier: Classifier, raw: bytes) -> Classification:
    return classifier.classify(ClassifierInput.from_bytes(raw))


def test_bounce_layer(classifier: Classifier) -> None:
    c = classify_eml(classifier, DSN)
    assert c.category == "bounce" and c.flags.bounce
    assert c.bounce is not None and c.bounce.kind == "hard" and c.bounce.recipient == "gone@example.org"


def test_auto_submitted_ooo_with_return_date(classifier: Classifier) -> None:
    raw = make_eml(
        "Thank you for your email. I am on annual leave and will return on 2 December 2026." + QUOTE,
        subject="Automatic reply: LED panels",
        headers={"Auto-Submitted": "auto-replied"},
    )
    c = classify_eml(classifier, raw)
    assert c.category == "ooo"
    assert c.flags.auto_submitted
    assert "header:auto-submitted=auto-replied" in c.reasons
    assert c.ooo_return_date == date(2026, 12, 2)


def test_auto_generated_notice_is_notification(classifier: Classifier) -> None:
    raw = make_eml(
        "Your invoice is available.", subject="Invoice ready", headers={"Auto-Submitted": "auto-generated"}
    )
    assert classify_eml(classifier, raw).category == "notification"


def test_ooo_phrase_without_headers(classifier: Classifier) -> None:
    raw = make_eml(
        "Ich bin bis zum 05.12.2026 nicht im Büro und habe keinen Zugriff auf E-Mails.", subject="AW: LED"
    )
    c = classify_eml(classifier, raw)
    assert c.category == "ooo" and "rule:ooo-phrase" in c.reasons
    assert c.ooo_return_date == date(2026, 12, 5)
    assert c.language == "de"


def test_left_company_is_ooo(classifier: Classifier) -> None:
    c = classify_eml(
        classifier, make_eml("I have left the company. Please contact Mark at mark@example.com.")
    )
    assert c.category == "ooo"


def test_list_headers_notification(classifier: Classifier) -> None:
    raw = make_eml(
        "This week's news.", subject="Weekly digest", headers={"List-Unsubscribe": "<mailto:u@news.example>"}
    )
    c = classify_eml(classifier, raw)
    assert c.category == "notification" and c.flags.mailing_list


def test_optout_rejection(classifier: Classifier) -> None:
    c = classify_eml(classifier, make_eml("Please remove me from your mailing list." + QUOTE))
    assert c.category == "rejection" and "rule:opt-out-phrase" in c.reasons


@pytest.mark.parametrize(
    ("body", "category", "language"),
    [
        (
            "Hi Lily,\n\nPlease send your best price for 2000 pcs FOB Ningbo and the lead time.",
            "inquiry",
            "en",
        ),
        ("你好，请报一下500个的价格，并告诉我们起订量。", "inquiry", "zh-Hans"),
        ("Hola, ¿nos pueden mandar muestras y la lista de precios?", "inquiry", "es"),
        ("We already have a supplier for this product, thanks.", "rejection", "en"),
        ("Wir haben kein Interesse, danke.", "rejection", "de"),
        ("Can we have a call next week to talk about your company?", "to_reply", "en"),
        ("请联系我们采购部的王经理。", "to_reply", "zh-Hans"),
    ],
)
def test_model_layer(classifier: Classifier, body: str, category: str, language: str) -> None:
    c = classify_eml(classifier, make_eml(body + QUOTE))
    assert c.category == category, c.reasons
    assert c.language == language
    assert any(r.startswith("model:") or r.startswith("rule:") for r in c.reasons)


def test_quoted_pitch_does_not_make_an_inquiry(classifier: Classifier) -> None:
    """Our own words (MOQ, price, samples, unsubscribe) sit in the quote; the reply itself asks for a call."""
    c = classify_eml(
        classifier, make_eml("Who gave you my address? Tell me about your company first." + QUOTE)
    )
    assert c.category == "to_reply"
    assert "MOQ" not in c.reply_text


def test_below_threshold_falls_back_to_to_reply() -> None:
    strict = Classifier(threshold=0.999)
    c = strict.classify(ClassifierInput(subject="Re: x", text="Please send the price list."))
    assert c.category == "to_reply"
    assert any(r.startswith("model:below-threshold:") for r in c.reasons)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (make_eml(""), "input:empty-text"),
        (b"", "input:empty-text"),
        (b"\x00\x01\x02\xff" * 1000, None),
        (
            b"From: a@b.c\nSubject: Re: x\nContent-Type: text/plain; charset=utf-8\n\n"
            + bytes(range(32)) * 100,
            "input:binary-garbage",
        ),
        (
            b"From: a@b.c\nContent-Type: text/plain; charset=nonsense-8\n\n\xe4\xbd\xa0\xe5\xa5\xbd",
            "input:body-charset-unknown",
        ),
        (make_eml("", html="<p>Please send the <b>catalogue</b></p>"), None),
        (make_eml("quote " * 1_000_000), "input:raw-truncated"),
        (b"Content-Type: multipart/mixed; boundary=X\n\n--X\nContent-Type: text/plain\n\nunterminated", None),
    ],
)
def test_bad_input_gets_a_category(classifier: Classifier, raw: bytes, reason: str | None) -> None:
    c = classify_eml(classifier, raw)
    assert c.category in {"to_reply", "ooo", "inquiry", "rejection", "bounce", "notification"}
    assert c.reasons
    if reason is not None:
        assert reason in c.reasons


def test_snippet_is_capped_at_a_word() -> None:
    s = make_snippet("word " * 200)
    assert len(s) <= 280 and s.endswith("…") and " wor…" not in s


def test_from_event_round_trip(classifier: Classifier) -> None:
    ev = _event(headers={"auto-submitted": "auto-replied"})
    c = classifier.classify(ClassifierInput.from_event(ev))
    assert c.category == "ooo"  # Auto-Submitted: auto-replied
    out = to_mail_classified(ev, c)
    assert isinstance(out, MailClassified)
    assert out.received_event_id == str(ev.event_id)
    assert (out.tenant_id, out.user_id, out.ref, out.subject) == (
        ev.tenant_id,
        ev.user_id,
        ev.ref,
        ev.subject,
    )
    assert out.from_ == ev.from_ and out.ooo_return_date == date(2026, 12, 2)
    assert out.snippet.startswith("Ich bin bis zum")
    again = MailClassified.model_validate_json(out.model_dump_json(by_alias=True))
    assert again == out
