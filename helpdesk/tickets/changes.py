"""Ticket changes as use cases: write through `tickets.writer`, then tell SLA what moved.

The writer sits below SLA (SLA stores its own columns through it), so it cannot call
SLA without an import cycle; instead it returns a `Moved`, and this layer, above both,
turns it into the SLA engine's words. A change that needs more than that (routing
computes the clocks before its single UPDATE; an escalation level re-chooses the policy
after its actions) talks to SLA itself, next to its call of the writer.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg

from helpdesk.config import SlaSettings
from helpdesk.customers import relationship
from helpdesk.sla import recording as sla_recording
from helpdesk.sla import refresh as sla_refresh
from helpdesk.tickets.writer import Moved


async def tell_sla(
    conn: asyncpg.Connection, moved: Moved, sla: SlaSettings, *, now: datetime
) -> bool:
    """A status change becomes an SLA event (solved, reopened or a plain status), and a
    solved ticket reopened a bad experience for its customer; a status change or a
    changed policy condition (priority, category, group: docs/sla.md 1.7) recomputes the
    clocks, re-choosing the policy for the latter. Returns whether the clocks were
    recomputed (the ticket row changed again: read it anew)."""
    if moved.status is not None:
        reopened = await sla_recording.record_status_change(
            conn, moved.ticket_id, *moved.status, now
        )
        if reopened:
            await relationship.reopened_after_solved(conn, moved.ticket_id, "reopened by an agent")
    if not moved.touches_sla:
        return False
    await sla_refresh.refresh(conn, moved.ticket_id, sla, now=now, reselect=moved.reselect)
    return True
