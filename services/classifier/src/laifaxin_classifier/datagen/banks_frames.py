"""Hand-written frames around the core sentence: greetings, extra lines, sign-offs, names, quote headers in each
client's language, our own outreach text (quoted below replies), subjects, and the bounce and notification
banks. Written for this project; no text copied from any corpus.
"""

from __future__ import annotations

LANGS = ["en", "zh-Hans", "zh-Hant", "es", "de", "fr", "pt", "ru", "ja", "it", "nl", "tr", "ar", "pl", "vi"]

GREETING: dict[str, list[str]] = {
    "en": ["Hi {n},", "Hello,", "Dear {n},", "Dear Sir/Madam,", "Hi there,", "Good morning {n},"],
    "zh-Hans": ["你好，", "{n}你好：", "您好！", "{n}经理，您好：", "Hi {n}，"],
    "zh-Hant": ["您好，", "{n}您好：", "你好！", "{n}先生您好："],
    "es": ["Hola {n},", "Estimado {n}:", "Buenos días,", "Hola,"],
    "de": ["Hallo {n},", "Sehr geehrte Damen und Herren,", "Guten Tag,", "Lieber {n},"],
    "fr": ["Bonjour {n},", "Madame, Monsieur,", "Bonjour,", "Cher {n},"],
    "pt": ["Olá {n},", "Prezado {n},", "Bom dia,", "Olá,"],
    "ru": ["Здравствуйте, {n}!", "Добрый день,", "Здравствуйте,", "Уважаемый {n},"],
    "ja": ["{n}様", "お世話になっております。", "{n}さん、こんにちは。", "ご担当者様"],
    "it": ["Buongiorno {n},", "Gentile {n},", "Salve,", "Ciao {n},"],
    "nl": ["Hallo {n},", "Beste {n},", "Goedemorgen,", "Geachte heer/mevrouw,"],
    "tr": ["Merhaba {n},", "Sayın {n},", "İyi günler,", "Merhaba,"],
    "ar": ["مرحبا {n}،", "السيد {n} المحترم،", "السلام عليكم،", "مرحبا،"],
    "pl": ["Dzień dobry,", "Witam {n},", "Szanowny Panie {n},", "Cześć {n},"],
    "vi": ["Chào {n},", "Kính gửi anh {n},", "Xin chào,", "Chào anh,"],
}

SIGNOFF: dict[str, list[str]] = {
    "en": ["Best regards,", "Kind regards", "Thanks,", "Regards,", "Cheers,", "Sincerely,"],
    "zh-Hans": ["谢谢", "祝好", "此致", "顺祝商祺"],
    "zh-Hant": ["謝謝", "順頌商祺", "敬上", "祝好"],
    "es": ["Saludos,", "Un saludo,", "Atentamente,", "Saludos cordiales,"],
    "de": ["Mit freundlichen Grüßen", "Viele Grüße", "Beste Grüße", "MfG"],
    "fr": ["Cordialement,", "Bien cordialement,", "Bien à vous,", "Salutations,"],
    "pt": ["Atenciosamente,", "Abraços,", "Obrigado,", "Cumprimentos,"],
    "ru": ["С уважением,", "Спасибо,", "Всего доброго,", "С уважением"],
    "ja": ["よろしくお願いいたします。", "以上", "よろしくお願いします。", "宜しくお願い致します。"],
    "it": ["Cordiali saluti,", "Distinti saluti,", "Saluti,", "Grazie,"],
    "nl": ["Met vriendelijke groet,", "Groeten,", "Vriendelijke groet,", "Met vriendelijke groeten,"],
    "tr": ["Saygılarımla,", "İyi çalışmalar,", "Teşekkürler,", "Saygılarımla"],
    "ar": ["مع تحياتي،", "تحياتي", "مع خالص التحية،", "شكرا"],
    "pl": ["Pozdrawiam,", "Z poważaniem,", "Pozdrawiam", "Z wyrazami szacunku,"],
    "vi": ["Trân trọng,", "Cảm ơn,", "Thân ái,", "Trân trọng"],
}

EXTRA: dict[str, list[str]] = {
    "en": ["Thanks for your email.", "", "Hope you are well.", "", "Have a nice day."],
    "zh-Hans": ["感谢来信。", "", "祝生意兴隆。", ""],
    "zh-Hant": ["感謝來信。", "", "祝生意興隆。", ""],
    "es": ["Gracias por su correo.", "", "Que tenga un buen día.", ""],
    "de": ["Danke für Ihre E-Mail.", "", "Schönen Tag noch.", ""],
    "fr": ["Merci pour votre e-mail.", "", "Bonne journée.", ""],
    "pt": ["Obrigado pelo e-mail.", "", "Tenha um bom dia.", ""],
    "ru": ["Спасибо за письмо.", "", "Хорошего дня.", ""],
    "ja": ["メールありがとうございます。", "", "引き続きよろしくお願いします。", ""],
    "it": ["Grazie per la sua email.", "", "Buona giornata.", ""],
    "nl": ["Bedankt voor uw e-mail.", "", "Fijne dag.", ""],
    "tr": ["E-postanız için teşekkürler.", "", "İyi günler dilerim.", ""],
    "ar": ["شكرا على رسالتك.", "", "أتمنى لك يوما سعيدا.", ""],
    "pl": ["Dziękuję za e-mail.", "", "Miłego dnia.", ""],
    "vi": ["Cảm ơn email của bạn.", "", "Chúc một ngày tốt lành.", ""],
}

SENT_FROM: dict[str, list[str]] = {
    "en": ["Sent from my iPhone", "Get Outlook for Android"],
    "zh-Hans": ["发自我的iPhone", "从我的华为手机发送"],
    "zh-Hant": ["從我的 iPhone 傳送", "發自我的iPhone"],
    "es": ["Enviado desde mi iPhone"],
    "de": ["Von meinem iPhone gesendet"],
    "fr": ["Envoyé de mon iPhone"],
    "pt": ["Enviado do meu iPhone"],
    "ru": ["Отправлено с iPhone"],
    "ja": ["iPhoneから送信"],
    "it": ["Inviato da iPhone"],
    "nl": ["Verzonden vanaf mijn iPhone"],
    "tr": ["iPhone'umdan gönderildi"],
    "ar": ["أرسلت من الآيفون"],
    "pl": ["Wysłane z iPhone'a"],
    "vi": ["Được gửi từ iPhone của tôi"],
}

# (prefix used in the subject, Outlook-style quote header lines, Gmail-style attribution)
REPLY_PREFIX: dict[str, list[str]] = {
    "en": ["Re: ", "RE: ", "Re: Re: "],
    "zh-Hans": ["回复: ", "答复: ", "回复：", "Re: "],
    "zh-Hant": ["回覆: ", "RE: ", "答覆: "],
    "es": ["RE: ", "Re: ", "RV: "],
    "de": ["AW: ", "Aw: ", "WG: AW: "],
    "fr": ["RE : ", "Re: ", "TR: "],
    "pt": ["Re: ", "RES: ", "RE: "],
    "ru": ["Re: ", "RE: ", "Ответ: "],
    "ja": ["Re: ", "RE: ", "返信: "],
    "it": ["R: ", "Re: ", "RE: "],
    "nl": ["Antw: ", "RE: ", "Re: "],
    "tr": ["YNT: ", "Re: ", "RE: "],
    "ar": ["رد: ", "RE: ", "Re: "],
    "pl": ["Odp: ", "RE: ", "Re: "],
    "vi": ["Trả lời: ", "Re: ", "RE: "],
}

OUTLOOK_HEADER: dict[str, list[str]] = {
    "en": ["From: {us} <{usm}>\nSent: {dt}\nTo: {them}\nSubject: {subj}"],
    "zh-Hans": [
        "发件人: {us} <{usm}>\n发送时间: {dt}\n收件人: {them}\n主题: {subj}",
        '------------------ 原始邮件 ------------------\n发件人: "{us}"<{usm}>;\n发送时间: {dt}\n主题: {subj}',
    ],
    "zh-Hant": ["寄件者: {us} <{usm}>\n寄件日期: {dt}\n收件者: {them}\n主旨: {subj}"],
    "es": ["De: {us} <{usm}>\nEnviado el: {dt}\nPara: {them}\nAsunto: {subj}"],
    "de": [
        "Von: {us} <{usm}>\nGesendet: {dt}\nAn: {them}\nBetreff: {subj}",
        "-----Ursprüngliche Nachricht-----\nVon: {us} [mailto:{usm}]\nGesendet: {dt}\nBetreff: {subj}",
    ],
    "fr": ["De : {us} <{usm}>\nEnvoyé : {dt}\nÀ : {them}\nObjet : {subj}"],
    "pt": ["De: {us} <{usm}>\nEnviada em: {dt}\nPara: {them}\nAssunto: {subj}"],
    "ru": ["От: {us} <{usm}>\nОтправлено: {dt}\nКому: {them}\nТема: {subj}"],
    "ja": ["差出人: {us} <{usm}>\n送信日時: {dt}\n宛先: {them}\n件名: {subj}"],
    "it": ["Da: {us} <{usm}>\nInviato: {dt}\nA: {them}\nOggetto: {subj}"],
    "nl": ["Van: {us} <{usm}>\nVerzonden: {dt}\nAan: {them}\nOnderwerp: {subj}"],
    "tr": ["Kimden: {us} <{usm}>\nGönderildi: {dt}\nKime: {them}\nKonu: {subj}"],
    "ar": ["من: {us} <{usm}>\nتاريخ: {dt}\nإلى: {them}\nالموضوع: {subj}"],
    "pl": ["Od: {us} <{usm}>\nWysłano: {dt}\nDo: {them}\nTemat: {subj}"],
    "vi": ["Từ: {us} <{usm}>\nGửi: {dt}\nĐến: {them}\nChủ đề: {subj}"],
}

WROTE_HEADER: dict[str, list[str]] = {
    "en": ["On {dt}, {us} <{usm}> wrote:", "On {dt} {us} <{usm}>\nwrote:"],
    "zh-Hans": ['在 {dt}，"{us}" <{usm}> 写道：', "{us} <{usm}> 于{dt}写道："],
    "zh-Hant": ["{us} <{usm}> 於 {dt} 寫道："],
    "es": ["El {dt}, {us} <{usm}> escribió:"],
    "de": ["Am {dt} schrieb {us} <{usm}>:"],
    "fr": ["Le {dt}, {us} <{usm}> a écrit :"],
    "pt": ["Em {dt}, {us} <{usm}> escreveu:"],
    "ru": ["{dt}, {us} <{usm}>:", "{dt} {us} <{usm}> написал:"],
    "ja": ["{dt} {us} <{usm}>:"],
    "it": ["Il {dt} {us} <{usm}> ha scritto:"],
    "nl": ["Op {dt} schreef {us} <{usm}>:"],
    "tr": ["{us} <{usm}>, {dt} tarihinde şunu yazdı:"],
    "ar": ["في {dt}، كتب {us} <{usm}>:"],
    "pl": ["W dniu {dt} {us} <{usm}> napisał:"],
    "vi": ["Vào {dt}, {us} <{usm}> đã viết:"],
}

DATETIMES = [
    "Mon, Nov 16, 2026 at 9:12 AM",
    "2026-11-17 10:05",
    "17.11.2026 08:44",
    "2026年11月18日 14:20",
    "Tuesday, November 17, 2026 3:33 PM",
    "18/11/2026 11:02",
]

NAMES = [
    "Anna",
    "Mark",
    "Carlos",
    "Julia",
    "Ahmed",
    "Olga",
    "Kenji",
    "Marco",
    "Pieter",
    "Mehmet",
    "Ewa",
    "Linh",
    "Wang Lei",
    "Chen Hui",
    "Sophie",
    "Lucas",
    "Fatima",
    "Ivan",
    "Yuki",
    "Giulia",
    "Daan",
    "Ayşe",
    "Tomasz",
    "Minh",
    "Li Na",
    "David",
    "Elena",
    "Hans",
    "Pierre",
    "João",
]
COMPANIES = [
    "Nordic Home AB",
    "Baumarkt Schulz GmbH",
    "Iberica Lighting S.L.",
    "Maison Déco SARL",
    "Rio Trading Ltda",
    "TechSnab OOO",
    "Yamada Shoji",
    "Casa Bella Srl",
    "Van Dijk BV",
    "Anadolu Ticaret",
    "Al Noor Trading LLC",
    "PolBud Sp. z o.o.",
    "Saigon Import JSC",
    "Greenfield Supplies Inc.",
]
PRODUCTS_EN = [
    "LED panel lights",
    "solar street lights",
    "stainless steel cookware",
    "PP woven bags",
    "bluetooth speakers",
    "office chairs",
    "silicone kitchen tools",
    "garden hoses",
    "USB-C cables",
    "ceramic tiles",
    "cotton T-shirts",
    "aluminium profiles",
    "power banks",
    "yoga mats",
]
PRODUCTS_ZH = [
    "LED面板灯",
    "太阳能路灯",
    "不锈钢锅具",
    "编织袋",
    "蓝牙音箱",
    "办公椅",
    "硅胶厨具",
    "园艺水管",
    "数据线",
    "瓷砖",
    "纯棉T恤",
    "铝型材",
]
PORTS = ["Shanghai", "Ningbo", "Shenzhen", "Qingdao", "Xiamen", "Guangzhou", "Tianjin", "Yantian"]
QTYS = ["500", "1000", "2,000", "300", "5000", "1200", "10 000", "800", "20", "150"]
DATES = [
    "December 2",
    "2 December",
    "Dec 5th",
    "12/03/2026",
    "2026-12-07",
    "05.12.2026",
    "next Monday",
    "15.01.",
    "January 6",
    "3 January 2027",
]
DATES_LOCAL: dict[str, list[str]] = {
    "zh-Hans": ["12月2日", "2026年12月7日", "1月6日", "下周一"],
    "zh-Hant": ["12月2日", "2026年12月7日", "1月6日", "下週一"],
    "ja": ["12月2日", "2026年12月7日", "1月6日", "来週月曜日"],
    "de": ["2. Dezember", "05.12.2026", "15.01.", "7. Januar 2027"],
    "fr": ["2 décembre", "05/12/2026", "6 janvier", "lundi prochain"],
    "es": ["2 de diciembre", "05/12/2026", "6 de enero", "lunes próximo"],
    "pt": ["2 de dezembro", "05/12/2026", "6 de janeiro", "segunda-feira"],
    "it": ["2 dicembre", "05/12/2026", "6 gennaio", "lunedì prossimo"],
    "nl": ["2 december", "05-12-2026", "6 januari", "maandag"],
    "ru": ["2 декабря", "05.12.2026", "6 января", "понедельника"],
    "pl": ["2 grudnia", "05.12.2026", "6 stycznia", "poniedziałku"],
    "tr": ["2 Aralık", "05.12.2026", "6 Ocak", "pazartesi"],
    "vi": ["ngày 2 tháng 12", "05/12/2026", "ngày 6 tháng 1", "thứ Hai tuần sau"],
    "ar": ["2026-12-02", "05/12/2026", "2027-01-06", "الاثنين القادم"],
}
US_NAMES = ["Lily Zhang", "Kevin Wu", "Amy Chen", "Jack Liu", "Sunny Huang", "Tina Zhou"]
US_COMPANIES = [
    "Ningbo Bright Lighting Co., Ltd.",
    "Shenzhen Hongda Electronics Co., Ltd.",
    "Yiwu Sunrise Trading Co., Ltd.",
    "Foshan Meiya Furniture Co., Ltd.",
]

OUTREACH_SUBJECTS = [
    "{p} from China factory - best price",
    "Quotation: {p} for your market",
    "New {p} catalogue 2027",
    "Cooperation proposal - {p} supplier",
    "{p} with CE/RoHS, MOQ 100 pcs",
    "Factory direct {p}",
    "关于{pz}的合作",
    "{pz}报价单",
    "Re: {p} samples available",
    "OEM {p} - free samples",
]

# Our own cold email, quoted under the buyer's reply: full of the words that must not leak (price, MOQ,
# catalogue, samples, unsubscribe).
OUTREACH_BODY = [
    "Dear purchasing manager,\n\nThis is {us} from {usc}. We are a professional manufacturer of {p} with 15 years "
    "experience. Our MOQ is only 100 pcs and we can send free samples.\nPlease find our latest catalogue and "
    "price list attached. Looking forward to your inquiry!\n\nBest regards\n{us}\nWhatsApp: +86 138 0000 1234\n\n"
    "If you don't want to receive our emails, reply unsubscribe.",
    "Hi,\n\nHope this email finds you well. {usc} supplies {p} to 50+ countries. Competitive price, fast lead time "
    "(15 days), OEM welcome.\nCan I send you a quotation?\n\n{us}\nSales Manager",
    "您好！\n\n我司专业生产{pz}，价格优惠，起订量低，可提供免费样品和目录。如有需要请随时询价。\n\n{us}\n{usc}\n"
    "如不想再收到此类邮件，请回复退订。",
    "Dear friend,\n\nGood day! Just following up on my last email about {p}. We have a special price this month "
    "and samples are ready. What quantity do you usually order?\n\nThanks & regards,\n{us}",
]

SIGNATURE_BLOCK = [
    "{n}\nPurchasing Manager\n{c}\nTel: +49 30 1234567",
    "{n} | {c}",
    "{n}\n{c}\nwww.example.com",
    "{n}",
    "{n}\nHead of Procurement, {c}\nMobile +34 600 000 000\nThis e-mail is confidential.",
]

FRESH_SUBJECTS: dict[str, list[str]] = {
    "inquiry": [
        "RFQ - {p}",
        "Inquiry for {p}",
        "Price request",
        "Quotation needed: {q} pcs",
        "询价：{pz}",
        "Anfrage {p}",
        "Solicitud de cotización",
        "Demande de prix",
        "Запрос цены",
        "見積依頼",
    ],
    "to_reply": [
        "Question",
        "Meeting next week",
        "Your company",
        "Call?",
        "Follow up",
        "关于贵司",
        "Rückfrage",
    ],
}

AUTO_SUBJECT: dict[str, list[str]] = {
    "en": ["Automatic reply: ", "Out of Office: ", "Auto: ", "Autoreply: "],
    "zh-Hans": ["自动回复: ", "自动答复: "],
    "zh-Hant": ["自動回覆: "],
    "es": ["Respuesta automática: "],
    "de": ["Automatische Antwort: ", "Abwesenheitsnotiz: "],
    "fr": ["Réponse automatique : "],
    "pt": ["Resposta automática: "],
    "ru": ["Автоматический ответ: "],
    "ja": ["自動応答: "],
    "it": ["Risposta automatica: "],
    "nl": ["Automatisch antwoord: "],
    "tr": ["Otomatik yanıt: "],
    "ar": ["رد تلقائي: "],
    "pl": ["Odpowiedź automatyczna: "],
    "vi": ["Trả lời tự động: "],
}

BOUNCE: dict[str, list[tuple[str, str]]] = {
    # (subject, body); {r} recipient, {code} status code, {host} remote host
    "en": [
        (
            "Undelivered Mail Returned to Sender",
            "This is the mail system at host {host}.\n\nI'm sorry to have to inform you that your message could not\n"
            "be delivered to one or more recipients.\n\n<{r}>: host mx.{host} said: {smtp} {code} User unknown",
        ),
        (
            "Delivery Status Notification (Failure)",
            "Address not found\n\nYour message wasn't delivered to {r} because the address couldn't be found, or is "
            "unable to receive mail.\n\nThe response from the remote server was:\n{smtp} {code} The email account "
            "that you tried to reach does not exist.",
        ),
        (
            "Mail delivery failed: returning message to sender",
            "This message was created automatically by mail delivery software.\n\nA message that you sent could not "
            "be delivered to one or more of its recipients. This is a permanent error. The following address(es) "
            "failed:\n\n  {r}\n    SMTP error from remote mail server after RCPT TO:<{r}>:\n    {smtp} {code} "
            "mailbox unavailable",
        ),
        (
            "Undeliverable: {subj}",
            "Delivery has failed to these recipients or groups:\n\n{r}\nThe email address you entered couldn't be "
            "found. Please check the recipient's email address and try to resend the message.\n\nDiagnostic "
            "information for administrators:\nRemote Server returned '{smtp} {code} RESOLVER.ADR.RecipNotFound; not "
            "found'",
        ),
        (
            "failure notice",
            "Hi. This is the qmail-send program at {host}.\nI'm afraid I wasn't able to deliver your message to the "
            "following addresses.\nThis is a permanent error; I've given up. Sorry it didn't work out.\n\n<{r}>:\n"
            "Sorry, no mailbox here by that name. (#{code})",
        ),
        (
            "Delivery Status Notification (Delay)",
            "Message delivery has been delayed\n\nThere was a temporary problem delivering your message to {r}. "
            "Gmail will retry for 47 more hours.\n\nThe response was:\n421 4.7.0 Try again later",
        ),
        (
            "Returned mail: see transcript for details",
            "The original message was received at {dt} from localhost\n\n   ----- The following addresses had "
            "permanent fatal errors -----\n<{r}>\n    (reason: {smtp} {code} Mailbox not found)",
        ),
        (
            "Warning: could not send message for past 4 hours",
            "This is a warning message only. YOU DO NOT NEED TO RESEND YOUR MESSAGE.\nThe message could not be "
            "delivered to {r} for 4 hours; the server will keep trying.\nReason: 451 4.4.1 mailbox full",
        ),
        (
            "Message not delivered",
            "Your message could not be delivered to {r}. The recipient's mailbox is full and can't accept "
            "messages now. (552 5.2.2 Quota exceeded)",
        ),
    ],
    "zh-Hans": [
        (
            "系统退信",
            "抱歉，您的邮件被退回来了……\n原邮件信息：\n收件人：{r}\n退信原因：收件人邮箱不存在（{smtp} {code} "
            "user not found）\n建议解决方案：请确认收件人地址是否正确。",
        ),
        ("来自{host}的退信", "很遗憾您的邮件没有发送成功。\n收件人：{r}\n原因：对方服务器拒收 {smtp} {code}"),
    ],
    "de": [
        (
            "Unzustellbar: {subj}",
            "Ihre Nachricht konnte nicht zugestellt werden an: {r}\nDer Empfänger wurde nicht "
            "gefunden. Diagnoseinformationen: {smtp} {code} Benutzer unbekannt",
        ),
    ],
    "ja": [
        (
            "配信不能: {subj}",
            "以下の宛先へのメッセージは配信できませんでした。\n{r}\n宛先不明のため配信できませんでした。({smtp} {code})",
        ),
    ],
    "fr": [
        (
            "Non remis : {subj}",
            "Votre message n'a pas pu être remis aux destinataires suivants :\n{r}\nAdresse "
            "introuvable ({smtp} {code}).",
        ),
    ],
    "es": [
        (
            "No se puede entregar: {subj}",
            "Su mensaje no se pudo entregar a los siguientes destinatarios:\n{r}\n"
            "El buzón no existe ({smtp} {code}).",
        ),
    ],
    "ru": [
        (
            "Недоставленное сообщение",
            "Ваше сообщение не может быть доставлено получателю {r}.\nПричина: {smtp} {code} "
            "почтовый ящик не существует.",
        ),
    ],
    "pt": [
        (
            "Mensagem não entregue",
            "Sua mensagem não pôde ser entregue a {r}.\nMotivo: {smtp} {code} caixa postal inexistente.",
        ),
    ],
}

NOTIFICATION: dict[str, list[tuple[str, str]]] = {
    "en": [
        (
            "Your weekly digest from {c}",
            "Here is what happened this week at {c}. Read our latest article on supply "
            "chain trends. Click here to unsubscribe or manage your preferences.",
        ),
        (
            "Password changed",
            "Your password was changed on {dt}. If this wasn't you, reset your password now.\n"
            "This is an automated message, please do not reply.",
        ),
        (
            "Invoice INV-{q} is available",
            "Your invoice for the period is now available in your account. Amount "
            "due: USD {q}. Log in to the billing portal to view and pay.",
        ),
        (
            "Webinar: Importing from Asia in 2027",
            "Join our free webinar on customs rules and freight rates. "
            "Register now, seats are limited. You receive this email because you subscribed to our newsletter.",
        ),
        (
            "Security alert: new sign-in",
            "We noticed a new sign-in to your account from Chrome on Windows. If this "
            "was you, you can ignore this email.",
        ),
        (
            "Your order has shipped",
            "Good news! Your order #{q} has shipped and will arrive in 3-5 business days. "
            "Track your package online.",
        ),
        (
            "Trade show newsletter - November",
            "Exhibitor list now online, book your booth for the spring edition. "
            "View this email in your browser.",
        ),
        (
            "Action required: verify your email",
            "Please confirm your email address by clicking the link below. The link expires in 24 hours.",
        ),
        (
            "Your verification code",
            "Your one-time code is {q}. It expires in 10 minutes. Do not share it with anyone.",
        ),
        (
            "Reminder: subscription renews on {d}",
            "Your annual plan renews automatically. Manage billing in your account settings.",
        ),
        ("Your parcel is out for delivery", "Parcel {q} will be delivered today between 9:00 and 13:00."),
        (
            "Monthly account statement",
            "Your statement for November is ready. Sign in to online banking to view it.",
        ),
    ],
    "zh-Hans": [
        (
            "【通知】系统维护公告",
            "尊敬的用户，系统将于{dt}进行维护，届时服务暂停。此邮件为系统自动发送，请勿回复。",
        ),
        ("您的账单已生成", "您本月的账单已生成，应付金额{q}元，请登录查看。"),
        ("阿里巴巴国际站周报", "本周店铺访客数据已更新，点击查看详情。退订请点击此处。"),
        ("您的订单已发货", "您的订单{q}已发货，预计3-5天送达，可在个人中心查看物流信息。"),
        ("密码修改提醒", "您的账户密码已于{dt}修改，如非本人操作请及时联系客服。"),
        ("展会邀请函", "诚邀您参加2027春季广交会，点击链接免费预登记。"),
        ("【验证码】", "您的验证码是{q}，10分钟内有效，请勿泄露给他人。"),
        ("会员到期提醒", "您的会员将于{d}到期，请及时续费以免影响使用。"),
    ],
    "de": [
        ("Ihr Newsletter", "Neuigkeiten aus unserem Unternehmen. Zum Abmelden klicken Sie bitte hier."),
        ("Passwort geändert", "Ihr Passwort wurde geändert. Dies ist eine automatisch generierte E-Mail."),
        ("Ihre Rechnung ist da", "Ihre Rechnung für November steht im Kundenkonto bereit. Betrag: {q} EUR."),
        (
            "Ihre Bestellung wurde versandt",
            "Bestellung {q} ist unterwegs. Sendungsverfolgung im Kundenkonto.",
        ),
        ("Ihr Bestätigungscode", "Ihr Code lautet {q}. Er ist 10 Minuten gültig."),
    ],
    "es": [
        ("Boletín mensual", "Novedades del mes. Si no desea recibir más correos, haga clic aquí."),
        (
            "Su pedido ha sido enviado",
            "Su pedido n.º {q} ha salido de nuestro almacén. Puede seguir el envío en línea.",
        ),
        (
            "Cambio de contraseña",
            "Se ha cambiado la contraseña de su cuenta. Si no fue usted, contacte con soporte.",
        ),
        ("Su código de verificación", "Su código es {q}. Caduca en 10 minutos."),
    ],
    "fr": [
        ("Votre facture est disponible", "Votre facture du mois est disponible dans votre espace client."),
        (
            "Confirmez votre adresse e-mail",
            "Cliquez sur le lien ci-dessous pour activer votre compte. Ce lien expire dans 24 heures.",
        ),
        (
            "Lettre d'information - novembre",
            "Découvrez nos nouveautés du mois. Pour vous désinscrire, cliquez ici.",
        ),
        ("Votre code de vérification", "Votre code est {q}. Il expire dans 10 minutes."),
    ],
    "ja": [
        (
            "【お知らせ】メンテナンスのご案内",
            "システムメンテナンスを実施いたします。本メールは送信専用です。",
        ),
        (
            "ご注文の発送完了のお知らせ",
            "ご注文番号{q}の商品を発送いたしました。配送状況はマイページからご確認ください。",
        ),
        (
            "パスワード変更のお知らせ",
            "アカウントのパスワードが変更されました。お心当たりがない場合はサポートまでご連絡ください。",
        ),
        ("認証コードのお知らせ", "認証コードは{q}です。有効期限は10分です。"),
        ("ご利用明細のお知らせ", "今月のご利用明細が確定しました。会員サイトでご確認ください。"),
    ],
    "pt": [
        (
            "Sua fatura está disponível",
            "A fatura deste mês já está disponível na sua área de cliente. Valor: R$ {q}.",
        ),
        ("Newsletter semanal", "As novidades da semana. Para cancelar o recebimento, clique aqui."),
        ("Seu código de verificação", "Seu código é {q}. Ele expira em 10 minutos."),
    ],
    "ru": [
        (
            "Ваш заказ отправлен",
            "Заказ №{q} передан в службу доставки. Отследить посылку можно в личном кабинете.",
        ),
        ("Новости недели", "Главные новости отрасли за неделю. Отписаться от рассылки можно по ссылке."),
        ("Код подтверждения", "Ваш код подтверждения: {q}. Он действует 10 минут."),
    ],
    "it": [
        ("La tua fattura è disponibile", "La fattura del mese è disponibile nella tua area riservata."),
        ("Newsletter di novembre", "Le novità del mese. Per annullare l'iscrizione clicca qui."),
        ("Il tuo codice di verifica", "Il tuo codice è {q}. Scade tra 10 minuti."),
    ],
    "nl": [
        ("Uw bestelling is verzonden", "Bestelling {q} is onderweg. Volg uw pakket via de link."),
        ("Uw verificatiecode", "Uw code is {q}. Deze verloopt over 10 minuten."),
        ("Nieuwsbrief november", "Het laatste nieuws van deze maand. Afmelden kan via de link onderaan."),
    ],
    "tr": [
        (
            "Siparişiniz kargoya verildi",
            "{q} numaralı siparişiniz kargoya verildi. Takip numarası hesabınızda.",
        ),
        ("Doğrulama kodunuz", "Doğrulama kodunuz {q}. 10 dakika geçerlidir."),
        ("Aylık bülten", "Bu ayın haberleri. Abonelikten çıkmak için tıklayın."),
    ],
    "pl": [
        ("Twoja faktura jest dostępna", "Faktura za ten miesiąc jest dostępna w panelu klienta."),
        ("Twój kod weryfikacyjny", "Twój kod to {q}. Wygasa za 10 minut."),
        ("Twoja paczka została wysłana", "Przesyłka {q} jest w drodze. Śledź ją w aplikacji."),
    ],
    "vi": [
        (
            "Đơn hàng của bạn đã được giao",
            "Đơn hàng {q} đã được giao cho đơn vị vận chuyển. Theo dõi trong tài khoản.",
        ),
        ("Mã xác minh của bạn", "Mã của bạn là {q}. Mã hết hạn sau 10 phút."),
        ("Bản tin tháng 11", "Tin tức mới nhất trong tháng. Nhấn vào đây để hủy đăng ký nhận tin."),
    ],
    "ar": [
        ("تم شحن طلبك", "تم شحن طلبك رقم {q} وسيصل خلال 3-5 أيام عمل. تتبع شحنتك عبر الرابط."),
        ("رمز التحقق الخاص بك", "رمز التحقق هو {q}. صالح لمدة 10 دقائق."),
        ("فاتورتك جاهزة", "فاتورة هذا الشهر متاحة الآن في حسابك."),
    ],
    "zh-Hant": [
        ("【通知】系統維護公告", "親愛的用戶，系統將於{dt}進行維護。此郵件為系統自動發送，請勿回覆。"),
        ("您的帳單已產生", "您本月的帳單已產生，應付金額{q}元，請登入查看。"),
        ("您的驗證碼", "您的驗證碼是{q}，10分鐘內有效。"),
    ],
}

# Second round of notification templates (written after the first measurement).
NOTIFICATION_MORE: dict[str, list[tuple[str, str]]] = {
    "en": [
        (
            "Payment confirmation",
            "We received your payment of USD {q}. A receipt is attached to your account.",
        ),
        ("Your account summary", "Here is your monthly activity summary. Visit your dashboard for details."),
        ("Event reminder", "Your registered session starts tomorrow at 10:00. Add it to your calendar."),
    ],
    "zh-Hans": [
        ("付款成功通知", "您已成功支付{q}元，感谢您的使用。"),
        ("登录提醒", "您的账号在新设备上登录，如非本人操作请修改密码。"),
    ],
    "de": [
        ("Zahlungsbestätigung", "Wir haben Ihre Zahlung über {q} EUR erhalten."),
        ("Neue Anmeldung", "Es gab eine Anmeldung von einem neuen Gerät."),
    ],
    "es": [("Nuevo inicio de sesión", "Detectamos un inicio de sesión desde un dispositivo nuevo.")],
    "fr": [("Confirmation de paiement", "Nous avons bien reçu votre paiement de {q} EUR.")],
    "ja": [("お支払い完了のお知らせ", "{q}円のお支払いを確認しました。ご利用ありがとうございます。")],
    "ru": [("Новый вход в аккаунт", "В ваш аккаунт выполнен вход с нового устройства.")],
    "pt": [("Pagamento confirmado", "Recebemos seu pagamento de R$ {q}. Obrigado!")],
    "it": [("Nuovo accesso al tuo account", "Abbiamo rilevato un accesso da un nuovo dispositivo.")],
    "tr": [("Ödemeniz alındı", "{q} TL tutarındaki ödemeniz alınmıştır. Teşekkür ederiz.")],
}
for _lang, _items in NOTIFICATION_MORE.items():
    NOTIFICATION.setdefault(_lang, []).extend(_items)
