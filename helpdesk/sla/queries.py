"""SQL of the SLA domain: the supervisors' board and metrics, a ticket's SLA view, and
escalation notices.

The board's queries are limited by `ticket_scope` (a partner's supervisor sees only its
groups' tickets): they are functions returning the SQL and its parameters.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from helpdesk.agents.models import Principal
from helpdesk.agents.scope import ticket_scope
from helpdesk.db.sql import Params

# The database's clock, the one every stored timestamp was taken with.
NOW = "SELECT clock_timestamp()"

# --- board and metrics -----------------------------------------------------------------


def board(principal: Principal, until: datetime, limit: int) -> tuple[str, list[Any]]:
    """Running, unpaused clocks due by `until` on tickets not closed, most urgent first, at
    most `limit`. `next_sla_due_at` (indexed) narrows the tickets first."""
    params = Params()
    scope = ticket_scope(principal, params)
    until_p = params.add(until)
    sql = f"""
        SELECT t.id, t.number, t.subject, t.group_id, t.assignee_id, t.channel,
               t.priority, t.sla_policy_name, c.clock, c.cycle, c.due_at, c.breached_at
        FROM tickets t
        JOIN ticket_sla_clocks c ON c.ticket_id = t.id
        WHERE t.next_sla_due_at <= {until_p} AND {scope}
          AND c.met_at IS NULL AND NOT c.paused AND c.due_at <= {until_p}
          AND t.status <> 'closed'
        ORDER BY c.due_at, t.id
        LIMIT {int(limit)}
    """
    return sql, params.values


def metrics(
    principal: Principal, period: str, timezone: str, since: datetime, until: datetime
) -> tuple[str, list[Any]]:
    """Per `period` (date_trunc unit, in `timezone`) and clock: the cycles met in
    [since, until), how many of them breached, and the p50/p90 of their counted time."""
    params = Params()
    scope = ticket_scope(principal, params)
    unit = params.add(period)
    zone = params.add(timezone)
    start = params.add(since)
    end = params.add(until)
    sql = f"""
        SELECT date_trunc({unit}, c.met_at AT TIME ZONE {zone}) AT TIME ZONE {zone} AS period,
               c.clock, count(*) AS ended, count(*) FILTER (WHERE c.breached) AS breached,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY c.counted_seconds) AS p50,
               percentile_cont(0.9) WITHIN GROUP (ORDER BY c.counted_seconds) AS p90
        FROM ticket_sla_clocks c JOIN tickets t ON t.id = c.ticket_id
        WHERE c.met_at >= {start} AND c.met_at < {end} AND {scope}
        GROUP BY 1, 2 ORDER BY 1, 2
    """
    return sql, params.values


def ticket(principal: Principal, ticket_id: int) -> tuple[str, list[Any]]:
    """Ticket `ticket_id`, every column, if `principal` may see it."""
    params = Params()
    scope = ticket_scope(principal, params)
    id_p = params.add(ticket_id)
    return f"SELECT * FROM tickets t WHERE t.id = {id_p} AND {scope}", params.values


def events_after(
    principal: Principal, after: int, actions: list[str], limit: int
) -> tuple[str, list[Any]]:
    """Ticket events with one of `actions` after event id `after`, oldest first, at most
    `limit`."""
    params = Params()
    scope = ticket_scope(principal, params)
    after_p = params.add(after)
    actions_p = params.add(actions)
    sql = f"""
        SELECT e.id, e.ticket_id, e.action, e.created_at, e.changes
        FROM ticket_events e JOIN tickets t ON t.id = e.ticket_id
        WHERE e.action = ANY({actions_p}::text[]) AND e.id > {after_p} AND {scope}
        ORDER BY e.id LIMIT {int(limit)}
    """
    return sql, params.values


# The clock cycles of ticket $1.
TICKET_CLOCKS = "SELECT * FROM ticket_sla_clocks WHERE ticket_id = $1 ORDER BY clock, cycle"

# The escalation levels fired on ticket $1, in order.
TICKET_ESCALATIONS = "SELECT * FROM sla_escalations WHERE ticket_id = $1 ORDER BY fired_at"

# The notices queued for ticket $1 and how each fared.
TICKET_NOTICES = """
    SELECT channel, recipient, status, attempts, last_error, created_at, sent_at
    FROM sla_notices WHERE ticket_id = $1 ORDER BY id
"""

# --- notices ---------------------------------------------------------------------------

# A notice for ticket $1 through channel $2 to recipient $3 with text $4, due now.
QUEUE_NOTICE = """
    INSERT INTO sla_notices (ticket_id, channel, recipient, body) VALUES ($1, $2, $3, $4)
"""

# The first active email account with SMTP settings (notices' default sender).
NOTICE_MAIL_ACCOUNT = """
    SELECT name FROM email_accounts WHERE smtp_host IS NOT NULL AND active ORDER BY id LIMIT 1
"""

# Notices whose lease ran out: `possibly_sent` with reason $2 once handed off, else due
# again with reason $1 (`failed` after $3 attempts); their ids.
EXPIRE_ABANDONED_NOTICES = """
    UPDATE sla_notices SET
        status = CASE WHEN handed_off_at IS NOT NULL THEN 'possibly_sent'
                      WHEN attempts >= $3 THEN 'failed' ELSE 'pending' END,
        last_error = CASE WHEN handed_off_at IS NOT NULL THEN $2 ELSE $1 END,
        locked_until = NULL, next_attempt_at = now()
    WHERE status = 'sending' AND locked_until < now()
    RETURNING id
"""

# Claim the next due notice for one lease of $1 (an interval): one more attempt, not
# handed off yet; the whole row, none when nothing is due.
CLAIM_NOTICE = """
    UPDATE sla_notices SET status = 'sending', attempts = attempts + 1,
        locked_until = now() + $1::interval, handed_off_at = NULL
    WHERE id = (SELECT id FROM sla_notices
                WHERE status = 'pending' AND next_attempt_at <= now()
                ORDER BY next_attempt_at, id LIMIT 1 FOR UPDATE SKIP LOCKED)
    RETURNING *
"""

# Notice $1 is being handed over, if attempt $2 still holds it; true then.
NOTICE_HANDED_OFF = """
    UPDATE sla_notices SET handed_off_at = now()
    WHERE id = $1 AND attempts = $2 AND status = 'sending' RETURNING true
"""

# The outcome of attempt $5 on notice $1: status $2, error $3, next try after $4.
NOTICE_OUTCOME = """
    UPDATE sla_notices SET status = $2, last_error = $3, locked_until = NULL,
        next_attempt_at = now() + $4::interval,
        sent_at = CASE WHEN $2 = 'sent' THEN now() END
    WHERE id = $1 AND attempts = $5 AND status IN ('sending', 'possibly_sent')
"""

# The number and subject of ticket $1 (a notice mail's subject).
NOTICE_TICKET = "SELECT number, subject FROM tickets WHERE id = $1"
