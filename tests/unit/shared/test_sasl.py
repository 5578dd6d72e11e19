"""SASL XOAUTH2 / OAUTHBEARER encodings (Google's XOAUTH2 document; RFC 7628 3.1 and its section 4 example)."""

from __future__ import annotations

import base64

import pytest

from laifaxin_shared import sasl


def test_xoauth2_matches_googles_example() -> None:
    # developers.google.com/workspace/gmail/imap/xoauth2-protocol, "initial client response"
    raw = sasl.xoauth2_response("someuser@example.com", "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg")
    assert (
        raw
        == b"user=someuser@example.com\x01auth=Bearer ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg\x01\x01"
    )
    assert (
        sasl.initial_response("XOAUTH2", "someuser@example.com", "t", "h", 1)
        == base64.b64encode(b"user=someuser@example.com\x01auth=Bearer t\x01\x01").decode()
    )


def test_oauthbearer_matches_rfc7628_example_and_escapes_the_authzid() -> None:
    # RFC 7628 section 4.1
    raw = sasl.oauthbearer_response(
        "user@example.com", "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==", "server.example.com", 143
    )
    assert raw == (
        b"n,a=user@example.com,\x01host=server.example.com\x01port=143\x01"
        b"auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01"
    )
    assert sasl.oauthbearer_response("a,b=c@x", "t", "h", 1).startswith(b"n,a=a=2Cb=3Dc@x,\x01")


def test_control_characters_are_refused() -> None:
    with pytest.raises(ValueError):
        sasl.xoauth2_response("a@b\x01auth=Bearer x", "t")


def test_error_challenge_and_ack() -> None:
    challenge = base64.b64encode(b'{"status":"401","schemes":"bearer","scope":"mail"}')
    assert sasl.parse_error_challenge(challenge)["status"] == "401"
    assert sasl.parse_error_challenge("not base64!") == {}
    assert sasl.parse_error_challenge("") == {}
    assert sasl.error_ack("XOAUTH2") == b""
    assert sasl.error_ack("OAUTHBEARER") == b"\x01"


def test_mechanism_choice() -> None:
    assert sasl.choose_mechanism({"PLAIN", "XOAUTH2", "OAUTHBEARER"}) == "XOAUTH2"
    assert sasl.choose_mechanism({"OAUTHBEARER"}) == "OAUTHBEARER"
    with pytest.raises(sasl.OAuthMechanismUnsupportedError) as err:
        sasl.choose_mechanism({"PLAIN", "LOGIN"})
    assert err.value.offered == ["LOGIN", "PLAIN"]
