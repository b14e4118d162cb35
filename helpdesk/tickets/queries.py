"""SQL of the tickets domain: columns, the queue listing and its keyset cursor, the
writer's statements (`tickets/writer.py` runs them), the event log, the intake's
statements, and what the ticket use cases read and store (messages, attachments, calls).

Statements are named constants; where SQL is built (a caller's columns, a partner's
scope) a small function returns it (with its parameters)."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

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


# The escalation levels already fired on ticket `t` (refresh never changes them), as
# `sla_fired`: a column to add to the select list of a statement reading `tickets t`.
# Here, below the writer, so the writer's reopen returns it without importing `sla`
# (which writes tickets through the writer); SLA and routing read it from here.
SLA_FIRED = """coalesce((SELECT jsonb_agg(jsonb_build_array(e.clock, e.cycle, e.level))
                         FROM sla_escalations e WHERE e.ticket_id = t.id), '[]') AS sla_fired"""

# The database's clock (a statement's own time, not the transaction's).
NOW = "SELECT clock_timestamp()"

# Ticket $1's `TicketOut` columns (no scope: the caller already checked it).
TICKET_BY_ID = f"SELECT {TICKET_COLUMNS} FROM tickets t WHERE t.id = $1"


# --- the writer: changes someone made (version bumped) ---------------------------------

# Column names are put into SQL text (values never are): only plain identifiers pass.
_COLUMN = re.compile(r"[a-z][a-z0-9_]*")


def _names(columns: Iterable[str]) -> list[str]:
    names = list(columns)
    for name in names:
        if not _COLUMN.fullmatch(name):
            raise ValueError(f"not a ticket column: {name!r}")
    return names


def _sets(columns: Iterable[str], first: int) -> str:
    """`name = $n, ...` for `columns`, numbered from `first`."""
    return ", ".join(f"{name} = ${i}" for i, name in enumerate(_names(columns), start=first))


def update_ticket(columns: Iterable[str]) -> str:
    """Ticket $1's `columns` set to $2.. in order, `version` bumped."""
    return f"""UPDATE tickets SET {_sets(columns, 2)}, updated_at = clock_timestamp(),
                version = version + 1
            WHERE id = $1"""


def new_ticket(sla_columns: Iterable[str]) -> str:
    """A new ticket with its first SLA columns (`sla_columns`, values from $12 on) and its
    conversation $5 (NULL: none) pointing at it; its id. The status is `open` when it is
    assigned at once ($9)."""
    names = _names(sla_columns)
    placeholders = ", ".join(f"${i}" for i, _ in enumerate(names, start=12))
    return f"""WITH ticket AS (
    INSERT INTO tickets (subject, channel, channel_account, customer_id, conversation_id,
                         priority, category, group_id, assignee_id, tags, status,
                         created_at, updated_at, {", ".join(names)})
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,
            CASE WHEN $9::bigint IS NULL THEN 'new' ELSE 'open' END, $11, $11, {placeholders})
    RETURNING id),
linked AS (UPDATE conversations SET ticket_id = (SELECT id FROM ticket) WHERE id = $5)
SELECT id FROM ticket
"""


# The customer wrote again: a solved or pending ticket is open again, unless `$3` (what
# arrived is nobody writing: a notice, an auto-reply). `$2` is the change's time (None:
# now). The locked row comes back with `sla_fired` for the SLA refresh (no second read).
REOPEN_TICKET = f"""UPDATE tickets t SET updated_at = coalesce($2::timestamptz, clock_timestamp()),
       version = version + 1,
       status = CASE WHEN status IN ('solved', 'pending') AND NOT $3 THEN 'open'
                     ELSE status END,
       solved_at = CASE WHEN status = 'solved' AND NOT $3 THEN NULL ELSE solved_at END
WHERE id = $1 RETURNING t.*, {SLA_FIRED}
"""

# An agent's edit of ticket $1: status $2 (moving solved_at / closed_at with it),
# priority $3, category $4, group $5, assignee $6, tags $7; the new row.
APPLY_EDIT = f"""UPDATE tickets t SET
       status = $2, priority = $3, category = $4, group_id = $5, assignee_id = $6,
       tags = $7,
       solved_at = CASE WHEN $2 = 'solved' THEN coalesce(solved_at, clock_timestamp())
                        WHEN $2 IN ('new', 'open', 'pending', 'on_hold') THEN NULL
                        ELSE solved_at END,
       closed_at = CASE WHEN $2 = 'closed' THEN clock_timestamp() ELSE NULL END,
       updated_at = clock_timestamp(), version = version + 1
    WHERE t.id = $1
    RETURNING {TICKET_COLUMNS}"""

# An agent responded on ticket $1 at $2: the first response if none was yet; `new` → `open`.
FIRST_RESPONSE = """UPDATE tickets SET first_responded_at = coalesce(first_responded_at, $2),
       status = CASE WHEN status = 'new' THEN 'open' ELSE status END,
       updated_at = clock_timestamp(), version = version + 1
   WHERE id = $1"""

# Ticket $1 saw activity that changes no field an agent edits (a note): no version bump.
TOUCH_TICKET = "UPDATE tickets SET updated_at = clock_timestamp() WHERE id = $1"

# A reply on ticket $1 counts as a response from $2 (a retried delivery accepted again).
COUNT_RESPONSE = """UPDATE tickets SET first_responded_at = coalesce(first_responded_at, $2),
       updated_at = clock_timestamp(), version = version + 1
   WHERE id = $1"""

# Ticket $1 merged into $2: closed, with the link.
CLOSE_MERGED_SOURCE = """UPDATE tickets SET status = 'closed', closed_at = clock_timestamp(),
       merged_into_id = $2, updated_at = clock_timestamp(), version = version + 1
   WHERE id = $1"""

# Merge target $1 takes the earlier first response of itself and the source's ($2).
MERGE_TARGET = f"""UPDATE tickets t SET
       first_responded_at = CASE
           WHEN t.first_responded_at IS NULL THEN $2
           WHEN $2::timestamptz IS NULL THEN t.first_responded_at
           ELSE least(t.first_responded_at, $2) END,
       updated_at = clock_timestamp(), version = version + 1
    WHERE t.id = $1 RETURNING {TICKET_COLUMNS}"""

# Agent $1 went offline: their untouched `new` tickets in groups that say so go back to
# the queue; the tickets' ids.
UNASSIGN_ON_OFFLINE = """UPDATE tickets t SET assignee_id = NULL, updated_at = clock_timestamp(),
       version = version + 1
   FROM groups g
   WHERE g.id = t.group_id AND g.return_on_offline
     AND t.assignee_id = $1 AND t.status = 'new'
     AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.ticket_id = t.id
                     AND m.author_agent_id = $1)
   RETURNING t.id"""

# Customer $1's tickets now belong to customer $2 (a customer merge); their ids.
MOVE_TO_CUSTOMER = """UPDATE tickets SET customer_id = $2, updated_at = clock_timestamp(),
       version = version + 1
   WHERE customer_id = $1 RETURNING id"""


# --- the writer: upkeep of derived columns (no version bump) ---------------------------


def set_columns(columns: Iterable[str]) -> str:
    """Ticket $1's derived `columns` set to $2.. in order; no version, no `updated_at`."""
    return f"UPDATE tickets SET {_sets(columns, 2)} WHERE id = $1"


# The SLA check of message $1's ticket is due now.
RECHECK_SLA_NOW = """UPDATE tickets SET next_sla_check_at = now()
   WHERE id = (SELECT ticket_id FROM messages WHERE id = $1)"""


def retarget_sla(*, by_calendar: bool) -> str:
    """Open tickets under SLA policy $1 (or under a policy using calendar $1) are measured
    against it from now on."""
    where = (
        "sla_policy_id IN (SELECT id FROM sla_policies WHERE calendar_id = $1)"
        if by_calendar
        else "sla_policy_id = $1"
    )
    return f"""UPDATE tickets SET sla_policy_at = now(), next_sla_check_at = now()
            WHERE {where} AND status <> 'closed'"""


# The survey's rating $2 mirrored on ticket $1.
SET_CSAT_RATING = "UPDATE tickets SET csat_rating = $2 WHERE id = $1"

# Ticket $1's category is the agent's (routing never re-classifies it).
CATEGORY_BY_AGENT = "UPDATE tickets SET category_source = 'agent' WHERE id = $1"


# --- the event log ----------------------------------------------------------------------

# One event; the CTE-based statements of the intake use the same column list.
INSERT_EVENT = """INSERT INTO ticket_events (ticket_id, actor_agent_id, action, changes, reason)
VALUES ($1, $2, $3, $4, $5)"""

# The same event ($2 actor, $3 action, $4 changes, $5 reason) on each of the tickets $1.
INSERT_EVENTS = """INSERT INTO ticket_events (ticket_id, actor_agent_id, action, changes, reason)
   SELECT id, $2, $3, $4, $5 FROM unnest($1::bigint[]) AS id"""

# The newest event id (0: none yet), where a live stream starts.
LATEST_EVENT_ID = "SELECT coalesce(max(id), 0) FROM ticket_events"


def changes_after(principal: Principal, after: int, limit: int) -> tuple[str, list[Any]]:
    """Events after `after` on the tickets `principal` may see, oldest first, and the
    parameters."""
    params = Params()
    scope = ticket_scope(principal, params)
    sql = f"""SELECT e.id, e.ticket_id, e.action FROM ticket_events e
            JOIN tickets t ON t.id = e.ticket_id
            WHERE e.id > {params.add(after)} AND {scope}
            ORDER BY e.id LIMIT {int(limit)}"""
    return sql, params.values


# --- the intake -------------------------------------------------------------------------

# Serialises concurrent deliveries of one message $1 ("channel:account:external id").
LOCK_DELIVERY = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))"

# The message held for channel $1, account $2, provider id $3 (a redelivery).
HELD_MESSAGE = """SELECT id, ticket_id, edited_at FROM messages
           WHERE channel = $1 AND channel_account = $2 AND external_id = $3"""

# A newer text $2 of message $1, edited at $3.
EDIT_MESSAGE = "UPDATE messages SET body_text = $2, edited_at = $3 WHERE id = $1"

# Ticket $1 as merge-following reads it.
MERGE_LINK = "SELECT id, status, customer_id, merged_into_id FROM tickets WHERE id = $1"

# Customer $1's row.
CUSTOMER_ROW = "SELECT * FROM customers WHERE id = $1"

# Messages of one conversation are stored one at a time: the upsert locks the
# conversation row, FOR NO KEY UPDATE only since it changes no key column (a new row is
# held by its inserting transaction alike). A stronger lock would block the foreign-key
# checks that a transaction holding the conversation's ticket makes on it (routing
# updates the ticket twice), while this one waits for that ticket: a deadlock.
CONVERSATION = """INSERT INTO conversations (channel, channel_account, external_id,
                                               customer_id, last_inbound_at)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (channel, channel_account, external_id)
DO UPDATE SET last_inbound_at = greatest(conversations.last_inbound_at,
                                         EXCLUDED.last_inbound_at)
RETURNING id, ticket_id, clock_timestamp() AS now
"""

# Conversation $1 feeds ticket $2 (a merge was followed).
RELINK_CONVERSATION = "UPDATE conversations SET ticket_id = $2 WHERE id = $1"

# The message, its raw source, the ticket's event and the SLA event in one round trip.
# `$16`: the event names the message (an agent's new ticket records only what it set);
# `$19`: the SLA event's type, None when nothing moves (a new ticket's clocks start in
# `sla_start.start`; a notice on a closed ticket moves nothing).
INBOUND_MESSAGE = """WITH message AS (
    INSERT INTO messages (ticket_id, direction, kind, author_customer_id, channel,
                          channel_account, external_id, body_text, body_html, created_at,
                          edited_at, sender_address, reply_to_addresses, recipient_addresses)
    VALUES ($1, 'inbound', $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
    RETURNING id),
source AS (
    INSERT INTO message_sources (message_id, raw)
    SELECT id, $14::bytea FROM message WHERE $14::bytea IS NOT NULL),
event AS (
    INSERT INTO ticket_events (ticket_id, actor_agent_id, action, changes, reason)
    SELECT $1, $18, $15, $17::jsonb || CASE WHEN $16 THEN jsonb_build_object('message_id', id)
                                         ELSE '{}'::jsonb END, NULL
    FROM message),
clock AS (
    INSERT INTO sla_events (ticket_id, at, type, message_id)
    SELECT $1, $9, $19, id FROM message WHERE $19::text IS NOT NULL)
SELECT id FROM message
"""

# One file of an inbound message: its bytes, or where and when to fetch them.
INBOUND_ATTACHMENT = """INSERT INTO attachments (message_id, filename, content_type, size_bytes,
                                 sha256, content, state, fetch_ref, fetch_error,
                                 fetch_attempts, next_fetch_at)
   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"""


# --- the ticket use cases: calls, agent messages, attachments, detail, merges -----------

# Whether group $1 exists.
GROUP_EXISTS = "SELECT true FROM groups WHERE id = $1"

# Agent $1: active, and its groups (an assignee's check).
ASSIGNEE = """SELECT a.active,
                      coalesce((SELECT array_agg(g.group_id) FROM agent_groups g
                                WHERE g.agent_id = a.id), '{}') AS group_ids
               FROM agents a WHERE a.id = $1"""

# A logged call as a `phone` message on ticket $1 ($2 direction, $3 kind, $4 agent,
# $5 customer, $6 summary, $7 delivery status).
CALL_MESSAGE = """INSERT INTO messages (ticket_id, direction, kind, author_agent_id,
                                 author_customer_id, channel, body_text, delivery_status)
           VALUES ($1, $2, $3, $4, $5, 'phone', $6, $7)
           RETURNING *"""

# An agent's reply or note on ticket $1.
AGENT_MESSAGE = """INSERT INTO messages (ticket_id, direction, kind, author_agent_id, channel,
                                 body_text, delivery_status, channel_account, internal_only)
           VALUES ($1, 'outbound', $2, $3, $4, $5, $6, $7, $8)
           RETURNING *"""

# One stored file of message $1; its id.
INSERT_ATTACHMENT = """INSERT INTO attachments (message_id, filename, content_type, size_bytes,
                                    sha256, content)
           VALUES ($1, $2, $3, $4, $5, $6) RETURNING id"""

# What decides whether ticket $1 can be answered now: its account, the conversation's
# last inbound message, and whether the account may tag a human agent's reply.
REPLY_WINDOW = """SELECT t.channel_account, c.last_inbound_at,
                  coalesce((SELECT (a.settings->>'human_agent_tag')::boolean
                            FROM channel_accounts a
                            WHERE a.kind = t.channel AND a.name = t.channel_account), false)
                      AS human_agent_tag
           FROM tickets t LEFT JOIN conversations c ON c.id = t.conversation_id
           WHERE t.id = $1"""

# The customer of a ticket's detail.
DETAIL_CUSTOMER = """SELECT id, name, email, phone, language, lifecycle_stage, at_risk,
                  csat_average
           FROM customers WHERE id = $1"""

# Customer $1's five latest bad experiences (why it is at risk).
BAD_EXPERIENCES = """SELECT kind, ticket_id, created_at FROM bad_experiences
                   WHERE customer_id = $1 ORDER BY created_at DESC LIMIT 5"""

# Ticket $1's messages in order; $2 hides internal-only notes (a partner).
TICKET_MESSAGES = """SELECT * FROM messages WHERE ticket_id = $1 AND NOT ($2 AND internal_only)
           ORDER BY created_at, id"""

# The files of ticket $1's messages (without content); $2 as in `TICKET_MESSAGES`.
TICKET_ATTACHMENTS = """SELECT a.id, a.message_id, a.filename, a.content_type, a.size_bytes,
                  a.state, a.fetch_error
           FROM attachments a JOIN messages m ON m.id = a.message_id
           WHERE m.ticket_id = $1 AND NOT ($2 AND m.internal_only) ORDER BY a.id"""

# Ticket $1's history.
TICKET_HISTORY = "SELECT * FROM ticket_events WHERE ticket_id = $1 ORDER BY id"

# Every message of ticket $1 moves to ticket $2 (a merge); how many.
MOVE_MESSAGES = (
    "WITH m AS (UPDATE messages SET ticket_id = $2 WHERE ticket_id = $1 RETURNING 1) "
    "SELECT count(*) FROM m"
)

# The outbox rows of ticket $1 follow its messages to ticket $2.
MOVE_OUTBOX = "UPDATE outbox SET ticket_id = $2 WHERE ticket_id = $1"


def attachment_in_scope(principal: Principal, attachment_id: int) -> tuple[str, list[Any]]:
    """Attachment `attachment_id` with its content, if `principal` may see its message."""
    params = Params()
    scope = ticket_scope(principal, params)
    sql = f"""SELECT a.filename, a.content_type, a.content, a.state, a.fetch_error
            FROM attachments a
            JOIN messages m ON m.id = a.message_id JOIN tickets t ON t.id = m.ticket_id
            WHERE a.id = {params.add(attachment_id)} AND {scope}
              AND NOT ({params.add(principal.is_partner)} AND m.internal_only)"""
    return sql, params.values


# Outbound message $1 of ticket $2; $3 hides internal-only notes.
OUTBOUND_MESSAGE = """SELECT * FROM messages WHERE id = $1 AND ticket_id = $2
             AND direction = 'outbound' AND NOT ($3 AND internal_only)"""

# Message $1.
MESSAGE = "SELECT * FROM messages WHERE id = $1"

# Message $1's files (without content), in order.
MESSAGE_ATTACHMENTS = """SELECT id, filename, content_type, size_bytes FROM attachments
               WHERE message_id = $1 ORDER BY id"""
