"""The SLA engine on the database: events in, clocks out, escalations fired once.

Everything that moves a clock appends an `sla_events` row (`record`) in the same
transaction as the change, then `refresh` replays the ticket's events through the pure
engine (`helpdesk.sla.clocks`, the same code as `helpdesk sla compute`) and stores each
clock, the ticket's `next_sla_due_at` / `next_sla_warn_at` and the next instant an
escalation level is due (`next_sla_check_at`, what the sweep and the precise jobs read).

Rules kept here rather than in the pure engine (design page 1.6-1.7):
- A breach is sticky: once stored, a recomputation (priority lowered, reply withdrawn,
  calendar edited) never clears it nor moves its date.
- A met clock keeps its verdict when the policy changes; open clocks are recomputed from
  their original start with the new targets, and a breach the new targets would date in
  the past is dated at the change (`retargeted_at`).
- An agent reply whose delivery failed for good is left out of the events, so the clock
  it met is open again from its original start.
- Each clock uses the policy's calendar when that target counts business time, else 24x7
  in `sla.timezone`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import msgspec

from helpdesk.config import SlaSettings
from helpdesk.sla.calendar import BusinessCalendar, InvalidCalendar
from helpdesk.sla.clocks import ClockState, InvalidEvents, SlaEvent, compute_clocks
from helpdesk.sla.policies import (
    Conditions,
    EscalationLevel,
    Policy,
    TicketFacts,
    choose,
    level_delay,
)

log = logging.getLogger(__name__)

# NOTIFY channel: a ticket's next SLA instant came within the sweep's horizon.
DUE_SOON_CHANNEL = "helpdesk_sla_due_soon"


def sweep_horizon(sla: SlaSettings) -> timedelta:
    """How far ahead checks are scheduled: two sweep intervals, so none falls between."""
    return timedelta(seconds=2 * sla.sweep_interval_seconds)


CLOCKS = ("first_response", "next_response", "resolution")
# How a stored clock row is keyed.
ClockKey = tuple[str, int]


@dataclass
class Due:
    """One escalation level of one clock cycle, and when it is due."""

    clock: str
    cycle: int
    level: str
    at: datetime
    actions: list[Any] = field(default_factory=list)


@dataclass
class Refreshed:
    ticket_id: int
    next_check_at: datetime | None
    due: list[Due]  # levels due now (at <= now) and not fired yet


# --- recording -------------------------------------------------------------------------------


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
    await conn.execute(
        """INSERT INTO sla_events (ticket_id, at, type, status, message_id, origin)
           VALUES ($1, $2, $3, $4, $5, $6)""",
        ticket_id,
        at,
        type_,
        status,
        message_id,
        origin,
    )


async def record_status_change(
    conn: asyncpg.Connection, ticket_id: int, old: str, new: str, at: datetime
) -> None:
    """A status edit in the engine's words (solved, reopened, or a plain status)."""
    if old == new:
        return
    if new == "solved":
        await record(conn, ticket_id, "solved", at)
    elif old == "solved" and new in ("new", "open"):
        await record(conn, ticket_id, "reopened", at)
        await reopened_after_solved(conn, ticket_id, "reopened by an agent")
    else:
        await record(conn, ticket_id, "status", at, status=new)


async def reopened_after_solved(conn: asyncpg.Connection, ticket_id: int, how: str) -> None:
    """A solved ticket opened again is a bad experience for its customer."""
    from helpdesk.customers.relationship import record_bad_experience  # no import cycle

    await record_bad_experience(conn, ticket_id, "reopened", how)


# --- policies and calendars ------------------------------------------------------------------


def _policy(row: asyncpg.Record) -> Policy:
    return Policy(
        id=row["id"],
        name=row["name"],
        position=row["position"],
        conditions=msgspec.convert(row["conditions"], Conditions),
        calendar_id=row["calendar_id"],
        first_response_minutes=row["first_response_minutes"],
        next_response_minutes=row["next_response_minutes"],
        resolution_minutes=row["resolution_minutes"],
        business_time=tuple(row["business_time"]),
        pause_statuses=tuple(row["pause_statuses"]),
        pausable=tuple(row["pausable"]),
        warn_at_percent=row["warn_at_percent"],
        escalations=tuple(msgspec.convert(row["escalations"], list[EscalationLevel])),
    )


def builtin_policy(sla: SlaSettings) -> Policy:
    """The promise alone (first response in calendar time), for a database without any
    policy (a fresh one before seeding, or the test suite's)."""
    return Policy(
        id=None,
        name="built-in",
        position=0,
        conditions=Conditions(),
        calendar_id=None,
        first_response_minutes=sla.first_response_minutes,
        next_response_minutes=0,
        resolution_minutes=0,
    )


# A policy row with its calendar's spec: one round trip for both.
_POLICY_SELECT = """SELECT p.*, c.spec AS calendar_spec FROM sla_policies p
                    LEFT JOIN sla_calendars c ON c.id = p.calendar_id"""


@dataclass(frozen=True)
class _PolicyCalendar:
    """A policy as refresh uses it: the policy and its calendar's stored spec."""

    policy: Policy
    calendar_spec: Any = None


async def _active_policies(conn: asyncpg.Connection) -> list[_PolicyCalendar] | None:
    """Every active policy in order; None when the database holds no policy at all."""
    rows = await conn.fetch(f"{_POLICY_SELECT} ORDER BY p.position, p.id")
    if not rows:
        return None
    return [_PolicyCalendar(_policy(r), r["calendar_spec"]) for r in rows if r["active"]]


def _calendar(spec: Any, sla: SlaSettings) -> BusinessCalendar:
    if spec is not None:
        return BusinessCalendar.shared(spec)
    return BusinessCalendar.twenty_four_seven(sla.timezone)


async def _facts(conn: asyncpg.Connection, ticket: asyncpg.Record) -> TicketFacts:
    customer = await conn.fetchrow("SELECT * FROM customers WHERE id = $1", ticket["customer_id"])
    attributes = {k: v for k, v in dict(customer or {}).items() if k not in ("id",)}
    return TicketFacts(
        priority=ticket["priority"],
        category=ticket["category"],
        channel=ticket["channel"],
        group_id=ticket["group_id"],
        customer=attributes,
    )


async def _select_policy(
    conn: asyncpg.Connection, ticket: asyncpg.Record, sla: SlaSettings, *, at: datetime
) -> tuple[_PolicyCalendar | None, dict[str, Any]]:
    """Choose (again) the ticket's policy, None when no policy matches, and the ticket
    columns that record the choice and its reason when it changed (the caller writes
    them with the clocks: one row version instead of two)."""
    stored = await _active_policies(conn)
    chosen: _PolicyCalendar | None
    if stored is None:
        chosen = _PolicyCalendar(builtin_policy(sla))
        reason = "built-in default (no policies stored)"
    else:
        match = choose([s.policy for s in stored], await _facts(conn, ticket))
        if match is None:
            chosen, reason = None, "no policy matched"
        else:
            chosen, reason = next(s for s in stored if s.policy is match[0]), match[1]
    policy = chosen.policy if chosen else None
    name = policy.name if policy else None
    changed = ticket["sla_policy_at"] is None or (
        (policy.id if policy else None) != ticket["sla_policy_id"]
        or name != ticket["sla_policy_name"]
    )
    if not changed:
        return chosen, {}
    if ticket["sla_policy_at"] is not None:
        await conn.execute(
            "INSERT INTO ticket_events (ticket_id, action, changes) VALUES ($1, $2, $3)",
            ticket["id"],
            "sla_policy_changed",
            {"from": ticket["sla_policy_name"], "to": name, "reason": reason},
        )
    return chosen, {
        "sla_policy_id": policy.id if policy else None,
        "sla_policy_name": name,
        "sla_policy_reason": reason,
        "sla_policy_at": at,
    }


# The ticket columns refresh writes (names are never taken from input).
_REFRESH_COLUMNS = frozenset(
    {
        "sla_policy_id",
        "sla_policy_name",
        "sla_policy_reason",
        "sla_policy_at",
        "next_sla_due_at",
        "next_sla_warn_at",
        "next_sla_check_at",
        "first_response_due_at",
    }
)


async def _write_ticket(
    conn: asyncpg.Connection, ticket: asyncpg.Record, values: dict[str, Any]
) -> None:
    """One UPDATE of the `values` that differ from the locked `ticket` row. Every row
    version of a ticket costs an entry in each of its indexes, so refresh writes at most
    one, and none when nothing moved."""
    assert _REFRESH_COLUMNS.issuperset(values)
    moved = {name: value for name, value in values.items() if ticket[name] != value}
    if not moved:
        return
    sets = ", ".join(f"{name} = ${i}" for i, name in enumerate(moved, start=2))
    await conn.execute(f"UPDATE tickets SET {sets} WHERE id = $1", ticket["id"], *moved.values())


async def _current_policy(
    conn: asyncpg.Connection, ticket: asyncpg.Record, sla: SlaSettings
) -> _PolicyCalendar | None:
    if ticket["sla_policy_id"] is not None:
        row = await conn.fetchrow(f"{_POLICY_SELECT} WHERE p.id = $1", ticket["sla_policy_id"])
        if row is not None:
            return _PolicyCalendar(_policy(row), row["calendar_spec"])
    if ticket["sla_policy_name"] == "built-in":
        return _PolicyCalendar(builtin_policy(sla))
    return None


# --- refresh ---------------------------------------------------------------------------------


# A ticket's history as refresh replays it: its events (without agent replies whose
# delivery failed for good) and its stored clocks, in one round trip. Read after the
# ticket row is locked, so the statement's snapshot holds every committed change.
_HISTORY = """
SELECT ARRAY(SELECT ROW(e.at, e.type, e.status, e.origin)
             FROM sla_events e LEFT JOIN messages m ON m.id = e.message_id
             WHERE e.ticket_id = $1
               AND NOT (e.type = 'agent_reply' AND coalesce(m.delivery_status, '') = 'failed')
             ORDER BY e.at, e.id) AS events,
       ARRAY(SELECT c FROM ticket_sla_clocks c WHERE c.ticket_id = $1) AS clocks
"""


@dataclass(frozen=True)
class _History:
    events: list[SlaEvent]
    clocks: dict[ClockKey, Any]  # stored clock rows by (clock, cycle)


async def _history(conn: asyncpg.Connection, ticket: asyncpg.Record) -> _History:
    row = await conn.fetchrow(_HISTORY, ticket["id"])
    return _History(
        events=_events(ticket, row["events"]),
        clocks={(c["clock"], c["cycle"]): c for c in row["clocks"]},
    )


def _events(ticket: asyncpg.Record, rows: list[tuple[Any, ...]]) -> list[SlaEvent]:
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


# The stored values of one clock, in the order `_UPSERT_CLOCKS` takes them as arrays.
_CLOCK_VALUES = (
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
_UPSERT_CLOCKS = """
    INSERT INTO ticket_sla_clocks (ticket_id, target_minutes, business_time, started_at,
        due_at, warn_at, met_at, breached, breached_at, paused, counted_seconds, clock, cycle,
        updated_at)
    SELECT $1, v.*, $14 FROM unnest($2::int[], $3::bool[], $4::timestamptz[],
        $5::timestamptz[], $6::timestamptz[], $7::timestamptz[], $8::bool[],
        $9::timestamptz[], $10::bool[], $11::float8[], $12::text[], $13::int[]) AS v
    ON CONFLICT (ticket_id, clock, cycle) DO UPDATE SET
        target_minutes = EXCLUDED.target_minutes, business_time = EXCLUDED.business_time,
        started_at = EXCLUDED.started_at, due_at = EXCLUDED.due_at,
        warn_at = EXCLUDED.warn_at, met_at = EXCLUDED.met_at, breached = EXCLUDED.breached,
        breached_at = EXCLUDED.breached_at, paused = EXCLUDED.paused,
        counted_seconds = EXCLUDED.counted_seconds, updated_at = EXCLUDED.updated_at"""


async def start(
    conn: asyncpg.Connection, ticket_id: int, sla: SlaSettings, *, now: datetime
) -> Refreshed:
    """Record the `created` event of a ticket inserted in this transaction, at `now`, and
    store its first clocks. Its history is that one event and no clock, so unlike
    `refresh` nothing needs to be read back."""
    await record(conn, ticket_id, "created", now)
    known = _History(events=[SlaEvent(at=now, type="created")], clocks={})
    return await refresh(conn, ticket_id, sla, now=now, _known=known)


async def refresh(
    conn: asyncpg.Connection,
    ticket_id: int,
    sla: SlaSettings,
    *,
    now: datetime | None = None,
    reselect: bool = False,
    _known: _History | None = None,
) -> Refreshed:
    """Recompute and store the ticket's clocks (call inside the changing transaction)."""
    now = now or await conn.fetchval("SELECT clock_timestamp()")
    assert now is not None
    # The levels already fired come with the locked row (refresh never changes them).
    ticket = await conn.fetchrow(
        """SELECT t.*, coalesce((SELECT jsonb_agg(jsonb_build_array(e.clock, e.cycle, e.level))
                                 FROM sla_escalations e WHERE e.ticket_id = t.id), '[]')
                       AS sla_fired
           FROM tickets t WHERE t.id = $1 FOR UPDATE""",
        ticket_id,
    )
    if ticket is None:
        return Refreshed(ticket_id, None, [])
    fired = {(clock, cycle, level) for clock, cycle, level in ticket["sla_fired"]}
    policy_changes: dict[str, Any] = {}
    if reselect or ticket["sla_policy_at"] is None:
        chosen, policy_changes = await _select_policy(conn, ticket, sla, at=now)
    else:
        chosen = await _current_policy(conn, ticket, sla)
    if chosen is None:
        await _store_none(conn, ticket, policy_changes)
        return Refreshed(ticket_id, None, [])
    policy = chosen.policy
    history = _known or await _history(conn, ticket)
    events = history.events
    policy_at = policy_changes.get("sla_policy_at", ticket["sla_policy_at"])
    retargeted = policy_at if policy_at > ticket["created_at"] else None
    try:
        business = _calendar(chosen.calendar_spec, sla)
        zone = BusinessCalendar.twenty_four_seven(sla.timezone)
        computed = {
            base: compute_clocks(
                policy.clock_policy(business_hours=base),
                business if base else zone,
                events,
                max(now, events[-1].at),
                retargeted_at=retargeted,
            )
            for base in {policy.counts_business_time(c) for c in CLOCKS}
        }
    except (InvalidEvents, InvalidCalendar, ValueError) as error:
        # Never fail the change that triggered this: keep the last stored clocks.
        log.warning("sla refresh skipped", extra={"ticket_id": ticket_id, "error": str(error)})
        await _write_ticket(conn, ticket, policy_changes)
        return Refreshed(ticket_id, ticket["next_sla_check_at"], [])
    calendars = {True: business, False: zone}
    rows: dict[ClockKey, tuple[datetime, ClockState, bool]] = {}
    created_at = events[0].at
    for clock in CLOCKS:
        base = policy.counts_business_time(clock)
        result = computed[base]
        if clock == "next_response":
            for cycle, item in enumerate(result.next_response_cycles):
                rows[(clock, cycle)] = (item.started_at, item.clock, base)
        else:
            state = getattr(result, clock)
            if state is not None:
                rows[(clock, 0)] = (created_at, state, base)
    stored = history.clocks
    final: dict[ClockKey, dict[str, Any]] = {}
    for key, (started, state, base) in rows.items():
        old = stored.get(key)
        values: dict[str, Any] = {
            "started_at": started,
            "due_at": state.due_at,
            "warn_at": state.warn_at,
            "met_at": state.met_at,
            "breached": state.breached,
            "breached_at": state.breached_at,
            "paused": state.paused,
            "business_time": base,
            "target_minutes": policy.target_minutes(key[0]),
        }
        if old is not None and old["met_at"] is not None and old["met_at"] == state.met_at:
            # A met clock keeps its verdict (and the due instant it was measured against).
            for name in ("due_at", "warn_at", "breached", "breached_at", "target_minutes"):
                values[name] = old[name]
        if old is not None and old["breached"]:
            values["breached"], values["breached_at"] = True, old["breached_at"]
        end = state.met_at or now
        calendar = calendars[base]
        values["counted_seconds"] = calendar.business_time_between(
            started, max(end, started)
        ).total_seconds()
        final[key] = values
    for key, values in final.items():
        old = stored.get(key)
        if values["met_at"] is not None and (old is None or old["met_at"] is None):
            # A live SLA event for supervisors, like warnings and breaches.
            await conn.execute(
                "INSERT INTO ticket_events (ticket_id, action, changes) VALUES ($1, $2, $3)",
                ticket_id,
                "sla_met",
                {
                    "clock": key[0],
                    "cycle": key[1],
                    "met_at": values["met_at"].isoformat(),
                    "breached": values["breached"],
                    "group_id": ticket["group_id"],
                    "assignee_id": ticket["assignee_id"],
                    "channel": ticket["channel"],
                },
            )
    changed = [
        (key, values)
        for key, values in final.items()
        if key not in stored or any(stored[key][name] != v for name, v in values.items())
    ]
    if changed:  # one statement for every clock that moved
        await conn.execute(
            _UPSERT_CLOCKS,
            ticket_id,
            *([values[name] for _, values in changed] for name in _CLOCK_VALUES),
            [key[0] for key, _ in changed],
            [key[1] for key, _ in changed],
            now,
        )
    gone = [key for key in stored if key not in final]
    if gone:  # e.g. a policy without that target any more
        await conn.execute(
            """DELETE FROM ticket_sla_clocks
               WHERE ticket_id = $1
                 AND (clock, cycle) IN (SELECT * FROM unnest($2::text[], $3::int[]))""",
            ticket_id,
            [clock for clock, _ in gone],
            [cycle for _, cycle in gone],
        )
    pending = _pending_levels(policy, final, calendars, fired)
    running = [v for v in final.values() if v["met_at"] is None and v["due_at"] is not None]
    next_due = min((v["due_at"] for v in running), default=None)
    next_warn = min((v["warn_at"] for v in running if v["warn_at"]), default=None)
    next_check = min((d.at for d in pending), default=None)
    fr = final.get(("first_response", 0))
    summary = {
        "next_sla_due_at": next_due,
        "next_sla_warn_at": next_warn,
        "next_sla_check_at": next_check,
        "first_response_due_at": fr["due_at"] if fr else None,
    }
    await _write_ticket(conn, ticket, policy_changes | summary)
    if next_check is not None and next_check <= now + sweep_horizon(sla):
        # Due before the sweep would see it: workers listening schedule the exact check
        # once this transaction commits (NOTIFY is delivered on commit only).
        await conn.execute("SELECT pg_notify($1, $2)", DUE_SOON_CHANNEL, str(ticket_id))
    return Refreshed(ticket_id, next_check, [d for d in pending if d.at <= now])


def _pending_levels(
    policy: Policy,
    clocks: dict[ClockKey, dict[str, Any]],
    calendars: dict[bool, BusinessCalendar],
    fired: set[tuple[str, int, str]],
) -> list[Due]:
    """Levels of running, unmet clocks not fired yet, with their instants. `warn` and
    `breach` are always tracked (they are the SLA events supervisors watch), with the
    policy's actions when it configures any."""
    found: list[Due] = []
    for (clock, cycle), values in clocks.items():
        if values["met_at"] is not None or values["paused"] or values["due_at"] is None:
            continue
        configured = {level.level: level for level in policy.levels(clock)}
        levels = {"warn", "breach", *configured}
        for level in levels:
            if (clock, cycle, level) in fired:
                continue
            actions = [a for a in configured[level].actions] if level in configured else []
            if level == "warn":
                at = values["warn_at"]
            elif level == "breach":
                at = values["due_at"]
            else:
                delay = level_delay(level)
                if delay is None:
                    continue
                anchor = values["breached_at"] or values["due_at"]
                at = calendars[values["business_time"]].add_business_time(anchor, delay)
            if at is not None:
                found.append(Due(clock, cycle, level, at, actions))
    return sorted(found, key=lambda d: d.at)


async def _store_none(
    conn: asyncpg.Connection, ticket: asyncpg.Record, policy_changes: dict[str, Any]
) -> None:
    """No policy applies: no running clock, nothing due (met and breached clocks stay)."""
    nothing_due = dict.fromkeys(
        ("next_sla_due_at", "next_sla_warn_at", "next_sla_check_at", "first_response_due_at")
    )
    await _write_ticket(conn, ticket, policy_changes | nothing_due)
    await conn.execute(
        "DELETE FROM ticket_sla_clocks WHERE ticket_id = $1 AND met_at IS NULL AND NOT breached",
        ticket["id"],
    )
