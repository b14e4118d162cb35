"""A ticket's detail: the ticket with its customer, messages, files, history and survey."""

from __future__ import annotations

import asyncpg

from helpdesk.agents.models import Principal
from helpdesk.csat import service as csat_service
from helpdesk.tickets import queries
from helpdesk.tickets.messages import message_out
from helpdesk.tickets.models import (
    AttachmentOut,
    CustomerSummary,
    EventOut,
    TicketCsat,
    TicketDetail,
)
from helpdesk.tickets.queries import get_in_scope


async def get_detail(
    conn: asyncpg.Connection, principal: Principal, ticket_id: int
) -> TicketDetail:
    """The ticket with its customer, messages, files, history and survey, as the caller
    may see them (a partner: no internal-only notes, no at-risk reasons)."""
    ticket = await get_in_scope(conn, principal, ticket_id)
    customer = await conn.fetchrow(queries.DETAIL_CUSTOMER, ticket.customer_id)
    reasons = (
        [
            f"{r['kind']} on ticket {r['ticket_id']} ({r['created_at']:%Y-%m-%d})"
            for r in await conn.fetch(queries.BAD_EXPERIENCES, ticket.customer_id)
        ]
        if customer["at_risk"] and not principal.is_partner
        else []
    )
    # Partner agents never receive internal-only notes (nor their attachments).
    hidden = principal.is_partner
    messages = await conn.fetch(queries.TICKET_MESSAGES, ticket.id, hidden)
    attachment_rows = await conn.fetch(queries.TICKET_ATTACHMENTS, ticket.id, hidden)
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
    events = await conn.fetch(queries.TICKET_HISTORY, ticket.id)
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
        messages=[message_out(m, by_message.get(m["id"], [])) for m in messages],
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
