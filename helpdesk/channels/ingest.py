"""Shared ingestion of chat and social messages: one path for every adapter.

Identity lookup, conversation-to-ticket matching and exactly-once storage keyed by
(channel, account, external message id), serialised per message id by an advisory
lock, so three concurrent deliveries of one update store one message. An edit that
arrives before its original is stored as the message (with `edited_at`); the original
arriving later is then a duplicate and does not overwrite the newer text.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from helpdesk.channels.adapter import (
    InboundMessage,
    SenderIdentity,
    StatusUpdate,
    StatusWatermark,
)
from helpdesk.config import SlaSettings
from helpdesk.customers import service as customers
from helpdesk.sla import service as sla_service
from helpdesk.tickets.service import store_attachment

_STATUS_RANK = {None: 0, "delivered": 1, "read": 2}


class StoredMessage(msgspec.Struct, kw_only=True):
    ticket_id: int
    message_id: int
    created_ticket: bool
    duplicate: bool
    edited: bool = False


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
        return existing
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
_SLA_COLUMNS, _SLA_VALUES = sla_service.start_columns_sql(7)
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
    plan: sla_service.StartPlan,
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
    attachments: list[tuple[str, str, bytes]],
    raw: bytes,
    sla: SlaSettings,
) -> StoredMessage:
    """Store `message` once, on its conversation's ticket (a new one when there is none,
    or when that ticket is closed). Safe to call again with the same message."""
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
        created = ticket is None or ticket["status"] == "closed"
        if created:
            plan = await sla_service.plan_start(
                conn, sla_service.new_ticket_facts(channel, customer), sla, now=now
            )
            ticket_id = await _insert_ticket(
                conn, message, customer_id, conversation["id"], plan, now
            )
        else:
            assert ticket is not None
            ticket_id = ticket["id"]
            # The locked row comes back for the SLA refresh below (no second read).
            updated = await conn.fetchrow(
                f"""UPDATE tickets t SET updated_at = $2, version = version + 1,
                       status = CASE WHEN status IN ('solved', 'pending') THEN 'open'
                                     ELSE status END,
                       solved_at = CASE WHEN status = 'solved' THEN NULL ELSE solved_at END
                   WHERE id = $1 RETURNING t.*, {sla_service.SLA_FIRED}""",
                ticket_id,
                now,
            )
            if conversation["ticket_id"] != ticket_id:  # a merge followed
                await conn.execute(
                    "UPDATE conversations SET ticket_id = $2 WHERE id = $1",
                    conversation["id"],
                    ticket_id,
                )
        # The message, its raw source and the ticket's event in one round trip.
        message_id = await conn.fetchval(
            """WITH message AS (
                   INSERT INTO messages (ticket_id, direction, kind, author_customer_id,
                                         channel, channel_account, external_id, body_text,
                                         created_at, edited_at)
                   VALUES ($1, 'inbound', 'public', $2, $3, $4, $5, $6, $7, $8)
                   RETURNING id),
               source AS (
                   INSERT INTO message_sources (message_id, raw) SELECT id, $9 FROM message),
               event AS (
                   INSERT INTO ticket_events (ticket_id, action, changes)
                   SELECT $1, $10, jsonb_build_object('message_id', id, 'channel', $3::text,
                                                      'account', $4::text)
                   FROM message),
               clock AS (  -- a reply moves the SLA clocks (a new ticket's start below)
                   INSERT INTO sla_events (ticket_id, at, type, message_id)
                   SELECT $1, $7, 'customer_message', id FROM message WHERE NOT $11)
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
            "created" if created else "customer_replied",
            created,
        )
        for filename, content_type, content in attachments:
            await store_attachment(conn, message_id, filename[:255], content_type[:255], content)
        if created:
            await sla_service.start(conn, ticket_id, plan, now=now)
        else:
            if ticket is not None and ticket["status"] == "solved":
                await sla_service.reopened_after_solved(conn, ticket_id, "the customer wrote")
            await sla_service.refresh(conn, ticket_id, sla, now=now, locked=updated)
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
        await sla_service.withdraw_reply(conn, row["id"], reason, sla)
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
