"""SQL lives in each domain's `queries.py` (or `.sql` files), so a reader finds every
statement about a domain in one place and a schema change in a few files.

A string constant in `helpdesk/` or `workers/` that reads as an SQL statement (f-strings
by their constant parts) may only be in a `queries.py`, or in `helpdesk/db/` (the
infrastructure: migrations, the schema description, signing keys). Docstrings are prose
and not looked at.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCANNED = ("helpdesk", "workers")
INFRASTRUCTURE = "helpdesk/db/"

# Files whose SQL has not moved to their domain's queries.py yet: none since issue 20.
# Should a module ever need a grace period, it goes here; a listed file without SQL
# fails the test, so the list can only shrink.
NOT_YET_MOVED: frozenset[str] = frozenset()

# Upper-case keywords, as every statement here is written; prose ("select a ticket from
# the queue") does not match.
SQL_STATEMENT = re.compile(
    r"""
      \bSELECT\b[\s\S]*\bFROM\b                                   # SELECT ... FROM
    | ^\s*SELECT\s+(?:\w+\s*\(|\d|\$|\*|true\b|false\b)          # SELECT 1, SELECT f(...)
    | \bINSERT\s+INTO\b
    | \bUPDATE\s+\w+(?:\s+(?:AS\s+)?\w+)?\s+SET\b                 # UPDATE t [[AS] a] SET
    | \bDELETE\s+FROM\b
    | ^\s*WITH\s+(?:RECURSIVE\s+)?\w+(?:\s*\([^)]*\))?\s+AS\s+(?:NOT\s+)?(?:MATERIALIZED\s+)?\(
    | ^\s*LOCK\s+TABLE\b
    """,
    re.VERBOSE,
)


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def _strings(source: str) -> Iterator[tuple[int, str]]:
    """Each string constant outside docstrings with its line; an f-string as one text
    whose interpolated parts read `{}`."""
    tree = ast.parse(source)
    skip = _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            skip.update(id(part) for part in node.values)
            text = "".join(
                part.value if isinstance(part, ast.Constant) else "{}" for part in node.values
            )
            yield node.lineno, text
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            yield node.lineno, node.value


def sql_lines(source: str) -> list[int]:
    """The lines where a string constant of `source` reads as an SQL statement."""
    return sorted({line for line, text in _strings(source) if SQL_STATEMENT.search(text)})


def _may_hold_sql(path: str) -> bool:
    return path.endswith("/queries.py") or path.startswith(INFRASTRUCTURE)


def _sql_outside_queries() -> dict[str, list[int]]:
    found = {}
    for top in SCANNED:
        for file in sorted((ROOT / top).rglob("*.py")):
            path = file.relative_to(ROOT).as_posix()
            if _may_hold_sql(path):
                continue
            lines = sql_lines(file.read_text("utf-8"))
            if lines:
                found[path] = lines
    return found


def test_sql_lives_in_queries_modules() -> None:
    found = _sql_outside_queries()
    misplaced = {path: lines for path, lines in found.items() if path not in NOT_YET_MOVED}
    assert misplaced == {}, (
        "SQL outside a queries.py: move it to the domain's queries.py "
        f"(a named constant with a comment, or a small function): {misplaced}"
    )
    moved = sorted(NOT_YET_MOVED - found.keys())
    assert moved == [], f"no SQL left in {moved}: take them off NOT_YET_MOVED"


def test_the_allowlist_names_files_that_exist_outside_queries_modules() -> None:
    for path in NOT_YET_MOVED:
        assert (ROOT / path).is_file(), path
        assert not _may_hold_sql(path), path


def test_the_detector_finds_statements_and_not_prose() -> None:
    found = '''
"""Docstrings are prose: SELECT id FROM tickets is not looked at here."""
A = "SELECT id FROM tickets WHERE id = $1"
B = """
    INSERT INTO audit_log (action) VALUES ($1)
"""
C = f"UPDATE tickets t SET status = {status!r} WHERE t.id = $1"
D = "DELETE FROM agent_tokens WHERE agent_id = $1"
E = """WITH due AS (SELECT id FROM outbox) UPDATE outbox SET status = 'sending'"""
F = "SELECT 1"
G = f"""SELECT {COLUMNS}
        FROM agents a"""
H = "LOCK TABLE agents IN EXCLUSIVE MODE"


def f():
    """UPDATE tickets SET nothing: a docstring again."""
    return conn.fetch("SELECT count(*) FROM groups WHERE id = ANY($1)")
'''
    assert sql_lines(found) == [3, 4, 7, 8, 9, 10, 11, 13, 18]
    prose = """
A = "Select a ticket from the queue"
B = "update the ticket, then set its status"
C = "Too many failed logins; try again later"
D = f"No template {name!r} in {language}"
E = "selected from"
F = "with care as (a note)"
G = "t.group_id = ANY($1::bigint[])"
H = "SELECT"  # the IMAP command
I = f"SELECT of folder {folder!r}"
"""
    assert sql_lines(prose) == []


def test_queries_modules_are_where_the_guard_looks() -> None:
    """The domains moved so far hold their SQL in queries.py (a rename would otherwise
    silently let SQL back into the services)."""
    for path in (
        "helpdesk/agents/queries.py",
        "helpdesk/audit/queries.py",
        "helpdesk/channels/queries.py",
        "helpdesk/channels/email/queries.py",
        "helpdesk/csat/queries.py",
        "helpdesk/customers/queries.py",
        "helpdesk/demo/queries.py",
        "helpdesk/routing/queries.py",
        "helpdesk/sla/queries.py",
        "helpdesk/templates/queries.py",
        "helpdesk/tickets/queries.py",
        "helpdesk/web/queries.py",
    ):
        assert sql_lines((ROOT / path).read_text("utf-8")), path
