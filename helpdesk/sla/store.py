"""A ticket's stored SLA: reading its history, writing its clocks, and telling the workers
when its next instant comes due before the sweep would see it.

Used by `start` (a new ticket's first clocks) and `refresh` (every later change); the
jobs listen on `DUE_SOON_CHANNEL` and look `sweep_horizon` ahead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from helpdesk.config import SlaSettings
from helpdesk.sla import queries
from helpdesk.sla.clocks import SlaEvent
from helpdesk.sla.replay import ClockKey

# NOTIFY channel: a ticket's next SLA instant came within the sweep's horizon.
DUE_SOON_CHANNEL = "helpdesk_sla_due_soon"


def sweep_horizon(sla: SlaSettings) -> timedelta:
    """How far ahead checks are scheduled: two sweep intervals, so none falls between."""
    return timedelta(seconds=2 * sla.sweep_interval_seconds)


@dataclass(frozen=True)
class History:
    events: list[SlaEvent]
    clocks: dict[ClockKey, Any]  # stored clock rows by (clock, cycle)


async def history(conn: asyncpg.Connection, ticket: Mapping[str, Any]) -> History:
    """The ticket's events as the engine replays them and its stored clocks; read after
    the ticket row is locked."""
    row = await conn.fetchrow(queries.HISTORY, ticket["id"])
    return History(
        events=_events(ticket, row["events"]),
        clocks={(c["clock"], c["cycle"]): c for c in row["clocks"]},
    )


def _events(ticket: Mapping[str, Any], rows: list[tuple[Any, ...]]) -> list[SlaEvent]:
    """The engine's events from stored (at, type, status, origin) rows, in order."""
    events: list[SlaEvent] = []
    for at, type_, status, origin in rows:
        if not events and type_ != "created":
            events.append(SlaEvent(at=ticket["created_at"], type="created"))
        events.append(SlaEvent(at=at, type=type_, status=status, origin=origin))
        if type_ == "status" and status == "closed":
            break  # closed is final: nothing after it counts
    if not events:  # a ticket from before the engine: created is all we know
        events.append(SlaEvent(at=ticket["created_at"], type="created"))
    return events


# The stored values of one clock, in the order `queries.UPSERT_CLOCKS` takes them as arrays.
CLOCK_VALUES = (
    "target_minutes",
    "business_time",
    "started_at",
    "due_at",
    "warn_at",
    "met_at",
    "breached",
    "breached_at",
    "paused",
    "counted_seconds",
)


async def upsert_clocks(
    conn: asyncpg.Connection,
    ticket_id: int,
    changed: list[tuple[ClockKey, dict[str, Any]]],
    now: datetime,
    *,
    created_event: bool = False,
    origin: str | None = None,
    status: str | None = None,
) -> None:
    """One statement for every clock that moved (and a new ticket's `created` event)."""
    extra: list[Any] = [origin, status] if created_event else []
    await conn.execute(
        queries.START_CLOCKS if created_event else queries.UPSERT_CLOCKS,
        ticket_id,
        *([values[name] for _, values in changed] for name in CLOCK_VALUES),
        [key[0] for key, _ in changed],
        [key[1] for key, _ in changed],
        now,
        *extra,
    )


def due_soon(next_check: datetime | None, now: datetime, sla: SlaSettings) -> bool:
    """Whether `next_check` falls within the sweep's horizon from `now`."""
    return next_check is not None and next_check <= now + sweep_horizon(sla)


async def notify_due_soon(conn: asyncpg.Connection, ticket_id: int) -> None:
    """Due before the sweep would see it: workers listening schedule the exact check once
    this transaction commits (NOTIFY is delivered on commit only)."""
    await conn.execute(queries.NOTIFY, DUE_SOON_CHANNEL, str(ticket_id))
