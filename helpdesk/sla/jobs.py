"""SLA background jobs: a precise check per ticket at its next due instant, and the sweep.

The sweep runs every `sla.sweep_interval_seconds`. It reads only tickets whose
`next_sla_check_at` falls before the end of the next interval (a range scan of that
column's index, so its cost grows with the tickets coming due, not with the open ones)
and schedules one check job for each, deferred to the exact instant. A job id per
(ticket, instant) makes repeated sweeps harmless; a job lost with Redis is scheduled
again by the next sweep. The check itself is idempotent: levels fire once per cycle.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from helpdesk.config import Settings
from helpdesk.sla import escalation, notices

log = logging.getLogger(__name__)

CHECK_JOB = "sla_check_ticket"
SWEEP_BATCH = 5000


def check_job_id(ticket_id: int, at: datetime) -> str:
    return f"sla:{ticket_id}:{at.timestamp():.3f}"


async def coming_due(conn: asyncpg.Connection, horizon: timedelta) -> list[asyncpg.Record]:
    """Tickets with a level due before now + horizon, soonest first (index range scan)."""
    rows: list[asyncpg.Record] = await conn.fetch(
        """SELECT id, next_sla_check_at FROM tickets
           WHERE next_sla_check_at <= now() + $1::interval
           ORDER BY next_sla_check_at LIMIT $2""",
        horizon,
        SWEEP_BATCH,
    )
    return rows


async def check_ticket(ctx: dict[str, Any], ticket_id: int) -> int:
    """Fire what is due on one ticket; returns how many levels fired."""
    settings: Settings = ctx["settings"]
    async with ctx["pool"].acquire() as conn, conn.transaction():
        fired = await escalation.check(conn, ticket_id, settings.sla)
        next_at = await conn.fetchval(
            "SELECT next_sla_check_at FROM tickets WHERE id = $1", ticket_id
        )
    if fired:
        log.info(
            "sla levels fired",
            extra={"ticket_id": ticket_id, "levels": [f"{f.clock}:{f.level}" for f in fired]},
        )
        await notices.deliver_pending(ctx["pool"], settings)
    horizon = timedelta(seconds=2 * settings.sla.sweep_interval_seconds)
    now = datetime.now(next_at.tzinfo) if next_at is not None else None
    if next_at is not None and now is not None and next_at <= now + horizon:
        await ctx["redis"].enqueue_job(
            CHECK_JOB, ticket_id, _job_id=check_job_id(ticket_id, next_at), _defer_until=next_at
        )
    return len(fired)


async def sweep(ctx: dict[str, Any]) -> int:
    """Schedule a precise check for every ticket coming due (the safety net, too)."""
    settings: Settings = ctx["settings"]
    horizon = timedelta(seconds=2 * settings.sla.sweep_interval_seconds)
    async with ctx["pool"].acquire() as conn:
        rows = await coming_due(conn, horizon)
    for row in rows:
        at = row["next_sla_check_at"]
        await ctx["redis"].enqueue_job(
            CHECK_JOB, row["id"], _job_id=check_job_id(row["id"], at), _defer_until=at
        )
    await notices.deliver_pending(ctx["pool"], settings)  # anything a failed try left
    return len(rows)
