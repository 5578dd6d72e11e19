"""HTML body -> readable plain text with BeautifulSoup (stdlib ``html.parser`` backend)."""

from __future__ import annotations

import re
from collections.abc import Iterator

from bs4 import BeautifulSoup
from bs4.element import NavigableString, PageElement, PreformattedString, Tag

__all__ = ["html_input_limit", "html_to_text"]

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
# <blockquote> edges: its lines are rendered "> "-quoted, as mail clients do when they turn HTML into text, so
# quoted history stays recognisable as quoted (RFC 3676 section 4.5 style) for whoever reads the text.
_QUOTE_START = "\ue002"
_QUOTE_END = "\ue003"
_WS = re.compile(r"[^\S\ue000\ue001]+")
_BLOCK_RUNS = re.compile(r"[ ]*\ue000(?:[ ]*\ue000)*[ ]*")
_BR_AT_BLOCK_END = re.compile(r"\ue001\ue000")
_LINE_EDGES = re.compile(r"[ ]*\n[ ]*")
_BLANK_RUNS = re.compile(r"\n{3,}")

INPUT_FACTOR = 8
"""HTML characters parsed per character of text cap, at least :data:`INPUT_FLOOR`: markup outweighs text,
but BeautifulSoup builds its tree at roughly 0.3 MB/s, so the input is bounded (worst case about 1 s)."""
INPUT_FLOOR = 256 * 1024


def _render(soup: BeautifulSoup) -> str:
    """Text of the tree with break markers, in one linear pass (no tree edits: bs4 inserts are O(siblings))."""
    out: list[str] = []
    levels: list[Iterator[PageElement]] = [iter(soup.contents)]
    tails: list[str] = [""]
    while levels:
        node = next(levels[-1], None)
        if node is None:
            levels.pop()
            out.append(tails.pop())
            continue
        if isinstance(node, NavigableString):
            if not isinstance(node, PreformattedString):  # comments, doctype, CDATA, processing instructions
                out.append(node)
            continue
        if not isinstance(node, Tag) or node.name in _DROP:
            continue
        name = node.name
        if name == "br":
            out.append(_BR)
            continue
        tail = ""
        if name == "blockquote":
            out.append(_BLOCK + _QUOTE_START)
            tail = _QUOTE_END + _BLOCK
        elif name in _BLOCKS:
            out.append(_BLOCK)
            tail = _BLOCK
        elif name in _CELLS:
            tail = " "
        levels.append(iter(node.contents))
        tails.append(tail)
    return "".join(out)


def _quote_lines(text: str) -> str:
    """Prefix the lines inside blockquote markers with ``>`` per nesting level, and drop the markers."""
    if _QUOTE_START not in text:
        return text
    out: list[str] = []
    depth = 0
    for line in text.split("\n"):
        i = 0
        while i < len(line) and line[i] in (_QUOTE_START, _QUOTE_END, " "):
            if line[i] != " ":
                depth += 1 if line[i] == _QUOTE_START else -1
            i += 1
        body = line[i:]
        level = max(depth, 0)
        depth += body.count(_QUOTE_START) - body.count(_QUOTE_END)
        body = body.replace(_QUOTE_START, "").replace(_QUOTE_END, "").strip()
        out.append(f"{'>' * level} {body}" if level and body else body)
    return "\n".join(out)


def html_input_limit(cap: int) -> int:
    """Most HTML characters parsed for a text cap of ``cap`` characters."""
    return max(cap * INPUT_FACTOR, INPUT_FLOOR)


def html_to_text(html: str, cap: int) -> tuple[str, bool]:
    """Reduce an HTML body to text of at most ``cap`` characters; returns (text, truncated).

    Drops script/style/title/noscript/template content, renders ``<blockquote>`` lines ``> ``-quoted (one ``>``
    per level), keeps line breaks for ``<br>`` and block elements
    (adjacent block edges give one break, so ``<br><br>`` is the way to a blank line),
    separates table cells with spaces, collapses HTML whitespace and blank-line runs. Input beyond
    ``max(cap * 8, 256 Ki)`` characters is not parsed (then ``truncated`` is True).
    """
    truncated = False
    limit = html_input_limit(cap)
    if len(html) > limit:
        html, truncated = html[:limit], True
    soup = BeautifulSoup(html, "html.parser")
    text = _WS.sub(" ", _render(soup))
    text = _BR_AT_BLOCK_END.sub(_BR, _BLOCK_RUNS.sub(_BLOCK, text))  # adjacent block edges make one break
    text = _LINE_EDGES.sub("\n", text.replace(_BLOCK, "\n").replace(_BR, "\n"))
    text = _BLANK_RUNS.sub("\n\n", _quote_lines(text)).strip()
    if len(text) > cap:
        text, truncated = text[:cap], True
    return text, truncated
