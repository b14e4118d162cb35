"""A due instant that jumps close between two sweeps is scheduled at once: the committed
`refresh` notifies, and the workers' listener queues the exact check (issue 8: a breach
acted on within 1 s of its due time, with a sweep every 30 s)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg

from helpdesk.app import connect_redis
from helpdesk.config import Settings
from helpdesk.db.pool import create_pool
from helpdesk.sla import jobs
from helpdesk.sla import refresh as sla_refresh
from tests.conftest import Client, Factory
from tests.sla.history import shift


async def _queued_checks(redis: object) -> dict[str, float]:
    entries = await redis.zrange("arq:queue", 0, -1, withscores=True)  # type: ignore[attr-defined]
    return {job.decode(): score for job, score in entries if job.startswith(b"sla:")}


async def _bring_due_close(
    db: asyncpg.Connection, settings: Settings, ticket_id: int, minutes_ago: float
) -> None:
    """As if the ticket had waited `minutes_ago`, recomputed and committed like a change."""
    async with db.transaction():
        await shift(db, ticket_id, minutes_ago)
        await sla_refresh.refresh(db, ticket_id, settings.sla)


async def test_a_check_coming_due_before_the_next_sweep_is_queued_for_its_instant(
    client: Client, db: asyncpg.Connection, factory: Factory, settings: Settings
) -> None:
    agent = await factory.agent("agent")
    close = await factory.ticket(client, agent, subject="Skoro po termínu")
    far = await factory.ticket(client, agent, subject="Má čas")
    redis = connect_redis(settings.redis_url)
    pool = await create_pool(settings.database_url)
    listener = jobs.DueSoonListener(settings, pool, redis)
    listener.start()
    try:
        await asyncio.wait_for(listener.listening.wait(), 30)
        assert await _queued_checks(redis) == {}

        # 59 minutes 40 s of the 60 gone: the breach is 20 s away, the sweep up to 30 s.
        await _bring_due_close(db, settings, close["id"], 59 + 2 / 3)
        await _bring_due_close(db, settings, far["id"], 1)  # 44 minutes to its warning
        at = await db.fetchval("SELECT next_sla_check_at FROM tickets WHERE id = $1", close["id"])
        expected = jobs.check_job_id(close["id"], at)
        for _ in range(300):
            queued = await _queued_checks(redis)
            if expected in queued:
                break
            await asyncio.sleep(0.05)
        assert list(queued) == [expected]  # the far ticket is left to the sweep
        assert queued[expected] == round(at.timestamp() * 1000)  # deferred to the instant
        # The next instant is the warning, overdue now: its check runs at once, and
        # fires the warning and queues the breach (20 s away) for its own instant.
        due = await db.fetchval(
            """SELECT due_at FROM ticket_sla_clocks
               WHERE ticket_id = $1 AND clock = 'first_response'""",
            close["id"],
        )
        assert at < due < at + timedelta(minutes=16)
    finally:
        await listener.stop()
        await pool.close()
        await redis.aclose()


async def test_the_listener_comes_back_after_its_connection_is_killed(
    db: asyncpg.Connection, settings: Settings
) -> None:
    redis = connect_redis(settings.redis_url)
    pool = await create_pool(settings.database_url)
    listener = jobs.DueSoonListener(settings, pool, redis)
    listener.start()
    try:
        await asyncio.wait_for(listener.listening.wait(), 30)
        killed = await db.fetchval(
            """SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
               WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid()
                 AND datname = current_database()"""
        )
        assert killed == 1
        for _ in range(200):
            if not listener.listening.is_set():
                break
            await asyncio.sleep(0.02)
        await asyncio.wait_for(listener.listening.wait(), 30)
        listening = await db.fetchval(
            """SELECT count(*) FROM pg_stat_activity
               WHERE query LIKE 'LISTEN%' AND datname = current_database()"""
        )
        assert listening == 1
    finally:
        await listener.stop()
        await pool.close()
        await redis.aclose()
