"""Inbound mail through Mailgun, SendGrid and Postmark webhooks (docs/reliability.md row W4).

Each provider is verified its documented way, and whatever it delivers goes through the
same door as any mail: stored once per Message-ID, 200 only once it is durable, 401
(one answer, never which check failed) for anything not proven authentic.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import secrets
import time
from urllib.parse import urlencode

import asyncpg
import httpx
import msgspec
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given
from hypothesis import strategies as st

from helpdesk.channels.email import providers
from tests.channels.email.builders import mail, support_account
from tests.conftest import Client, Factory

MAILGUN_KEY = "mailgun-signing-key-0123456789abcdef"
POSTMARK_USER = "postmark"
POSTMARK_PASSWORD = "pm-inbound-password-0123456789"
POSTMARK_CREDENTIALS = f"{POSTMARK_USER}:{POSTMARK_PASSWORD}"
BASE = "/channels/email/support/inbound"
MAILGUN = f"{BASE}/mailgun/mime"
SENDGRID = f"{BASE}/sendgrid"
POSTMARK = f"{BASE}/postmark"
REFUSED = "The request could not be authenticated"


# --- Building what the providers send -------------------------------------------------


def multipart(fields: dict[str, bytes], boundary: str = "provider-boundary-7MA4YWxk") -> bytes:
    """multipart/form-data as the providers write it (a part per field, CRLF)."""
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        + value
        + b"\r\n"
        for name, value in fields.items()
    ]
    return b"".join(parts) + f"--{boundary}--\r\n".encode()


def form_type(boundary: str = "provider-boundary-7MA4YWxk") -> dict[str, str]:
    return {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def mailgun_fields(
    raw: bytes | None,
    *,
    key: str = MAILGUN_KEY,
    timestamp: int | None = None,
    token: str | None = None,
) -> dict[str, bytes]:
    """A signed Mailgun route POST; the signature computed here with hmac, independently
    of the code under test."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    token = token or secrets.token_hex(25)  # Mailgun's tokens are 50 characters
    digest = hmac.new(key.encode(), (stamp + token).encode(), hashlib.sha256).hexdigest()
    fields = {
        "recipient": b"podpora@shop.example",
        "sender": b"jana@example.cz",
        "timestamp": stamp.encode(),
        "token": token.encode(),
        "signature": digest.encode(),
    }
    if raw is not None:
        fields["body-mime"] = raw
    return fields


def p256() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def public_der_b64(key: ec.EllipticCurvePrivateKey) -> str:
    """The public key as SendGrid's settings page shows it."""
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


def sendgrid_request(
    key: ec.EllipticCurvePrivateKey, raw: bytes | None, *, timestamp: int | None = None
) -> tuple[bytes, dict[str, str]]:
    """An Inbound Parse POST ("send raw") signed as a security policy signs it."""
    fields = {
        "to": b"podpora@shop.example",
        "from": b"Jana <jana@example.cz>",
        "envelope": b'{"to":["podpora@shop.example"],"from":"jana@example.cz"}',
        "charsets": b'{"to":"UTF-8","from":"UTF-8"}',
    }
    if raw is not None:
        fields["email"] = raw
    body = multipart(fields)
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return body, {
        **form_type(),
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
    }


def basic(credentials: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(credentials.encode()).decode()}


def postmark_json(raw: bytes | None) -> bytes:
    """Postmark's inbound JSON: parsed fields, plus RawEmail when the option is on."""
    payload: dict[str, object] = {
        "From": "jana@example.cz",
        "To": "podpora@shop.example",
        "Subject": "Reklamace hrnku",
        "TextBody": "Hrnek dorazil rozbity.",
        "Attachments": [],
    }
    if raw is not None:
        payload["RawEmail"] = raw.decode("utf-8")
    return json.dumps(payload).encode()


async def inbound_count(db: asyncpg.Connection) -> int:
    count: int = await db.fetchval("SELECT count(*) FROM messages WHERE direction = 'inbound'")
    return count


def assert_refused(response: httpx.Response) -> None:
    """401 problem+json, the same words whichever check failed."""
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["detail"] == REFUSED


@pytest.fixture
async def sendgrid_key(db: asyncpg.Connection) -> ec.EllipticCurvePrivateKey:
    """An account taking all three providers; SendGrid's side holds the private key."""
    key = p256()
    await support_account(
        db,
        mailgun_signing_key=MAILGUN_KEY,
        sendgrid_public_key=public_der_b64(key),
        postmark_credentials=POSTMARK_CREDENTIALS,
    )
    return key


# --- Mailgun --------------------------------------------------------------------------


async def test_mailgun_delivery_is_stored_once_however_often_it_comes(
    client: Client, db: asyncpg.Connection, sendgrid_key: object
) -> None:
    raw = mail()
    first = await client.post(MAILGUN, content=multipart(mailgun_fields(raw)), headers=form_type())
    assert first.status_code == 200, first.text
    assert first.json()["outcome"] == "stored"
    # Mailgun delivers the same mail again (a new token): one message all the same.
    again = await client.post(MAILGUN, content=multipart(mailgun_fields(raw)), headers=form_type())
    assert again.status_code == 200 and again.json()["outcome"] == "duplicate"
    assert again.json()["message_id"] == first.json()["message_id"]
    assert await inbound_count(db) == 1
    stored = await db.fetchval(
        "SELECT raw FROM message_sources WHERE message_id = $1", first.json()["message_id"]
    )
    assert bytes(stored) == raw


async def test_mailgun_urlencoded_post_is_taken_byte_exact(
    client: Client, db: asyncpg.Connection, sendgrid_key: object
) -> None:
    raw = mail(body="Hrnek dorazil rozbitý + víčko & lžička = 100 %") + b"\xff\r\n"
    body = urlencode(mailgun_fields(raw)).encode()
    response = await client.post(
        f"{BASE}/mailgun/mime",
        content=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200, response.text
    stored = await db.fetchval(
        "SELECT raw FROM message_sources WHERE message_id = $1", response.json()["message_id"]
    )
    assert bytes(stored) == raw


async def test_replayed_mailgun_token_is_refused_and_stores_nothing(
    client: Client, db: asyncpg.Connection, sendgrid_key: object
) -> None:
    """Mailgun signs only timestamp + token, not the mail: whoever saw one delivery
    could attach any mail to its signature, so a token is good for one mail only."""
    fields = mailgun_fields(mail())
    first = await client.post(MAILGUN, content=multipart(fields), headers=form_type())
    assert first.status_code == 200
    forged = {**fields, "body-mime": mail(message_id="<forged@attacker.example>")}
    for body in (multipart(forged), multipart(fields)):
        assert_refused(await client.post(MAILGUN, content=body, headers=form_type()))
    assert await inbound_count(db) == 1
    assert await db.fetchval("SELECT count(*) FROM email_quarantine") == 0


async def test_concurrent_replays_of_one_mailgun_token_store_one_mail(
    client: Client, db: asyncpg.Connection, sendgrid_key: object
) -> None:
    """The ledger's unique row decides, not a check-then-insert: five deliveries of one
    token at once, each with another mail, give one 200 and four 401s."""
    fields = mailgun_fields(mail())
    bodies = [
        multipart({**fields, "body-mime": mail(message_id=f"<m{i}@customer.example>")})
        for i in range(5)
    ]
    responses = await asyncio.gather(
        *(client.post(MAILGUN, content=body, headers=form_type()) for body in bodies)
    )
    assert sorted(r.status_code for r in responses) == [200, 401, 401, 401, 401]
    assert await inbound_count(db) == 1


@pytest.mark.parametrize(
    "case",
    [
        "wrong-key",
        "stale",
        "future",
        "tampered-token",
        "no-signature",
        "no-token",
        "no-timestamp",
        "bad-timestamp",
        "upper-hex",
        "not-a-form",
    ],
)
async def test_mailgun_without_a_good_signature_stores_nothing(
    client: Client,
    db: asyncpg.Connection,
    sendgrid_key: object,
    case: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = int(time.time())
    fields = mailgun_fields(mail(), key="another-signing-key-0123456789")
    if case != "wrong-key":
        fields = mailgun_fields(
            mail(),
            timestamp={"stale": now - 960, "future": now + 960}.get(case, now),
        )
    if case == "tampered-token":
        fields["token"] = fields["token"][:-1] + b"x"
    elif case.startswith("no-"):
        del fields[case.removeprefix("no-")]
    elif case == "bad-timestamp":
        fields["timestamp"] = b"12e9"
    elif case == "upper-hex":
        fields["signature"] = fields["signature"].upper()
    content = multipart(fields)
    headers = {"Content-Type": "text/plain"} if case == "not-a-form" else form_type()
    with caplog.at_level(logging.DEBUG):
        response = await client.post(MAILGUN, content=content, headers=headers)
    assert_refused(response)
    assert await inbound_count(db) == 0
    assert MAILGUN_KEY not in caplog.text
    if "signature" in fields:
        assert fields["signature"].decode() not in caplog.text


async def test_mailgun_route_without_mime_is_told_so_and_keeps_its_token(
    client: Client, db: asyncpg.Connection, sendgrid_key: object
) -> None:
    """A route forwarding to a URL not ending in `mime` gets parsed fields: 400 says how
    to fix it (Mailgun retries meanwhile), and the token is not spent on nothing."""
    fields = mailgun_fields(None)
    fields["body-plain"] = b"Hrnek dorazil rozbity."
    response = await client.post(f"{BASE}/mailgun", content=multipart(fields), headers=form_type())
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "/inbound/mailgun/mime" in response.json()["detail"]
    assert await inbound_count(db) == 0
    fields["body-mime"] = mail()
    fixed = await client.post(MAILGUN, content=multipart(fields), headers=form_type())
    assert fixed.status_code == 200 and fixed.json()["outcome"] == "stored"


# --- SendGrid -------------------------------------------------------------------------


async def test_sendgrid_signed_delivery_is_stored_once(
    client: Client, db: asyncpg.Connection, sendgrid_key: ec.EllipticCurvePrivateKey
) -> None:
    raw = mail()
    statuses = []
    for _ in range(2):
        body, headers = sendgrid_request(sendgrid_key, raw)
        response = await client.post(SENDGRID, content=body, headers=headers)
        assert response.status_code == 200, response.text
        statuses.append(response.json()["outcome"])
    assert statuses == ["stored", "duplicate"]
    assert await inbound_count(db) == 1


@pytest.mark.parametrize(
    "case",
    ["other-key", "body-byte", "stale", "timestamp-changed", "no-signature", "no-timestamp"],
)
async def test_sendgrid_without_a_good_signature_stores_nothing(
    client: Client,
    db: asyncpg.Connection,
    sendgrid_key: ec.EllipticCurvePrivateKey,
    case: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    key = p256() if case == "other-key" else sendgrid_key
    stamp = int(time.time()) - 960 if case == "stale" else None
    body, headers = sendgrid_request(key, mail(), timestamp=stamp)
    if case == "body-byte":
        at = body.index(b"Hrnek")
        body = body[:at] + b"h" + body[at + 1 :]
    elif case == "timestamp-changed":
        headers["X-Twilio-Email-Event-Webhook-Timestamp"] = str(int(time.time()) + 1)
    elif case.startswith("no-"):
        name = "Signature" if case == "no-signature" else "Timestamp"
        del headers[f"X-Twilio-Email-Event-Webhook-{name}"]
    with caplog.at_level(logging.DEBUG):
        response = await client.post(SENDGRID, content=body, headers=headers)
    assert_refused(response)
    assert await inbound_count(db) == 0
    if "X-Twilio-Email-Event-Webhook-Signature" in headers:
        assert headers["X-Twilio-Email-Event-Webhook-Signature"] not in caplog.text


async def test_sendgrid_without_send_raw_is_told_so(
    client: Client, db: asyncpg.Connection, sendgrid_key: ec.EllipticCurvePrivateKey
) -> None:
    body, headers = sendgrid_request(sendgrid_key, None)
    response = await client.post(SENDGRID, content=body, headers=headers)
    assert response.status_code == 400
    assert "raw, full MIME" in response.json()["detail"]
    assert await inbound_count(db) == 0


# --- Postmark -------------------------------------------------------------------------


async def test_postmark_delivery_with_basic_auth_is_stored_once(
    client: Client, db: asyncpg.Connection, sendgrid_key: object
) -> None:
    raw = mail()
    outcomes = []
    for _ in range(2):
        response = await client.post(
            POSTMARK,
            content=postmark_json(raw),
            headers={**basic(POSTMARK_CREDENTIALS), "Content-Type": "application/json"},
        )
        assert response.status_code == 200, response.text
        outcomes.append(response.json()["outcome"])
    assert outcomes == ["stored", "duplicate"]
    assert await inbound_count(db) == 1
    stored = await db.fetchval("SELECT raw FROM message_sources")
    assert bytes(stored) == raw


@pytest.mark.parametrize(
    "headers",
    [
        {},
        basic(f"{POSTMARK_USER}:{POSTMARK_PASSWORD}x"),
        basic(f"other:{POSTMARK_PASSWORD}"),
        basic(POSTMARK_PASSWORD),
        {"Authorization": f"Bearer {POSTMARK_PASSWORD}"},
        {"Authorization": "Basic !!!not-base64"},
    ],
)
async def test_postmark_without_the_right_credentials_stores_nothing(
    client: Client,
    db: asyncpg.Connection,
    sendgrid_key: object,
    headers: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG):
        response = await client.post(POSTMARK, content=postmark_json(mail()), headers=headers)
    assert_refused(response)
    assert await inbound_count(db) == 0
    assert POSTMARK_PASSWORD not in caplog.text


async def test_postmark_without_raw_email_is_refused_with_the_fix(
    client: Client, db: asyncpg.Connection, sendgrid_key: object
) -> None:
    """Nothing is lost silently: 400 (Postmark retries) naming the option to turn on."""
    response = await client.post(
        POSTMARK, content=postmark_json(None), headers=basic(POSTMARK_CREDENTIALS)
    )
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "RawEmail" in response.json()["detail"]
    assert "Include raw email content" in response.json()["detail"]
    garbage = await client.post(POSTMARK, content=b"{not json", headers=basic(POSTMARK_CREDENTIALS))
    assert garbage.status_code == 400
    assert await inbound_count(db) == 0
    assert await db.fetchval("SELECT count(*) FROM email_quarantine") == 0


# --- Unconfigured endpoints and the accounts API ---------------------------------------


async def test_provider_endpoints_are_closed_without_their_secret(
    client: Client, db: asyncpg.Connection
) -> None:
    """An account with only the intake secret, an inactive one and an unknown one: every
    provider endpoint refuses, with the same answer, whatever is presented."""
    key = p256()
    await support_account(db)  # intake secret only
    await support_account(
        db,
        name="inactive",
        active=False,
        mailgun_signing_key=MAILGUN_KEY,
        sendgrid_public_key=public_der_b64(key),
        postmark_credentials=POSTMARK_CREDENTIALS,
    )
    for account in ("support", "inactive", "unknown"):
        base = f"/channels/email/{account}/inbound"
        body, headers = sendgrid_request(key, mail())
        for response in (
            await client.post(
                f"{base}/mailgun/mime",
                content=multipart(mailgun_fields(mail())),
                headers=form_type(),
            ),
            await client.post(f"{base}/sendgrid", content=body, headers=headers),
            await client.post(
                f"{base}/postmark",
                content=postmark_json(mail()),
                headers=basic(POSTMARK_CREDENTIALS),
            ),
        ):
            assert_refused(response)
    assert await inbound_count(db) == 0


async def test_provider_secrets_are_write_only_in_the_accounts_api(
    client: Client, db: asyncpg.Connection, factory: Factory
) -> None:
    admin = await factory.agent("admin")
    public_key = public_der_b64(p256())
    body = {
        "name": "support",
        "address": "podpora@shop.example",
        "mailgun_signing_key": MAILGUN_KEY,
        "sendgrid_public_key": public_key,
        "postmark_credentials": POSTMARK_CREDENTIALS,
    }
    created = await client.post("/channels/email/accounts", json=body, headers=admin.headers)
    assert created.status_code == 201, created.text
    flags = ("mailgun_signing_key_set", "sendgrid_public_key_set", "postmark_credentials_set")
    assert all(created.json()[flag] is True for flag in flags)
    read = await client.get("/channels/email/accounts/support", headers=admin.headers)
    listed = await client.get("/channels/email/accounts", headers=admin.headers)
    cleared = await client.patch(
        "/channels/email/accounts/support",
        json={"postmark_credentials": None},
        headers=admin.headers,
    )
    audit = await client.get("/audit", headers=admin.headers)
    assert [r.status_code for r in (read, listed, cleared, audit)] == [200] * 4
    for response in (created, read, listed, cleared, audit):
        for secret in (MAILGUN_KEY, POSTMARK_PASSWORD, public_key[-40:]):
            assert secret not in response.text
    assert cleared.json()["postmark_credentials_set"] is False
    assert cleared.json()["mailgun_signing_key_set"] is True

    # Clearing the credentials closes the endpoint.
    closed = await client.post(
        POSTMARK, content=postmark_json(mail()), headers=basic(POSTMARK_CREDENTIALS)
    )
    assert_refused(closed)

    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa_der = rsa_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for bad in (
        {"sendgrid_public_key": base64.b64encode(rsa_der).decode()},
        {"sendgrid_public_key": "not a key at all, but long enough to pass the length check"},
        {"postmark_credentials": "no-colon-in-here-0123456789"},
        {"postmark_credentials": "user:short"},
        {"mailgun_signing_key": "short"},
    ):
        refused = await client.patch(
            "/channels/email/accounts/support", json=bad, headers=admin.headers
        )
        assert refused.status_code in (400, 422), (bad, refused.text)
    other = await factory.agent("supervisor")
    denied = await client.patch(
        "/channels/email/accounts/support",
        json={"postmark_credentials": "evil:evil-password-0123456789"},
        headers=other.headers,
    )
    assert denied.status_code == 403


# --- The pure checks ------------------------------------------------------------------


def test_mailgun_signature_is_hmac_sha256_over_timestamp_and_token() -> None:
    timestamp, token = "1529006854", "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0"
    expected = hmac.new(
        b"key-1234567890abcdef", b"1529006854" + token.encode(), hashlib.sha256
    ).hexdigest()
    assert providers.mailgun_signature("key-1234567890abcdef", timestamp, token) == expected
    now = 1529006854 + 60
    assert providers.verify_mailgun("key-1234567890abcdef", timestamp, token, expected, now)
    assert not providers.verify_mailgun(
        "key-1234567890abcdef", timestamp, token, expected, now + 900
    )
    assert not providers.verify_mailgun("key-other", timestamp, token, expected, now)
    assert not providers.verify_mailgun("", timestamp, token, expected, now)
    assert not providers.verify_mailgun(None, timestamp, token, expected, now)
    assert not providers.verify_mailgun(
        "key-1234567890abcdef", timestamp, token, expected[:-1], now
    )
    assert not providers.verify_mailgun(
        "key-1234567890abcdef", timestamp, token + "x", expected, now
    )
    assert not providers.verify_mailgun("key-1234567890abcdef", "1529006855", token, expected, now)


def test_mailgun_window_is_fifteen_minutes_either_way() -> None:
    timestamp, token = "1700000000", "t" * 50
    signature = providers.mailgun_signature(MAILGUN_KEY, timestamp, token)
    for skew, accepted in ((-900, True), (900, True), (-901, False), (901, False)):
        now = 1700000000 + skew
        assert providers.verify_mailgun(MAILGUN_KEY, timestamp, token, signature, now) is accepted


def test_sendgrid_signature_covers_timestamp_and_exact_body() -> None:
    key = p256()
    body = b'--b\r\nContent-Disposition: form-data; name="email"\r\n\r\nx\r\n--b--\r\n'
    stamp = "1700000000"
    signature = base64.b64encode(key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256())))
    pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    now = 1700000000.0
    for public in (public_der_b64(key), pem):
        assert providers.verify_sendgrid(public, stamp, signature.decode(), body, now)
    der = public_der_b64(key)
    assert not providers.verify_sendgrid(der, stamp, signature.decode(), body + b" ", now)
    assert not providers.verify_sendgrid(der, "1700000001", signature.decode(), body, now)
    assert not providers.verify_sendgrid(der, stamp, signature.decode(), body, now + 901)
    assert not providers.verify_sendgrid(
        public_der_b64(p256()), stamp, signature.decode(), body, now
    )
    assert not providers.verify_sendgrid(der, stamp, "not base64!", body, now)
    assert not providers.verify_sendgrid(der, stamp, base64.b64encode(b"junk").decode(), body, now)
    assert not providers.verify_sendgrid(None, stamp, signature.decode(), body, now)
    assert not providers.verify_sendgrid(der, None, signature.decode(), body, now)


def test_sendgrid_key_must_be_p256() -> None:
    p384 = ec.generate_private_key(ec.SECP384R1())
    for text in (public_der_b64(p384), "bm90IGEga2V5", "-----BEGIN PUBLIC KEY-----\nxx\n"):
        with pytest.raises(ValueError):
            providers.sendgrid_public_key(text)


def test_postmark_basic_credentials_compare_as_digests() -> None:
    digest = providers.credentials_digest(POSTMARK_CREDENTIALS)
    assert providers.verify_postmark(digest, basic(POSTMARK_CREDENTIALS)["Authorization"])
    assert providers.verify_postmark(
        digest, "basic " + basic(POSTMARK_CREDENTIALS)["Authorization"][6:]
    )
    for header in (
        None,
        "",
        basic(POSTMARK_CREDENTIALS + "x")["Authorization"],
        basic(POSTMARK_PASSWORD)["Authorization"],
        "Basic " + base64.b64encode(b"\xff\xfe:x").decode(),
        f"Bearer {POSTMARK_CREDENTIALS}",
    ):
        assert not providers.verify_postmark(digest, header)
    assert not providers.verify_postmark(None, basic(POSTMARK_CREDENTIALS)["Authorization"])


def test_form_fields_are_byte_exact_and_broken_forms_are_empty() -> None:
    raw = b"Subject: x\r\n\r\n\xff\x00 bare \n line\r\n"
    assert providers.form_fields(form_type()["Content-Type"], multipart({"email": raw})) == {
        "email": raw
    }
    assert providers.form_fields(
        "application/x-www-form-urlencoded", urlencode({"body-mime": raw}).encode()
    ) == {"body-mime": raw}
    truncated = multipart({"email": raw})[:-10]
    assert providers.form_fields(form_type()["Content-Type"], truncated) == {}
    assert providers.form_fields("multipart/form-data", multipart({"email": raw})) == {}
    assert providers.form_fields("application/json", b"{}") == {}
    assert providers.form_fields(None, b"a=b") == {}


@given(st.binary(max_size=2000), st.binary(max_size=200))
def test_form_fields_roundtrip_any_bytes(value: bytes, other: bytes) -> None:
    fields = {"body-mime": value, "token": other}
    urlencoded = urlencode(fields).encode()
    form = "application/x-www-form-urlencoded"
    assert providers.form_fields(form, urlencoded) == fields
    if b"provider-boundary" not in value + other:
        body = multipart(fields)
        assert providers.form_fields(form_type()["Content-Type"], body) == fields


def test_postmark_raw_email_or_none() -> None:
    raw = mail(body="Hrnek dorazil rozbitý.")
    assert providers.postmark_mime(postmark_json(raw)) == raw
    assert providers.postmark_mime(postmark_json(None)) is None
    with pytest.raises(msgspec.DecodeError):
        providers.postmark_mime(b"[1, 2]")
    with pytest.raises(msgspec.DecodeError):
        providers.postmark_mime(b'{"RawEmail": 5}')
