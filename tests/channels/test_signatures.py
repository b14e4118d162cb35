"""Webhook authenticity (docs/reliability.md rows W1-W3): the providers' published vectors
pass, and every kind of tampering fails."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from helpdesk.channels.signatures import (
    meta_signature,
    slack_signature,
    valid_telegram_secret,
    verify_meta,
    verify_meta_handshake,
    verify_slack,
    verify_telegram,
)

# Slack's documented example (docs "verifying requests from Slack", also slack-sdk's tests).
SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
SLACK_TS = "1531420618"
SLACK_BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow"
    b"&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner"
    b"&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands"
    b"%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
    b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
SLACK_SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
NOW = float(SLACK_TS)


def test_slack_vector_is_valid() -> None:
    assert slack_signature(SLACK_SECRET, SLACK_TS, SLACK_BODY) == SLACK_SIGNATURE
    assert verify_slack(SLACK_SECRET, SLACK_TS, SLACK_SIGNATURE, SLACK_BODY, NOW)


@pytest.mark.parametrize(
    ("timestamp", "signature", "body", "now"),
    [
        (SLACK_TS, SLACK_SIGNATURE, SLACK_BODY[:-1] + b"d", NOW),  # one byte changed
        (SLACK_TS, SLACK_SIGNATURE, SLACK_BODY, NOW + 301),  # too old
        (SLACK_TS, SLACK_SIGNATURE, SLACK_BODY, NOW - 301),  # from the future
        ("153142061x", SLACK_SIGNATURE, SLACK_BODY, NOW),  # non-numeric timestamp
        (None, SLACK_SIGNATURE, SLACK_BODY, NOW),  # missing timestamp header
        (SLACK_TS, None, SLACK_BODY, NOW),  # missing signature header
        (SLACK_TS, "v1=" + SLACK_SIGNATURE[3:], SLACK_BODY, NOW),  # another version
        (SLACK_TS, SLACK_SIGNATURE[:-2], SLACK_BODY, NOW),  # short hex
        (SLACK_TS, SLACK_SIGNATURE.upper(), SLACK_BODY, NOW),  # not Slack's format
    ],
)
def test_slack_tampering_is_rejected(
    timestamp: str | None, signature: str | None, body: bytes, now: float
) -> None:
    assert not verify_slack(SLACK_SECRET, timestamp, signature, body, now)


def test_slack_window_edges_and_missing_secret() -> None:
    assert verify_slack(SLACK_SECRET, SLACK_TS, SLACK_SIGNATURE, SLACK_BODY, NOW + 300)
    assert not verify_slack("", SLACK_TS, SLACK_SIGNATURE, SLACK_BODY, NOW)


def test_meta_vector_and_reserialised_json() -> None:
    signature = meta_signature("secret", b"test")
    assert signature.startswith("sha256=0329a06b") and signature.endswith("0914")
    assert verify_meta("secret", signature, b"test")
    body = b'{"object": "page", "entry": [{"id": "1"}]}'
    signed = meta_signature("app-secret", body)
    reserialised = b'{"object":"page","entry":[{"id":"1"}]}'
    assert verify_meta("app-secret", signed, body)
    assert not verify_meta("app-secret", signed, reserialised)
    assert not verify_meta("app-secret", None, body)
    assert not verify_meta("app-secret", "sha1=" + signed[7:], body)
    assert not verify_meta("", signed, body)


def test_meta_handshake() -> None:
    assert verify_meta_handshake("verify-me", "subscribe", "verify-me")
    assert not verify_meta_handshake("verify-me", "subscribe", "wrong")
    assert not verify_meta_handshake("verify-me", "unsubscribe", "verify-me")
    assert not verify_meta_handshake("verify-me", "subscribe", None)
    assert not verify_meta_handshake("", "subscribe", "")


def test_telegram_secret() -> None:
    assert verify_telegram("Bot_secret-1", "Bot_secret-1")
    assert not verify_telegram("Bot_secret-1", "bot_secret-1")
    assert not verify_telegram("Bot_secret-1", None)
    assert not verify_telegram("", "")
    assert valid_telegram_secret("a" * 256) and not valid_telegram_secret("a" * 257)
    assert not valid_telegram_secret("with space") and not valid_telegram_secret("")


@given(st.binary(max_size=512), st.text(min_size=1, max_size=64))
def test_any_changed_body_fails_meta(body: bytes, secret: str) -> None:
    signature = meta_signature(secret, body)
    assert verify_meta(secret, signature, body)
    assert not verify_meta(secret, signature, body + b"\x00")
