"""Webhook authenticity checks of every provider, on the raw body, in constant time.

Pure functions: each returns whether the request is authentic and never says why not
(the API answers the same 401/403 whichever check failed). Specs and test vectors are
in `docs/reliability.md`, section 1.
"""

from __future__ import annotations

import hashlib
import hmac
import re

SLACK_MAX_SKEW_SECONDS = 300
_HEX64 = re.compile(r"[0-9a-f]{64}")
_TELEGRAM_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")


def slack_signature(signing_secret: str, timestamp: str, body: bytes) -> str:
    """`v0=` + hex HMAC-SHA256 over `v0:{timestamp}:{body}` (Slack request signing)."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()


def verify_slack(
    signing_secret: str,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    now: float,
) -> bool:
    """A Slack request is authentic when signed with our secret within five minutes."""
    if not signing_secret or not timestamp or not signature:
        return False
    if not timestamp.isdigit() or abs(now - int(timestamp)) > SLACK_MAX_SKEW_SECONDS:
        return False
    version, _, digest = signature.partition("=")
    if version != "v0" or not _HEX64.fullmatch(digest):
        return False
    expected = slack_signature(signing_secret, timestamp, body)
    return hmac.compare_digest(expected.encode(), signature.encode())


def meta_signature(app_secret: str, body: bytes) -> str:
    """`sha256=` + hex HMAC-SHA256 of the raw body (Meta's X-Hub-Signature-256)."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def verify_meta(app_secret: str, signature: str | None, body: bytes) -> bool:
    """Meta signs the exact bytes it sent; re-serialised JSON does not match."""
    if not app_secret or not signature:
        return False
    algorithm, _, digest = signature.partition("=")
    if algorithm != "sha256" or not _HEX64.fullmatch(digest):
        return False
    return hmac.compare_digest(meta_signature(app_secret, body).encode(), signature.encode())


def verify_meta_handshake(verify_token: str, mode: str | None, token: str | None) -> bool:
    """The subscription handshake: `hub.mode=subscribe` with our verify token."""
    if not verify_token or mode != "subscribe" or token is None:
        return False
    return hmac.compare_digest(verify_token.encode(), token.encode())


def valid_telegram_secret(secret: str) -> bool:
    """What `setWebhook(secret_token=...)` accepts: 1-256 of A-Z a-z 0-9 _ -."""
    return bool(_TELEGRAM_SECRET.fullmatch(secret))


def verify_telegram(secret: str, presented: str | None) -> bool:
    """Telegram echoes our secret in X-Telegram-Bot-Api-Secret-Token (no body MAC)."""
    if not secret or presented is None:
        return False
    return hmac.compare_digest(secret.encode(), presented.encode())
