"""`helpdesk sla compute` as other tools run it: JSON in, JSON out, exit status 2 with one
error line for an invalid scenario. Expected instants worked out by hand."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
OFFICE = {
    "timezone": "Europe/Prague",
    "hours": {day: [["09:00", "17:00"]] for day in ("mon", "tue", "wed", "thu", "fri")},
    "country_holidays": "CZ",
}


def compute(scenario: Any) -> subprocess.CompletedProcess[str]:
    raw = scenario if isinstance(scenario, str) else json.dumps(scenario)
    return subprocess.run(
        [sys.executable, "-m", "helpdesk", "sla", "compute"],
        input=raw,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


def test_scenario_across_dst_and_easter() -> None:
    # Created Friday 16:30 before the spring change; answered Monday; the customer writes
    # again at 10:00 and waits. Resolution (2880 = six business days) skips Good Friday and
    # Easter Monday: 30 + 4 x 480 by Thursday 2 April, 480 on Tuesday 7th, 450 on Wednesday.
    scenario = {
        "calendar": OFFICE,
        "policy": {
            "first_response_minutes": 60,
            "next_response_minutes": 240,
            "resolution_minutes": 2880,
            "business_hours": True,
            "pause_statuses": ["pending"],
            "pausable": ["resolution"],
            "warn_at_percent": 75,
        },
        "events": [
            {"at": "2026-03-27T16:30:00+01:00", "type": "created"},
            {"at": "2026-03-30T09:20:00+02:00", "type": "agent_reply"},
            {"at": "2026-03-30T10:00:00+02:00", "type": "customer_message"},
        ],
        "now": "2026-03-30T15:00:00+02:00",
    }
    result = compute(scenario)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert json.loads(result.stdout) == {
        "first_response": {
            "due_at": "2026-03-30T09:30:00+02:00",
            "warn_at": "2026-03-30T09:15:00+02:00",
            "met_at": "2026-03-30T09:20:00+02:00",
            "breached": False,
            "breached_at": None,
            "paused": False,
        },
        "next_response": {
            "due_at": "2026-03-30T14:00:00+02:00",
            "warn_at": "2026-03-30T13:00:00+02:00",
            "met_at": None,
            "breached": True,
            "breached_at": "2026-03-30T14:00:00+02:00",
            "paused": False,
        },
        "resolution": {
            "due_at": "2026-04-08T16:30:00+02:00",
            "warn_at": "2026-04-07T12:30:00+02:00",
            "met_at": None,
            "breached": False,
            "breached_at": None,
            "paused": False,
        },
    }
    assert result.stdout.count("\n") == 1


def test_now_defaults_to_the_last_event_and_times_carry_the_calendar_offset() -> None:
    # No calendar: 24x7 in UTC. Created 08:00Z; pending at creation stops resolution.
    scenario = {
        "policy": {"first_response_minutes": 60, "resolution_minutes": 120},
        "events": [{"at": "2026-03-16T09:00:00+01:00", "type": "created", "status": "pending"}],
    }
    result = compute(scenario)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "first_response": {
            "due_at": "2026-03-16T09:00:00+00:00",
            "warn_at": "2026-03-16T08:45:00+00:00",
            "met_at": None,
            "breached": False,
            "breached_at": None,
            "paused": False,
        },
        "next_response": None,
        "resolution": {
            "due_at": None,
            "warn_at": None,
            "met_at": None,
            "breached": False,
            "breached_at": None,
            "paused": True,
        },
    }


def test_shown_in_the_calendar_zone_even_when_events_use_another_offset() -> None:
    scenario = {
        "calendar": OFFICE,
        "policy": {"first_response_minutes": 60},
        "events": [{"at": "2026-10-27T15:30:00Z", "type": "created"}],
    }
    result = compute(scenario)
    assert result.returncode == 0, result.stderr
    first = json.loads(result.stdout)["first_response"]
    # 16:30 CET on Tuesday, 28 October is a holiday: Thursday 09:30, warning 09:15.
    assert (first["due_at"], first["warn_at"]) == (
        "2026-10-29T09:30:00+01:00",
        "2026-10-29T09:15:00+01:00",
    )


CREATED = [{"at": "2026-03-16T09:00:00+01:00", "type": "created"}]


@pytest.mark.parametrize(
    ("scenario", "message"),
    [
        ({"calendar": {"timezone": "Europe/Prag"}, "events": CREATED}, "unknown time zone"),
        (
            {
                "calendar": {
                    "timezone": "Europe/Prague",
                    "hours": {"mon": [["09:00", "17:00"], ["16:00", "18:00"]]},
                },
                "events": CREATED,
            },
            "overlaps",
        ),
        (
            {"calendar": {"timezone": "Europe/Prague", "hours": {}}, "events": CREATED},
            "no open time",
        ),
        (
            {
                "calendar": {
                    "timezone": "Europe/Prague",
                    "hours": {},
                    "extra_open": {"2028-01-03": [["09:00", "17:00"]]},
                },
                "events": CREATED,
            },
            "no open time within 366 days",
        ),
        (
            {
                "events": [
                    {"at": "2026-03-16T10:00:00+01:00", "type": "created"},
                    {"at": "2026-03-16T09:59:00+01:00", "type": "agent_reply"},
                ]
            },
            "events out of order",
        ),
        ({"events": CREATED, "now": "2026-03-16T08:00:00+01:00"}, "is before the last event"),
        ({"events": [{"at": "2026-03-16T09:00:00", "type": "created"}]}, "timezone"),
        ({"events": [{"at": "2026-03-16T09:00:00+01:00", "type": "phoned"}]}, "type"),
        ({"events": CREATED, "policy": {"first_response_minutes": -5}}, "first_response_minutes"),
        ({"events": CREATED, "polcy": {}}, "polcy"),
        ({}, "events"),
        ("{not json", "malformed"),
    ],
)
def test_invalid_scenarios_exit_2_with_one_error_line(scenario: Any, message: str) -> None:
    result = compute(scenario)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("helpdesk sla compute: ")
    assert message in lines[0]


def test_the_installed_command_works_too() -> None:
    command = Path(sys.executable).parent / "helpdesk"
    assert command.exists(), f"no `helpdesk` console script at {command}"
    result = subprocess.run(  # noqa: S603 - our own console script, fixed arguments
        [str(command), "sla", "compute"],
        input=json.dumps({"policy": {"first_response_minutes": 30}, "events": CREATED}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["first_response"]["due_at"] == "2026-03-16T08:30:00+00:00"
