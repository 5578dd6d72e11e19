"""Keep only the new text of a reply: cut quoted history and the signature.

Without this step the words of our own outreach (price, MOQ, catalogue, the unsubscribe footer) leak into the
features. The markers follow what mail clients write, per language: Gmail/Apple "On <date>, <name> wrote:",
Outlook's "From: / Sent: / To: / Subject:" block (and its translations, e.g. 发件人/发送时间, 寄件者/寄件日期,
差出人/送信日時, Von/Gesendet, De/Envoyé, От/Отправлено, Kimden/Gönderildi, Từ/Gửi, من/تاريخ),
"-----Original Message-----" and its translations (QQ Mail's "原始邮件"), Outlook's underscore rule and
``>`` quoting (RFC 3676 section 4.5). Libraries such as mail-parser-reply and email-reply-parser hold the same
kind of regex lists but cover fewer of our languages (no Portuguese, Russian, Turkish, Arabic, Vietnamese or
traditional Chinese), so the list lives here.
"""

from __future__ import annotations

import re

_FROM = r"From|Von|De|Da|Van|Od|От|Kimden|Gönderen|Từ|发件人|發件人|寄件者|寄件人|差出人|送信者|من|Remitente|Afzender|Nadawca"
_OTHER = (
    r"Sent|Date|To|Subject|Cc|Gesendet|Datum|An|Betreff|Envoyé|Objet|À|Enviado|Enviada|Fecha|Para|Asunto|Assunto|"
    r"Data|Inviato|Oggetto|Verzonden|Aan|Onderwerp|Wysłano|Do|Temat|Отправлено|Дата|Кому|Тема|Tarih|Kime|Konu|"
    r"Gönderildi|Gửi|Ngày|Đến|Chủ đề|Tới|发送时间|發送時間|时间|日期|收件人|主题|主題|寄件日期|收件者|主旨|"
    r"送信日時|宛先|件名|日時|تاريخ|التاريخ|إلى|الموضوع|أرسل|Enviado el|Envoyé le"
)
_WROTE = (
    r"wrote|writes|schrieb|a écrit|escribió|ha scritto|escreveu|schreef|napisał\(a\)|napisał|написал\(а\)|"
    r"написала|написал|yazdı|đã viết|viết|写道|寫道|書きました|のメッセージ|كتب"
)
_ORIGINAL = (
    r"Original Message|Original-Nachricht|Ursprüngliche Nachricht|Message d'origine|Message original|"
    r"Mensaje original|Messaggio originale|Mensagem original|Oorspronkelijk bericht|Origineel bericht|"
    r"Исходное сообщение|Пересылаемое сообщение|Oryginalna wiadomość|Wiadomość oryginalna|Orijinal Mesaj|"
    r"Özgün İleti|Thư gốc|原始邮件|原始郵件|原始信件|原始訊息|元のメッセージ|الرسالة الأصلية|Forwarded message|"
    r"Weitergeleitete Nachricht|转发邮件|轉寄郵件"
)

# Every pattern below is matched against ONE line (``re.match`` at the line start, or ``\\Z``-anchored on a
# bounded tail), never searched across the body: its cost is linear in the line, so the whole scan is linear
# in the body. Leading runs are possessive (``*+``, Python 3.11) wherever the next token cannot start with a
# run character, and every free-text gap is bounded. (Searching one multi-line regex over the body with
# ``[-=_*\\s]{2,}`` after ``[ \\t>]*`` cost cubic time on a line of blanks: seconds for a 700-byte body.)

_FROM_LINE = re.compile(rf"[ \t>*]*+(?:{_FROM})[ \t*]*+[:：]", re.IGNORECASE)
"""An Outlook-style header block starts with a From-like field ..."""
_OTHER_LINE = re.compile(rf"[ \t>*]*+(?:{_OTHER})[ \t*]*+[:：]", re.IGNORECASE)
"""... followed within :data:`_BLOCK_LINES` lines by another header-like field."""
_BLOCK_LINES = 4

_ON_START = re.compile(
    r"[ \t>]*+(?:On|Am|Le|El|Il|Em|Op|W dniu|Dnia|В|Vào|في|在|於|于|\d{1,4}[年/.-])", re.IGNORECASE
)
"""The start of an attribution line: "On <date>, <name> wrote:" in many languages."""
_ON_GAP, _ON_WRAP_GAP = 200, 120
"""Most characters between the start word and "wrote" on one line, or before "wrote" on the wrapped line."""

_WROTE_END = re.compile(rf"(?:{_WROTE})\Z", re.IGNORECASE)
_WROTE_TAIL = 24
"""Characters at the end of a line searched for "wrote" (the longest form is 11)."""
_AT_GAP_BEFORE, _AT_GAP_AFTER = 200, 120
"""An attribution with an address: an ``@`` within the first 201 characters and at most 120 before "wrote"."""

_ADDRESS_END = re.compile(r"[ \t>]*+.{0,160}<[^<>@\s]++@[^<>\s]++>[ \t]*+[:：][ \t]*+\Z")
"""Clients that end the attribution with the address: "..., Li Wei <li@x.com>:"."""

_ORIGINAL_LINE = re.compile(
    rf"(?P<quote>(?:[ \t>]*>)?+)(?P<rule>[-=_*\s]*+)(?:{_ORIGINAL})[ \t]*+[-=_*]{{2}}", re.IGNORECASE
)
""""-----Original Message-----" and friends: at least two rule characters (``-=_*`` or blanks) before the
words, counted across blank or rule-only lines just above (as mail clients wrap it)."""
_RULE_ONLY = re.compile(r"[-=_*\s]*+\Z")
_QUOTED_RULE_ONLY = re.compile(r"(?:[ \t>]*>)?+(?P<rule>[-=_*\s]*+)\Z")
_FORWARD_LINE = re.compile(
    rf"[ \t>]*+(?:Begin forwarded message|Anfang der weitergeleiteten Nachricht|{_ORIGINAL})[ \t]*+:?[ \t]*+\Z",
    re.IGNORECASE,
)
_UNDERSCORE_RULE = re.compile(r"[ \t]*+_{20,}+[ \t]*+\Z")
"""Outlook's horizontal rule before the quoted header."""

LINE_SCAN_CHARS = 400
"""Characters of a line the start-anchored markers look at (every marker sits in a line's first ~250)."""

_SIGNATURE_START = re.compile(
    r"^(?:-- ?|--|__+|[*=#~]{10,}|"
    r"Sent from my .*|Sent from (?:Outlook|Mail|Yahoo).*|Get Outlook for .*|Envoyé de mon .*|Enviado desde mi .*|"
    r"Enviado do meu .*|Von meinem .* gesendet|Gesendet von .*|Inviato da.*|Verzonden vanaf .*|Wysłane z .*|"
    r"Отправлено с .*|Отправлено из .*|iPhone から送信|iPhoneから送信|发自我的.*|發自我的.*|从我的.*发送|來自我的.*|"
    r"Gönderen: iPhone.*|Được gửi từ .*|أرسلت من .*)[ \t]*$",
    re.MULTILINE | re.IGNORECASE,
)

_SIGNOFF = re.compile(
    r"^(?:best regards|kind regards|warm regards|regards|best wishes|best|thanks|thank you|many thanks|cheers|br|"
    r"sincerely|yours sincerely|yours faithfully|mit freundlichen grüßen|mit freundlichen grüssen|"
    r"freundliche grüße|viele grüße|beste grüße|grüße|gruß|mfg|cordialement|bien cordialement|"
    r"bien à vous|salutations|saludos|saludos cordiales|un saludo|atentamente|cordiales saludos|atenciosamente|"
    r"cumprimentos|abraços|obrigado|obrigada|cordiali saluti|distinti saluti|saluti|grazie|"
    r"met vriendelijke groet(?:en)?|groeten|vriendelijke groet|с уважением|спасибо|всего доброго|"
    r"pozdrawiam|z poważaniem|z wyrazami szacunku|saygılarımla|iyi çalışmalar|teşekkürler|"
    r"trân trọng|thân ái|cảm ơn|此致|此致敬礼|祝好|顺祝商祺|順頌商祺|谢谢|謝謝|敬上|よろしくお願いいたします|"
    r"よろしくお願いします|宜しくお願い致します|以上|مع تحياتي|مع خالص التحية|تحياتي|شكرا)"
    r"[ \t,.!！。，、:;-]*$",
    re.MULTILINE | re.IGNORECASE,
)

_QUOTED_LINE = re.compile(r"^[ \t]*>.*$\n?", re.MULTILINE)
_BLANKS = re.compile(r"\n{3,}")


REPLY_SCAN_CHARS = 32_768
"""Characters of a body :func:`extract_reply` reads (the event's own text cap)."""


def _wrote_at(line: str, start: int = 0) -> int | None:
    """Index where "wrote" (any language) starts when ``line`` ends with it, an optional colon and blanks;
    the leftmost such index at or after ``start``; else None."""
    tail = line.rstrip(" \t")
    if tail.endswith((":", "：")):
        tail = tail[:-1].rstrip(" \t")
    m = _WROTE_END.search(tail, max(start, len(tail) - _WROTE_TAIL))
    return None if m is None else m.start()


def _is_quote_line(lines: list[str], i: int) -> int | None:
    """Index of the line where a quote header that shows at line ``i`` begins (``i``, or an earlier line for
    a rule wrapped over blank lines), else None."""
    rule = _original_rule_start(lines, i)  # first: the only marker that may begin on an earlier line
    if rule is not None:
        return rule
    line = lines[i]
    head = line[:LINE_SCAN_CHARS]
    if _FROM_LINE.match(head) and any(
        _OTHER_LINE.match(nxt[:LINE_SCAN_CHARS]) for nxt in lines[i + 1 : i + 1 + _BLOCK_LINES]
    ):
        return i
    on = _ON_START.match(head)
    if on is not None:
        at = _wrote_at(line, on.end())
        if at is not None and at - on.end() <= _ON_GAP:
            return i
        if len(line) - on.end() <= _ON_GAP and i + 1 < len(lines):
            wrapped = _wrote_at(lines[i + 1])
            if wrapped is not None and wrapped <= _ON_WRAP_GAP:
                return i
    at = _wrote_at(line)
    if at is not None and "@" in line[max(0, at - _AT_GAP_AFTER - 1) : min(at, _AT_GAP_BEFORE + 1)]:
        return i
    if line.rstrip(" \t").endswith((":", "：")) and _ADDRESS_END.match(line):
        return i
    if _FORWARD_LINE.match(line) or _UNDERSCORE_RULE.match(line):
        return i
    return None


def _original_rule_start(lines: list[str], i: int) -> int | None:
    """Where a "-----Original Message-----" marker on line ``i`` begins: its rule characters (at least two)
    may start on the lines above when those hold only rule characters and blanks (a ``>`` quote prefix only on
    the first of them)."""
    m = _ORIGINAL_LINE.match(lines[i][:LINE_SCAN_CHARS])
    if m is None:
        return None
    rule = len(m.group("rule"))
    if rule >= 2:
        start: int | None = i
    else:
        start = None
    if m.group("quote"):
        return start
    j = i - 1
    while j >= 0:
        rule += 1  # the line break
        above = lines[j]
        if _RULE_ONLY.match(above):
            rule += len(above)
            if rule >= 2:
                start = j
            j -= 1
            continue
        quoted = _QUOTED_RULE_ONLY.match(above)
        if quoted is not None and rule + len(quoted.group("rule")) >= 2:
            start = j
        break
    return start


def quote_start(text: str) -> int | None:
    """Offset in ``text`` of the first quote header (see module docstring), or None.

    Line by line: each marker is matched within one line (the Outlook block and a wrapped "wrote:" look at the
    next lines), so the cost is linear in ``text`` whatever it holds.
    """
    lines = text.split("\n")
    for i in range(len(lines)):
        found = _is_quote_line(lines, i)
        if found is None:
            continue
        # an "Original Message" rule a few lines down may begin above: its rule characters can span the
        # rule-only lines from here to it (e.g. Outlook's underscore line, then "-----Original Message-----")
        k = found
        while k + 1 < len(lines) and (
            _RULE_ONLY.match(lines[k]) or (k == found and _QUOTED_RULE_ONLY.match(lines[k]))
        ):
            k += 1
            below = _original_rule_start(lines, k)
            if below is not None:
                found = min(found, below)
                break
        return sum(len(line) + 1 for line in lines[:found])
    return None


def extract_reply(text: str) -> str:
    """The new text at the top of a reply body, without quoted history and signature.

    ``text`` is a plain-text body (``\\n`` line ends). Returns the text before the first quote marker
    (see module docstring), with ``>``-quoted lines removed and cut at the first signature delimiter
    ("-- ", "Sent from my iPhone" and translations) or at a short sign-off line ("Best regards",
    "Mit freundlichen Grüßen", "此致", "С уважением", ...) that follows some text. A body that is all quote
    gives ``""``. Only the first :data:`REPLY_SCAN_CHARS` characters are read. Pure; never raises; linear
    time in the text (every pattern is matched within one line, see :func:`quote_start`).
    """
    head = text[:REPLY_SCAN_CHARS]
    cut = quote_start(head)
    if cut is not None:
        head = head[:cut]
    head = _QUOTED_LINE.sub("", head)
    sig = _SIGNATURE_START.search(head)
    if sig is not None and head[: sig.start()].strip():
        head = head[: sig.start()]
    for signoff in _SIGNOFF.finditer(head):
        if len(head[: signoff.start()].strip()) >= 2:
            head = head[: signoff.start()]
            break
    return _BLANKS.sub("\n\n", head).strip()


_REPLY_PREFIX = re.compile(
    r"^\s*+(?:(?:re|aw|wg|fw|fwd|tr|rv|r|res|sv|vs|antw|odp|ynt|ответ|回复|回覆|答复|答覆|转发|轉寄|返信|رد|trả lời)"
    r"\s*+(?:\[\d++\])?+\s*+[:：]\s*+)+",
    re.IGNORECASE,
)


def strip_subject_prefixes(subject: str) -> tuple[str, bool]:
    """``(subject without reply/forward prefixes, whether there was one)``: Re:, AW:, RE:, 回复:, 答复:, Antw:,
    R:, SV:, Odp:, YNT:, Ответ:, Fwd: and stacked forms like "Re: AW: Re[2]:"."""
    m = _REPLY_PREFIX.match(subject)
    if m is None:
        return subject.strip(), False
    return subject[m.end() :].strip(), True
