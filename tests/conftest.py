"""Real PostgreSQL and Redis for every test.

By default both are embedded and started once per session (nothing needs to be
running); HELPDESK_TEST_DATABASE_URL / HELPDESK_TEST_REDIS_URL point the suite at
external servers instead. Every test starts with empty tables and an empty Redis db.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from msgspec import structs
from redis.asyncio import Redis

from helpdesk.agents import service as agents
from helpdesk.agents.models import AgentCreate, GroupCreate, Role
from helpdesk.agents.passwords import Passwords
from helpdesk.app import create_app
from helpdesk.config import Settings, load_settings
from helpdesk.db.embedded import EmbeddedPostgres, EmbeddedRedis
from helpdesk.db.migrate import migrate_dsn
from helpdesk.db.pool import connect
from tests.channels.email.smtp_server import SmtpTestServer
from tests.faults import KillableRedis

TEST_PASSWORD = "correct horse battery staple"


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]] | None:
    """Every async test on the event loop the service runs on (`helpdesk.cli.use_uvloop`):
    uvloop where it is installed, else asyncio's own."""
    try:
        import uvloop
    except ImportError:
        return None
    return {"uvloop": uvloop.new_event_loop}


def _with_database(dsn: str, database: str) -> str:
    """The same server, another database (keeps host, port, user and query)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + database))


@dataclass
class Servers:
    admin_dsn: str  # a database we may CREATE DATABASE from
    redis_url: str
    postgres: EmbeddedPostgres | None

    async def create_database(self, prefix: str = "helpdesk_test") -> str:
        name = f"{prefix}_{secrets.token_hex(4)}"
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        return _with_database(self.admin_dsn, name)

    async def drop_database(self, dsn: str) -> None:
        from urllib.parse import urlsplit

        name = urlsplit(dsn).path.lstrip("/")
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    postgres = redis = None
    admin_dsn = os.environ.get("HELPDESK_TEST_DATABASE_URL", "")
    redis_url = os.environ.get("HELPDESK_TEST_REDIS_URL", "")
    base: Path = tmp_path_factory.mktemp("servers")
    if not admin_dsn:
        postgres = EmbeddedPostgres(base / "postgres")
        admin_dsn = postgres.start()
    if not redis_url:
        redis = EmbeddedRedis(base / "redis", persistent=False)
        redis_url = redis.start()
    try:
        yield Servers(admin_dsn, redis_url, postgres)
    finally:
        if redis:
            redis.stop()
        if postgres:
            postgres.stop()


@pytest.fixture(scope="session")
async def database_url(servers: Servers) -> AsyncIterator[str]:
    dsn = await servers.create_database()
    await migrate_dsn(dsn)
    yield dsn
    await servers.drop_database(dsn)


@pytest.fixture(scope="session")
def settings(database_url: str, servers: Servers) -> Settings:
    base = load_settings({})
    return structs.replace(
        base,
        database_url=database_url,
        redis_url=servers.redis_url,
        demo=False,
        database_pool_min=1,
        database_pool_max=20,
        # Cheap argon2 for speed; test_passwords checks the production profile separately.
        auth=structs.replace(
            base.auth, argon2_time_cost=1, argon2_memory_kib=256, argon2_parallelism=1
        ),
        # Channel tests count what providers receive; the acknowledgement has its own
        # tests (tests/routing_engine), which switch it on.
        routing=structs.replace(base.routing, acknowledge=False),
    )


@pytest.fixture(scope="session")
def passwords(settings: Settings) -> Passwords:
    return Passwords(settings.auth)


_KEEP = {"schema_migrations"}


@pytest.fixture
async def db(database_url: str, servers: Servers) -> AsyncIterator[asyncpg.Connection]:
    """A connection to a database whose tables were just emptied; Redis flushed too."""
    conn = await connect(database_url)
    tables = [
        r["tablename"]
        for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        if r["tablename"] not in _KEEP
    ]
    await conn.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
    redis = Redis.from_url(servers.redis_url)
    await redis.flushdb()
    await redis.aclose()
    try:
        yield conn
    finally:
        await conn.close()


Client = httpx.AsyncClient


class _TestServer(uvicorn.Server):
    """uvicorn without its signal handlers (pytest owns those)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serve(app: Any) -> AsyncIterator[Client]:
    """`app` behind a real HTTP server on loopback, and a client for it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = _TestServer(
        uvicorn.Config(app, log_config=None, access_log=False, lifespan="on", limit_concurrency=500)
    )
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if serving.done():
            serving.result()
        await asyncio.sleep(0.005)
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}",
            timeout=60,
            limits=httpx.Limits(max_connections=200),
        ) as http:
            yield http
    finally:
        server.should_exit = True
        await serving
        sock.close()


@pytest.fixture
async def client(
    db: asyncpg.Connection, settings: Settings, passwords: Passwords
) -> AsyncIterator[Client]:
    """The real app behind a real HTTP server on loopback, so requests truly run concurrently."""
    async with serve(create_app(settings, passwords)) as http:
        yield http


@dataclass
class AgentHandle:
    id: int
    email: str
    role: Role
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class Factory:
    """Builds valid objects in one call; tests override only what they are about."""

    def __init__(self, db: asyncpg.Connection, passwords: Passwords, settings: Settings) -> None:
        self.db = db
        self.passwords = passwords
        self.settings = settings
        self._n = 0

    def _next(self) -> int:
        self._n += 1
        return self._n

    async def group(self, name: str | None = None) -> int:
        group = await agents.create_group(
            self.db, GroupCreate(name=name or f"Group {self._next()}")
        )
        return group.id

    async def agent(
        self,
        role: Role = "agent",
        group_ids: list[int] | None = None,
        email: str | None = None,
        password: str | None = TEST_PASSWORD,
    ) -> AgentHandle:
        email = email or f"{role}{self._next()}@example.test"
        agent = await agents.create_agent(
            self.db,
            self.passwords,
            AgentCreate(
                email=email,
                name=email.split("@")[0],
                role=role,
                password=password,
                group_ids=group_ids or [],
            ),
        )
        token, _ = await agents.issue_token(self.db, agent.id, 1)
        return AgentHandle(agent.id, email, role, token)

    async def ticket(self, client: Client, agent: AgentHandle, **fields: Any) -> dict[str, Any]:
        n = self._next()
        body: dict[str, Any] = {
            "subject": f"Ticket {n}",
            "text": f"Customer message {n}",
            "customer": {"email": f"customer{n}@example.test", "name": f"Customer {n}"},
        }
        body.update(fields)
        response = await client.post("/tickets", json=body, headers=agent.headers)
        assert response.status_code == 201, response.text
        ticket: dict[str, Any] = response.json()
        return ticket


@pytest.fixture
def factory(db: asyncpg.Connection, passwords: Passwords, settings: Settings) -> Factory:
    return Factory(db, passwords, settings)


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpTestServer]:
    """A real SMTP server on loopback that keeps what it receives."""
    server = SmtpTestServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[KillableRedis]:
    """A Redis of this test's own, which the test may pause, resume or kill."""
    server = KillableRedis(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextlib.asynccontextmanager
async def job_context(settings: Settings) -> AsyncIterator[dict[str, Any]]:
    """The context a worker job gets (pool, Redis, metrics), for running one job directly."""
    from helpdesk.app import connect_redis
    from helpdesk.db.pool import create_pool
    from helpdesk.observability import Metrics

    redis = connect_redis(settings.redis_url)
    pool = await create_pool(settings.database_url)
    try:
        yield {"settings": settings, "pool": pool, "redis": redis, "metrics": Metrics()}
    finally:
        await pool.close()
        await redis.aclose()


async def blocked_on_lock(db: asyncpg.Connection, query_like: str, task: asyncio.Task[Any]) -> bool:
    """Wait until a statement matching `query_like` waits for a lock (True), or until
    `task` ends first or 5 s pass (False): how a test knows a race is set up."""
    for _ in range(500):
        waiting = await db.fetchval(
            """SELECT count(*) FROM pg_stat_activity
               WHERE wait_event_type = 'Lock' AND query LIKE $1""",
            query_like,
        )
        if waiting or task.done():
            return bool(waiting == 1 and not task.done())
        await asyncio.sleep(0.01)
    return False


async def solve_through_api(
    client: Client, db: asyncpg.Connection, agent: AgentHandle, ticket_id: int
) -> None:
    """`agent` solves the ticket through PATCH /tickets/{id} at its current version."""
    version = await db.fetchval("SELECT version FROM tickets WHERE id = $1", ticket_id)
    response = await client.patch(
        f"/tickets/{ticket_id}",
        json={"status": "solved"},
        headers={**agent.headers, "If-Match": f'"{version}"'},
    )
    assert response.status_code == 200, response.text
