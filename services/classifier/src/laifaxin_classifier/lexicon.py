"""Multilingual concept lexicon: words of foreign-trade replies mapped to shared concepts.

Each concept is a hand-written regex over our 15 languages (e.g. *price*: price, quotation, precio, Preis,
prix, preço, prezzo, prijs, fiyat, سعر, cena, giá, цена, 价格/報價, 見積). A match adds one concept token to the
text the model reads, so a purchase-intent cue learnt from Spanish rows also counts in Polish ones. The tokens
are ``§§<letter>§§``: the character n-grams of the TF-IDF see them as words no language writes.
"""

from __future__ import annotations

import re

CONCEPTS: dict[str, str] = {
    "price": r"price|pricing|quot(?:e|ation)|how much|cost|precio|cotiz|cuánto|preis|angebot|kostet|wie viel|prix|"
    r"devis|combien|preço|cotação|quanto|prezzo|offerta|listino|prijs|offerte|wat kost|fiyat|teklif|سعر|أسعار|"
    r"cen[aęy]|cennik|ofert|giá|báo giá|bao nhiêu|цен[аыу]|прайс|предложение|сколько|价|價|报价|報價|見積|単価|価格|値段",
    "moq": r"\bmoq\b|minimum order|cantidad mínima|mindestbestell|quantité minimale|quantidade mínima|"
    r"quantitativo minimo|minimale bestel|minimum sipariş|الحد الأدنى|minimalna ilość|tối thiểu|минимальн|"
    r"起订|起訂|最小訂購|最小発注|最低発注",
    "sample": r"sample|muestra|muster|échantillon|amostra|campion|monster|numune|عين[ةا]ت?|próbk|mẫu|образ[цe]|"
    r"样品|樣品|サンプル",
    "catalog": r"catalog|katalog|catálogo|catalogus|كتالوج|каталог|目录|目錄|型錄|カタログ|datasheet|data sheet|spec|"
    r"ficha técnica|datenblatt|fiche technique|scheda tecnica|техническ|規格書|规格书|bảng giá|price list",
    "order": r"proforma|pro forma|\bpi\b|invoice|factura|facture|rechnung|fattura|factuur|fatura|فاتورة|faktur|"
    r"hóa đơn|фактур|проформ|形式发票|形式發票|インボイス|order|pedido|bestell|commande|encomenda|ordine|"
    r"sipariş|طلب|zamówi|đặt hàng|заказ|采购|採購|订|訂|発注|购买|purchase|compra|kaufen|acheter|comprar|acquist|"
    r"inkoop|satın al|شراء|zakup|mua",
    "delivery": r"lead time|delivery|deliver|plazo|entrega|lieferzeit|liefer|délai|livraison|prazo|consegna|levertijd|"
    r"teslim|التسليم|dostaw|giao hàng|срок|поставк|交货|交期|發貨|发货|納期|\bfob\b|\bcif\b|\bexw\b|shipment",
    "discount": r"discount|descuento|rabatt|remise|desconto|sconto|korting|indirim|خصم|rabat|giảm giá|скидк|"
    r"优惠|優惠|折扣|値引",
    "oem": r"\boem\b|logo|our brand|nuestra marca|unserem logo|notre marque|nossa marca|nostro marchio|ons logo|"
    r"logomuz|علامتنا|логотип|商标|商標|ロゴ",
    "negation": r"not interested|no interest|no thanks|no need|not need|don't need|do not need|not looking|"
    r"no estamos|no nos interesa|no gracias|no tenemos necesidad|kein(?:e|en)? (?:interesse|bedarf)|nein danke|"
    r"brauchen (?:so etwas )?nicht|pas intéress|non merci|aucun besoin|não temos interesse|sem interesse|"
    r"não precisamos|não, obrigado|non siamo interessati|non interessa|no grazie|non abbiamo bisogno|"
    r"geen interesse|nee dank|niet nodig|ilgilenmiyoruz|ihtiyacımız yok|hayır|لسنا مهتمين|غير مهتم|لا نحتاج|"
    r"لا شكرا|nie jesteśmy zainteresowani|nie potrzebujemy|nie, dziękuję|không quan tâm|không cần|"
    r"не интерес|не нужно|нам это не|нет, спасибо|не интересует|不需要|没兴趣|沒有興趣|没有兴趣|不感兴趣|"
    r"不感興趣|没有这方面|沒有這方面|不考虑|不考慮|興味がありません|必要ありません|見送",
    "already": r"already|bereits|schon|уже|já temos|ya tenemos|déjà|già|al een|zaten|بالفعل|już|đã có|已经有|"
    r"已經有|已有|すでに|既に",
    "supplier": r"already have|supplier|vendor|proveedor|lieferant|fournisseur|fornecedor|fornitore|leverancier|"
    r"tedarikçi|مورد|dostawc|nhà cung cấp|поставщик|供应商|供應商|取引先",
    "stop": r"remove|stop|unsubscri|baja|streichen|austragen|abmelden|retirer|désabonn|remova|descadastr|cancell|"
    r"verwijder|afmelden|çıkar|إزالة|توقفوا|wypisz|usuń|usun|xóa|удалите|отпишите|删除|刪除|退订|退訂|配信停止|"
    r"(?:don't|do not) (?:contact|email)|no nos contacten|nicht mehr|ne me contactez|não nos envie|"
    r"non ci scrivete|non mi contatti|geen contact|göndermeyin|لا ترسلوا|nie pisać|đừng gửi|не пишите|"
    r"不要再|請勿|请勿|别再|別再|送らないで",
    "wrong": r"wrong company|don't sell|do not sell|not import|don't import|equivocaron|no vendemos|no importamos|"
    r"falsche firma|verkaufen keine|importieren nicht|trompé|ne vendons pas|n'importons pas|erraram|não vendemos|"
    r"não importamos|sbagliato|non vendiamo|non importiamo|verkeerde bedrijf|verkopen geen|importeren niet|"
    r"yanlış firma|satmıyoruz|ithalat yapmıyoruz|أخطأتم|لا نبيع|لا نستورد|pomyłka|nie sprzedajemy|"
    r"nie importujemy|nhầm|không bán|không nhập|ошиблись|не продаём|не импортируем|找错|找錯|不做这个|不做這個|"
    r"間違え|扱っていません|輸入は行って|stopped|停止",
    "contact": r"contact|contacte|wenden sie sich|contacter|fale com|contattate|neem contact|iletişime|التواصل|"
    r"skontaktować|liên hệ|свяжитесь|联系|聯繫|連絡|manager|jefe de compras|einkauf|responsable achats|"
    r"gerente de compras|responsabile acquisti|inkoper|satın alma müdür|المشتريات|zakupów|mua hàng|закупк|"
    r"采购部|採購部|購買担当",
    "call": r"\bcall\b|phone|teléfono|telefon|appeler|bellen|هاتف|gọi điện|созвон|电话|電話|meeting|reunión|termin|"
    r"rendez-vous|reunião|riunione|afspraak|toplantı|اجتماع|spotkanie|cuộc họp|встреч|会议|會議|打个电话|通個電話",
    "forward": r"forwarded|reenviado|weitergeleitet|transmis|encaminhei|inoltrato|doorgestuurd|ilettim|بتحويل|"
    r"przekazałem|chuyển email|переслал|转给|轉給|転送",
    "who": r"who gave|who are you|quién|woher|comment avez|como conseguiu|come avete|hoe komt|nereden|من أين|skąd|"
    r"ở đâu|откуда|怎么拿到|哪裡得到|どこで|factory or|fábrica o|hersteller oder|fabricant ou|fábrica ou|"
    r"produttori o|fabrikant of|üretici mi|مصنع أم|producentem czy|nhà máy hay|производитель или|工厂还是|"
    r"工廠還是|メーカーですか|introduce|presént|vorstellen|apresent|presentat|voorstellen|tanıt|عرّفني|przedstawić|"
    r"giới thiệu|расскажите|介绍|介紹|紹介",
    "later": r"discuss|comentaré|bespreche|discute|conversar|parlo|overleg|görüşüp|سأناقش|omówię|bàn với|обсужу|"
    r"商量|討論|相談|review|revis|anschauen|schaue|regarde|analisar|controllo|kijk ernaar|inceleyip|سأراجع|"
    r"przejrzę|xem và|посмотрю|看一下|看過|確認して|come back to you|get back to you|later|más tarde|später|"
    r"plus tard|depois|dopo|terug|sonra|لاحقا|później|sau|позже|之后|之後|以降",
    "complaint": r"damaged|dañad|beschädigt|abîmé|danificad|danneggiat|beschadigd|hasarlı|تالف|uszkodzon|hỏng|"
    r"повреждён|破损|破損|claim|reclamo|reklamation|réclamation|reclamação|reclamo|klacht|şikayet|شكوى|reklamacj",
    "away": r"out of (?:the )?office|vacation|holiday|on leave|annual leave|abwesend|urlaub|nicht im büro|congés|"
    r"vacances|absent|vacaciones|fuera de la oficina|férias|fora do escritório|ferie|fuori ufficio|assente|"
    r"vakantie|niet op kantoor|afwezig|izin|ofis dışında|إجازة|خارج المكتب|urlop|poza biurem|nieobecn|nghỉ phép|"
    r"vắng mặt|отпуск|вне офиса|отсутств|休假|出差|不在|休暇|出張|business trip|geschäftsreise|déplacement|"
    r"viaje de negocios|viagem de negócios|viaggio di lavoro|zakenreis|iş seyahati|رحلة عمل|podróży służbowej|"
    r"công tác|командировк|trade fair|\bclosed|geschlossen|fermé|cerrad|fechad|chius|gesloten|kapalı|مغلق|"
    r"zamknięt|đóng cửa|закрыт|放假|休業|limited access|eingeschränkt|accès limité|acceso limitado|"
    r"acesso limitado|accesso limitato|beperkt|sınırlı|محدود|ograniczony|hạn chế|ограничен",
    "return": r"\breturn|back on|be back|back in|zurück|wieder (?:im|erreichbar|da)|retour|regresar|regresaré|"
    r"volveré|retornar|retornarei|volto|rientr|terug|döneceğim|سأعود|wracam|trở lại|вернусь|返回|回到|戻り|戻ります|"
    r"恢复上班|恢復上班|通常営業|reopen|on my return|à mon retour",
    "left": r"left the company|no longer|nicht mehr im|ne fait plus|quitté|ya no|não faz mais|deixei|non lavora più|"
    r"lasciato|niet meer werkzaam|werk niet meer|artık|ayrıldım|لم يعد|غادرت|nie pracuje już|nie jestem już|"
    r"không còn làm|nghỉ việc|больше не работа|离职|離職|不再负责|不再負責|退職|停止使用|not monitored",
    "autoack": r"received your|have received|recibido su|hemos recibido|eingegangen|bien reçu votre|"
    r"avons bien reçu|recebemos|abbiamo ricevuto|in goede orde ontvangen|hebben uw|aldık|alınmıştır|تلقينا|"
    r"تم استلام|otrzymaliśmy|đã nhận được|мы получили|已收到|已经收到|已經收到|受信いたしました|受け付けました|"
    r"automatic|automated|automática|automatische|automatique|automatica|automatisch|otomatik|تلقائي|"
    r"automatyczna|tự động|автоматическ|自动|自動|shortly|en breve|em breve|al più presto|zo snel mogelijk|"
    r"en kısa sürede|قريبا|wkrótce|sớm|в ближайшее время|尽快|儘快|盡快|折り返し",
    "notice": r"do not reply|don't reply|no-reply|noreply|unsubscribe here|click here|manage (?:your )?preferences|"
    r"newsletter|webinar|password|sign-in|log in|login|account|your order|invoice inv|verify|"
    r"请勿回复|系统自动|送信専用|automatisch generiert|passwort|boletín|votre facture|espace client|"
    r"公告|账单|賬單|帳單|お知らせ|メンテナンス|verification code|one-time code|\botp\b|código de verifica|"
    r"code de vérification|bestätigungscode|код подтверждения|验证码|驗證碼|認証コード|رمز التحقق|doğrulama kod|"
    r"kod weryfikacyjny|mã xác minh|codice di verifica|verificatiecode|has shipped|out for delivery|"
    r"track your (?:package|parcel|order)|已发货|已發貨|発送いたしました|تم شحن|kargoya verildi|paczka|"
    r"pakket|spedizion|ha sido enviado|expédiée?|versandt|sendungsverfolgung|отправлен|đã được giao|物流|"
    r"statement|extracto|relevé|kontoauszug|明細|فاتورة هذا الشهر",
}

_LETTERS = "abcdefghijklmnopqrstuvwxyz"
_COMPILED = [(f" §§{_LETTERS[i]}§§", re.compile(pattern)) for i, pattern in enumerate(CONCEPTS.values())]
assert len(_COMPILED) <= len(_LETTERS)


def concept_tokens(text: str) -> str:
    """The concept tokens (``" §§a§§ §§c§§"``) of every concept whose regex matches ``text`` (lowercased
    text: the patterns are lowercase and compiled without IGNORECASE, five times faster); ``""`` if none."""
    return "".join(token for token, rx in _COMPILED if rx.search(text))


def concept_names(text: str) -> list[str]:
    """Names of the concepts that match ``text`` (for reasons and debugging)."""
    return [name for (name, _), (_, rx) in zip(CONCEPTS.items(), _COMPILED, strict=True) if rx.search(text)]
