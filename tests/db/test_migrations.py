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
