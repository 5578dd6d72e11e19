"""HTML of a message made safe to show in the inbox page, with nh3 (Python binding of the ammonia sanitiser).

What is removed: ``<script>``, ``<style>`` and their content, every element and attribute outside ammonia's
allowlist (so every ``on*`` event handler, ``style``, ``<iframe>``, ``<object>``, ``<form>``), URLs with schemes
other than http, https, mailto and cid (``javascript:`` links), and remote images: an ``<img>`` whose ``src`` is
not ``cid:`` (a part of the message itself) loses its ``src`` — a remote image is a tracking pixel that tells the
sender when and where the mail was opened. Links get ``rel="noopener noreferrer"``.
"""

from __future__ import annotations

from dataclasses import dataclass

import nh3

URL_SCHEMES = {"http", "https", "mailto", "cid"}


@dataclass(frozen=True, slots=True)
class SafeHtml:
    """Sanitised HTML and how many remote images were blocked."""

    html: str
    remote_images_blocked: int


def sanitize_html(html: str) -> SafeHtml:
    """``html`` with scripts, event handlers, unsafe URLs and remote images removed (see the module docstring)."""
    blocked = 0

    def attribute_filter(element: str, attribute: str, value: str) -> str | None:
        nonlocal blocked
        if element == "img" and attribute == "src":
            if value.strip().lower().startswith("cid:"):
                return value
            blocked += 1
            return None
        return value

    clean = nh3.clean(html, url_schemes=URL_SCHEMES, attribute_filter=attribute_filter)
    return SafeHtml(clean, blocked)
