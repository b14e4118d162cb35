"""Background jobs of the channels domain: outbound delivery and the outbox relay,
processing of stored webhook deliveries and their sweep."""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

from helpdesk.channels import ingest, outbox, queries, webhooks
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
        sla=settings.sla,
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
    settings: Settings = ctx["settings"]
    async with pool.acquire() as conn:
        expired = await outbox.expire_abandoned_leases(
            conn, settings.worker.outbox_max_attempts, settings.sla
        )
        if expired.retried:
            log.warning(
                "deliveries of a dead worker retried (never handed over)",
                extra={"count": expired.retried},
            )
        if expired.possibly_sent:
            log.warning(
                "deliveries possibly sent by a dead worker", extra={"count": expired.possibly_sent}
            )
        due = await outbox.due_deliveries(conn)
        await conn.execute(queries.PRUNE_IDEMPOTENCY_KEYS)
    now = time.time()
    for row in due:
        await ctx["redis"].enqueue_job(
            outbox.DELIVER_JOB, row["id"], _job_id=outbox.relay_job_id(row, now)
        )
    return len(due)


async def process_inbound_event(ctx: dict[str, Any], event_id: int) -> int | None:
    """Turn one stored webhook delivery into messages, and route new tickets at once, in
    this job: a second queue hop would add its latency to every new ticket's first
    assignment. A routing failure here only defers the ticket to a route job (and the
    routing sweep would find it anyway). Idempotent."""
    from helpdesk.routing.jobs import ROUTE_JOB, route_job_id, route_ticket

    created: list[int] = []
    result = await webhooks.process_event(ctx["pool"], ctx["settings"], event_id, created)
    for ticket_id in created:
        try:
            await route_ticket(ctx, ticket_id)
        except Exception:
            log.exception(
                "routing a new ticket failed; queued for retry", extra={"ticket_id": ticket_id}
            )
            await ctx["redis"].enqueue_job(ROUTE_JOB, ticket_id, _job_id=route_job_id(ticket_id))
    return result


async def sweep_inbound_events(ctx: dict[str, Any]) -> int:
    """Re-enqueue webhook deliveries whose job was lost (Redis restart, killed worker)."""
    every = max(1, ctx["settings"].worker.inbound_sweep_seconds)
    async with ctx["pool"].acquire() as conn:
        pending = await webhooks.pending_events(conn, older_than_seconds=every)
    for event_id in pending:
        # A new job id per sweep: the old one may still be remembered as done by arq.
        await ctx["redis"].enqueue_job(
            webhooks.PROCESS_JOB,
            event_id,
            _job_id=f"{webhooks.event_job_id(event_id)}:sweep:{int(time.time()) // every}",
        )
    return len(pending)


async def retry_attachment_fetches(ctx: dict[str, Any]) -> int:
    """Download again the files that could not be fetched when their message came in
    (bounded tries with backoff; see `helpdesk.channels.ingest`)."""
    return await ingest.retry_attachment_fetches(ctx["pool"], ctx["settings"])
