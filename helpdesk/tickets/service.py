"""Ticket use cases. Each takes a connection inside the caller's transaction."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import asyncpg
import msgspec

from helpdesk.agents.models import Principal
from helpdesk.agents.scope import may_use_group, ticket_scope
from helpdesk.channels import catalogue, outbox, windows
from helpdesk.config import SlaSettings
from helpdesk.csat import service as csat_service
from helpdesk.customers import identities as customers
from helpdesk.customers import relationship
from helpdesk.db.sql import Params
from helpdesk.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    VersionMismatch,
)
from helpdesk.routing import service as routing_service
from helpdesk.sla import recording as sla_recording
from helpdesk.sla import refresh as sla_refresh
from helpdesk.tickets import changes as ticket_changes
from helpdesk.tickets import events, intake, writer
from helpdesk.tickets.events import TicketEvent
from helpdesk.tickets.intake import InboundItem, NewTicket, take_in
from helpdesk.tickets.models import (
    AttachmentIn,
    AttachmentOut,
    CallCreate,
    CallTicketCreate,
    CustomerSummary,
    EventOut,
    MessageOut,
    TicketCreate,
    TicketCsat,
    TicketDetail,
    TicketOut,
    TicketUpdate,
)
from helpdesk.tickets.queries import TICKET_COLUMNS, fetch_ticket, get_in_scope, ticket_out


async def _record_event(
    conn: asyncpg.Connection,
    ticket_id: int,
    actor: Principal | None,
    action: TicketEvent,
    changes: dict[str, Any] | None = None,
    reason: str | None = None,
) -> None:
    await events.record(
        conn,
        ticket_id,
        action,
        changes,
        actor_agent_id=actor.agent_id if actor else None,
        reason=reason,
    )


async def _check_assignment(
    conn: asyncpg.Connection, principal: Principal, group_id: int | None, assignee_id: int | None
) -> None:
    if group_id is not None:
        if not await conn.fetchval("SELECT true FROM groups WHERE id = $1", group_id):
            raise InvalidInput("Unknown group", field="group_id")
        if not may_use_group(principal, group_id):
            raise Forbidden("You may not move tickets into this group")
    elif principal.is_partner:
        raise Forbidden("Partner agents must keep tickets in one of their groups")
    if assignee_id is not None:
        agent = await conn.fetchrow(
            """SELECT a.active,
                      coalesce((SELECT array_agg(g.group_id) FROM agent_groups g
                                WHERE g.agent_id = a.id), '{}') AS group_ids
               FROM agents a WHERE a.id = $1""",
            assignee_id,
        )
        if agent is None or not agent["active"]:
            raise InvalidInput("Unknown or inactive agent", field="assignee_id")
        if principal.is_partner and not set(agent["group_ids"]) & set(principal.group_ids):
            raise Forbidden("You may only assign agents of your own groups")


async def _check_new_ticket(
    conn: asyncpg.Connection, principal: Principal, data: TicketCreate | CallTicketCreate
) -> None:
    if principal.is_partner and data.group_id is None:
        raise InvalidInput("Partner agents must choose one of their groups", field="group_id")
    await _check_assignment(conn, principal, data.group_id, data.assignee_id)


def _agent_ticket(
    principal: Principal,
    data: TicketCreate | CallTicketCreate,
    channel: str,
    customer_id: int,
    text: str | None,
    origin: Literal["customer", "agent"] = "customer",
) -> InboundItem:
    """A ticket an agent opens for a customer, as the intake takes it."""
    return InboundItem(
        channel=channel,
        customer_id=customer_id,
        text=text,
        subject=data.subject,
        origin=origin,
        details={"channel": channel, "group_id": data.group_id, "assignee_id": data.assignee_id},
        actor_agent_id=principal.agent_id,
        ticket=NewTicket(
            priority=data.priority,
            category=data.category,
            group_id=data.group_id,
            assignee_id=data.assignee_id,
            tags=tuple(data.tags),
        ),
    )


async def create_ticket(
    conn: asyncpg.Connection,
    principal: Principal,
    data: TicketCreate,
    *,
    sla: SlaSettings,
) -> TicketOut:
    """Open a ticket with the customer's first message; the SLA clock starts now."""
    await _check_new_ticket(conn, principal, data)
    customer_id = await customers.find_or_create(conn, principal, data.customer)
    item = _agent_ticket(principal, data, data.channel, customer_id, data.text)
    taken = await take_in(conn, item, sla=sla)
    return await get_in_scope(conn, principal, taken.ticket_id)


# A call logged as starting later than this after our clock is a typo, not a call.
_CLOCK_SKEW = timedelta(minutes=5)


async def _checked_call(conn: asyncpg.Connection, call: CallCreate | CallTicketCreate) -> str:
    """The call's normalized number; 400 naming the field for a bad number or a future start."""
    number = customers.normalize_phone(call.phone)
    if number is None:
        raise InvalidInput(customers.PHONE_RULE, field="phone")
    now: datetime = await conn.fetchval("SELECT clock_timestamp()")
    if call.started_at > now + _CLOCK_SKEW:
        raise InvalidInput("A call cannot start in the future", field="started_at")
    return number


async def _store_call(
    conn: asyncpg.Connection,
    principal: Principal,
    ticket: TicketOut,
    customer_id: int,
    number: str,
    call: CallCreate | CallTicketCreate,
) -> MessageOut:
    """The call as a `phone` message on `ticket` (locked by the caller), with its effects.

    The message text is the summary; number, start and duration live in the
    `call_logged` event (no columns of their own). The message time is when the call is
    logged, not the client's `started_at`, so the SLA never rests on a client's clock.
    A call needs no delivery: nothing goes to the outbox; an outbound public call is
    `sent` at once (as an API-channel reply ends up) and counts as the first response.
    An inbound call is the customer speaking: like a mail, it reopens a solved or
    pending ticket.
    """
    inbound = call.direction == "inbound"
    responds = not inbound and call.public
    row = await conn.fetchrow(
        """INSERT INTO messages (ticket_id, direction, kind, author_agent_id,
                                 author_customer_id, channel, body_text, delivery_status)
           VALUES ($1, $2, $3, $4, $5, 'phone', $6, $7)
           RETURNING *""",
        ticket.id,
        call.direction,
        "public" if call.public else "note",
        None if inbound else principal.agent_id,
        customer_id if inbound else None,
        call.summary,
        "sent" if responds else None,
    )
    if inbound:  # the customer spoke: as when they write (the intake's reopen)
        await conn.execute(intake.REOPEN_TICKET, ticket.id, None, False)
    elif responds:  # as a public reply records the first response
        await conn.execute(
            """UPDATE tickets t SET first_responded_at = coalesce(first_responded_at, $2),
                   status = CASE WHEN status = 'new' THEN 'open' ELSE status END,
                   updated_at = clock_timestamp(), version = version + 1
                WHERE t.id = $1""",
            ticket.id,
            row["created_at"],
        )
    else:  # an internal record of an outbound call, like a note
        await conn.execute(
            "UPDATE tickets t SET updated_at = clock_timestamp() WHERE t.id = $1", ticket.id
        )
    if inbound and call.public:
        await sla_recording.record(
            conn, ticket.id, "customer_message", row["created_at"], message_id=row["id"]
        )
        if ticket.status == "solved":
            await relationship.reopened_after_solved(conn, ticket.id, "the customer called")
    elif responds:
        await sla_recording.record(
            conn, ticket.id, "agent_reply", row["created_at"], message_id=row["id"]
        )
    await events.record(
        conn,
        ticket.id,
        "call_logged",
        {
            "message_id": row["id"],
            "direction": call.direction,
            "phone": number,
            "customer_id": customer_id,
            "started_at": call.started_at.isoformat(),
            "duration_seconds": call.duration_seconds,
            "public": call.public,
            "first_response": responds and ticket.first_responded_at is None,
        },
        actor_agent_id=principal.agent_id,
    )
    return _message_out(row, [])


async def log_call(
    conn: asyncpg.Connection,
    principal: Principal,
    ticket_id: int,
    call: CallCreate,
    *,
    sla: SlaSettings,
) -> MessageOut:
    """Record a phone call on a ticket in the caller's scope (404 outside it).

    The number becomes (or already is) a `phone` identity: of the customer who already
    has it, else of the ticket's customer. A partner's call never reaches beyond its
    scope: it is the ticket's customer's unless a customer the partner sees has the number.
    """
    number = await _checked_call(conn, call)
    ticket = await get_in_scope(conn, principal, ticket_id, for_update=True)
    if ticket.status == "closed":
        raise Conflict("The ticket is closed; open a new ticket from the call")
    customer_id = await customers.call_customer(
        conn, principal, number, "", ticket_customer_id=ticket.customer_id
    )
    message = await _store_call(conn, principal, ticket, customer_id, number, call)
    await sla_refresh.refresh(conn, ticket.id, sla)
    return message


async def create_ticket_from_call(
    conn: asyncpg.Connection,
    principal: Principal,
    data: CallTicketCreate,
    *,
    sla: SlaSettings,
) -> TicketOut:
    """Open a `phone` ticket whose first message is the call.

    The customer is the one the number belongs to (identity, else exactly one customer
    with that phone), else a new customer with that phone and `name`; for a partner,
    only customers in its scope are candidates (`customers.call_customer`).
    """
    number = await _checked_call(conn, data)
    await _check_new_ticket(conn, principal, data)
    customer_id = await customers.call_customer(conn, principal, number, data.name)
    origin: Literal["customer", "agent"] = "customer" if data.direction == "inbound" else "agent"
    # The ticket alone: the call, which may be the agent's, is its first message below.
    item = _agent_ticket(principal, data, "phone", customer_id, None, origin)
    taken = await take_in(conn, item, sla=sla)
    ticket = await get_in_scope(conn, principal, taken.ticket_id, for_update=True)
    await _store_call(conn, principal, ticket, customer_id, number, data)
    await sla_refresh.refresh(conn, ticket.id, sla)
    return await get_in_scope(conn, principal, ticket.id)


async def store_attachment(
    conn: asyncpg.Connection, message_id: int, filename: str, content_type: str, content: bytes
) -> int:
    """Keep one attachment of a message (any channel); returns its id."""
    attachment_id: int = await conn.fetchval(
        """INSERT INTO attachments (message_id, filename, content_type, size_bytes, sha256,
                                    content)
           VALUES ($1, $2, $3, $4, $5, $6) RETURNING id""",
        message_id,
        filename,
        content_type,
        len(content),
        hashlib.sha256(content).digest(),
        content,
    )
    return attachment_id


async def _store_attachments(
    conn: asyncpg.Connection, message_id: int, attachments: list[AttachmentIn], max_bytes: int
) -> list[AttachmentOut]:
    stored = []
    for item in attachments:
        if len(item.content) > max_bytes:
            raise PayloadTooLarge(f"Attachment {item.filename!r} is larger than {max_bytes} bytes")
        attachment_id = await store_attachment(
            conn, message_id, item.filename, item.content_type, item.content
        )
        stored.append(
            AttachmentOut(
                id=attachment_id,
                filename=item.filename,
                content_type=item.content_type,
                size_bytes=len(item.content),
            )
        )
    return stored


async def _check_reply_possible(conn: asyncpg.Connection, ticket: TicketOut) -> str:
    """Refuse, before anything is queued, a reply its channel cannot carry now (a phone
    ticket; Meta's 24-hour window). Returns the channel account a chat reply goes out
    on, so the provider's delivery reports find the message ('' for email and the API:
    an email's own Message-ID must stay free for a copy that comes back)."""
    if ticket.channel == "phone":
        raise Conflict(
            "A phone ticket has no written channel to reply on; log the call "
            "(POST /tickets/{id}/calls) or write to the customer on another channel"
        )
    row = await conn.fetchrow(
        """SELECT t.channel_account, c.last_inbound_at,
                  coalesce((SELECT (a.settings->>'human_agent_tag')::boolean
                            FROM channel_accounts a
                            WHERE a.kind = t.channel AND a.name = t.channel_account), false)
                      AS human_agent_tag
           FROM tickets t LEFT JOIN conversations c ON c.id = t.conversation_id
           WHERE t.id = $1""",
        ticket.id,
    )
    refusal = windows.reply_refusal(
        ticket.channel,
        row["last_inbound_at"],
        datetime.now(UTC),
        human_agent_tag=row["human_agent_tag"],
    )
    if refusal is not None:
        raise Conflict(refusal)
    declared = catalogue.CATALOGUE.get(ticket.channel)
    return "" if declared is not None and not declared.chat else str(row["channel_account"])


async def add_agent_message(
    conn: asyncpg.Connection,
    principal: Principal,
    ticket_id: int,
    text: str,
    attachments: list[AttachmentIn],
    *,
    public: bool,
    max_attachment_bytes: int,
    sla: SlaSettings,
    internal_only: bool = False,
) -> tuple[MessageOut, int | None]:
    """A public reply (queued in the outbox, first response recorded) or an internal note.

    Returns the message and the outbox id to enqueue after commit (None for notes).
    """
    ticket = await get_in_scope(conn, principal, ticket_id, for_update=True)
    if ticket.status == "closed":
        raise Conflict("The ticket is closed")
    kind = "public" if public else "note"
    account = await _check_reply_possible(conn, ticket) if public else ""
    row = await conn.fetchrow(
        """INSERT INTO messages (ticket_id, direction, kind, author_agent_id, channel, body_text,
                                 delivery_status, channel_account, internal_only)
           VALUES ($1, 'outbound', $2, $3, $4, $5, $6, $7, $8)
           RETURNING *""",
        ticket.id,
        kind,
        principal.agent_id,
        ticket.channel,
        text,
        "pending" if public else None,
        account,
        internal_only and not public and not principal.is_partner,
    )
    stored = await _store_attachments(conn, row["id"], attachments, max_attachment_bytes)
    outbox_id = None
    if public:
        outbox_id = await outbox.add(conn, row["id"], ticket.id, ticket.channel)
        await writer.reply_sent(
            conn, ticket.id, row["id"], row["created_at"], actor_agent_id=principal.agent_id
        )
    else:
        await writer.note_added(conn, ticket.id, row["id"], actor_agent_id=principal.agent_id)
    if public:
        await sla_recording.record(
            conn, ticket.id, "agent_reply", row["created_at"], message_id=row["id"]
        )
        await sla_refresh.refresh(conn, ticket.id, sla)
    return _message_out(row, stored), outbox_id


def _message_out(row: asyncpg.Record, attachments: list[AttachmentOut]) -> MessageOut:
    return MessageOut(
        id=row["id"],
        ticket_id=row["ticket_id"],
        direction=row["direction"],
        kind=row["kind"],
        author_agent_id=row["author_agent_id"],
        author_customer_id=row["author_customer_id"],
        channel=row["channel"],
        body_text=row["body_text"],
        body_html=row["body_html"],
        delivery_status=row["delivery_status"],
        delivery_error=row["delivery_error"],
        created_at=row["created_at"],
        attachments=attachments,
        internal_only=row["internal_only"],
    )


async def get_detail(
    conn: asyncpg.Connection, principal: Principal, ticket_id: int
) -> TicketDetail:
    ticket = await get_in_scope(conn, principal, ticket_id)
    customer = await conn.fetchrow(
        """SELECT id, name, email, phone, language, lifecycle_stage, at_risk, csat_average
           FROM customers WHERE id = $1""",
        ticket.customer_id,
    )
    reasons = (
        [
            f"{r['kind']} on ticket {r['ticket_id']} ({r['created_at']:%Y-%m-%d})"
            for r in await conn.fetch(
                """SELECT kind, ticket_id, created_at FROM bad_experiences
                   WHERE customer_id = $1 ORDER BY created_at DESC LIMIT 5""",
                ticket.customer_id,
            )
        ]
        if customer["at_risk"] and not principal.is_partner
        else []
    )
    # Partner agents never receive internal-only notes (nor their attachments).
    hidden = principal.is_partner
    messages = await conn.fetch(
        """SELECT * FROM messages WHERE ticket_id = $1 AND NOT ($2 AND internal_only)
           ORDER BY created_at, id""",
        ticket.id,
        hidden,
    )
    attachment_rows = await conn.fetch(
        """SELECT a.id, a.message_id, a.filename, a.content_type, a.size_bytes, a.state,
                  a.fetch_error
           FROM attachments a JOIN messages m ON m.id = a.message_id
           WHERE m.ticket_id = $1 AND NOT ($2 AND m.internal_only) ORDER BY a.id""",
        ticket.id,
        hidden,
    )
    by_message: dict[int, list[AttachmentOut]] = {}
    for a in attachment_rows:
        by_message.setdefault(a["message_id"], []).append(
            AttachmentOut(
                id=a["id"],
                filename=a["filename"],
                content_type=a["content_type"],
                size_bytes=a["size_bytes"],
                state=a["state"],
                fetch_error=a["fetch_error"],
            )
        )
    events = await conn.fetch(
        "SELECT * FROM ticket_events WHERE ticket_id = $1 ORDER BY id", ticket.id
    )
    return TicketDetail(
        ticket=ticket,
        customer=CustomerSummary(
            id=customer["id"],
            name=customer["name"],
            email=customer["email"],
            phone=customer["phone"],
            language=customer["language"],
            lifecycle_stage=customer["lifecycle_stage"],
            at_risk=customer["at_risk"],
            at_risk_reasons=reasons,
            csat_average=customer["csat_average"],
        ),
        messages=[_message_out(m, by_message.get(m["id"], [])) for m in messages],
        events=[
            EventOut(
                id=e["id"],
                actor_agent_id=e["actor_agent_id"],
                action=e["action"],
                changes=e["changes"],
                reason=e["reason"],
                created_at=e["created_at"],
            )
            for e in events
        ],
        csat=await _ticket_csat(conn, ticket.id),
    )


async def _ticket_csat(conn: asyncpg.Connection, ticket_id: int) -> TicketCsat | None:
    survey = await csat_service.for_ticket(conn, ticket_id)
    return None if survey is None else TicketCsat(**dict(survey))


async def update_ticket(
    conn: asyncpg.Connection,
    principal: Principal,
    ticket_id: int,
    data: TicketUpdate,
    expected_version: int,
    *,
    sla: SlaSettings,
) -> TicketOut:
    """Change fields if the caller saw the current version (optimistic concurrency)."""
    ticket = await get_in_scope(conn, principal, ticket_id, for_update=True)
    if ticket.version != expected_version:
        raise VersionMismatch(
            f"Ticket is at version {ticket.version}, not {expected_version}",
            current_version=ticket.version,
        )
    if ticket.status == "closed":
        raise Conflict("The ticket is closed and can no longer change")
    requested = {
        name: getattr(data, name)
        for name in ("status", "priority", "category", "group_id", "assignee_id", "tags")
        if getattr(data, name) is not msgspec.UNSET
    }
    if "tags" in requested:
        requested["tags"] = sorted(set(requested["tags"]))
    changes = {
        name: {"from": getattr(ticket, name), "to": value}
        for name, value in requested.items()
        if getattr(ticket, name) != value
    }
    if not changes:
        return ticket
    new = {name: change["to"] for name, change in changes.items()}
    if new.keys() & {"group_id", "assignee_id"}:
        # Only what changes is checked: a new group, and a newly named assignee.
        await _check_assignment(
            conn, principal, new.get("group_id", ticket.group_id), new.get("assignee_id")
        )
    updated, moved = await writer.apply_edit(
        conn, ticket, changes, actor_agent_id=principal.agent_id, reason=data.reason
    )
    if "category" in changes:
        await routing_service.record_category_change(
            conn, ticket.id, changes["category"]["from"], changes["category"]["to"]
        )
    now = await conn.fetchval("SELECT clock_timestamp()")
    if await ticket_changes.tell_sla(conn, moved, sla, now=now):
        row = await conn.fetchrow(
            f"SELECT {TICKET_COLUMNS} FROM tickets t WHERE t.id = $1", ticket.id
        )
        return ticket_out(row)
    return updated


async def merge_tickets(
    conn: asyncpg.Connection,
    principal: Principal,
    source_id: int,
    target_id: int,
    reason: str | None,
    *,
    sla: SlaSettings,
) -> TicketOut:
    """Move every message of `source_id` into `target_id` and close the source with a link.

    The source's SLA clocks freeze (closed, no breach); the target keeps its own clocks."""
    if source_id == target_id:
        raise InvalidInput("A ticket cannot be merged into itself", field="into_ticket_id")
    # Lock both rows in id order so two opposite merges cannot deadlock.
    first, second = sorted((source_id, target_id))
    locked = {
        t.id: t
        for t in [
            await fetch_ticket(conn, principal, first, for_update=True),
            await fetch_ticket(conn, principal, second, for_update=True),
        ]
        if t is not None
    }
    if source_id not in locked:
        raise NotFound(f"Ticket {source_id} not found")
    if target_id not in locked:
        raise NotFound(f"Ticket {target_id} not found")
    source, target = locked[source_id], locked[target_id]
    if source.status == "closed" or target.status == "closed":
        raise Conflict("Closed tickets cannot be merged")
    moved = await conn.fetchval(
        "WITH m AS (UPDATE messages SET ticket_id = $2 WHERE ticket_id = $1 RETURNING 1) "
        "SELECT count(*) FROM m",
        source.id,
        target.id,
    )
    await conn.execute(
        "UPDATE outbox SET ticket_id = $2 WHERE ticket_id = $1", source.id, target.id
    )
    merged = await writer.merge(
        conn, source, target, moved, actor_agent_id=principal.agent_id, reason=reason
    )
    now = await conn.fetchval("SELECT clock_timestamp()")
    await sla_recording.record(conn, source.id, "status", now, status="closed")
    await sla_refresh.refresh(conn, source.id, sla, now=now)
    return merged


async def get_attachment(
    conn: asyncpg.Connection, principal: Principal, attachment_id: int
) -> asyncpg.Record:
    params = Params()
    scope = ticket_scope(principal, params)
    row = await conn.fetchrow(
        f"""SELECT a.filename, a.content_type, a.content, a.state, a.fetch_error
            FROM attachments a
            JOIN messages m ON m.id = a.message_id JOIN tickets t ON t.id = m.ticket_id
            WHERE a.id = {params.add(attachment_id)} AND {scope}
              AND NOT ({params.add(principal.is_partner)} AND m.internal_only)""",
        *params.values,
    )
    if row is None:
        raise NotFound(f"Attachment {attachment_id} not found")
    if row["content"] is None:  # a channel file not downloaded (yet)
        raise Conflict(
            f"Attachment {attachment_id} is not downloaded ({row['state']}): "
            f"{row['fetch_error'] or 'no reason recorded'}"
        )
    return row


async def retry_delivery(
    conn: asyncpg.Connection,
    principal: Principal,
    ticket_id: int,
    message_id: int,
    *,
    sla: SlaSettings,
) -> tuple[MessageOut, outbox.Requeued]:
    """Send a reply whose delivery failed for good once more (any agent who sees the ticket).

    404 for a message not on this ticket (or hidden from the caller), 409 when its
    delivery has not failed or the ticket can no longer be answered. The reply counts as
    a response again from now, when it is accepted again (docs/sla.md 1.4). Returns the message
    and the outbox row to enqueue after commit.
    """
    ticket = await get_in_scope(conn, principal, ticket_id, for_update=True)
    row = await conn.fetchrow(
        """SELECT * FROM messages WHERE id = $1 AND ticket_id = $2 AND direction = 'outbound'
             AND NOT ($3 AND internal_only)""",
        message_id,
        ticket.id,
        principal.is_partner,
    )
    if row is None:
        raise NotFound(f"Message {message_id} not found on ticket {ticket_id}")
    if row["delivery_status"] != "failed":
        raise Conflict(f"Message {message_id} has not failed; only a failed delivery is retried")
    if ticket.status == "closed":
        raise Conflict("The ticket is closed")
    if row["channel"] == ticket.channel:  # e.g. Meta's 24-hour window has closed since
        await _check_reply_possible(conn, ticket)
    requeued = await outbox.requeue_failed(conn, message_id)
    if requeued is None:
        raise Conflict(f"Message {message_id} has no delivery to retry")
    counted_at = await sla_recording.reply_retried(conn, ticket.id, message_id, sla)
    await events.record(
        conn,
        ticket.id,
        "reply_retried",
        {
            "message_id": message_id,
            "previous_error": row["delivery_error"],
            "counted_at": counted_at.isoformat() if counted_at else None,
        },
        actor_agent_id=principal.agent_id,
    )
    message = await conn.fetchrow("SELECT * FROM messages WHERE id = $1", message_id)
    attachments = [
        AttachmentOut(
            id=a["id"],
            filename=a["filename"],
            content_type=a["content_type"],
            size_bytes=a["size_bytes"],
        )
        for a in await conn.fetch(
            """SELECT id, filename, content_type, size_bytes FROM attachments
               WHERE message_id = $1 ORDER BY id""",
            message_id,
        )
    ]
    return _message_out(message, attachments), requeued
