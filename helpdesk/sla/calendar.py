"""Business calendars: when the helpdesk is open, and business time between two instants.

A calendar is a time zone, weekly opening hours, closed dates (country public holidays from
the `holidays` package plus custom dates) and extra open dates, as in the JSON shape

    {"timezone": "Europe/Prague",
     "hours": {"mon": [["09:00", "17:00"]], ..., "sun": []},
     "holidays": ["2026-12-24"], "country_holidays": "CZ",
     "extra_open": {"2026-11-28": [["09:00", "13:00"]]}}

Rules (`docs/sla.md` 1.2), and the choices made where it is silent:

- Intervals are local wall-clock `[start, end)` with minute precision; `24:00` is allowed as an
  end only; an end at or before the start runs overnight into the next day (so `09:00-09:00`
  is 24 hours). Overlaps within the weekly cycle (an overnight interval included) or within
  one extra open date are rejected; touching intervals merge.
- No `hours` key (or `null`) means open 24x7; `"hours": {}` means closed every weekday, which
  is only valid with extra open dates. Holidays still close a 24x7 calendar: an admin who
  lists them wants them.
- Open time belongs to the local date it falls on. A closed date removes all open time on that
  date: the previous evening's overnight interval is clipped at midnight and the closed day's
  own overnight interval still opens the next morning. An extra open date *replaces* that
  date's open time with exactly its listed intervals (winning over a closed date); the
  previous day's overnight interval is clipped at its midnight too, and its own overnight
  interval runs into the next date like a weekly one.
- Each boundary becomes an instant on its own date through zoneinfo with `fold=0`: a wall time
  in the spring gap is shifted forward by the gap (02:30 on 2026-03-29 in Prague opens at
  03:30 CEST), an ambiguous autumn time takes its first occurrence. Lengths are real elapsed
  time: 22:00-06:00 lasts 7 h on the March night and 9 h on the October night.
- `country_holidays` takes one ISO code or a list ("CZ", ["CZ", "SK"]).

All instants are aware; results are in UTC (print them with `zone`). Arithmetic walks open
intervals day by day (cached per local date, holidays cached per year) and gives up with
`InvalidCalendar` after `SEARCH_DAYS` days without open time, never looping forever.
"""

from __future__ import annotations

import functools
import itertools
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MINUTES_PER_DAY = 24 * 60
MINUTES_PER_WEEK = 7 * MINUTES_PER_DAY
# Consecutive local dates without open time before arithmetic gives up (a little over 2 years).
SEARCH_DAYS = 800
# A saved calendar must open at least once within this many days (docs/sla.md 1.2).
REQUIRED_OPEN_DAYS = 366
_DAY_CACHE_LIMIT = 4096
_TIME = re.compile(r"([01]\d|2[0-3]):([0-5]\d)|24:00")

Span = tuple[int, int]
"""Local minutes `[start, end)` from a date's midnight; an overnight end exceeds 1440."""
Interval = tuple[datetime, datetime]
"""UTC instants `[start, end)`."""


class InvalidCalendar(ValueError):
    """The calendar cannot be used: one clear message saying what to fix."""


class CalendarSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The stored/JSON shape of a calendar; `BusinessCalendar.from_spec` validates it."""

    timezone: str
    hours: dict[str, list[tuple[str, str]]] | None = None
    holidays: list[date] = []
    country_holidays: str | list[str] | None = None
    extra_open: dict[date, list[tuple[str, str]]] = {}


def _require_aware(at: datetime, name: str = "instant") -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {at.isoformat()}")
    return at.astimezone(UTC)


def _minutes(text: str, *, end: bool, where: str) -> int:
    match = _TIME.fullmatch(text)
    if match is None or (text == "24:00" and not end):
        allowed = "HH:MM from 00:00 to 23:59, or 24:00 as an end"
        raise InvalidCalendar(f"{where}: {text!r} is not a time ({allowed})")
    if text == "24:00":
        return MINUTES_PER_DAY
    return int(match.group(1)) * 60 + int(match.group(2))


def _spans(pairs: Sequence[tuple[str, str]], where: str) -> list[Span]:
    """Parse `[start, end]` pairs; an end at or before the start runs into the next day."""
    spans = []
    for index, (start_text, end_text) in enumerate(pairs):
        at = f"{where}[{index}]"
        start = _minutes(start_text, end=False, where=at)
        end = _minutes(end_text, end=True, where=at)
        if end <= start:
            end += MINUTES_PER_DAY
        spans.append((start, end))
    return sorted(spans)


def _clock(minute: int) -> str:
    minute %= MINUTES_PER_DAY
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _describe(span: Span, day: str = "") -> str:
    prefix = f"{day} " if day else ""
    end = "24:00" if span[1] == MINUTES_PER_DAY else _clock(span[1])
    return f"{prefix}{_clock(span[0])}-{end}"


def _check_weekly_overlaps(weekly: Sequence[Sequence[Span]]) -> None:
    """Reject overlaps in the weekly cycle, Sunday night running into Monday included."""
    placed = sorted(
        (day * MINUTES_PER_DAY + start, day * MINUTES_PER_DAY + end, day, (start, end))
        for day, spans in enumerate(weekly)
        for start, end in spans
    )
    pairs = list(itertools.pairwise(placed))
    if len(placed) > 1:
        first = placed[0]
        pairs.append((placed[-1], (first[0] + MINUTES_PER_WEEK, 0, first[2], first[3])))
    for a, b in pairs:
        if a[1] > b[0]:
            one, other = _describe(a[3], WEEKDAYS[a[2]]), _describe(b[3], WEEKDAYS[b[2]])
            raise InvalidCalendar(f"hours: {one} overlaps {other}")


def _check_day_overlaps(spans: Sequence[Span], where: str) -> None:
    for a, b in itertools.pairwise(spans):
        if a[1] > b[0]:
            raise InvalidCalendar(f"{where}: {_describe(a)} overlaps {_describe(b)}")


def _merge_spans(spans: list[Span]) -> list[Span]:
    merged: list[Span] = []
    for start, end in sorted(spans):
        if end <= start:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidCalendar(f"timezone: unknown time zone {name!r}") from None


def _countries(value: str | list[str] | None) -> tuple[str, ...]:
    import holidays  # on use: a 24x7 or holiday-free calendar never pays for loading it

    codes = (value,) if isinstance(value, str) else tuple(value or ())
    for code in codes:
        try:
            holidays.country_holidays(code, years=[])
        except NotImplementedError:
            raise InvalidCalendar(
                f"country_holidays: no public holidays known for {code!r}"
            ) from None
    return codes


_ALWAYS_OPEN: tuple[tuple[Span, ...], ...] = tuple(((0, MINUTES_PER_DAY),) for _ in WEEKDAYS)
# Parsed calendars by their spec's content (see `BusinessCalendar.shared`).
_SHARED: dict[str, BusinessCalendar] = {}
_SHARED_LIMIT = 64


@dataclass(frozen=True, eq=False)
class BusinessCalendar:
    """A validated calendar; build it with `from_spec`, `parse` or `twenty_four_seven`."""

    zone: ZoneInfo
    weekly: tuple[tuple[Span, ...], ...]
    closed_dates: frozenset[date] = frozenset()
    countries: tuple[str, ...] = ()
    extra_open: Mapping[date, tuple[Span, ...]] = field(default_factory=dict)
    _holidays: dict[int, frozenset[date]] = field(default_factory=dict, repr=False)
    _days: dict[date, tuple[Interval, ...]] = field(default_factory=dict, repr=False)

    @functools.cached_property
    def always_open(self) -> bool:
        """Open every minute of every day (calendar time): arithmetic is plain subtraction,
        with no walk over the days (a ticket open for months is counted at once)."""
        return (
            all(day == ((0, MINUTES_PER_DAY),) for day in self.weekly)
            and not self.closed_dates
            and not self.countries
        )

    @classmethod
    def parse(cls, data: Any) -> BusinessCalendar:
        """From decoded JSON (a dict); every problem is an `InvalidCalendar`."""
        try:
            spec = msgspec.convert(data, CalendarSpec)
        except msgspec.ValidationError as exc:
            raise InvalidCalendar(f"calendar: {exc}") from None
        return cls.from_spec(spec)

    @classmethod
    def shared(cls, data: Any) -> BusinessCalendar:
        """`parse`, but one object per distinct spec in the process, so its caches of open
        hours per day and of holidays outlive one use: without them a ticket open for
        months is recounted day by day on every refresh. An edited spec is a new entry."""
        key = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
        calendar = _SHARED.get(key)
        if calendar is None:
            if len(_SHARED) >= _SHARED_LIMIT:
                _SHARED.clear()
            calendar = _SHARED[key] = cls.parse(data)
        return calendar

    @classmethod
    def from_spec(cls, spec: CalendarSpec) -> BusinessCalendar:
        zone = _zone(spec.timezone)
        if spec.hours is None:
            weekly: list[list[Span]] = [[(0, MINUTES_PER_DAY)] for _ in WEEKDAYS]
        else:
            unknown = sorted(set(spec.hours) - set(WEEKDAYS))
            if unknown:
                raise InvalidCalendar(
                    f"hours: unknown day {unknown[0]!r} (use {', '.join(WEEKDAYS)})"
                )
            weekly = [_spans(spec.hours.get(day, []), f"hours.{day}") for day in WEEKDAYS]
            _check_weekly_overlaps(weekly)
        extra: dict[date, tuple[Span, ...]] = {}
        for day, pairs in spec.extra_open.items():
            where = f"extra_open.{day.isoformat()}"
            spans = _spans(pairs, where)
            _check_day_overlaps(spans, where)
            extra[day] = tuple(_merge_spans(spans))
        if not any(weekly) and not any(extra.values()):
            raise InvalidCalendar("calendar has no open time: no weekly hours, no extra open date")
        return cls(
            zone=zone,
            weekly=tuple(tuple(_merge_spans(spans)) for spans in weekly),
            closed_dates=frozenset(spec.holidays),
            countries=_countries(spec.country_holidays),
            extra_open=extra,
        )

    @classmethod
    def twenty_four_seven(cls, zone: ZoneInfo | str = "UTC") -> BusinessCalendar:
        """Calendar time: always open (no holidays), printed in `zone`."""
        return cls(zone=zone if isinstance(zone, ZoneInfo) else _zone(zone), weekly=_ALWAYS_OPEN)

    # --- open intervals -------------------------------------------------------------------

    def _holiday_set(self, year: int) -> frozenset[date]:
        found = self._holidays.get(year)
        if found is None:
            import holidays

            days = {day for day in self.closed_dates if day.year == year}
            for code in self.countries:
                days.update(holidays.country_holidays(code, years=year).keys())
            found = self._holidays[year] = frozenset(days)
        return found

    def is_closed_date(self, day: date) -> bool:
        """A public holiday or custom closed date (an extra open date may still open it)."""
        return day in self._holiday_set(day.year)

    def _own_spans(self, day: date) -> tuple[Span, ...]:
        extra = self.extra_open.get(day)
        return extra if extra is not None else self.weekly[day.weekday()]

    def _local_spans(self, day: date) -> list[Span]:
        """Open local minutes of `day` within [0, 1440), by the local-date rules above."""
        own = [(start, min(end, MINUTES_PER_DAY)) for start, end in self._own_spans(day)]
        if day in self.extra_open:
            return _merge_spans(own)
        if self.is_closed_date(day):
            return []
        spill = [
            (0, end - MINUTES_PER_DAY)
            for _, end in self._own_spans(day - timedelta(days=1))
            if end > MINUTES_PER_DAY
        ]
        return _merge_spans(own + spill)

    def _instant(self, day: date, minute: int) -> datetime:
        """Local wall time -> UTC; fold=0: gap times shift forward, ambiguous take the first."""
        wall = datetime.combine(day, time()) + timedelta(minutes=minute)
        return wall.replace(tzinfo=self.zone).astimezone(UTC)

    def _day_intervals(self, day: date) -> tuple[Interval, ...]:
        cached = self._days.get(day)
        if cached is None:
            intervals: list[Interval] = []
            for start, end in self._local_spans(day):
                a, b = self._instant(day, start), self._instant(day, end)
                if b <= a:  # wholly inside a spring gap
                    continue
                if intervals and a <= intervals[-1][1]:
                    intervals[-1] = (intervals[-1][0], max(intervals[-1][1], b))
                else:
                    intervals.append((a, b))
            if len(self._days) >= _DAY_CACHE_LIMIT:
                self._days.clear()
            cached = self._days[day] = tuple(intervals)
        return cached

    def open_intervals(self, start: datetime, until: datetime | None = None) -> Iterator[Interval]:
        """Disjoint, ordered open intervals (UTC) ending after `start`, the first clipped to it.

        One local date at a time, so a 24x7 calendar yields touching day-long intervals rather
        than one endless one. With `until`, stops after the local date of `until`; without,
        raises `InvalidCalendar` after `SEARCH_DAYS` consecutive dates with no open time.
        """
        start = _require_aware(start, "start")
        last_day = None if until is None else _require_aware(until).astimezone(self.zone).date()
        day = start.astimezone(self.zone).date() - timedelta(days=1)
        floor = start  # all yielded time ends by here: keeps the output disjoint and ordered
        empty_days = 0
        while last_day is None or day <= last_day + timedelta(days=1):
            intervals = self._day_intervals(day)
            empty_days = 0 if intervals else empty_days + 1
            if last_day is None and empty_days > SEARCH_DAYS:
                raise InvalidCalendar(
                    f"calendar has no open time within {SEARCH_DAYS} days after "
                    f"{start.astimezone(self.zone).isoformat()}"
                )
            for a, b in intervals:
                if b > floor:
                    yield max(a, floor), b
                    floor = b
            day += timedelta(days=1)

    # --- the arithmetic -------------------------------------------------------------------

    def is_open(self, at: datetime) -> bool:
        at = _require_aware(at, "at")
        for start, _ in self.open_intervals(at, until=at):
            return start <= at
        return False

    def next_open(self, at: datetime) -> datetime:
        """`at` itself (in UTC) when open, else the next opening instant."""
        at = _require_aware(at, "at")
        for start, _ in self.open_intervals(at):
            return max(start, at)
        raise AssertionError("open_intervals ends only with until")  # pragma: no cover

    def add_business_time(self, start: datetime, duration: timedelta) -> datetime:
        """Earliest instant t >= start with `duration` of open time in [start, t) (UTC).

        A start in closed time counts from the next opening; an exact fit ends on the closing
        instant (16:00 + 60 min with closing at 17:00 is 17:00, not the next morning).
        """
        start = _require_aware(start, "start")
        if duration < timedelta(0):
            raise ValueError(f"cannot add negative business time {duration}")
        if not duration:
            return start
        if self.always_open:
            return start.astimezone(UTC) + duration
        remaining = duration
        for a, b in self.open_intervals(start):
            a = max(a, start)
            if remaining <= b - a:
                return a + remaining
            remaining -= b - a
        raise AssertionError("open_intervals ends only with until")  # pragma: no cover

    def business_time_between(self, start: datetime, end: datetime) -> timedelta:
        """Open time in [start, end), real elapsed time; zero when end <= start."""
        start, end = _require_aware(start, "start"), _require_aware(end, "end")
        total = timedelta(0)
        if end <= start:
            return total
        if self.always_open:
            return end - start
        for a, b in self.open_intervals(start, until=end):
            if a >= end:
                break
            total += min(b, end) - max(a, start)
        return total

    def add_business_minutes(self, start: datetime, minutes: float) -> datetime:
        """`add_business_time` in minutes (fractions allowed: 18.75 is 18 min 45 s)."""
        return self.add_business_time(start, timedelta(minutes=minutes))

    def business_minutes_between(self, start: datetime, end: datetime) -> float:
        return self.business_time_between(start, end) / timedelta(minutes=1)

    def check_open_within(self, at: datetime, days: int = REQUIRED_OPEN_DAYS) -> None:
        """Raise `InvalidCalendar` unless the calendar opens within `days` after `at`."""
        at = _require_aware(at, "at")
        until = at + timedelta(days=days)
        for start, _ in self.open_intervals(at, until=until):
            if start < until:
                return
            break
        raise InvalidCalendar(
            f"calendar has no open time within {days} days after "
            f"{at.astimezone(self.zone).isoformat()}"
        )
