"""A ticket's SLA events replayed under its policy: the clocks to store, the escalation
levels pending, and the ticket's summary columns. Pure: no database, no clock read.

The replay itself is the pure engine (`helpdesk.sla.clocks`, the same code as `helpdesk
sla compute`); the rules kept here rather than there (`docs/sla.md` 1.6-1.7):
- A breach is sticky: once stored, a recomputation (priority lowered, reply withdrawn,
  calendar edited) never clears it nor moves its date.
- A met clock keeps its verdict when the policy changes; open clocks are recomputed from
  their original start with the new targets, and a breach the new targets would date in
  the past is dated at the change (`retargeted`).
- Each clock uses the policy's calendar when that target counts business time, else 24x7
  in `sla.timezone`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from helpdesk.config import SlaSettings
from helpdesk.sla.calendar import BusinessCalendar
from helpdesk.sla.clocks import ClockState, SlaEvent, compute_clocks
from helpdesk.sla.policies import Policy, level_delay
from helpdesk.sla.policy_choice import PolicyCalendar

CLOCKS = ("first_response", "next_response", "resolution")
# How a stored clock row is keyed.
ClockKey = tuple[str, int]

# The ticket's summary columns when no clock runs.
NOTHING_DUE: dict[str, Any] = dict.fromkeys(
    ("next_sla_due_at", "next_sla_warn_at", "next_sla_check_at", "first_response_due_at")
)


@dataclass
class Due:
    """One escalation level of one clock cycle, and when it is due."""

    clock: str
    cycle: int
    level: str
    at: datetime
    actions: list[Any] = field(default_factory=list)


@dataclass(frozen=True)
class Computed:
    """A ticket's clocks as the engine computes them, before anything is written."""

    final: dict[ClockKey, dict[str, Any]]  # stored values of each clock, by key
    pending: list[Due]
    summary: dict[str, Any]  # the ticket's next_sla_* and first_response_due_at


def compute(
    chosen: PolicyCalendar,
    events: list[SlaEvent],
    stored: dict[ClockKey, Any],
    fired: set[tuple[str, int, str]],
    sla: SlaSettings,
    *,
    now: datetime,
    retargeted: datetime | None,
) -> Computed:
    """Replay `events` under the policy, keeping the sticky verdicts of `stored` clocks.
    Pure; raises InvalidEvents, InvalidCalendar or ValueError on bad stored data."""
    policy = chosen.policy
    business = chosen.calendar(sla)
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
    return Computed(final, pending, summary)


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
