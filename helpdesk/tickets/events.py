"""The ticket's event log: one list of what can happen to a ticket, and one way to record it.

`ticket_events.action` is free text in the database; the names a ticket's history may
hold are the `TicketEvent` literal below, so a typo is a type error and the console and
the API can list every name (`GET /meta`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, get_args

import asyncpg

from helpdesk.tickets import queries

TicketEvent = Literal[
    # intake: a customer (or a logged call) wrote
    "created",
    "customer_replied",
    "customer_notice",
    "call_logged",
    "message_edited",
    "attachment_fetched",
    "attachment_fetch_failed",
    "webchat_visitor",
    # agents
    "updated",
    "replied",
    "noted",
    "merged_into",
    "merged_from",
    "customer_merged",
    "reply_retried",
    # routing and assignment
    "routed",
    "assigned",
    "unassigned",
    "escalated",
    # SLA
    "sla_warning",
    "sla_breached",
    "sla_escalated",
    "sla_met",
    "sla_policy_changed",
    "reply_withdrawn",
    # delivery
    "delivery_delayed",
    "delivery_failed",
    "customer_unreachable",
    "auto_reply_suppressed",
    # satisfaction
    "csat_asked",
    "csat_rated",
]

TICKET_EVENTS: tuple[TicketEvent, ...] = get_args(TicketEvent)

# The SLA events supervisors watch live (the board's event stream reads these).
SLA_EVENTS: tuple[TicketEvent, ...] = ("sla_warning", "sla_breached", "sla_escalated", "sla_met")


async def record(
    conn: asyncpg.Connection,
    ticket_id: int,
    event: TicketEvent,
    changes: Mapping[str, Any] | None = None,
    *,
    actor_agent_id: int | None = None,
    reason: str | None = None,
) -> None:
    """Append `event` to the ticket's history, in the caller's transaction."""
    await conn.execute(
        queries.INSERT_EVENT, ticket_id, actor_agent_id, event, dict(changes or {}), reason
    )


async def record_many(
    conn: asyncpg.Connection,
    ticket_ids: Sequence[int],
    event: TicketEvent,
    changes: Mapping[str, Any] | None = None,
    *,
    actor_agent_id: int | None = None,
    reason: str | None = None,
) -> None:
    """The same event on several tickets in one statement (a customer merge)."""
    await conn.execute(
        queries.INSERT_EVENTS,
        list(ticket_ids),
        actor_agent_id,
        event,
        dict(changes or {}),
        reason,
    )
