"""Bytes -> text for mail whose charset label is missing, unknown or wrong.

Mail in the field mislabels its charset often, and Chinese mail most of all: text labelled ``GB2312`` is
usually GBK or GB18030 (GB2312 lacks characters such as 镕 or 喆), ``Big5`` is often Big5-HKSCS or CP950,
``Shift_JIS`` is CP932, ``ISO-2022-JP`` carries NEC/IBM extensions (CP50220), and ``ISO-8859-1`` is often
windows-1252 or even UTF-8. The rules below follow the WHATWG Encoding Standard's label table where it applies
(labels as supersets) and otherwise decode strictly first, then fall back along a chain; the last step decodes
with replacement characters, so :func:`decode_bytes` never raises.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

__all__ = ["Decoded", "codec_for", "decode_bytes"]

# Label -> the superset codec to decode it with (WHATWG Encoding Standard, "Encodings" table, and mail
# practice): GB2312/GBK/EUC-CN are decoded as GB18030, Big5 as Big5-HKSCS, Shift_JIS as CP932, EUC-KR and
# KS C 5601 as CP949 (UHC), ISO-8859-1/ASCII as windows-1252, TIS-620 as CP874.
_SUPERSETS: dict[str, str] = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "big5": "big5hkscs",
    "cp950": "big5hkscs",
    "shift_jis": "cp932",
    "euc_kr": "cp949",
    "iso8859_1": "cp1252",
    "ascii": "cp1252",
    "iso8859_11": "cp874",
    "tis_620": "cp874",
}

# Further supersets to try when the first one fails strictly (vendor extensions).
_EXTRAS: dict[str, tuple[str, ...]] = {
    "big5hkscs": ("cp950",),
    "cp932": ("shift_jis_2004",),
    "euc_jp": ("euc_jis_2004", "cp932"),
    # 8-bit text under an ISO-2022-JP label is EUC-JP or Shift_JIS (seen from Japanese carriers' MTAs).
    "iso2022_jp": ("euc_jp", "euc_jis_2004", "cp932"),
}

# Labels Python does not know under that spelling.
_ALIASES: dict[str, str] = {
    "x-gbk": "gbk",
    "csgb2312": "gb2312",
    "chinese": "gb2312",
    "x-euc-cn": "gb2312",
    "x-big5": "big5",
    "cn-big5": "big5",
    "big-5": "big5",
    "x-x-big5": "big5",
    "ks_c_5601-1987": "cp949",
    "ks_c_5601": "cp949",
    "ks_c_5601-1989": "cp949",
    "x-sjis": "shift_jis",
    "sjis": "shift_jis",
    "ms_kanji": "shift_jis",
    "windows-31j": "cp932",
    "x-euc-jp": "euc_jp",
    "cp50220": "iso2022_jp",
    "cp50221": "iso2022_jp",
    "cp50222": "iso2022_jp",
    "unicode-1-1-utf-7": "utf-7",
    "x-unicode20utf8": "utf-8",
    "unicode-1-1-utf-8": "utf-8",
    "utf8mb4": "utf-8",
    "x-mac-roman": "mac_roman",
    "macintosh": "mac_roman",
    "x-user-defined": "cp1252",
    "ansi_x3.4-1968": "ascii",
}

# Codecs that cannot be told apart from ASCII by the bytes alone (7-bit and stateful).
_SEVEN_BIT = frozenset({"iso2022_jp", "iso2022_jp_2", "iso2022_jp_ext", "iso2022_kr", "utf_7", "hz"})
# Codecs where a valid UTF-8 decoding of non-ASCII bytes is far likelier than the label being right.
_SINGLE_BYTE_PREFIXES = ("cp125", "iso8859_", "ascii", "cp874", "koi8_", "mac_", "tis_620")

_ISO2022JP_ESCAPES = (b"\x1b$B", b"\x1b$@", b"\x1b(J", b"\x1b(I")


@dataclass(frozen=True, slots=True)
class Decoded:
    """Decoded text, the codec that produced it, and whether that departed from the label.

    ``defect`` is a short name (``charset_unknown``, ``charset_mislabel``, ``charset_replacement``) or None.
    """

    text: str
    codec: str
    defect: str | None = None


def codec_for(label: str | None) -> str | None:
    """Python codec name (superset applied) for a MIME charset label, or None when unknown/missing.

    Labels come from Content-Type ``charset`` (RFC 2045 section 5.1), RFC 2047 encoded words and RFC 2231
    parameters; a language suffix (``utf-8*en``, RFC 2231 section 5) and quotes are ignored.
    """
    if not label:
        return None
    name = label.strip().strip("\"'").split("*", 1)[0].strip().lower()
    if not name or name in {"unknown", "unknown-8bit", "x-unknown", "default", "none", "charset"}:
        return None
    name = _ALIASES.get(name, name)
    try:
        codec = codecs.lookup(name).name
    except (LookupError, ValueError):  # ValueError: a NUL inside the label
        return None
    # codecs.lookup gives e.g. "gb2312", "big5", "iso8859-1": normalise to the module-style names above.
    key = codec.replace("-", "_")
    return _SUPERSETS.get(key, key)


def _strict(data: bytes, codec: str) -> str | None:
    try:
        return data.decode(codec)
    except UnicodeDecodeError:
        return None


def _decode_iso2022jp(data: bytes) -> str | None:
    """ISO-2022-JP (RFC 1468) with the CP50220 extensions some Japanese MTAs emit (NEC row 13, e.g. ①).

    JIS X 0213 plane 1 is a superset of JIS X 0208 at the same code points, so re-designating the 0208
    escapes as 0213 lets the stdlib ``iso2022_jp_2004`` codec decode the extension characters.
    """
    for codec in ("iso2022_jp", "iso2022_jp_ext", "iso2022_jp_2"):
        text = _strict(data, codec)
        if text is not None:
            return text
    widened = data.replace(b"\x1b$B", b"\x1b$(Q").replace(b"\x1b$@", b"\x1b$(Q")
    return _strict(widened, "iso2022_jp_2004")


_KANA = re.compile(r"[\u3040-\u30ff]")


def _in_runs(text: str, min_chars: int) -> list[str] | None:
    """The non-ASCII characters of ``text`` (first 4096 characters) if they mostly come in runs.

    CJK text has its characters next to each other; Latin text misread as a double-byte charset leaves
    isolated characters between ASCII letters ("Coordena玢o" from "Coordenação"). One character alone is
    accepted when ``min_chars`` is 1. None when there are fewer than ``min_chars`` or most are isolated.
    """
    sample = text[:4096]
    positions = [i for i, c in enumerate(sample) if ord(c) > 0x7F]
    if len(positions) < min_chars:
        return None
    if len(positions) > 1:
        wide = set(positions)
        paired = sum(1 for i in positions if i - 1 in wide or i + 1 in wide)
        if paired < 0.5 * len(positions):
            return None
    return [sample[i] for i in positions]


def _plausible_japanese(data: bytes, min_chars: int) -> tuple[str, str] | None:
    """8-bit Japanese: EUC-JP or CP932 that decodes strictly, in runs, with kana (Chinese text has none).

    Needed before the GB18030 guess, because EUC-JP bytes also decode as GB2312-area characters.
    """
    for codec in ("euc_jp", "cp932"):
        text = _strict(data, codec)
        if text is None:
            continue
        sample = _in_runs(text, min_chars)
        if sample and sum(1 for c in sample if _KANA.match(c)) >= 0.1 * len(sample):
            return text, codec
    return None


def _plausible_gb18030(data: bytes, min_chars: int) -> tuple[str, str] | None:
    """GB18030 decodes many Latin byte pairs too; accept it only when the result reads as Chinese.

    Real Chinese text comes in runs and sits mostly in the GB2312 area (both bytes >= 0xA1; names may add
    a rarer GBK character such as 镕); a Latin-1 accent followed by an ASCII letter lands in the GBK
    extension rows (trail byte < 0xA1), and two adjacent accents give an isolated character.
    """
    text = _strict(data, "gb18030")
    if text is None:
        return None
    sample = _in_runs(text, min_chars)
    if not sample:
        return None
    common = 0
    for c in sample:
        try:
            c.encode("gb2312")
            common += 1
        except UnicodeEncodeError:
            continue
    return (text, "gb18030") if common >= 0.5 * len(sample) else None


def decode_bytes(data: bytes, label: str | None = None, hint: str | None = None) -> Decoded:
    """Decode ``data`` labelled ``label``; never raises.

    Order: (1) pure ASCII with an ASCII-compatible label is returned as is; (2) ISO-2022-JP escapes are
    tried as ISO-2022-JP (also when unlabelled, common in Japanese bounces); (3) for single-byte labels,
    valid UTF-8 wins; for multibyte labels the superset codec and its vendor variants first, then UTF-8;
    (4) ``hint`` (another charset seen in the message, e.g. the body's for 8-bit headers); (5) EUC-JP/CP932
    when the result has kana, then GB18030 when it reads as Chinese; (6) a Latin-1 family label's codec
    (windows-1252); (7) the label's codec, else windows-1252, with U+FFFD for undecodable bytes.

    ``label`` is a MIME charset name (RFC 2045/2046/2047/2231). ``defect`` in the result says when the
    label was unknown, overruled (``charset_mislabel``) or replacement characters were needed.
    """
    codec = codec_for(label)
    defect = None if codec is not None or label is None else "charset_unknown"
    seven_bit = codec is not None and codec in _SEVEN_BIT
    if (
        not seven_bit
        and data.isascii()
        and (b"\x1b" not in data or not any(e in data for e in _ISO2022JP_ESCAPES))
    ):
        return Decoded(data.decode("ascii"), codec or "ascii", defect)

    if (codec is not None and codec.startswith("iso2022_jp")) or b"\x1b$" in data or b"\x1b(" in data:
        text = _decode_iso2022jp(data)
        if text is not None:
            jp_defect = defect if codec is not None and codec.startswith("iso2022_jp") else "charset_mislabel"
            return Decoded(text, "iso2022_jp", jp_defect)

    # Strict candidates before and after the CJK guesses. A Latin-1 family label comes after them: Chinese
    # and Japanese mail is often labelled ISO-8859-1 or US-ASCII by misconfigured clients, and real Latin
    # text does not pass the guesses (see _in_runs and _plausible_gb18030).
    before: list[str] = []
    after: list[str] = []
    if codec is None:
        before.append("utf_8")
    elif codec == "cp1252":  # ISO-8859-1, US-ASCII, windows-1252: what misconfigured CJK clients write
        before.append("utf_8")
        after.append(codec)
    elif codec.startswith(_SINGLE_BYTE_PREFIXES):  # Cyrillic, Greek ... text would look like CJK runs
        before += ["utf_8", codec]
    else:
        before += [codec, *_EXTRAS.get(codec, ()), "utf_8"]
    hint_codec = codec_for(hint)
    if hint_codec is not None and hint_codec not in before and hint_codec not in _SEVEN_BIT:
        (after if hint_codec == "cp1252" else before).append(hint_codec)

    def found(text: str, candidate: str) -> Decoded:
        mislabel = codec is not None and candidate != codec
        return Decoded(text, candidate, "charset_mislabel" if mislabel else defect)

    for candidate in before:
        text = _strict(data, candidate)
        if text is not None:
            return found(text, candidate)
    # One character is too little evidence to overrule a label, enough when there is none.
    min_chars = 1 if codec is None else 2
    guessed = _plausible_japanese(data, min_chars) or _plausible_gb18030(data, min_chars)
    if guessed is not None:
        return found(*guessed)
    for candidate in after:
        text = _strict(data, candidate)
        if text is not None:
            return found(text, candidate)

    final = codec if codec is not None and codec not in _SEVEN_BIT else "cp1252"
    try:
        return Decoded(data.decode(final, "replace"), final, "charset_replacement")
    except LookupError:  # pragma: no cover - codec_for only returns names codecs.lookup accepted
        return Decoded(data.decode("cp1252", "replace"), "cp1252", "charset_replacement")
