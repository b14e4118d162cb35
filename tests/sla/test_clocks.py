"""The three clocks as a supervisor reads them. Office hours Mon-Fri 09:00-17:00 Prague with
Czech holidays; 16 March 2026 is a Monday (+01:00). Expected instants worked out by hand."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from helpdesk.sla.calendar import BusinessCalendar
from helpdesk.sla.clocks import (
    ClockState,
    InvalidEvents,
    SlaEvent,
    SlaPolicy,
    TicketClocks,
    compute_clocks,
)

OFFICE = BusinessCalendar.parse(
    {
        "timezone": "Europe/Prague",
        "hours": {day: [["09:00", "17:00"]] for day in ("mon", "tue", "wed", "thu", "fri")},
        "country_holidays": "CZ",
    }
)
FR = SlaPolicy(first_response_minutes=60)
ALL = SlaPolicy(first_response_minutes=60, next_response_minutes=240, resolution_minutes=480)


def t(text: str) -> datetime:
    """'2026-03-16 09:00' in Prague (winter time unless an offset is given)."""
    if "+" in text:
        return datetime.fromisoformat(text)
    return datetime.fromisoformat(text.replace(" ", "T") + "+01:00")


def ev(at: str, type: str, **extra: Any) -> SlaEvent:
    return SlaEvent(at=t(at), type=type, **extra)  # type: ignore[arg-type]


def run(
    policy: SlaPolicy, events: list[SlaEvent], now: str | None = None, **options: Any
) -> TicketClocks:
    return compute_clocks(policy, OFFICE, events, None if now is None else t(now), **options)


def clock(
    due: str | None,
    warn: str | None,
    met: str | None = None,
    breached_at: str | None = None,
    paused: bool = False,
) -> ClockState:
    def at(text: str | None) -> datetime | None:
        return None if text is None else t(text)

    return ClockState(
        due_at=at(due),
        warn_at=at(warn),
        met_at=at(met),
        breached=breached_at is not None,
        breached_at=at(breached_at),
        paused=paused,
    )


# --- first response -----------------------------------------------------------------------


def test_agent_reply_meets_first_response() -> None:
    clocks = run(FR, [ev("2026-03-16 09:00", "created"), ev("2026-03-16 09:40", "agent_reply")])
    assert clocks.first_response == clock(
        "2026-03-16 10:00", "2026-03-16 09:45", met="2026-03-16 09:40"
    )
    assert clocks.next_response is None
    assert clocks.resolution is None


def test_reply_exactly_at_due_is_on_time_and_a_minute_later_is_late() -> None:
    on_time = run(FR, [ev("2026-03-16 09:00", "created"), ev("2026-03-16 10:00", "agent_reply")])
    late = run(FR, [ev("2026-03-16 09:00", "created"), ev("2026-03-16 10:01", "agent_reply")])
    assert on_time.first_response == clock(
        "2026-03-16 10:00", "2026-03-16 09:45", met="2026-03-16 10:00"
    )
    assert late.first_response == clock(
        "2026-03-16 10:00",
        "2026-03-16 09:45",
        met="2026-03-16 10:01",
        breached_at="2026-03-16 10:00",
    )


def test_ticket_arriving_at_night_is_due_an_hour_after_opening() -> None:
    events = [ev("2026-03-10 22:30", "created")]
    before = run(FR, events, now="2026-03-11 10:00")
    after = run(FR, events, now="2026-03-11 10:00:01")
    assert before.first_response == clock("2026-03-11 10:00", "2026-03-11 09:45")
    assert before.next_due_at == t("2026-03-11 10:00")
    assert before.next_warn_at == t("2026-03-11 09:45")
    assert after.first_response == clock(
        "2026-03-11 10:00", "2026-03-11 09:45", breached_at="2026-03-11 10:00"
    )


def test_friday_evening_ticket_answered_monday_morning_is_on_time() -> None:
    clocks = run(FR, [ev("2026-03-13 18:00", "created"), ev("2026-03-16 09:59", "agent_reply")])
    assert clocks.first_response == clock(
        "2026-03-16 10:00", "2026-03-16 09:45", met="2026-03-16 09:59"
    )


def test_reply_after_closing_but_before_opening_is_late() -> None:
    # Due at 17:00 Monday: a reply at 18:00 is late even though no business time passed.
    clocks = run(FR, [ev("2026-03-16 16:00", "created"), ev("2026-03-16 18:00", "agent_reply")])
    assert clocks.first_response == clock(
        "2026-03-16 17:00",
        "2026-03-16 16:45",
        met="2026-03-16 18:00",
        breached_at="2026-03-16 17:00",
    )


def test_ticket_on_a_czech_holiday_counts_from_the_next_working_day() -> None:
    clocks = run(FR, [ev("2026-10-28 10:00", "created")])
    assert clocks.first_response == clock("2026-10-29 10:00", "2026-10-29 09:45")


def test_first_response_across_the_spring_dst_change() -> None:
    # 30 minutes on Friday (+01:00), the rest on Monday (+02:00); warning at 45 minutes.
    clocks = run(FR, [ev("2026-03-27 16:30", "created")])
    assert clocks.first_response == clock("2026-03-30T09:30+02:00", "2026-03-30T09:15+02:00")


def test_first_response_across_the_autumn_dst_change() -> None:
    clocks = run(FR, [ev("2026-10-23T16:30+02:00", "created")])
    assert clocks.first_response == clock("2026-10-26 09:30", "2026-10-26 09:15")


def test_auto_replies_bots_and_notes_do_not_answer_the_customer() -> None:
    events = [
        ev("2026-03-16 09:00", "created"),
        ev("2026-03-16 09:01", "auto_reply"),
        ev("2026-03-16 09:02", "bot_reply"),
        ev("2026-03-16 09:03", "note"),
        ev("2026-03-16 09:04", "customer_auto_reply"),
    ]
    clocks = run(FR, events, now="2026-03-16 10:30")
    assert clocks.first_response == clock(
        "2026-03-16 10:00", "2026-03-16 09:45", breached_at="2026-03-16 10:00"
    )


def test_calendar_time_policy_ignores_office_hours() -> None:
    policy = SlaPolicy(first_response_minutes=60, business_hours=False)
    clocks = run(policy, [ev("2026-03-13 18:00", "created")])
    assert clocks.first_response == clock("2026-03-13 19:00", "2026-03-13 18:45")


def test_warning_keeps_the_seconds() -> None:
    # 75 % of 25 minutes is 18 minutes 45 seconds.
    policy = SlaPolicy(first_response_minutes=25)
    clocks = run(policy, [ev("2026-03-16 09:00", "created")])
    assert clocks.first_response == clock("2026-03-16 09:25", "2026-03-16 09:18:45")


def test_ticket_opened_by_an_agent_has_no_first_response_clock() -> None:
    events = [
        ev("2026-03-16 09:00", "created", origin="agent"),
        ev("2026-03-16 11:00", "customer_message"),
    ]
    clocks = run(ALL, events, now="2026-03-16 11:30")
    assert clocks.first_response is None
    # The customer's answer starts a next-response cycle: 240 minutes from 11:00.
    assert clocks.next_response == clock("2026-03-16 15:00", "2026-03-16 14:00")


def test_ticket_opened_by_a_notice_owes_no_first_response_until_the_customer_writes() -> None:
    """A reaction on a conversation without a ticket opens one (origin `notice`): nobody
    wrote, so no first response is owed; the customer's first words start a cycle."""
    events = [
        ev("2026-03-16 09:00", "created", origin="notice"),
        ev("2026-03-16 09:05", "customer_auto_reply"),
    ]
    quiet = run(ALL, events, now="2026-03-16 11:00")
    assert quiet.first_response is None and quiet.next_response is None
    wrote = run(ALL, [*events, ev("2026-03-16 11:00", "customer_message")], now="2026-03-16 11:30")
    assert wrote.next_response == clock("2026-03-16 15:00", "2026-03-16 14:00")


def test_missing_or_zero_targets_do_not_apply() -> None:
    policy = SlaPolicy(first_response_minutes=0, resolution_minutes=None)
    clocks = run(policy, [ev("2026-03-16 09:00", "created"), ev("2026-03-16 09:10", "agent_reply")])
    assert clocks == TicketClocks(first_response=None, next_response=None, resolution=None)


# --- next response ------------------------------------------------------------------------


def test_next_response_cycle_starts_at_the_oldest_unanswered_message() -> None:
    events = [
        ev("2026-03-16 09:00", "created"),
        ev("2026-03-16 09:10", "agent_reply"),
        ev("2026-03-16 10:00", "customer_message"),
        ev("2026-03-16 10:30", "customer_message"),  # does not restart the cycle
        ev("2026-03-16 15:00", "agent_reply"),
    ]
    policy = SlaPolicy(first_response_minutes=60, next_response_minutes=240)
    answered = run(policy, events)
    # Started 10:00: due 14:00, warning at 180 minutes 13:00; answered at 15:00, late.
    first_cycle = clock(
        "2026-03-16 14:00",
        "2026-03-16 13:00",
        met="2026-03-16 15:00",
        breached_at="2026-03-16 14:00",
    )
    assert answered.next_response == first_cycle

    later = run(
        policy, [*events, ev("2026-03-16 15:30", "customer_message")], now="2026-03-16 16:00"
    )
    # 90 minutes left on Monday, 150 on Tuesday; warning at 180: 90 + 90.
    assert later.next_response == clock("2026-03-17 11:30", "2026-03-17 10:30")
    assert [cycle.started_at for cycle in later.next_response_cycles] == [
        t("2026-03-16 10:00"),
        t("2026-03-16 15:30"),
    ]
    assert later.next_response_cycles[0].clock == first_cycle


def test_no_next_response_cycle_before_the_first_response() -> None:
    events = [
        ev("2026-03-16 09:00", "created"),
        ev("2026-03-16 09:20", "customer_message"),
        ev("2026-03-16 09:30", "customer_message"),
    ]
    clocks = run(ALL, events, now="2026-03-16 09:40")
    assert clocks.next_response is None
    assert clocks.first_response == clock("2026-03-16 10:00", "2026-03-16 09:45")


def test_customer_auto_reply_does_not_start_a_cycle_or_reopen() -> None:
    events = [
        ev("2026-03-16 09:00", "created"),
        ev("2026-03-16 09:10", "agent_reply"),
        ev("2026-03-16 09:20", "solved"),
        ev("2026-03-16 09:30", "customer_auto_reply"),
    ]
    clocks = run(ALL, events, now="2026-03-16 12:00")
    assert clocks.next_response is None
    # Resolution stays met at the solve: 20 minutes counted, the rest projected from there.
    assert clocks.resolution == clock(
        "2026-03-16 17:00", "2026-03-16 15:00", met="2026-03-16 09:20"
    )


# --- pauses, solves, reopens ----------------------------------------------------------------


def test_pending_pauses_resolution_and_the_customer_resumes_it() -> None:
    policy = SlaPolicy(first_response_minutes=60, resolution_minutes=480)
    events = [
        ev("2026-03-16 09:00", "created"),
        ev("2026-03-16 09:30", "agent_reply"),
        ev("2026-03-16 11:00", "status", status="pending"),  # 120 minutes counted
    ]
    paused = run(policy, events, now="2026-03-16 12:00")
    assert paused.resolution == clock(None, None, paused=True)
    assert paused.first_response == clock(
        "2026-03-16 10:00", "2026-03-16 09:45", met="2026-03-16 09:30"
    )
    assert paused.next_due_at is None

    resumed = run(
        policy, [*events, ev("2026-03-17 10:00", "customer_message")], now="2026-03-17 10:30"
    )
    # 360 minutes left from Tuesday 10:00; the warning (360 in all) 240 minutes from there.
    assert resumed.resolution == clock("2026-03-17 16:00", "2026-03-17 14:00")
    assert resumed.next_due_at == t("2026-03-17 16:00")
    assert resumed.next_warn_at == t("2026-03-17 14:00")


def test_pending_does_not_hide_an_unanswered_customer_by_default() -> None:
    events = [ev("2026-03-16 09:00", "created"), ev("2026-03-16 09:10", "status", status="pending")]
    clocks = run(FR, events, now="2026-03-16 10:30")
    assert clocks.first_response == clock(
        "2026-03-16 10:00", "2026-03-16 09:45", breached_at="2026-03-16 10:00"
    )


def test_pausable_first_response_stops_and_resumes() -> None:
    policy = SlaPolicy(first_response_minutes=60, pausable=("first_response", "resolution"))
    events = [ev("2026-03-16 09:00", "created"), ev("2026-03-16 09:10", "status", status="pending")]
    assert run(policy, events, now="2026-03-16 10:30").first_response == clock(
        None, None, paused=True
    )
    resumed = run(policy, [*events, ev("2026-03-16 11:00", "status", status="open")])
    # 10 minutes counted before the pause: 50 left from 11:00, warning 35 from 11:00.
    assert resumed.first_response == clock("2026-03-16 11:50", "2026-03-16 11:35")


def test_breach_stays_while_paused() -> None:
    policy = SlaPolicy(first_response_minutes=60, pausable=("first_response",))
    events = [ev("2026-03-16 09:00", "created"), ev("2026-03-16 10:30", "status", status="pending")]
    clocks = run(policy, events, now="2026-03-16 11:00")
    assert clocks.first_response == clock(None, None, breached_at="2026-03-16 10:00", paused=True)


def test_agent_reply_while_paused_meets_the_clock() -> None:
    policy = SlaPolicy(first_response_minutes=60, pausable=("first_response",))
    events = [
        ev("2026-03-16 09:00", "created"),
        ev("2026-03-16 09:10", "status", status="pending"),
        ev("2026-03-16 11:00", "agent_reply"),
    ]
    # 50 minutes were left when it was met: the due instant shown is projected from 11:00.
    assert run(policy, events).first_response == clock(
        "2026-03-16 11:50", "2026-03-16 11:35", met="2026-03-16 11:00"
    )


def test_ticket_created_pending_starts_with_resolution_stopped() -> None:
    events = [ev("2026-03-16 09:00", "created", status="pending")]
    clocks = run(ALL, events, now="2026-03-16 10:00")
    assert clocks.resolution == clock(None, None, paused=True)
    assert clocks.first_response == clock("2026-03-16 10:00", "2026-03-16 09:45")


def test_reopened_resolution_resumes_with_the_time_already_used() -> None:
    policy = SlaPolicy(resolution_minutes=480)
    events = [ev("2026-03-16 09:00", "created"), ev("2026-03-16 12:00", "solved")]
    solved = run(policy, events, now="2026-03-16 13:00")
    # Met at 12:00 with 180 minutes used: 300 were left (17:00), the warning 180 (15:00).
    assert solved.resolution == clock(
        "2026-03-16 17:00", "2026-03-16 15:00", met="2026-03-16 12:00"
    )

    events.append(ev("2026-03-17 09:00", "reopened"))
    reopened = run(policy, events, now="2026-03-17 10:00")
    assert reopened.resolution == clock("2026-03-17 14:00", "2026-03-17 12:00")

    events.append(ev("2026-03-17 13:00", "solved"))
    resolved = run(policy, events)
    assert resolved.resolution == clock(
        "2026-03-17 14:00", "2026-03-17 12:00", met="2026-03-17 13:00"
    )
    assert (resolved.first_solved_at, resolved.last_solved_at) == (
        t("2026-03-16 12:00"),
        t("2026-03-17 13:00"),
    )


def test_customer_message_reopens_a_solved_ticket_and_starts_a_cycle() -> None:
    events = [
        ev("2026-03-16 09:00", "created"),
        ev("2026-03-16 09:30", "agent_reply"),
        ev("2026-03-16 10:00", "solved"),
        ev("2026-03-17 09:00", "customer_message"),
    ]
    clocks = run(ALL, events, now="2026-03-17 09:30")
    assert clocks.next_response == clock("2026-03-17 13:00", "2026-03-17 12:00")
    # 60 minutes used before the solve: 420 left from Tuesday 09:00; warning 300 from there.
    assert clocks.resolution == clock("2026-03-17 16:00", "2026-03-17 14:00")


def test_solving_stops_first_response_without_meeting_it() -> None:
    events = [ev("2026-03-16 09:00", "created"), ev("2026-03-16 09:30", "solved")]
    solved = run(ALL, events, now="2026-03-16 12:00")
    assert solved.first_response == clock(None, None, paused=True)
    assert solved.next_due_at is None
    reopened = run(ALL, [*events, ev("2026-03-17 09:00", "customer_message")])
    # 30 minutes used on Monday: due 30 minutes after Tuesday 09:00, warning after 15.
    assert reopened.first_response == clock("2026-03-17 09:30", "2026-03-17 09:15")
    assert reopened.next_response is None


def test_resolution_met_on_time_then_reopened_breaches_at_the_reopen() -> None:
    policy = SlaPolicy(resolution_minutes=60)
    events = [
        ev("2026-03-16 09:00", "created"),
        ev("2026-03-16 10:00", "solved"),
        ev("2026-03-16 11:00", "reopened"),
    ]
    assert run(policy, events).resolution == clock(
        "2026-03-16 10:00", "2026-03-16 09:45", breached_at="2026-03-16 11:00"
    )


def test_closing_freezes_every_clock_without_breach() -> None:
    events = [ev("2026-03-16 09:00", "created"), ev("2026-03-16 09:30", "status", status="closed")]
    clocks = run(ALL, events, now="2026-03-20 12:00")
    assert clocks.first_response == clock(None, None, paused=True)
    assert clocks.resolution == clock(None, None, paused=True)


def test_policy_change_dates_a_retroactive_breach_at_the_change() -> None:
    clocks = run(
        FR,
        [ev("2026-03-16 09:00", "created")],
        now="2026-03-16 11:00",
        retargeted_at=t("2026-03-16 10:30"),
    )
    assert clocks.first_response == clock(
        "2026-03-16 10:00", "2026-03-16 09:45", breached_at="2026-03-16 10:30"
    )


# --- invalid input ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("events", "now", "message"),
    [
        ([], None, "first event must be `created`"),
        ([ev("2026-03-16 09:00", "customer_message")], None, "first event must be `created`"),
        (
            [ev("2026-03-16 10:00", "created"), ev("2026-03-16 09:00", "agent_reply")],
            None,
            "events out of order",
        ),
        (
            [ev("2026-03-16 10:00", "created"), ev("2026-03-16 11:00", "created")],
            None,
            "created only once",
        ),
        (
            [ev("2026-03-16 10:00", "created"), ev("2026-03-16 11:00", "status")],
            None,
            "needs `status`",
        ),
        (
            [ev("2026-03-16 10:00", "created"), ev("2026-03-16 11:00", "note", status="open")],
            None,
            "only created and status events carry `status`",
        ),
        (
            [ev("2026-03-16 10:00", "created"), ev("2026-03-16 11:00", "note", origin="agent")],
            None,
            "only the created event carries `origin`",
        ),
        ([ev("2026-03-16 10:00", "created", status="closed")], None, "cannot be created closed"),
        (
            [
                ev("2026-03-16 10:00", "created"),
                ev("2026-03-16 11:00", "status", status="closed"),
                ev("2026-03-16 12:00", "customer_message"),
            ],
            None,
            "closed is final",
        ),
        (
            [ev("2026-03-16 10:00", "created")],
            "2026-03-16 09:00",
            "now (2026-03-16T09:00:00+01:00) is before",
        ),
    ],
)
def test_events_that_cannot_be_replayed_are_refused(
    events: list[SlaEvent], now: str | None, message: str
) -> None:
    with pytest.raises(InvalidEvents) as caught:
        run(ALL, events, now=now)
    assert message in str(caught.value)


def test_naive_event_time_is_refused() -> None:
    with pytest.raises(InvalidEvents, match="UTC offset"):
        compute_clocks(ALL, OFFICE, [SlaEvent(at=datetime(2026, 3, 16, 9), type="created")])


def test_policy_cannot_pause_on_solved() -> None:
    with pytest.raises(ValueError, match="pause_statuses cannot include 'solved'"):
        SlaPolicy(pause_statuses=("pending", "solved"))
