"""`helpdesk/db/schema.sql` is what the migrations give a fresh database."""

from __future__ import annotations

import difflib

import asyncpg
import pytest

from helpdesk.db.migrate import migrate_dsn
from helpdesk.db.schema import SCHEMA_FILE, describe, main
from tests.conftest import Servers

REGENERATE = "python -m helpdesk.db.schema > helpdesk/db/schema.sql"


def _diff(expected: str, actual: str) -> str:
    return "".join(
        difflib.unified_diff(
            expected.splitlines(keepends=True),
            actual.splitlines(keepends=True),
            fromfile="helpdesk/db/schema.sql (committed)",
            tofile="migrations replayed on a fresh database",
        )
    )


def test_replaying_the_migrations_gives_the_committed_schema(
    servers: Servers, capsys: pytest.CaptureFixture[str]
) -> None:
    """Through the documented command, on the suite's server (embedded or the machine's)."""
    assert main([servers.admin_dsn]) == 0
    actual = capsys.readouterr().out
    expected = SCHEMA_FILE.read_text("utf-8")
    if actual != expected:
        pytest.fail(
            f"the migrations no longer give helpdesk/db/schema.sql; if the change is "
            f"intended, regenerate it ({REGENERATE}) and commit it:\n{_diff(expected, actual)}"
        )


def test_the_command_refuses_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 2
    assert "usage: python -m helpdesk.db.schema" in capsys.readouterr().err


async def test_the_description_shows_a_schema_change_and_nothing_else(servers: Servers) -> None:
    """The comparison can fail: a changed column, index, constraint, trigger or comment
    shows in the description (and so in the diff), while the connection's search_path
    and a second run change nothing."""
    dsn = await servers.create_database("helpdesk_schema")
    try:
        await migrate_dsn(dsn)
        conn = await asyncpg.connect(dsn)
        try:
            before = await describe(conn)
            assert await describe(conn) == before
            await conn.execute("SET search_path = pg_catalog")
            assert await describe(conn) == before
            await conn.execute("RESET search_path")
            await conn.execute(
                """
                ALTER TABLE agents ADD COLUMN nickname text DEFAULT '' NOT NULL
                    CONSTRAINT agents_nickname_check CHECK (length(nickname) <= 50);
                CREATE INDEX agents_nickname_idx ON agents (nickname);
                COMMENT ON COLUMN agents.nickname IS 'shown in the console';
                CREATE TRIGGER agents_no_delete BEFORE DELETE ON agents
                    FOR EACH ROW EXECUTE FUNCTION audit_log_is_append_only();
                INSERT INTO schema_migrations (version, name, checksum)
                    VALUES (9999, '9999_rows_are_not_schema.sql', 'x');
                """
            )
            after = await describe(conn)
        finally:
            await conn.close()
    finally:
        await servers.drop_database(dsn)
    added = [
        line[1:]
        for line in _diff(before, after).splitlines()
        if line.startswith("+") and not line.startswith("+++")
    ]
    assert added == [
        "    nickname text DEFAULT ''::text NOT NULL,",
        "    CONSTRAINT agents_nickname_check CHECK ((length(nickname) <= 50)),",
        "COMMENT ON COLUMN agents.nickname IS 'shown in the console';",
        "CREATE INDEX agents_nickname_idx ON public.agents USING btree (nickname);",
        "CREATE TRIGGER agents_no_delete BEFORE DELETE ON public.agents FOR EACH ROW "
        "EXECUTE FUNCTION audit_log_is_append_only();",
    ]
