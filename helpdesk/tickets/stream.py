"""Live ticket changes for the console: every event of the tickets the caller may see,
as server-sent events whose id is the event id (resume with Last-Event-ID)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import msgspec
from litestar.response import ServerSentEventMessage

from helpdesk.agents.models import Principal
from helpdesk.tickets import queries

STREAM_SECONDS = 300.0
POLL_SECONDS = 1.0
KEEPALIVE_SECONDS = 15.0


class TicketChange(msgspec.Struct):
    id: int
    ticket_id: int
    action: str


async def changes_after(
    conn: asyncpg.Connection, principal: Principal, after: int, limit: int = 200
) -> list[TicketChange]:
    sql, params = queries.changes_after(principal, after, limit)
    rows = await conn.fetch(sql, *params)
    return [TicketChange(r["id"], r["ticket_id"], r["action"]) for r in rows]


async def latest_id(conn: asyncpg.Connection) -> int:
    found: int = await conn.fetchval(queries.LATEST_EVENT_ID)
    return found


async def events(
    pool: asyncpg.Pool, principal: Principal, after: int | None
) -> AsyncIterator[ServerSentEventMessage]:
    """From `after` (default: from now on) until STREAM_SECONDS have passed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STREAM_SECONDS
    quiet_since = loop.time()
    if after is None:
        async with pool.acquire() as conn:
            after = await latest_id(conn)
    yield ServerSentEventMessage(data=None, retry=2000, comment="open", id=after)
    while loop.time() < deadline:
        async with pool.acquire() as conn:
            found = await changes_after(conn, principal, after)
        for change in found:
            yield ServerSentEventMessage(
                data=msgspec.json.encode(change).decode(), event="ticket", id=change.id
            )
            after = change.id
        if found:
            quiet_since = loop.time()
            continue
        if loop.time() - quiet_since >= KEEPALIVE_SECONDS:
            yield ServerSentEventMessage(data=None, comment="keepalive")
            quiet_since = loop.time()
        await asyncio.sleep(POLL_SECONDS)
