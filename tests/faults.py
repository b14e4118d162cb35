"""Servers and processes the fault tests kill: a Redis of their own and real workers.

A test that kills Redis never touches the session's Redis: `KillableRedis` is a
redis-server of the test alone, on a Unix socket that survives a restart (so clients
reconnect to the same URL). Workers run as real `helpdesk worker` / `helpdesk run`
processes against the test's database.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from redis.asyncio import Redis

from helpdesk.db.embedded import EmbeddedRedis


class KillableRedis:
    """A redis-server (no persistence: a kill loses the queue, as it may in production)."""

    def __init__(self, data_dir: Path) -> None:
        self._server = EmbeddedRedis(data_dir, persistent=False)
        self.url = self._server.url

    def start(self) -> str:
        return self._server.start()

    def _signal(self, sig: signal.Signals) -> None:
        process = self._server._process
        assert process is not None, "redis-server is not running"
        process.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL: every connection is cut and the queue is lost."""
        self._signal(signal.SIGKILL)
        process = self._server._process
        assert process is not None
        process.wait(30)
        self._server._process = None

    def pause(self) -> None:
        """SIGSTOP: connections are accepted by the kernel but nothing is answered."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.resume()
        self._server.stop()

    async def client(self) -> Redis:
        return Redis.from_url(self.url)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_helpdesk(
    command: str, database_url: str, redis_url: str, log: Path, **settings: str
) -> subprocess.Popen[bytes]:
    """`helpdesk worker` or `helpdesk run` as a real process (HELPDESK_* from `settings`)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELPDESK_")}
    env.update(
        HELPDESK_DATABASE_URL=database_url,
        HELPDESK_REDIS_URL=redis_url,
        HELPDESK_DEMO="0",
        HELPDESK_WORKER__METRICS_PORT="0",
        HELPDESK_WORKER__OUTBOX_RELAY_INTERVAL_SECONDS="1",
        HELPDESK_PORT=str(free_port()),
        HELPDESK_HOST="127.0.0.1",
    )
    env.update({f"HELPDESK_{k.upper()}": v for k, v in settings.items()})
    with log.open("ab") as out:
        return subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            [sys.executable, "-m", "helpdesk", command], env=env, stdout=out, stderr=out
        )


def start_worker(database_url: str, redis_url: str, log: Path) -> subprocess.Popen[bytes]:
    """`helpdesk worker` as a real process with a 3 s outbox lease and a patient SMTP
    client (a test stalls the SMTP server and kills the worker mid-delivery)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELPDESK_")}
    env.update(
        HELPDESK_DATABASE_URL=database_url,
        HELPDESK_REDIS_URL=redis_url,
        HELPDESK_DEMO="0",
        HELPDESK_WORKER__METRICS_PORT="0",
        HELPDESK_WORKER__OUTBOX_LEASE_SECONDS="3",
        HELPDESK_EMAIL__SMTP_TIMEOUT_SECONDS="600",
    )
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "helpdesk", "worker"], env=env, stdout=out, stderr=out
        )


async def wait_until(
    condition: Callable[[], Awaitable[object]], what: str, seconds: float = 90
) -> None:
    """Poll `condition` until it is true (bounded; never a timing assertion)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(process.wait, 30)
        except subprocess.TimeoutExpired:
            process.kill()
            await asyncio.to_thread(process.wait, 30)


def alive(process: subprocess.Popen[bytes], log: Path) -> None:
    """Assert the process still runs; show its log when it does not."""
    if process.poll() is not None:
        raise AssertionError(
            f"the process exited with {process.returncode}:\n{log.read_text()[-4000:]}"
        )
