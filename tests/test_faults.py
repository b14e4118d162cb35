"""Faults (docs: reliability rows F1-F3): workers, Redis and database connections die.

Real processes where a process is what is tested: `helpdesk worker` and `helpdesk run`
against the test's database and a redis-server of the test's own, which is killed
and restarted (never the session's Redis).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from tests.channels.test_outbox import reply
from tests.conftest import Client, Factory
from tests.faults import KillableRedis, alive, start_helpdesk, stop_process, wait_until


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[KillableRedis]:
    server = KillableRedis(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def _status(db: asyncpg.Connection, message_id: int) -> str:
    status: str = await db.fetchval("SELECT status FROM outbox WHERE message_id = $1", message_id)
    return status


@pytest.mark.parametrize("command", ["worker", "run"])
async def test_a_worker_keeps_running_through_a_redis_restart_and_delivers_after_it(
    command: str,
    client: Client,
    factory: Factory,
    db: asyncpg.Connection,
    database_url: str,
    own_redis: KillableRedis,
    tmp_path: Path,
) -> None:
    agent = await factory.agent("agent")
    ticket = await factory.ticket(client, agent)
    log = tmp_path / "worker.log"
    process = start_helpdesk(command, database_url, own_redis.url, log)
    try:
        # The reply's own job goes to the session's Redis: the worker's relay (on its
        # Redis) is what finds it, so every delivery here proves the worker polls.
        before = await reply(client, agent, ticket["id"], "before the outage")
        await wait_until(lambda: _is_sent(db, before["id"]), "the first reply to be delivered")

        own_redis.kill()
        during = await reply(client, agent, ticket["id"], "while Redis is down")

        async def noticed() -> bool:
            alive(process, log)
            return "Redis unavailable" in log.read_text()

        await wait_until(noticed, "the worker to notice the outage")
        alive(process, log)
        assert await _status(db, during["id"]) == "pending"

        own_redis.start()
        await wait_until(lambda: _is_sent(db, during["id"]), "the reply after the restart")
        after = await reply(client, agent, ticket["id"], "after the outage")
        await wait_until(lambda: _is_sent(db, after["id"]), "a reply written after the restart")
        alive(process, log)
    finally:
        await stop_process(process)


async def _is_sent(db: asyncpg.Connection, message_id: int) -> bool:
    return await _status(db, message_id) == "sent"
