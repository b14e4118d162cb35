# ruff: noqa: S311 - seeded generators for reproducible synthetic data, not secrets
"""Scenario 4: the cost of one SLA sweep query as open tickets grow, due ones fixed.

Runs `helpdesk.sla.jobs.coming_due` (the worker's sweep query, with its real horizon of
two sweep intervals) on a separate fresh database holding N open tickets of which a
fixed number are due; N grows by COPY between measurements. Baseline: the time at the
smallest N, so a ratio near 1 says the sweep follows due tickets, not open ones. A last
case doubles the due tickets at the largest N: that one should grow.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import asyncpg

from bench import dataset
from bench.context import Bench
from bench.stats import Row, median
from helpdesk.config import load_settings
from helpdesk.db.migrate import migrate_dsn
from helpdesk.sla.jobs import coming_due

CALLS = 30  # per run; a run's value is their median


async def _add_tickets(conn: asyncpg.Connection, customer: int, count: int, *, due: bool) -> None:
    rng = random.Random(count)
    now = datetime.now(UTC)

    def rows() -> Iterator[tuple]:  # type: ignore[type-arg]
        for _ in range(count):
            if due:
                check_at = now - timedelta(seconds=rng.uniform(0, 600))
            else:
                check_at = now + timedelta(days=rng.uniform(1, 30))
            created = now - timedelta(hours=rng.uniform(0, 48))
            yield (
                "Ticket",
                "open",
                "email",
                customer,
                created,
                created,
                created,
                check_at,
                check_at,
            )

    columns = [
        "subject",
        "status",
        "channel",
        "customer_id",
        "created_at",
        "updated_at",
        "routed_at",
        "next_sla_check_at",
        "next_sla_due_at",
    ]
    await dataset.copy(conn, "tickets", columns, rows())
    await conn.execute("ANALYZE tickets")


async def _sweep_ms(conn: asyncpg.Connection, horizon: timedelta, expected: int) -> float:
    for _ in range(3):  # warm-up
        await coming_due(conn, horizon)
    timings = []
    for _ in range(CALLS):
        started = time.perf_counter()
        rows = await coming_due(conn, horizon)
        timings.append((time.perf_counter() - started) * 1000)
        if len(rows) != expected:
            raise RuntimeError(f"sweep found {len(rows)} tickets due, expected {expected}")
    return median(timings)


async def run(bench: Bench) -> None:
    sizes = bench.sizes
    dsn = await bench.servers.fresh_database("_sla")
    await migrate_dsn(dsn)
    horizon = timedelta(seconds=2 * load_settings({}).sla.sweep_interval_seconds)
    conn = await asyncpg.connect(dsn)
    try:
        customer = await conn.fetchval("INSERT INTO customers (name) VALUES ('SLA') RETURNING id")
        due = sizes.sla_due
        await _add_tickets(conn, customer, due, due=True)
        loaded = due
        first: list[float] = []
        for size in sizes.sla_sizes:
            await _add_tickets(conn, customer, size - loaded, due=False)
            loaded = size
            runs = [await _sweep_ms(conn, horizon, due) for _ in range(sizes.runs)]
            first = first or runs
            bench.add(
                Row(
                    "4 SLA sweep",
                    f"{size:,} open, {due:,} due",
                    "time per sweep query",
                    "ms",
                    runs=runs,
                    better="lower",
                    baseline_name=f"{sizes.sla_sizes[0]:,} open, {due:,} due",
                    baseline_runs=first,
                    note="issue 8 target: x30 open tickets -> at most x1.5 time",
                )
            )
        same_size = runs
        await _add_tickets(conn, customer, due, due=True)
        doubled = [await _sweep_ms(conn, horizon, 2 * due) for _ in range(sizes.runs)]
        bench.add(
            Row(
                "4 SLA sweep",
                f"{loaded + due:,} open, {2 * due:,} due",
                "time per sweep query",
                "ms",
                runs=doubled,
                better="lower",
                baseline_name=f"{loaded:,} open, {due:,} due",
                baseline_runs=same_size,
                note="twice the due tickets: expected to grow",
            )
        )
    finally:
        await conn.close()
