"""Classify one message: the rule layers, cheapest and surest first, then the trained model.

Order (each layer can decide; ``reasons`` names every rule that fired and the one that decided):

1. bad input (empty, garbage) and reply extraction (:mod:`.reply`);
2. delivery failure reports (:mod:`.bounce`; RFC 3464/3463/6522, MTA formats) -> ``bounce``; spam
   complaint reports (ARF, RFC 5965) -> ``notification``;
3. auto-reply headers (RFC 3834 Auto-Submitted, vendor X-Autoreply & co., :mod:`.rules`) -> ``ooo``
   (``Auto-Submitted: auto-generated`` with no reply sign and no out-of-office wording -> ``notification``);
4. out-of-office / left-the-company / auto-acknowledgement subject and phrases -> ``ooo``;
5. list and bulk headers (RFC 2369/2919, Precedence), no-reply senders, and "do not reply to this message"
   wording in a message that is not a reply -> ``notification``;
6. opt-out phrases -> ``rejection``;
7. the model (:mod:`.model`); below the card's threshold (:func:`model_threshold`) the answer is ``to_reply``
   so a person looks.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from laifaxin_shared.events.mail import (
    BounceInfo,
    Category,
    ClassificationFlags,
    MailClassified,
    MailReceived,
)

from .bounce import detect_bounce, feedback_report
from .dates import extract_return_date
from .lexicon import concept_names
from .message import ClassifierInput
from .model import DEFAULT_ARTIFACT, TrainedModel, load_model, model_text
from .reply import extract_reply, strip_subject_prefixes
from .rules import header_facts, notice_phrase, ooo_phrase, optout_phrase

__all__ = [
    "CONFIDENCE_THRESHOLD",
    "Classification",
    "Classifier",
    "ClassifierInput",
    "classify",
    "detect_language",
    "make_snippet",
    "to_mail_classified",
]

CONFIDENCE_THRESHOLD = 0.5
"""Model probability under which the answer falls back to ``to_reply`` (a person should look), when the
artifact's card does not carry the threshold chosen at training time."""


def model_threshold(model: TrainedModel) -> float:
    """The threshold in the model card (chosen on validation data by train.py), else the default."""
    return float(model.card.get("threshold", CONFIDENCE_THRESHOLD))


MIN_MODEL_LETTERS = 4
"""Replies with fewer letters ("Hi,", "OK", "No.") carry too little for the model: a person looks."""

SILENT_THRESHOLD = {"ooo": 0.6, "bounce": 0.9, "notification": 0.7}
"""Higher bars for the categories that do not alert when the model alone decides: hiding a person's mail
costs more than an extra alert. Model-only ``ooo`` also needs an away / return / left / auto-ack cue."""

SNIPPET_CHARS = 280


class Classification(BaseModel):
    """The classifier's answer for one message.

    ``confidence`` is in [0, 1] (rules carry a fixed confidence, the model its probability); ``reasons`` are
    short names such as ``"header:auto-submitted=auto-replied"``, ``"rule:ooo-phrase"``, ``"model:clf-v1"``;
    ``language`` is a BCP 47 tag (``"zh-Hans"``, ``"de"``) or ``"und"``; ``reply_text`` is the new text of the
    reply (quoted history and signature removed) that the phrase rules and the model read.
    """

    model_config = ConfigDict(frozen=True)

    category: Category
    confidence: float = Field(ge=0.0, le=1.0)
    reasons: list[str] = Field(default_factory=list)
    language: str = "und"
    flags: ClassificationFlags = Field(default_factory=ClassificationFlags)
    bounce: BounceInfo | None = None
    ooo_return_date: date | None = None
    reply_text: str = ""


_FOOTER_UNSUB = re.compile(
    r"click here|to unsubscribe|if you (?:no longer )?wish|unsubscribe (?:here|link|from this)|manage (?:your )?"
    r"(?:preferences|subscription)|view (?:it )?in (?:your )?browser|退订请|取消订阅请",
    re.IGNORECASE,
)
_CATEGORIES: dict[str, Category] = {
    "to_reply": "to_reply",
    "inquiry": "inquiry",
    "rejection": "rejection",
    "notification": "notification",
}
"""Model classes returned as they are; ``ooo`` and ``bounce`` have their own branches."""
_OOO_CUES = {"away", "return", "left", "autoack"}
_KANA = re.compile(r"[\u3040-\u30ff]")
_HANGUL = re.compile(r"[\uac00-\ud7af]")
_HAN = re.compile(r"[\u4e00-\u9fff]")
_ARABIC = re.compile(r"[\u0600-\u06ff]")
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_LETTER = re.compile(r"[^\W\d_]")


def detect_language(text: str, guess: tuple[str, float] | None = None) -> str:
    """BCP 47 tag of ``text``: the script decides where it can (kana -> ja, hangul -> ko, Arabic -> ar,
    Cyrillic -> ru); otherwise ``guess``, the model's language head (it knows our 15 training languages,
    zh-Hans and zh-Hant apart) with its probability; ``"und"`` for fewer than 3 letters or a guess under 0.4."""
    sample = text[:1000]
    letters = len(_LETTER.findall(sample))
    if letters < 3:
        return "und"
    if _KANA.search(sample):
        return "ja"
    if _HANGUL.search(sample):
        return "ko"
    if len(_ARABIC.findall(sample)) > letters / 3:
        return "ar"
    if len(_CYRILLIC.findall(sample)) > letters / 3:
        return "ru"
    han = len(_HAN.findall(sample)) > letters / 3
    if guess is None:
        return "zh" if han else "und"
    lang, p = guess
    if han:
        return lang if lang.startswith("zh") else "zh"
    if lang in ("ja", "zh-Hans", "zh-Hant", "ar", "ru") or p < 0.4:
        return "und"
    return lang


def make_snippet(reply_text: str, limit: int = SNIPPET_CHARS) -> str:
    """First words of the reply text, whitespace collapsed, at most ``limit`` characters (cut at a word)."""
    flat = " ".join(reply_text.split())
    if len(flat) <= limit:
        return flat
    cut = flat[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut + "…"


class Classifier:
    """Loads the model artifact once (well under a second) and classifies messages with it.

    ``Classifier()`` loads :data:`~.model.DEFAULT_ARTIFACT`; raises ``FileNotFoundError`` if the artifact is
    missing. :meth:`classify` is pure given the loaded model and never raises on message content.
    """

    def __init__(self, artifact: Path = DEFAULT_ARTIFACT, threshold: float | None = None) -> None:
        self.model = load_model(artifact)
        self.version = str(self.model.card.get("version", artifact.stem))
        self.threshold = threshold if threshold is not None else model_threshold(self.model)

    def classify(self, msg: ClassifierInput) -> Classification:
        """Category, confidence, reasons, language, flags, bounce details and OOO return date of ``msg``."""
        return _classify(msg, self.model, self.version, self.threshold)


def _classify(msg: ClassifierInput, model: TrainedModel, version: str, threshold: float) -> Classification:
    reasons = [f"input:{d}" for d in msg.defects]
    if msg.text_truncated:
        reasons.append("input:text-truncated")
    subject, is_reply = strip_subject_prefixes(msg.subject)
    reply_text = extract_reply(msg.text)
    facts = header_facts(msg)
    text = model_text("" if is_reply else subject, reply_text)
    category, p, lang_guess, lang_p = model.predict(text)
    language = detect_language(reply_text or subject, (lang_guess, lang_p))
    flags = ClassificationFlags(auto_submitted=facts.auto_submitted, mailing_list=facts.mailing_list)

    def result(
        category: Category,
        confidence: float,
        *why: str,
        flags: ClassificationFlags = flags,
        bounce: BounceInfo | None = None,
        ooo_return_date: date | None = None,
    ) -> Classification:
        return Classification(
            category=category,
            confidence=round(confidence, 4),
            reasons=[*reasons, *why],
            language=language,
            flags=flags,
            bounce=bounce,
            ooo_return_date=ooo_return_date,
            reply_text=reply_text,
        )

    bounce = detect_bounce(msg)
    if bounce is not None:
        bflags = flags.model_copy(update={"bounce": True})
        return result("bounce", bounce.confidence, *bounce.reasons, flags=bflags, bounce=bounce.info)

    feedback = feedback_report(msg)
    if feedback is not None:
        return result("notification", 0.95, feedback)

    ooo_rule = ooo_phrase(msg.subject, reply_text)
    if facts.auto_submitted:
        generated_only = all(r.startswith("header:auto-submitted=auto-generated") for r in facts.auto_reasons)
        if generated_only and ooo_rule is None and not (is_reply or msg.in_reply_to):
            return result("notification", 0.9, *facts.auto_reasons, "rule:auto-generated-not-a-reply")
        why = [*facts.auto_reasons, *([ooo_rule] if ooo_rule else [])]
        return result("ooo", 0.97, *why, ooo_return_date=_return_date(msg, subject, reply_text, language))
    if ooo_rule is not None:
        return result("ooo", 0.95, ooo_rule, ooo_return_date=_return_date(msg, subject, reply_text, language))
    notice = None if is_reply else notice_phrase(reply_text)
    if facts.mailing_list or facts.noreply_sender or notice:
        why = [*facts.list_reasons, *(["rule:noreply-sender"] if facts.noreply_sender else [])]
        return result("notification", 0.9, *why, *([notice] if notice else []))
    optout = optout_phrase(reply_text)
    if optout is not None and not _FOOTER_UNSUB.search(reply_text):
        return result("rejection", 0.95, optout)

    letters = len(_LETTER.findall(reply_text[:200]))
    if letters == 0:
        if msg.attachments:
            return result("to_reply", 0.5, "input:attachments-only")
        return result("to_reply", 0.5, "input:empty-text")
    if letters < MIN_MODEL_LETTERS:
        return result("to_reply", 0.5, "input:too-short-for-model")

    if p < threshold:
        return result("to_reply", 1.0 - p, f"model:{version}", f"model:below-threshold:{category}={p:.2f}")
    if category in SILENT_THRESHOLD:
        cues = set(concept_names(text))
        if p < SILENT_THRESHOLD[category] or (category == "ooo" and not cues & _OOO_CUES):
            return result(
                "to_reply", 0.5, f"model:{version}", f"model:silent-category-unconfirmed:{category}={p:.2f}"
            )
    if category == "ooo":
        rd = _return_date(msg, subject, reply_text, language)
        return result("ooo", p, f"model:{version}", ooo_return_date=rd)
    if category == "bounce":
        return result(
            "bounce",
            p,
            f"model:{version}",
            flags=flags.model_copy(update={"bounce": True}),
            bounce=BounceInfo(kind="unknown"),
        )
    known = _CATEGORIES.get(category)
    if known is None:
        return result("to_reply", 0.5, f"model:{version}", f"model:unknown-class:{category}")
    return result(known, p, f"model:{version}")


def _return_date(msg: ClassifierInput, subject: str, reply_text: str, language: str) -> date | None:
    ref = (msg.date or datetime.now(UTC)).date()
    return extract_return_date(f"{subject}\n{reply_text}", ref, language)


@lru_cache(maxsize=1)
def default_classifier() -> Classifier:
    """The process-wide :class:`Classifier` on the default artifact, loaded on first use."""
    return Classifier()


def classify(msg: ClassifierInput) -> Classification:
    """Classify ``msg`` with the default model (loaded once per process). See the module docstring for the
    layers; never raises on message content (``FileNotFoundError`` only if the artifact is missing)."""
    return default_classifier().classify(msg)


def to_mail_classified(ev: MailReceived, c: Classification) -> MailClassified:
    """The ``mail.classified`` event for ``ev`` classified as ``c``: same tenant, user, ref, subject, sender,
    ``initial_sync`` and ``arrived_at``; ``snippet`` is the first words of the new reply text (<= 280 chars)."""
    return MailClassified(
        tenant_id=ev.tenant_id,
        user_id=ev.user_id,
        ref=ev.ref,
        received_event_id=str(ev.event_id),
        category=c.category,
        confidence=c.confidence,
        reasons=list(c.reasons),
        language=c.language,
        flags=c.flags,
        bounce=c.bounce,
        ooo_return_date=c.ooo_return_date,
        initial_sync=ev.initial_sync,
        subject=ev.subject,
        from_=ev.from_,
        snippet=make_snippet(c.reply_text or ev.text),
        arrived_at=ev.arrived_at,
    )
