"""What every scenario gets: sizes, the servers' addresses, tokens, and where rows go."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from bench.environment import MemorySampler, Process, Servers
from bench.stats import Row


@dataclass(frozen=True)
class Sizes:
    name: str
    runs: int  # every number is the median of this many runs
    ingest_messages: int  # per run and concurrency; even (conversations of two)
    concurrencies: tuple[int, ...]
    raw_insert_rows: int  # per run of the raw INSERT baseline
    e2e_seconds: float  # per run of the steady arrival rate
    console_tickets: int
    console_messages: int
    console_agents: int
    console_requests: int  # per run and endpoint
    console_concurrency: int
    cursor_pages: int
    search_requests: int  # per run and query
    sla_sizes: tuple[int, ...]
    sla_due: int
    outbound_replies: int  # per run


QUICK = Sizes(
    name="quick",
    runs=3,
    ingest_messages=200,
    concurrencies=(1, 8, 32),
    raw_insert_rows=2000,
    e2e_seconds=8,
    console_tickets=20_000,
    console_messages=200_000,
    console_agents=200,
    console_requests=600,
    console_concurrency=50,
    cursor_pages=100,
    search_requests=15,
    sla_sizes=(10_000, 100_000),
    sla_due=1000,
    outbound_replies=100,
)

# Seconds, not a measurement: every scenario runs once on tiny data, so the test suite
# can check that the suite still works (tests/test_bench_smoke.py).
SMOKE = Sizes(
    name="smoke",
    runs=1,
    ingest_messages=20,
    concurrencies=(1, 8),
    raw_insert_rows=100,
    e2e_seconds=2,
    console_tickets=2_000,
    console_messages=10_000,
    console_agents=20,
    console_requests=50,
    console_concurrency=8,
    cursor_pages=5,
    search_requests=3,
    sla_sizes=(1_000, 3_000),
    sla_due=50,
    outbound_replies=10,
)

FULL = Sizes(
    name="full",
    runs=5,
    ingest_messages=2000,
    concurrencies=(1, 8, 32),
    raw_insert_rows=20_000,
    e2e_seconds=30,
    console_tickets=1_000_000,
    console_messages=10_000_000,
    console_agents=200,
    console_requests=5000,
    console_concurrency=50,
    cursor_pages=100,
    search_requests=50,
    sla_sizes=(100_000, 1_000_000, 3_000_000),  # the target: x30 open, same due
    sla_due=1000,
    outbound_replies=1000,
)


@dataclass
class Bench:
    sizes: Sizes
    servers: Servers
    database_url: str
    base_url: str
    pool: asyncpg.Pool  # the bench's own connections, for setup and verification
    admin_headers: dict[str, str]
    api: Process
    worker: Process
    memory: MemorySampler
    pool_size: int  # the API's database pool (the baselines use the same)
    rows: list[Row] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)  # reported along with the rows
    state: dict[str, Any] = field(default_factory=dict)  # shared by scenarios, not reported
    missing: list[str] = field(default_factory=list)

    def add(self, row: Row) -> None:
        self.rows.append(row)
        ratio = f" ratio {row.ratio:.2f}" if row.ratio is not None else ""
        base = f" (baseline {row.baseline:.4g})" if row.baseline is not None else ""
        print(
            f"  {row.scenario} | {row.case} | {row.metric}: "
            f"{row.value:.4g} {row.unit}{base}{ratio}",
            flush=True,
        )


async def wait_for(
    check: Callable[[], Awaitable[bool]], seconds: float, what: str, interval: float = 0.02
) -> float:
    """Poll `check` until true; returns the monotonic instant it became true."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await check():
            return time.monotonic()
        await asyncio.sleep(interval)
    raise RuntimeError(f"timed out after {seconds} s waiting for {what}")
