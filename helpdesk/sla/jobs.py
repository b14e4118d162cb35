"""SLA background jobs: a precise check per ticket at its next due instant, and the sweep.

The sweep runs every `sla.sweep_interval_seconds`. It reads only tickets whose
`next_sla_check_at` falls before the end of the next interval (a range scan of that
column's index, so its cost grows with the tickets coming due, not with the open ones)
and schedules one check job for each, deferred to the exact instant. A job id per
(ticket, instant) makes repeated sweeps harmless; a job lost with Redis is scheduled
again by the next sweep. The check itself is idempotent: levels fire once per cycle.

A due instant can also jump close between two sweeps (a tighter policy after a priority
change, a calendar edit). `refresh.refresh` then sends a NOTIFY, and `DueSoonListener`
in every worker schedules the exact check at once; one missed while a worker was
disconnected is still found by the next sweep.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from arq import ArqRedis

from helpdesk.config import Settings
from helpdesk.sla import escalation, notices, queries
from helpdesk.sla.store import DUE_SOON_CHANNEL, sweep_horizon

log = logging.getLogger(__name__)

CHECK_JOB = "sla_check_ticket"
SWEEP_BATCH = 5000


def check_job_id(ticket_id: int, at: datetime) -> str:
    return f"sla:{ticket_id}:{at.timestamp():.3f}"


async def schedule_check(redis: ArqRedis, ticket_id: int, at: datetime) -> None:
    """The ticket's check, deferred to `at`; once per (ticket, instant), however often asked."""
    await redis.enqueue_job(
        CHECK_JOB, ticket_id, _job_id=check_job_id(ticket_id, at), _defer_until=at
    )


async def coming_due(conn: asyncpg.Connection, horizon: timedelta) -> list[asyncpg.Record]:
    """Tickets with a level due before now + horizon, soonest first (index range scan)."""
    rows: list[asyncpg.Record] = await conn.fetch(queries.COMING_DUE, horizon, SWEEP_BATCH)
    return rows


async def check_ticket(ctx: dict[str, Any], ticket_id: int) -> int:
    """Fire what is due on one ticket; returns how many levels fired."""
    settings: Settings = ctx["settings"]
    async with ctx["pool"].acquire() as conn, conn.transaction():
        fired = await escalation.check(conn, ticket_id, settings.sla)
        next_at = await conn.fetchval(queries.NEXT_CHECK, ticket_id)
    if fired:
        log.info(
            "sla levels fired",
            extra={"ticket_id": ticket_id, "levels": [f"{f.clock}:{f.level}" for f in fired]},
        )
        await notices.deliver_pending(ctx["pool"], settings)
    horizon = sweep_horizon(settings.sla)
    now = datetime.now(next_at.tzinfo) if next_at is not None else None
    if next_at is not None and now is not None and next_at <= now + horizon:
        await schedule_check(ctx["redis"], ticket_id, next_at)
    return len(fired)


async def sweep(ctx: dict[str, Any]) -> int:
    """Schedule a precise check for every ticket coming due (the safety net, too)."""
    settings: Settings = ctx["settings"]
    horizon = sweep_horizon(settings.sla)
    async with ctx["pool"].acquire() as conn:
        rows = await coming_due(conn, horizon)
    for row in rows:
        await schedule_check(ctx["redis"], row["id"], row["next_sla_check_at"])
    await notices.deliver_pending(ctx["pool"], settings)  # anything a failed try left
    return len(rows)


class DueSoonListener:
    """LISTENs on one dedicated connection (reconnecting after a loss) and schedules the
    exact check of every ticket `refresh.refresh` reports as coming due soon."""

    def __init__(self, settings: Settings, pool: asyncpg.Pool, redis: ArqRedis) -> None:
        self._settings = settings
        self._pool = pool
        self._redis = redis
        self._task: asyncio.Task[None] | None = None
        self._scheduling: set[asyncio.Task[None]] = set()
        self.listening = asyncio.Event()  # set while subscribed (tests wait for it)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for task in list(self._scheduling):
            task.cancel()

    async def _run(self) -> None:
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self._settings.database_url)
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _, lost=lost: lost.set())
                await conn.add_listener(DUE_SOON_CHANNEL, self._notified)
                self.listening.set()
                await lost.wait()
                log.warning("SLA due-soon listener lost its connection; reconnecting")
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                log.warning("SLA due-soon listener cannot connect: %s", type(error).__name__)
            finally:
                self.listening.clear()
                if conn is not None and not conn.is_closed():
                    await conn.close()
            await asyncio.sleep(2)

    def _notified(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        task = asyncio.create_task(self._schedule(int(payload)))
        self._scheduling.add(task)
        task.add_done_callback(self._scheduling.discard)

    async def _schedule(self, ticket_id: int) -> None:
        try:
            async with self._pool.acquire() as conn:
                at = await conn.fetchval(queries.NEXT_CHECK, ticket_id)
            horizon = sweep_horizon(self._settings.sla)
            if at is None or at > datetime.now(UTC) + horizon:
                return  # nothing soon any more; the sweep has the rest
            await schedule_check(self._redis, ticket_id, at)
        except Exception:  # the sweep schedules it anyway, a little later
            log.exception("scheduling an SLA check failed", extra={"ticket_id": ticket_id})
