"""Migrations from empty, re-run, and several replicas migrating at once."""

from __future__ import annotations

import asyncio

import asyncpg

from helpdesk.db.migrate import available_migrations, migrate_dsn
from tests.conftest import Servers


async def test_migrations_apply_from_empty_and_rerun_is_a_no_op(servers: Servers) -> None:
    dsn = await servers.create_database("helpdesk_migrate")
    try:
        applied = await migrate_dsn(dsn)
        assert applied == [m.name for m in available_migrations()]
        assert await migrate_dsn(dsn) == []
        conn = await asyncpg.connect(dsn)
        try:
            tables = {
                r["tablename"]
                for r in await conn.fetch(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                )
            }
            assert {
                "tickets",
                "messages",
                "customers",
                "customer_identities",
                "agents",
                "groups",
                "attachments",
                "ticket_events",
                "outbox",
                "audit_log",
                "schema_migrations",
            } <= tables
            assert await conn.fetchval("SELECT helpdesk_fold('Žluťoučký KŮŇ')") == "zlutoucky kun"
        finally:
            await conn.close()
    finally:
        await servers.drop_database(dsn)


async def test_replicas_starting_together_migrate_once(servers: Servers) -> None:
    dsn = await servers.create_database("helpdesk_migrate")
    try:
        results = await asyncio.gather(*(migrate_dsn(dsn) for _ in range(6)))
        non_empty = [r for r in results if r]
        assert len(non_empty) == 1
        conn = await asyncpg.connect(dsn)
        try:
            count = await conn.fetchval("SELECT count(*) FROM schema_migrations")
            assert count == len(available_migrations())
        finally:
            await conn.close()
    finally:
        await servers.drop_database(dsn)


async def test_edited_migration_is_refused(servers: Servers) -> None:
    dsn = await servers.create_database("helpdesk_migrate")
    try:
        await migrate_dsn(dsn)
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute("UPDATE schema_migrations SET checksum = 'x' WHERE version = 1")
        finally:
            await conn.close()
        try:
            await migrate_dsn(dsn)
        except Exception as exc:
            assert "was edited" in str(exc)
        else:
            raise AssertionError("an edited migration must stop the migrator")
    finally:
        await servers.drop_database(dsn)


# Rows the service deletes: merging customers and dropping an orphan delete customers.
DELETED_PARENTS = {"customers"}


async def test_every_reference_to_a_deleted_row_is_indexed(db: asyncpg.Connection) -> None:
    """Deleting a parent row checks each referencing column; without an index that
    check reads the whole child table (a customer merge scanned every message)."""
    unindexed = await db.fetch(
        """SELECT c.conrelid::regclass::text AS child, a.attname AS column_name
           FROM pg_constraint c
           JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
           WHERE c.contype = 'f' AND c.confrelid::regclass::text = ANY($1::text[])
             AND NOT EXISTS (SELECT FROM pg_index i
                             WHERE i.indrelid = c.conrelid AND i.indkey[0] = c.conkey[1])""",
        sorted(DELETED_PARENTS),
    )
    assert [f"{r['child']}.{r['column_name']}" for r in unindexed] == []


async def test_a_customer_merge_finds_the_messages_by_index(db: asyncpg.Connection) -> None:
    """The messages index is partial (customer-authored only); a merge's lookup by one
    customer can still use it."""
    await db.execute("SET enable_seqscan = off")  # the test data is too small to tell
    try:
        plan = "\n".join(
            r[0]
            for r in await db.fetch(
                "EXPLAIN UPDATE messages SET author_customer_id = 2 WHERE author_customer_id = 1"
            )
        )
    finally:
        await db.execute("RESET enable_seqscan")
    assert "messages_author_customer_idx" in plan
