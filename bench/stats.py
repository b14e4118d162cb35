"""Medians, percentiles and the result row every scenario reports."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Better = Literal["higher", "lower"]


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (0-100) with linear interpolation between closest ranks."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


@dataclass
class Row:
    """One reported number: the median of `runs`, and the baseline it is compared with.

    `ratio` is always value / baseline; `better` says which direction is good, so a
    throughput ratio of 0.8 means "80 % of the baseline" and a latency ratio of 3 means
    "three times the baseline's latency".
    """

    scenario: str
    case: str
    metric: str
    unit: str
    runs: list[float]
    better: Better
    baseline_name: str = ""
    baseline_runs: list[float] = field(default_factory=list)
    note: str = ""

    @property
    def value(self) -> float:
        return median(self.runs)

    @property
    def baseline(self) -> float | None:
        return median(self.baseline_runs) if self.baseline_runs else None

    @property
    def ratio(self) -> float | None:
        base = self.baseline
        if base is None or base == 0:
            return None
        return self.value / base

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(value=self.value, baseline=self.baseline, ratio=self.ratio)
        return data
