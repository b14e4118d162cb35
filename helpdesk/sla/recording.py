"""What moves a clock, recorded as `sla_events` in the transaction of the change.

Call `record` (or `record_status_change`) after the change is written, then
`refresh.refresh` (the writer's callers do both through `tickets.changes.tell_sla`).
Replies are special (`docs/sla.md` 1.4):
- An agent reply whose delivery failed for good is withdrawn (`withdraw_reply`, in the
  transaction that fails it): its event is kept as `agent_reply_withdrawn` and left out,
  so the clock it met is open again from its original start (a breach stays sticky).
- A retried reply counts again by a new `agent_reply` at the instant it is accepted
  again (`reply_retried`).
"""

from __future__ import annotations

from datetime import datetime

import asyncpg

from helpdesk.config import SlaSettings
from helpdesk.sla import queries
from helpdesk.sla.refresh import refresh
from helpdesk.tickets import events, writer


async def record(
    conn: asyncpg.Connection,
    ticket_id: int,
    type_: str,
    at: datetime,
    *,
    status: str | None = None,
    message_id: int | None = None,
    origin: str | None = None,
) -> None:
    """Append one event; call `refresh` after the change is written."""
    await conn.execute(queries.RECORD_EVENT, ticket_id, at, type_, status, message_id, origin)


async def record_status_change(
    conn: asyncpg.Connection, ticket_id: int, old: str, new: str, at: datetime
) -> bool:
    """A status edit in the engine's words (solved, reopened, or a plain status). True
    when it reopened a solved ticket: a bad experience for the customer, which the caller
    records (`customers.relationship.reopened_after_solved`)."""
    if old == new:
        return False
    if new == "solved":
        await record(conn, ticket_id, "solved", at)
    elif old == "solved" and new in ("new", "open"):
        await record(conn, ticket_id, "reopened", at)
        return True
    else:
        await record(conn, ticket_id, "status", at, status=new)
    return False


async def withdraw_reply(
    conn: asyncpg.Connection,
    message_id: int,
    reason: str | None,
    sla: SlaSettings,
    *,
    now: datetime | None = None,
) -> bool:
    """Withdraw a public agent reply whose delivery failed for good (docs/sla.md 1.4); call it in
    the transaction that marks the delivery failed, after marking it.

    At once and together: its `agent_reply` event becomes `agent_reply_withdrawn`, the
    ticket's `first_responded_at` falls back to the earliest reply still standing (or
    none), a `reply_withdrawn` ticket event records it, and the clocks are recomputed,
    so the one it met is open again from its original start (a breach stays sticky).
    False, changing nothing, when the message counted as no response (a note, an
    acknowledgement) or was withdrawn already: safe to call twice.
    """
    ticket_id = await conn.fetchval(queries.MESSAGE_TICKET, message_id)
    if ticket_id is None:
        return False
    ticket = await conn.fetchrow(queries.LOCKED_TICKET, ticket_id)
    withdrawn = await conn.fetch(queries.WITHDRAW_REPLY, message_id)
    if not withdrawn:
        return False
    first = ticket["first_responded_at"]
    if first is not None and any(row["at"] <= first for row in withdrawn):
        first = await conn.fetchval(queries.STANDING_FIRST_RESPONSE, ticket_id)
        # Recorded below whether or not the first response moved.
        await writer.update(conn, ticket_id, {"first_responded_at": first}, None)
    await events.record(
        conn,
        ticket_id,
        "reply_withdrawn",
        {
            "message_id": message_id,
            "reason": reason,
            "replied_at": min(row["at"] for row in withdrawn).isoformat(),
            "first_responded_at": {
                "from": _iso(ticket["first_responded_at"]),
                "to": _iso(first),
            },
        },
    )
    await refresh(conn, ticket_id, sla, now=now)
    return True


async def reply_retried(
    conn: asyncpg.Connection, ticket_id: int, message_id: int, sla: SlaSettings
) -> datetime | None:
    """A withdrawn reply sent again counts again, at the instant it is accepted again
    (docs/sla.md 1.4), not at the failed attempt's; the ticket is locked by the caller.
    Returns that instant, or None for a message that never counted as a response."""
    # Failed before withdrawals were recorded: withdraw it now.
    await conn.execute(queries.WITHDRAW_REPLY, message_id)
    if not await conn.fetchval(queries.MESSAGE_COUNTED, message_id):
        return None
    at: datetime = await conn.fetchval(queries.NOW)
    await record(conn, ticket_id, "agent_reply", at, message_id=message_id)
    await writer.response_counted(conn, ticket_id, at)  # the caller records `reply_retried`
    await refresh(conn, ticket_id, sla, now=at)
    return at


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
