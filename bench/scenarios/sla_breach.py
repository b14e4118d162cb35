"""Scenario 4b: a breach acted on within 1 s of its due time, by the real worker.

Tickets are created through the API; their history is then moved into the past so that
each first-response clock comes due 15 to 45 s from now (the same trick as the SLA
tests: events and the ticket's start shifted, clocks recomputed by the service's own
`refresh`). Nothing else is done: the running worker's sweep must find them and its
precise check job must fire the breach. Lateness = the breach level's `fired_at` - the
clock's `due_at`, both written by PostgreSQL's clock.

No baseline: the target is absolute (issue 8: within 1 s), and the natural comparison, a
sweep-only design, would be as late as the sweep interval; the row's note gives it.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx

from bench.context import Bench, wait_for
from bench.stats import Row, percentile
from helpdesk.config import load_settings
from helpdesk.sla import refresh as sla_refresh

TICKETS = 20
FIRST_DUE_SECONDS = 15
SPREAD_SECONDS = 30


async def _create_tickets(bench: Bench, run: int) -> list[int]:
    ids = []
    async with httpx.AsyncClient(base_url=bench.base_url, headers=bench.admin_headers) as http:
        for n in range(TICKETS):
            response = await http.post(
                "/tickets",
                json={
                    "subject": f"Reklamace {run}-{n}",
                    "text": "Dobrý den, zboží přišlo poškozené.",
                    "customer": {"email": f"breach{run}.{n}@example.cz", "name": f"Breach {n}"},
                },
            )
            response.raise_for_status()
            ids.append(response.json()["id"])
    return ids


async def one_run(bench: Bench, run: int) -> list[float]:
    """Lateness of each breach, in milliseconds."""
    settings = load_settings()
    ticket_ids = await _create_tickets(bench, run)
    async with bench.pool.acquire() as conn:
        for index, ticket_id in enumerate(ticket_ids):
            async with conn.transaction():
                target = await conn.fetchval(
                    """SELECT due_at - started_at FROM ticket_sla_clocks
                       WHERE ticket_id = $1 AND clock = 'first_response' AND cycle = 0""",
                    ticket_id,
                )
                if target is None:
                    raise RuntimeError(f"ticket {ticket_id} has no first-response clock")
                due_in = timedelta(
                    seconds=FIRST_DUE_SECONDS + SPREAD_SECONDS * index / max(1, TICKETS - 1)
                )
                shift = target - due_in
                await conn.execute(
                    """UPDATE tickets SET created_at = created_at - $2::interval,
                           sla_policy_at = sla_policy_at - $2::interval WHERE id = $1""",
                    ticket_id,
                    shift,
                )
                await conn.execute(
                    "UPDATE sla_events SET at = at - $2::interval WHERE ticket_id = $1",
                    ticket_id,
                    shift,
                )
                await sla_refresh.refresh(conn, ticket_id, settings.sla)

    async def lateness() -> list[float]:
        async with bench.pool.acquire() as conn:
            rows = await conn.fetch(
                """SELECT extract(epoch FROM e.fired_at - c.due_at) * 1000 AS late_ms
                   FROM sla_escalations e JOIN ticket_sla_clocks c
                     ON c.ticket_id = e.ticket_id AND c.clock = e.clock AND c.cycle = e.cycle
                   WHERE e.ticket_id = ANY($1::bigint[]) AND e.clock = 'first_response'
                     AND e.cycle = 0 AND e.level = 'breach'""",
                ticket_ids,
            )
        return [float(r["late_ms"]) for r in rows]

    async def all_breached() -> bool:
        return len(await lateness()) == len(ticket_ids)

    wait = FIRST_DUE_SECONDS + SPREAD_SECONDS + 2 * settings.sla.sweep_interval_seconds + 30
    await wait_for(all_breached, wait, "every breach to be acted on", interval=0.5)
    return await lateness()


async def run(bench: Bench) -> None:
    p50, p99, worst = [], [], []
    for run_number in range(bench.sizes.runs):
        late = await one_run(bench, run_number)
        p50.append(percentile(late, 50))
        p99.append(percentile(late, 99))
        worst.append(max(late))
        await asyncio.sleep(0)
    interval = load_settings().sla.sweep_interval_seconds
    case = f"{TICKETS} first-response breaches due over {SPREAD_SECONDS} s"
    for metric, runs in (("lateness p50", p50), ("lateness p99", p99), ("lateness max", worst)):
        bench.add(
            Row(
                "4 SLA breach",
                case,
                metric,
                "ms",
                runs=runs,
                better="lower",
                note=(
                    f"issue 8 target: <= 1000 ms; a sweep alone would be up to {interval} s late"
                    if metric == "lateness max"
                    else ""
                ),
            )
        )
