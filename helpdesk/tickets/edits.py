"""An agent's edits of a ticket (fields, with optimistic concurrency) and merges.

Each use case takes a connection inside the caller's transaction; the row changes go
through `tickets/writer.py`, the SLA hears what moved (`tickets/changes.py`).
"""

from __future__ import annotations

import asyncpg
import msgspec

from helpdesk.agents.models import Principal
from helpdesk.agents.scope import may_use_group
from helpdesk.config import SlaSettings
from helpdesk.errors import Conflict, Forbidden, InvalidInput, NotFound, VersionMismatch
from helpdesk.routing import service as routing_service
from helpdesk.sla import recording as sla_recording
from helpdesk.sla import refresh as sla_refresh
from helpdesk.tickets import changes as ticket_changes
from helpdesk.tickets import queries, writer
from helpdesk.tickets.models import TicketOut, TicketUpdate
from helpdesk.tickets.queries import fetch_ticket, get_in_scope, ticket_out


async def check_assignment(
    conn: asyncpg.Connection, principal: Principal, group_id: int | None, assignee_id: int | None
) -> None:
    """400 for an unknown group or an unknown or inactive assignee, 403 for a group or
    an assignee outside a partner's groups (a partner's ticket stays in its groups)."""
    if group_id is not None:
        if not await conn.fetchval(queries.GROUP_EXISTS, group_id):
            raise InvalidInput("Unknown group", field="group_id")
        if not may_use_group(principal, group_id):
            raise Forbidden("You may not move tickets into this group")
    elif principal.is_partner:
        raise Forbidden("Partner agents must keep tickets in one of their groups")
    if assignee_id is not None:
        agent = await conn.fetchrow(queries.ASSIGNEE, assignee_id)
        if agent is None or not agent["active"]:
            raise InvalidInput("Unknown or inactive agent", field="assignee_id")
        if principal.is_partner and not set(agent["group_ids"]) & set(principal.group_ids):
            raise Forbidden("You may only assign agents of your own groups")


async def update_ticket(
    conn: asyncpg.Connection,
    principal: Principal,
    ticket_id: int,
    data: TicketUpdate,
    expected_version: int,
    *,
    sla: SlaSettings,
) -> TicketOut:
    """Change fields if the caller saw the current version (optimistic concurrency)."""
    ticket = await get_in_scope(conn, principal, ticket_id, for_update=True)
    if ticket.version != expected_version:
        raise VersionMismatch(
            f"Ticket is at version {ticket.version}, not {expected_version}",
            current_version=ticket.version,
        )
    if ticket.status == "closed":
        raise Conflict("The ticket is closed and can no longer change")
    requested = {
        name: getattr(data, name)
        for name in ("status", "priority", "category", "group_id", "assignee_id", "tags")
        if getattr(data, name) is not msgspec.UNSET
    }
    if "tags" in requested:
        requested["tags"] = sorted(set(requested["tags"]))
    changes = {
        name: {"from": getattr(ticket, name), "to": value}
        for name, value in requested.items()
        if getattr(ticket, name) != value
    }
    if not changes:
        return ticket
    new = {name: change["to"] for name, change in changes.items()}
    if new.keys() & {"group_id", "assignee_id"}:
        # Only what changes is checked: a new group, and a newly named assignee.
        await check_assignment(
            conn, principal, new.get("group_id", ticket.group_id), new.get("assignee_id")
        )
    updated, moved = await writer.apply_edit(
        conn, ticket, changes, actor_agent_id=principal.agent_id, reason=data.reason
    )
    if "category" in changes:
        await routing_service.record_category_change(
            conn, ticket.id, changes["category"]["from"], changes["category"]["to"]
        )
    now = await conn.fetchval(queries.NOW)
    if await ticket_changes.tell_sla(conn, moved, sla, now=now):
        return ticket_out(await conn.fetchrow(queries.TICKET_BY_ID, ticket.id))
    return updated


async def merge_tickets(
    conn: asyncpg.Connection,
    principal: Principal,
    source_id: int,
    target_id: int,
    reason: str | None,
    *,
    sla: SlaSettings,
) -> TicketOut:
    """Move every message of `source_id` into `target_id` and close the source with a link.

    The source's SLA clocks freeze (closed, no breach); the target keeps its own clocks."""
    if source_id == target_id:
        raise InvalidInput("A ticket cannot be merged into itself", field="into_ticket_id")
    # Lock both rows in id order so two opposite merges cannot deadlock.
    first, second = sorted((source_id, target_id))
    locked = {
        t.id: t
        for t in [
            await fetch_ticket(conn, principal, first, for_update=True),
            await fetch_ticket(conn, principal, second, for_update=True),
        ]
        if t is not None
    }
    if source_id not in locked:
        raise NotFound(f"Ticket {source_id} not found")
    if target_id not in locked:
        raise NotFound(f"Ticket {target_id} not found")
    source, target = locked[source_id], locked[target_id]
    if source.status == "closed" or target.status == "closed":
        raise Conflict("Closed tickets cannot be merged")
    moved = await conn.fetchval(queries.MOVE_MESSAGES, source.id, target.id)
    await conn.execute(queries.MOVE_OUTBOX, source.id, target.id)
    merged = await writer.merge(
        conn, source, target, moved, actor_agent_id=principal.agent_id, reason=reason
    )
    now = await conn.fetchval(queries.NOW)
    await sla_recording.record(conn, source.id, "status", now, status="closed")
    await sla_refresh.refresh(conn, source.id, sla, now=now)
    return merged
