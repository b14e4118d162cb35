"""Scenario 5: full-text search over the messages loaded by scenario 3 (GET /tickets?q=).

Typical Czech queries with and without diacritics, one request at a time, as an agent
types them. Baseline: a rare term ("kompresor", about one message in a thousand), so the
ratio says how much a frequent term costs (issue 8: a term matching most messages at
most 3 times slower than a rare one).
"""

from __future__ import annotations

import time
from urllib.parse import quote

from bench.context import Bench
from bench.load import Http
from bench.stats import Row, percentile

RARE = "kompresor"
QUERIES = ["reklamace", "vrácení", "vraceni", "děkuji"]


async def _latencies(http: Http, query: str, count: int) -> list[float]:
    timings = []
    for _ in range(count):
        started = time.perf_counter()
        response = await http.get(f"/tickets?q={quote(query)}&limit=25")
        timings.append((time.perf_counter() - started) * 1000)
        if not response.is_success:
            raise RuntimeError(f"search {query!r}: HTTP {response.status_code}")
    return timings


async def _matching_messages(bench: Bench, query: str) -> int:
    async with bench.pool.acquire() as conn:
        count: int = await conn.fetchval(
            """SELECT count(*) FROM messages
               WHERE search_vector @@ websearch_to_tsquery('simple', helpdesk_fold($1))""",
            query,
        )
        return count


async def run(bench: Bench) -> None:
    tokens = bench.state["console"]["tokens"]
    sizes = bench.sizes
    total = await _count_messages(bench)
    headers = {"Authorization": f"Bearer {tokens[0]}"}
    async with Http(bench.base_url, 1, headers) as http:
        await _latencies(http, RARE, 2)  # warm-up
        measured: dict[str, tuple[list[float], list[float]]] = {}
        for _ in range(sizes.runs):
            for query in [RARE, *QUERIES]:
                timings = await _latencies(http, query, sizes.search_requests)
                p50s, p99s = measured.setdefault(query, ([], []))
                p50s.append(percentile(timings, 50))
                p99s.append(percentile(timings, 99))
    rare50, rare99 = measured[RARE]
    for query in [RARE, *QUERIES]:
        share = await _matching_messages(bench, query) / max(total, 1) * 100
        p50s, p99s = measured[query]
        for metric, runs, base in (("p50", p50s, rare50), ("p99", p99s, rare99)):
            bench.add(
                Row(
                    "5 full-text search",
                    f'q="{query}" ({share:.1f} % of {total} messages)',
                    metric,
                    "ms",
                    runs=runs,
                    better="lower",
                    baseline_name=f'rare term "{RARE}" {metric}',
                    baseline_runs=base,
                )
            )


async def _count_messages(bench: Bench) -> int:
    async with bench.pool.acquire() as conn:
        count: int = await conn.fetchval("SELECT count(*) FROM messages")
        return count
