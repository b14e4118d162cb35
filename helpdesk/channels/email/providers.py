"""Inbound mail from the webhooks of Mailgun, SendGrid and Postmark.

Each provider proves itself its own documented way, and each hands us the raw RFC 822
mail, so the one door (`receive`) parses, threads and deduplicates it like any other:

- Mailgun (a route's `forward()` to a URL ending in `mime`): form fields `timestamp`,
  `token`, `signature` = hex HMAC-SHA256(signing key, timestamp + token), and the mail
  in `body-mime`. The body itself is not signed, so a token is accepted once only (the
  ledger at the end of this module) and only within `MAX_SKEW_SECONDS`.
- SendGrid (Inbound Parse with "send raw" and a signature security policy): ECDSA
  P-256/SHA-256 over the timestamp header + the raw body, checked with the public key
  SendGrid shows; the mail in the form field `email`.
- Postmark (inbound webhook with "Include raw email content"): HTTP Basic credentials
  from the webhook URL; the mail in the JSON field `RawEmail`.

Everything but the token ledger is pure: no clock read (pass `now`), no I/O. Checks say
only yes or no, never which part failed, and compare secrets in constant time.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import itertools
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import unquote_to_bytes

import asyncpg
import msgspec
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from multipart import (  # type: ignore[import-untyped]  # litestar's own form parser
    MultipartError,
    MultipartSegment,
    PushMultipartParser,
    parse_options_header,
)

from helpdesk.channels.email import queries

# How far a signed timestamp may be from our clock, either way (Mailgun and SendGrid).
# Long enough for a slow delivery and modest clock skew, short enough that a remembered
# Mailgun token only has to be kept for a bounded time.
MAX_SKEW_SECONDS = 15 * 60
# A used Mailgun token is kept this long after its timestamp: beyond the window it
# could not pass the timestamp check anyway; the margin covers app/database clock skew.
TOKEN_RETENTION_SECONDS = 2 * MAX_SKEW_SECONDS
# Room for the provider's envelope around the mail: form fields next to it, JSON
# escaping, and Postmark's parsed copy of every attachment beside `RawEmail`.
ENVELOPE_FACTOR = 3
MAX_FORM_FIELDS = 200

_HEX64 = re.compile(r"[0-9a-f]{64}")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_TOKEN = re.compile(r"[\x21-\x7e]{1,256}")


def envelope_limit(max_message_bytes: int) -> int:
    """The most a provider's request body may carry for a mail of the largest size."""
    return ENVELOPE_FACTOR * max_message_bytes + 64 * 1024


def _fresh(timestamp: str, now: float) -> bool:
    return bool(_TIMESTAMP.fullmatch(timestamp)) and abs(now - int(timestamp)) <= MAX_SKEW_SECONDS


# --- Mailgun ------------------------------------------------------------------------


def mailgun_signature(signing_key: str, timestamp: str, token: str) -> str:
    """Hex HMAC-SHA256 keyed with the webhook signing key over timestamp + token."""
    message = (timestamp + token).encode()
    return hmac.new(signing_key.encode(), message, hashlib.sha256).hexdigest()


def verify_mailgun(
    signing_key: str | None,
    timestamp: str | None,
    token: str | None,
    signature: str | None,
    now: float,
) -> bool:
    """Signed with our key and fresh. Whether the token was used before is the ledger's
    question (`claim_mailgun_token`), asked in the transaction that stores the mail."""
    if not signing_key or not timestamp or not token or not signature:
        return False
    if not _fresh(timestamp, now) or not _TOKEN.fullmatch(token):
        return False
    if not _HEX64.fullmatch(signature):
        return False
    expected = mailgun_signature(signing_key, timestamp, token)
    return hmac.compare_digest(expected.encode(), signature.encode())


# --- SendGrid -----------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def sendgrid_public_key(text: str) -> ec.EllipticCurvePublicKey:
    """The verification key as SendGrid shows it (base64 DER SubjectPublicKeyInfo) or
    as PEM. Raises ValueError for anything but a P-256 public key (checked when an admin
    sets it, so a typo is refused then rather than refusing every mail later)."""
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode())
        else:
            der = base64.b64decode("".join(text.split()), validate=True)
            key = serialization.load_der_public_key(der)
    except UnsupportedAlgorithm:
        raise ValueError("not a supported public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("not an ECDSA P-256 public key")
    return key


def verify_sendgrid(
    public_key: str | None,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    now: float,
) -> bool:
    """ECDSA (P-256, SHA-256) over the timestamp header's bytes + the raw body, fresh.

    `signature` is the base64 DER signature of `X-Twilio-Email-Event-Webhook-Signature`,
    `timestamp` the `X-Twilio-Email-Event-Webhook-Timestamp` (Unix seconds).
    """
    if not public_key or not timestamp or not signature or not _fresh(timestamp, now):
        return False
    try:
        key = sendgrid_public_key(public_key)
        der = base64.b64decode(signature.strip(), validate=True)
        key.verify(der, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except (ValueError, InvalidSignature):
        return False
    return True


# --- Postmark -----------------------------------------------------------------------


def basic_credentials(authorization: str | None) -> str | None:
    """`user:password` of an `Authorization: Basic` header, or None."""
    scheme, _, value = (authorization or "").strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
        return None
    return decoded if ":" in decoded else None


def credentials_digest(credentials: str) -> bytes:
    """What is stored of Postmark's `user:password`: its SHA-256 (the password has at
    least 16 characters, so a fast hash is enough, as for the intake secret)."""
    return hashlib.sha256(credentials.encode()).digest()


def verify_postmark(expected_sha256: bytes | None, authorization: str | None) -> bool:
    """Postmark sends the credentials of the webhook URL as Basic auth (no body MAC)."""
    presented = basic_credentials(authorization)
    if expected_sha256 is None or presented is None:
        return False
    return hmac.compare_digest(expected_sha256, credentials_digest(presented))


# --- The raw mail out of each provider's body -----------------------------------------


def form_fields(content_type: str | None, body: bytes) -> dict[str, bytes]:
    """The fields of a multipart/form-data or urlencoded body, byte-exact (the first
    value of each name). Anything unparseable is no fields at all: the caller then
    finds no signature (401) or no mail (400), never a half-read form."""
    kind, options = parse_options_header(content_type or "")
    if kind == "multipart/form-data":
        return _multipart_fields(options.get("boundary", ""), body)
    if kind == "application/x-www-form-urlencoded":
        return _urlencoded_fields(body)
    return {}


def _multipart_fields(boundary: str, body: bytes) -> dict[str, bytes]:
    fields: dict[str, bytes] = {}
    name: str | None = None
    value = bytearray()
    try:
        parser = PushMultipartParser(boundary, max_segment_count=MAX_FORM_FIELDS)
        # The empty chunk ends the input: an incomplete form raises instead of passing.
        for event in itertools.chain(parser.parse(body), parser.parse(b"")):
            if isinstance(event, MultipartSegment):
                name, value = event.name, bytearray()
            elif event is None:
                if name is not None:
                    fields.setdefault(name, bytes(value))
                name = None
            else:
                value.extend(event)
    except MultipartError:
        return {}
    return fields


def _urlencoded_fields(body: bytes) -> dict[str, bytes]:
    fields: dict[str, bytes] = {}
    for pair in body.split(b"&")[:MAX_FORM_FIELDS]:
        key, _, value = pair.partition(b"=")
        try:
            name = unquote_to_bytes(key.replace(b"+", b" ")).decode("utf-8")
        except UnicodeDecodeError:
            continue
        fields.setdefault(name, unquote_to_bytes(value.replace(b"+", b" ")))
    return fields


def text_field(fields: Mapping[str, bytes], name: str) -> str | None:
    """A short ASCII field (timestamp, token, signature), or None."""
    value = fields.get(name)
    if value is None or len(value) > 1024:
        return None
    try:
        return value.decode("ascii")
    except UnicodeDecodeError:
        return None


def mailgun_mime(fields: Mapping[str, bytes]) -> bytes | None:
    """`body-mime`: present only when the route forwards to a URL ending in `mime`."""
    return fields.get("body-mime")


def sendgrid_mime(fields: Mapping[str, bytes]) -> bytes | None:
    """`email`: present only with Inbound Parse's "POST the raw, full MIME message"."""
    return fields.get("email")


class _PostmarkInbound(msgspec.Struct):
    RawEmail: str | None = None


def postmark_mime(body: bytes) -> bytes | None:
    """`RawEmail` of Postmark's JSON; None when the raw content option is off.

    Raises msgspec.DecodeError (or ValidationError) for a body that is not that JSON.
    The JSON carries the mail as text, so it is encoded back as UTF-8 (what Postmark
    decoded it from for 8-bit mail; 7-bit mail is ASCII either way).
    """
    raw = msgspec.json.decode(body, type=_PostmarkInbound).RawEmail
    return None if raw is None else raw.encode("utf-8", "replace")


# --- Mailgun's token ledger (the only I/O here) ---------------------------------------


async def claim_mailgun_token(
    conn: asyncpg.Connection, account_id: int, token: str, timestamp: str
) -> bool:
    """Record a token as used; False when it was used before (a replay).

    Runs in the caller's transaction with the mail's import: a token counts as used
    exactly when its mail was stored, so a delivery that failed (503) can be retried,
    and a concurrent replay waits on the first one's row and then finds it.
    """
    signed_at = datetime.fromtimestamp(int(timestamp), UTC)
    await conn.execute(queries.PRUNE_MAILGUN_TOKENS, account_id, TOKEN_RETENTION_SECONDS)
    claimed = await conn.fetchval(queries.CLAIM_MAILGUN_TOKEN, account_id, token, signed_at)
    return claimed is True
