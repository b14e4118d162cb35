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

from helpdesk.tickets import writer

# An agent's load: open tickets assigned to them (tickets_assignee_open_idx).
_LOAD = (
    "(SELECT count(*) FROM tickets l WHERE l.assignee_id = a.id"
    " AND l.status IN ('new', 'open', 'pending', 'on_hold'))"
)


async def assign(conn: asyncpg.Connection, ticket_id: int) -> int | None:
    """Assign the (locked) ticket to the best available agent; returns the agent id, or
    None when the group is manual or nobody can take it now (it waits in the queue)."""
    ticket = await conn.fetchrow(
        """SELECT t.id, t.group_id, t.assignee_id, t.status, t.language, t.channel,
                  t.category, g.assignment_strategy
           FROM tickets t JOIN groups g ON g.id = t.group_id
           WHERE t.id = $1""",
        ticket_id,
    )
    if (
        ticket is None
        or ticket["assignee_id"] is not None
        or ticket["status"] not in ("new", "open")
        or ticket["assignment_strategy"] == "manual"
    ):
        return None
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        f"assign:{ticket['group_id']}",
    )
    order = (
        "a.last_assigned_at NULLS FIRST, a.id"
        if ticket["assignment_strategy"] == "round_robin"
        else f"{_LOAD}, a.last_assigned_at NULLS FIRST, a.id"
    )
    candidates = await conn.fetch(
        f"""SELECT a.id FROM agents a JOIN agent_groups m ON m.agent_id = a.id
            WHERE m.group_id = $1 AND a.active AND a.availability = 'online'
              AND a.role IN ('agent', 'supervisor', 'partner')
              AND (cardinality(a.skill_languages) = 0 OR $2::text = ANY(a.skill_languages))
              AND (cardinality(a.skill_channels) = 0 OR $3::text = ANY(a.skill_channels))
              AND (cardinality(a.skill_categories) = 0 OR $4::text = ANY(a.skill_categories))
              AND {_LOAD} < a.capacity
            ORDER BY {order}""",
        ticket["group_id"],
        ticket["language"],
        ticket["channel"],
        ticket["category"],
    )
    for candidate in candidates:
        agent = await conn.fetchrow(
            f"""SELECT a.id, a.capacity, a.availability, a.active, {_LOAD} AS load
                FROM agents a WHERE a.id = $1 FOR UPDATE""",
            candidate["id"],
        )
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
        await conn.execute(
            "UPDATE agents SET last_assigned_at = clock_timestamp() WHERE id = $1", agent["id"]
        )
        return int(agent["id"])
    return None


async def waiting_tickets(conn: asyncpg.Connection, group_ids: list[int], limit: int) -> list[int]:
    """Unassigned tickets waiting in these groups' queues, oldest due first."""
    rows = await conn.fetch(
        """SELECT t.id FROM tickets t JOIN groups g ON g.id = t.group_id
           WHERE t.group_id = ANY($1::bigint[]) AND t.assignee_id IS NULL
             AND t.status IN ('new', 'open') AND g.assignment_strategy <> 'manual'
             AND t.routed_at IS NOT NULL
           ORDER BY t.next_sla_due_at NULLS LAST, t.created_at, t.id
           LIMIT $2""",
        group_ids,
        limit,
    )
    return [r["id"] for r in rows]
