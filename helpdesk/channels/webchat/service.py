"""Web chat visitors: tokens, origins, rate limits, and their conversation.

A visitor token is `<visitor id>.<hex HMAC-SHA256(key, account name, visitor id)>`:
nothing about it is stored, so checking one costs no query. The key is a random
per-account secret (`visitor_token_key` in the account's write-only `secrets`, created
on first use); removing it revokes every token of the account at once. A visitor is a
customer identity (channel 'webchat', the account, the visitor id) and the visitor id is
also the conversation's external id.

An email a visitor types is not verified: it never links the visitor to an existing
customer and is not written to the customer (a later verified match would otherwise
attach a real person's mail to whoever claimed the address). It is kept beside the
conversation in Redis and shown to agents as an `email_unverified` ticket event.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from datetime import UTC, datetime
from typing import Any, Final

import asyncpg
import msgspec
from redis.asyncio import Redis

from helpdesk.channels import queries
from helpdesk.channels.accounts import ChannelAccount
from helpdesk.channels.adapter import InboundMessage, SenderIdentity
from helpdesk.channels.ingest import store_inbound
from helpdesk.channels.webchat.models import (
    ConversationStart,
    ConversationStarted,
    VisitorMessage,
    VisitorMessageIn,
    VisitorMessageStored,
)
from helpdesk.config import SlaSettings
from helpdesk.customers.senders import customer_for
from helpdesk.errors import InvalidInput, TooManyRequests, Unauthenticated
from helpdesk.redis_outage import RedisDown, RedisOutage, fixed_window_hit
from helpdesk.tickets import events

log = logging.getLogger(__name__)

CHANNEL: Final = "webchat"
# The name of the account secret the tokens are signed with (not a secret itself).
TOKEN_KEY = "visitor_token_key"  # noqa: S105
# Rate limits (constants, not settings: config.py belongs to the whole app).
WINDOW_SECONDS = 60
VISITOR_MESSAGES_PER_WINDOW = 20
IP_MESSAGES_PER_WINDOW = 120
IP_CONVERSATIONS_PER_WINDOW = 10
IP_STREAMS_PER_WINDOW = 30  # each open stream polls the database
CLAIM_TTL_SECONDS = 30 * 24 * 3600  # how long an unstarted visitor's typed email is kept
PAGE_SIZE = 200

_VISITOR_ID = re.compile(r"[0-9a-f]{32}")
_MAC = re.compile(r"[0-9a-f]{64}")


# -- pure: tokens and origins ---------------------------------------------------------


def _mac(key: str, account: str, visitor_id: str) -> str:
    message = f"webchat-visitor\x00{account}\x00{visitor_id}".encode()
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def visitor_token(key: str, account: str, visitor_id: str) -> str:
    return f"{visitor_id}.{_mac(key, account, visitor_id)}"


def visitor_of(key: str, account: str, token: str) -> str | None:
    """The visitor id a token stands for on `account`, or None (forged, garbled, other
    account, or no key yet). Constant-time compare."""
    visitor_id, dot, mac = token.partition(".")
    if not key or not dot or not _VISITOR_ID.fullmatch(visitor_id) or not _MAC.fullmatch(mac):
        return None
    return visitor_id if hmac.compare_digest(mac, _mac(key, account, visitor_id)) else None


def normalized_origin(origin: str) -> str:
    """`https://Shop.Example:443/` and `https://shop.example` are one origin."""
    origin = origin.strip().rstrip("/").lower()
    for scheme, port in (("https://", ":443"), ("http://", ":80")):
        if origin.startswith(scheme) and origin.endswith(port):
            return origin[: -len(port)]
    return origin


def origin_allowed(allowed: Any, origin: str) -> bool:
    """Whether a browser at `origin` may use the account (`allowed_origins` setting).
    No list means no browser origin at all: a widget must be allowed explicitly."""
    if not isinstance(allowed, list) or origin.strip().lower() == "null":
        return False
    wanted = normalized_origin(origin)
    return any(isinstance(o, str) and normalized_origin(o) == wanted for o in allowed)


# -- I/O ------------------------------------------------------------------------------


async def token_key(conn: asyncpg.Connection, account: ChannelAccount) -> str:
    """The account's signing key, created once (concurrent first uses agree on one)."""
    key = account.secret(TOKEN_KEY)
    if key:
        return key
    await conn.execute(
        queries.ADD_SECRET,
        account.id,
        TOKEN_KEY,
        secrets.token_hex(32),
    )
    stored: str = await conn.fetchval(queries.SECRET, account.id, TOKEN_KEY)
    return stored


def authenticate(account: ChannelAccount, token: str) -> str:
    """The visitor id of a valid token, else 401."""
    visitor_id = visitor_of(account.secret(TOKEN_KEY), account.name, token)
    if visitor_id is None:
        raise Unauthenticated("Missing or invalid visitor token")
    return visitor_id


async def hit_limit(redis: Redis, outage: RedisOutage, key: str, limit: int, what: str) -> None:
    """Count one request in a fixed window; over `limit`, 429 with the window's rest.

    While Redis is down the limit fails open: the request goes on unlimited, and after
    the first failure the process does not even try Redis for a few seconds
    (`helpdesk.redis_outage`), so a request never waits for it. These are public,
    unauthenticated endpoints (web chat, the CSAT page) for customers: failing closed
    would turn every Redis outage into an outage of customer contact, while failing
    open costs little: each message is still stored exactly once in PostgreSQL
    (`client_message_id`), a visitor still needs a valid token to write, request
    bodies stay size-bounded, and the limits are back within seconds of Redis.
    """

    try:
        hits, ttl = await outage.call(
            "rate_limit", lambda: fixed_window_hit(redis, key, WINDOW_SECONDS)
        )
    except RedisDown:
        log.warning("rate limit skipped: Redis unavailable")
        return
    if hits > limit:
        raise TooManyRequests(f"Too many {what}; try again later", retry_after=max(int(ttl), 1))


def limit_key(scope: str, account: ChannelAccount, who: str) -> str:
    digest = hashlib.sha256(who.encode()).hexdigest()[:32]  # no raw IPs in key names
    return f"helpdesk:webchat:{scope}:{account.id}:{digest}"


def _claim_key(account: ChannelAccount, visitor_id: str) -> str:
    return f"helpdesk:webchat:claim:{account.id}:{visitor_id}"


async def start_conversation(
    conn: asyncpg.Connection,
    redis: Redis,
    outage: RedisOutage,
    account: ChannelAccount,
    data: ConversationStart,
) -> ConversationStarted:
    """A new visitor: a customer of their own (never an existing one) and a token.

    The typed email is a note in Redis; while Redis is down it is not kept (the
    conversation starts all the same)."""
    key = await token_key(conn, account)
    visitor_id = secrets.token_hex(16)
    # No email in the identity: an unverified address must not match anyone.
    sender = SenderIdentity(external_id=visitor_id, display_name=data.name or "")
    await customer_for(conn, CHANNEL, account.name, sender)
    if data.email:
        claim, email = _claim_key(account, visitor_id), data.email
        try:
            await outage.call(
                "webchat_email", lambda: redis.set(claim, email, ex=CLAIM_TTL_SECONDS)
            )
        except RedisDown:
            log.warning("web chat visitor's typed email not kept: Redis unavailable")
    welcome = account.setting("welcome_text")
    return ConversationStarted(
        visitor_token=visitor_token(key, account.name, visitor_id),
        conversation_id=visitor_id,
        welcome_text=welcome if isinstance(welcome, str) and welcome else None,
    )


async def post_message(
    conn: asyncpg.Connection,
    redis: Redis,
    outage: RedisOutage,
    account: ChannelAccount,
    visitor_id: str,
    data: VisitorMessageIn,
    sla: SlaSettings,
) -> VisitorMessageStored:
    """Store the visitor's message once per client_message_id (scoped to the visitor, so
    one visitor can never collide with, or probe, another's ids)."""
    if not data.text.strip():
        raise InvalidInput("The message is empty", field="text")
    client_id = str(data.client_message_id)
    message = InboundMessage(
        channel=CHANNEL,
        channel_account=account.name,
        external_id=f"{visitor_id}:{client_id}",
        conversation_id=visitor_id,
        sender=SenderIdentity(external_id=visitor_id),
        text=data.text,
        sent_at=datetime.now(UTC),
    )
    raw = msgspec.json.encode(  # what the widget sent, kept for audit like a webhook body
        {"visitor_id": visitor_id, "client_message_id": client_id, "text": data.text}
    )
    stored = await store_inbound(conn, message, attachments=[], raw=raw, sla=sla)
    if stored.created_ticket:
        await _note_claimed_email(conn, redis, outage, account, visitor_id, stored.ticket_id)
    return VisitorMessageStored(
        id=stored.message_id, client_message_id=data.client_message_id, duplicate=stored.duplicate
    )


async def _note_claimed_email(
    conn: asyncpg.Connection,
    redis: Redis,
    outage: RedisOutage,
    account: ChannelAccount,
    visitor_id: str,
    ticket_id: int,
) -> None:
    claim = _claim_key(account, visitor_id)
    try:
        claimed = await outage.call("webchat_email", lambda: redis.get(claim))
    except RedisDown:
        return
    if claimed:
        await events.record(
            conn,
            ticket_id,
            "webchat_visitor",
            {"email_unverified": claimed.decode() if isinstance(claimed, bytes) else claimed},
        )


async def visitor_messages(
    conn: asyncpg.Connection,
    account: ChannelAccount,
    visitor_id: str,
    after: int,
    limit: int = PAGE_SIZE,
) -> list[VisitorMessage]:
    """The visitor's conversation after message `after`, oldest first: their messages
    and agents' public web chat replies on the tickets of *their* conversation only
    (never notes, system messages, other channels, nor another visitor's messages
    merged into one of them)."""
    rows = await conn.fetch(
        queries.VISITOR_MESSAGES,
        CHANNEL,
        account.name,
        visitor_id,
        after,
        limit,
    )
    return [
        VisitorMessage(
            id=r["id"],
            author="visitor" if r["direction"] == "inbound" else "agent",
            text=r["body_text"],
            created_at=r["created_at"],
        )
        for r in rows
    ]
