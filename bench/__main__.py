"""`python -m bench [--quick] [--only SCENARIO ...]`: run the benchmark suite.

Order: classifier (no servers), 1 ingestion, 2 webhook-to-assigned latency, 6 outbound,
4 SLA sweep (own database), 4 SLA breach (the worker firing breaches), 3 console API
(loads the big data set), 5 search (on it), 7 memory (sampled throughout). A scenario
that fails is reported as not measured, with the reason, and the others still run.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg

from bench import report
from bench.context import FULL, QUICK, SMOKE, Bench
from bench.environment import (
    BIN,
    MemorySampler,
    Process,
    Servers,
    free_port,
    helpdesk_env,
    migrate,
    start_process,
    wait_http,
    wait_worker,
)
from bench.scenarios import (
    classifier,
    console,
    ingestion,
    latency,
    outbound,
    search,
    sla_breach,
    sla_sweep,
)
from bench.stats import Row
from helpdesk.agents import service as agents
from helpdesk.agents.models import AgentCreate
from helpdesk.agents.passwords import Passwords
from helpdesk.config import AuthSettings, load_settings
from helpdesk.db.pool import create_pool

SCENARIOS = [
    "classifier",
    "ingestion",
    "latency",
    "outbound",
    "sla",
    "breach",
    "console",
    "search",
]


async def _admin_headers(pool: asyncpg.Pool) -> dict[str, str]:
    async with pool.acquire() as conn:
        agent = await agents.create_agent(
            conn,
            Passwords(AuthSettings()),  # unused: no password to hash
            AgentCreate(email="bench.admin@example.cz", name="Bench admin", role="admin"),
        )
        token, _ = await agents.issue_token(conn, agent.id, 24)
    return {"Authorization": f"Bearer {token}"}


def memory_rows(bench: Bench) -> None:
    """Scenario 7: peak RSS of the API and the worker per phase, against their idle RSS."""
    for process in (bench.api, bench.worker):
        for phase, peak_kb in process.peaks.items():
            if phase == "start":
                continue
            bench.add(
                Row(
                    "7 memory",
                    f"{process.name} during {phase}",
                    "peak RSS",
                    "MB",
                    runs=[peak_kb / 1024],
                    better="lower",
                    baseline_name="same process idle after start",
                    baseline_runs=[process.idle_kb / 1024],
                    note="issue 8 target: <= 150 MB",
                )
            )
        bench.add(
            Row(
                "7 memory",
                f"{process.name}, whole run",
                "VmHWM (kernel's peak RSS)",
                "MB",
                runs=[process.status_kb("VmHWM") / 1024],
                better="lower",
                baseline_name="same process idle after start",
                baseline_runs=[process.idle_kb / 1024],
                note="issue 8 target: <= 150 MB",
            )
        )


async def run(bench: Bench, only: list[str]) -> None:
    logdir = bench.servers.workdir / "logs"
    steps: list[tuple[str, str, Callable[[], Awaitable[None]]]] = [
        ("ingestion", "1 ingestion", lambda: ingestion.run(bench, logdir)),
        ("latency", "2 webhook to assigned", lambda: latency.run(bench)),
        ("outbound", "6 outbound", lambda: outbound.run(bench, logdir)),
        ("sla", "4 SLA sweep", lambda: sla_sweep.run(bench)),
        ("breach", "4 SLA breach", lambda: sla_breach.run(bench)),
        ("console", "3 console API", lambda: console.run(bench, logdir)),
        ("search", "5 full-text search", lambda: search.run(bench)),
    ]
    for key, title, step in steps:
        if key not in only:
            continue
        if key == "latency" and "max_stored_telegram_rate" not in bench.facts:
            bench.missing.append(f"{title}: needs the ingestion scenario's rate")
            continue
        if key == "search" and "console" not in bench.state:
            bench.missing.append(f"{title}: needs the console scenario's data")
            continue
        print(f"{title} ...", flush=True)
        began = time.monotonic()
        try:
            with bench.memory.during(key):
                await step()
        except Exception as error:  # reported as not measured; the other scenarios go on
            traceback.print_exc()
            bench.missing.append(f"{title}: failed ({type(error).__name__}: {error})")
        print(f"{title} done in {time.monotonic() - began:.0f} s", flush=True)


async def main_async(args: argparse.Namespace) -> int:
    sizes = SMOKE if args.smoke else QUICK if args.quick else FULL
    only = args.only or SCENARIOS
    servers = Servers.start()
    processes: list[Process] = []
    rows: list[Row] = []
    missing: list[str] = []
    facts: dict[str, object] = {}
    postgres_version = ""
    try:
        database_url = await servers.fresh_database()
        port = free_port()
        env = helpdesk_env(database_url, servers.redis_url, port)
        migrate(env)
        logdir = servers.workdir / "logs"
        logdir.mkdir(exist_ok=True)
        api = start_process("api", [str(BIN / "helpdesk"), "serve"], env, logdir)
        processes.append(api)
        base_url = f"http://127.0.0.1:{port}"
        wait_http(f"{base_url}/healthz", api)
        worker = start_process("worker", [str(BIN / "helpdesk"), "worker"], env, logdir)
        processes.append(worker)
        wait_worker(servers.redis_url, worker)
        await asyncio.sleep(1)
        for process in processes:
            process.idle_kb = process.status_kb("VmRSS")
        memory = MemorySampler(processes)
        memory.start()
        pool = await create_pool(database_url, min_size=1, max_size=8)
        try:
            conn = await pool.acquire()
            postgres_version = await conn.fetchval("SHOW server_version")
            await pool.release(conn)
            bench = Bench(
                sizes=sizes,
                servers=servers,
                database_url=database_url,
                base_url=base_url,
                pool=pool,
                admin_headers=await _admin_headers(pool),
                api=api,
                worker=worker,
                memory=memory,
                pool_size=load_settings(env).database_pool_max,
            )
            print(
                f"bench ({sizes.name}): API pid {api.pid}, worker pid {worker.pid}, "
                f"logs in {logdir}"
            )
            if "classifier" in only:
                classifier.run(bench)
            await run(bench, only)
        finally:
            memory.stop()
            await pool.close()
        memory_rows(bench)
        rows, missing, facts = bench.rows, bench.missing, bench.facts
    finally:
        for process in reversed(processes):
            process.stop()
        try:
            await servers.drop_databases()
        finally:
            servers.stop()
    missing += [f"{s}: not selected (--only)" for s in SCENARIOS if s not in only]
    info = {
        "date": report.today(),
        "machine": report.machine(),
        "sizes": sizes.__dict__,
        "postgres": {"version": postgres_version, "kind": servers.postgres_kind},
        "redis": servers.redis_kind,
        "facts": facts,
        "missing": missing,
        "only": list(args.only or []),
    }
    json_path, md_path, table = report.write(rows, info, args.out or report.RESULTS)
    print("\n" + table)
    print(f"written: {json_path} and {md_path}")
    failed = [m for m in missing if ": failed (" in m]
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes (a few minutes)")
    parser.add_argument(
        "--smoke", action="store_true", help="tiny sizes, one run: checks the suite works"
    )
    parser.add_argument("--out", type=Path, help="where results go (default bench/results)")
    parser.add_argument("--only", nargs="+", choices=SCENARIOS, help="run only these scenarios")
    args = parser.parse_args()
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    raise SystemExit(main())
