"""decode_bytes: charset labels as mail uses them (WHATWG supersets, mislabels, missing labels)."""

from __future__ import annotations

import pytest

from laifaxin_shared.mime import decode_bytes
from laifaxin_shared.mime.charsets import codec_for


@pytest.mark.parametrize(
    ("label", "codec"),
    [
        ("GB2312", "gb18030"),
        ("gbk", "gb18030"),
        ("x-gbk", "gb18030"),
        ("CP936", "gb18030"),
        ("EUC-CN", "gb18030"),
        ("Big5", "big5hkscs"),
        ("big5-hkscs", "big5hkscs"),
        ("Shift_JIS", "cp932"),
        ("ks_c_5601-1987", "cp949"),
        ("ISO-8859-1", "cp1252"),
        ("us-ascii", "cp1252"),
        ('"utf-8"', "utf_8"),
        ("UTF-8*en", "utf_8"),
        ("iso-2022-jp", "iso2022_jp"),
        ("x-unknown", None),
        ("unknown-8bit", None),
        ("no-such-charset", None),
        ("", None),
        (None, None),
    ],
)
def test_codec_for_maps_labels_to_superset_codecs(label: str | None, codec: str | None) -> None:
    assert codec_for(label) == codec


def test_gbk_characters_under_a_gb2312_label() -> None:
    decoded = decode_bytes("朱镕基、吉喆".encode("gbk"), "gb2312")
    assert decoded.text == "朱镕基、吉喆"
    assert decoded.defect is None


def test_cp950_euro_sign_under_a_big5_label() -> None:
    decoded = decode_bytes("€100 報價".encode("cp950"), "big5")
    assert decoded.text == "€100 報價"


def test_windows_1252_quotes_under_a_latin1_label() -> None:
    assert decode_bytes("“quoted” – dash".encode("cp1252"), "iso-8859-1").text == "“quoted” – dash"


def test_utf8_under_a_single_byte_label_is_a_mislabel() -> None:
    decoded = decode_bytes("Grüße".encode(), "iso-8859-1")
    assert (decoded.text, decoded.defect) == ("Grüße", "charset_mislabel")


def test_gbk_under_a_utf8_label_is_recovered() -> None:
    decoded = decode_bytes("请报价，谢谢。".encode("gbk"), "utf-8")
    assert (decoded.text, decoded.defect) == ("请报价，谢谢。", "charset_mislabel")


def test_latin1_text_without_a_label_is_not_read_as_chinese() -> None:
    assert decode_bytes("café au lait, très bien".encode("latin-1")).text == "café au lait, très bien"


def test_hint_is_used_for_unlabelled_bytes() -> None:
    assert decode_bytes("見積もり".encode("shift_jis"), None, hint="Shift_JIS").text == "見積もり"


def test_iso2022jp_is_not_mistaken_for_ascii() -> None:
    assert decode_bytes("見積もり".encode("iso2022_jp"), "iso-2022-jp").text == "見積もり"
    assert decode_bytes("見積もり".encode("iso2022_jp"), "us-ascii").text == "見積もり"


def test_undecodable_bytes_become_replacement_characters() -> None:
    decoded = decode_bytes(b"ok \x81\x8d\x8f\x90\x9d", "utf-8")
    assert decoded.text.startswith("ok ")
    assert decoded.defect is not None


@pytest.mark.parametrize("label", [None, "utf-8", "gb2312", "big5", "iso-2022-jp", "x-nonsense", "utf-7"])
def test_never_raises_on_arbitrary_bytes(label: str | None) -> None:
    data = bytes(range(256)) * 3
    assert isinstance(decode_bytes(data, label).text, str)


def test_unlabelled_japanese_is_not_read_as_chinese() -> None:
    text = "次のあて先へのメッセージはエラーのため送信できませんでした。"
    assert decode_bytes(text.encode("euc_jp")).text == text
    assert decode_bytes(text.encode("cp932")).text == text


def test_eight_bit_euc_jp_under_an_iso2022jp_label() -> None:
    text = "メールアドレスをご確認の上、再送信してください。"
    decoded = decode_bytes(text.encode("euc_jp"), "ISO-2022-JP")
    assert (decoded.text, decoded.defect) == (text, "charset_mislabel")


@pytest.mark.parametrize("name", ["朱镕基", "吉喆", "张伟", "您好，请报价。"])
def test_unlabelled_gbk_names_with_rare_characters(name: str) -> None:
    assert decode_bytes(name.encode("gbk")).text == name


@pytest.mark.parametrize("text", ["très bien", "Grüße aus Köln", "señor, ¿qué tal?", "Zoë Ørsted"])
def test_unlabelled_latin1_stays_latin1(text: str) -> None:
    assert decode_bytes(text.encode("latin-1")).text == text


def test_chinese_and_japanese_under_a_latin1_label_are_recovered() -> None:
    chinese = decode_bytes("您好，请报价。".encode("gbk"), "iso-8859-1")
    assert (chinese.text, chinese.defect) == ("您好，请报价。", "charset_mislabel")
    japanese = decode_bytes("お見積もりをお願いします".encode("shift_jis"), "us-ascii")
    assert japanese.text == "お見積もりをお願いします"


@pytest.mark.parametrize("label", ["iso-8859-1", None])
def test_portuguese_with_adjacent_accents_is_not_read_as_chinese(label: str | None) -> None:
    text = "Coordenação de Relacionamento, Pesquisa e Informação; informações são"
    assert decode_bytes(text.encode("latin-1"), label).text == text


@pytest.mark.parametrize(
    ("text", "label"), [("Ваше сообщение не доставлено", "koi8-r"), ("Ваше сообщение", "windows-1251")]
)
def test_cyrillic_single_byte_labels_are_trusted(text: str, label: str) -> None:
    assert decode_bytes(text.encode(label), label).text == text


def test_a_cyrillic_hint_is_trusted_for_unlabelled_bytes() -> None:
    assert decode_bytes("Ваше сообщение".encode("koi8-r"), None, hint="KOI8-R").text == "Ваше сообщение"
