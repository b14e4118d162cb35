"""Routing jobs: route one ticket, and the sweep that finds tickets nobody routed (a lost
job, a killed worker) and assigns tickets waiting in queues once agents are available."""

from __future__ import annotations

import logging
import time
from typing import Any

from helpdesk.channels import outbox
from helpdesk.config import Settings
from helpdesk.routing import assign, queries, service

log = logging.getLogger(__name__)

ROUTE_JOB = "route_ticket"
ASSIGN_JOB = "assign_waiting"
WAITING_BATCH = 200


def route_job_id(ticket_id: int) -> str:
    """One job per ticket per half minute: a sweep re-enqueues a lost one, never floods."""
    return f"route:{ticket_id}:{int(time.time()) // 30}"


async def route_ticket(ctx: dict[str, Any], ticket_id: int) -> int | None:
    """Route one ticket; idempotent (a routed ticket is left alone)."""
    settings: Settings = ctx["settings"]
    async with ctx["pool"].acquire() as conn:
        async with conn.transaction():
            routed = await service.route(conn, ticket_id, settings)
        if routed is None:
            return None
        await service.count_hits(conn, routed)
    for outbox_id in routed.outbox_ids:
        await ctx["redis"].enqueue_job(
            outbox.DELIVER_JOB, outbox_id, _job_id=outbox.job_id(outbox_id, 0)
        )
    log.info(
        "ticket routed",
        extra={"ticket_id": ticket_id, "group_id": routed.group_id, "assignee": routed.assignee_id},
    )
    return routed.group_id


async def assign_waiting(ctx: dict[str, Any], group_ids: list[int] | None = None) -> int:
    """Give waiting tickets (oldest due first) to agents who can take them now."""
    assigned = 0
    async with ctx["pool"].acquire() as conn:
        if group_ids is None:
            group_ids = [r["group_id"] for r in await conn.fetch(queries.GROUPS_WITH_ONLINE_AGENTS)]
        if not group_ids:
            return 0
        for ticket_id in await assign.waiting_tickets(conn, group_ids, WAITING_BATCH):
            async with conn.transaction():
                locked = await conn.fetchval(queries.LOCK_UNASSIGNED, ticket_id)
                if locked is not None and await assign.assign(conn, ticket_id) is not None:
                    assigned += 1
    return assigned


async def sweep(ctx: dict[str, Any]) -> int:
    """Queue every ticket not routed yet, then fill available agents from the queues."""
    async with ctx["pool"].acquire() as conn:
        pending = await service.unrouted(conn)
    for ticket_id in pending:
        await ctx["redis"].enqueue_job(ROUTE_JOB, ticket_id, _job_id=route_job_id(ticket_id))
    await assign_waiting(ctx)
    return len(pending)
