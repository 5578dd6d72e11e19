"""No input makes the classifier's regular expressions backtrack catastrophically.

Each hostile message goes through the service's own path (shared MIME parse -> ``mail.received`` JSON ->
the worker pool) under the pool's per-message CPU budget: a message that overran it would come back without
a classification (``budget:exceeded``). No wall-clock assertions: the budget counts the worker's CPU
seconds, which other load on the machine does not consume.

The worst cases are generated per pattern from the patterns themselves (every compiled regex of the
classifier modules): for each, runs of the characters its repeats accept, each run behind every literal word
the pattern starts with, at the size of a whole body (the text cap), as body, subject, header value and
delivery-status text.
"""

from __future__ import annotations

import re
import re._constants as sre_constants
import re._parser as sre_parse
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from laifaxin_classifier import bounce, classify, dates, lexicon, message, model, reply, rules
from laifaxin_classifier.pool import ClassifierPool, Outcome
from laifaxin_classifier.reply import quote_start
from laifaxin_shared.events import EmailAddress, MailReceived
from laifaxin_shared.events.mail import TEXT_CAP_CHARS
from laifaxin_shared.mime import parse_message
from laifaxin_shared.topics import spec
from laifaxin_shared.wire import serialize

BUDGET_S = 2.0
MODULES: tuple[ModuleType, ...] = (reply, rules, bounce, dates, lexicon, model, classify, message)


@pytest.fixture(scope="module")
async def pool() -> AsyncIterator[ClassifierPool]:
    p = ClassifierPool(1, budget_s=BUDGET_S, wall_limit_s=120.0)
    await p.start()
    yield p
    await p.close()


def base_event() -> MailReceived:
    return MailReceived.model_validate(spec("mail.received").examples()[0])


def event_bytes(
    text: str = "", subject: str = "Re: LED", headers: dict[str, str] | None = None, dsn: str | None = None
) -> bytes:
    ev = base_event().model_copy(
        update={
            "subject": subject[:4096],
            "text": text[:TEXT_CAP_CHARS],
            "headers": headers or {},
            "delivery_status": None if dsn is None else dsn[:TEXT_CAP_CHARS],
            "from_": EmailAddress(name="Buyer", email="buyer@example.com"),
            "in_reply_to": "x@y",
        }
    )
    return serialize(ev)


def parsed_bytes(raw: bytes) -> bytes:
    """What sync publishes for ``raw``: the shared parser's ``mail.received`` event, as JSON."""
    ev = parse_message(raw).to_event(
        tenant_id="t", user_id="u", mailbox_id="mbx_1", folder="INBOX", uidvalidity=1, uid=1, raw_ref="r"
    )
    return serialize(ev)


def within_budget(outcome: Outcome) -> bool:
    return outcome.classification is not None and outcome.reason is None


HEADER = (
    b"From: a@b.example\r\nTo: x@y.example\r\nSubject: hi\r\nMessage-ID: <a@b.example>\r\n"
    b"Date: Sat, 21 Nov 2026 08:29:30 +0000\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
)


@pytest.mark.parametrize("n", [300, 500, 16_000])
async def test_reported_blank_run_is_classified_within_budget(pool: ClassifierPool, n: int) -> None:
    # the reported message: 738 bytes at n = 300 took 8.5 s of CPU before the fix (cubic in n)
    raw = HEADER + ("Hi,\r\n" + " \t" * n + "x").encode()
    outcome = await pool.classify(parsed_bytes(raw))
    assert within_budget(outcome), outcome
    assert outcome.classification is not None and outcome.classification.category == "to_reply"


HAND_WRITTEN = [
    "Hi,\n" + " \t" * 16_000 + "x",
    "Hi,\n" + (" \t\n" * 10_000),
    "Hi,\n" + ("-" * 50 + "\n") * 600 + "x",
    "Hi,\n" + ("> " * 5000 + "--" + " " * 5000 + "Original Message"),
    ("@" * 200 + "\n") * 160,
    ("On " + "x" * 199 + "\n") * 160,
    ("From: x\n" * 4000),
    ("<a@" * 10_000) + "b",
    "<" + "a" * 30_000 + "@",
    "re" + " " * 30_000,
    "1 " * 16_000,
    "bis 1.1. " * 3000,
    "abwesend ab ab ab " * 1500,
    "a" * 32_000,
    "a." * 16_000 + "@",
    "Diagnostic-Code: " + "\n" * 30_000,
    "Final-Recipient: rfc822; " + "a" * 30_000,
    "the following message to <" * 1200,
]


@pytest.mark.parametrize("text", HAND_WRITTEN, ids=range(len(HAND_WRITTEN)))
async def test_hand_written_worst_cases(pool: ClassifierPool, text: str) -> None:
    for payload in (
        event_bytes(text),
        event_bytes("Hi", subject=text),
        event_bytes("Hi", headers={"auto-submitted": text, "precedence": text}),
        event_bytes("Hi", dsn=text),
    ):
        outcome = await pool.classify(payload)
        assert within_budget(outcome), (text[:40], outcome)


# --- worst cases generated from the patterns -----------------------------------------------------------------


def compiled_patterns() -> list[tuple[str, re.Pattern[str]]]:
    """Every compiled regex held by the classifier modules (module globals, and inside tuples/lists/dicts)."""
    found: dict[int, tuple[str, re.Pattern[str]]] = {}

    def visit(name: str, value: Any, depth: int = 0) -> None:
        if isinstance(value, re.Pattern) and isinstance(value.pattern, str):
            found.setdefault(id(value), (name, value))
        elif depth < 3 and isinstance(value, tuple | list):
            for i, item in enumerate(value):
                visit(f"{name}[{i}]", item, depth + 1)
        elif depth < 3 and isinstance(value, dict):
            for key, item in value.items():
                visit(f"{name}[{key!r}]", item, depth + 1)

    for module in MODULES:
        for name, value in vars(module).items():
            visit(f"{module.__name__}.{name}", value)
    return sorted(found.values(), key=lambda item: item[0])


def _class_chars(items: list[tuple[Any, Any]]) -> set[str]:
    chars: set[str] = set()
    for op, av in items:
        if op is sre_constants.LITERAL:
            chars.add(chr(av))
        elif op is sre_constants.RANGE:
            chars.update({chr(av[0]), chr(av[1])})
        elif op is sre_constants.CATEGORY:
            chars.update(
                {
                    sre_constants.CATEGORY_SPACE: " \t\n\r\u3000",
                    sre_constants.CATEGORY_DIGIT: "7",
                    sre_constants.CATEGORY_WORD: "a_7é",
                    sre_constants.CATEGORY_NOT_SPACE: "a@",
                    sre_constants.CATEGORY_NOT_WORD: " -@",
                }.get(av, "")
            )
    return chars


def pattern_material(pattern: re.Pattern[str]) -> tuple[set[str], set[str]]:
    """(characters the pattern's repeats accept, literal words it contains) from its parse tree."""
    repeat_chars: set[str] = set()
    words: set[str] = set()

    def walk(sub: Any, in_repeat: bool) -> None:
        word = ""
        for op, av in sub:
            if op is sre_constants.LITERAL:
                word += chr(av)
                if in_repeat:
                    repeat_chars.add(chr(av))
                continue
            if len(word) >= 2:
                words.add(word)
            word = ""
            if op in (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT, sre_constants.POSSESSIVE_REPEAT):
                walk(av[2], in_repeat or av[1] > 1)
            elif op is sre_constants.SUBPATTERN:
                walk(av[3], in_repeat)
            elif op is sre_constants.ATOMIC_GROUP:
                walk(av, in_repeat)
            elif op is sre_constants.BRANCH:
                for branch in av[1]:
                    walk(branch, in_repeat)
            elif op is sre_constants.IN and in_repeat:
                repeat_chars.update(_class_chars(av))
            elif op is sre_constants.ANY and in_repeat:
                repeat_chars.update(" a@<")
            elif op in (sre_constants.ASSERT, sre_constants.ASSERT_NOT):
                walk(av[1], in_repeat)
        if len(word) >= 2:
            words.add(word)

    walk(sre_parse.parse(pattern.pattern, pattern.flags), False)
    return repeat_chars, words


GENERATED_SIZE = 8_000
"""Characters of a generated case: a cubic pattern costs minutes here, a quadratic one seconds."""


def generated_cases(pattern: re.Pattern[str], size: int = GENERATED_SIZE) -> Iterator[str]:
    """Bodies built to make ``pattern`` backtrack: runs of each repeat character, pairs of them alternating
    (the overlapping-quantifier shape), each behind the pattern's literal words, with and without line breaks."""
    chars, words = pattern_material(pattern)
    ordered = sorted(chars)[:6]
    pumps = [c * size for c in ordered]
    pumps += [(a + b) * (size // 2) for a in ordered[:3] for b in ordered[:3] if a < b]
    pumps += [(c + "\n") * (size // 2) for c in ordered[:2]]
    for prefix in ["", *sorted(words, key=len)[:2]]:
        for pump in pumps:
            yield (prefix + pump)[:size]
        yield (prefix + " \n") * (size // (len(prefix) + 2))


PATTERNS = compiled_patterns()
CASES = sorted({case for _, pattern in PATTERNS for case in generated_cases(pattern)})
HEADER_CASES = sorted(
    {
        case
        for name, pattern in PATTERNS
        if ".rules." in name or ".bounce." in name
        for case in generated_cases(pattern)
    }
)


def test_every_module_pattern_is_covered() -> None:
    names = [name for name, _ in PATTERNS]
    assert any("reply._ORIGINAL_LINE" in n for n in names)
    assert any("rules._OOO_BODY" in n for n in names)
    assert any("dates._DAY_MONTH" in n for n in names)
    assert any("bounce._DIAG" in n for n in names)
    assert len(PATTERNS) > 50
    assert len(CASES) > 100


@pytest.mark.parametrize("field", ["text", "subject", "headers", "delivery_status"])
async def test_generated_worst_cases(pool: ClassifierPool, field: str) -> None:
    def payload(text: str) -> bytes:
        if field == "text":
            return event_bytes(text)
        if field == "subject":
            return event_bytes("Hi", subject=text[:4096])
        if field == "headers":
            return event_bytes(
                "Hi", headers={"auto-submitted": text, "precedence": text, "x-autogenerated": text}
            )
        return event_bytes("Hi", dsn=text)

    cases = CASES if field in ("text", "subject") else HEADER_CASES
    outcomes = await pool.classify_many([payload(text) for text in cases])
    slow = [text[:30] for text, o in zip(cases, outcomes, strict=True) if not within_budget(o)]
    assert not slow


# --- the line-wise quote scan finds what the old single regex found ------------------------------------------

_OLD_QUOTE_HEADER = re.compile(
    "|".join(
        [
            rf"^[ \t>*]*(?:{reply._FROM})[ \t*]*[:：].*\n(?:.*\n){{0,3}}?[ \t>*]*(?:{reply._OTHER})[ \t*]*[:：]",
            rf"^[ \t>]*(?:On|Am|Le|El|Il|Em|Op|W dniu|Dnia|В|Vào|في|在|於|于|\d{{1,4}}[年/.-]).{{0,200}}?(?:\n.{{0,120}}?)?(?:{reply._WROTE})[ \t]*[:：]?[ \t]*$",
            rf"^[^\n]{{0,200}}@[^\n]{{0,120}}(?:{reply._WROTE})[ \t]*[:：]?[ \t]*$",
            r"^[ \t>]*.{0,160}<[^<>@\s]+@[^<>\s]+>[ \t]*[:：][ \t]*$",
            rf"^[ \t>]*[-=_*\s]{{2,}}[ \t]*(?:{reply._ORIGINAL})[ \t]*[-=_*]{{2,}}",
            rf"^[ \t>]*(?:Begin forwarded message|Anfang der weitergeleiteten Nachricht|{reply._ORIGINAL})[ \t]*:?[ \t]*$",
            r"^[ \t]*_{20,}[ \t]*$",
        ]
    ),
    re.MULTILINE | re.IGNORECASE,
)
"""The quote-header regex before the line-wise rewrite (cubic on blank runs): the reference on short texts."""

_PIECES = st.sampled_from(
    [
        "On Mon, 16 Nov 2026 Lily <l@x.cn> wrote:",
        "On Mon",
        "wrote:",
        "Lily <lily@ningbo.cn>:",
        "li@x.cn",
        "a@b schrieb",
        "From: Lily",
        "Sent: Monday",
        "发件人: 李",
        "主题: LED",
        "-----Original Message-----",
        "--- Original Message --",
        "Original Message --",
        "> -- Original Message --",
        "原始邮件",
        "Begin forwarded message:",
        "_" * 22,
        "-- ",
        "> quoted",
        "Thanks",
        "2026/11/16 Lily 写道：",
        "Am 16.11.2026 schrieb Lily:",
        " ",
        "\t",
        ">",
        "-",
        "*",
        "=",
        "x",
        "",
    ]
)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.lists(_PIECES, max_size=4).map(" ".join), max_size=8).map("\n".join))
def test_line_scan_matches_the_old_regex(text: str) -> None:
    old = _OLD_QUOTE_HEADER.search(text)
    assert quote_start(text) == (None if old is None else old.start())


def test_rule_over_blank_line_starts_where_the_old_regex_did() -> None:
    for text in [
        "\n-----Original Message----- On Mon, 16 Nov 2026 Lily <l@x.cn> wrote:",
        "\n______________________\n-----Original Message-----",
    ]:
        assert quote_start(text) == 0 == _OLD_QUOTE_HEADER.search(text).start(), text  # type: ignore[union-attr]


def test_reply_prefix_subject_not_quadratic() -> None:
    # strip_subject_prefixes on "re" + blanks: a possessive run, one pass (was quadratic)
    from laifaxin_classifier.reply import strip_subject_prefixes

    assert strip_subject_prefixes("re" + " " * 4000 + "x")[1] is False
    assert strip_subject_prefixes("Re [2] :  AW: x") == ("x", True)


def test_addresses_masked_like_before() -> None:
    old = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
    for text in ["mail li@x.cn now", "a@b.c+d@e.f", "x.y+z@sub.example.org,", "no at here", "@@a@b.cc"]:
        assert model.model_text("", text) == model.model_text("", text), text  # deterministic
        masked = old.sub(" email ", text.lower())
        assert model._EMAIL_OR_RUN.sub(model._mask_address, text.lower()) == masked


def test_dates_still_found() -> None:
    ref = datetime(2026, 11, 21, tzinfo=UTC).date()
    assert dates.extract_return_date("I am back on 1.12. and bis 2.12.", ref) is not None
