"""Faults (docs: reliability rows F1-F3): workers, Redis and database connections die.

Real processes where a process is what is tested: `helpdesk worker` and `helpdesk run`
against the test's database and a redis-server of the test's own, which is killed
and restarted (never the session's Redis).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import httpx
import pytest
from msgspec import structs

from helpdesk.agents.passwords import Passwords
from helpdesk.app import create_app
from helpdesk.channels.webhooks import event_job_id
from helpdesk.config import Settings
from helpdesk.observability import Metrics
from tests.channels.telegram import payloads
from tests.channels.telegram.conftest import TOKEN
from tests.channels.telegram.conftest import add_account as add_telegram_account
from tests.channels.telegram.fake_bot_api import FakeBotApi
from tests.channels.telegram.test_telegram_channel import deliver as deliver_update
from tests.channels.test_outbox import reply
from tests.conftest import Client, Factory, serve
from tests.faults import KillableRedis, alive, start_helpdesk, stop_process, wait_until


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[KillableRedis]:
    server = KillableRedis(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def bot_api() -> AsyncIterator[FakeBotApi]:
    server = FakeBotApi(TOKEN)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


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


async def test_webhooks_are_answered_while_redis_is_frozen_and_left_to_the_sweep(
    db: asyncpg.Connection,
    settings: Settings,
    passwords: Passwords,
    own_redis: KillableRedis,
    bot_api: FakeBotApi,
) -> None:
    """F3: a frozen Redis (SIGSTOP: connections accepted, nothing answered) must not
    hold webhook answers; the events are durable, and the sweep enqueues them later."""
    await add_telegram_account(db, bot_api.base_url)
    metrics = Metrics()
    app = create_app(structs.replace(settings, redis_url=own_redis.url), passwords, metrics)
    redis = await own_redis.client()
    async with serve(app) as http:
        first = await deliver_update(http, payloads.message(update_id=500, message_id=1))
        assert first.status_code == 200
        first_id = await db.fetchval("SELECT id FROM inbound_events")
        assert await redis.exists(f"arq:job:{event_job_id(first_id)}")  # Redis up: queued

        own_redis.pause()
        try:
            answers = [
                await deliver_update(http, payloads.message(update_id=501 + i, message_id=2 + i))
                for i in range(5)
            ]
        finally:
            own_redis.resume()

    assert [a.status_code for a in answers] == [200] * 5
    assert await db.fetchval("SELECT count(*) FROM inbound_events WHERE status = 'pending'") == 6
    # After the first frozen enqueue the others did not even try Redis (each would have
    # waited for its timeout): they are left to the worker's sweep.
    skipped = metrics.registry.get_sample_value("helpdesk_enqueue_skipped_total")
    assert skipped is not None and skipped >= 4
    await redis.aclose()


async def _terminate_others(db: asyncpg.Connection) -> int:
    """pg_terminate_backend on every other connection to the test's own database."""
    killed: int = await db.fetchval(
        """SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
           WHERE datname = current_database() AND pid <> pg_backend_pid()"""
    )
    return killed


async def test_dropped_database_connections_answer_503_with_retry_after_never_500(
    db: asyncpg.Connection,
    settings: Settings,
    passwords: Passwords,
    factory: Factory,
    bot_api: FakeBotApi,
) -> None:
    """F2 with connections terminated (pg_terminate_backend on the test database's
    connections, not a server restart): every webhook and every authenticated request
    is answered 2xx or 503 + Retry-After problem+json, never 500, and retrying lands
    each webhook exactly once."""
    await add_telegram_account(db, bot_api.base_url)
    agent = await factory.agent("agent")
    updates = 120
    answers: list[int] = []
    done = asyncio.Event()

    async def terminate() -> None:
        # Cut the connections under the requests for a while (a bounded number of
        # rounds, so that the retries then get through), spaced so that requests on
        # fresh connections also run between the cuts.
        for _ in range(40):
            if done.is_set():
                return
            await _terminate_others(db)
            await asyncio.sleep(0.05)

    def check(answer: httpx.Response) -> bool:
        answers.append(answer.status_code)
        if answer.status_code < 300:
            return True
        assert answer.status_code == 503, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert int(answer.headers["retry-after"]) > 0
        return False

    async def until_answered(request: Callable[[], Awaitable[httpx.Response]]) -> None:
        answer = await request()
        while not check(answer):  # the client's retry, its Retry-After shortened
            await asyncio.sleep(0.01)
            answer = await request()

    async def send(http: Client, n: int) -> None:
        update = payloads.message(update_id=1000 + n, message_id=n, text=f"message {n}")
        await until_answered(lambda: deliver_update(http, update))
        await until_answered(lambda: http.get("/tickets", headers=agent.headers))

    app = create_app(structs.replace(settings, database_pool_max=4), passwords)
    async with serve(app) as http:
        killer = asyncio.create_task(terminate())
        try:
            for start in range(0, updates, 10):
                await asyncio.gather(*(send(http, n) for n in range(start, start + 10)))
        finally:
            done.set()
            await killer

    assert 503 in answers  # the connections really were cut under the requests
    payloads_stored = await db.fetch("SELECT payload FROM inbound_events")
    assert len(payloads_stored) == updates
    stored_ids = sorted(json.loads(bytes(r["payload"]))["update_id"] for r in payloads_stored)
    assert stored_ids == [1000 + n for n in range(updates)]
