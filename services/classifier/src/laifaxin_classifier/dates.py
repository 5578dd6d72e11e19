"""Return date of an out-of-office reply ("back on 2 December", "bis 15.12.2026", "12月3日返回", ...).

Formats: ISO 8601 dates (2026-12-01, also with / or .), CJK 2026年12月1日 / 12月1日, numeric d.m.yyyy and
d/m/yyyy (when both d/m and m/d readings are dates, the one nearest after the message date wins),
German d.m. without year, and month names in English, German, French, Spanish, Portuguese, Italian, Dutch,
Polish, Russian and Turkish, Vietnamese "ngày 1 tháng 12". A date counts when a return/until word in the same
language stands within 80 characters before it (or, for CJK and Turkish, "まで/までに/前/kadar" after it).
"""

from __future__ import annotations

import re
from datetime import date

_MONTHS: dict[str, int] = {}
for _names in (
    "january february march april may june july august september october november december",
    "jan feb mar apr may jun jul aug sep oct nov dec",
    "januar februar märz april mai juni juli august september oktober november dezember",
    "janvier février mars avril mai juin juillet août septembre octobre novembre décembre",
    "enero febrero marzo abril mayo junio julio agosto septiembre octubre noviembre diciembre",
    "janeiro fevereiro março abril maio junho julho agosto setembro outubro novembro dezembro",
    "gennaio febbraio marzo aprile maggio giugno luglio agosto settembre ottobre novembre dicembre",
    "januari februari maart april mei juni juli augustus september oktober november december",
    "stycznia lutego marca kwietnia maja czerwca lipca sierpnia września października listopada grudnia",
    "января февраля марта апреля мая июня июля августа сентября октября ноября декабря",
    "ocak şubat mart nisan mayıs haziran temmuz ağustos eylül ekim kasım aralık",
):
    for _i, _n in enumerate(_names.split(), start=1):
        _MONTHS.setdefault(_n, _i)
_MONTHS.update({"sept": 9, "févr": 2, "déc": 12, "dez": 12, "mär": 3, "okt": 10, "dic": 12, "ene": 1})
_MONTH_RE = "|".join(sorted((re.escape(m) for m in _MONTHS), key=len, reverse=True))

_TRIGGER_BEFORE = re.compile(
    r"back|return|returning|until|till|through|from|resume|after|bis|ab dem|ab|zurück|wieder|retour|jusqu|"
    r"à partir|hasta|regres|volver|volveré|a partir|até|retorn|volta|fino|rientr|dal|tot en met|tot|terug|vanaf|"
    r"do|od|powrot|powrócę|wracam|до|вернусь|с |возвращ|itibaren|dönüş|trở lại|đến|từ|quay lại|حتى|العودة|"
    r"于|於|到|至|回|返|从|從|自",
    re.IGNORECASE,
)
_TRIGGER_AFTER = re.compile(
    r"^\s*(?:まで|までに|に戻|より|から|前|以后|之后|後|返回|回|上班|kadar|tarihinde|'?(?:e|a|ye|ya)\s+kadar)"
)

_ISO = re.compile(r"\b(20\d\d)[-/.](\d{1,2})[-/.](\d{1,2})\b")
_CJK = re.compile(r"(?:(20\d\d)\s*年\s*)?(\d{1,2})\s*月\s*(\d{1,2})\s*[日号號]")
_NUM = re.compile(r"\b(\d{1,2})[./](\d{1,2})[./](20\d\d|\d\d)\b")
_NUM_NOYEAR = re.compile(r"\b(\d{1,2})\.(\d{1,2})\.(?!\d)")
_DAY_MONTH = re.compile(
    rf"\b(\d{{1,2}})(?:st|nd|rd|th|er|\.|º)?\s+(?:(?:de|of)\s+)?({_MONTH_RE})\.?(?:\s+(?:de\s+)?(20\d\d))?",
    re.IGNORECASE,
)
_MONTH_DAY = re.compile(
    rf"\b({_MONTH_RE})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?\b(?:,?\s+(20\d\d))?", re.IGNORECASE
)
_VI = re.compile(r"ngày\s+(\d{1,2})\s+tháng\s+(\d{1,2})(?:\s+năm\s+(20\d\d))?", re.IGNORECASE)


def _make(year: int | None, month: int, day: int, ref: date) -> date | None:
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return None
    y = year if year is not None else ref.year
    if y < 100:
        y += 2000
    try:
        found = date(y, month, day)
    except ValueError:
        return None
    if year is None and (ref - found).days > 60:  # "back on 5 January" written in December
        try:
            found = date(y + 1, month, day)
        except ValueError:
            return None
    return found


def _candidates(text: str, ref: date) -> list[tuple[int, int, date]]:
    out: list[tuple[int, int, date]] = []
    covered = bytearray(len(text) + 1)  # 1 where a date found by an earlier, more specific pattern lies

    def add(m: re.Match[str], d: date | None) -> None:
        if d is not None:
            out.append((m.start(), m.end(), d))
            covered[m.start() : m.end()] = b"\x01" * (m.end() - m.start())

    for m in _ISO.finditer(text):
        add(m, _make(int(m.group(1)), int(m.group(2)), int(m.group(3)), ref))
    for m in _CJK.finditer(text):
        add(m, _make(int(m.group(1)) if m.group(1) else None, int(m.group(2)), int(m.group(3)), ref))
    for m in _VI.finditer(text):
        add(m, _make(int(m.group(3)) if m.group(3) else None, int(m.group(2)), int(m.group(1)), ref))
    for m in _NUM.finditer(text):
        a, b, y = int(m.group(1)), int(m.group(2)), int(m.group(3))
        if a > 12 or b > 12:  # only one reading is a date
            add(m, _make(y, b, a, ref) if a > 12 else _make(y, a, b, ref))
            continue
        # Ambiguous d/m vs m/d: take the reading nearest after the message date (an OOO points ahead).
        readings = [d for d in (_make(y, b, a, ref), _make(y, a, b, ref)) if d is not None]
        ahead = [d for d in readings if d >= ref]
        if readings:
            add(m, min(ahead) if ahead else max(readings))
    for m in _NUM_NOYEAR.finditer(text):
        if not covered[m.start()]:
            add(m, _make(None, int(m.group(2)), int(m.group(1)), ref))
    for m in _DAY_MONTH.finditer(text):
        month = _MONTHS.get(m.group(2).lower())
        if month:
            add(m, _make(int(m.group(3)) if m.group(3) else None, month, int(m.group(1)), ref))
    for m in _MONTH_DAY.finditer(text):
        month = _MONTHS.get(m.group(1).lower())
        if month and not covered[m.start()]:
            add(m, _make(int(m.group(3)) if m.group(3) else None, month, int(m.group(2)), ref))
    return sorted(out)


def extract_return_date(text: str, ref: date, language: str = "und") -> date | None:
    """The date an out-of-office text says the sender is back (or is away until), or ``None``.

    ``text`` is the new reply text (and subject); ``ref`` is the message date, used to fill a missing year
    (a date more than 60 days before ``ref`` moves to the next year) and to settle d/m versus m/d;
    ``language`` (BCP 47) is the reply's language, kept in the signature for language-specific formats (all
    current patterns are tried for every language). When several dates qualify, the latest one wins ("from 1
    to 15 December" gives 15 December). Pure; never raises.
    """
    text = text[:4000]
    best: date | None = None
    for start, end, found in _candidates(text, ref):
        before = text[max(0, start - 80) : start]
        after = text[end : end + 12]
        if _TRIGGER_BEFORE.search(before) or _TRIGGER_AFTER.search(after):
            if (found - ref).days > 400 or (ref - found).days > 30:
                continue
            if best is None or found > best:
                best = found
    return best
