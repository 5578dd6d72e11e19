"""Subject normalisation for the heuristic match: the sent subject behind the reply prefixes real clients add.

Prefixes (RFC 5322 section 3.6.5 suggests "Re: "; clients localise it): Re, RE, Re[2], Re(2), AW (German), SV
(Scandinavian), Antw (Dutch), Odp (Polish, Czech), Ynt / Cvp (Turkish), Vá (Hungarian), RES (Portuguese), RIF / R
(Italian), Ответ (Russian), ΑΠ / ΣΧΕΤ (Greek), 회신 / 답장 (Korean), 回复 / 答复 / 回覆 / 覆 (Chinese, with ASCII or
full-width colon), Balas (Indonesian), Trả lời (Vietnamese), and the auto-reply prefixes of Outlook/Exchange,
Gmail, QQ and NetEase ("Automatic reply:", "自动回复:", "Automatische Antwort:", ...). A forward (Fwd, FW, WG, TR,
RV, ENC, 转发, 轉寄, ...) is not an answer to the sender: :func:`reply_subject` returns None for it.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

_COLON = r"\s*(?:\[\d+\]|\(\d+\))?\s*[:：]\s*"
_REPLY = (
    r"re|aw|sv|antw|antwort|odp|ynt|cvp|vá|va|res|rif|r|ответ|απ|σχετ|회신|답장|回复|答复|回覆|覆|balas|trả lời|"
    r"automatic reply|auto reply|autoreply|auto|out of office|out of office reply|abwesenheitsnotiz|"
    r"automatische antwort|réponse automatique|respuesta automática|risposta automatica|automatisch antwoord|"
    r"自动回复|自动答复|自動回覆|自動応答|자동 응답"
)
_FORWARD = r"fwd|fw|wg|tr|rv|enc|doorst|vl|vs|pd|i̇lt|ilt|転送|转发|轉寄|轉發|пересл|전달"
_REPLY_RE = re.compile(rf"^\s*(?:{_REPLY}){_COLON}", re.IGNORECASE)
_FORWARD_RE = re.compile(rf"^\s*(?:{_FORWARD}){_COLON}", re.IGNORECASE)
_TAG = re.compile(r"^\s*\[(?:external|ext|外部邮件|外部|spam|suspicious|warning)[^\]]*\]\s*", re.IGNORECASE)
_SPACE = re.compile(r"\s+")


def canonical(subject: str) -> str:
    """NFKC, case-folded, whitespace collapsed (full-width forms and case differences between clients vanish)."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", subject)).strip().casefold()


def reply_subject(subject: str) -> tuple[str, int] | None:
    """``(the subject without its reply prefixes, canonical; how many prefixes)``, or None for a forward.

    A subject with no prefix returns a count of 0: it may be the same subject, but it is not marked a reply.
    """
    text = subject
    count = 0
    for _ in range(10):
        tagged = _TAG.match(text)
        if tagged:
            text = text[tagged.end() :]
        if _FORWARD_RE.match(text):
            return None
        m = _REPLY_RE.match(text)
        if m is None:
            break
        text = text[m.end() :]
        count += 1
    return canonical(text), count


def subject_key(subject: str) -> int:
    """A signed 64-bit key of a canonical subject (first 8 bytes of SHA-256), as stored per sent message."""
    digest = hashlib.sha256(canonical(subject).encode("utf-8")).digest()[:8]
    return int.from_bytes(digest, "big", signed=True)
