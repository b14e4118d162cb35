"""What the chat channels stored from the webhooks: messages, attachments, or nothing."""

from __future__ import annotations

import asyncpg

from helpdesk.channels.jobs import retry_attachment_fetches
from helpdesk.config import Settings
from tests.conftest import job_context


async def inbound_messages(db: asyncpg.Connection, channel: str) -> list[asyncpg.Record]:
    """The customers' messages of `channel`, oldest first."""
    rows: list[asyncpg.Record] = await db.fetch(
        "SELECT * FROM messages WHERE direction = 'inbound' AND channel = $1 ORDER BY id",
        channel,
    )
    return rows


async def nothing_stored(db: asyncpg.Connection) -> None:
    """Assert that no delivery was kept and no message stored."""
    assert await db.fetchval("SELECT count(*) FROM inbound_events") == 0
    assert await db.fetchval("SELECT count(*) FROM messages") == 0


async def attachment_rows(db: asyncpg.Connection) -> list[asyncpg.Record]:
    """Every attachment with its message's text, oldest first."""
    rows: list[asyncpg.Record] = await db.fetch(
        """SELECT a.*, m.body_text FROM attachments a JOIN messages m ON m.id = a.message_id
           ORDER BY a.id"""
    )
    return rows


async def retry_due_downloads(db: asyncpg.Connection, settings: Settings) -> int:
    """The retry sweep once, with every pending download made due now."""
    await db.execute("UPDATE attachments SET next_fetch_at = now() WHERE state = 'pending'")
    async with job_context(settings) as ctx:
        return await retry_attachment_fetches(ctx)
