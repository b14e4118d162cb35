"""SQL of the tickets domain: columns, the queue listing and its keyset cursor."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime

import asyncpg
import msgspec

from helpdesk.agents.models import Principal
from helpdesk.agents.scope import ticket_scope
from helpdesk.db.sql import Params
from helpdesk.errors import InvalidInput, NotFound
from helpdesk.tickets.models import Sort, TicketFilters, TicketOut

# The columns of a `TicketOut`, in its field order, so a row converts by position.
TICKET_COLUMNS = ", ".join(f"t.{name}" for name in TicketOut.__struct_fields__)
_TICKET_WIDTH = len(TicketOut.__struct_fields__)


def ticket_out(row: asyncpg.Record) -> TicketOut:
    """A ticket from a row that starts with `TICKET_COLUMNS` (extra columns may follow).

    Positional, because a queue page converts 25-100 rows per request and building a
    keyword dict per row was a tenth of the listing's CPU in the API.
    """
    return TicketOut(*row[:_TICKET_WIDTH])


class Cursor(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    sort: Sort
    created_at: datetime
    id: int


def encode_cursor(sort: Sort, ticket: TicketOut) -> str:
    raw = msgspec.json.encode(Cursor(sort, ticket.created_at, ticket.id))
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(value: str, sort: Sort) -> Cursor:
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        cursor = msgspec.json.decode(raw, type=Cursor)
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise InvalidInput("Malformed cursor", field="cursor") from None
    if cursor.sort != sort:
        raise InvalidInput("The cursor belongs to another sort order", field="cursor")
    return cursor


def _filter_clauses(principal: Principal, filters: TicketFilters, params: Params) -> list[str]:
    where = [ticket_scope(principal, params)]
    for column, values in (
        ("status", filters.status),
        ("priority", filters.priority),
        ("category", filters.category),
        ("channel", filters.channel),
    ):
        if values:
            where.append(f"t.{column} = ANY({params.add(list(values))}::text[])")
    if filters.group_id:
        where.append(f"t.group_id = ANY({params.add(list(filters.group_id))}::bigint[])")
    if filters.assignee == "me":
        where.append(f"t.assignee_id = {params.add(principal.agent_id)}")
    elif filters.assignee == "unassigned":
        where.append("t.assignee_id IS NULL")
    elif filters.assignee is not None:
        where.append(f"t.assignee_id = {params.add(int(filters.assignee))}")
    if filters.customer_id is not None:
        where.append(f"t.customer_id = {params.add(filters.customer_id)}")
    if filters.number is not None:
        where.append(f"t.number = {params.add(filters.number)}")
    if filters.tags:
        where.append(f"t.tags @> {params.add(list(filters.tags))}::text[]")
    if filters.created_after is not None:
        where.append(f"t.created_at >= {params.add(filters.created_after)}")
    if filters.created_before is not None:
        where.append(f"t.created_at < {params.add(filters.created_before)}")
    if filters.sla == "breached":
        where.append("t.next_sla_due_at < clock_timestamp()")
    elif filters.sla == "at_risk":
        where.append(
            "t.next_sla_due_at >= clock_timestamp()"
            " AND t.next_sla_due_at < clock_timestamp() + interval '30 minutes'"
        )
    return where


def _search_query(q: str, params: Params) -> str:
    """Folded on both sides, so "zbozi" finds "zboží" and the other way round."""
    return f"websearch_to_tsquery('simple', helpdesk_fold({params.add(q)}))"


# A search first looks row by row through the newest candidates (the first page of a
# frequent term is among them), and only when they hold less than a page through the
# full-text indexes (a rare term: few matches to sort). Either plan alone is slow for
# the other kind of term: 10M messages, 1M tickets, "děkuji" in a third of messages.
SEARCH_WINDOW = 1000


def _matches_row_by_row(query: str) -> str:
    return f"""(t.search_vector @@ {query}
                OR EXISTS (SELECT 1 FROM messages m
                           WHERE m.ticket_id = t.id AND m.search_vector @@ {query}))"""


def _matches_by_index(query: str) -> str:
    return f"""t.id IN (SELECT m.ticket_id FROM messages m WHERE m.search_vector @@ {query}
                        UNION ALL
                        SELECT s.id FROM tickets s WHERE s.search_vector @@ {query})"""


async def list_tickets(
    conn: asyncpg.Connection,
    principal: Principal,
    filters: TicketFilters,
    sort: Sort,
    cursor: Cursor | None,
    limit: int,
) -> tuple[list[TicketOut], bool]:
    """One page in a stable order of (created_at, id); returns the page and whether more follow."""
    params = Params()
    where = _filter_clauses(principal, filters, params)
    descending = sort.startswith("-")
    if cursor is not None:
        op = "<" if descending else ">"
        where.append(
            f"(t.created_at, t.id) {op} ({params.add(cursor.created_at)}, {params.add(cursor.id)})"
        )
    direction = "DESC" if descending else "ASC"
    order = f"ORDER BY t.created_at {direction}, t.id {direction}"
    conditions = " AND ".join(where)
    if not filters.q:
        rows = await conn.fetch(
            f"""SELECT {TICKET_COLUMNS} FROM tickets t WHERE {conditions} {order}
                LIMIT {params.add(limit + 1)}""",
            *params.values,
        )
        return [ticket_out(r) for r in rows[:limit]], len(rows) > limit
    query = _search_query(filters.q, params)
    page = params.add(limit + 1)
    rows = await conn.fetch(
        f"""WITH candidates AS MATERIALIZED (
                SELECT * FROM tickets t WHERE {conditions} {order}
                LIMIT {SEARCH_WINDOW})
            SELECT {TICKET_COLUMNS}, (SELECT count(*) FROM candidates) AS candidates
            FROM candidates t WHERE {_matches_row_by_row(query)} {order} LIMIT {page}""",
        *params.values,
    )
    if len(rows) <= limit and not (rows and rows[0]["candidates"] < SEARCH_WINDOW):
        # Less than a page among the newest candidates, and older ones exist.
        rows = await conn.fetch(
            f"""SELECT {TICKET_COLUMNS} FROM tickets t
                WHERE {conditions} AND {_matches_by_index(query)} {order} LIMIT {page}""",
            *params.values,
        )
    return [ticket_out(r) for r in rows[:limit]], len(rows) > limit


async def fetch_ticket(
    conn: asyncpg.Connection, principal: Principal, ticket_id: int, *, for_update: bool = False
) -> TicketOut | None:
    params = Params()
    scope = ticket_scope(principal, params)
    lock = " FOR UPDATE" if for_update else ""
    row = await conn.fetchrow(
        f"SELECT {TICKET_COLUMNS} FROM tickets t WHERE t.id = {params.add(ticket_id)} AND {scope}"
        + lock,
        *params.values,
    )
    return ticket_out(row) if row else None


async def get_in_scope(
    conn: asyncpg.Connection, principal: Principal, ticket_id: int, *, for_update: bool = False
) -> TicketOut:
    """The ticket, or 404 whether it does not exist or is outside the caller's scope."""
    ticket = await fetch_ticket(conn, principal, ticket_id, for_update=for_update)
    if ticket is None:
        raise NotFound(f"Ticket {ticket_id} not found")
    return ticket
