"""Liveness, readiness and Prometheus metrics: unauthenticated, cheap, no secrets."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg
from litestar import Response, get
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from helpdesk.channels.email.imap.cursor import MailboxState, mailbox_states
from helpdesk.db.pool import UNAVAILABLE_ERRORS
from helpdesk.web import queries
from helpdesk.web.context import AppContext, Ctx

log = logging.getLogger(__name__)


@get("/healthz", exclude_from_auth=True, tags=["system"], operation_id="getHealth")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


async def _check(name: str, probe: Any) -> tuple[str, str]:
    try:
        await asyncio.wait_for(probe, timeout=2)
        return name, "ok"
    except Exception as exc:
        return name, f"unavailable: {type(exc).__name__}"


async def _mailboxes(ctx: AppContext) -> list[MailboxState]:
    """How each active IMAP mailbox's poller fares; empty when PostgreSQL cannot say."""
    try:
        async with asyncio.timeout(2):
            async with ctx.pool.acquire() as conn:
                return await mailbox_states(conn)
    except (*UNAVAILABLE_ERRORS, asyncpg.PostgresError):
        return []


@get("/readyz", exclude_from_auth=True, tags=["system"], operation_id="getReadiness")
async def readyz(ctx: Ctx) -> Response[dict[str, Any]]:
    """PostgreSQL and Redis are reachable; 503 with details otherwise.

    `mailboxes` lists the IMAP pollers' states. A failing mailbox does not make the API
    unready: the API still serves agents and takes mail over HTTP, and restarting or
    removing replicas cannot fix a remote mail server. Alert on the state instead.
    """
    postgres, redis, mailboxes = await asyncio.gather(
        _check("postgres", ctx.pool.fetchval(queries.PING)),
        _check("redis", ctx.redis.ping()),
        _mailboxes(ctx),
    )
    checks = dict([postgres, redis])
    ready = all(value == "ok" for value in checks.values())
    return Response(
        {"status": "ok" if ready else "unavailable", "checks": checks, "mailboxes": mailboxes},
        status_code=200 if ready else 503,
    )


@get("/metrics", exclude_from_auth=True, tags=["system"], include_in_schema=False)
async def metrics(ctx: Ctx) -> Response[bytes]:
    """Prometheus text format; queue depths are read at scrape time."""
    try:
        ctx.metrics.queue_depth.set(await ctx.redis.zcard("arq:queue"))
    except Exception:
        log.warning("metrics: redis unavailable")
    try:
        rows = await ctx.pool.fetch(queries.OUTBOX_WAITING)
        for row in rows:
            ctx.metrics.outbox_waiting.labels(row["status"]).set(row["n"])
    except Exception:
        log.warning("metrics: postgres unavailable")
    return Response(generate_latest(ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)
