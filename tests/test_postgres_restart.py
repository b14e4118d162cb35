"""Reliability row F2 (docs/reliability.md): PostgreSQL restarts in the middle of a burst of writes.

While the database is down every write gets a 503 problem (never a 500, never a
traceback) with Retry-After; once it is back, retrying each request with its
Idempotency-Key lands it exactly once, and a retry of a request that had already
succeeded replays the first answer.

The test runs its own PostgreSQL cluster, so killing it does not disturb the session's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from litestar.testing import AsyncTestClient
from msgspec import structs

from helpdesk.agents import service as agents
from helpdesk.agents.models import AgentCreate
from helpdesk.agents.passwords import Passwords
from helpdesk.app import create_app
from helpdesk.config import Settings
from helpdesk.db.embedded import EmbeddedPostgres
from helpdesk.db.migrate import migrate_dsn
from helpdesk.db.pool import connect

Client = AsyncTestClient[Any]

PROBLEM_JSON = "application/problem+json"
RETRY_ATTEMPTS = 100
RETRY_PAUSE_SECONDS = 0.1
POOL_SIZE = 4


@dataclass
class PrivatePostgres:
    server: EmbeddedPostgres
    dsn: str


@pytest.fixture
async def private_postgres(tmp_path: Path) -> AsyncIterator[PrivatePostgres]:
    """A PostgreSQL cluster of this test alone, migrated, in its default database."""
    server = EmbeddedPostgres(tmp_path / "pg")
    dsn = await asyncio.to_thread(server.start)
    try:
        await migrate_dsn(dsn)
        yield PrivatePostgres(server, dsn)
    finally:
        await asyncio.to_thread(server.stop)


async def _admin_token(dsn: str, passwords: Passwords) -> str:
    conn = await connect(dsn)
    try:
        agent = await agents.create_agent(
            conn,
            passwords,
            AgentCreate(
                email="f2-admin@example.test",
                name="F2 admin",
                role="admin",
                password="f2 admin password",
                group_ids=[],
            ),
        )
        token, _ = await agents.issue_token(conn, agent.id, 1)
    finally:
        await conn.close()
    return token


def _body(i: int) -> dict[str, Any]:
    return {
        "subject": f"F2 burst {i}",
        "text": f"Customer message {i} written while the database restarts",
        "customer": {"email": f"f2-customer{i}@example.test", "name": f"F2 customer {i}"},
    }


async def _wait_for_lock_waiters(conn: asyncpg.Connection, count: int) -> None:
    """Until `count` other sessions are blocked on a lock (bounded, never a timing assert)."""
    waiting = 0
    for _ in range(500):
        waiting = await conn.fetchval(
            """SELECT count(*) FROM pg_stat_activity
               WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid()"""
        )
        if waiting >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"only {waiting} of {count} writes reached the database")


def _assert_unavailable_problem(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    assert int(response.headers["retry-after"]) > 0
    problem = response.json()
    assert problem["type"] == "urn:helpdesk:problem:service-unavailable"
    assert problem["status"] == 503
    assert problem["title"] and problem["detail"]
    assert "Traceback" not in response.text
    assert "asyncpg" not in response.text.lower()


async def test_writes_during_a_postgres_restart_get_503_then_each_retry_lands_exactly_once(
    private_postgres: PrivatePostgres,
    settings: Settings,
    passwords: Passwords,
    caplog: pytest.LogCaptureFixture,
) -> None:
    pg = private_postgres
    token = await _admin_token(pg.dsn, passwords)
    headers = {"Authorization": f"Bearer {token}"}
    app = create_app(
        structs.replace(
            settings, database_url=pg.dsn, database_pool_min=2, database_pool_max=POOL_SIZE
        ),
        passwords,
    )

    async def post(i: int) -> httpx.Response:
        return await client.post(
            "/tickets", json=_body(i), headers={**headers, "Idempotency-Key": f"f2-key-{i}"}
        )

    before = range(0, 6)  # answered while PostgreSQL is up
    during = range(6, 18)  # in flight while it is killed
    down = range(18, 26)  # sent while it is down
    everything = range(0, 26)
    outcome: dict[int, httpx.Response] = {}

    async with AsyncTestClient(app=app, raise_server_exceptions=False) as client:
        for i in before:
            outcome[i] = await post(i)
            assert outcome[i].status_code == 201, outcome[i].text

        # Hold the burst inside its transactions (the ticket INSERT waits on a table lock),
        # so PostgreSQL dies while every pooled connection is mid-write; the requests
        # beyond the pool size are queued for a connection at that moment. The test
        # client blocks its caller until the answer, so concurrent callers need threads.
        def post_from_own_thread(i: int) -> httpx.Response:
            return asyncio.run(post(i))

        loop = asyncio.get_running_loop()
        blocker = await asyncpg.connect(pg.dsn)
        observer = await asyncpg.connect(pg.dsn)
        with ThreadPoolExecutor(max_workers=len(during)) as callers:
            try:
                await blocker.execute("BEGIN; LOCK TABLE tickets IN SHARE MODE")
                in_flight = [loop.run_in_executor(callers, post_from_own_thread, i) for i in during]
                await _wait_for_lock_waiters(observer, POOL_SIZE)
                await asyncio.to_thread(pg.server.kill)
            finally:  # never leaves a write waiting on the lock, whatever happened
                blocker.terminate()
                observer.terminate()
            responses = await asyncio.gather(*in_flight)
        for i, response in zip(during, responses, strict=True):
            outcome[i] = response
            _assert_unavailable_problem(response)

        for i in down:
            outcome[i] = await post(i)
            _assert_unavailable_problem(outcome[i])
        readiness = await client.get("/readyz")
        assert readiness.status_code == 503
        assert readiness.json()["checks"]["postgres"] != "ok"

        await asyncio.to_thread(pg.server.restart)

        # Every request that did not get its 201 is retried with the same key until it does.
        for i in everything:
            attempts = 0
            while outcome[i].status_code != 201:
                attempts += 1
                assert attempts <= RETRY_ATTEMPTS, (
                    f"request {i} still fails {attempts} retries after the restart: "
                    f"{outcome[i].status_code} {outcome[i].text}"
                )
                await asyncio.sleep(RETRY_PAUSE_SECONDS)
                outcome[i] = await post(i)
                assert outcome[i].status_code in (201, 503), outcome[i].text
                if outcome[i].status_code == 503:
                    _assert_unavailable_problem(outcome[i])

        # The pool is healthy again: plain requests work at once, readiness is back.
        readiness = await client.get("/readyz")
        assert readiness.status_code == 200, readiness.text
        listing = await client.get("/tickets", params={"limit": 100}, headers=headers)
        assert listing.status_code == 200, listing.text

        # Retrying a request that had already succeeded replays its first answer, whether
        # it landed before the outage or on a retry after it.
        for i in everything:
            replay = await post(i)
            assert replay.status_code == 201, replay.text
            assert replay.headers.get("idempotent-replayed") == "true", i
            assert replay.json()["id"] == outcome[i].json()["id"], i

    # The outage was an expected condition: logged as a warning, never as an unhandled error.
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]

    conn = await asyncpg.connect(pg.dsn)
    try:
        rows = await conn.fetch("SELECT id, subject FROM tickets ORDER BY id")
    finally:
        await conn.close()
    ids_by_subject: dict[str, list[int]] = {}
    for row in rows:
        ids_by_subject.setdefault(row["subject"], []).append(row["id"])
    assert len(rows) == len(everything)
    for i in everything:
        subject = _body(i)["subject"]
        assert ids_by_subject.get(subject) == [outcome[i].json()["id"]], subject


async def test_raw_mail_intake_during_a_postgres_restart_lands_each_mail_once(
    private_postgres: PrivatePostgres, settings: Settings, passwords: Passwords
) -> None:
    """F2 for the email intake: an MTA's delivery while the database is down gets a 503
    (so the MTA keeps the mail and retries); the retries store each mail exactly once."""
    from helpdesk.channels.email.accounts import EmailAccountCreate, create_account

    pg = private_postgres
    secret = "f2-intake-secret-0123456789"
    conn = await connect(pg.dsn)
    try:
        await create_account(
            conn,
            EmailAccountCreate(
                name="support", address="podpora@shop.example", inbound_secret=secret
            ),
        )
    finally:
        await conn.close()
    app = create_app(structs.replace(settings, database_url=pg.dsn), passwords)
    headers = {"Authorization": f"Bearer {secret}"}

    def raw(i: int) -> bytes:
        return (
            f"From: Zakaznik {i} <c{i}@example.cz>\r\nTo: podpora@shop.example\r\n"
            f"Subject: Dotaz {i}\r\nMessage-ID: <f2-{i}@example.cz>\r\n\r\nText {i}\r\n"
        ).encode()

    async with AsyncTestClient(app=app, raise_server_exceptions=False) as client:
        first = await client.post(
            "/channels/email/support/inbound", content=raw(0), headers=headers
        )
        assert first.status_code == 200, first.text
        await asyncio.to_thread(pg.server.kill)
        for i in range(1, 6):
            _assert_unavailable_problem(
                await client.post(
                    "/channels/email/support/inbound", content=raw(i), headers=headers
                )
            )
        await asyncio.to_thread(pg.server.restart)
        for i in range(0, 6):
            for _ in range(RETRY_ATTEMPTS):
                response = await client.post(
                    "/channels/email/support/inbound", content=raw(i), headers=headers
                )
                if response.status_code == 200:
                    break
                _assert_unavailable_problem(response)
                await asyncio.sleep(RETRY_PAUSE_SECONDS)
            assert response.status_code == 200, response.text
            assert response.json()["outcome"] == ("duplicate" if i == 0 else "stored")

    conn = await asyncpg.connect(pg.dsn)
    try:
        ids = await conn.fetch(
            "SELECT external_id FROM messages WHERE direction = 'inbound' ORDER BY external_id"
        )
    finally:
        await conn.close()
    assert [r["external_id"] for r in ids] == [f"f2-{i}@example.cz" for i in range(6)]
