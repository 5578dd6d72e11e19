"""Fixtures for the classifier's pure-function tests: one loaded model, and a small RFC 5322 message factory."""

from __future__ import annotations

from email.message import EmailMessage
from email.policy import SMTP

import pytest

from laifaxin_classifier.classify import Classifier


@pytest.fixture(scope="session")
def classifier() -> Classifier:
    """The committed model artifact, loaded once."""
    return Classifier()


def make_eml(
    body: str = "Hello",
    *,
    subject: str = "Re: LED panels",
    sender: str = "Buyer <buyer@example.com>",
    headers: dict[str, str] | None = None,
    html: str | None = None,
) -> bytes:
    """A small message as bytes: text/plain (or text/html only when ``html`` is given and body is empty)."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "sales@laifaxin.example"
    msg["Subject"] = subject
    msg["Date"] = "Sat, 21 Nov 2026 08:29:30 +0000"
    for name, value in (headers or {}).items():
        msg[name] = value
    if html is not None and not body:
        msg.set_content(html, subtype="html")
    else:
        msg.set_content(body)
    return msg.as_bytes(policy=SMTP)
