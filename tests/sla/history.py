"""A ticket's SLA history in tests: a policy with every clock, reading cycles and events,
moving the history into the past, and running the escalation check."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import asyncpg

from helpdesk.config import Settings
from helpdesk.sla import escalation

# Every clock, so that a next-response cycle can start (the built-in policy has none).
EVERY_CLOCK_POLICY = """INSERT INTO sla_policies (name, position, first_response_minutes,
                                                  next_response_minutes, resolution_minutes)
                        VALUES ('every clock', 0, 60, 240, 480)"""


async def next_response_cycles(db: asyncpg.Connection, ticket_id: int) -> int:
    """How many next-response cycles the ticket has started."""
    cycles: int = await db.fetchval(
        """SELECT count(*) FROM ticket_sla_clocks
           WHERE ticket_id = $1 AND clock = 'next_response'""",
        ticket_id,
    )
    return cycles


async def sla_event_types(db: asyncpg.Connection, ticket_id: int) -> list[str]:
    """The ticket's SLA events, oldest first, by type."""
    rows = await db.fetch(
        "SELECT type FROM sla_events WHERE ticket_id = $1 ORDER BY at, id", ticket_id
    )
    return [r["type"] for r in rows]


async def shift(db: asyncpg.Connection, ticket_id: int, minutes: float) -> None:
    """Move the ticket's history `minutes` into the past (as if it had waited that long)."""
    delta = timedelta(minutes=minutes)
    await db.execute(
        """UPDATE tickets SET created_at = created_at - $2::interval,
               sla_policy_at = sla_policy_at - $2::interval WHERE id = $1""",
        ticket_id,
        delta,
    )
    await db.execute(
        "UPDATE sla_events SET at = at - $2::interval WHERE ticket_id = $1", ticket_id, delta
    )


async def check(db: asyncpg.Connection, settings: Settings, ticket_id: int) -> list[Any]:
    """The escalation check of one ticket, in a transaction as the job runs it."""
    async with db.transaction():
        return await escalation.check(db, ticket_id, settings.sla)
