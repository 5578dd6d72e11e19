"""Decoding of ``format=flowed`` plain text (RFC 3676), the default of Thunderbird, Apple Mail and others."""

from __future__ import annotations

__all__ = ["unflow"]

_SIGNATURE_SEPARATOR = "-- "


def _render(depth: int, text: str) -> str:
    return f"{'>' * depth} {text}" if depth else text


def unflow(text: str, *, delsp: bool = False) -> str:
    """Join soft line breaks of RFC 3676 text; returns text with one line per paragraph.

    Input lines are LF-separated. Per RFC 3676: a line ending in a space is flowed (section 4.2) unless it
    is the signature separator ``"-- "`` (4.3); leading ``>`` give the quote depth and a flowed line only
    joins the next line at the same depth (4.5); one space after the quote marks is space-stuffing (4.4)
    and is removed; with ``DelSp=yes`` the trailing space of a flowed line is deleted too (4.2). Quoted
    paragraphs are written back as ``"> " * depth``-style lines (``">> text"``) so quote detection still works.
    """
    out: list[str] = []
    pending: list[str] = []
    pending_depth = 0
    for line in text.split("\n"):
        depth = len(line) - len(line.lstrip(">"))
        body = line[depth:]
        if body.startswith(" "):
            body = body[1:]
        if pending and depth != pending_depth:
            out.append(_render(pending_depth, "".join(pending)))
            pending = []
        flowed = body.endswith(" ") and body != _SIGNATURE_SEPARATOR
        if flowed and delsp:
            body = body[:-1]
        pending.append(body)
        pending_depth = depth
        if not flowed:
            out.append(_render(depth, "".join(pending)))
            pending = []
    if pending:
        out.append(_render(pending_depth, "".join(pending)))
    return "\n".join(out)
