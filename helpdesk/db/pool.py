"""The asyncpg pool and the errors that mean "the database is unreachable"."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

# Errors raised while PostgreSQL is down or restarting; the API answers 503 for these.
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.InterfaceError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
)


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _on_release(conn: asyncpg.Connection) -> None:
    """Nothing to undo beyond what asyncpg always does on release (roll back an open
    transaction, drop listeners), so no reset query: it would cost a round trip per
    release. Pooled connections carry no session state by design: no session `SET`, no
    `LISTEN`, no session advisory lock; those live on dedicated connections (the SLA
    due-soon listener, the IMAP mailbox lock), never on pooled ones."""


async def create_pool(
    dsn: str, min_size: int = 1, max_size: int = 10, **kwargs: Any
) -> asyncpg.Pool:
    pool: asyncpg.Pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        reset=_on_release,
        command_timeout=30,
        **kwargs,
    )
    return pool


async def connect(dsn: str) -> asyncpg.Connection:
    """A single connection with the same codecs as the pool (CLI commands)."""
    conn: asyncpg.Connection = await asyncpg.connect(dsn)
    await _init_connection(conn)
    return conn
