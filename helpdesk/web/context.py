"""What the API process holds for its lifetime, built once at start-up."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import TypeAlias

import asyncpg
from arq.connections import ArqRedis
from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency

from helpdesk.agents.models import Principal
from helpdesk.agents.passwords import Passwords
from helpdesk.config import Settings
from helpdesk.observability import Metrics

log = logging.getLogger(__name__)


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

    async def enqueue(self, function: str, *args: object, job_id: str) -> None:
        """Hand a job to the workers after the transaction committed.

        Best effort: if Redis is down the job is not lost, because the database row that
        asked for it is found again by the periodic relay/sweep.
        """
        try:
            await self.redis.enqueue_job(function, *args, _job_id=job_id)
        except Exception:  # Redis down: the relay picks the row up later
            log.warning("enqueue failed; left for the relay", extra={"job": function})


def provide_context(state: State) -> AppContext:
    ctx: AppContext = state.ctx
    return ctx


async def provide_db(state: State) -> AsyncGenerator[asyncpg.Connection, None]:
    ctx: AppContext = state.ctx
    async with ctx.pool.acquire() as conn:
        yield conn


def provide_principal(request: Request[Principal, bytes, State]) -> Principal:
    return request.user


def client_ip(request: Request[Principal, bytes, State]) -> str | None:
    return request.client.host if request.client else None


# Explicit dependency markers for route signatures (litestar 3 drops inferred ones).
Db: TypeAlias = NamedDependency[asyncpg.Connection]
Caller: TypeAlias = NamedDependency[Principal]
Ctx: TypeAlias = NamedDependency[AppContext]
