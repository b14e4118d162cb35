"""Business time a supervisor can check on a wall calendar: nights, weekends, Czech holidays,
both 2026 daylight-saving changes in Prague, overnight shifts. Expected values worked out by
hand (Mon-Fri 09:00-17:00 is 480 minutes a day)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from helpdesk.sla.calendar import BusinessCalendar, InvalidCalendar

PRAGUE = ZoneInfo("Europe/Prague")
WORKDAYS = ("mon", "tue", "wed", "thu", "fri")
EVERY_DAY = (*WORKDAYS, "sat", "sun")


def office(**extra: Any) -> BusinessCalendar:
    hours = {day: [["09:00", "17:00"]] for day in WORKDAYS}
    return BusinessCalendar.parse(
        {"timezone": "Europe/Prague", "hours": hours, "country_holidays": "CZ", **extra}
    )


def night_shift(**extra: Any) -> BusinessCalendar:
    hours = {day: [["22:00", "06:00"]] for day in EVERY_DAY}
    return BusinessCalendar.parse({"timezone": "Europe/Prague", "hours": hours, **extra})


def always() -> BusinessCalendar:
    return BusinessCalendar.parse({"timezone": "Europe/Prague"})


def t(text: str) -> datetime:
    """An ISO instant with its offset, as a supervisor reads it off the screen."""
    return datetime.fromisoformat(text)


def test_ticket_arriving_at_night_counts_from_the_morning() -> None:
    assert office().add_business_minutes(t("2026-03-10T22:30+01:00"), 60) == t(
        "2026-03-11T10:00+01:00"
    )


def test_friday_evening_ticket_is_due_monday_morning() -> None:
    assert office().add_business_minutes(t("2026-03-13T18:00+01:00"), 60) == t(
        "2026-03-16T10:00+01:00"
    )
    assert office().add_business_minutes(t("2026-03-13T16:30+01:00"), 60) == t(
        "2026-03-16T09:30+01:00"
    )


def test_exact_fit_ends_on_the_closing_instant() -> None:
    calendar = office()
    assert calendar.add_business_minutes(t("2026-03-16T16:00+01:00"), 60) == t(
        "2026-03-16T17:00+01:00"
    )
    assert calendar.add_business_minutes(t("2026-03-16T16:00+01:00"), 61) == t(
        "2026-03-17T09:01+01:00"
    )


def test_czech_independence_day_is_closed() -> None:
    # Wednesday 2026-10-28 is a public holiday: 30 minutes on Tuesday, 30 on Thursday.
    calendar = office()
    assert calendar.add_business_minutes(t("2026-10-27T16:30+01:00"), 60) == t(
        "2026-10-29T09:30+01:00"
    )
    assert not calendar.is_open(t("2026-10-28T10:00+01:00"))


def test_christmas_holidays_and_the_weekend_are_skipped() -> None:
    # 24, 25 (Thu, Fri) and 26 (Sat) December are holidays: Wednesday, then Monday 28th.
    calendar = office()
    assert calendar.add_business_minutes(t("2026-12-23T16:00+01:00"), 120) == t(
        "2026-12-28T10:00+01:00"
    )
    minutes = calendar.business_minutes_between(
        t("2026-12-23T09:00+01:00"), t("2026-12-28T09:00+01:00")
    )
    assert minutes == 480


def test_custom_closed_date() -> None:
    calendar = office(holidays=["2026-03-16"])
    assert calendar.add_business_minutes(t("2026-03-13T16:30+01:00"), 60) == t(
        "2026-03-17T09:30+01:00"
    )


def test_business_day_across_the_spring_change() -> None:
    # Clocks go forward on Sunday 2026-03-29: Friday is +01:00, Monday +02:00.
    calendar = office()
    assert calendar.add_business_minutes(t("2026-03-27T16:30+01:00"), 60) == t(
        "2026-03-30T09:30+02:00"
    )
    friday_to_monday = calendar.business_minutes_between(
        t("2026-03-27T09:00+01:00"), t("2026-03-30T17:00+02:00")
    )
    assert friday_to_monday == 960


def test_business_day_across_the_autumn_change() -> None:
    assert office().add_business_minutes(t("2026-10-23T16:30+02:00"), 60) == t(
        "2026-10-26T09:30+01:00"
    )


def test_calendar_time_is_real_minutes_across_both_changes() -> None:
    calendar = always()
    # 01:30 CET + 60 real minutes: 02:30 does not exist that night, so 03:30 CEST.
    assert calendar.add_business_minutes(t("2026-03-29T01:30+01:00"), 60) == t(
        "2026-03-29T03:30+02:00"
    )
    # 02:30 CEST + 60 real minutes is the second 02:30, in CET.
    assert calendar.add_business_minutes(t("2026-10-25T02:30+02:00"), 60) == t(
        "2026-10-25T02:30+01:00"
    )
    short_day = calendar.business_minutes_between(
        t("2026-03-29T00:00+01:00"), t("2026-03-30T00:00+02:00")
    )
    long_day = calendar.business_minutes_between(
        t("2026-10-25T00:00+02:00"), t("2026-10-26T00:00+01:00")
    )
    assert (short_day, long_day) == (23 * 60, 25 * 60)


def test_overnight_shift_lasts_7_hours_in_march_and_9_in_october() -> None:
    calendar = night_shift()
    march = calendar.business_minutes_between(
        t("2026-03-28T21:00+01:00"), t("2026-03-29T12:00+02:00")
    )
    october = calendar.business_minutes_between(
        t("2026-10-24T21:00+02:00"), t("2026-10-25T12:00+01:00")
    )
    assert (march, october) == (420, 540)
    # 480 minutes from Saturday 22:00: 420 that short night, the last 60 the next night.
    assert calendar.add_business_minutes(t("2026-03-28T22:00+01:00"), 480) == t(
        "2026-03-29T23:00+02:00"
    )
    # The long night holds all 480: 20:00Z + 8 h = 04:00Z = 05:00 CET.
    assert calendar.add_business_minutes(t("2026-10-24T22:00+02:00"), 480) == t(
        "2026-10-25T05:00+01:00"
    )


def test_overnight_shift_is_clipped_at_midnight_by_a_holiday() -> None:
    # 28 October is closed: Tuesday's shift stops at midnight, Wednesday's own shift does not
    # open, and the part of it after midnight (Thursday, a working day) stays open.
    calendar = night_shift(country_holidays="CZ")
    assert calendar.is_open(t("2026-10-27T23:00+01:00"))
    assert not calendar.is_open(t("2026-10-28T03:00+01:00"))
    assert not calendar.is_open(t("2026-10-28T23:00+01:00"))
    assert calendar.is_open(t("2026-10-29T03:00+01:00"))
    minutes = calendar.business_minutes_between(
        t("2026-10-27T21:00+01:00"), t("2026-10-29T12:00+01:00")
    )
    assert minutes == 2 * 60 + 6 * 60


def test_boundaries_inside_the_dst_gap_and_fold() -> None:
    calendar = BusinessCalendar.parse(
        {"timezone": "Europe/Prague", "hours": {"sun": [["02:30", "04:00"]]}}
    )
    # 02:30 does not exist on 29 March: it shifts forward by the gap, to 03:30 CEST.
    assert not calendar.is_open(t("2026-03-29T03:15+02:00"))
    assert calendar.is_open(t("2026-03-29T03:30+02:00"))
    march = calendar.business_minutes_between(
        t("2026-03-29T00:00+01:00"), t("2026-03-29T12:00+02:00")
    )
    assert march == 30
    # 02:30 happens twice on 25 October: the first one (CEST) opens, 04:00 CET closes.
    october = calendar.business_minutes_between(
        t("2026-10-25T00:00+02:00"), t("2026-10-25T12:00+01:00")
    )
    assert october == 150
    assert calendar.is_open(t("2026-10-25T02:30+02:00"))


def test_extra_open_saturday_and_extra_open_holiday() -> None:
    calendar = office(
        extra_open={"2026-11-28": [["09:00", "13:00"]], "2026-12-24": [["09:00", "12:00"]]}
    )
    assert calendar.add_business_minutes(t("2026-11-27T16:30+01:00"), 60) == t(
        "2026-11-28T09:30+01:00"
    )
    assert calendar.add_business_minutes(t("2026-12-23T16:30+01:00"), 60) == t(
        "2026-12-24T09:30+01:00"
    )
    assert not calendar.is_open(t("2026-12-24T12:00+01:00"))


def test_end_at_midnight_and_touching_intervals_join() -> None:
    calendar = BusinessCalendar.parse(
        {
            "timezone": "Europe/Prague",
            "hours": {
                "mon": [["09:00", "12:00"], ["12:00", "17:00"], ["18:00", "24:00"]],
                "tue": [["00:00", "02:00"]],
            },
        }
    )
    assert calendar.add_business_minutes(t("2026-03-16T09:00+01:00"), 300) == t(
        "2026-03-16T14:00+01:00"
    )
    assert calendar.add_business_minutes(t("2026-03-16T23:30+01:00"), 60) == t(
        "2026-03-17T00:30+01:00"
    )


def test_next_open() -> None:
    calendar = office()
    assert calendar.next_open(t("2026-03-14T12:00+01:00")) == t("2026-03-16T09:00+01:00")
    assert calendar.next_open(t("2026-03-16T11:00+01:00")) == t("2026-03-16T11:00+01:00")
    assert calendar.next_open(t("2026-03-16T17:00+01:00")) == t("2026-03-17T09:00+01:00")


def test_results_are_utc_and_other_offsets_are_accepted() -> None:
    due = office().add_business_minutes(datetime(2026, 3, 16, 8, 0, tzinfo=UTC), 30)
    assert due.utcoffset() == timedelta(0)
    assert due == t("2026-03-16T09:30+01:00")


def test_zero_minutes_is_the_start_and_end_before_start_is_zero() -> None:
    calendar = office()
    assert calendar.add_business_minutes(t("2026-03-14T12:00+01:00"), 0) == t(
        "2026-03-14T12:00+01:00"
    )
    assert (
        calendar.business_minutes_between(t("2026-03-16T12:00+01:00"), t("2026-03-16T10:00+01:00"))
        == 0
    )


def test_a_long_target_does_not_walk_minute_by_minute() -> None:
    # No holidays: 42 weeks of 2400 minutes from Monday 5 January end on Friday 23 October
    # at closing time (still CEST then).
    hours = {day: [["09:00", "17:00"]] for day in WORKDAYS}
    calendar = BusinessCalendar.parse({"timezone": "Europe/Prague", "hours": hours})
    assert calendar.add_business_minutes(t("2026-01-05T09:00+01:00"), 42 * 2400) == t(
        "2026-10-23T17:00+02:00"
    )


def test_naive_datetimes_are_refused() -> None:
    calendar = office()
    with pytest.raises(ValueError, match="timezone-aware"):
        calendar.add_business_minutes(datetime(2026, 3, 16, 9), 60)
    with pytest.raises(ValueError, match="timezone-aware"):
        calendar.is_open(datetime(2026, 3, 16, 9))


def test_a_calendar_that_never_opens_again_fails_instead_of_looping() -> None:
    calendar = BusinessCalendar.parse(
        {
            "timezone": "Europe/Prague",
            "hours": {},
            "extra_open": {"2026-01-05": [["09:00", "17:00"]]},
        }
    )
    assert calendar.add_business_minutes(t("2026-01-05T16:00+01:00"), 60) == t(
        "2026-01-05T17:00+01:00"
    )
    with pytest.raises(InvalidCalendar, match="no open time within"):
        calendar.add_business_minutes(t("2026-02-01T09:00+01:00"), 60)
    with pytest.raises(InvalidCalendar, match="no open time within 366 days"):
        calendar.check_open_within(t("2026-02-01T09:00+01:00"))
    calendar.check_open_within(t("2025-12-01T09:00+01:00"))


def test_holidays_are_cached_per_year() -> None:
    calendar = office(holidays=["2027-01-04"])
    assert calendar.is_closed_date(date(2026, 12, 24))
    assert calendar.is_closed_date(date(2027, 1, 4))
    assert not calendar.is_closed_date(date(2026, 12, 23))
    assert set(calendar._holidays) == {2026, 2027}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"timezone": "Europe/Prag"}, "unknown time zone 'Europe/Prag'"),
        (
            {"timezone": "UTC", "hours": {"mon": [["09:00", "17:00"], ["16:00", "18:00"]]}},
            "mon 09:00-17:00 overlaps mon 16:00-18:00",
        ),
        (
            {
                "timezone": "UTC",
                "hours": {"mon": [["22:00", "06:00"]], "tue": [["05:00", "07:00"]]},
            },
            "mon 22:00-06:00 overlaps tue 05:00-07:00",
        ),
        (
            {
                "timezone": "UTC",
                "hours": {"sun": [["20:00", "02:00"]], "mon": [["01:00", "09:00"]]},
            },
            "sun 20:00-02:00 overlaps mon 01:00-09:00",
        ),
        ({"timezone": "UTC", "hours": {"mon": [["9:00", "17:00"]]}}, "'9:00' is not a time"),
        ({"timezone": "UTC", "hours": {"mon": [["24:00", "02:00"]]}}, "'24:00' is not a time"),
        ({"timezone": "UTC", "hours": {"mon": [["09:00", "24:30"]]}}, "'24:30' is not a time"),
        ({"timezone": "UTC", "hours": {"monday": [["09:00", "17:00"]]}}, "unknown day 'monday'"),
        ({"timezone": "UTC", "hours": {}}, "no open time"),
        ({"timezone": "UTC", "hours": {"mon": []}}, "no open time"),
        ({"timezone": "UTC", "country_holidays": "XX"}, "no public holidays known for 'XX'"),
        (
            {
                "timezone": "UTC",
                "extra_open": {"2026-11-28": [["09:00", "13:00"], ["12:00", "14:00"]]},
            },
            "extra_open.2026-11-28: 09:00-13:00 overlaps 12:00-14:00",
        ),
        ({"timezone": "UTC", "holidays": ["2026-02-30"]}, "calendar:"),
        ({"timezone": "UTC", "workdays": []}, "calendar:"),
    ],
)
def test_invalid_calendars_are_refused_with_one_clear_error(
    spec: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidCalendar) as caught:
        BusinessCalendar.parse(spec)
    assert message in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_two_countries() -> None:
    # 29 August (Slovak National Uprising) is a Saturday in 2026; 1 September 2026 is
    # Tuesday, Slovak Constitution Day until 2024 only; 6 January 2026 (Epiphany, Tuesday)
    # is Slovak, not Czech.
    hours = {day: [["09:00", "17:00"]] for day in WORKDAYS}
    both = BusinessCalendar.parse(
        {"timezone": "Europe/Prague", "hours": hours, "country_holidays": ["CZ", "SK"]}
    )
    czech = office()
    assert not both.is_open(t("2026-01-06T10:00+01:00"))
    assert czech.is_open(t("2026-01-06T10:00+01:00"))


def test_a_shared_calendar_is_one_object_per_spec_and_an_edit_is_a_new_one() -> None:
    spec = {"timezone": "Europe/Prague", "hours": {"mon": [["08:00", "16:00"]]}}
    first = BusinessCalendar.shared(spec)
    assert BusinessCalendar.shared(dict(reversed(spec.items()))) is first  # key order
    edited = BusinessCalendar.shared({**spec, "hours": {"mon": [["09:00", "16:00"]]}})
    assert edited is not first
    monday_8_30 = datetime(2026, 11, 23, 7, 30, tzinfo=UTC)
    assert first.is_open(monday_8_30) and not edited.is_open(monday_8_30)
