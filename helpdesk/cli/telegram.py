"""`helpdesk telegram`: webhook set-up and getUpdates polling for development."""

from __future__ import annotations

import argparse
import asyncio
import sys

from helpdesk.cli.servers import embedded_servers, run_migrations
from helpdesk.config import Settings
from helpdesk.db.pool import connect


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
    with embedded_servers(settings, redis=False) as resolved:
        asyncio.run(run_migrations(resolved))
        return asyncio.run(_telegram(resolved, args))
