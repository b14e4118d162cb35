"""`helpdesk` command line: run (development), serve, worker, migrate, agent create, mail and
telegram tools."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import logging
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg

from helpdesk.config import ConfigError, Settings, load_settings
from helpdesk.db.pool import connect
from helpdesk.observability import Metrics, configure_logging

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
def _servers(settings: Settings, *, redis: bool = True) -> Iterator[Settings]:
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


async def _migrate(settings: Settings) -> list[str]:
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


async def _seed(settings: Settings) -> bool:
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
    with _servers(settings) as resolved:
        applied = asyncio.run(_migrate(resolved))
        if applied:
            log.info("migrations applied", extra={"migrations": applied})
        if resolved.demo:
            seeded = asyncio.run(_seed(resolved))
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
    with _servers(settings, redis=False) as resolved:
        applied = asyncio.run(_migrate(resolved))
    print("applied: " + ", ".join(applied) if applied else "database is up to date")
    return 0


async def _create_agent(settings: Settings, args: argparse.Namespace, password: str | None) -> str:
    from helpdesk.agents import service
    from helpdesk.agents.models import AgentCreate
    from helpdesk.agents.passwords import Passwords

    conn = await connect(settings.database_url)
    try:
        async with conn.transaction():
            group_ids = []
            for name in args.group or []:
                group_id = await conn.fetchval("SELECT id FROM groups WHERE name = $1", name)
                if group_id is None:
                    raise ConfigError(f"no group named {name!r}")
                group_ids.append(group_id)
            agent = await service.create_agent(
                conn,
                Passwords(settings.auth),
                AgentCreate(
                    email=args.email,
                    name=args.name or args.email,
                    role=args.role,
                    password=password,
                    group_ids=group_ids,
                ),
            )
            token, _ = await service.issue_token(conn, agent.id, settings.auth.token_ttl_hours)
        return token
    finally:
        await conn.close()


def cmd_agent_create(settings: Settings, args: argparse.Namespace) -> int:
    import msgspec

    from helpdesk.errors import HelpdeskError

    password = None
    if args.password_stdin:
        password = (
            sys.stdin.readline().rstrip("\n") if not sys.stdin.isatty() else getpass.getpass()
        )
    with _servers(settings, redis=False) as resolved:
        asyncio.run(_migrate(resolved))
        try:
            token = asyncio.run(_create_agent(resolved, args, password))
        except (HelpdeskError, msgspec.ValidationError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    print(token)
    print("(the token is shown only once)", file=sys.stderr)
    return 0


def cmd_mail_parse(files: list[str]) -> int:
    """Print what the email parser extracts, one JSON document per file; no database."""
    from helpdesk.channels.email.parse import preview_json

    for name in files:
        try:
            raw = sys.stdin.buffer.read() if name == "-" else Path(name).read_bytes()
        except OSError as exc:
            print(f"helpdesk: cannot read {name}: {exc.strerror}", file=sys.stderr)
            return 1
        sys.stdout.buffer.write(preview_json(raw) + b"\n")
    return 0


async def _ingest_files(settings: Settings, account: str, mails: list[tuple[str, bytes]]) -> int:
    import msgspec

    from helpdesk.channels.email.accounts import get_account
    from helpdesk.channels.email.receive import receive

    conn = await connect(settings.database_url)
    try:
        found = await get_account(conn, account)
        if found is None:
            print(
                f"helpdesk: no email account '{account}'; create it with "
                f"`helpdesk mail account add {account} --address ADDRESS`",
                file=sys.stderr,
            )
            return 1
        for name, raw in mails:
            receipt = await receive(conn, settings, found, raw, source="cli")
            line = {"file": name, **msgspec.structs.asdict(receipt)}
            sys.stdout.write(msgspec.json.encode(line).decode() + "\n")
    finally:
        await conn.close()
    return 0


def cmd_mail_ingest(settings: Settings, account: str, files: list[str]) -> int:
    """Store raw mail files as messages (each exactly once), printing where each went.

    Acknowledgements they trigger are queued in the outbox; a running worker sends them.
    """
    mails = []
    for name in files:
        try:
            mails.append((name, Path(name).read_bytes()))
        except OSError as exc:
            print(f"helpdesk: cannot read {name}: {exc.strerror}", file=sys.stderr)
            return 1
    with _servers(settings, redis=False) as resolved:
        asyncio.run(_migrate(resolved))
        return asyncio.run(_ingest_files(resolved, account, mails))


async def _add_account(settings: Settings, data: Any) -> None:
    from helpdesk.channels.email.accounts import create_account

    conn = await connect(settings.database_url)
    try:
        async with conn.transaction():
            await create_account(conn, data)
    finally:
        await conn.close()


def cmd_mail_account_add(settings: Settings, args: argparse.Namespace) -> int:
    """Create an email account with its address (and intake secret from stdin).

    IMAP and SMTP settings are set by an admin through PATCH /channels/email/accounts/NAME.
    """
    import msgspec

    from helpdesk.channels.email.accounts import EmailAccountCreate
    from helpdesk.errors import Conflict

    values: dict[str, Any] = {"name": args.name, "address": args.address}
    if args.display_name:
        values["display_name"] = args.display_name
    if args.inbound_secret_stdin:
        values["inbound_secret"] = sys.stdin.readline().strip()
    try:
        data = msgspec.convert(values, EmailAccountCreate)
    except msgspec.ValidationError as exc:
        print(f"helpdesk: {exc}", file=sys.stderr)
        return 1
    with _servers(settings, redis=False) as resolved:
        asyncio.run(_migrate(resolved))
        try:
            asyncio.run(_add_account(resolved, data))
        except Conflict as exc:
            print(f"helpdesk: {exc.detail}", file=sys.stderr)
            return 1
    print(f"email account {args.name} <{args.address}> created")
    return 0


async def _telegram(settings: Settings, args: argparse.Namespace) -> int:
    from helpdesk.channels.telegram import commands
    from helpdesk.db.pool import create_pool

    try:
        if args.telegram_command == "set-webhook":
            conn = await connect(settings.database_url)
            try:
                account = await commands.telegram_account(conn, args.account)
            finally:
                await conn.close()
            url = await commands.set_webhook(account, args.url)
            print(f"telegram webhook of '{args.account}' set to {url}")
            return 0
        pool = await create_pool(settings.database_url, min_size=1, max_size=4)
        try:
            async with pool.acquire() as conn:
                account = await commands.telegram_account(conn, args.account)
            print(f"polling telegram updates for '{args.account}' (Ctrl-C stops)", file=sys.stderr)
            new = await commands.poll(pool, settings, account, once=args.once)
        finally:
            await pool.close()
        print(f"{new} new message(s) stored")
        return 0
    except commands.TelegramCommandError as exc:
        print(f"helpdesk: {exc}", file=sys.stderr)
        return 1


def cmd_telegram(settings: Settings, args: argparse.Namespace) -> int:
    """Register the webhook, or poll for updates in development (no public URL needed)."""
    with _servers(settings, redis=False) as resolved:
        asyncio.run(_migrate(resolved))
        return asyncio.run(_telegram(resolved, args))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="helpdesk", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="development: embedded servers if unconfigured, API + worker")
    sub.add_parser("serve", help="the API only (run several replicas behind a proxy)")
    sub.add_parser("worker", help="the arq worker")
    sub.add_parser("migrate", help="apply pending database migrations")
    agent = sub.add_parser("agent", help="manage agents")
    agent_sub = agent.add_subparsers(dest="agent_command", required=True)
    create = agent_sub.add_parser("create", help="create an agent and print a bearer token once")
    create.add_argument("--email", required=True)
    create.add_argument("--name")
    create.add_argument(
        "--role", required=True, choices=["agent", "supervisor", "admin", "partner"]
    )
    create.add_argument("--group", action="append", help="group name (repeatable)")
    create.add_argument(
        "--password-stdin", action="store_true", help="read a login password from standard input"
    )
    mail = sub.add_parser("mail", help="email tools")
    mail_sub = mail.add_subparsers(dest="mail_command", required=True)
    parse = mail_sub.add_parser(
        "parse", help="print what the parser extracts from raw mail, as JSON"
    )
    parse.add_argument("files", nargs="+", metavar="FILE", help="RFC 822 files ('-' for stdin)")
    ingest = mail_sub.add_parser("ingest", help="store raw mail files as tickets and messages")
    ingest.add_argument("--account", default="support", help="the email account they came to")
    ingest.add_argument("files", nargs="+", metavar="FILE", help="RFC 822 files")
    account = mail_sub.add_parser("account", help="manage email accounts")
    account_sub = account.add_subparsers(dest="account_command", required=True)
    add = account_sub.add_parser("add", help="create an email account")
    add.add_argument("name", help="account key used in URLs, e.g. support")
    add.add_argument("--address", required=True, help="the address replies are sent from")
    add.add_argument("--display-name", default="")
    add.add_argument(
        "--inbound-secret-stdin",
        action="store_true",
        help="read the raw intake endpoint's secret (16+ characters) from standard input",
    )
    sla = sub.add_parser("sla", help="SLA tools")
    sla_sub = sla.add_subparsers(dest="sla_command", required=True)
    sla_sub.add_parser(
        "compute", help="what-if: clocks of one JSON scenario on stdin, as JSON; no database"
    )
    sub.add_parser(
        "classify",
        help="category and language of JSON-line messages on stdin, as JSON lines; no database",
    )
    telegram = sub.add_parser("telegram", help="Telegram bots")
    telegram_sub = telegram.add_subparsers(dest="telegram_command", required=True)
    hook = telegram_sub.add_parser(
        "set-webhook", help="register the bot's webhook (setWebhook with the account's secret)"
    )
    hook.add_argument("account", help="the telegram channel account's name")
    hook.add_argument(
        "--url", required=True, help="public base URL of the API, e.g. https://help.example.com"
    )
    poll = telegram_sub.add_parser(
        "poll", help="development: receive updates with getUpdates instead of a webhook"
    )
    poll.add_argument("account", help="the telegram channel account's name")
    poll.add_argument("--once", action="store_true", help="one getUpdates round, then stop")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "sla":  # pure: needs no settings, exit 2 on an invalid scenario
        from helpdesk.sla.whatif import main as sla_compute

        return sla_compute(sys.stdin, sys.stdout, sys.stderr)
    if args.command == "classify":  # pure too: shipped default rules, exit 2 on a bad line
        from helpdesk.routing.classify_cli import main as classify_lines

        return classify_lines(sys.stdin, sys.stdout, sys.stderr)
    try:
        settings = load_settings()
        configure_logging(settings.log_level)
        if args.command in ("run", "serve", "worker"):
            use_uvloop()
        if args.command == "run":
            return cmd_run(settings)
        if args.command == "serve":
            return cmd_serve(settings)
        if args.command == "worker":
            return cmd_worker(settings)
        if args.command == "migrate":
            return cmd_migrate(settings)
        if args.command == "mail" and args.mail_command == "parse":
            return cmd_mail_parse(args.files)
        if args.command == "mail" and args.mail_command == "account":
            return cmd_mail_account_add(settings, args)
        if args.command == "mail":
            return cmd_mail_ingest(settings, args.account, args.files)
        if args.command == "telegram":
            return cmd_telegram(settings, args)
        return cmd_agent_create(settings, args)
    except ConfigError as exc:
        print(f"helpdesk: {exc}", file=sys.stderr)
        return 2
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        # Unreachable or refusing database at start-up: one line, no traceback, no DSN.
        print(f"helpdesk: cannot use the database: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        return 130
