"""One intake: how anything a customer sends becomes a message on a ticket.

Chat and social messages (`channels/ingest.py`), mail (`channels/email/ingest.py`),
tickets opened through the API and logged phone calls (`tickets/service.py`) all hand
an `InboundItem` to `take_in`, which does, in one transaction: identity (the customer
behind the sender) → conversation → ticket (a new one, merges followed, a solved or
pending one reopened) → message (with its raw source and files) → the ticket's event →
the SLA clocks (started on a new ticket, moved on an existing one).

What is the channel's own stays in the channel: fetching a chat's files, a mail's
threading (References, the ticket number in the subject: `find_thread`), bounces and
auto-reply detection. An item with a provider message id (`external_id`) is stored once:
concurrent deliveries are serialised by an advisory lock on that id, and a redelivery
is a duplicate (an edit newer than what is held replaces the text).
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, Literal

import asyncpg
import msgspec

from helpdesk.channels.adapter import SenderIdentity
from helpdesk.config import SlaSettings
from helpdesk.customers import relationship, senders
from helpdesk.sla import policy_choice as sla_policy_choice
from helpdesk.sla import queries as sla_queries
from helpdesk.sla import refresh as sla_refresh
from helpdesk.sla import start as sla_start
from helpdesk.sla.policies import TicketFacts
from helpdesk.tickets import events
from helpdesk.tickets.events import TicketEvent

# A pending download's first retry, when the fetcher gave no delay of its own.
FETCH_RETRY_BASE_SECONDS = 60.0


class KeptAttachment(msgspec.Struct, frozen=True, kw_only=True):
    """What intake stores for one file of a message: its bytes, or why not yet."""

    filename: str
    content_type: str
    content: bytes | None = None
    state: Literal["stored", "pending", "failed"] = "stored"
    fetch_ref: str | None = None
    error: str | None = None
    attempts: int = 0
    retry_in: float | None = None  # seconds until the next download (pending only)


class NewTicket(msgspec.Struct, frozen=True, kw_only=True):
    """What an agent sets on a ticket it opens (the API, a logged call)."""

    priority: str = "normal"
    category: str | None = None
    group_id: int | None = None
    assignee_id: int | None = None
    tags: tuple[str, ...] = ()


class InboundItem(msgspec.Struct, frozen=True, kw_only=True):
    """One thing a customer sent, in no channel's words.

    The customer is `customer_id` when the caller resolved it (the API, a call), else
    `sender` is resolved: per (channel, account) for chats, by address for mail.
    """

    channel: str
    channel_account: str = ""
    # The provider's message id, unique within the account: the item is stored once.
    # None: nothing to deduplicate (the API, a call).
    external_id: str | None = None
    conversation_key: str | None = None  # a chat's conversation; it holds the ticket
    customer_id: int | None = None
    sender: SenderIdentity | None = None
    # None: the ticket alone (a logged call stores the call as its message itself).
    text: str | None
    html: str | None = None
    kind: Literal["public", "system"] = "public"
    # The provider's time: the conversation's last inbound message; an edit's time.
    sent_at: datetime | None = None
    edited: bool = False  # a newer text of an earlier message (same external_id)
    # A chat notice: nothing a person wrote (a reaction, a service message). A `system`
    # message that neither reopens the ticket nor moves a response clock, kept on a
    # closed ticket without a new one (`InboundMessage.notice`).
    notice: bool = False
    # A mail nobody typed (out-of-office, bulk): it neither reopens the ticket nor moves
    # a response clock, but a closed ticket still gets a follow-up ticket for it.
    auto_submitted: bool = False
    subject: str  # a new ticket's subject, as the channel words it
    raw: bytes | None = None  # the provider's source, kept beside the message
    attachments: tuple[KeptAttachment, ...] = ()
    origin: Literal["customer", "agent"] | None = None  # who opened a new ticket
    sender_address: str | None = None  # mail: the From address
    reply_to_addresses: tuple[str, ...] = ()
    recipient_addresses: tuple[str, ...] = ()
    details: Mapping[str, Any] = {}  # what the ticket's event records besides the message
    actor_agent_id: int | None = None  # the agent who logged it (the API, a call)
    ticket: NewTicket | None = None  # set by an agent opening the ticket


class Intake(msgspec.Struct, kw_only=True):
    """Where an item went: its ticket (new or not) and message (None: a ticket alone)."""

    ticket_id: int
    message_id: int | None
    created_ticket: bool
    duplicate: bool
    edited: bool = False


# Given the item's customer, the ticket it continues (merges followed, `follow_merges`
# row), or None. Mail threading: a reply joins the ticket its References cite.
FindThread = Callable[[asyncpg.Connection, int], Awaitable[Mapping[str, Any] | None]]


async def follow_merges(conn: asyncpg.Connection, ticket_id: int | None) -> asyncpg.Record | None:
    """The ticket `ticket_id` was merged into, transitively (id, status, customer_id),
    or None when there is none."""
    for _ in range(20):  # merge chains are short; the bound guards against a cycle
        if ticket_id is None:
            return None
        row = await conn.fetchrow(
            "SELECT id, status, customer_id, merged_into_id FROM tickets WHERE id = $1",
            ticket_id,
        )
        if row is None or row["merged_into_id"] is None:
            return row
        ticket_id = row["merged_into_id"]
    return None


# A new ticket (with its first SLA columns) and its conversation pointing at it. The
# status is `open` when it is assigned at once.
_SLA_COLUMNS, _SLA_VALUES = sla_start.start_columns_sql(12)
NEW_TICKET = f"""WITH ticket AS (
    INSERT INTO tickets (subject, channel, channel_account, customer_id, conversation_id,
                         priority, category, group_id, assignee_id, tags, status,
                         created_at, updated_at, {_SLA_COLUMNS})
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,
            CASE WHEN $9::bigint IS NULL THEN 'new' ELSE 'open' END, $11, $11, {_SLA_VALUES})
    RETURNING id),
linked AS (UPDATE conversations SET ticket_id = (SELECT id FROM ticket) WHERE id = $5)
SELECT id FROM ticket
"""

# The customer wrote again: a solved or pending ticket is open again, unless `$3` (what
# arrived is nobody writing: a notice, an auto-reply). `$2` is the change's time (None:
# now). The locked row comes back with `sla_fired` for the SLA refresh (no second read).
REOPEN_TICKET = f"""UPDATE tickets t SET updated_at = coalesce($2::timestamptz, clock_timestamp()),
       version = version + 1,
       status = CASE WHEN status IN ('solved', 'pending') AND NOT $3 THEN 'open'
                     ELSE status END,
       solved_at = CASE WHEN status = 'solved' AND NOT $3 THEN NULL ELSE solved_at END
WHERE id = $1 RETURNING t.*, {sla_queries.SLA_FIRED}
"""

# Messages of one conversation are stored one at a time: the upsert locks the
# conversation row, FOR NO KEY UPDATE only since it changes no key column (a new row is
# held by its inserting transaction alike). A stronger lock would block the foreign-key
# checks that a transaction holding the conversation's ticket makes on it (routing
# updates the ticket twice), while this one waits for that ticket: a deadlock.
_CONVERSATION = """INSERT INTO conversations (channel, channel_account, external_id,
                                               customer_id, last_inbound_at)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (channel, channel_account, external_id)
DO UPDATE SET last_inbound_at = greatest(conversations.last_inbound_at,
                                         EXCLUDED.last_inbound_at)
RETURNING id, ticket_id, clock_timestamp() AS now
"""

# The message, its raw source, the ticket's event and the SLA event in one round trip.
# `$16`: the event names the message (an agent's new ticket records only what it set);
# `$19`: the SLA event's type, None when nothing moves (a new ticket's clocks start in
# `sla_start.start`; a notice on a closed ticket moves nothing).
_MESSAGE = """WITH message AS (
    INSERT INTO messages (ticket_id, direction, kind, author_customer_id, channel,
                          channel_account, external_id, body_text, body_html, created_at,
                          edited_at, sender_address, reply_to_addresses, recipient_addresses)
    VALUES ($1, 'inbound', $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
    RETURNING id),
source AS (
    INSERT INTO message_sources (message_id, raw)
    SELECT id, $14::bytea FROM message WHERE $14::bytea IS NOT NULL),
event AS (
    INSERT INTO ticket_events (ticket_id, actor_agent_id, action, changes, reason)
    SELECT $1, $18, $15, $17::jsonb || CASE WHEN $16 THEN jsonb_build_object('message_id', id)
                                         ELSE '{}'::jsonb END, NULL
    FROM message),
clock AS (
    INSERT INTO sla_events (ticket_id, at, type, message_id)
    SELECT $1, $9, $19, id FROM message WHERE $19::text IS NOT NULL)
SELECT id FROM message
"""

_HELD = """SELECT id, ticket_id, edited_at FROM messages
           WHERE channel = $1 AND channel_account = $2 AND external_id = $3"""


async def take_in(
    conn: asyncpg.Connection,
    item: InboundItem,
    *,
    sla: SlaSettings,
    find_thread: FindThread | None = None,
) -> Intake:
    """Store `item` on its ticket: its conversation's (chat), the one `find_thread`
    finds (mail), or a new one when there is none or that ticket is closed. Safe to call
    again with an item that has an `external_id`: it is stored once.

    A notice is stored as a `system` message on the conversation's ticket, whatever its
    status, without reopening it or moving its SLA clocks; only a conversation with no
    ticket at all gets a new one for it (origin `notice`: no first response is owed, and
    routing sends no acknowledgement), since an agent must be able to see it."""
    channel, account = item.channel, item.channel_account
    async with conn.transaction():
        if item.external_id is not None:
            # Serialises concurrent deliveries of one message (a webhook retry, an IMAP
            # re-fetch): taken first, before any row lock, by every intake alike.
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                f"{channel}:{account}:{item.external_id}",
            )
            held = await conn.fetchrow(_HELD, channel, account, item.external_id)
            if held is not None:
                return await _redelivered(conn, held, item)
        customer_id, customer = await _identify(conn, item)
        conversation: asyncpg.Record | None = None
        if item.conversation_key is not None:
            conversation = await conn.fetchrow(
                _CONVERSATION, channel, account, item.conversation_key, customer_id, item.sent_at
            )
            # The clock is read once the conversation is ours, so messages of one
            # conversation get increasing times in the order they are stored. The ticket
            # is read by its own statement: a subquery here would see the snapshot from
            # before the lock wait.
            now: datetime = conversation["now"]
            ticket = await follow_merges(conn, conversation["ticket_id"])
        else:
            ticket = None if find_thread is None else await find_thread(conn, customer_id)
            now = await conn.fetchval("SELECT clock_timestamp()")
        notice = item.notice
        # A notice is kept on a closed ticket too (closed is final: it is only shown
        # there); it opens a ticket only when the conversation has none at all.
        created = ticket is None or (ticket["status"] == "closed" and not notice)
        quiet = notice and ticket is not None and ticket["status"] == "closed"
        unwritten = notice or item.auto_submitted  # nobody wrote it: nothing reopens
        updated = None
        if created:
            if customer is None:
                customer = await conn.fetchrow("SELECT * FROM customers WHERE id = $1", customer_id)
            plan = await _plan_start(conn, item, customer, sla, now)
            ticket_id = await _insert_ticket(conn, item, customer_id, conversation, plan, now)
        else:
            assert ticket is not None
            ticket_id = ticket["id"]
            if not quiet:
                updated = await conn.fetchrow(REOPEN_TICKET, ticket_id, now, unwritten)
            if conversation is not None and conversation["ticket_id"] != ticket_id:
                # a merge followed: the conversation feeds the surviving ticket now
                await conn.execute(
                    "UPDATE conversations SET ticket_id = $2 WHERE id = $1",
                    conversation["id"],
                    ticket_id,
                )
        event: TicketEvent = (
            "created" if created else ("customer_notice" if notice else "customer_replied")
        )
        message_id = None
        if item.text is None:
            await events.record(
                conn, ticket_id, event, item.details, actor_agent_id=item.actor_agent_id
            )
        else:
            # A notice moves no clock: it is recorded as `customer_auto_reply`, which
            # starts, meets and reopens nothing (docs/sla.md 1.4), and not at all on a
            # closed ticket (no event may follow closing).
            clock: SlaMove = None
            if not (created or quiet):
                clock = "customer_auto_reply" if unwritten else "customer_message"
            message_id = await _store_message(conn, item, ticket_id, customer_id, now, event, clock)
        if created:
            await sla_start.start(conn, ticket_id, plan, now=now)
        elif not quiet:
            if ticket is not None and ticket["status"] == "solved" and not unwritten:
                await relationship.reopened_after_solved(conn, ticket_id, "the customer wrote")
            await sla_refresh.refresh(conn, ticket_id, sla, now=now, locked=updated)
    return Intake(
        ticket_id=ticket_id, message_id=message_id, created_ticket=created, duplicate=False
    )


async def _identify(
    conn: asyncpg.Connection, item: InboundItem
) -> tuple[int, Mapping[str, Any] | None]:
    """The item's customer id, and its `customers` row when resolving the sender read it."""
    if item.customer_id is not None:
        return item.customer_id, None
    if item.sender is None:
        raise ValueError("an inbound item names its customer or its sender")
    if item.channel == "email":  # an address is one identity, whatever the mailbox
        return await senders.mail_customer(conn, item.sender), None
    customer = await senders.customer_row_for(conn, item.channel, item.channel_account, item.sender)
    return int(customer["id"]), customer


# The SLA event a message on an existing ticket records (None: it moves nothing).
SlaMove = Literal["customer_message", "customer_auto_reply"] | None


async def _store_message(
    conn: asyncpg.Connection,
    item: InboundItem,
    ticket_id: int,
    customer_id: int,
    now: datetime,
    event: TicketEvent,
    clock: SlaMove,
) -> int:
    """The message with its source, event and SLA event (one statement), then its files."""
    message_id: int = await conn.fetchval(
        _MESSAGE,
        ticket_id,
        item.kind,
        customer_id,
        item.channel,
        item.channel_account,
        item.external_id,
        item.text,
        item.html,
        now,
        item.sent_at if item.edited else None,
        item.sender_address,
        list(item.reply_to_addresses),
        list(item.recipient_addresses),
        item.raw,
        event,
        item.ticket is None,
        dict(item.details),
        item.actor_agent_id,
        clock,
    )
    for kept in item.attachments:
        await _insert_attachment(conn, message_id, kept, now)
    return message_id


async def _plan_start(
    conn: asyncpg.Connection,
    item: InboundItem,
    customer: Mapping[str, Any] | None,
    sla: SlaSettings,
    now: datetime,
) -> sla_start.StartPlan:
    """The new ticket's SLA, chosen from what the ticket will be."""
    new = item.ticket or NewTicket()
    facts = TicketFacts(
        priority=new.priority,
        category=new.category,
        channel=item.channel,
        group_id=new.group_id,
        customer=sla_policy_choice.customer_facts(customer),
    )
    return await sla_start.plan_start(
        conn,
        facts,
        sla,
        now=now,
        origin="notice" if item.notice else item.origin,
        # an agent's ticket records its first status, a channel's starts as `new`
        status=None if item.ticket is None else ("new" if new.assignee_id is None else "open"),
    )


async def _insert_ticket(
    conn: asyncpg.Connection,
    item: InboundItem,
    customer_id: int,
    conversation: asyncpg.Record | None,
    plan: sla_start.StartPlan,
    now: datetime,
) -> int:
    new = item.ticket or NewTicket()
    ticket_id: int = await conn.fetchval(
        NEW_TICKET,
        item.subject,
        item.channel,
        item.channel_account,
        customer_id,
        None if conversation is None else conversation["id"],
        new.priority,
        new.category,
        new.group_id,
        new.assignee_id,
        sorted(set(new.tags)),
        now,
        *plan.values(),
    )
    return ticket_id


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


async def _redelivered(conn: asyncpg.Connection, held: asyncpg.Record, item: InboundItem) -> Intake:
    """An item we have: an edit newer than what we hold replaces the text."""
    result = Intake(
        ticket_id=held["ticket_id"], message_id=held["id"], created_ticket=False, duplicate=True
    )
    edited_at: datetime | None = held["edited_at"]
    if item.edited and item.sent_at is not None and (edited_at is None or item.sent_at > edited_at):
        await conn.execute(
            "UPDATE messages SET body_text = $2, edited_at = $3 WHERE id = $1",
            held["id"],
            item.text,
            item.sent_at,
        )
        await events.record(conn, held["ticket_id"], "message_edited", {"message_id": held["id"]})
        result.edited = True
    return result
