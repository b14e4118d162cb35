"""Visitor tokens and origin matching: pure functions, no I/O."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from helpdesk.channels.webchat.service import origin_allowed, visitor_of, visitor_token

KEY = "k" * 64
VISITOR = "0123456789abcdef0123456789abcdef"


def test_a_token_names_its_visitor_on_its_account_only() -> None:
    token = visitor_token(KEY, "shop", VISITOR)
    assert visitor_of(KEY, "shop", token) == VISITOR
    assert visitor_of(KEY, "other-shop", token) is None
    assert visitor_of("another key", "shop", token) is None
    assert visitor_of("", "shop", token) is None  # no key yet: nothing is valid


def test_a_token_for_another_visitor_id_does_not_verify() -> None:
    token = visitor_token(KEY, "shop", VISITOR)
    forged = "f" * 32 + token[32:]
    assert visitor_of(KEY, "shop", forged) is None


@given(st.text(max_size=120))
def test_garbage_never_verifies(garbage: str) -> None:
    assert visitor_of(KEY, "shop", garbage) is None


def test_origins_match_exactly_after_normalising_case_and_default_ports() -> None:
    allowed = ["https://shop.example", "http://localhost:3000"]
    assert origin_allowed(allowed, "https://shop.example")
    assert origin_allowed(allowed, "HTTPS://Shop.Example:443")
    assert origin_allowed(allowed, "http://localhost:3000")
    assert not origin_allowed(allowed, "http://shop.example")
    assert not origin_allowed(allowed, "https://shop.example.evil.test")
    assert not origin_allowed(allowed, "https://evil.test")
    assert not origin_allowed(allowed, "null")
    assert not origin_allowed(None, "https://shop.example")  # no list: no browser origin
