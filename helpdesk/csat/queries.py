"""SQL of the satisfaction surveys: asking, answering, the low-rating follow-up, and the
responses and metrics supervisors read.

The responses are limited by `ticket_scope` (a partner's supervisor sees only its groups'
tickets): a function returns their SQL and parameters.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from helpdesk.agents.models import Principal
from helpdesk.agents.scope import ticket_scope
from helpdesk.db.sql import Params

# The database's clock, the one every stored timestamp was taken with.
NOW = "SELECT clock_timestamp()"

# --- asking ----------------------------------------------------------------------------

# Solved tickets without a survey whose solution is at least $1 minutes old, oldest
# first, at most $2.
DUE_TICKETS = """SELECT t.id FROM tickets t
    WHERE t.status = 'solved' AND t.solved_at <= now() - make_interval(mins => $1)
      AND NOT EXISTS (SELECT 1 FROM csat_surveys s WHERE s.ticket_id = t.id)
    ORDER BY t.solved_at LIMIT $2"""

# Ticket $1 (locked) while it is solved, else no row.
SOLVED_TICKET = "SELECT * FROM tickets WHERE id = $1 AND status = 'solved' FOR UPDATE"

# Customer $1's lifecycle stage (kept on the survey for the metrics).
CUSTOMER_STAGE = "SELECT lifecycle_stage FROM customers WHERE id = $1"

# Whether ticket $1 was opened by auto-submitted mail (its `created` event says so).
OPENED_AUTO_SUBMITTED = """SELECT (changes->>'auto_submitted')::boolean FROM ticket_events
    WHERE ticket_id = $1 AND action = 'created' ORDER BY id LIMIT 1"""

# The survey of ticket $1 (customer $2, channel $3, status $4, reason $5, send after $6,
# sent at $7, expires at $8, agent $9, group $10, category $11, stage $12); its id, or no
# row when the ticket has one already.
INSERT_SURVEY = """INSERT INTO csat_surveys (ticket_id, customer_id, channel, status, reason,
                              send_after, sent_at, expires_at, agent_id, group_id,
                              category, stage)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
    ON CONFLICT (ticket_id) DO NOTHING RETURNING id"""

# The question to ticket $1 as an outbound message (kind $2, channel $3, account $4, text
# $5, buttons $6), pending delivery; its id.
INSERT_QUESTION = """INSERT INTO messages (ticket_id, direction, kind, channel, channel_account,
                          body_text, delivery_status, buttons)
    VALUES ($1, 'outbound', $2, $3, $4, $5, 'pending', $6) RETURNING id"""

# What the survey speaks: ticket $1's language, else its customer's.
SURVEY_LANGUAGE = """SELECT coalesce(t.language, c.language) FROM tickets t
    JOIN customers c ON c.id = t.customer_id WHERE t.id = $1"""

# --- answering -------------------------------------------------------------------------

# Ticket $1's survey as the ticket view shows it.
SURVEY_OF_TICKET = """SELECT status, channel, reason, sent_at, rating, comment, answered_at
    FROM csat_surveys WHERE ticket_id = $1"""

# Survey $1, locked.
SURVEY = "SELECT * FROM csat_surveys WHERE id = $1 FOR UPDATE"

# Survey $1 answered with rating $2 at $4; comment $3 (NULL keeps the one given before).
ANSWER = """UPDATE csat_surveys SET rating = $2, comment = coalesce($3, comment),
        status = 'answered', answered_at = coalesce(answered_at, $4)
    WHERE id = $1"""

# Customer $1's rating count and average, counted again from their answered surveys.
CUSTOMER_RATING = """UPDATE customers c SET csat_count = s.n, csat_average = s.average
    FROM (SELECT count(*) AS n, avg(rating)::real AS average FROM csat_surveys
          WHERE customer_id = $1 AND rating IS NOT NULL) s
    WHERE c.id = $1"""

# The customer whose identity on channel $1 / account $2 has the external id $3.
CUSTOMER_OF_IDENTITY = """SELECT customer_id FROM customer_identities
    WHERE channel = $1 AND channel_account = $2 AND external_id = $3"""

# --- a low rating ----------------------------------------------------------------------

# Ticket $1, locked.
TICKET = "SELECT * FROM tickets WHERE id = $1 FOR UPDATE"

# Every active supervisor (for a ticket in no group).
SUPERVISORS = "SELECT id FROM agents WHERE role = 'supervisor' AND active"

# The active supervisors of group $1.
GROUP_SUPERVISORS = """SELECT a.id FROM agents a JOIN agent_groups g ON g.agent_id = a.id
    WHERE g.group_id = $1 AND a.role = 'supervisor' AND a.active"""

# A `csat_low` notification to agent $1 about ticket $2 with text $3.
INSERT_LOW_RATING_NOTIFICATION = """INSERT INTO notifications (agent_id, ticket_id, kind, body)
    VALUES ($1, $2, 'csat_low', $3)"""

# --- what supervisors read -------------------------------------------------------------

Dimension = Literal["agent", "group", "channel", "category", "stage"]

# The column of a survey each metrics dimension groups by, as text.
_DIMENSIONS: dict[str, str] = {
    "agent": "s.agent_id::text",
    "group": "s.group_id::text",
    "channel": "s.channel",
    "category": "s.category",
    "stage": "s.stage",
}


def responses(
    principal: Principal,
    since: datetime,
    until: datetime,
    *,
    rating: int | None,
    with_comment: bool,
    limit: int,
) -> tuple[str, list[Any]]:
    """Answered surveys in [since, until) on tickets `principal` may see, optionally of one
    rating or only with a comment, newest first, at most `limit`."""
    params = Params()
    scope = ticket_scope(principal, params)
    filters = [
        f"s.answered_at >= {params.add(since)}",
        f"s.answered_at < {params.add(until)}",
        "s.rating IS NOT NULL",
        scope,
    ]
    if rating is not None:
        filters.append(f"s.rating = {params.add(rating)}")
    if with_comment:
        filters.append("s.comment IS NOT NULL")
    sql = f"""SELECT s.id AS survey_id, s.ticket_id, t.number AS ticket_number, t.customer_id,
               s.rating, s.comment, s.answered_at, s.channel, s.agent_id, s.group_id,
               s.category
        FROM csat_surveys s JOIN tickets t ON t.id = s.ticket_id
        WHERE {" AND ".join(filters)}
        ORDER BY s.answered_at DESC, s.id DESC LIMIT {params.add(limit)}"""
    return sql, params.values


def metrics(by: Dimension | None) -> str:
    """Surveys sent in [$1, $2) per period (date_trunc unit $3 in time zone $4) and, with
    `by`, per value of that dimension ('none' for no value; 'all' without one): how many
    were sent and answered, their average rating and how many were satisfied (4 or 5)."""
    key = _DIMENSIONS[by] if by else "'all'"
    return f"""SELECT date_trunc($3, s.sent_at AT TIME ZONE $4) AT TIME ZONE $4 AS period,
               coalesce({key}, 'none') AS key,
               count(*) AS sent, count(s.rating) AS answered,
               avg(s.rating)::float AS average,
               count(*) FILTER (WHERE s.rating >= 4) AS satisfied
        FROM csat_surveys s
        WHERE s.sent_at >= $1 AND s.sent_at < $2
        GROUP BY 1, 2 ORDER BY 1, 2"""
