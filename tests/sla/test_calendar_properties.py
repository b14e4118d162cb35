"""Properties of business-time arithmetic on random calendars (weekly hours with overnight
intervals, Czech holidays, custom closed and extra open dates) at random instants of 2026,
weighted towards the Prague DST weekends and Christmas."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from helpdesk.sla.calendar import WEEKDAYS, BusinessCalendar

PRAGUE = ZoneInfo("Europe/Prague")
YEAR_START = datetime(2026, 1, 1, tzinfo=UTC)
HOT_SPOTS = [
    datetime(2026, 3, 27, tzinfo=UTC),
    datetime(2026, 10, 23, tzinfo=UTC),
    datetime(2026, 12, 22, tzinfo=UTC),
    datetime(2026, 10, 26, tzinfo=UTC),
]
CZ_2026 = {
    date(2026, 1, 1),
    date(2026, 4, 3),
    date(2026, 4, 6),
    date(2026, 5, 1),
    date(2026, 5, 8),
    date(2026, 7, 5),
    date(2026, 7, 6),
    date(2026, 9, 28),
    date(2026, 10, 28),
    date(2026, 11, 17),
    date(2026, 12, 24),
    date(2026, 12, 25),
    date(2026, 12, 26),
    date(2027, 1, 1),  # windows starting late in December reach into 2027
}


def _hhmm(minute: int) -> str:
    return "24:00" if minute == 1440 else f"{minute // 60:02d}:{minute % 60:02d}"


@st.composite
def calendars(draw: st.DrawFn, step: int = 60) -> tuple[dict[str, Any], list[tuple[int, int]]]:
    """A calendar spec and its open stretches as (start, end) minutes into the week.

    Boundaries fall on multiples of `step` minutes; 15 puts some inside the DST gap and fold.
    """
    week = 7 * 1440
    points = draw(
        st.lists(st.integers(0, week // step), min_size=2, max_size=12, unique=True).map(
            lambda found: sorted(point * step for point in found)
        )
    )
    stretches = [(a, min(b, a + 1440)) for a, b in zip(points[::2], points[1::2], strict=False)]
    hours: dict[str, list[list[str]]] = {day: [] for day in WEEKDAYS}
    for a, b in stretches:
        # Same day: plain end (24:00 at midnight); otherwise an end at or before the start.
        end = b - a // 1440 * 1440 if b <= (a // 1440 + 1) * 1440 else b % 1440
        hours[WEEKDAYS[a // 1440]].append([_hhmm(a % 1440), _hhmm(end)])
    spec: dict[str, Any] = {"timezone": "Europe/Prague", "hours": hours}
    if draw(st.booleans()):
        spec["country_holidays"] = "CZ"
    closed = draw(st.lists(st.dates(date(2026, 1, 1), date(2026, 12, 31)), max_size=3))
    spec["holidays"] = [day.isoformat() for day in closed]
    extra = draw(st.lists(st.dates(date(2026, 1, 1), date(2026, 12, 31)), max_size=2))
    spec["extra_open"] = {day.isoformat(): [["10:00", "14:00"]] for day in extra}
    return spec, stretches


def _oracle_open(spec: dict[str, Any], stretches: list[tuple[int, int]], at: datetime) -> bool:
    """Wall-clock reading of the rules, minute by minute: open if the local date and time
    fall in the date's own hours or the previous day's overnight spill (boundaries are whole
    hours, so the DST gap and fold need no special case for this check)."""
    local = at.astimezone(PRAGUE)
    day, minute = local.date(), local.hour * 60 + local.minute
    extra = {date.fromisoformat(d): v for d, v in spec["extra_open"].items()}
    if day in extra:
        return 10 * 60 <= minute < 14 * 60
    closed = {date.fromisoformat(d) for d in spec["holidays"]}
    if spec.get("country_holidays") == "CZ":
        closed |= CZ_2026
    if day in closed:
        return False
    day_start = day.weekday() * 1440
    own = any(day_start <= a <= day_start + minute < b for a, b in stretches)
    previous = day - timedelta(days=1)
    if own or previous in extra:
        return own  # an extra open date's hours do not run past its midnight
    previous_start = previous.weekday() * 1440
    return (
        any(previous_start <= a < day_start and day_start + minute < b for a, b in stretches)
        if day.weekday()
        else False
    )


minutes_into_2026 = st.integers(0, 364 * 24 * 60)
near_hot_spots = st.tuples(st.sampled_from(HOT_SPOTS), st.integers(0, 5 * 24 * 60)).map(
    lambda pair: pair[0] + timedelta(minutes=pair[1])
)
instants = st.one_of(
    minutes_into_2026.map(lambda m: YEAR_START + timedelta(minutes=m)), near_hot_spots
)
precise_instants = st.tuples(instants, st.integers(0, 59)).map(
    lambda pair: pair[0] + timedelta(seconds=pair[1])
)
durations = st.integers(0, 3 * 24 * 60 * 60).map(lambda s: timedelta(seconds=s))


@settings(max_examples=150, deadline=None)
@given(st.sampled_from([60, 15]).flatmap(lambda step: calendars(step)), precise_instants, durations)
def test_adding_then_measuring_round_trips(
    drawn: tuple[dict[str, Any], list[tuple[int, int]]], start: datetime, duration: timedelta
) -> None:
    calendar = BusinessCalendar.parse(drawn[0])
    end = calendar.add_business_time(start, duration)
    assert end >= start
    assert calendar.business_time_between(start, end) == duration


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from([60, 15]).flatmap(lambda step: calendars(step)),
    precise_instants,
    durations.filter(bool),
)
def test_results_never_fall_strictly_inside_closed_time(
    drawn: tuple[dict[str, Any], list[tuple[int, int]]], start: datetime, duration: timedelta
) -> None:
    calendar = BusinessCalendar.parse(drawn[0])
    end = calendar.add_business_time(start, duration)
    # The last counted instant is open: the result is open time or its closing instant.
    assert calendar.is_open(end - timedelta(microseconds=1))
    assert end > calendar.next_open(start)


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from([60, 15]).flatmap(lambda step: calendars(step)),
    precise_instants,
    st.integers(0, 3 * 24 * 3600),
    durations,
)
def test_adding_is_monotonic_in_the_start(
    drawn: tuple[dict[str, Any], list[tuple[int, int]]],
    start: datetime,
    later_by: int,
    duration: timedelta,
) -> None:
    calendar = BusinessCalendar.parse(drawn[0])
    later = start + timedelta(seconds=later_by)
    assert calendar.add_business_time(start, duration) <= calendar.add_business_time(
        later, duration
    )


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from([60, 15]).flatmap(lambda step: calendars(step)),
    precise_instants,
    st.integers(0, 4 * 24 * 3600),
    st.integers(0, 4 * 24 * 3600),
)
def test_measuring_adds_up_over_consecutive_stretches(
    drawn: tuple[dict[str, Any], list[tuple[int, int]]], a: datetime, ab: int, bc: int
) -> None:
    calendar = BusinessCalendar.parse(drawn[0])
    b, c = a + timedelta(seconds=ab), a + timedelta(seconds=ab + bc)
    whole = calendar.business_time_between(a, c)
    assert whole == calendar.business_time_between(a, b) + calendar.business_time_between(b, c)
    assert whole <= c - a


@settings(max_examples=60, deadline=None)
@given(calendars(), instants, st.integers(0, 3 * 24 * 60))
def test_measuring_agrees_with_a_minute_by_minute_wall_clock_reading(
    drawn: tuple[dict[str, Any], list[tuple[int, int]]], start: datetime, minutes: int
) -> None:
    spec, stretches = drawn
    calendar = BusinessCalendar.parse(spec)
    expected = sum(
        _oracle_open(spec, stretches, start + timedelta(minutes=m)) for m in range(minutes)
    )
    assert calendar.business_minutes_between(start, start + timedelta(minutes=minutes)) == expected
    assert calendar.is_open(start) == _oracle_open(spec, stretches, start)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["Europe/Prague", "America/New_York", "UTC"]),
    precise_instants,
    durations,
    st.integers(0, 400 * 24 * 60 * 60).map(lambda s: timedelta(seconds=s)),
)
def test_calendar_time_shortcut_agrees_with_walking_the_days(
    zone: str, start: datetime, duration: timedelta, span: timedelta
) -> None:
    """24x7 takes the shortcut (plain subtraction); the same hours with one closed date
    long before walk the days, DST weekends included. Both must agree."""
    shortcut = BusinessCalendar.twenty_four_seven(zone)
    walked = BusinessCalendar.parse(
        {
            "timezone": zone,
            "hours": {day: [["00:00", "24:00"]] for day in WEEKDAYS},
            "holidays": ["2000-01-01"],
        }
    )
    assert shortcut.always_open and not walked.always_open
    assert shortcut.add_business_time(start, duration) == walked.add_business_time(start, duration)
    end = start + span
    assert shortcut.business_time_between(start, end) == walked.business_time_between(start, end)
