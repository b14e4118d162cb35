"""`helpdesk` command line: run (development), serve, worker, migrate, agent create, mail and
telegram tools."""

from __future__ import annotations

import argparse
import sys

import asyncpg

from helpdesk.cli.agents import cmd_agent_create
from helpdesk.cli.mail import cmd_mail_account_add, cmd_mail_ingest, cmd_mail_parse
from helpdesk.cli.servers import cmd_migrate, cmd_run, cmd_serve, cmd_worker, use_uvloop
from helpdesk.cli.telegram import cmd_telegram
from helpdesk.config import ConfigError, load_settings
from helpdesk.observability import configure_logging


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
