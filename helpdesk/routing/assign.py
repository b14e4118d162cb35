"""Assignment of a ticket to an available agent of its group, in the database.

Strategies per group: `round_robin` (the member assigned least recently), `least_loaded`
(the fewest open assigned tickets), `manual` (never automatic). Only active, `online`
members with the needed skills (language, channel, category; an empty skill list means
any) and below their capacity are picked.

Concurrency without in-process state: an advisory lock per group serialises the choices
in that group (so round robin is fair with several workers), and the chosen agent's row
is locked and their load counted again before the ticket is written (so no agent goes
over capacity even when groups overlap). The ticket row is locked by the caller and only
an unassigned ticket is assigned: each ticket is assigned exactly once.
"""

from __future__ import annotations

import asyncpg

from helpdesk.routing import queries
from helpdesk.tickets import writer


async def assign(conn: asyncpg.Connection, ticket_id: int) -> int | None:
    """Assign the (locked) ticket to the best available agent; returns the agent id, or
    None when the group is manual or nobody can take it now (it waits in the queue)."""
    ticket = await conn.fetchrow(queries.ASSIGNABLE_TICKET, ticket_id)
    if (
        ticket is None
        or ticket["assignee_id"] is not None
        or ticket["status"] not in ("new", "open")
        or ticket["assignment_strategy"] == "manual"
    ):
        return None
    await conn.execute(queries.LOCK_GROUP, f"assign:{ticket['group_id']}")
    candidates = await conn.fetch(
        queries.CANDIDATES_ROUND_ROBIN
        if ticket["assignment_strategy"] == "round_robin"
        else queries.CANDIDATES_LEAST_LOADED,
        ticket["group_id"],
        ticket["language"],
        ticket["channel"],
        ticket["category"],
    )
    for candidate in candidates:
        agent = await conn.fetchrow(queries.LOCKED_AGENT, candidate["id"])
        if (
            agent is None
            or not agent["active"]
            or agent["availability"] != "online"
            or agent["load"] >= agent["capacity"]
        ):
            continue  # changed while we waited for the lock
        await writer.update(
            conn,
            ticket_id,
            {"assignee_id": agent["id"]},
            "assigned",
            {
                "assignee_id": agent["id"],
                "strategy": ticket["assignment_strategy"],
                "load_before": agent["load"],
            },
        )
        await conn.execute(queries.MARK_ASSIGNED, agent["id"])
        return int(agent["id"])
    return None


async def waiting_tickets(conn: asyncpg.Connection, group_ids: list[int], limit: int) -> list[int]:
    """Unassigned tickets waiting in these groups' queues, oldest due first."""
    rows = await conn.fetch(queries.WAITING_TICKETS, group_ids, limit)
    return [r["id"] for r in rows]
