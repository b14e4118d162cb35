"""The mailbox cursor (UIDVALIDITY and last UID) and poller status rows in `imap_cursors`."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import asyncpg
import msgspec

from helpdesk.channels.email import queries
from helpdesk.channels.email.accounts import EmailAccount


class MailboxState(msgspec.Struct):
    """How the poller of one active mailbox fares (for /readyz)."""

    account: str
    folder: str
    status: Literal["starting", "ok", "failing"]
    last_error: str | None
    failures: int
    last_ok_at: datetime | None


async def ensure_cursor(conn: asyncpg.Connection, account: EmailAccount) -> None:
    """The mailbox's cursor row exists (status 'starting' when new)."""
    await conn.execute(queries.ENSURE_CURSOR, account.id, account.imap_folder)


async def record_ok(conn: asyncpg.Connection, account: EmailAccount) -> None:
    await conn.execute(queries.CURSOR_OK, account.id, account.imap_folder)


async def record_failure(conn: asyncpg.Connection, account: EmailAccount, reason: str) -> int:
    """Mark the mailbox failing with `reason` (already scrubbed); returns the failure count."""
    failures: int = await conn.fetchval(
        queries.CURSOR_FAILURE, account.id, account.imap_folder, reason
    )
    return failures


async def advance_cursor(
    conn: asyncpg.Connection, account: EmailAccount, uidvalidity: int, uid: int
) -> None:
    await conn.execute(queries.ADVANCE_CURSOR, account.id, account.imap_folder, uidvalidity, uid)


async def read_cursor(conn: asyncpg.Connection, account: EmailAccount) -> tuple[int | None, int]:
    """The stored UIDVALIDITY (None before the first round) and the last imported UID."""
    cursor = await conn.fetchrow(queries.CURSOR, account.id, account.imap_folder)
    last_uid: int = cursor["last_uid"] if cursor else 0
    return (cursor["uidvalidity"] if cursor else None), last_uid


async def restart_cursor(conn: asyncpg.Connection, account: EmailAccount, uidvalidity: int) -> None:
    """A new UIDVALIDITY voids every UID: the folder is read again from the start."""
    await conn.execute(queries.RESTART_CURSOR, account.id, account.imap_folder, uidvalidity)


async def mailbox_states(conn: asyncpg.Connection) -> list[MailboxState]:
    """Every active IMAP mailbox and how its poller fares; one no poller has touched yet
    (no worker running?) shows as 'starting'."""
    rows = await conn.fetch(queries.MAILBOX_STATES)
    return [
        MailboxState(
            account=r["name"],
            folder=r["imap_folder"],
            status=r["status"],
            last_error=r["last_error"],
            failures=r["failures"],
            last_ok_at=r["last_ok_at"],
        )
        for r in rows
    ]
