"""Property-based fuzzing of classification: generated subjects, bodies and header fields (mail-like fragments
mixed with arbitrary Unicode, some repeated into long runs) through the worker pool, each case under the
pool's per-message CPU budget (no wall-clock assertion: the budget counts the worker's CPU seconds).

Properties: every case is classified (never abandoned, never an error), and its ``mail.classified`` event is
valid (category, confidence in [0, 1], snippet of at most 280 characters, event id derived from the message).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from laifaxin_classifier.pool import ClassifierPool
from laifaxin_classifier.service import classified_events
from laifaxin_shared.events import EmailAddress, MailClassified, MailReceived
from laifaxin_shared.events.mail import TEXT_CAP_CHARS
from laifaxin_shared.topics import spec
from laifaxin_shared.wire import serialize

FRAGMENTS = [
    "On Mon, 16 Nov 2026 Lily <lily@ningbo.cn> wrote:",
    "-----Original Message-----",
    "From: Lily Zhang\nSent: Monday\nTo: buyer\nSubject: LED",
    "发件人: 李\n发送时间: 2026年11月16日",
    "> quoted line",
    "Best regards,",
    "-- ",
    "Sent from my iPhone",
    "I am out of the office until 2 December.",
    "Ich bin bis 15.12.2026 nicht im Büro.",
    "我正在休假，将于12月3日返回。",
    "Please remove me from your mailing list.",
    "Please send your best price and MOQ.",
    "This is an automated message, please do not reply.",
    "Delivery to the following recipient failed permanently:",
    "Status: 5.1.1\nAction: failed\nFinal-Recipient: rfc822; a@b.c",
    "Diagnostic-Code: smtp; 550 5.1.1 user unknown",
    "Re: AW: Re[2]: ",
    " \t",
    "\n",
    "@",
    "<a@b.c>:",
    "_" * 25,
    "==",
    "1.1. ",
    "http://x.example/",
]
HEADER_NAMES = [
    "auto-submitted",
    "x-autoreply",
    "precedence",
    "list-id",
    "list-unsubscribe",
    "x-failed-recipients",
    "return-path",
    "x-ms-exchange-generated-message-source",
]

piece = st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=40))
run = st.tuples(st.sampled_from(FRAGMENTS), st.integers(min_value=2, max_value=3000)).map(
    lambda t: t[0] * t[1]
)
body = (
    st.lists(st.one_of(piece, piece, piece, run), max_size=12).map("".join).map(lambda s: s[:TEXT_CAP_CHARS])
)
subject = st.lists(st.one_of(piece, run), max_size=4).map("".join).map(lambda s: s[:4096])
headers = st.dictionaries(
    st.sampled_from(HEADER_NAMES), st.one_of(piece, run).map(lambda s: s[:2000]), max_size=3
)


@pytest.fixture(scope="module")
def runner_pool() -> Iterator[tuple[asyncio.Runner, ClassifierPool]]:
    """A pool on its own event loop (hypothesis drives synchronous tests)."""
    runner = asyncio.Runner()
    pool = ClassifierPool(1, budget_s=2.0, wall_limit_s=120.0)
    runner.run(pool.start())
    yield runner, pool
    runner.run(pool.close())
    runner.close()


def received(text: str, subj: str, hdrs: dict[str, str]) -> MailReceived:
    base = MailReceived.model_validate(spec("mail.received").examples()[0])
    return base.model_copy(
        update={
            "event_id": uuid.uuid4(),
            "subject": subj,
            "text": text,
            "headers": hdrs,
            "from_": EmailAddress(name="Buyer", email="buyer@example.com"),
        }
    )


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(text=body, subj=subject, hdrs=headers)
def test_any_message_is_classified_within_budget(
    runner_pool: tuple[asyncio.Runner, ClassifierPool], text: str, subj: str, hdrs: dict[str, str]
) -> None:
    runner, pool = runner_pool
    event = received(text, subj, hdrs)
    outcome = runner.run(pool.classify(serialize(event)))
    assert outcome.reason is None and outcome.classification is not None, outcome
    [classified] = classified_events([(event, outcome.classification)])
    MailClassified.model_validate_json(serialize(classified))
    assert 0.0 <= classified.confidence <= 1.0
    assert len(classified.snippet) <= 280
    assert classified.event_id == event.ref.derived_event_id("mail.classified")
