"""Where a run's CPU went: CPU time per process group, read from /proc (Linux).

Rates alone do not say what to make cheaper; CPU milliseconds per message for the API,
the worker, PostgreSQL, Redis and this process (the load generator) do. PostgreSQL's
share sums every process named `postgres` on the machine, with the time of exited
backends as their postmaster accounts it once it has reaped them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces


def _cpu_seconds(pid: int, *, children: bool = False) -> float:
    """User plus system time of one process (and of its exited children); 0 when gone."""
    fields = _stat(pid)
    if fields is None:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    if children:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime: reaped children
    return ticks / _TICK


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _server_cpu(name: str) -> float:
    """Every process named `name`: a server's live processes, plus what its exited ones
    used (counted on their parent, the postmaster, once reaped: backends and autovacuum
    workers come and go during a run)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or _comm(int(entry.name)) != name:
            continue
        fields = _stat(int(entry.name))
        if fields is None:
            continue
        is_parent = _comm(int(fields[1])) != name  # fields[1]: the parent's pid
        total += _cpu_seconds(int(entry.name), children=is_parent)
    return total


def snapshot(api_pid: int, worker_pid: int) -> dict[str, float]:
    return {
        "API": _cpu_seconds(api_pid),
        "worker": _cpu_seconds(worker_pid),
        "PostgreSQL": _server_cpu("postgres"),
        "Redis": _server_cpu("redis-server"),
        "load generator": _cpu_seconds(os.getpid()),
    }


@dataclass
class CpuMeter:
    """CPU milliseconds per item between `start` and `stop`, per process group."""

    api_pid: int
    worker_pid: int
    before: dict[str, float] = field(default_factory=dict)
    after: dict[str, float] = field(default_factory=dict)

    def start(self) -> None:
        self.before = snapshot(self.api_pid, self.worker_pid)

    def stop(self) -> None:
        self.after = snapshot(self.api_pid, self.worker_pid)

    def per_item_ms(self, items: int, only: Iterable[str] | None = None) -> dict[str, float]:
        names = list(only) if only is not None else list(self.after)
        return {name: 1000 * (self.after[name] - self.before[name]) / items for name in names}


def describe(split: dict[str, float]) -> str:
    """'API 1.0 + worker 2.9 + ... = 8.2 ms' (what one item cost, where)."""
    parts = " + ".join(f"{name} {ms:.2f}" for name, ms in split.items())
    return f"{parts} = {sum(split.values()):.2f} ms"
