"""The asyncpg pool and the errors that mean "the database is unreachable"."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

# Errors raised while PostgreSQL is down or restarting, or when a connection is lost
# (terminated, reset, the pool closing); the API answers 503 for these.
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, broken pipe
    TimeoutError,
    asyncpg.PostgresConnectionError,  # class 08: ConnectionDoesNotExistError, ...
    asyncpg.InterfaceError,  # "connection is closed", "pool is closing"
    # Class 57: admin/crash shutdown (pg_terminate_backend), cannot connect now,
    # database dropped, idle session timeout, statement canceled.
    asyncpg.exceptions.OperatorInterventionError,
    # Class 53: too many connections, out of memory, disk full.
    asyncpg.exceptions.InsufficientResourcesError,
    # A connection whose server ended it while idle in the pool: asyncpg's protocol is
    # left mid-operation ("cannot switch to state ...; another operation is in progress").
    asyncpg.exceptions._base.InternalClientError,
)


def database_unavailable(error: BaseException) -> bool:
    """True when `error`, or what it was raised from (its cause or context, or a member
    of an exception group), means the database could not be reached or the connection
    was lost: a condition to retry later, never a bug."""
    seen: set[int] = set()
    pending: list[BaseException] = [error]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, UNAVAILABLE_ERRORS):
            return True
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)
        for linked in (current.__cause__, current.__context__):
            if linked is not None:
                pending.append(linked)
    return False


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
