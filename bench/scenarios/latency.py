# ruff: noqa: S311 - seeded generators for reproducible synthetic data, not secrets
"""Scenario 2: from the webhook request to the ticket routed and assigned by the worker.

Telegram updates from new chats arrive at a steady rate (a quarter of the highest
stored rate of scenario 1, as issue 8 asks); each becomes a ticket that the worker
stores, routes (a catch-all rule to a round-robin group) and assigns to one of the
online agents. Latency = the `assigned` ticket event's time - the instant the request
was sent (one clock: everything runs on this machine).

Baseline: the webhook's own HTTP response time for the same requests, so the ratio
says how much the asynchronous path (queue, worker, routing) adds to the request.
"""

from __future__ import annotations

import itertools
import random
from datetime import datetime

import httpx

from bench.context import Bench, wait_for
from bench.dataset import customer_text
from bench.load import Http, Response, open_loop
from bench.scenarios.ingestion import TELEGRAM_ACCOUNT, TELEGRAM_SECRET, telegram_update
from bench.stats import Row, percentile
from helpdesk.agents import service as agents
from helpdesk.agents.models import AgentCreate
from helpdesk.agents.passwords import Passwords
from helpdesk.config import AuthSettings

ONLINE_AGENTS = 8
_numbers = itertools.count(500_000_000)


async def setup(bench: Bench) -> None:
    """A round-robin group, a catch-all rule to it, and agents online with room."""
    async with httpx.AsyncClient(base_url=bench.base_url, headers=bench.admin_headers) as http:
        group = await http.post("/groups", json={"name": "Bench routing"})
        group.raise_for_status()
        group_id = group.json()["id"]
        (
            await http.patch(
                f"/routing/groups/{group_id}", json={"assignment_strategy": "round_robin"}
            )
        ).raise_for_status()
        rule = await http.post(
            "/routing/rules", json={"name": "bench catch-all", "group_id": group_id, "position": 1}
        )
        rule.raise_for_status()
        tokens = []
        async with bench.pool.acquire() as conn:
            for n in range(ONLINE_AGENTS):
                agent = await agents.create_agent(
                    conn,
                    Passwords(AuthSettings()),  # unused: no password to hash
                    AgentCreate(
                        email=f"bench.online{n}@example.cz",
                        name=f"Online {n}",
                        role="agent",
                        group_ids=[group_id],
                    ),
                )
                token, _ = await agents.issue_token(conn, agent.id, 24)
                tokens.append((agent.id, token))
        for agent_id, token in tokens:
            (
                await http.patch(f"/routing/agents/{agent_id}", json={"capacity": 1000})
            ).raise_for_status()
            (
                await http.put(
                    "/agents/me/availability",
                    json={"availability": "online"},
                    headers={"Authorization": f"Bearer {token}"},
                )
            ).raise_for_status()


async def _assigned_at(bench: Bench, external_ids: list[str]) -> dict[str, datetime]:
    async with bench.pool.acquire() as conn:
        rows = await conn.fetch(
            """SELECT m.external_id,
                      (SELECT min(e.created_at) FROM ticket_events e
                       WHERE e.ticket_id = t.id AND e.action = 'assigned') AS assigned_at
               FROM messages m JOIN tickets t ON t.id = m.ticket_id
               WHERE m.channel = 'telegram' AND m.external_id = ANY($1::text[])
                 AND t.assignee_id IS NOT NULL AND t.routed_at IS NOT NULL""",
            external_ids,
        )
    return {r["external_id"]: r["assigned_at"] for r in rows if r["assigned_at"] is not None}


async def one_run(bench: Bench, rate: float) -> tuple[list[float], list[float]]:
    """(webhook-to-assigned latencies, HTTP latencies), in milliseconds."""
    total = max(10, int(rate * bench.sizes.e2e_seconds))
    rng = random.Random(total)
    numbers = [next(_numbers) for _ in range(total)]
    bodies = [telegram_update(n, customer_text(rng), chat=n) for n in numbers]
    external_ids = [f"{n}:{n}" for n in numbers]
    headers = {
        "X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET,
        "content-type": "application/json",
    }

    async def send(http: Http, index: int) -> Response:
        return await http.post(
            f"/channels/telegram/{TELEGRAM_ACCOUNT}/webhook", content=bodies[index], headers=headers
        )

    result = await open_loop(bench.base_url, send, total, rate)
    result.check("telegram webhook")

    async def all_assigned() -> bool:
        return len(await _assigned_at(bench, external_ids)) == total

    await wait_for(all_assigned, 120, "every ticket to be routed and assigned", interval=0.2)
    assigned = await _assigned_at(bench, external_ids)
    latencies = [
        (assigned[external_ids[i]].timestamp() - result.sent_at[i]) * 1000 for i in range(total)
    ]
    return latencies, [x * 1000 for x in result.latencies]


async def run(bench: Bench) -> None:
    await setup(bench)
    rate = max(1.0, bench.facts["max_stored_telegram_rate"] / 4)
    bench.facts["e2e_rate_per_second"] = round(rate, 1)
    p50, p99, http50, http99 = [], [], [], []
    for _ in range(bench.sizes.runs):
        latencies, http = await one_run(bench, rate)
        p50.append(percentile(latencies, 50))
        p99.append(percentile(latencies, 99))
        http50.append(percentile(http, 50))
        http99.append(percentile(http, 99))
    case = f"{rate:.0f} msg/s steady (1/4 of max stored rate)"
    note = "issue 8 target: p99 <= 100 ms"
    for metric, runs, base in (("p50", p50, http50), ("p99", p99, http99)):
        bench.add(
            Row(
                "2 webhook to assigned",
                case,
                metric,
                "ms",
                runs=runs,
                better="lower",
                baseline_name=f"webhook HTTP response {metric}",
                baseline_runs=base,
                note=note if metric == "p99" else "",
            )
        )
