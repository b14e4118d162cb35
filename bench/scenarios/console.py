# ruff: noqa: S311 - seeded generators for reproducible synthetic data, not secrets
"""Scenario 3: the agents' console API with many tickets and messages loaded with COPY.

Queue listing (filters, half of the requests on page 2 through a cursor), ticket detail
and reply, each at concurrency 50, authenticated as one of 50 agents. Baseline: a
minimal litestar endpoint doing `SELECT 1` on a pool of the API's size (bench/baseline_app)
on the same PostgreSQL, at the same concurrency. A cursor walk of 100 pages compares
the last page with the first (issue 8: no slower than 1.5 times).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import httpx

from bench import dataset
from bench.context import Bench
from bench.environment import start_baseline_app
from bench.load import Http, LoadResult, Request, Response, closed_loop
from bench.stats import Row, median
from helpdesk.agents import service as agents

GROUPS = 10
TOKENS = 50


async def load(bench: Bench) -> None:
    """Groups, agents, customers, tickets and messages, with COPY; then ANALYZE."""
    sizes = bench.sizes
    began = time.monotonic()
    async with bench.pool.acquire() as conn:
        group_ids = [
            await conn.fetchval("INSERT INTO groups (name) VALUES ($1) RETURNING id", f"Queue {i}")
            for i in range(GROUPS)
        ]
        agent_ids = await dataset.load_agents(conn, sizes.console_agents, group_ids)
        customers = await dataset.load_customers(conn, max(1, sizes.console_tickets // 5))
        tickets = await dataset.load_tickets(
            conn, sizes.console_tickets, customers, group_ids, agent_ids
        )
        print(f"  loaded {len(tickets)} tickets in {time.monotonic() - began:.0f} s", flush=True)
        await dataset.load_messages(conn, sizes.console_messages, tickets, customers, agent_ids)
        print(
            f"  loaded {sizes.console_messages} messages in {time.monotonic() - began:.0f} s",
            flush=True,
        )
        await conn.execute("ANALYZE")
        tokens = [(await agents.issue_token(conn, a, 24))[0] for a in agent_ids[:TOKENS]]
        reply_targets = [
            r["id"]
            for r in await conn.fetch(
                """SELECT id FROM tickets WHERE id BETWEEN $1 AND $2
                   AND channel = 'api' AND status = 'open' ORDER BY random() LIMIT $3""",
                tickets[0],
                tickets[-1],
                sizes.console_requests * sizes.runs,
            )
        ]
    bench.facts["console_load_seconds"] = round(time.monotonic() - began, 1)
    bench.state["console"] = {
        "tickets": tickets,
        "group_ids": group_ids,
        "agent_ids": agent_ids,
        "tokens": tokens,
        "reply_targets": reply_targets,
    }


def _auth(bench: Bench, index: int) -> dict[str, str]:
    tokens: list[str] = bench.state["console"]["tokens"]
    return {"Authorization": f"Bearer {tokens[index % len(tokens)]}"}


async def _listing_urls(bench: Bench) -> list[str]:
    """Queue views an agent opens, and page 2 of each through its cursor."""
    console = bench.state["console"]
    rng = random.Random(7)
    views = [
        "/tickets?limit=25",
        "/tickets?status=open&limit=25",
        "/tickets?assignee=unassigned&status=new&limit=25",
    ]
    views += [
        f"/tickets?group_id={g}&status=open&status=pending&limit=25" for g in console["group_ids"]
    ]
    views += [f"/tickets?assignee={rng.choice(console['agent_ids'])}&limit=25" for _ in range(10)]
    urls = list(views)
    async with httpx.AsyncClient(
        base_url=bench.base_url, headers=_auth(bench, 0), timeout=60
    ) as http:
        for view in views:
            page = await http.get(view)
            page.raise_for_status()
            cursor = page.json()["next_cursor"]
            if cursor:
                urls.append(f"{view}&cursor={cursor}")
    return urls


async def _measure(bench: Bench, send: Request, total: int, base_url: str = "") -> LoadResult:
    result = await closed_loop(
        base_url or bench.base_url, send, total, bench.sizes.console_concurrency
    )
    result.check("console request")
    return result


def _rows(bench: Bench, case: str, results: list[LoadResult], baseline: list[LoadResult]) -> None:
    base_name = f"litestar SELECT 1, pool {bench.pool_size}, c={bench.sizes.console_concurrency}"
    metrics: list[tuple[str, str, Literal["higher", "lower"], Callable[[LoadResult], float]]] = [
        ("requests/s", "req/s", "higher", lambda r: r.rate),
        ("p50", "ms", "lower", lambda r: r.p(50)),
        ("p99", "ms", "lower", lambda r: r.p(99)),
    ]
    for metric, unit, better, pick in metrics:
        bench.add(
            Row(
                "3 console API",
                case,
                metric,
                unit,
                runs=[pick(r) for r in results],
                better=better,
                baseline_name=base_name,
                baseline_runs=[pick(r) for r in baseline],
                note="issue 8 target: listing p99 <= 50 ms"
                if case.startswith("queue") and metric == "p99"
                else "",
            )
        )


async def run(bench: Bench, logdir: Path) -> None:
    await load(bench)
    console = bench.state["console"]
    sizes = bench.sizes
    total = sizes.console_requests
    rng = random.Random(11)
    listing = await _listing_urls(bench)
    tickets = console["tickets"]
    targets: list[int] = console["reply_targets"]

    popen, baseline_url = start_baseline_app(bench.database_url, bench.pool_size, logdir)
    try:

        async def ping(http: Http, index: int) -> Response:
            return await http.get("/ping")

        await _measure(bench, ping, 200, baseline_url)  # warm-up: the pool's connections
        baseline = []
        for _ in range(sizes.runs):
            baseline.append(await _measure(bench, ping, total, baseline_url))
    finally:
        popen.terminate()
        popen.wait(15)

    async def list_queue(http: Http, index: int) -> Response:
        return await http.get(rng.choice(listing), headers=_auth(bench, index))

    async def detail(http: Http, index: int) -> Response:
        return await http.get(f"/tickets/{rng.choice(tickets)}", headers=_auth(bench, index))

    replies = iter(targets)

    async def reply(http: Http, index: int) -> Response:
        return await http.post(
            f"/tickets/{next(replies)}/replies",
            json={"text": "Dobrý den, děkujeme, objednávka je na cestě."},
            headers=_auth(bench, index),
        )

    for case, send, count in (
        ("queue listing (filters, cursor)", list_queue, total),
        ("ticket detail (~10 messages)", detail, total),
        ("reply (outbox + SLA)", reply, min(total, len(targets) // sizes.runs)),
    ):
        if send is not reply:  # warm-up (replies would use up their tickets)
            await _measure(bench, send, 200)
        results = [await _measure(bench, send, count) for _ in range(sizes.runs)]
        _rows(bench, case, results, baseline)

    await cursor_walk(bench)


async def cursor_walk(bench: Bench) -> None:
    """Walk `cursor_pages` pages of the open queue, one request at a time."""
    pages = bench.sizes.cursor_pages
    first, last = [], []
    async with Http(bench.base_url, 1, _auth(bench, 1)) as http:
        for _ in range(bench.sizes.runs):
            url = "/tickets?status=open&limit=25"
            timings = []
            for _ in range(pages):
                started = time.perf_counter()
                response = await http.get(url)
                timings.append((time.perf_counter() - started) * 1000)
                if not response.is_success:
                    raise RuntimeError(f"cursor walk: HTTP {response.status_code}")
                cursor = response.json()["next_cursor"]
                if not cursor:
                    break
                url = f"/tickets?status=open&limit=25&cursor={cursor}"
            if len(timings) < pages:
                bench.facts["cursor_walk_short"] = f"only {len(timings)} pages of open tickets"
            first.append(median(timings[:5]))
            last.append(median(timings[-5:]))
    bench.add(
        Row(
            "3 console API",
            f"cursor walk, open queue, {pages} pages",
            f"page {pages - 4}-{pages} latency",
            "ms",
            runs=last,
            better="lower",
            baseline_name="pages 1-5 of the same walk",
            baseline_runs=first,
            note="issue 8 target: ratio <= 1.5",
        )
    )
