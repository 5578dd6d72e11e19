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

_QUOTE_HEADER = re.compile(
    "|".join(
        [
            # Outlook-style block: a From-like line, then another header-like line within three lines.
            rf"^[ \t>*]*(?:{_FROM})[ \t*]*[:：].*\n(?:.*\n){{0,3}}?[ \t>*]*(?:{_OTHER})[ \t*]*[:：]",
            # "On <date>, <name> wrote:" in many languages, possibly wrapped over two lines.
            rf"^[ \t>]*(?:On|Am|Le|El|Il|Em|Op|W dniu|Dnia|В|Vào|في|在|於|于|\d{{1,4}}[年/.-]).{{0,200}}?(?:\n.{{0,120}}?)?(?:{_WROTE})[ \t]*[:：]?[ \t]*$",
            rf"^[^\n]{{0,200}}@[^\n]{{0,120}}(?:{_WROTE})[ \t]*[:：]?[ \t]*$",
            # Clients that end the attribution with the address: "..., Li Wei <li@x.com>:".
            r"^[ \t>]*.{0,160}<[^<>@\s]+@[^<>\s]+>[ \t]*[:：][ \t]*$",
            # "-----Original Message-----" and friends.
            rf"^[ \t>]*[-=_*\s]{{2,}}[ \t]*(?:{_ORIGINAL})[ \t]*[-=_*]{{2,}}",
            rf"^[ \t>]*(?:Begin forwarded message|Anfang der weitergeleiteten Nachricht|{_ORIGINAL})[ \t]*:?[ \t]*$",
            # Outlook's horizontal rule before the quoted header.
            r"^[ \t]*_{20,}[ \t]*$",
        ]
    ),
    re.MULTILINE | re.IGNORECASE,
)

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


def extract_reply(text: str) -> str:
    """The new text at the top of a reply body, without quoted history and signature.

    ``text`` is a plain-text body (``\\n`` line ends). Returns the text before the first quote marker
    (see module docstring), with ``>``-quoted lines removed and cut at the first signature delimiter
    ("-- ", "Sent from my iPhone" and translations) or at a short sign-off line ("Best regards",
    "Mit freundlichen Grüßen", "此致", "С уважением", ...) that follows some text. A body that is all quote
    gives ``""``. Pure; never raises.
    """
    head = text
    found = _QUOTE_HEADER.search(head)
    if found is not None:
        head = head[: found.start()]
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
    r"^\s*(?:(?:re|aw|wg|fw|fwd|tr|rv|r|res|sv|vs|antw|odp|ynt|ответ|回复|回覆|答复|答覆|转发|轉寄|返信|رد|trả lời)"
    r"\s*(?:\[\d+\])?\s*[:：]\s*)+",
    re.IGNORECASE,
)


def strip_subject_prefixes(subject: str) -> tuple[str, bool]:
    """``(subject without reply/forward prefixes, whether there was one)``: Re:, AW:, RE:, 回复:, 答复:, Antw:,
    R:, SV:, Odp:, YNT:, Ответ:, Fwd: and stacked forms like "Re: AW: Re[2]:"."""
    m = _REPLY_PREFIX.match(subject)
    if m is None:
        return subject.strip(), False
    return subject[m.end() :].strip(), True
