"""`helpdesk sla compute`: the clocks of one JSON scenario, with the service's own code.

Stable interface (other tools read it): one scenario on standard input,

    {"calendar": {...}, "policy": {...}, "events": [{"at": ..., "type": ...}, ...],
     "now": optional ISO 8601 with offset, default the last event}

and one JSON object on standard output with `first_response`, `next_response` (the current
or last cycle) and `resolution`, each `{"due_at", "warn_at", "met_at", "breached",
"breached_at", "paused"}` with instants in ISO 8601 carrying the calendar's UTC offset, or
null for a clock that does not apply or has not started. An invalid scenario gets one error
line on standard error and exit status 2. No database, no clock read: the same scenario
always prints the same answer.

A missing `calendar` means 24x7 in UTC. The calendar must open within 366 days of the
ticket's creation (the rule for saving a calendar).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, TextIO

import msgspec

from helpdesk.sla.calendar import BusinessCalendar, CalendarSpec
from helpdesk.sla.clocks import ClockState, SlaEvent, SlaPolicy, compute_clocks

PROG = "helpdesk sla compute"


class Scenario(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    events: list[SlaEvent]
    calendar: CalendarSpec | None = None
    policy: SlaPolicy = SlaPolicy()
    now: Annotated[datetime, msgspec.Meta(tz=True)] | None = None


def _clock_json(state: ClockState | None, calendar: BusinessCalendar) -> dict[str, Any] | None:
    if state is None:
        return None

    def instant(at: datetime | None) -> str | None:
        return None if at is None else at.astimezone(calendar.zone).isoformat()

    return {
        "due_at": instant(state.due_at),
        "warn_at": instant(state.warn_at),
        "met_at": instant(state.met_at),
        "breached": state.breached,
        "breached_at": instant(state.breached_at),
        "paused": state.paused,
    }


def compute(raw: bytes | str) -> dict[str, Any]:
    """The tool's answer for one scenario; raises ValueError (one line) when it is invalid."""
    try:
        scenario = msgspec.json.decode(raw, type=Scenario)
    except msgspec.DecodeError as exc:
        raise ValueError(f"invalid scenario: {exc}") from None
    calendar = (
        BusinessCalendar.twenty_four_seven("UTC")
        if scenario.calendar is None
        else BusinessCalendar.from_spec(scenario.calendar)
    )
    if scenario.events:
        calendar.check_open_within(scenario.events[0].at)
    clocks = compute_clocks(scenario.policy, calendar, scenario.events, scenario.now)
    return {
        "first_response": _clock_json(clocks.first_response, calendar),
        "next_response": _clock_json(clocks.next_response, calendar),
        "resolution": _clock_json(clocks.resolution, calendar),
    }


def main(stdin: TextIO, stdout: TextIO, stderr: TextIO) -> int:
    """Exit status 0 with the clocks on stdout, or 2 with one error line on stderr."""
    try:
        answer = compute(stdin.read())
    except ValueError as exc:  # InvalidCalendar, InvalidEvents, msgspec errors: all the input
        message = " ".join(str(exc).split())
        stderr.write(f"{PROG}: {message}\n")
        return 2
    stdout.write(msgspec.json.encode(answer).decode() + "\n")
    return 0
