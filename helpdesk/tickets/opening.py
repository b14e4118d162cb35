"""Tickets agents open (the API, a logged call) and the phone calls they log.

Both kinds of new ticket go through the one intake (`tickets/intake.py`); a call is
stored as a `phone` message with its effects (reopen, first response) through the
writer. Each use case takes a connection inside the caller's transaction.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

import asyncpg

from helpdesk.agents.models import Principal
from helpdesk.config import SlaSettings
from helpdesk.customers import identities as customers
from helpdesk.customers import relationship
from helpdesk.errors import Conflict, InvalidInput
from helpdesk.sla import recording as sla_recording
from helpdesk.sla import refresh as sla_refresh
from helpdesk.tickets import events, queries, writer
from helpdesk.tickets.edits import check_assignment
from helpdesk.tickets.intake import InboundItem, NewTicket, take_in
from helpdesk.tickets.messages import message_out
from helpdesk.tickets.models import (
    CallCreate,
    CallTicketCreate,
    MessageOut,
    TicketCreate,
    TicketOut,
)
from helpdesk.tickets.queries import get_in_scope


async def _check_new_ticket(
    conn: asyncpg.Connection, principal: Principal, data: TicketCreate | CallTicketCreate
) -> None:
    if principal.is_partner and data.group_id is None:
        raise InvalidInput("Partner agents must choose one of their groups", field="group_id")
    await check_assignment(conn, principal, data.group_id, data.assignee_id)


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
    now: datetime = await conn.fetchval(queries.NOW)
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
        queries.CALL_MESSAGE,
        ticket.id,
        call.direction,
        "public" if call.public else "note",
        None if inbound else principal.agent_id,
        customer_id if inbound else None,
        call.summary,
        "sent" if responds else None,
    )
    if inbound:  # the customer spoke: as when they write (the intake's reopen)
        await writer.reopen_for_customer(conn, ticket.id, None, unwritten=False)
    elif responds:  # as a public reply records the first response
        await writer.responded(conn, ticket.id, row["created_at"])
    else:  # an internal record of an outbound call, like a note
        await writer.touched(conn, ticket.id)
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
    return message_out(row, [])


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
