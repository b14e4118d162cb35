"""Shared ingestion of chat and social messages: one path for every adapter.

Identity lookup, conversation-to-ticket matching and exactly-once storage keyed by
(channel, account, external message id), serialised per message id by an advisory
lock, so three concurrent deliveries of one update store one message. An edit that
arrives before its original is stored as the message (with `edited_at`); the original
arriving later is then a duplicate and does not overwrite the newer text.

Files never hold a message back: one that cannot be downloaded (a provider error, an
expired URL, a missing permission) is stored with the message as an attachment row in
state `pending` with the reason, and `retry_attachment_fetches` tries again with backoff
a bounded number of times (then `failed`). One the provider will never hand out is
`failed` at once. The agent reads the state and the reason on the message.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import asyncpg
import msgspec

from helpdesk.channels.adapter import (
    AttachmentFetchError,
    FetchedFile,
    InboundAttachment,
    InboundMessage,
    SenderIdentity,
    StatusUpdate,
    StatusWatermark,
)
from helpdesk.config import SlaSettings
from helpdesk.customers import identities as customers
from helpdesk.customers import relationship
from helpdesk.sla import queries as sla_queries
from helpdesk.sla import recording as sla_recording
from helpdesk.sla import refresh as sla_refresh
from helpdesk.sla import start as sla_start

if TYPE_CHECKING:
    from helpdesk.channels.accounts import ChannelAccount
    from helpdesk.channels.adapter import ChannelAdapter
    from helpdesk.config import Settings

log = logging.getLogger(__name__)

_STATUS_RANK = {None: 0, "delivered": 1, "read": 2}


class StoredMessage(msgspec.Struct, kw_only=True):
    ticket_id: int
    message_id: int
    created_ticket: bool
    duplicate: bool
    edited: bool = False


# Downloads of one file: the first at ingestion, then retries after 1, 4, 16, 64 and 256
# minutes (about five and a half hours in all), then the attachment is `failed`.
MAX_FETCH_ATTEMPTS = 6
FETCH_RETRY_BASE_SECONDS = 60.0
# A sweep that claimed a download and died: the download is due again after this.
FETCH_LEASE_SECONDS = 600


class KeptAttachment(msgspec.Struct, frozen=True, kw_only=True):
    """What ingestion stores for one file of a message: its bytes, or why not yet."""

    filename: str
    content_type: str
    content: bytes | None = None
    state: Literal["stored", "pending", "failed"] = "stored"
    fetch_ref: str | None = None
    error: str | None = None
    attempts: int = 0
    retry_in: float | None = None  # seconds until the next download (pending only)


def fetch_retry_delay(attempts: int) -> float | None:
    """Seconds before the next download of a file tried `attempts` times, or None when
    that was the last try (the attachment then stays `failed`)."""
    if attempts >= MAX_FETCH_ATTEMPTS:
        return None
    return FETCH_RETRY_BASE_SECONDS * float(4 ** max(0, attempts - 1))


def fetch_failure_reason(error: Exception) -> tuple[str, bool]:
    """(the reason an agent reads, permanent?) of a failed download. Only an
    `AttachmentFetchError` speaks for itself: other errors may quote URLs with tokens."""
    if isinstance(error, AttachmentFetchError):
        return error.reason[:500], error.permanent
    return f"the download failed ({type(error).__name__}); it is retried", False


def too_big(max_bytes: int) -> str:
    return f"larger than {max_bytes} bytes, the attachment limit"


async def fetch_inbound_files(
    conn: asyncpg.Connection,
    adapter: ChannelAdapter,
    account: ChannelAccount,
    message: InboundMessage,
    max_bytes: int,
) -> list[KeptAttachment]:
    """Download what the message carries, once each; what fails is kept as pending (or
    failed) with the reason instead of failing the message. A message stored already
    (a redelivery) downloads nothing: its files are not stored twice anyway."""
    kept: list[KeptAttachment] = []
    if not message.attachments or await conn.fetchval(
        """SELECT EXISTS (SELECT FROM messages WHERE channel = $1 AND channel_account = $2
                                                 AND external_id = $3)""",
        message.channel,
        message.channel_account,
        message.external_id,
    ):
        return kept
    for attachment in message.attachments:
        kept.append(await _first_fetch(adapter, account, attachment, max_bytes))
    return kept


async def _first_fetch(
    adapter: ChannelAdapter, account: ChannelAccount, attachment: InboundAttachment, max_bytes: int
) -> KeptAttachment:
    base = KeptAttachment(
        filename=attachment.filename,
        content_type=attachment.content_type,
        fetch_ref=attachment.fetch_ref,
    )
    if attachment.unavailable is not None:
        return msgspec.structs.replace(base, state="failed", error=attachment.unavailable[:500])
    if attachment.size is not None and attachment.size > max_bytes:
        return msgspec.structs.replace(base, state="failed", error=too_big(max_bytes))
    fetched: bytes | FetchedFile | None = attachment.content
    if fetched is None:
        try:
            fetched = await adapter.fetch_attachment(account, attachment)
        except Exception as error:  # the file's problem, never the message's
            reason, permanent = fetch_failure_reason(error)
            log.warning(
                "attachment download failed",
                extra={"channel": account.kind, "error_type": type(error).__name__},
            )
            delay = None if permanent else fetch_retry_delay(1)
            return msgspec.structs.replace(
                base,
                state="failed" if delay is None else "pending",
                error=reason,
                attempts=1,
                retry_in=delay,
            )
    if isinstance(fetched, FetchedFile):
        base = msgspec.structs.replace(
            base,
            filename=fetched.filename or base.filename,
            content_type=fetched.content_type or base.content_type,
        )
        fetched = fetched.content
    content: bytes = fetched
    if len(content) > max_bytes:
        return msgspec.structs.replace(base, state="failed", error=too_big(max_bytes), attempts=1)
    return msgspec.structs.replace(
        base, content=content, attempts=1 if attachment.content is None else 0
    )


async def _insert_attachment(
    conn: asyncpg.Connection, message_id: int, kept: KeptAttachment, now: datetime
) -> None:
    content = kept.content if kept.state == "stored" else None
    await conn.execute(
        """INSERT INTO attachments (message_id, filename, content_type, size_bytes, sha256,
                                    content, state, fetch_ref, fetch_error, fetch_attempts,
                                    next_fetch_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)""",
        message_id,
        (kept.filename or "file")[:255],
        kept.content_type[:255],
        0 if content is None else len(content),
        None if content is None else hashlib.sha256(content).digest(),
        content,
        kept.state,
        kept.fetch_ref,
        kept.error,
        kept.attempts,
        None
        if kept.state != "pending"
        else now + timedelta(seconds=kept.retry_in or FETCH_RETRY_BASE_SECONDS),
    )


def subject_from(message: InboundMessage) -> str:
    """A new ticket's subject: the given one, else the first line of the text."""
    if message.subject:
        return " ".join(message.subject.split())[:200]
    for line in message.text.splitlines():
        if line.strip():
            words = " ".join(line.split())
            return words if len(words) <= 80 else words[:77].rstrip() + "..."
    if message.attachments:
        return f"{message.attachments[0].filename} ({message.channel})"
    return f"New {message.channel} conversation"


async def customer_for(
    conn: asyncpg.Connection, channel: str, account: str, sender: SenderIdentity
) -> int:
    """The id of the customer behind `sender`, created if new (see `customer_row_for`)."""
    row = await customer_row_for(conn, channel, account, sender)
    return int(row["id"])


# A new customer and its identity in one statement; `linked` is false when a transaction
# that skipped `lock_identity` linked this identity first (the new row is then an orphan).
_NEW_CUSTOMER = """
WITH customer AS (
    INSERT INTO customers (name, email, phone) VALUES ($4, $5, $6) RETURNING *),
identity AS (
    INSERT INTO customer_identities (customer_id, channel, channel_account, external_id,
                                     display_name)
    SELECT id, $1, $2, $3, $4 FROM customer
    ON CONFLICT DO NOTHING RETURNING customer_id)
SELECT customer.*, EXISTS (SELECT FROM identity) AS linked FROM customer
"""

_BY_IDENTITY = """
SELECT c.* FROM customer_identities i JOIN customers c ON c.id = i.customer_id
WHERE i.channel = $1 AND i.channel_account = $2 AND i.external_id = $3
"""


async def customer_row_for(
    conn: asyncpg.Connection, channel: str, account: str, sender: SenderIdentity
) -> Mapping[str, Any]:
    """The customer behind `sender` (its `customers` row), created if new.

    A new identity joins an existing customer only through an identifier the provider
    verified (email, phone) that matches exactly one customer; never through a name.
    """
    key = (channel, account, sender.external_id)
    existing: Mapping[str, Any] | None = await conn.fetchrow(_BY_IDENTITY, *key)
    if existing is not None:
        return await _named_at_last(conn, key, existing, sender)
    await customers.lock_identity(conn, *key)
    existing = await conn.fetchrow(_BY_IDENTITY, *key)
    if existing is not None:  # created by the transaction we waited for
        return existing
    name = sender.display_name[:200]
    customer_id = await _verified_match(conn, sender)
    if customer_id is None:
        created: asyncpg.Record = await conn.fetchrow(
            _NEW_CUSTOMER, *key, name, sender.email, sender.phone
        )
        if created["linked"]:
            return {k: v for k, v in created.items() if k != "linked"}
        await conn.execute("DELETE FROM customers WHERE id = $1", created["id"])
    else:
        await conn.execute(
            """INSERT INTO customer_identities (customer_id, channel, channel_account,
                                               external_id, display_name)
               VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING""",
            customer_id,
            *key,
            name,
        )
    winner: Mapping[str, Any] = await conn.fetchrow(_BY_IDENTITY, *key)
    return winner


async def _named_at_last(
    conn: asyncpg.Connection,
    key: tuple[str, str, str],
    customer: Mapping[str, Any],
    sender: SenderIdentity,
) -> Mapping[str, Any]:
    """A customer first known only by the provider's id (its name could not be looked
    up then) takes the name the provider gives now; a name an agent set is kept."""
    name = sender.display_name[:200]
    if customer["name"] != sender.external_id or not name or name == sender.external_id:
        return customer
    await conn.execute(
        """UPDATE customer_identities SET display_name = $4
           WHERE channel = $1 AND channel_account = $2 AND external_id = $3
             AND display_name = $3""",
        *key,
        name,
    )
    renamed: Mapping[str, Any] | None = await conn.fetchrow(
        """UPDATE customers SET name = $2, updated_at = now()
           WHERE id = $1 AND name = $3 RETURNING *""",
        customer["id"],
        name,
        sender.external_id,
    )
    return renamed or customer


async def _verified_match(conn: asyncpg.Connection, sender: SenderIdentity) -> int | None:
    candidates: list[asyncpg.Record] = []
    if sender.email:
        candidates = await conn.fetch(
            """SELECT DISTINCT customer_id AS id FROM customer_identities
               WHERE channel = 'email' AND lower(external_id) = lower($1)
               UNION SELECT id FROM customers WHERE lower(email) = lower($1) LIMIT 2""",
            sender.email,
        )
    if not candidates and sender.phone:
        candidates = await conn.fetch(
            "SELECT id FROM customers WHERE phone = $1 LIMIT 2", sender.phone
        )
    return int(candidates[0]["id"]) if len(candidates) == 1 else None


async def _follow_merges(conn: asyncpg.Connection, ticket_id: int | None) -> asyncpg.Record | None:
    for _ in range(20):  # merge chains are short; the bound guards against a cycle
        if ticket_id is None:
            return None
        row = await conn.fetchrow(
            "SELECT id, status, merged_into_id FROM tickets WHERE id = $1", ticket_id
        )
        if row is None or row["merged_into_id"] is None:
            return row
        ticket_id = row["merged_into_id"]
    return None


# A new ticket (with its first SLA columns) and its conversation pointing at it.
_SLA_COLUMNS, _SLA_VALUES = sla_start.start_columns_sql(7)
_NEW_TICKET = f"""
WITH ticket AS (
    INSERT INTO tickets (subject, channel, channel_account, customer_id, conversation_id,
                         created_at, updated_at, {_SLA_COLUMNS})
    VALUES ($1, $2, $3, $4, $5, $6, $6, {_SLA_VALUES})
    RETURNING id),
linked AS (UPDATE conversations SET ticket_id = (SELECT id FROM ticket) WHERE id = $5)
SELECT id FROM ticket
"""


async def _insert_ticket(
    conn: asyncpg.Connection,
    message: InboundMessage,
    customer_id: int,
    conversation_id: int,
    plan: sla_start.StartPlan,
    now: datetime,
) -> int:
    ticket_id: int = await conn.fetchval(
        _NEW_TICKET,
        subject_from(message),
        message.channel,
        message.channel_account,
        customer_id,
        conversation_id,
        now,
        *plan.values(),
    )
    return ticket_id


async def store_inbound(
    conn: asyncpg.Connection,
    message: InboundMessage,
    *,
    attachments: Sequence[KeptAttachment | tuple[str, str, bytes]],
    raw: bytes,
    sla: SlaSettings,
) -> StoredMessage:
    """Store `message` once, on its conversation's ticket (a new one when there is none,
    or when that ticket is closed). Safe to call again with the same message.

    A notice (`InboundMessage.notice`: a reaction, a service message, nothing a person
    wrote) is stored as a `system` message on the conversation's ticket, whatever its
    status, without reopening it or moving its SLA clocks; only a conversation with no
    ticket at all gets a new one for it (origin `notice`: no first response is owed, and
    routing sends no acknowledgement), since an agent must be able to see it."""
    channel, account = message.channel, message.channel_account
    async with conn.transaction():
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            f"{channel}:{account}:{message.external_id}",
        )
        existing = await conn.fetchrow(
            """SELECT id, ticket_id, edited_at, created_at FROM messages
               WHERE channel = $1 AND channel_account = $2 AND external_id = $3""",
            channel,
            account,
            message.external_id,
        )
        if existing is not None:
            return await _redelivered(conn, existing, message)
        customer = await customer_row_for(conn, channel, account, message.sender)
        customer_id = customer["id"]
        # Messages of one conversation are stored one at a time: the upsert locks the
        # conversation row, FOR NO KEY UPDATE only since it changes no key column (a new
        # row is held by its inserting transaction alike). A stronger lock would block the
        # foreign-key checks that a transaction holding the conversation's ticket makes on
        # it (routing updates the ticket twice), while this one waits for that ticket: a
        # deadlock.
        conversation = await conn.fetchrow(
            """INSERT INTO conversations (channel, channel_account, external_id, customer_id,
                                          last_inbound_at)
               VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT (channel, channel_account, external_id)
               DO UPDATE SET last_inbound_at = greatest(conversations.last_inbound_at,
                                                        EXCLUDED.last_inbound_at)
               RETURNING id, ticket_id, clock_timestamp() AS now""",
            channel,
            account,
            message.conversation_id,
            customer_id,
            message.sent_at,
        )
        # The clock is read once the conversation is ours, so messages of one conversation
        # get increasing times in the order they are stored. The ticket is read by its own
        # statement: a subquery here would see the snapshot from before the lock wait.
        now: datetime = conversation["now"]
        ticket = await _follow_merges(conn, conversation["ticket_id"])
        notice = message.notice
        # A notice is kept on a closed ticket too (closed is final: it is only shown
        # there); it opens a ticket only when the conversation has none at all.
        created = ticket is None or (ticket["status"] == "closed" and not notice)
        quiet = notice and ticket is not None and ticket["status"] == "closed"
        updated = None
        if created:
            plan = await sla_start.plan_start(
                conn,
                sla_start.new_ticket_facts(channel, customer),
                sla,
                now=now,
                origin="notice" if notice else None,
            )
            ticket_id = await _insert_ticket(
                conn, message, customer_id, conversation["id"], plan, now
            )
        else:
            assert ticket is not None
            ticket_id = ticket["id"]
            if not quiet:
                # A notice neither reopens a solved ticket nor ends a pending one. The
                # locked row comes back for the SLA refresh below (no second read).
                updated = await conn.fetchrow(
                    f"""UPDATE tickets t SET updated_at = $2, version = version + 1,
                           status = CASE WHEN status IN ('solved', 'pending') AND NOT $3
                                         THEN 'open' ELSE status END,
                           solved_at = CASE WHEN status = 'solved' AND NOT $3 THEN NULL
                                            ELSE solved_at END
                       WHERE id = $1 RETURNING t.*, {sla_queries.SLA_FIRED}""",
                    ticket_id,
                    now,
                    notice,
                )
            if conversation["ticket_id"] != ticket_id:  # a merge followed
                await conn.execute(
                    "UPDATE conversations SET ticket_id = $2 WHERE id = $1",
                    conversation["id"],
                    ticket_id,
                )
        # The message, its raw source and the ticket's event in one round trip. A notice
        # is a `system` message in the thread and moves no clock: it is recorded as
        # `customer_auto_reply`, which starts, meets and reopens nothing (docs/sla.md
        # 1.4), and not at all on a closed ticket (no event may follow closing).
        message_id = await conn.fetchval(
            """WITH message AS (
                   INSERT INTO messages (ticket_id, direction, kind, author_customer_id,
                                         channel, channel_account, external_id, body_text,
                                         created_at, edited_at)
                   VALUES ($1, 'inbound', $12, $2, $3, $4, $5, $6, $7, $8)
                   RETURNING id),
               source AS (
                   INSERT INTO message_sources (message_id, raw) SELECT id, $9 FROM message),
               event AS (
                   INSERT INTO ticket_events (ticket_id, action, changes)
                   SELECT $1, $10, jsonb_build_object('message_id', id, 'channel', $3::text,
                                                      'account', $4::text, 'notice', $13::boolean)
                   FROM message),
               clock AS (  -- a reply moves the SLA clocks (a new ticket's start below)
                   INSERT INTO sla_events (ticket_id, at, type, message_id)
                   SELECT $1, $7, $14, id FROM message WHERE NOT $11)
               SELECT id FROM message""",
            ticket_id,
            customer_id,
            channel,
            account,
            message.external_id,
            message.text,
            now,
            message.sent_at if message.edited else None,
            raw,
            "created" if created else ("customer_notice" if notice else "customer_replied"),
            created or quiet,
            "system" if notice else "public",
            notice,
            "customer_auto_reply" if notice else "customer_message",
        )
        for item in attachments:
            if isinstance(item, tuple):
                filename, content_type, content = item
                item = KeptAttachment(filename=filename, content_type=content_type, content=content)
            await _insert_attachment(conn, message_id, item, now)
        if created:
            await sla_start.start(conn, ticket_id, plan, now=now)
        elif not quiet:
            if ticket is not None and ticket["status"] == "solved" and not notice:
                await relationship.reopened_after_solved(conn, ticket_id, "the customer wrote")
            await sla_refresh.refresh(conn, ticket_id, sla, now=now, locked=updated)
    return StoredMessage(
        ticket_id=ticket_id, message_id=message_id, created_ticket=created, duplicate=False
    )


async def _redelivered(
    conn: asyncpg.Connection, existing: asyncpg.Record, message: InboundMessage
) -> StoredMessage:
    """A message we have: an edit newer than what we hold replaces the text."""
    result = StoredMessage(
        ticket_id=existing["ticket_id"],
        message_id=existing["id"],
        created_ticket=False,
        duplicate=True,
    )
    held: datetime | None = existing["edited_at"]
    if message.edited and (held is None or message.sent_at > held):
        await conn.execute(
            "UPDATE messages SET body_text = $2, edited_at = $3 WHERE id = $1",
            existing["id"],
            message.text,
            message.sent_at,
        )
        await conn.execute(
            "INSERT INTO ticket_events (ticket_id, action, changes) VALUES ($1, $2, $3)",
            existing["ticket_id"],
            "message_edited",
            {"message_id": existing["id"]},
        )
        result.edited = True
    return result


async def apply_status(
    conn: asyncpg.Connection,
    channel: str,
    account: str,
    update: StatusUpdate,
    *,
    sla: SlaSettings,
) -> bool:
    """Move one outbound message's provider status forward (never back: statuses arrive
    out of order). A failure report fails the delivery with the provider's reason and
    withdraws the reply as a response at once."""
    row = await conn.fetchrow(
        """SELECT id, provider_status, delivery_status FROM messages
           WHERE channel = $1 AND channel_account = $2 AND external_id = $3
             AND direction = 'outbound'
           FOR UPDATE""",
        channel,
        account,
        update.external_id,
    )
    if row is None:
        return False
    if update.status == "failed":
        reason = update.reason or "the provider reported the message as not delivered"
        await conn.execute(
            """UPDATE messages SET delivery_status = 'failed', delivery_error = $2
               WHERE id = $1""",
            row["id"],
            reason,
        )
        await sla_recording.withdraw_reply(conn, row["id"], reason, sla)
        return True
    if _STATUS_RANK[update.status] <= _STATUS_RANK.get(row["provider_status"], 0):
        return False
    await conn.execute(
        "UPDATE messages SET provider_status = $2 WHERE id = $1", row["id"], update.status
    )
    return True


async def apply_watermark(
    conn: asyncpg.Connection, channel: str, account: str, watermark: StatusWatermark
) -> int:
    """Move every sent outbound message of the conversation up to the watermark forward;
    returns how many moved. Never moves a status back."""
    lower = [s for s, rank in _STATUS_RANK.items() if rank < _STATUS_RANK[watermark.status]]
    result: str = await conn.execute(
        """UPDATE messages m SET provider_status = $4
           FROM conversations c JOIN tickets t ON t.conversation_id = c.id
           WHERE c.channel = $1 AND c.channel_account = $2 AND c.external_id = $3
             AND m.ticket_id = t.id AND m.direction = 'outbound' AND m.kind = 'public'
             AND m.delivery_status = 'sent' AND m.created_at <= $5
             AND (m.provider_status IS NULL OR m.provider_status = ANY($6::text[]))""",
        channel,
        account,
        watermark.conversation_id,
        watermark.status,
        watermark.up_to,
        [s for s in lower if s is not None],
    )
    return int(result.rsplit(" ", 1)[-1])


# Claims due downloads: each try is counted when claimed, so a sweep that dies mid-way
# still moves its attachments towards `failed` instead of retrying them forever.
_CLAIM_FETCHES = """
UPDATE attachments a
SET fetch_attempts = a.fetch_attempts + 1,
    next_fetch_at = now() + make_interval(secs => $2)
FROM (SELECT id FROM attachments
      WHERE state = 'pending' AND next_fetch_at <= now()
      ORDER BY next_fetch_at LIMIT $1 FOR UPDATE SKIP LOCKED) due,
     messages m
WHERE a.id = due.id AND m.id = a.message_id
RETURNING a.id, a.filename, a.content_type, a.fetch_ref, a.fetch_attempts,
          m.channel, m.channel_account, m.ticket_id
"""


async def retry_attachment_fetches(pool: asyncpg.Pool, settings: Settings, limit: int = 8) -> int:
    """Try the due downloads once more; returns how many were claimed. A success stores
    the bytes on the same attachment row (and records it on the ticket); a failure waits
    `fetch_retry_delay` longer, or leaves the attachment `failed` after the last try.
    Safe to run concurrently (rows are claimed with SKIP LOCKED and a lease)."""
    from helpdesk.channels import accounts  # the registry imports the adapters
    from helpdesk.channels.registry import adapter_for

    async with pool.acquire() as conn:
        claimed = await conn.fetch(_CLAIM_FETCHES, limit, FETCH_LEASE_SECONDS)
    for row in claimed:
        async with pool.acquire() as conn:
            account = await accounts.get_account(conn, row["channel"], row["channel_account"])
        adapter = adapter_for(row["channel"], settings)
        if account is None or adapter is None:
            outcome: FetchedFile | tuple[str, bool] = (
                "the channel account no longer exists",
                True,
            )
        else:
            outcome = await _retry_one(adapter, account, row, settings.attachment_max_bytes)
        async with pool.acquire() as conn, conn.transaction():
            await _record_retry(conn, row, outcome)
    return len(claimed)


async def _retry_one(
    adapter: ChannelAdapter, account: ChannelAccount, row: asyncpg.Record, max_bytes: int
) -> FetchedFile | tuple[str, bool]:
    """The file, or (reason, permanent)."""
    attachment = InboundAttachment(
        filename=row["filename"], content_type=row["content_type"], fetch_ref=row["fetch_ref"]
    )
    try:
        content = await adapter.fetch_attachment(account, attachment)
    except Exception as error:  # recorded on the attachment; the sweep goes on
        log.warning(
            "attachment download retry failed",
            extra={"attachment_id": row["id"], "error_type": type(error).__name__},
        )
        return fetch_failure_reason(error)
    if not isinstance(content, FetchedFile):
        content = FetchedFile(content)
    if len(content.content) > max_bytes:
        return too_big(max_bytes), True
    return content


async def _record_retry(
    conn: asyncpg.Connection, row: asyncpg.Record, outcome: FetchedFile | tuple[str, bool]
) -> None:
    if isinstance(outcome, FetchedFile):
        stored = await conn.fetchval(
            """UPDATE attachments SET state = 'stored', content = $2, sha256 = $3,
                   size_bytes = $4, fetch_error = NULL, next_fetch_at = NULL,
                   filename = coalesce($5, filename), content_type = coalesce($6, content_type)
               WHERE id = $1 AND state = 'pending' RETURNING id""",
            row["id"],
            outcome.content,
            hashlib.sha256(outcome.content).digest(),
            len(outcome.content),
            outcome.filename[:255] if outcome.filename else None,
            outcome.content_type[:255] if outcome.content_type else None,
        )
        if stored is not None:
            await conn.execute(
                "INSERT INTO ticket_events (ticket_id, action, changes) VALUES ($1, $2, $3)",
                row["ticket_id"],
                "attachment_fetched",
                {"attachment_id": row["id"], "attempts": row["fetch_attempts"]},
            )
        return
    reason, permanent = outcome
    delay = None if permanent else fetch_retry_delay(row["fetch_attempts"])
    failed = await conn.fetchval(
        """UPDATE attachments SET fetch_error = $2,
               state = CASE WHEN $3::float8 IS NULL THEN 'failed' ELSE 'pending' END,
               next_fetch_at = now() + make_interval(secs => $3::float8)
           WHERE id = $1 AND state = 'pending' RETURNING state = 'failed'""",
        row["id"],
        reason[:500],
        delay,
    )
    if failed:
        await conn.execute(
            "INSERT INTO ticket_events (ticket_id, action, changes) VALUES ($1, $2, $3)",
            row["ticket_id"],
            "attachment_fetch_failed",
            {"attachment_id": row["id"], "attempts": row["fetch_attempts"], "reason": reason},
        )
