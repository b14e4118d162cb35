"""Background jobs of the channels domain: outbound delivery and the outbox relay."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from helpdesk.channels import outbox
from helpdesk.config import Settings

log = logging.getLogger(__name__)


async def deliver_outbox(ctx: dict[str, Any], outbox_id: int) -> str | None:
    """Send one outbound message. Idempotent: a second run finds nothing to claim."""
    settings: Settings = ctx["settings"]
    result = await outbox.deliver(
        ctx["pool"],
        ctx["senders"],
        outbox_id,
        lease=timedelta(seconds=settings.worker.outbox_lease_seconds),
        max_attempts=settings.worker.outbox_max_attempts,
    )
    if result is None:
        return None
    channel, status = result
    ctx["metrics"].deliveries.labels(channel, status).inc()
    return status


async def relay_outbox(ctx: dict[str, Any]) -> int:
    """Re-enqueue due deliveries (Redis may have lost them) and surface dead leases.

    PostgreSQL is the source of truth; this makes a lost or never-enqueued job harmless.
    Also prunes Idempotency-Keys older than a day.
    """
    pool = ctx["pool"]
    async with pool.acquire() as conn:
        expired = await outbox.expire_abandoned_leases(conn)
        if expired:
            log.warning("deliveries possibly sent by a dead worker", extra={"count": expired})
        due = await outbox.due_deliveries(conn)
        await conn.execute(
            "DELETE FROM idempotency_keys WHERE created_at < now() - interval '24 hours'"
        )
    for row in due:
        await ctx["redis"].enqueue_job(
            outbox.DELIVER_JOB, row["id"], _job_id=outbox.job_id(row["id"], row["attempts"])
        )
    return len(due)
