"""Liveness, readiness and Prometheus metrics: unauthenticated, cheap, no secrets."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from litestar import Response, get
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from helpdesk.web.context import Ctx

log = logging.getLogger(__name__)


@get("/healthz", exclude_from_auth=True, tags=["system"])
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


async def _check(name: str, probe: Any) -> tuple[str, str]:
    try:
        await asyncio.wait_for(probe, timeout=2)
        return name, "ok"
    except Exception as exc:
        return name, f"unavailable: {type(exc).__name__}"


@get("/readyz", exclude_from_auth=True, tags=["system"])
async def readyz(ctx: Ctx) -> Response[dict[str, Any]]:
    """PostgreSQL and Redis are reachable; 503 with details otherwise."""
    checks = dict(
        await asyncio.gather(
            _check("postgres", ctx.pool.fetchval("SELECT 1")),
            _check("redis", ctx.redis.ping()),
        )
    )
    ready = all(value == "ok" for value in checks.values())
    return Response(
        {"status": "ok" if ready else "unavailable", "checks": checks},
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
        rows = await ctx.pool.fetch(
            """SELECT s.status, count(o.id) AS n
               FROM unnest(ARRAY['pending', 'retrying', 'sending']) AS s(status)
               LEFT JOIN outbox o ON o.status = s.status GROUP BY s.status"""
        )
        for row in rows:
            ctx.metrics.outbox_waiting.labels(row["status"]).set(row["n"])
    except Exception:
        log.warning("metrics: postgres unavailable")
    return Response(generate_latest(ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)
