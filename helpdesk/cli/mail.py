"""`helpdesk mail`: parse a mail offline, ingest mail files, add a mail account."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from helpdesk.cli.servers import embedded_servers, run_migrations
from helpdesk.config import Settings
from helpdesk.db.pool import connect


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
    with embedded_servers(settings, redis=False) as resolved:
        asyncio.run(run_migrations(resolved))
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
    with embedded_servers(settings, redis=False) as resolved:
        asyncio.run(run_migrations(resolved))
        try:
            asyncio.run(_add_account(resolved, data))
        except Conflict as exc:
            print(f"helpdesk: {exc.detail}", file=sys.stderr)
            return 1
    print(f"email account {args.name} <{args.address}> created")
    return 0
