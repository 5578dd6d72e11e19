"""Limits checked on the raw bytes before the MIME parser runs, so hostile structure costs a scan, not a parse.

The stdlib parser's time grows with the number of parts, the nesting depth (every body line is matched
against the boundary of every enclosing multipart), the size of header blocks and fields (some structured
field parsers are quadratic in the number of parameters) and the number of RFC 2047 words in a field. Mail in
the field stays far below the defaults of :class:`MimeLimits`; a message above one is quarantined with a
reason naming the limit (:class:`~laifaxin_shared.mime.QuarantineError`), its bytes kept by the caller.

:func:`check_limits` itself is linear in the message size: C-level byte searches over the whole message, and
Python loops only over the top-level header block (at most ``max_header_bytes``) and over lines that begin
with ``--`` (at most ``4 * max_parts`` of them, else counted per declared boundary in C).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from .errors import QuarantineError

__all__ = ["MimeLimits", "check_limits"]


@dataclass(frozen=True, slots=True)
class MimeLimits:
    """Structure limits of one message (bytes unless the name says otherwise).

    - ``max_header_bytes``: a header block: the message's, and each MIME part's (RFC 5322 section 2.1,
      RFC 2046 section 5.1.1). Real header blocks, long Received and ARC chains included, are a few KiB.
    - ``max_header_field_bytes``: one field of the message's header block, its folded lines together.
    - ``max_header_line_bytes``: one line of the message's header block (RFC 5322 section 2.1.1 allows 998
      characters; real mail exceeds that, not by this much).
    - ``max_encoded_words``: RFC 2047 encoded words (``=?``) in one field of the message's header block (a
      4,096-character Subject needs about 300).
    - ``max_parts``: MIME parts, counted as boundary delimiter lines (RFC 2046 section 5.1.1) of the boundaries
      the message declares; also the most ``boundary=`` declarations.
    - ``max_depth``: multiparts nested in one another (their boundaries' spans inside each other).
    """

    max_header_bytes: int = 256 * 1024
    max_header_field_bytes: int = 64 * 1024
    max_header_line_bytes: int = 32 * 1024
    max_encoded_words: int = 1000
    max_parts: int = 1000
    max_depth: int = 64


_HEADER_END = re.compile(rb"\r?\n\r?\n")
_FIELD_START = re.compile(rb"[\x21-\x39\x3b-\x7e]*:")  # the stdlib feed parser's header line test
_BOUNDARY = re.compile(rb'boundary\s*=\s*(?:"([^"\r\n]*)"|([^\s;"]+))', re.IGNORECASE)
_MAX_BOUNDARIES_COUNTED_IN_C = 16


def check_limits(raw: bytes, limits: MimeLimits) -> None:
    """Raise :class:`~laifaxin_shared.mime.QuarantineError` when ``raw`` exceeds one of ``limits``.

    Reasons: ``header_too_large`` (a header block, a field or a header line), ``too_many_encoded_words``,
    ``too_many_parts``, ``too_deep``. Returns None when every limit holds.
    """
    _check_top_headers(raw, limits)
    boundaries = _declared_boundaries(raw, limits)
    if boundaries:
        _check_parts(raw, boundaries, limits)


def _check_top_headers(raw: bytes, limits: MimeLimits) -> None:
    """The message's header block: its size, each field's size and encoded words, each line's length."""
    start = len(raw) - len(raw.lstrip(b"\r\n"))  # parse_message skips blank lines before the header block
    window = raw[start : start + limits.max_header_bytes + 1]
    size = 0
    field_name = b""
    field_size = 0
    field_words = 0
    lines = window.splitlines(keepends=True)
    for index, line in enumerate(lines):
        if index == len(lines) - 1 and len(window) > limits.max_header_bytes:
            size += len(line)  # cut by the window: the header block goes on beyond the limit
            break
        body = line.rstrip(b"\r\n")
        if not body:
            return  # the blank line ending the header block
        if body[:1] in (b" ", b"\t"):
            field_size += len(line)
            field_words += line.count(b"=?")
        elif _FIELD_START.match(body) or (size == 0 and body.startswith(b"From ")):
            field_name, field_size, field_words = body.split(b":", 1)[0][:40], len(line), line.count(b"=?")
        else:
            return  # not a header line: the header block ended (the parser records a defect)
        size += len(line)
        name = field_name.decode("ascii", "replace")
        if len(body) > limits.max_header_line_bytes:
            raise QuarantineError(
                "header_too_large",
                f"a line of the {name} field has {len(body)} bytes > limit {limits.max_header_line_bytes}",
            )
        if field_size > limits.max_header_field_bytes:
            raise QuarantineError(
                "header_too_large",
                f"the {name} field has more than {limits.max_header_field_bytes} bytes",
            )
        if field_words > limits.max_encoded_words:
            raise QuarantineError(
                "too_many_encoded_words",
                f"the {name} field has more than {limits.max_encoded_words} encoded words (RFC 2047)",
            )
    if size > limits.max_header_bytes:
        raise QuarantineError(
            "header_too_large", f"the header block has more than {limits.max_header_bytes} bytes"
        )


def _declared_boundaries(raw: bytes, limits: MimeLimits) -> set[bytes]:
    """Every ``boundary=`` parameter value in the message (RFC 2046 section 5.1.1), unquoted."""
    found: set[bytes] = set()
    for count, match in enumerate(_BOUNDARY.finditer(raw), start=1):
        if count > limits.max_parts:
            raise QuarantineError(
                "too_many_parts", f"more than {limits.max_parts} multipart boundaries declared"
            )
        value = (match.group(1) if match.group(1) is not None else match.group(2)).rstrip()
        if value:
            found.add(value)
    return found


def _check_parts(raw: bytes, boundaries: set[bytes], limits: MimeLimits) -> None:
    """Count the boundary delimiter lines and the nesting of the multiparts; check the part header blocks."""
    dash_lines = raw.count(b"\n--") + raw.startswith(b"--")
    if dash_lines <= 4 * limits.max_parts:
        positions = _delimiters_by_scan(raw, boundaries)
    elif len(boundaries) <= _MAX_BOUNDARIES_COUNTED_IN_C:
        positions = _delimiters_by_boundary(raw, boundaries, limits)
    else:
        raise QuarantineError(
            "too_many_parts",
            f"{dash_lines} lines begin with '--' and {len(boundaries)} multipart boundaries are declared",
        )
    parts = sum(1 for _, _, close in positions if not close)
    if parts > limits.max_parts:
        raise QuarantineError("too_many_parts", f"{parts} MIME parts > limit {limits.max_parts}")
    # Nesting: each boundary spans from its first to its last delimiter line; the deepest point is where the
    # most spans overlap (the spans of nested multiparts lie inside one another).
    spans: dict[bytes, list[int]] = {}
    for pos, boundary, _ in positions:
        span = spans.setdefault(boundary, [pos, pos])
        span[1] = pos
    edges = sorted([(a, 1) for a, _ in spans.values()] + [(b, -1) for _, b in spans.values()])
    depth = deepest = 0
    for _, step in edges:
        depth += step
        deepest = max(deepest, depth)
    if deepest > limits.max_depth:
        raise QuarantineError("too_deep", f"multiparts nested {deepest} deep > limit {limits.max_depth}")
    _check_part_headers(raw, positions, limits)


def _line_end(raw: bytes, pos: int) -> int:
    end = raw.find(b"\n", pos)
    return len(raw) if end < 0 else end + 1


def _classify(raw: bytes, start: int, boundaries: set[bytes]) -> tuple[bytes, bool] | None:
    """The boundary of the delimiter line that starts at ``start`` (just after its ``--``) and whether it is
    the close delimiter, or None when the line is not one (RFC 2046 section 5.1.1: ``--boundary``, an
    optional ``--``, optional white space)."""
    token = raw[start : _line_end(raw, start)].rstrip(b" \t\r\n")
    if token in boundaries:
        return token, False
    if token.endswith(b"--") and token[:-2].rstrip(b" \t") in boundaries:
        return token[:-2].rstrip(b" \t"), True
    return None


def _starts(raw: bytes, prefix: bytes) -> Iterator[int]:
    """Where the text after ``prefix`` begins, for each line that begins with ``prefix`` (lazily)."""
    if raw.startswith(prefix):
        yield len(prefix)
    needle = b"\n" + prefix
    pos = raw.find(needle)
    while pos >= 0:
        yield pos + len(needle)
        pos = raw.find(needle, pos + len(needle))


def _delimiters_by_scan(raw: bytes, boundaries: set[bytes]) -> list[tuple[int, bytes, bool]]:
    out: list[tuple[int, bytes, bool]] = []
    for start in _starts(raw, b"--"):
        found = _classify(raw, start, boundaries)
        if found is not None:
            out.append((start, found[0], found[1]))
    return out


def _delimiters_by_boundary(
    raw: bytes, boundaries: set[bytes], limits: MimeLimits
) -> list[tuple[int, bytes, bool]]:
    """As :func:`_delimiters_by_scan` for a message with many lines that begin with ``--``: the lines that
    begin with ``--`` and a declared boundary are found by one C-level search per boundary."""
    out: list[tuple[int, bytes, bool]] = []
    seen = 0
    for boundary in boundaries:
        for start in _starts(raw, b"--" + boundary):
            seen += 1
            if seen > 4 * limits.max_parts:
                raise QuarantineError(
                    "too_many_parts", f"more than {4 * limits.max_parts} lines begin with a boundary"
                )
            found = _classify(raw, start - len(boundary), boundaries)
            if found is not None:
                out.append((start - len(boundary), found[0], found[1]))
    out.sort()
    return out


def _check_part_headers(raw: bytes, positions: list[tuple[int, bytes, bool]], limits: MimeLimits) -> None:
    """The header block after each delimiter line: from the next line up to a blank line, searched only up to
    the next delimiter line (so the whole scan reads each byte at most once)."""
    for index, (start, _boundary, close) in enumerate(positions):
        if close:
            continue
        head = _line_end(raw, start)
        stop = positions[index + 1][0] if index + 1 < len(positions) else len(raw)
        if stop - head <= limits.max_header_bytes:
            continue
        if not _FIELD_START.match(raw, head):
            continue  # the part has no header lines: its body starts at once
        if _HEADER_END.search(raw, head, head + limits.max_header_bytes + 4) is None:
            raise QuarantineError(
                "header_too_large",
                f"a MIME part's header block has more than {limits.max_header_bytes} bytes",
            )
