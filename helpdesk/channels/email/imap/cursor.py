"""The mailbox cursor (UIDVALIDITY and last UID) and poller status rows in `imap_cursors`."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import asyncpg
import msgspec

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
    await conn.execute(
        """INSERT INTO imap_cursors (account_id, folder) VALUES ($1, $2)
           ON CONFLICT (account_id, folder) DO NOTHING""",
        account.id,
        account.imap_folder,
    )


async def record_ok(conn: asyncpg.Connection, account: EmailAccount) -> None:
    await conn.execute(
        """UPDATE imap_cursors SET status = 'ok', last_error = NULL, failures = 0,
                  last_ok_at = now(), updated_at = now()
           WHERE account_id = $1 AND folder = $2""",
        account.id,
        account.imap_folder,
    )


async def record_failure(conn: asyncpg.Connection, account: EmailAccount, reason: str) -> int:
    """Mark the mailbox failing with `reason` (already scrubbed); returns the failure count."""
    failures: int = await conn.fetchval(
        """INSERT INTO imap_cursors (account_id, folder, status, last_error, failures)
           VALUES ($1, $2, 'failing', $3, 1)
           ON CONFLICT (account_id, folder) DO UPDATE
           SET status = 'failing', last_error = EXCLUDED.last_error,
               failures = imap_cursors.failures + 1, updated_at = now()
           RETURNING failures""",
        account.id,
        account.imap_folder,
        reason,
    )
    return failures


async def advance_cursor(
    conn: asyncpg.Connection, account: EmailAccount, uidvalidity: int, uid: int
) -> None:
    await conn.execute(
        """UPDATE imap_cursors
           SET last_uid = CASE WHEN uidvalidity = $3 THEN GREATEST(last_uid, $4) ELSE $4 END,
               uidvalidity = $3, updated_at = now()
           WHERE account_id = $1 AND folder = $2""",
        account.id,
        account.imap_folder,
        uidvalidity,
        uid,
    )


async def read_cursor(conn: asyncpg.Connection, account: EmailAccount) -> tuple[int | None, int]:
    """The stored UIDVALIDITY (None before the first round) and the last imported UID."""
    cursor = await conn.fetchrow(
        "SELECT uidvalidity, last_uid FROM imap_cursors WHERE account_id = $1 AND folder = $2",
        account.id,
        account.imap_folder,
    )
    last_uid: int = cursor["last_uid"] if cursor else 0
    return (cursor["uidvalidity"] if cursor else None), last_uid


async def restart_cursor(conn: asyncpg.Connection, account: EmailAccount, uidvalidity: int) -> None:
    """A new UIDVALIDITY voids every UID: the folder is read again from the start."""
    await conn.execute(
        """UPDATE imap_cursors SET uidvalidity = $3, last_uid = 0, updated_at = now()
           WHERE account_id = $1 AND folder = $2""",
        account.id,
        account.imap_folder,
        uidvalidity,
    )


async def mailbox_states(conn: asyncpg.Connection) -> list[MailboxState]:
    """Every active IMAP mailbox and how its poller fares; one no poller has touched yet
    (no worker running?) shows as 'starting'."""
    rows = await conn.fetch(
        """SELECT a.name, a.imap_folder, coalesce(c.status, 'starting') AS status,
                  c.last_error, coalesce(c.failures, 0) AS failures, c.last_ok_at
           FROM email_accounts a
           LEFT JOIN imap_cursors c ON c.account_id = a.id AND c.folder = a.imap_folder
           WHERE a.active AND a.imap_host IS NOT NULL
           ORDER BY a.name"""
    )
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
