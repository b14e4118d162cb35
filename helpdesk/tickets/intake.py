"""One intake: how anything a customer sends becomes a message on a ticket.

Chat and social messages (`channels/ingest.py`), mail (`channels/email/ingest.py`),
tickets opened through the API and logged phone calls (`tickets/opening.py`) all hand
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
from helpdesk.sla import refresh as sla_refresh
from helpdesk.sla import start as sla_start
from helpdesk.sla.policies import TicketFacts
from helpdesk.tickets import events, queries, writer
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
        row = await conn.fetchrow(queries.MERGE_LINK, ticket_id)
        if row is None or row["merged_into_id"] is None:
            return row
        ticket_id = row["merged_into_id"]
    return None


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
            await conn.execute(queries.LOCK_DELIVERY, f"{channel}:{account}:{item.external_id}")
            held = await conn.fetchrow(queries.HELD_MESSAGE, channel, account, item.external_id)
            if held is not None:
                return await _redelivered(conn, held, item)
        customer_id, customer = await _identify(conn, item)
        conversation: asyncpg.Record | None = None
        if item.conversation_key is not None:
            conversation = await conn.fetchrow(
                queries.CONVERSATION,
                channel,
                account,
                item.conversation_key,
                customer_id,
                item.sent_at,
            )
            # The clock is read once the conversation is ours, so messages of one
            # conversation get increasing times in the order they are stored. The ticket
            # is read by its own statement: a subquery here would see the snapshot from
            # before the lock wait.
            now: datetime = conversation["now"]
            ticket = await follow_merges(conn, conversation["ticket_id"])
        else:
            ticket = None if find_thread is None else await find_thread(conn, customer_id)
            now = await conn.fetchval(queries.NOW)
        notice = item.notice
        # A notice is kept on a closed ticket too (closed is final: it is only shown
        # there); it opens a ticket only when the conversation has none at all.
        created = ticket is None or (ticket["status"] == "closed" and not notice)
        quiet = notice and ticket is not None and ticket["status"] == "closed"
        unwritten = notice or item.auto_submitted  # nobody wrote it: nothing reopens
        updated = None
        if created:
            if customer is None:
                customer = await conn.fetchrow(queries.CUSTOMER_ROW, customer_id)
            plan = await _plan_start(conn, item, customer, sla, now)
            ticket_id = await _insert_ticket(conn, item, customer_id, conversation, plan, now)
        else:
            assert ticket is not None
            ticket_id = ticket["id"]
            if not quiet:
                updated = await writer.reopen_for_customer(
                    conn, ticket_id, now, unwritten=unwritten
                )
            if conversation is not None and conversation["ticket_id"] != ticket_id:
                # a merge followed: the conversation feeds the surviving ticket now
                await conn.execute(queries.RELINK_CONVERSATION, conversation["id"], ticket_id)
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
        queries.INBOUND_MESSAGE,
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
    """The new ticket's row, through the writer (one statement with its SLA columns)."""
    new = item.ticket or NewTicket()
    return await writer.open_ticket(
        conn,
        subject=item.subject,
        channel=item.channel,
        channel_account=item.channel_account,
        customer_id=customer_id,
        conversation_id=None if conversation is None else conversation["id"],
        priority=new.priority,
        category=new.category,
        group_id=new.group_id,
        assignee_id=new.assignee_id,
        tags=new.tags,
        at=now,
        sla_columns=dict(zip(sla_start.START_COLUMNS, plan.values(), strict=True)),
    )


async def _insert_attachment(
    conn: asyncpg.Connection, message_id: int, kept: KeptAttachment, now: datetime
) -> None:
    content = kept.content if kept.state == "stored" else None
    await conn.execute(
        queries.INBOUND_ATTACHMENT,
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
            queries.EDIT_MESSAGE,
            held["id"],
            item.text,
            item.sent_at,
        )
        await events.record(conn, held["ticket_id"], "message_edited", {"message_id": held["id"]})
        result.edited = True
    return result
