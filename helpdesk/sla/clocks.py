"""The three SLA clocks of a ticket, computed from its events: pure, no I/O, `now` passed in.

`compute_clocks(policy, calendar, events, now)` replays a ticket's events and returns each
clock's due, warning, met and breach instants (UTC) as msgspec Structs, so the service can
store `due_at`/`warn_at` columns and `next_due_at`/`next_warn_at`, and `helpdesk sla compute`
prints the same thing. The rules are `docs/sla.md` 1.4-1.6. Recomputing from the events is
the whole model: a reply withdrawn because its delivery failed is simply left out of the
events, and the clock is open again from its original start.

Decisions where docs/sla.md is silent:

- `created` must be the first and only creation event; it may carry `status` (new, open,
  pending, on_hold; default new) and `origin`: `customer` (default, the ticket came from an
  inbound customer message and starts first response), `agent` (opened by an agent's
  outbound message: no first-response clock, and the customer's answer starts a
  next-response cycle) or `notice` (opened by a channel notice nobody wrote, such as a
  reaction on a conversation without a ticket: the same as `agent`).
- Events must be in non-decreasing time order; equal instants apply in list order. `now`
  defaults to the last event and may not precede it.
- A customer message to a ticket in any pausing status, or solved, reopens it (status open).
  `reopened` and a `status` event to a non-solved status also reopen a solved ticket.
  `status: solved` is the same as `solved`. `customer_auto_reply`, `auto_reply`, `bot_reply`
  and `note` never start, meet, pause or reopen anything.
- `status: closed` is final: every clock freezes (no further breach) and a later event is an
  error. `pause_statuses` may not name solved or closed, which have their own meaning.
- A public agent reply meets first response and the open next-response cycle even while the
  clock is stopped (pending, solved): a response was given.
- A stopped clock has null `due_at`/`warn_at` even if it already breached; `breached` and
  `breached_at` stay. A met clock shows the due and warning instants that applied when it
  was met (projected from the met instant if it was stopped then).
- Resolution met exactly at its due instant, then reopened, breaches at the reopen instant
  (it was on time while met; it is not back-dated).
- Several solves: `met_at` is the last solve while solved and null after a reopen;
  `first_solved_at`/`last_solved_at` keep the solves for reports.
- `next_response` is the open cycle, else the last one; every cycle is in
  `next_response_cycles` for metrics.
- Warning instants use the exact fraction of the target (75 % of 25 min is 18 min 45 s);
  `next_due_at`/`next_warn_at` are the minimum over running, unmet clocks, past ones included.
- Stickiness across recomputations is the caller's job (a stored breach stays, a met clock
  keeps its verdict). After a policy change pass `retargeted_at`: a breach that the new
  targets would date earlier is dated at the change instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

import msgspec

from helpdesk.sla.calendar import BusinessCalendar, Interval
from helpdesk.tickets.models import Status

ClockName = Literal["first_response", "next_response", "resolution"]
EventType = Literal[
    "created",
    "customer_message",
    "customer_auto_reply",
    "agent_reply",
    "auto_reply",
    "bot_reply",
    "note",
    "status",
    "solved",
    "reopened",
]
# Up to ten years of minutes: anything longer is a typo, not a promise.
TargetMinutes = Annotated[int, msgspec.Meta(ge=0, le=10 * 366 * 24 * 60)]
_NO_PAUSE: frozenset[str] = frozenset({"solved", "closed"})


class InvalidEvents(ValueError):
    """The events cannot be replayed (order, missing creation, event after closing)."""


class SlaPolicy(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Targets in whole minutes; missing, null or 0 means that clock does not apply."""

    first_response_minutes: TargetMinutes | None = None
    next_response_minutes: TargetMinutes | None = None
    resolution_minutes: TargetMinutes | None = None
    business_hours: bool = True
    pause_statuses: tuple[Status, ...] = ("pending",)
    pausable: tuple[ClockName, ...] = ("resolution",)
    warn_at_percent: Annotated[float, msgspec.Meta(gt=0, le=100)] = 75

    def __post_init__(self) -> None:
        wrong = sorted(_NO_PAUSE.intersection(self.pause_statuses))
        if wrong:
            raise ValueError(f"pause_statuses cannot include {wrong[0]!r}")

    def target(self, clock: ClockName) -> timedelta | None:
        minutes = getattr(self, f"{clock}_minutes")
        return timedelta(minutes=minutes) if minutes else None


class SlaEvent(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """One thing that happened to the ticket; `status` on `created`/`status`, `origin` on
    `created` only."""

    at: Annotated[datetime, msgspec.Meta(tz=True)]
    type: EventType
    status: Status | None = None
    origin: Literal["customer", "agent", "notice"] | None = None


class ClockState(msgspec.Struct, frozen=True):
    """One clock (or next-response cycle) at `now`; instants in UTC."""

    due_at: datetime | None
    warn_at: datetime | None
    met_at: datetime | None
    breached: bool
    breached_at: datetime | None
    paused: bool


class ResponseCycle(msgspec.Struct, frozen=True):
    """A next-response cycle: it starts at the oldest unanswered customer message."""

    started_at: datetime
    clock: ClockState


class TicketClocks(msgspec.Struct, frozen=True):
    """Every clock of a ticket; None for a clock that does not apply or has not started."""

    first_response: ClockState | None
    next_response: ClockState | None
    resolution: ClockState | None
    next_response_cycles: tuple[ResponseCycle, ...] = ()
    first_solved_at: datetime | None = None
    last_solved_at: datetime | None = None
    next_due_at: datetime | None = None
    next_warn_at: datetime | None = None


@dataclass
class _Clock:
    name: ClockName
    started_at: datetime
    segments: list[Interval] = field(default_factory=list)  # closed running stretches
    running_since: datetime | None = None
    met_at: datetime | None = None
    met_history: list[datetime] = field(default_factory=list)
    reopened_at: list[datetime] = field(default_factory=list)


@dataclass
class _Ticket:
    policy: SlaPolicy
    status: Status
    agent_replied: bool
    first_response: _Clock | None = None
    resolution: _Clock | None = None
    cycles: list[_Clock] = field(default_factory=list)
    open_cycle: _Clock | None = None
    solves: list[datetime] = field(default_factory=list)

    def clocks(self) -> list[_Clock]:
        found = [self.first_response, self.resolution, self.open_cycle]
        return [clock for clock in found if clock is not None]

    def runs(self, clock: _Clock) -> bool:
        if clock.met_at is not None or self.status in _NO_PAUSE:
            return False
        return not (
            self.status in self.policy.pause_statuses and clock.name in self.policy.pausable
        )

    def sync(self, at: datetime) -> None:
        """Start or stop each clock to match the ticket's state from `at` on."""
        for clock in self.clocks():
            running = clock.running_since is not None
            if self.runs(clock) and not running:
                clock.running_since = at
            elif not self.runs(clock) and clock.running_since is not None:
                if at > clock.running_since:
                    clock.segments.append((clock.running_since, at))
                clock.running_since = None

    def reopen(self, at: datetime) -> None:
        if self.status == "solved" and self.resolution is not None:
            self.resolution.met_at = None
            self.resolution.reopened_at.append(at)
        self.status = "open"

    def solve(self, at: datetime) -> None:
        if self.status == "solved":
            return
        self.status = "solved"
        self.solves.append(at)
        if self.resolution is not None:
            self.resolution.met_at = at
            self.resolution.met_history.append(at)


def _validate(events: Sequence[SlaEvent], now: datetime | None) -> datetime:
    if not events or events[0].type != "created":
        raise InvalidEvents("events: the first event must be `created`")
    previous: datetime | None = None
    for index, event in enumerate(events):
        where = f"events[{index}] ({event.type})"
        if event.at.tzinfo is None or event.at.utcoffset() is None:
            raise InvalidEvents(f"{where}: `at` must carry a UTC offset")
        if previous is not None and event.at < previous:
            raise InvalidEvents(
                f"{where}: events out of order, {event.at.isoformat()} is before the "
                f"previous event at {previous.isoformat()}"
            )
        previous = event.at
        if index and event.type == "created":
            raise InvalidEvents(f"{where}: a ticket is created only once, first")
        if event.type == "status" and event.status is None:
            raise InvalidEvents(f"{where}: a status event needs `status`")
        if event.type not in ("created", "status") and event.status is not None:
            raise InvalidEvents(f"{where}: only created and status events carry `status`")
        if event.type != "created" and event.origin is not None:
            raise InvalidEvents(f"{where}: only the created event carries `origin`")
        if event.type == "created" and event.status in _NO_PAUSE:
            raise InvalidEvents(f"{where}: a ticket cannot be created {event.status}")
    assert previous is not None
    if now is None:
        return previous
    if now.tzinfo is None or now.utcoffset() is None:
        raise InvalidEvents("now must carry a UTC offset")
    if now < previous:
        raise InvalidEvents(
            f"now ({now.isoformat()}) is before the last event ({previous.isoformat()})"
        )
    return now


def _replay(policy: SlaPolicy, events: Sequence[SlaEvent]) -> _Ticket:
    created = events[0]
    start = created.at.astimezone(UTC)
    origin = created.origin or "customer"
    # A ticket opened by a notice (`docs/sla.md` 1.4: no person wrote) owes no first
    # response, like one an agent opened: the customer's first real message starts NR.
    ticket = _Ticket(policy, created.status or "new", agent_replied=origin != "customer")
    if origin == "customer" and policy.target("first_response"):
        ticket.first_response = _Clock("first_response", start)
    if policy.target("resolution"):
        ticket.resolution = _Clock("resolution", start)
    ticket.sync(start)
    for index, event in enumerate(events[1:], start=1):
        at = event.at.astimezone(UTC)
        if ticket.status == "closed":
            raise InvalidEvents(
                f"events[{index}] ({event.type}): the ticket was closed before; closed is final"
            )
        kind = event.type
        if kind == "customer_message":
            if ticket.status == "solved" or ticket.status in policy.pause_statuses:
                ticket.reopen(at)
            starts_cycle = ticket.agent_replied and ticket.open_cycle is None
            if starts_cycle and policy.target("next_response"):
                ticket.open_cycle = _Clock("next_response", at)
                ticket.cycles.append(ticket.open_cycle)
        elif kind == "agent_reply":
            ticket.agent_replied = True
            if ticket.first_response is not None and ticket.first_response.met_at is None:
                ticket.first_response.met_at = at
            if ticket.open_cycle is not None:
                ticket.open_cycle.met_at = at
                ticket.sync(at)  # stops it before it leaves the set of open clocks
                ticket.open_cycle = None
        elif kind == "solved" or (kind == "status" and event.status == "solved"):
            ticket.solve(at)
        elif kind == "status" and event.status == "closed":
            ticket.status = "closed"
        elif kind == "status" and event.status is not None:
            if ticket.status == "solved":
                ticket.reopen(at)
            ticket.status = event.status
        elif kind == "reopened" and (
            ticket.status == "solved" or ticket.status in policy.pause_statuses
        ):
            ticket.reopen(at)
        ticket.sync(at)
    return ticket


class _Evaluator:
    """Turns a replayed clock into its state at `now` on one calendar."""

    def __init__(
        self,
        policy: SlaPolicy,
        calendar: BusinessCalendar,
        now: datetime,
        retargeted_at: datetime | None,
    ) -> None:
        self.policy = policy
        self.calendar = calendar
        self.now = now
        self.retargeted_at = retargeted_at

    def reach(self, clock: _Clock, amount: timedelta) -> datetime | None:
        """Earliest instant with `amount` counted, the clock running on from its last run
        (or from its met instant); None if it is stopped short of it."""
        remaining = amount
        for a, b in clock.segments:
            counted = self.calendar.business_time_between(a, b)
            if remaining <= counted:
                return self.calendar.add_business_time(a, remaining)
            remaining -= counted
        resume = clock.running_since or clock.met_at
        if resume is None:
            return None
        return self.calendar.add_business_time(resume, remaining)

    def state(self, clock: _Clock) -> ClockState:
        target = self.policy.target(clock.name)
        assert target is not None
        due = self.reach(clock, target)
        warn = self.reach(clock, target * self.policy.warn_at_percent / 100)
        met = clock.met_at
        if met is not None:
            breached = due is not None and met > due
        else:
            breached = due is not None and self.now > due
        breached_at = None
        if breached and due is not None:
            breached_at = due
            if due in clock.met_history:  # met right on time, then reopened
                breached_at = min((r for r in clock.reopened_at if r >= due), default=due)
            if self.retargeted_at is not None and breached_at < self.retargeted_at:
                breached_at = self.retargeted_at.astimezone(UTC)
        paused = met is None and clock.running_since is None
        return ClockState(
            due_at=None if paused else due,
            warn_at=None if paused else warn,
            met_at=met,
            breached=breached,
            breached_at=breached_at,
            paused=paused,
        )


def compute_clocks(
    policy: SlaPolicy,
    calendar: BusinessCalendar,
    events: Sequence[SlaEvent],
    now: datetime | None = None,
    *,
    retargeted_at: datetime | None = None,
) -> TicketClocks:
    """Replay `events` (oldest first) under `policy` and evaluate every clock at `now`.

    `calendar` counts business-hours policies; a calendar-time policy uses 24x7 in the same
    zone. `now` defaults to the last event. Raises `InvalidEvents` for events that cannot be
    replayed and `InvalidCalendar` if the calendar never opens.
    """
    now = _validate(events, now).astimezone(UTC)
    if not policy.business_hours:
        calendar = BusinessCalendar.twenty_four_seven(calendar.zone)
    ticket = _replay(policy, events)
    evaluate = _Evaluator(policy, calendar, now, retargeted_at)
    first = None if ticket.first_response is None else evaluate.state(ticket.first_response)
    resolution = None if ticket.resolution is None else evaluate.state(ticket.resolution)
    cycles = tuple(
        ResponseCycle(started_at=cycle.started_at, clock=evaluate.state(cycle))
        for cycle in ticket.cycles
    )
    running = [
        state
        for clock, state in (
            (ticket.first_response, first),
            (ticket.resolution, resolution),
            (ticket.open_cycle, cycles[-1].clock if ticket.open_cycle else None),
        )
        if clock is not None and state is not None and clock.running_since is not None
    ]
    dues = [state.due_at for state in running if state.due_at is not None]
    warns = [state.warn_at for state in running if state.warn_at is not None]
    return TicketClocks(
        first_response=first,
        next_response=cycles[-1].clock if cycles else None,
        resolution=resolution,
        next_response_cycles=cycles,
        first_solved_at=ticket.solves[0] if ticket.solves else None,
        last_solved_at=ticket.solves[-1] if ticket.solves else None,
        next_due_at=min(dues, default=None),
        next_warn_at=min(warns, default=None),
    )
