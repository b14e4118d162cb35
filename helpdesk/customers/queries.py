"""SQL of the customers domain: profiles and search, contacts and identities, merges, and
the relationship (imports, lifecycle stages, bad experiences, the at-risk flag).

A partner agent sees a customer only through a ticket it may see: the queries limited by
that scope are functions returning the SQL and its parameters.
"""

from __future__ import annotations

from typing import Any

from helpdesk.agents.models import Principal
from helpdesk.agents.scope import ticket_scope
from helpdesk.db.sql import Params
from helpdesk.tickets.queries import TICKET_COLUMNS

# Customer `c`'s phone without the punctuation people type ("+420 601-234" reads
# "+420601234"), the form numbers are compared in.
_DIALLED = "regexp_replace(coalesce(c.phone, ''), '[[:space:]()./-]', '', 'g')"


def _visible(principal: Principal, params: Params, customer_alias: str = "c") -> str:
    """A partner sees a customer only through a ticket it may see."""
    if not principal.is_partner:
        return "TRUE"
    scope = ticket_scope(principal, params, "t")
    return f"EXISTS (SELECT 1 FROM tickets t WHERE t.customer_id = {customer_alias}.id AND {scope})"


# --- profiles, search and history ------------------------------------------------------


def search(
    principal: Principal, q: str | None, digits: str, before_id: int | None, limit: int
) -> tuple[str, list[Any]]:
    """The customers `principal` sees matching `q` (name without case and diacritics,
    e-mail without case, phone by its `digits` without punctuation, external id exactly),
    below id `before_id`, newest first: `limit` plus one (to tell whether more follow)."""
    params = Params()
    where = [_visible(principal, params)]
    if q:
        needle = params.add(q)
        digits_p = params.add(digits)
        where.append(
            f"""(strpos(helpdesk_fold(c.name), helpdesk_fold({needle})) > 0
                 OR strpos(lower(coalesce(c.email, '')), lower({needle})) > 0
                 OR ({digits_p} <> '' AND strpos({_DIALLED}, {digits_p}) > 0)
                 OR c.external_id = {needle})"""
        )
    if before_id is not None:
        where.append(f"c.id < {params.add(before_id)}")
    sql = f"""SELECT c.* FROM customers c WHERE {" AND ".join(where)}
              ORDER BY c.id DESC LIMIT {params.add(limit + 1)}"""
    return sql, params.values


def timeline(
    principal: Principal, customer_id: int, before: int | None, limit: int
) -> tuple[str, list[Any]]:
    """The messages of customer `customer_id` on tickets `principal` sees (a partner: no
    internal ones) below message id `before`, newest first: `limit` plus one."""
    params = Params()
    scope = ticket_scope(principal, params)
    where = [f"t.customer_id = {params.add(customer_id)}", scope]
    if principal.is_partner:
        where.append("NOT m.internal_only")
    if before is not None:
        where.append(f"m.id < {params.add(before)}")
    sql = f"""SELECT m.id AS message_id, m.ticket_id, t.number AS ticket_number, m.channel,
                     m.direction, m.kind, left(m.body_text, 200) AS excerpt, m.created_at
              FROM messages m JOIN tickets t ON t.id = m.ticket_id
              WHERE {" AND ".join(where)}
              ORDER BY m.id DESC LIMIT {params.add(limit + 1)}"""
    return sql, params.values


def customer(principal: Principal, customer_id: int) -> tuple[str, list[Any]]:
    """Customer `customer_id`, every column, if `principal` sees it."""
    params = Params()
    visible = _visible(principal, params)
    sql = f"SELECT c.* FROM customers c WHERE c.id = {params.add(customer_id)} AND {visible}"
    return sql, params.values


def customer_id(principal: Principal, customer_id: int) -> tuple[str, list[Any]]:
    """The id of customer `customer_id` if `principal` sees it."""
    params = Params()
    visible = _visible(principal, params)
    sql = f"SELECT c.id FROM customers c WHERE c.id = {params.add(customer_id)} AND {visible}"
    return sql, params.values


# The identities of customer $1, by id.
IDENTITIES = "SELECT * FROM customer_identities WHERE customer_id = $1 ORDER BY id"


def tickets(principal: Principal, customer_id: int) -> tuple[str, list[Any]]:
    """The latest 100 tickets of customer `customer_id` that `principal` sees."""
    params = Params()
    scope = ticket_scope(principal, params)
    sql = f"""SELECT {TICKET_COLUMNS} FROM tickets t
              WHERE t.customer_id = {params.add(customer_id)} AND {scope}
              ORDER BY t.created_at DESC, t.id DESC LIMIT 100"""
    return sql, params.values


def history(principal: Principal, customer_id: int) -> tuple[str, list[Any]]:
    """The latest 100 messages of customer `customer_id` on tickets `principal` sees."""
    params = Params()
    scope = ticket_scope(principal, params)
    sql = f"""SELECT m.id AS message_id, m.ticket_id, t.number AS ticket_number, m.channel,
                     m.direction, m.kind, left(m.body_text, 200) AS excerpt, m.created_at
              FROM messages m JOIN tickets t ON t.id = m.ticket_id
              WHERE t.customer_id = {params.add(customer_id)} AND {scope}
              ORDER BY m.created_at DESC, m.id DESC LIMIT 100"""
    return sql, params.values


def ratings(principal: Principal, customer_id: int) -> tuple[str, list[Any]]:
    """The latest 50 answered surveys of customer `customer_id` on tickets `principal`
    sees."""
    params = Params()
    scope = ticket_scope(principal, params)
    sql = f"""SELECT s.ticket_id, t.number AS ticket_number, s.rating, s.comment, s.answered_at
              FROM csat_surveys s JOIN tickets t ON t.id = s.ticket_id
              WHERE t.customer_id = {params.add(customer_id)} AND s.rating IS NOT NULL
                AND {scope}
              ORDER BY s.answered_at DESC, s.id DESC LIMIT 50"""
    return sql, params.values


# The latest 50 orders of customer $1.
ORDERS = """
    SELECT * FROM customer_orders WHERE customer_id = $1 ORDER BY ordered_at DESC LIMIT 50
"""

# The latest 50 stage changes of customer $1.
STAGE_HISTORY = """
    SELECT * FROM customer_stage_history WHERE customer_id = $1 ORDER BY id DESC LIMIT 50
"""

# The latest 50 bad experiences of customer $1.
BAD_EXPERIENCES = """
    SELECT * FROM bad_experiences WHERE customer_id = $1 ORDER BY created_at DESC LIMIT 50
"""

# The customers flagged at risk, longest first, at most 500.
AT_RISK = "SELECT * FROM customers WHERE at_risk ORDER BY at_risk_since, id LIMIT 500"

# The latest 20 bad experiences of customer $1 (why it is at risk).
AT_RISK_REASONS = """
    SELECT * FROM bad_experiences WHERE customer_id = $1 ORDER BY created_at DESC LIMIT 20
"""

# --- contacts and identities -----------------------------------------------------------

# A new customer named $1; its id.
INSERT_NAMED = "INSERT INTO customers (name) VALUES ($1) RETURNING id"

# A new customer named $1 with e-mail $2 and phone $3; its id.
INSERT_WITH_CONTACT = "INSERT INTO customers (name, email, phone) VALUES ($1, $2, $3) RETURNING id"

# A new customer named $1 with the normalized phone $2; its id.
INSERT_CALLER = "INSERT INTO customers (name, phone) VALUES ($1, $2) RETURNING id"


def partner_match(
    principal: Principal, email: str | None, phone: str | None
) -> tuple[str, list[Any]]:
    """The customer `principal` (a partner) sees with the `email` identity or address, else
    with the `phone` identity or number: one with the identity first, then the newest."""
    params = Params()
    visible = _visible(principal, params)
    if email:
        match = f"lower(c.email) = lower({params.add(email)})"
        identity = (
            f"c.id IN (SELECT i.customer_id FROM customer_identities i WHERE i.channel = 'email'"
            f" AND i.channel_account = '' AND i.external_id = lower({params.add(email)}))"
        )
    else:
        assert phone is not None
        number = params.add(phone)
        match = f"{_DIALLED} = {number}"
        identity = (
            f"c.id IN (SELECT i.customer_id FROM customer_identities i WHERE i.channel = 'phone'"
            f" AND i.channel_account = '' AND i.external_id = {number})"
        )
    sql = f"""SELECT c.id FROM customers c WHERE ({identity} OR {match}) AND {visible}
              ORDER BY ({identity}) DESC, c.id DESC LIMIT 1"""
    return sql, params.values


def partner_caller(
    principal: Principal, number: str, ticket_customer_id: int
) -> tuple[str, list[Any]]:
    """The customer `principal` (a partner) sees with the phone identity or number
    `number`: the ticket's customer `ticket_customer_id` first, then the newest."""
    params = Params()
    visible = _visible(principal, params)
    digits = params.add(number)
    sql = f"""SELECT c.id FROM customers c
              WHERE (c.id IN (SELECT i.customer_id FROM customer_identities i
                              WHERE i.channel = 'phone' AND i.channel_account = ''
                                AND i.external_id = {digits})
                     OR {_DIALLED} = {digits})
                AND {visible}
              ORDER BY (c.id = {params.add(ticket_customer_id)}) DESC, c.id DESC LIMIT 1"""
    return sql, params.values


# Hold the advisory lock named $1 until the transaction ends.
ADVISORY_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))"

# The customer with identity $2 on channel $1 (no channel account).
IDENTITY_OWNER = """
    SELECT customer_id FROM customer_identities
    WHERE channel = $1 AND channel_account = '' AND external_id = $2
"""

# Customer $1 is known on channel $2 as $3 (named $4); the customer id, none when the
# identity belongs to somebody already.
LINK_IDENTITY = """
    INSERT INTO customer_identities (customer_id, channel, external_id, display_name)
    VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING customer_id
"""

# Customer $1 is gone (an orphan that lost its identity, or a merged source).
DELETE_CUSTOMER = "DELETE FROM customers WHERE id = $1"

# The customer with the phone identity $1.
PHONE_OWNER = """
    SELECT customer_id FROM customer_identities
    WHERE channel = 'phone' AND channel_account = '' AND external_id = $1
"""

# Up to two customers whose phone, without punctuation, is $1 (one is a match).
WITH_PHONE = """
    SELECT id FROM customers
    WHERE regexp_replace(phone, '[[:space:]()./-]', '', 'g') = $1 LIMIT 2
"""

# Customer $1 gets phone $2 unless it has one.
FILL_PHONE = """
    UPDATE customers SET phone = $2, updated_at = clock_timestamp()
    WHERE id = $1 AND coalesce(phone, '') = ''
"""

# Customer $1 is the phone identity $2 (named $3); the customer id, none when the
# number belongs to somebody already.
LINK_PHONE = """
    INSERT INTO customer_identities (customer_id, channel, external_id, display_name)
    VALUES ($1, 'phone', $2, $3) ON CONFLICT DO NOTHING RETURNING customer_id
"""

# --- senders: the customer behind a channel's sender, at intake -------------------------

# A new customer ($4 name, $5 e-mail, $6 phone) and its identity ($1 channel, $2 account,
# $3 provider id) in one statement; `linked` is false when a transaction that skipped
# `lock_identity` linked this identity first (the new row is then an orphan).
NEW_SENDER = """
WITH customer AS (
    INSERT INTO customers (name, email, phone) VALUES ($4, $5, $6) RETURNING *),
identity AS (
    INSERT INTO customer_identities (customer_id, channel, channel_account, external_id,
                                     display_name)
    SELECT id, $1, $2, $3, $4 FROM customer
    ON CONFLICT DO NOTHING RETURNING customer_id)
SELECT customer.*, EXISTS (SELECT FROM identity) AS linked FROM customer
"""

# The customer behind identity ($1 channel, $2 account, $3 provider id), every column.
SENDER_CUSTOMER = """
SELECT c.* FROM customer_identities i JOIN customers c ON c.id = i.customer_id
WHERE i.channel = $1 AND i.channel_account = $2 AND i.external_id = $3
"""

# Customer $1 gets identity ($2 channel, $3 account, $4 provider id, $5 name), unless held.
LINK_SENDER = """INSERT INTO customer_identities (customer_id, channel, channel_account,
                                               external_id, display_name)
               VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING"""

# Identity ($1, $2, $3) known only by its provider id takes the name $4.
NAME_SENDER = """UPDATE customer_identities SET display_name = $4
           WHERE channel = $1 AND channel_account = $2 AND external_id = $3
             AND display_name = $3"""

# Customer $1 still named by the provider id $3 takes the name $2; the row, if renamed.
NAME_CUSTOMER = """UPDATE customers SET name = $2, updated_at = now()
           WHERE id = $1 AND name = $3 RETURNING *"""

# Up to two customers with the verified e-mail $1 (as identity or contact address).
BY_VERIFIED_EMAIL = """SELECT DISTINCT customer_id AS id FROM customer_identities
               WHERE channel = 'email' AND lower(external_id) = lower($1)
               UNION SELECT id FROM customers WHERE lower(email) = lower($1) LIMIT 2"""

# Up to two customers with the verified phone $1.
BY_VERIFIED_PHONE = "SELECT id FROM customers WHERE phone = $1 LIMIT 2"


# --- merges ----------------------------------------------------------------------------

# Customer $1, every column, locked for a merge.
LOCK_CUSTOMER = "SELECT * FROM customers WHERE id = $1 FOR UPDATE"

# The identities of customer $1 move to customer $2; their ids.
MOVE_IDENTITIES = """
    UPDATE customer_identities SET customer_id = $2 WHERE customer_id = $1 RETURNING id
"""


def move_references(table: str, column: str) -> str:
    """Rows of `table` whose `column` references customer $1 reference customer $2; how
    many. `table` and `column` come from the merge's fixed list, never from input."""
    return f"""WITH m AS (UPDATE {table} SET {column} = $2 WHERE {column} = $1 RETURNING 1)
               SELECT count(*) FROM m"""


# Customer $1's empty name, e-mail, phone, external id and language filled with $2-$6.
FILL_FROM_MERGED = """
    UPDATE customers SET
        name = CASE WHEN name = '' THEN $2 ELSE name END,
        email = coalesce(nullif(email, ''), $3),
        phone = coalesce(nullif(phone, ''), $4),
        external_id = coalesce(nullif(external_id, ''), $5),
        language = coalesce(nullif(language, ''), $6),
        updated_at = clock_timestamp()
    WHERE id = $1
"""

# Customer $1's satisfaction figures counted again from its answered surveys.
RECOUNT_CSAT = """
    UPDATE customers c SET csat_count = s.n, csat_average = s.average
    FROM (SELECT count(*) AS n, avg(rating)::real AS average FROM csat_surveys
          WHERE customer_id = $1 AND rating IS NOT NULL) s
    WHERE c.id = $1
"""

# --- relationship: stages and imports --------------------------------------------------

# Up to 200 tickets of customer $1 in one of the statuses $2, by id.
OPEN_TICKETS = """
    SELECT id FROM tickets WHERE customer_id = $1 AND status = ANY($2::text[])
    ORDER BY id LIMIT 200
"""

# Customer $1's stage and where it comes from.
STAGE = "SELECT lifecycle_stage, stage_source FROM customers WHERE id = $1"

# Customer $1's stage and where it comes from, locked for a change.
LOCK_STAGE = f"{STAGE} FOR UPDATE"

# Customer $1 has stage $2 from source $3.
SET_STAGE = """
    UPDATE customers SET lifecycle_stage = $2, stage_source = $3, updated_at = now()
    WHERE id = $1
"""

# Customer $1 went from stage $2 to $3 because of $4 (agent $5, if one).
RECORD_STAGE_CHANGE = """
    INSERT INTO customer_stage_history (customer_id, from_stage, to_stage, cause,
                                        actor_agent_id)
    VALUES ($1, $2, $3, $4, $5)
"""

# The database's clock.
NOW = "SELECT clock_timestamp()"

# The orders of customer $1, what its stage is derived from.
ORDER_FIGURES = "SELECT ordered_at, total FROM customer_orders WHERE customer_id = $1"

# Customer $1's stage is derived again.
HAND_BACK_STAGE = "UPDATE customers SET stage_source = 'derived' WHERE id = $1"

# The customer with external id $1, locked for an import.
BY_EXTERNAL_ID = "SELECT id FROM customers WHERE external_id = $1 FOR UPDATE"

# Up to two customers with e-mail $1 (any case) and no external id (one is a match).
UNIMPORTED_WITH_EMAIL = """
    SELECT id FROM customers WHERE lower(email) = lower($1) AND external_id IS NULL LIMIT 2
"""

# A new customer named $1 with external id $2; its id.
INSERT_IMPORTED = "INSERT INTO customers (name, external_id) VALUES ($1, $2) RETURNING id"

# Customer $1 as imported: external id $2; name $3, e-mail $4, phone $5, language $6,
# organization $7, tags $8 and notes $9 where not null.
UPDATE_IMPORTED = """
    UPDATE customers SET external_id = $2, name = coalesce($3, name),
        email = coalesce($4, email), phone = coalesce($5, phone),
        language = coalesce($6, language), organization = coalesce($7, organization),
        tags = coalesce($8, tags), notes = coalesce($9, notes), updated_at = now()
    WHERE id = $1
"""

# Customer $1 has the verified e-mail identity $2 (named $3), unless somebody has it.
LINK_VERIFIED_EMAIL = """
    INSERT INTO customer_identities (customer_id, channel, external_id, display_name)
    VALUES ($1, 'email', $2, $3) ON CONFLICT DO NOTHING
"""

# Order $2 of customer $1 (number $3, status $4, total $5 in currency $6, made at $7),
# inserted or updated.
UPSERT_ORDER = """
    INSERT INTO customer_orders (customer_id, external_id, number, status, total, currency,
                                 ordered_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7)
    ON CONFLICT (external_id) DO UPDATE SET customer_id = EXCLUDED.customer_id,
        number = EXCLUDED.number, status = EXCLUDED.status,
        total = EXCLUDED.total, currency = EXCLUDED.currency,
        ordered_at = EXCLUDED.ordered_at, updated_at = now()
"""

# Up to 1,000 customers with a derived active stage and no order in the last $1 days.
INACTIVE = """
    SELECT c.id FROM customers c
    WHERE c.stage_source = 'derived'
      AND c.lifecycle_stage IN ('first_time', 'repeat', 'loyal')
      AND NOT EXISTS (SELECT 1 FROM customer_orders o WHERE o.customer_id = c.id
                      AND o.ordered_at > now() - make_interval(days => $1))
    LIMIT 1000
"""

# --- relationship: bad experiences and the at-risk flag --------------------------------

# A bad experience of kind $2 (detail $3) on ticket $1, for its customer; its id, none
# when the ticket had one of that kind already.
RECORD_BAD_EXPERIENCE = """
    INSERT INTO bad_experiences (customer_id, ticket_id, kind, detail)
    SELECT customer_id, id, $2, $3 FROM tickets WHERE id = $1
    ON CONFLICT (ticket_id, kind) DO NOTHING RETURNING id
"""

# Up to 1,000 customers with bad experiences not evaluated yet, or flagged at risk.
TO_EVALUATE = """
    SELECT DISTINCT customer_id FROM bad_experiences WHERE evaluated_at IS NULL
    UNION SELECT id FROM customers WHERE at_risk
    LIMIT 1000
"""

# Customer $1's bad experiences are evaluated.
MARK_EVALUATED = """
    UPDATE bad_experiences SET evaluated_at = clock_timestamp()
    WHERE customer_id = $1 AND evaluated_at IS NULL
"""

# Customer $1's id, name and flag, locked for an evaluation.
LOCK_RISK = "SELECT id, name, at_risk FROM customers WHERE id = $1 FOR UPDATE"

# How many bad experiences of the kinds $3 customer $1 had within the interval $2.
COUNT_BAD_EXPERIENCES = """
    SELECT count(*) FROM bad_experiences
    WHERE customer_id = $1 AND created_at > clock_timestamp() - $2::interval
      AND kind = ANY($3::text[])
"""

# Customer $1 is flagged at risk ($2 true) from now on, or cleared.
SET_AT_RISK = """
    UPDATE customers SET at_risk = $2,
        at_risk_since = CASE WHEN $2 THEN clock_timestamp() END, updated_at = now()
    WHERE id = $1
"""

# Every active supervisor, by id.
SUPERVISORS = "SELECT id FROM agents WHERE role = 'supervisor' AND active ORDER BY id"

# Supervisor $1 is told with text $2 that a customer is at risk.
NOTIFY_AT_RISK = """
    INSERT INTO notifications (agent_id, kind, body) VALUES ($1, 'customer_at_risk', $2)
"""

# Customer $1's flag cleared if it was set; its id then.
CLEAR_RISK = """
    UPDATE customers SET at_risk = false, at_risk_since = NULL, updated_at = now()
    WHERE id = $1 AND at_risk RETURNING id
"""
