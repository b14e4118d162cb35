"""The quarantine: raw mail we could not import, for admins to inspect and re-process.

Entries are kept byte-exact. Re-processing runs the mail through `receive` again (after
a fix of the parser or of the account); it leaves the entry untouched when the mail
still cannot be imported.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import asyncpg
import msgspec

from helpdesk.agents.models import Principal
from helpdesk.audit import service as audit
from helpdesk.channels.email import queries
from helpdesk.channels.email.accounts import get_account
from helpdesk.channels.email.receive import Receipt, receive
from helpdesk.config import Settings
from helpdesk.errors import Conflict, NotFound

QuarantineStatus = Literal["held", "reprocessed", "discarded"]


class QuarantinedMail(msgspec.Struct):
    id: int
    account: str
    source: str
    size_bytes: int
    sha256: str
    reason: str
    status: str
    ticket_id: int | None
    created_at: datetime
    resolved_at: datetime | None


class QuarantinePage(msgspec.Struct):
    items: list[QuarantinedMail]
    next_cursor: int | None


def _out(row: asyncpg.Record) -> QuarantinedMail:
    return QuarantinedMail(**dict(row))


async def list_quarantine(
    conn: asyncpg.Connection, status: QuarantineStatus | None, limit: int, before: int | None
) -> QuarantinePage:
    """Newest first; `before` is the id cursor of the next page."""
    rows = await conn.fetch(queries.QUARANTINE_PAGE, status, before, limit + 1)
    items = [_out(r) for r in rows[:limit]]
    return QuarantinePage(items, items[-1].id if len(rows) > limit else None)


async def get_entry(conn: asyncpg.Connection, entry_id: int) -> QuarantinedMail:
    row = await conn.fetchrow(queries.QUARANTINE_ENTRY, entry_id)
    if row is None:
        raise NotFound("No such quarantined mail")
    return _out(row)


async def raw_mail(conn: asyncpg.Connection, entry_id: int) -> bytes:
    raw = await conn.fetchval(queries.QUARANTINED_RAW, entry_id)
    if raw is None:
        raise NotFound("No such quarantined mail")
    return bytes(raw)


async def reprocess(
    conn: asyncpg.Connection, settings: Settings, entry_id: int, actor: Principal
) -> tuple[QuarantinedMail, Receipt]:
    """Import a held mail again; 409 with the reason when it still cannot be imported."""
    async with conn.transaction():
        row = await conn.fetchrow(queries.LOCK_QUARANTINED_MAIL, entry_id)
        if row is None:
            raise NotFound("No such quarantined mail")
        if row["status"] != "held":
            raise Conflict(f"The mail was already {row['status']}")
        account = await get_account(conn, row["account"])
        if account is None:
            raise Conflict(f"The email account '{row['account']}' does not exist (any more)")
        raw = bytes(row["raw"])
        receipt = await receive(conn, settings, account, raw, source="cli")
        if receipt.outcome == "quarantined":
            raise Conflict(f"The mail still cannot be imported: {receipt.reason}")
        await conn.execute(queries.MARK_REPROCESSED, entry_id, receipt.ticket_id)
        await audit.record(
            conn,
            action="email_quarantine.reprocess",
            outcome="allowed",
            actor=actor,
            object_type="email_quarantine",
            object_id=entry_id,
            detail={"ticket_id": receipt.ticket_id, "outcome": receipt.outcome},
        )
    return await get_entry(conn, entry_id), receipt


async def discard(conn: asyncpg.Connection, entry_id: int, actor: Principal) -> QuarantinedMail:
    """Mark a held mail as dealt with; the bytes stay for the record."""
    async with conn.transaction():
        status = await conn.fetchval(queries.LOCK_QUARANTINE_STATUS, entry_id)
        if status is None:
            raise NotFound("No such quarantined mail")
        if status != "held":
            raise Conflict(f"The mail was already {status}")
        await conn.execute(queries.MARK_DISCARDED, entry_id)
        await audit.record(
            conn,
            action="email_quarantine.discard",
            outcome="allowed",
            actor=actor,
            object_type="email_quarantine",
            object_id=entry_id,
        )
    return await get_entry(conn, entry_id)
