"""`helpdesk run|serve|worker|migrate`: the service processes and their embedded servers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

from helpdesk.config import ConfigError, Settings
from helpdesk.db.pool import connect
from helpdesk.observability import Metrics

log = logging.getLogger("helpdesk")


class EmbeddedServers:
    """Starts embedded PostgreSQL/Redis for settings that name none (development)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._stops: list[object] = []

    def resolve(self, *, redis: bool = True) -> Settings:
        from msgspec import structs

        from helpdesk.db.embedded import EmbeddedPostgres, EmbeddedRedis

        settings = self.settings
        data_dir = Path(settings.data_dir)
        if not settings.database_url:
            postgres = EmbeddedPostgres(data_dir / "postgres")
            dsn = postgres.start()
            self._stops.append(postgres)
            settings = structs.replace(settings, database_url=dsn)
            log.info("embedded PostgreSQL started", extra={"data_dir": str(postgres.data_dir)})
        if redis and not settings.redis_url:
            server = EmbeddedRedis(data_dir / "redis")
            url = server.start()
            self._stops.append(server)
            settings = structs.replace(settings, redis_url=url)
            log.info("embedded Redis started", extra={"data_dir": str(server.data_dir)})
        return settings

    def stop(self) -> None:
        for server in reversed(self._stops):
            with contextlib.suppress(Exception):
                server.stop()  # type: ignore[attr-defined]
        self._stops.clear()


@contextlib.contextmanager
def embedded_servers(settings: Settings, *, redis: bool = True) -> Iterator[Settings]:
    embedded = EmbeddedServers(settings)
    try:
        yield embedded.resolve(redis=redis)
    finally:
        embedded.stop()


def _require_urls(settings: Settings, command: str) -> None:
    if not settings.database_url or not settings.redis_url:
        raise ConfigError(
            f"`helpdesk {command}` needs HELPDESK_DATABASE_URL and HELPDESK_REDIS_URL "
            "(use `make run` for the embedded development servers)"
        )


async def run_migrations(settings: Settings) -> list[str]:
    """Apply migrations, then store the SLA calendars and policies of the settings on a
    database that has none yet."""
    from helpdesk.db.migrate import migrate_dsn
    from helpdesk.sla.admin import seed_defaults

    applied = await migrate_dsn(settings.database_url)
    conn = await connect(settings.database_url)
    try:
        await seed_defaults(conn, settings.sla)
    finally:
        await conn.close()
    return applied


async def seed_database(settings: Settings) -> bool:
    from helpdesk.agents.passwords import Passwords
    from helpdesk.demo.seed import seed_demo

    conn = await connect(settings.database_url)
    try:
        return await seed_demo(conn, Passwords(settings.auth), settings.sla)
    finally:
        await conn.close()


def use_uvloop() -> bool:
    """Run the service's event loops on uvloop where it is installed (a dependency except
    on Windows): asyncpg, redis and the HTTP server then spend markedly less CPU per round
    trip than on the stock asyncio loop. False when it is not available."""
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


def _uvicorn_server(  # type: ignore[no-untyped-def]
    settings: Settings, *, own_signals: bool, metrics: Metrics | None = None
):
    import uvicorn

    from helpdesk.app import create_app

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            if own_signals:
                with super().capture_signals():
                    yield
            else:
                yield

    config = uvicorn.Config(
        create_app(settings, metrics=metrics),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        lifespan="on",
        server_header=False,
    )
    return Server(config)


async def _run_all(settings: Settings) -> None:
    """API and worker in one process; SIGINT/SIGTERM stop both cleanly."""
    from helpdesk.observability import Metrics
    from workers.settings import build_worker

    metrics = Metrics()  # one registry: the worker's counters show on the API's /metrics
    server = _uvicorn_server(settings, own_signals=False, metrics=metrics)
    worker = build_worker(settings, handle_signals=False, metrics=metrics)
    loop = asyncio.get_running_loop()
    worker_task = asyncio.create_task(worker.async_run())

    def stop() -> None:
        server.should_exit = True
        worker_task.cancel()

    def worker_ended(task: asyncio.Task[None]) -> None:
        # The worker waits out Redis outages; if it still ends, the process must not
        # go on as an API without a worker: stop, so that a supervisor restarts it.
        if not task.cancelled() and task.exception() is not None:
            log.error("the worker stopped; stopping the API too", exc_info=task.exception())
            server.should_exit = True

    worker_task.add_done_callback(worker_ended)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    try:
        await server.serve()
    finally:
        worker_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker_task
        await worker.close()


def _public_base(settings: Settings) -> str:
    """The address to open in a browser: a wildcard listen address is shown as loopback."""
    host = settings.host
    if host in ("", "0.0.0.0", "::"):  # noqa: S104 - only turned into a URL here
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.port}"


def _start_lines(settings: Settings, what: str) -> str:
    """What every start prints: where the API, the console and the OpenAPI document are."""
    base = _public_base(settings)
    everywhere = (
        f" (listening on all interfaces, port {settings.port})"
        if settings.host in ("", "0.0.0.0", "::")  # noqa: S104
        else ""
    )
    return (
        f"helpdesk {what} on {base}{everywhere}\n"
        f"  console: {base}/console/\n"
        f"  OpenAPI: {base}/schema (JSON at {base}/schema/openapi.json)"
    )


def _demo_sign_in(settings: Settings, *, seeded: bool) -> str:
    from helpdesk.demo.seed import DEMO_DOMAIN, DEMO_INBOUND_SECRET, DEMO_PASSWORD

    base = _public_base(settings)
    if not seeded:
        return (
            f"Demo: sign in to the console as agent@{DEMO_DOMAIN} (or admin@, supervisor@, "
            f"partner@) with the password '{DEMO_PASSWORD}'."
        )
    return (
        f"\nDemo data seeded. Log in with one of admin@{DEMO_DOMAIN}, "
        f"supervisor@{DEMO_DOMAIN}, agent@{DEMO_DOMAIN}, partner@{DEMO_DOMAIN}\n"
        f"and the password '{DEMO_PASSWORD}' (in the console, or for a token):\n"
        f"  curl -s -X POST {base}/auth/login "
        f"-H 'content-type: application/json' "
        f'-d \'{{"email": "agent@{DEMO_DOMAIN}", "password": "{DEMO_PASSWORD}"}}\'\n'
        f"Send a raw mail to the demo email account 'support':\n"
        f"  curl -s -X POST {base}/channels/email/support/inbound "
        f"-H 'authorization: Bearer {DEMO_INBOUND_SECRET}' --data-binary @mail.eml\n"
    )


async def _run_with_demo_mail(settings: Settings, banner: str) -> None:
    """`_run_all`, with the demo's SMTP sink running and the demo account pointed at it."""
    from helpdesk.demo.mailsink import MailSink, point_demo_account
    from helpdesk.demo.seed import DEMO_DOMAIN

    sink = MailSink(Path(settings.data_dir) / "demo-mail")
    await sink.start()
    try:
        conn = await connect(settings.database_url)
        try:
            pointed = await point_demo_account(conn, f"support@{DEMO_DOMAIN}", sink.port)
        finally:
            await conn.close()
        if pointed:
            print(
                f"Demo mail: the 'support' account sends through a local SMTP sink "
                f"(127.0.0.1:{sink.port}); every mail it sends (acknowledgements, replies, "
                f"surveys) is kept in {sink.directory}/ and nothing leaves this machine.",
                file=sys.stderr,
            )
        print(banner, file=sys.stderr)
        await _run_all(settings)
    finally:
        await sink.stop()


def cmd_run(settings: Settings) -> int:
    with embedded_servers(settings) as resolved:
        applied = asyncio.run(run_migrations(resolved))
        if applied:
            log.info("migrations applied", extra={"migrations": applied})
        if resolved.demo:
            seeded = asyncio.run(seed_database(resolved))
            print(_demo_sign_in(resolved, seeded=seeded), file=sys.stderr)
        banner = _start_lines(resolved, "API and worker") + "\n  Ctrl-C stops everything."
        if resolved.demo:
            asyncio.run(_run_with_demo_mail(resolved, banner))
        else:
            print(banner, file=sys.stderr)
            asyncio.run(_run_all(resolved))
    return 0


def cmd_serve(settings: Settings) -> int:
    _require_urls(settings, "serve")
    print(_start_lines(settings, "API"), file=sys.stderr)
    _uvicorn_server(settings, own_signals=True).run()
    return 0


def cmd_worker(settings: Settings) -> int:
    from prometheus_client import start_http_server

    from workers.settings import build_worker

    _require_urls(settings, "worker")
    metrics = Metrics()
    if settings.worker.metrics_port:
        start_http_server(settings.worker.metrics_port, settings.host, metrics.registry)
    build_worker(settings, metrics=metrics).run()
    return 0


def cmd_migrate(settings: Settings) -> int:
    with embedded_servers(settings, redis=False) as resolved:
        applied = asyncio.run(run_migrations(resolved))
    print("applied: " + ", ".join(applied) if applied else "database is up to date")
    return 0
