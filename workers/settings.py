"""Builds the arq Worker for resolved settings (`helpdesk worker`, `make run`)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from arq import Worker, cron, func

from helpdesk.channels import jobs as channel_jobs
from helpdesk.channels.email.imap.poller import MailPoller
from helpdesk.channels.outbox import senders
from helpdesk.config import Settings
from helpdesk.csat import jobs as csat_jobs
from helpdesk.db.pool import create_pool
from helpdesk.observability import Metrics
from helpdesk.routing import jobs as routing_jobs
from helpdesk.sla import jobs as sla_jobs
from workers.resilient import ResilientWorker, worker_redis

log = logging.getLogger("helpdesk.worker")
SHUTDOWN_POOL_SECONDS = 10


def build_worker(
    settings: Settings,
    *,
    handle_signals: bool = True,
    burst: bool = False,
    metrics: Metrics | None = None,
) -> Worker:
    """The worker; `metrics` is where its counters go (shared with the API in `helpdesk run`)."""
    worker_metrics = metrics or Metrics()

    async def startup(ctx: dict[str, Any]) -> None:
        # Up to max_jobs jobs run at once; each holds a connection only while it runs.
        ctx["pool"] = await create_pool(
            settings.database_url, settings.database_pool_min, settings.database_pool_max
        )
        ctx["senders"] = senders(ctx["pool"], settings)
        ctx["metrics"] = worker_metrics
        # IMAP mailboxes are polled by every worker; an advisory lock per mailbox makes
        # sure only one of them reads a given mailbox at a time.
        ctx["mail_poller"] = MailPoller(ctx["pool"], settings, redis=ctx.get("redis"))
        await ctx["mail_poller"].start()
        if not burst:  # a burst (tests) runs what is queued and stops; nothing to wait for
            ctx["sla_listener"] = sla_jobs.DueSoonListener(settings, ctx["pool"], ctx["redis"])
            ctx["sla_listener"].start()

    async def shutdown(ctx: dict[str, Any]) -> None:
        poller = ctx.get("mail_poller")
        if poller is not None:
            await poller.stop()
        listener = ctx.get("sla_listener")
        if listener is not None:
            await listener.stop()
        pool = ctx.get("pool")
        if pool is not None:
            # close() waits for every connection to come back; one held by a task that
            # never ends (or lost mid-query) must not keep a stopping worker alive.
            try:
                await asyncio.wait_for(pool.close(), SHUTDOWN_POOL_SECONDS)
            except TimeoutError:
                log.warning("database pool did not close in time; terminated")
                pool.terminate()

    interval = max(1, min(settings.worker.outbox_relay_interval_seconds, 30))
    sla_every = max(1, min(settings.sla.sweep_interval_seconds, 30))
    routing_every = max(1, min(settings.routing.sweep_interval_seconds, 30))
    inbound_every = max(1, min(settings.worker.inbound_sweep_seconds, 30))
    return ResilientWorker(
        functions=[
            func(channel_jobs.deliver_outbox, name="deliver_outbox", timeout=120),
            func(channel_jobs.process_inbound_event, name="process_inbound_event", timeout=120),
            func(sla_jobs.check_ticket, name=sla_jobs.CHECK_JOB, timeout=60),
            func(routing_jobs.route_ticket, name=routing_jobs.ROUTE_JOB, timeout=60),
            func(routing_jobs.assign_waiting, name=routing_jobs.ASSIGN_JOB, timeout=120),
        ],
        cron_jobs=[
            cron(
                channel_jobs.relay_outbox,
                name="relay_outbox",
                second=set(range(0, 60, interval)),
                run_at_startup=True,
                unique=True,
                timeout=60,
            ),
            cron(
                channel_jobs.sweep_inbound_events,
                name="sweep_inbound_events",
                second=set(range(7 % inbound_every, 60, inbound_every)),
                run_at_startup=True,
                unique=True,
                timeout=60,
            ),
            cron(
                channel_jobs.retry_attachment_fetches,
                name="retry_attachment_fetches",
                second={23, 53},
                run_at_startup=True,
                unique=True,
                timeout=300,
            ),
            cron(
                routing_jobs.sweep,
                name="routing_sweep",
                second=set(range(1 % routing_every, 60, routing_every)),
                run_at_startup=True,
                unique=True,
                timeout=60,
            ),
            cron(
                csat_jobs.sweep,
                name="relationship_sweep",
                second={11, 41},
                run_at_startup=True,
                unique=True,
                timeout=120,
            ),
            cron(
                csat_jobs.lifecycle,
                name="lifecycle_sweep",
                minute={17},
                second={0},
                unique=True,
                timeout=300,
            ),
            cron(
                sla_jobs.sweep,
                name="sla_sweep",
                second=set(range(3 % sla_every, 60, sla_every)),
                run_at_startup=True,
                unique=True,
                timeout=60,
            ),
        ],
        # Our own client (read timeouts; arq's pool has none); reconnects on its own.
        redis_pool=worker_redis(settings.redis_url),
        ctx={"settings": settings},
        on_startup=startup,
        on_shutdown=shutdown,
        poll_delay=settings.worker.poll_delay_seconds,
        handle_signals=handle_signals,
        burst=burst,
        max_jobs=settings.worker.max_jobs,
        job_timeout=120,
        keep_result=3600,
    )
