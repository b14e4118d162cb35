"""Every change to a ticket row, in one module (issue 20): the only code that writes `tickets`.

Two kinds of write, kept apart on purpose:

- **Changes someone made** (an agent's edit, routing, assignment, escalation, a reply, a
  merge): they bump `version`, so an agent holding an older copy gets 412 on `If-Match`
  instead of overwriting what moved, set `updated_at`, and record a typed `TicketEvent`
  in the same call, so no change goes without its line in the ticket's history.
- **Upkeep of derived columns** (the SLA engine's due dates and policy, the CSAT rating
  mirrored from the survey, where a category came from): no version bump, no
  `updated_at`, no event. These columns follow from other rows; bumping `version` for
  them would make the clock's own bookkeeping (which runs on every refresh and sweep)
  fail an agent's edit that conflicts with nothing they can see.

The statements themselves are in `tickets/queries.py` (with the rest of the domain's
SQL); this module says when each runs and what goes with it.

This module is deliberately low in the import graph: it imports only `tickets.events`,
`tickets.models`, `tickets.queries`, the db helpers and errors, so SLA, routing, customers,
CSAT and channels can all call it without a cycle. It therefore never calls SLA itself:
a change the SLA clocks depend on is returned as a `Moved`, and the use case above
(`tickets.changes.tell_sla`) hands it to the SLA engine. Every function runs in the
caller's transaction and never commits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from helpdesk.tickets import events, queries
from helpdesk.tickets.events import TicketEvent
from helpdesk.tickets.models import TicketOut
from helpdesk.tickets.queries import ticket_out

# The fields of an agent's edit whose change re-chooses the SLA policy (its conditions
# read them: docs/sla.md 1.7).
POLICY_FIELDS = frozenset({"priority", "category", "group_id"})


@dataclass(frozen=True)
class Moved:
    """What a write changed that the SLA clocks depend on; the caller hands it to SLA.

    A description rather than a call, so this module needs no import of `sla` (which
    itself writes tickets through here)."""

    ticket_id: int
    status: tuple[str, str] | None = None  # (from, to) when the status changed
    reselect: bool = False  # a field the policy's conditions read changed

    @property
    def touches_sla(self) -> bool:
        return self.status is not None or self.reselect


# --- changes someone made: version bumped, event recorded ------------------------------------


async def open_ticket(
    conn: asyncpg.Connection,
    *,
    subject: str,
    channel: str,
    channel_account: str,
    customer_id: int,
    conversation_id: int | None,
    priority: str,
    category: str | None,
    group_id: int | None,
    assignee_id: int | None,
    tags: Sequence[str],
    at: datetime,
    sla_columns: Mapping[str, Any],
) -> int:
    """A new ticket created at `at`, its conversation (if any) pointing at it; its id.

    `sla_columns` are the SLA engine's first columns (policy, due dates), written with the
    row so a new ticket is one row version, not an insert and an update; the caller (the
    intake) then records `created` and starts the clocks. `new` unless assigned at once
    (`open`). No version bump: the row starts at its first version."""
    ticket_id: int = await conn.fetchval(
        queries.new_ticket(sla_columns),
        subject,
        channel,
        channel_account,
        customer_id,
        conversation_id,
        priority,
        category,
        group_id,
        assignee_id,
        sorted(set(tags)),
        at,
        *sla_columns.values(),
    )
    return ticket_id


async def reopen_for_customer(
    conn: asyncpg.Connection, ticket_id: int, at: datetime | None, *, unwritten: bool
) -> asyncpg.Record:
    """The customer wrote (or called) again at `at` (None: now): a solved or pending
    ticket is open again, unless what arrived is `unwritten` (a notice, an auto-reply:
    nobody wrote it, so nothing reopens). `version` moves either way, since the ticket
    changed under an agent's copy. Returns the locked row with `sla_fired`, which the
    SLA refresh takes instead of reading the row again. The caller records the event
    (it comes with the message, in the intake's one statement)."""
    row: asyncpg.Record = await conn.fetchrow(queries.REOPEN_TICKET, ticket_id, at, unwritten)
    return row


async def responded(conn: asyncpg.Connection, ticket_id: int, at: datetime) -> None:
    """An agent responded at `at` (a public reply, an outbound public call): the first
    response if none was yet, a new ticket becomes open. The caller records the event
    (`replied`, `call_logged`)."""
    await conn.execute(queries.FIRST_RESPONSE, ticket_id, at)


async def touched(conn: asyncpg.Connection, ticket_id: int) -> None:
    """Activity that changes no field an agent edits (a note, an internal record of a
    call): `updated_at` moves, `version` does not, so a colleague's If-Match still holds.
    The caller records the event."""
    await conn.execute(queries.TOUCH_TICKET, ticket_id)


async def update(
    conn: asyncpg.Connection,
    ticket_id: int,
    columns: Mapping[str, Any],
    event: TicketEvent | None,
    changes: Mapping[str, Any] | None = None,
    *,
    actor_agent_id: int | None = None,
    reason: str | None = None,
) -> None:
    """Set `columns` to the given values, bump `version`, and record `event` (None: the
    caller records it itself, e.g. because it is recorded whether or not the row moved)."""
    await conn.execute(queries.update_ticket(columns), ticket_id, *columns.values())
    if event is not None:
        await events.record(
            conn, ticket_id, event, changes, actor_agent_id=actor_agent_id, reason=reason
        )


async def apply_edit(
    conn: asyncpg.Connection,
    ticket: TicketOut,
    changes: Mapping[str, Mapping[str, Any]],
    *,
    actor_agent_id: int | None,
    reason: str | None,
) -> tuple[TicketOut, Moved]:
    """An agent's edit of the locked `ticket`: `changes` maps each changed field (status,
    priority, category, group_id, assignee_id, tags) to `{"from": ..., "to": ...}`.

    The status moves `solved_at` / `closed_at` with it. Records `updated` with `changes`
    and returns the new row and what SLA must hear about."""
    new = {name: change["to"] for name, change in changes.items()}
    status = new.get("status", ticket.status)
    row = await conn.fetchrow(
        queries.APPLY_EDIT,
        ticket.id,
        status,
        new.get("priority", ticket.priority),
        new.get("category", ticket.category),
        new.get("group_id", ticket.group_id),
        new.get("assignee_id", ticket.assignee_id),
        new.get("tags", ticket.tags),
    )
    await events.record(
        conn, ticket.id, "updated", changes, actor_agent_id=actor_agent_id, reason=reason
    )
    moved = Moved(
        ticket.id,
        status=(ticket.status, status) if "status" in changes else None,
        reselect=bool(changes.keys() & POLICY_FIELDS),
    )
    return ticket_out(row), moved


async def reply_sent(
    conn: asyncpg.Connection,
    ticket_id: int,
    message_id: int,
    at: datetime,
    *,
    actor_agent_id: int | None,
) -> None:
    """A public agent reply written at `at`: the first response if none was yet, a new
    ticket becomes open; records `replied`."""
    await responded(conn, ticket_id, at)
    await events.record(
        conn, ticket_id, "replied", {"message_id": message_id}, actor_agent_id=actor_agent_id
    )


async def note_added(
    conn: asyncpg.Connection, ticket_id: int, message_id: int, *, actor_agent_id: int | None
) -> None:
    """An internal note: the ticket's activity time moves, its `version` does not (a note
    changes no field an agent edits, so it must not fail a colleague's If-Match); records
    `noted`."""
    await touched(conn, ticket_id)
    await events.record(
        conn, ticket_id, "noted", {"message_id": message_id}, actor_agent_id=actor_agent_id
    )


async def response_counted(conn: asyncpg.Connection, ticket_id: int, at: datetime) -> None:
    """A reply counts as a response from `at` (a retried delivery accepted again): the
    first response if none stands. The caller records the event."""
    await conn.execute(queries.COUNT_RESPONSE, ticket_id, at)


async def merge(
    conn: asyncpg.Connection,
    source: TicketOut,
    target: TicketOut,
    messages_moved: int,
    *,
    actor_agent_id: int | None,
    reason: str | None,
) -> TicketOut:
    """Close `source` with a link to `target` and give `target` the earlier first response
    of the two; records `merged_into` and `merged_from`. Both rows are locked by the
    caller, who moved the messages."""
    await conn.execute(queries.CLOSE_MERGED_SOURCE, source.id, target.id)
    row = await conn.fetchrow(queries.MERGE_TARGET, target.id, source.first_responded_at)
    await events.record(
        conn,
        source.id,
        "merged_into",
        {"into_ticket_id": target.id, "messages_moved": messages_moved},
        actor_agent_id=actor_agent_id,
        reason=reason,
    )
    await events.record(
        conn,
        target.id,
        "merged_from",
        {"from_ticket_id": source.id, "messages_moved": messages_moved},
        actor_agent_id=actor_agent_id,
        reason=reason,
    )
    return ticket_out(row)


async def unassign_on_offline(conn: asyncpg.Connection, agent_id: int) -> list[int]:
    """The agent went offline: their untouched `new` tickets in groups that say so go back
    to the queue (`unassigned`, by them). Returns those tickets."""
    rows = await conn.fetch(queries.UNASSIGN_ON_OFFLINE, agent_id)
    returned = [int(r["id"]) for r in rows]
    if returned:
        await events.record_many(
            conn,
            returned,
            "unassigned",
            {"reason": "assignee went offline"},
            actor_agent_id=agent_id,
        )
    return returned


async def move_to_customer(
    conn: asyncpg.Connection,
    source_customer_id: int,
    target_customer_id: int,
    *,
    actor_agent_id: int | None,
    reason: str | None,
) -> list[int]:
    """A customer merge: every ticket of the source now belongs to the target
    (`customer_merged` on each). Returns the moved tickets' ids in order."""
    rows = await conn.fetch(queries.MOVE_TO_CUSTOMER, source_customer_id, target_customer_id)
    ticket_ids = sorted(int(r["id"]) for r in rows)
    await events.record_many(
        conn,
        ticket_ids,
        "customer_merged",
        {"from_customer_id": source_customer_id, "into_customer_id": target_customer_id},
        actor_agent_id=actor_agent_id,
        reason=reason,
    )
    return ticket_ids


# --- upkeep of derived columns: no version bump, no event -----------------------------------


async def write_sla_columns(
    conn: asyncpg.Connection, ticket_id: int, columns: Mapping[str, Any]
) -> None:
    """Store what the SLA engine derived (due and warn instants, next check, policy).

    No `version` bump and no `updated_at`: the clocks are recomputed on every refresh and
    sweep, by the worker as much as by agents' changes. An agent's If-Match guards the
    fields they edit; clock upkeep running meanwhile conflicts with none of them, so it
    must not make their save fail. Nor is it an event: what moved the clock has its own.
    """
    if columns:
        await conn.execute(queries.set_columns(columns), ticket_id, *columns.values())


async def recheck_sla_now(conn: asyncpg.Connection, message_id: int) -> None:
    """Make the SLA check of the message's ticket due now (a reply failed without the SLA
    settings at hand: the sweep recomputes the clocks). Clock upkeep: no version bump."""
    await conn.execute(queries.RECHECK_SLA_NOW, message_id)


async def retarget_sla(
    conn: asyncpg.Connection, *, policy_id: int | None = None, calendar_id: int | None = None
) -> None:
    """Open tickets under an edited SLA policy (or a policy using an edited calendar) are
    measured against it from now on: the policy time moves to now and the check is due.
    Clock upkeep, as `write_sla_columns`: no version bump."""
    if (policy_id is None) == (calendar_id is None):
        raise ValueError("retarget by exactly one of policy_id and calendar_id")
    await conn.execute(
        queries.retarget_sla(by_calendar=policy_id is None),
        policy_id if policy_id is not None else calendar_id,
    )


async def set_csat_rating(conn: asyncpg.Connection, ticket_id: int, rating: int) -> None:
    """Mirror the survey's rating on the ticket (the survey row is the record; its
    `csat_rated` event is recorded by the caller only when the rating changed). No
    version bump: the customer's click must not fail an agent's edit."""
    await conn.execute(queries.SET_CSAT_RATING, ticket_id, rating)


async def mark_category_by_agent(conn: asyncpg.Connection, ticket_id: int) -> None:
    """The category is now the agent's (routing never re-classifies it). Written with the
    agent's edit, which bumped `version` already."""
    await conn.execute(queries.CATEGORY_BY_AGENT, ticket_id)
