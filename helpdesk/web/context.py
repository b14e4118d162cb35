"""What the API process holds for its lifetime, built once at start-up."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import asyncpg
from arq.connections import ArqRedis
from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency

from helpdesk.agents.models import Principal
from helpdesk.agents.passwords import Passwords
from helpdesk.config import Settings
from helpdesk.observability import Metrics
from helpdesk.redis_outage import RedisOutage

log = logging.getLogger(__name__)

# How long a request waits for its after-commit enqueue (normally ~1 ms), and how many
# enqueues may be in flight. How long requests leave Redis alone after it failed:
# helpdesk.redis_outage.BACKOFF_SECONDS.
ENQUEUE_WAIT_SECONDS = 0.25
MAX_ENQUEUES = 200


class OverBudget:
    """Agents who spent their not-found budget (too many 404s in a window: id walking),
    as this process learnt from the counts its own 404s returned, and until when.

    Kept in the process so that no request pays a Redis round trip for the check. The
    count itself is shared in Redis: once it is over the limit, every process blocks the
    agent at its next 404, so N processes let through at most N - 1 extra 404s."""

    def __init__(self) -> None:
        self._until: dict[int, float] = {}

    def block(self, agent_id: int, seconds: float) -> None:
        self._until[agent_id] = time.monotonic() + seconds

    def retry_after(self, agent_id: int) -> int | None:
        """Seconds left of the agent's block, or None when not blocked."""
        until = self._until.get(agent_id)
        if until is None:
            return None
        left = until - time.monotonic()
        if left <= 0:
            del self._until[agent_id]
            return None
        return max(1, round(left))


@dataclass
class AppContext:
    settings: Settings
    pool: asyncpg.Pool
    redis: ArqRedis
    passwords: Passwords
    metrics: Metrics
    over_budget: OverBudget = field(default_factory=OverBudget)
    # Requests waiting for a pooled connection, served in arrival order (RequestConnection).
    connection_queue: asyncio.Semaphore = field(init=False)

    # Every request's use of `redis` goes through this: after a failure, Redis is left
    # alone for a few seconds instead of each request paying its timeout.
    redis_outage: RedisOutage = field(init=False)

    def __post_init__(self) -> None:
        self.connection_queue = asyncio.Semaphore(self.settings.database_pool_max)
        self.redis_outage = RedisOutage(self.metrics.redis_skipped)

    # Enqueueing after a commit is best effort (see `enqueue`); this keeps it from ever
    # slowing a request down while Redis is down or frozen.
    _enqueues: set[asyncio.Task[None]] = field(default_factory=set, init=False)

    async def enqueue(self, function: str, *args: object, job_id: str) -> None:
        """Hand a job to the workers after the transaction committed.

        Best effort, and never slow: the database row that asked for the job is durable,
        and the worker's periodic relay/sweep (outbox relay, inbound-event sweep, routing
        and SLA sweeps) enqueues every such row whose job is missing. So a request waits
        at most `ENQUEUE_WAIT_SECONDS` for Redis; a slower enqueue goes on in the
        background (bounded in number), and after a failure requests skip Redis
        altogether for a few seconds (`redis_outage`) instead of each paying a timeout.
        """
        if self.redis_outage.known_down() or len(self._enqueues) >= MAX_ENQUEUES:
            self.metrics.enqueue_skipped.inc()
            return
        task = asyncio.create_task(self._enqueue(function, args, job_id))
        self._enqueues.add(task)
        task.add_done_callback(self._enqueues.discard)
        await asyncio.wait({task}, timeout=ENQUEUE_WAIT_SECONDS)
        if not task.done():  # Redis is slow or frozen: answer now, leave it to the relay
            self.redis_outage.failed()
            log.warning("enqueue slow; answered without waiting", extra={"job": function})

    async def _enqueue(self, function: str, args: tuple[object, ...], job_id: str) -> None:
        try:
            await self.redis.enqueue_job(function, *args, _job_id=job_id)
        except Exception as error:  # Redis down: the relay picks the row up later
            self.redis_outage.failed()
            log.warning(
                "enqueue failed; left for the relay",
                extra={"job": function, "error": type(error).__name__},
            )

    async def close(self) -> None:
        """Give enqueues still in flight a last moment, then drop them (the relay has
        them anyway)."""
        pending = list(self._enqueues)
        if pending:
            await asyncio.wait(pending, timeout=ENQUEUE_WAIT_SECONDS)
            for task in pending:
                task.cancel()


def provide_context(state: State) -> AppContext:
    ctx: AppContext = state.ctx
    return ctx


class RequestConnection:
    """A pooled connection taken once per request, in arrival order.

    Authentication reads the token with it and the handler's `db` dependency gets the
    same connection, so a request waits for the pool once, not twice. The wait is
    first come, first served (`AppContext.connection_queue`): asyncpg's pool gives a
    returned connection to any request that runs before the woken waiter does, and
    the waiter then goes to the back of the queue. With 50 concurrent requests on 10
    connections that made the listing's p99 latency 3-4 times its median.
    """

    SCOPE_KEY = "helpdesk.connection"

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.conn: asyncpg.Connection | None = None

    async def acquire(self) -> asyncpg.Connection:
        await self.ctx.connection_queue.acquire()
        try:
            self.conn = await self.ctx.pool.acquire()
        except BaseException:
            self.ctx.connection_queue.release()
            raise
        return self.conn

    async def release(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            try:
                await self.ctx.pool.release(conn)
            finally:
                self.ctx.connection_queue.release()


async def provide_db(request: Request[Any, Any, State]) -> AsyncGenerator[asyncpg.Connection, None]:
    """The request's connection (taken by authentication, or now for routes without
    it), released when the handler is done: litestar ends dependencies before it sends
    the response."""
    lease: RequestConnection | None = request.scope.pop(RequestConnection.SCOPE_KEY, None)  # type: ignore[misc]
    if lease is None or lease.conn is None:
        lease = RequestConnection(request.app.state.ctx)
        await lease.acquire()
    assert lease.conn is not None
    try:
        yield lease.conn
    finally:
        await lease.release()


def provide_principal(request: Request[Principal, bytes, State]) -> Principal:
    return request.user


def client_ip(request: Request[Principal, bytes, State]) -> str | None:
    return request.client.host if request.client else None


# Explicit dependency markers for route signatures (litestar 3 drops inferred ones).
Db: TypeAlias = NamedDependency[asyncpg.Connection]
Caller: TypeAlias = NamedDependency[Principal]
Ctx: TypeAlias = NamedDependency[AppContext]
