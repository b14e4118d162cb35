"""The relationship sweep: ask for ratings that are due, count bad experiences towards
the at-risk flag, and move customers without recent orders to `inactive`."""

from __future__ import annotations

from typing import Any

from helpdesk.channels import outbox
from helpdesk.config import Settings
from helpdesk.csat import service
from helpdesk.customers import relationship


async def sweep(ctx: dict[str, Any]) -> int:
    settings: Settings = ctx["settings"]
    async with ctx["pool"].acquire() as conn:
        queued = await service.ask_due(conn, settings)
        await relationship.evaluate_pending(conn, settings)
    for outbox_id in queued:
        await ctx["redis"].enqueue_job(
            outbox.DELIVER_JOB, outbox_id, _job_id=outbox.job_id(outbox_id, 0)
        )
    return len(queued)


async def lifecycle(ctx: dict[str, Any]) -> int:
    """Hourly: derived stages of customers whose last order left the active period."""
    async with ctx["pool"].acquire() as conn:
        return await relationship.mark_inactive(conn, ctx["settings"])
