"""The pool skips asyncpg's reset query on release; what a release must still undo, it does."""

from __future__ import annotations

import asyncpg
import pytest

from helpdesk.db.pool import create_pool


async def test_a_connection_released_inside_a_transaction_comes_back_rolled_back(
    database_url: str, db: asyncpg.Connection
) -> None:
    await db.execute("CREATE TABLE pool_release_probe (n int)")
    pool = await create_pool(database_url, min_size=1, max_size=1)
    try:
        conn = await pool.acquire()
        transaction = conn.transaction()
        await transaction.start()  # left open, as by a handler that crashed mid-way
        await conn.execute("INSERT INTO pool_release_probe VALUES (1)")
        await pool.release(conn)
        async with pool.acquire() as again:  # the pool's only connection
            assert not again.is_in_transaction()
            assert await again.fetchval("SELECT count(*) FROM pool_release_probe") == 0
            await again.execute("INSERT INTO pool_release_probe VALUES (2)")  # autocommit
        assert await db.fetchval("SELECT array_agg(n) FROM pool_release_probe") == [2]
    finally:
        await pool.close()
        await db.execute("DROP TABLE pool_release_probe")


async def test_a_failed_transaction_leaves_a_usable_connection(database_url: str) -> None:
    pool = await create_pool(database_url, min_size=1, max_size=1)
    try:
        with pytest.raises(asyncpg.DivisionByZeroError):
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT 1 / 0")
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT 41 + 1") == 42
    finally:
        await pool.close()
