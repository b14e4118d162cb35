"""The benchmark suite still works (issue 8): `python -m bench --smoke` runs every
scenario once on tiny data against the suite's servers. Nothing here is a measurement
and no number is asserted: only that each scenario ran, checked what it checks (exactly
once storage, redelivery, deliveries) and reported its rows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from redis import Redis

from tests.conftest import Servers

ROOT = Path(__file__).resolve().parent.parent


def test_the_benchmark_suite_runs_every_scenario(servers: Servers, tmp_path: Path) -> None:
    with Redis.from_url(servers.redis_url) as redis:
        redis.flushdb()  # arq remembers finished job ids; a fresh queue for the bench
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELPDESK_")}
    env.update(HELPDESK_DATABASE_URL=servers.admin_dsn, HELPDESK_REDIS_URL=servers.redis_url)
    done = subprocess.run(  # noqa: S603 - our own command line
        [sys.executable, "-m", "bench", "--smoke", "--out", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    [results] = tmp_path.glob("*-smoke.json")
    report = json.loads(results.read_text())
    assert report["missing"] == []
    scenarios = {row["scenario"] for row in report["rows"]}
    assert scenarios == {
        "classifier",
        "1 ingestion",
        "2 webhook to assigned",
        "3 console API",
        "4 SLA sweep",
        "4 SLA breach",
        "5 full-text search",
        "6 outbound",
        "7 memory",
    }
    assert report["facts"]["redelivery"].endswith("no new rows")
    assert all(row["value"] > 0 for row in report["rows"] if row["unit"] in {"msg/s", "req/s"})
