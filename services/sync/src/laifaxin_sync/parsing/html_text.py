"""HTML body -> readable plain text with BeautifulSoup (stdlib ``html.parser`` backend)."""

from __future__ import annotations

import re

from bs4 import BeautifulSoup

__all__ = ["html_to_text"]

# Elements that start a new line when rendered (HTML Living Standard, "flow content" that is not phrasing).
_BLOCKS = {
    "address", "article", "aside", "blockquote", "center", "dd", "div", "dl", "dt", "fieldset", "figure",
    "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav", "ol", "p",
    "pre", "section", "table", "tbody", "thead", "tfoot", "tr", "ul",
}  # fmt: skip
_DROP = {"script", "style", "title", "noscript", "template", "xml"}
_CELLS = {"td", "th"}
# Private-use code points mark rendered line breaks through whitespace collapsing: block edges and <br>.
_BLOCK = "\ue000"
_BR = "\ue001"
_WS = re.compile(r"[^\S\ue000\ue001]+")
_BLOCK_RUNS = re.compile(r"[ ]*\ue000(?:[ ]*\ue000)*[ ]*")
_BR_AT_BLOCK_END = re.compile(r"\ue001\ue000")
_LINE_EDGES = re.compile(r"[ ]*\n[ ]*")
_BLANK_RUNS = re.compile(r"\n{3,}")

INPUT_FACTOR = 16
"""HTML characters read per character of text cap (at least 1 MiB): markup outweighs text, but not without bound."""


def html_to_text(html: str, cap: int) -> tuple[str, bool]:
    """Reduce an HTML body to text of at most ``cap`` characters; returns (text, truncated).

    Drops script/style/title/noscript/template content, keeps line breaks for ``<br>`` and block elements
    (adjacent block edges give one break, so ``<br><br>`` is the way to a blank line),
    separates table cells with spaces, collapses HTML whitespace and blank-line runs. Input beyond
    ``max(cap * 16, 1 MiB)`` characters is not parsed (then ``truncated`` is True).
    """
    truncated = False
    limit = max(cap * INPUT_FACTOR, 1 << 20)
    if len(html) > limit:
        html, truncated = html[:limit], True
    soup = BeautifulSoup(html, "html.parser")
    for tag in soup.find_all(True):  # one pass over the elements, in document order
        if tag.decomposed:  # inside an element dropped earlier in this pass
            continue
        name = tag.name
        if name in _DROP:
            tag.decompose()
        elif name == "br":
            tag.replace_with(_BR)
        elif name in _BLOCKS:
            tag.insert_before(_BLOCK)
            tag.insert_after(_BLOCK)
        elif name in _CELLS:
            tag.insert_after(" ")
    text = _WS.sub(" ", soup.get_text())
    text = _BR_AT_BLOCK_END.sub(_BR, _BLOCK_RUNS.sub(_BLOCK, text))  # adjacent block edges make one break
    text = _LINE_EDGES.sub("\n", text.replace(_BLOCK, "\n").replace(_BR, "\n"))
    text = _BLANK_RUNS.sub("\n\n", text).strip()
    if len(text) > cap:
        text, truncated = text[:cap], True
    return text, truncated
