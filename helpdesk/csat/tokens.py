"""Signed survey links: pure, no I/O.

A token names its survey and expiry and carries an HMAC over the survey id, the ticket id
and the expiry under a server-side key. Without the key it cannot be made, changing any
part breaks it, and since the ticket id is signed in, a token can only ever rate the
ticket its survey belongs to.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from datetime import UTC, datetime

_TOKEN = re.compile(r"^([1-9][0-9]{0,18})\.([0-9]{1,12})\.([A-Za-z0-9_-]{22})$")


def _signature(key: str, survey_id: int, ticket_id: int, expires: int) -> str:
    message = f"csat:{survey_id}:{ticket_id}:{expires}".encode()
    digest = hmac.new(key.encode(), message, hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def sign(key: str, survey_id: int, ticket_id: int, expires_at: datetime) -> str:
    expires = int(expires_at.timestamp())
    return f"{survey_id}.{expires}.{_signature(key, survey_id, ticket_id, expires)}"


def survey_of(token: str) -> int | None:
    """The survey a well-formed token names (not yet verified)."""
    match = _TOKEN.fullmatch(token)
    return int(match.group(1)) if match else None


def verify(key: str, token: str, ticket_id: int, now: datetime) -> bool:
    """Authentic for this survey's ticket, and not expired."""
    match = _TOKEN.fullmatch(token)
    if match is None:
        return False
    survey_id, expires, signature = int(match.group(1)), int(match.group(2)), match.group(3)
    expected = _signature(key, survey_id, ticket_id, expires)
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        return False
    return now.astimezone(UTC).timestamp() <= expires
