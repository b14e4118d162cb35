"""One pooled connection per request, handed out in arrival order (RequestConnection).

Under load (more concurrent requests than pooled connections) a request must not be
overtaken while it waits, and an event stream must not keep a connection for its
whole life, or a handful of open consoles would starve every other request.
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from msgspec import structs

from helpdesk.agents.passwords import Passwords
from helpdesk.app import create_app
from helpdesk.config import Settings
from helpdesk.db.pool import create_pool
from helpdesk.web.context import RequestConnection
from tests.conftest import Factory, serve


class _Ctx:
    """The two parts of the application context a RequestConnection uses."""

    def __init__(self, pool: asyncpg.Pool, size: int) -> None:
        self.pool = pool
        self.connection_queue = asyncio.Semaphore(size)


async def test_a_waiting_request_is_not_overtaken_by_a_later_one(database_url: str) -> None:
    pool = await create_pool(database_url, min_size=1, max_size=1)
    ctx = _Ctx(pool, 1)
    order: list[str] = []
    try:
        holder = RequestConnection(ctx)  # type: ignore[arg-type]
        await holder.acquire()

        async def take(name: str) -> None:
            lease = RequestConnection(ctx)  # type: ignore[arg-type]
            await lease.acquire()
            order.append(name)
            await lease.release()

        waiting = asyncio.create_task(take("waiting"))
        await asyncio.sleep(0.05)  # it waits for the only connection
        assert order == []
        # The connection is handed back while another request becomes ready to run (as
        # happens all the time in a busy server): that newcomer runs after the pool has
        # the connection again but before the waiting request is resumed, and must
        # still queue behind it. (asyncpg's pool alone lets it take the connection.)
        releasing = asyncio.create_task(holder.release())
        await asyncio.sleep(0)  # the release has begun and is about to give it back
        newcomer = asyncio.create_task(take("newcomer"))
        await asyncio.gather(releasing, waiting, newcomer)
    finally:
        await pool.close()
    assert order == ["waiting", "newcomer"]


async def test_event_streams_do_not_hold_a_pooled_connection(
    db: asyncpg.Connection, settings: Settings, passwords: Passwords, factory: Factory
) -> None:
    """With a pool of one connection, two open ticket streams leave the queue usable."""
    agent = await factory.agent(role="agent")
    app = create_app(structs.replace(settings, database_pool_max=1), passwords)
    async with (
        serve(app) as client,
        client.stream("GET", "/tickets/stream", headers=agent.headers) as first,
        client.stream("GET", "/tickets/stream", headers=agent.headers) as second,
    ):
        assert first.status_code == second.status_code == 200
        listing = await asyncio.wait_for(
            client.get("/tickets?limit=5", headers=agent.headers), timeout=10
        )
        assert listing.status_code == 200


@pytest.mark.parametrize("pool_size", [1, 3])
async def test_more_concurrent_requests_than_connections_all_succeed(
    db: asyncpg.Connection,
    settings: Settings,
    passwords: Passwords,
    factory: Factory,
    pool_size: int,
) -> None:
    """Authenticated reads and writes, and rejected tokens, 40 at a time on a small pool:
    every one answered, none stuck, and the pool whole afterwards."""
    agent = await factory.agent(role="agent")
    app = create_app(structs.replace(settings, database_pool_max=pool_size), passwords)
    async with serve(app) as client:

        async def one(index: int) -> int:
            if index % 4 == 0:
                response = await client.get("/tickets", headers={"Authorization": "Bearer nope"})
            elif index % 4 == 1:
                response = await client.post(
                    "/tickets",
                    json={
                        "subject": f"Dotaz {index}",
                        "text": "Kdy dorazí objednávka?",
                        "customer": {"email": f"zakaznik{index}@example.cz"},
                    },
                    headers=agent.headers,
                )
            else:
                response = await client.get("/tickets?limit=10", headers=agent.headers)
            return response.status_code

        statuses = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(40))), 60)
        assert statuses.count(401) == 10
        assert statuses.count(201) == 10
        assert statuses.count(200) == 20
        pool: asyncpg.Pool = app.state.ctx.pool
        assert app.state.ctx.connection_queue._value == pool_size  # every lease returned
        assert pool.get_idle_size() == pool.get_size()
    created = await db.fetchval("SELECT count(*) FROM tickets")
    assert created == 10
