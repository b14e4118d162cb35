"""The SLA engine on the database: events in, clocks out, escalations fired once.

Everything that moves a clock appends an `sla_events` row (`record`) in the same
transaction as the change, then `refresh` replays the ticket's events through the pure
engine (`helpdesk.sla.clocks`, the same code as `helpdesk sla compute`) and stores each
clock, the ticket's `next_sla_due_at` / `next_sla_warn_at` and the next instant an
escalation level is due (`next_sla_check_at`, what the sweep and the precise jobs read).

Rules kept here rather than in the pure engine (`docs/sla.md` 1.6-1.7):
- A breach is sticky: once stored, a recomputation (priority lowered, reply withdrawn,
  calendar edited) never clears it nor moves its date.
- A met clock keeps its verdict when the policy changes; open clocks are recomputed from
  their original start with the new targets, and a breach the new targets would date in
  the past is dated at the change (`retargeted_at`).
- An agent reply whose delivery failed for good is withdrawn (`withdraw_reply`, in the
  transaction that fails it): its event is kept as `agent_reply_withdrawn` and left out,
  so the clock it met is open again from its original start. A retried reply counts
  again by a new `agent_reply` at the instant it is accepted again (`reply_retried`).
- Each clock uses the policy's calendar when that target counts business time, else 24x7
  in `sla.timezone`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

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


# The first response still standing: the earliest agent reply that is not withdrawn.
_STANDING_FIRST_RESPONSE = """
SELECT min(e.at) FROM sla_events e LEFT JOIN messages m ON m.id = e.message_id
WHERE e.ticket_id = $1 AND e.type = 'agent_reply'
  AND coalesce(m.delivery_status, '') <> 'failed'"""


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
    ticket_id = await conn.fetchval("SELECT ticket_id FROM messages WHERE id = $1", message_id)
    if ticket_id is None:
        return False
    ticket = await conn.fetchrow(_LOCKED_TICKET, ticket_id)
    withdrawn = await conn.fetch(
        """UPDATE sla_events SET type = 'agent_reply_withdrawn'
           WHERE message_id = $1 AND type = 'agent_reply' RETURNING at""",
        message_id,
    )
    if not withdrawn:
        return False
    first = ticket["first_responded_at"]
    if first is not None and any(row["at"] <= first for row in withdrawn):
        first = await conn.fetchval(_STANDING_FIRST_RESPONSE, ticket_id)
        await conn.execute(
            """UPDATE tickets SET first_responded_at = $2, updated_at = clock_timestamp(),
                   version = version + 1
               WHERE id = $1""",
            ticket_id,
            first,
        )
    await conn.execute(
        "INSERT INTO ticket_events (ticket_id, action, changes) VALUES ($1, $2, $3)",
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
    await conn.execute(  # failed before withdrawals were recorded: withdraw it now
        """UPDATE sla_events SET type = 'agent_reply_withdrawn'
           WHERE message_id = $1 AND type = 'agent_reply'""",
        message_id,
    )
    counted = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM sla_events WHERE message_id = $1)", message_id
    )
    if not counted:
        return None
    at: datetime = await conn.fetchval("SELECT clock_timestamp()")
    await record(conn, ticket_id, "agent_reply", at, message_id=message_id)
    await conn.execute(
        """UPDATE tickets SET first_responded_at = coalesce(first_responded_at, $2),
               updated_at = clock_timestamp(), version = version + 1
           WHERE id = $1""",
        ticket_id,
        at,
    )
    await refresh(conn, ticket_id, sla, now=at)
    return at


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


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


def customer_facts(customer: Mapping[str, Any] | None) -> dict[str, Any]:
    """The customer's attributes as policy conditions see them (a customers row)."""
    return {k: v for k, v in dict(customer or {}).items() if k != "id"}


def new_ticket_facts(channel: str, customer: Mapping[str, Any] | None) -> TicketFacts:
    """What a policy sees of a ticket being created from a customer's message."""
    return TicketFacts(
        priority="normal",  # the column's default
        category=None,
        channel=channel,
        group_id=None,
        customer=customer_facts(customer),
    )


def _choose_policy(
    stored: list[_PolicyCalendar] | None, facts: TicketFacts, sla: SlaSettings
) -> tuple[_PolicyCalendar | None, str]:
    """The policy that applies (None when none matches) and why."""
    if stored is None:
        return _PolicyCalendar(builtin_policy(sla)), "built-in default (no policies stored)"
    match = choose([s.policy for s in stored], facts)
    if match is None:
        return None, "no policy matched"
    return next(s for s in stored if s.policy is match[0]), match[1]


def _policy_columns(chosen: _PolicyCalendar | None, reason: str, at: datetime) -> dict[str, Any]:
    policy = chosen.policy if chosen else None
    return {
        "sla_policy_id": policy.id if policy else None,
        "sla_policy_name": policy.name if policy else None,
        "sla_policy_reason": reason,
        "sla_policy_at": at,
    }


# The ticket columns the SLA engine writes (names are never taken from input), in the
# order a new ticket's INSERT lists them (`StartPlan.columns`).
START_COLUMNS = (
    "sla_policy_id",
    "sla_policy_name",
    "sla_policy_reason",
    "sla_policy_at",
    "next_sla_due_at",
    "next_sla_warn_at",
    "next_sla_check_at",
    "first_response_due_at",
)
_REFRESH_COLUMNS = frozenset(START_COLUMNS)


def start_columns_sql(first_parameter: int) -> tuple[str, str]:
    """A new ticket's INSERT column list of `START_COLUMNS` and its placeholders,
    numbered from `first_parameter`; pass `StartPlan.values()` in that place."""
    placeholders = (f"${i}" for i, _ in enumerate(START_COLUMNS, start=first_parameter))
    return ", ".join(START_COLUMNS), ", ".join(placeholders)


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
             WHERE e.ticket_id = $1 AND e.type <> 'agent_reply_withdrawn'
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


@dataclass(frozen=True)
class _Computed:
    """A ticket's clocks as the engine computes them, before anything is written."""

    final: dict[ClockKey, dict[str, Any]]  # stored values of each clock, by key
    pending: list[Due]
    summary: dict[str, Any]  # the ticket's next_sla_* and first_response_due_at


def _compute(
    chosen: _PolicyCalendar,
    events: list[SlaEvent],
    stored: dict[ClockKey, Any],
    fired: set[tuple[str, int, str]],
    sla: SlaSettings,
    *,
    now: datetime,
    retargeted: datetime | None,
) -> _Computed:
    """Replay `events` under the policy, keeping the sticky verdicts of `stored` clocks.
    Pure; raises InvalidEvents, InvalidCalendar or ValueError on bad stored data."""
    policy = chosen.policy
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
    pending = _pending_levels(policy, final, calendars, fired)
    running = [v for v in final.values() if v["met_at"] is None and v["due_at"] is not None]
    fr = final.get(("first_response", 0))
    summary = {
        "next_sla_due_at": min((v["due_at"] for v in running), default=None),
        "next_sla_warn_at": min((v["warn_at"] for v in running if v["warn_at"]), default=None),
        "next_sla_check_at": min((d.at for d in pending), default=None),
        "first_response_due_at": fr["due_at"] if fr else None,
    }
    return _Computed(final, pending, summary)


async def _upsert_clocks(
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
    sql = _UPSERT_CLOCKS
    extra: list[Any] = []
    if created_event:
        sql = f"""WITH created AS (INSERT INTO sla_events (ticket_id, at, type, origin, status)
                                   VALUES ($1, $14, 'created', $15::text, $16::text))
                  {_UPSERT_CLOCKS}"""
        extra += [origin, status]
    await conn.execute(
        sql,
        ticket_id,
        *([values[name] for _, values in changed] for name in _CLOCK_VALUES),
        [key[0] for key, _ in changed],
        [key[1] for key, _ in changed],
        now,
        *extra,
    )


def _due_soon(next_check: datetime | None, now: datetime, sla: SlaSettings) -> bool:
    return next_check is not None and next_check <= now + sweep_horizon(sla)


async def _notify_due_soon(conn: asyncpg.Connection, ticket_id: int) -> None:
    """Due before the sweep would see it: workers listening schedule the exact check once
    this transaction commits (NOTIFY is delivered on commit only)."""
    await conn.execute("SELECT pg_notify($1, $2)", DUE_SOON_CHANNEL, str(ticket_id))


@dataclass(frozen=True)
class StartPlan:
    """A new ticket's SLA, computed before its row exists: `columns` go into the ticket's
    INSERT (one row version, not an insert and an update), then `start` stores the
    `created` event and the first clocks."""

    columns: dict[str, Any]  # every column of START_COLUMNS
    clocks: list[tuple[ClockKey, dict[str, Any]]]
    due_soon: bool
    origin: Literal["customer", "agent", "notice"] | None = None  # the `created` event's
    status: Literal["new", "open"] | None = None  # the `created` event's (None: new)

    def values(self) -> list[Any]:
        """The columns' values in `START_COLUMNS` order (see `start_columns_sql`)."""
        return [self.columns[name] for name in START_COLUMNS]


async def plan_start(
    conn: asyncpg.Connection,
    facts: TicketFacts,
    sla: SlaSettings,
    *,
    now: datetime,
    origin: Literal["customer", "agent", "notice"] | None = None,
    status: Literal["new", "open"] | None = None,
) -> StartPlan:
    """Choose the policy of a ticket about to be created at `now` and compute its first
    clocks (its history is the one `created` event; nothing has fired). `origin="notice"`:
    a channel notice nobody wrote opens it, so no first response is owed; `"agent"`: an
    agent opened it (an outbound call). `status`: the new row's (open when assigned)."""
    chosen, reason = _choose_policy(await _active_policies(conn), facts, sla)
    columns = _policy_columns(chosen, reason, now) | _NOTHING_DUE
    if chosen is None:
        return StartPlan(columns, [], False, origin, status)
    try:
        computed = _compute(
            chosen,
            [SlaEvent(at=now, type="created", status=status, origin=origin)],
            {},
            set(),
            sla,
            now=now,
            retargeted=None,
        )
    except (InvalidEvents, InvalidCalendar, ValueError) as error:
        log.warning("sla start skipped", extra={"error": str(error)})
        return StartPlan(columns, [], False, origin, status)
    next_check = computed.summary["next_sla_check_at"]
    return StartPlan(
        columns | computed.summary,
        list(computed.final.items()),
        _due_soon(next_check, now, sla),
        origin,
        status,
    )


async def start(
    conn: asyncpg.Connection, ticket_id: int, plan: StartPlan, *, now: datetime
) -> None:
    """Store the `created` event and first clocks of a ticket inserted in this
    transaction, at `now`, with `plan.columns`: one statement."""
    await _upsert_clocks(
        conn,
        ticket_id,
        plan.clocks,
        now,
        created_event=True,
        origin=plan.origin,
        status=plan.status,
    )
    if plan.due_soon:
        await _notify_due_soon(conn, ticket_id)


# The ticket row locked for a refresh, with the escalation levels already fired (refresh
# never changes them) as `sla_fired`.
SLA_FIRED = """coalesce((SELECT jsonb_agg(jsonb_build_array(e.clock, e.cycle, e.level))
                         FROM sla_escalations e WHERE e.ticket_id = t.id), '[]') AS sla_fired"""
_LOCKED_TICKET = f"SELECT t.*, {SLA_FIRED} FROM tickets t WHERE t.id = $1 FOR UPDATE"

_NOTHING_DUE = dict.fromkeys(
    ("next_sla_due_at", "next_sla_warn_at", "next_sla_check_at", "first_response_due_at")
)


@dataclass
class RefreshPlan:
    """What one refresh writes, computed from the locked ticket as the caller holds it.
    A caller that updates the ticket anyway (routing) puts `columns` in its own UPDATE:
    every row version of a ticket costs an entry in each of its indexes."""

    ticket_id: int
    columns: dict[str, Any] = field(default_factory=dict)  # ticket columns that move
    policy_changed: dict[str, Any] | None = None  # the `sla_policy_changed` event
    met: list[tuple[ClockKey, dict[str, Any]]] = field(default_factory=list)
    upsert: list[tuple[ClockKey, dict[str, Any]]] = field(default_factory=list)
    gone: list[ClockKey] = field(default_factory=list)
    clear_running: bool = False  # no policy applies any more
    next_check: datetime | None = None
    due: list[Due] = field(default_factory=list)  # levels due now, not fired yet
    due_soon: bool = False
    now: datetime | None = None


def _moved(ticket: Mapping[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    assert _REFRESH_COLUMNS.issuperset(values)
    return {name: value for name, value in values.items() if ticket[name] != value}


async def plan_refresh(
    conn: asyncpg.Connection,
    ticket: Mapping[str, Any],
    sla: SlaSettings,
    *,
    now: datetime,
    reselect: bool = False,
    customer: Mapping[str, Any] | None = None,
) -> RefreshPlan:
    """Recompute the clocks of the locked `ticket` (a row with `sla_fired`, possibly with
    the caller's pending changes applied); reads policies and history, writes nothing.
    `customer` spares reading the ticket's customer when the caller holds it."""
    fired = {(clock, cycle, level) for clock, cycle, level in ticket["sla_fired"]}
    plan = RefreshPlan(ticket["id"], now=now)
    policy_columns: dict[str, Any] = {}
    chosen: _PolicyCalendar | None
    if reselect or ticket["sla_policy_at"] is None:
        if customer is None and ticket["customer_id"] is not None:
            customer = await conn.fetchrow(
                "SELECT * FROM customers WHERE id = $1", ticket["customer_id"]
            )
        facts = TicketFacts(
            priority=ticket["priority"],
            category=ticket["category"],
            channel=ticket["channel"],
            group_id=ticket["group_id"],
            customer=customer_facts(customer),
        )
        chosen, reason = _choose_policy(await _active_policies(conn), facts, sla)
        columns = _policy_columns(chosen, reason, now)
        if ticket["sla_policy_at"] is None or (
            columns["sla_policy_id"] != ticket["sla_policy_id"]
            or columns["sla_policy_name"] != ticket["sla_policy_name"]
        ):
            policy_columns = columns
            if ticket["sla_policy_at"] is not None:
                plan.policy_changed = {
                    "from": ticket["sla_policy_name"],
                    "to": columns["sla_policy_name"],
                    "reason": reason,
                }
    else:
        chosen = await _current_policy(conn, ticket, sla)
    if chosen is None:
        plan.columns = _moved(ticket, policy_columns | _NOTHING_DUE)
        plan.clear_running = True
        return plan
    history = await _history(conn, ticket)
    policy_at = policy_columns.get("sla_policy_at", ticket["sla_policy_at"])
    retargeted = policy_at if policy_at > ticket["created_at"] else None
    try:
        computed = _compute(
            chosen, history.events, history.clocks, fired, sla, now=now, retargeted=retargeted
        )
    except (InvalidEvents, InvalidCalendar, ValueError) as error:
        # Never fail the change that triggered this: keep the last stored clocks.
        log.warning("sla refresh skipped", extra={"ticket_id": ticket["id"], "error": str(error)})
        plan.columns = _moved(ticket, policy_columns)
        plan.next_check = ticket["next_sla_check_at"]
        return plan
    stored, final = history.clocks, computed.final
    plan.met = [
        (key, values)
        for key, values in final.items()
        if values["met_at"] is not None and (key not in stored or stored[key]["met_at"] is None)
    ]
    plan.upsert = [
        (key, values)
        for key, values in final.items()
        if key not in stored or any(stored[key][name] != v for name, v in values.items())
    ]
    plan.gone = [key for key in stored if key not in final]  # e.g. a target dropped
    plan.columns = _moved(ticket, policy_columns | computed.summary)
    plan.next_check = computed.summary["next_sla_check_at"]
    plan.due = [d for d in computed.pending if d.at <= now]
    plan.due_soon = _due_soon(plan.next_check, now, sla)
    return plan


async def apply_refresh(
    conn: asyncpg.Connection,
    ticket: Mapping[str, Any],
    plan: RefreshPlan,
    *,
    write_ticket: bool = True,
) -> Refreshed:
    """Write `plan`: events, clocks and (unless the caller writes `plan.columns` in its
    own UPDATE) the ticket's SLA columns."""
    ticket_id = plan.ticket_id
    if plan.policy_changed is not None:
        await conn.execute(
            "INSERT INTO ticket_events (ticket_id, action, changes) VALUES ($1, $2, $3)",
            ticket_id,
            "sla_policy_changed",
            plan.policy_changed,
        )
    for key, values in plan.met:  # a live SLA event for supervisors, like breaches
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
    if plan.upsert:
        assert plan.now is not None
        await _upsert_clocks(conn, ticket_id, plan.upsert, plan.now)
    if plan.gone:
        await conn.execute(
            """DELETE FROM ticket_sla_clocks
               WHERE ticket_id = $1
                 AND (clock, cycle) IN (SELECT * FROM unnest($2::text[], $3::int[]))""",
            ticket_id,
            [clock for clock, _ in plan.gone],
            [cycle for _, cycle in plan.gone],
        )
    if plan.clear_running:  # met and breached clocks stay
        await conn.execute(
            """DELETE FROM ticket_sla_clocks
               WHERE ticket_id = $1 AND met_at IS NULL AND NOT breached""",
            ticket_id,
        )
    if write_ticket and plan.columns:
        sets = ", ".join(f"{name} = ${i}" for i, name in enumerate(plan.columns, start=2))
        await conn.execute(
            f"UPDATE tickets SET {sets} WHERE id = $1", ticket_id, *plan.columns.values()
        )
    if plan.due_soon:
        await _notify_due_soon(conn, ticket_id)
    return Refreshed(ticket_id, plan.next_check, plan.due)


async def refresh(
    conn: asyncpg.Connection,
    ticket_id: int,
    sla: SlaSettings,
    *,
    now: datetime | None = None,
    reselect: bool = False,
    locked: Mapping[str, Any] | None = None,
) -> Refreshed:
    """Recompute and store the ticket's clocks (call inside the changing transaction).
    `locked`: the ticket's row with `sla_fired` when the caller has just locked it
    (`UPDATE tickets t ... RETURNING t.*, SLA_FIRED`), so it is not read again. A level
    fired while that UPDATE waited for the lock may be missing from `sla_fired`; firing
    is idempotent, so the worst case is one early re-check."""
    now = now or await conn.fetchval("SELECT clock_timestamp()")
    assert now is not None
    ticket = locked if locked is not None else await conn.fetchrow(_LOCKED_TICKET, ticket_id)
    if ticket is None:
        return Refreshed(ticket_id, None, [])
    plan = await plan_refresh(conn, ticket, sla, now=now, reselect=reselect)
    return await apply_refresh(conn, ticket, plan)


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
