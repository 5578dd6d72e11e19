"""Compose the labelled training set from the hand-written phrase banks.

Each row is one reply as a buyer would write it to a Chinese exporter's cold e-mail: greeting, one or two core
sentences of the row's category (:mod:`.banks_core`), maybe an extra line, sign-off, signature, "Sent from my
iPhone", and often our own outreach quoted below under a client-style header in the buyer's language
(:mod:`.banks_frames`). Bounces and notifications come from their own banks with realistic senders and headers.

Held-out split: whole *phrase groups* are held out, not rows. A core sentence (or bounce / notification
template) is in the test split or in the training split, never both; greetings, sign-offs, signature blocks,
names, products and outreach texts are split by index the same way, so a test row is composed only of pieces
training never saw (languages, slots and the quote-header formats are shared).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TypeVar

from .banks_core import CORE
from .banks_frames import (
    AUTO_SUBJECT,
    BOUNCE,
    COMPANIES,
    DATES,
    DATES_LOCAL,
    DATETIMES,
    EXTRA,
    FRESH_SUBJECTS,
    GREETING,
    LANGS,
    NAMES,
    NOTIFICATION,
    OUTLOOK_HEADER,
    OUTREACH_BODY,
    OUTREACH_SUBJECTS,
    PORTS,
    PRODUCTS_EN,
    PRODUCTS_ZH,
    QTYS,
    REPLY_PREFIX,
    SENT_FROM,
    SIGNATURE_BLOCK,
    SIGNOFF,
    US_COMPANIES,
    US_NAMES,
    WROTE_HEADER,
)

DEFAULT_OUT = Path(__file__).resolve().parents[3] / "data" / "replies.jsonl"
ROWS_PER_LANG_CLASS = 42
ROWS_BOUNCE = 360
ROWS_NOTIFICATION = 360
TEST_FRACTION = 0.25

T = TypeVar("T")


@dataclass
class Row:
    """One labelled message (the JSONL schema; see data/README.md)."""

    id: str
    split: str
    group: str
    label: str
    language: str
    subject: str
    text: str
    from_addr: str = ""
    from_name: str = ""
    headers: dict[str, str] = field(default_factory=dict)


def _stable(s: str) -> int:
    return int(hashlib.sha256(s.encode()).hexdigest()[:12], 16)


def held_out(items: Sequence[str], key: str) -> set[int]:
    """Indices of ``items`` that go to the test split: the ``TEST_FRACTION`` with the smallest stable hash
    (at least one when there are two or more)."""
    if len(items) < 2:
        return set()
    order = sorted(range(len(items)), key=lambda i: _stable(f"{key}|{items[i]}"))
    return set(order[: max(1, round(len(items) * TEST_FRACTION))])


def _part(items: Sequence[T], split: str) -> list[T]:
    """Frames: every third item (index % 3 == 2) is test-only; lists shorter than 3 are shared."""
    if len(items) < 3:
        return list(items)
    return [x for i, x in enumerate(items) if (i % 3 == 2) == (split == "test")]


class _Composer:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def pick(self, items: Sequence[T], split: str) -> T:
        return self.rng.choice(_part(items, split))

    def slots(self, lang: str, split: str) -> dict[str, str]:
        name = self.pick(NAMES, split)
        company = self.pick(COMPANIES, split)
        zh = lang.startswith("zh") or lang == "ja"
        local_dates = DATES_LOCAL.get(lang)
        date = (
            self.pick(local_dates, split)
            if local_dates and self.rng.random() < 0.7
            else self.pick(DATES, split)
        )
        domain = company.split()[0].lower().replace("é", "e") + ".com"
        return {
            "n": name,
            "c": company,
            "p": self.pick(PRODUCTS_ZH, split)
            if zh and self.rng.random() < 0.7
            else self.pick(PRODUCTS_EN, split),
            "pz": self.pick(PRODUCTS_ZH, split),
            "q": self.pick(QTYS, split),
            "d": date,
            "port": self.pick(PORTS, split),
            "m": f"{name.split()[0].lower()}@{domain}",
            "us": self.pick(US_NAMES, split),
            "usc": self.pick(US_COMPANIES, split),
            "host": domain,
            "dt": self.pick(DATETIMES, split),
        }

    def quote(self, lang: str, split: str, s: dict[str, str], subj: str) -> str:
        rng = self.rng
        qlang = lang if rng.random() < 0.6 else "en"
        usm = s["us"].split()[0].lower() + "@" + s["usc"].split()[0].lower() + ".cn"
        fmt = dict(s, usm=usm, them=s["m"], subj=subj)
        if rng.random() < 0.5:
            header = rng.choice(OUTLOOK_HEADER[qlang]).format(**fmt)
        else:
            header = rng.choice(WROTE_HEADER[qlang]).format(**fmt)
        body = self.pick(OUTREACH_BODY, split).format(**fmt)
        if rng.random() < 0.4:
            body = "\n".join("> " + line for line in body.split("\n"))
        return f"{header}\n\n{body}"

    def reply(
        self, lang: str, cls: str, cores: list[tuple[int, str]], split: str
    ) -> tuple[str, str, dict[str, str], int]:
        rng = self.rng
        s = self.slots(lang, split)
        frame_lang = "en" if lang != "en" and rng.random() < 0.15 else lang  # mixed-language replies
        group, first = rng.choice(cores)
        core = [first.format(**s)]
        if rng.random() < 0.3 and len(cores) > 1:
            second = rng.choice(cores)[1].format(**s)
            if second != core[0]:
                core.append(second)
        lines: list[str] = []
        short = rng.random() < 0.2
        if not short and rng.random() < 0.8:
            lines.append(self.pick(GREETING[frame_lang], split).format(**s))
            lines.append("")
        if not short and rng.random() < 0.3:
            extra = self.pick(EXTRA[lang], split)
            if extra:
                lines.append(extra)
        lines.append(" ".join(core) if rng.random() < 0.6 else "\n".join(core))
        if not short and rng.random() < 0.75:
            lines.append("")
            lines.append(self.pick(SIGNOFF[frame_lang], split))
            lines.append(self.pick(SIGNATURE_BLOCK, split).format(**s))
        if rng.random() < 0.15:
            lines.append("")
            lines.append(rng.choice(SENT_FROM[lang]))
        outreach_subject = self.pick(OUTREACH_SUBJECTS, split).format(**s)
        headers: dict[str, str] = {}
        fresh = cls in FRESH_SUBJECTS and rng.random() < 0.15
        if fresh:
            subject = self.pick(FRESH_SUBJECTS[cls], split).format(**s)
        elif cls == "ooo" and rng.random() < 0.4:
            subject = rng.choice(AUTO_SUBJECT[lang]) + outreach_subject
        else:
            subject = rng.choice(REPLY_PREFIX[lang]) + outreach_subject
        if cls == "ooo" and rng.random() < 0.25:
            headers = rng.choice(
                [
                    {"auto-submitted": "auto-replied"},
                    {"x-autoreply": "yes", "precedence": "bulk"},
                    {"x-auto-response-suppress": "All", "x-ms-exchange-inbox-rules-loop": s["m"]},
                ]
            )
        text = "\n".join(lines)
        if not fresh and rng.random() < 0.65:
            text += "\n\n" + self.quote(lang, split, s, outreach_subject)
        return subject, text, headers, group


def generate(seed: int = 20261121) -> list[Row]:
    """All rows, in a fixed order, for ``seed``. Pure: the same seed gives the same rows."""
    rng = random.Random(seed)  # noqa: S311 - reproducible synthetic data, not security
    comp = _Composer(rng)
    rows: list[Row] = []
    for lang in LANGS:
        for cls in ("to_reply", "ooo", "inquiry", "rejection"):
            bank = CORE[lang][cls]
            test_idx = held_out(bank, f"{lang}|{cls}")
            for split in ("train", "test"):
                cores = [(i, c) for i, c in enumerate(bank) if (i in test_idx) == (split == "test")]
                n = round(ROWS_PER_LANG_CLASS * (TEST_FRACTION if split == "test" else 1 - TEST_FRACTION))
                for k in range(n):
                    subject, text, headers, core_index = comp.reply(lang, cls, cores, split)
                    s = comp.slots(lang, split)
                    rows.append(
                        Row(
                            id=f"{lang}-{cls}-{split}-{k:03d}",
                            split=split,
                            group=f"{lang}|{cls}|{core_index}",
                            label=cls,
                            language=lang,
                            subject=subject,
                            text=text,
                            from_addr=s["m"],
                            from_name=s["n"],
                            headers=headers,
                        )
                    )
    rows.extend(_bounces(comp))
    rows.extend(_notifications(comp))
    return rows


def _templates(bank: dict[str, list[tuple[str, str]]]) -> list[tuple[str, str, str, str]]:
    """(key, language, subject, body) for every template, with a stable key for the split."""
    return [
        (f"{lang}|{i}", lang, subj, body)
        for lang, items in bank.items()
        for i, (subj, body) in enumerate(items)
    ]


def _bounces(comp: _Composer) -> list[Row]:
    rng = comp.rng
    templates = _templates(BOUNCE)
    test_idx = held_out([k for k, *_ in templates], "bounce")
    rows = []
    for k in range(ROWS_BOUNCE):
        split = "test" if rng.random() < TEST_FRACTION else "train"
        choices = [t for i, t in enumerate(templates) if (i in test_idx) == (split == "test")]
        key, lang, subj_t, body_t = rng.choice(choices)
        s = comp.slots("en", split)
        soft = "4." in body_t or "delay" in subj_t.lower() or "Warning" in subj_t
        code = (
            rng.choice(["4.2.2", "4.4.1", "4.7.0"])
            if soft
            else rng.choice(["5.1.1", "5.1.0", "5.2.1", "5.4.1"])
        )
        smtp = "452" if soft else "550"
        fmt = dict(s, r=s["m"], code=code, smtp=smtp, subj=comp.pick(OUTREACH_SUBJECTS, split).format(**s))
        body = body_t.format(**fmt)
        if rng.random() < 0.4:
            body += (
                "\n\n------ This is a copy of the message, including all the headers. ------\n"
                + comp.pick(OUTREACH_BODY, split).format(**fmt)
            )
        sender = rng.choice(
            [
                ("Mail Delivery System", f"mailer-daemon@{s['host']}"),
                ("", f"postmaster@{s['host']}"),
                ("Microsoft Outlook", f"postmaster@{s['host']}"),
                ("", f"MAILER-DAEMON@mx.{s['host']}"),
                ("Mail Delivery Subsystem", "mailer-daemon@googlemail.com"),
                ("", f"system@{s['host']}"),
            ]
        )
        headers = {"x-failed-recipients": s["m"]} if rng.random() < 0.2 else {}
        if rng.random() < 0.3:
            headers["auto-submitted"] = "auto-replied"
        rows.append(
            Row(
                id=f"bounce-{k:03d}",
                split=split,
                group=f"bounce|{key}",
                label="bounce",
                language=lang,
                subject=subj_t.format(**fmt),
                text=body,
                from_addr=sender[1].lower(),
                from_name=sender[0],
                headers=headers,
            )
        )
    return rows


def _notifications(comp: _Composer) -> list[Row]:
    rng = comp.rng
    templates = _templates(NOTIFICATION)
    test_idx = held_out([k for k, *_ in templates], "notification")
    rows = []
    for k in range(ROWS_NOTIFICATION):
        split = "test" if rng.random() < TEST_FRACTION else "train"
        choices = [t for i, t in enumerate(templates) if (i in test_idx) == (split == "test")]
        key, lang, subj_t, body_t = rng.choice(choices)
        s = comp.slots("en", split)
        fmt = dict(s, subj="")
        r = rng.random()
        if r < 0.35:
            sender, headers = f"noreply@{s['host']}", {}
        elif r < 0.65:
            sender = f"news@{s['host']}"
            headers = {"list-unsubscribe": f"<mailto:unsubscribe@{s['host']}>", "precedence": "bulk"}
        else:
            sender, headers = f"{rng.choice(['service', 'billing', 'account', 'events'])}@{s['host']}", {}
        rows.append(
            Row(
                id=f"notification-{k:03d}",
                split=split,
                group=f"notification|{key}",
                label="notification",
                language=lang,
                subject=subj_t.format(**fmt),
                text=body_t.format(**fmt),
                from_addr=sender,
                from_name=s["c"],
                headers=headers,
            )
        )
    return rows


def write_jsonl(rows: list[Row], path: Path) -> None:
    """One JSON object per line, UTF-8, keys in a fixed order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(asdict(row), ensure_ascii=False) + "\n")


def read_jsonl(path: Path = DEFAULT_OUT) -> list[Row]:
    """Rows from a file written by :func:`write_jsonl`."""
    with path.open(encoding="utf-8") as fh:
        return [Row(**json.loads(line)) for line in fh if line.strip()]
