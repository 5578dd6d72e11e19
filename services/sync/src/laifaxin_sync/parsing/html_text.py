"""HTML body -> readable plain text with BeautifulSoup (stdlib ``html.parser`` backend)."""

from __future__ import annotations

import re

from bs4 import BeautifulSoup

__all__ = ["html_to_text"]

# Elements that start a new line when rendered (HTML Living Standard, "flow content" that is not phrasing).
_BLOCKS = [
    "address", "article", "aside", "blockquote", "center", "dd", "div", "dl", "dt", "fieldset", "figure",
    "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav", "ol", "p",
    "pre", "section", "table", "tbody", "thead", "tfoot", "tr", "ul",
]  # fmt: skip
_DROP = ["script", "style", "title", "noscript", "template", "xml"]
_BREAK = "\ue000"  # a private-use code point marks rendered line breaks through whitespace collapsing
_WS = re.compile(r"[^\S\ue000]+")
_BREAKS = re.compile(r"[ ]*\ue000[ ]*")
_BLANK_RUNS = re.compile(r"\n{3,}")

INPUT_FACTOR = 16
"""HTML characters read per character of text cap (at least 1 MiB): markup outweighs text, but not without bound."""


def html_to_text(html: str, cap: int) -> tuple[str, bool]:
    """Reduce an HTML body to text of at most ``cap`` characters; returns (text, truncated).

    Drops script/style/title/noscript/template content, keeps line breaks for ``<br>`` and block elements,
    separates table cells with spaces, collapses HTML whitespace and blank-line runs. Input beyond
    ``max(cap * 16, 1 MiB)`` characters is not parsed (then ``truncated`` is True).
    """
    truncated = False
    limit = max(cap * INPUT_FACTOR, 1 << 20)
    if len(html) > limit:
        html, truncated = html[:limit], True
    soup = BeautifulSoup(html, "html.parser")
    for tag in soup.find_all(_DROP):
        tag.decompose()
    for tag in soup.find_all("br"):
        tag.replace_with(_BREAK)
    for tag in soup.find_all(_BLOCKS):
        tag.insert_before(_BREAK)
        tag.insert_after(_BREAK)
    for tag in soup.find_all(["td", "th"]):
        tag.insert_after(" ")
    text = _WS.sub(" ", soup.get_text())
    text = _BREAKS.sub("\n", text)
    text = _BLANK_RUNS.sub("\n\n", text).strip()
    if len(text) > cap:
        text, truncated = text[:cap], True
    return text, truncated
