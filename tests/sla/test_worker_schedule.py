"""The worker's periodic jobs run as often as configured, in every second of the minute
that the interval names (arq crons are sets of seconds; a gap there is a late breach)."""

from __future__ import annotations

import itertools

import pytest

from helpdesk.config import load_settings
from workers.settings import build_worker


def _seconds(interval: int, job: str) -> set[int]:
    settings = load_settings(
        {"HELPDESK_SLA__SWEEP_INTERVAL_SECONDS": str(interval)},
        database_url="postgresql://unused",
        redis_url="redis://unused",
    )
    worker = build_worker(settings, handle_signals=False)
    (cron,) = [c for c in worker.cron_jobs if c.name == job]
    assert isinstance(cron.second, set)
    return cron.second


@pytest.mark.parametrize(("interval", "gap"), [(1, 1), (2, 2), (5, 5), (30, 30)])
def test_the_sla_sweep_never_leaves_a_longer_gap_than_its_interval(interval: int, gap: int) -> None:
    seconds = sorted(_seconds(interval, "sla_sweep"))
    gaps = [b - a for a, b in itertools.pairwise(seconds)]
    gaps.append(seconds[0] + 60 - seconds[-1])  # across the minute
    assert max(gaps) == gap
