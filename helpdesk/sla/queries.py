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
from helpdesk.tickets.queries import SLA_FIRED

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

# --- the engine: events, policies, clocks ----------------------------------------------

# One SLA event of ticket $1 at $2: type $3, status $4, message $5, origin $6.
RECORD_EVENT = """
    INSERT INTO sla_events (ticket_id, at, type, status, message_id, origin)
    VALUES ($1, $2, $3, $4, $5, $6)
"""

# The ticket of message $1.
MESSAGE_TICKET = "SELECT ticket_id FROM messages WHERE id = $1"

# Message $1's `agent_reply` events become `agent_reply_withdrawn`; their instants.
WITHDRAW_REPLY = """
    UPDATE sla_events SET type = 'agent_reply_withdrawn'
    WHERE message_id = $1 AND type = 'agent_reply' RETURNING at
"""

# Whether message $1 ever counted as an SLA event (a response, withdrawn or not).
MESSAGE_COUNTED = "SELECT EXISTS (SELECT 1 FROM sla_events WHERE message_id = $1)"

# The first response of ticket $1 still standing: the earliest agent reply that is not
# withdrawn.
STANDING_FIRST_RESPONSE = """
    SELECT min(e.at) FROM sla_events e LEFT JOIN messages m ON m.id = e.message_id
    WHERE e.ticket_id = $1 AND e.type = 'agent_reply'
      AND coalesce(m.delivery_status, '') <> 'failed'
"""

# A policy row with its calendar's spec: one round trip for both.
_POLICY_WITH_CALENDAR = """
    SELECT p.*, c.spec AS calendar_spec FROM sla_policies p
    LEFT JOIN sla_calendars c ON c.id = p.calendar_id
"""

# Every policy (active or not) with its calendar's spec, in the order they are tried.
POLICIES_WITH_CALENDARS = f"{_POLICY_WITH_CALENDAR} ORDER BY p.position, p.id"

# Policy $1 with its calendar's spec.
POLICY_WITH_CALENDAR = f"{_POLICY_WITH_CALENDAR} WHERE p.id = $1"

# Customer $1, every column (what policy conditions may look at).
CUSTOMER = "SELECT * FROM customers WHERE id = $1"

# Ticket $1 locked for a refresh, with `sla_fired`.
LOCKED_TICKET = f"SELECT t.*, {SLA_FIRED} FROM tickets t WHERE t.id = $1 FOR UPDATE"

# Ticket $1's history as refresh replays it: its events (without agent replies whose
# delivery failed for good) and its stored clocks, in one round trip. Read after the
# ticket row is locked, so the statement's snapshot holds every committed change.
HISTORY = """
    SELECT ARRAY(SELECT ROW(e.at, e.type, e.status, e.origin)
                 FROM sla_events e LEFT JOIN messages m ON m.id = e.message_id
                 WHERE e.ticket_id = $1 AND e.type <> 'agent_reply_withdrawn'
                   AND NOT (e.type = 'agent_reply'
                            AND coalesce(m.delivery_status, '') = 'failed')
                 ORDER BY e.at, e.id) AS events,
           ARRAY(SELECT c FROM ticket_sla_clocks c WHERE c.ticket_id = $1) AS clocks
"""

# Ticket $1's clocks, one array per stored value ($2-$11, in `store.CLOCK_VALUES` order)
# plus clock names $12 and cycles $13, inserted or updated at $14.
UPSERT_CLOCKS = """
    INSERT INTO ticket_sla_clocks (ticket_id, target_minutes, business_time, started_at,
        due_at, warn_at, met_at, breached, breached_at, paused, counted_seconds, clock, cycle,
        updated_at)
    SELECT $1, v.*, $14 FROM unnest($2::int[], $3::bool[], $4::timestamptz[],
        $5::timestamptz[], $6::timestamptz[], $7::timestamptz[], $8::bool[],
        $9::timestamptz[], $10::bool[], $11::float8[], $12::text[], $13::int[]) AS v
    ON CONFLICT (ticket_id, clock, cycle) DO UPDATE SET
        target_minutes = EXCLUDED.target_minutes, business_time = EXCLUDED.business_time,
        started_at = EXCLUDED.started_at, due_at = EXCLUDED.due_at,
        warn_at = EXCLUDED.warn_at, met_at = EXCLUDED.met_at, breached = EXCLUDED.breached,
        breached_at = EXCLUDED.breached_at, paused = EXCLUDED.paused,
        counted_seconds = EXCLUDED.counted_seconds, updated_at = EXCLUDED.updated_at
"""

# A new ticket's first clocks as UPSERT_CLOCKS, and its `created` event at $14 with
# origin $15 and status $16: one statement.
START_CLOCKS = f"""
    WITH created AS (INSERT INTO sla_events (ticket_id, at, type, origin, status)
                     VALUES ($1, $14, 'created', $15::text, $16::text))
    {UPSERT_CLOCKS}
"""

# Ticket $1's clocks named by clock $2 and cycle $3 (arrays), gone from its policy.
DELETE_CLOCKS = """
    DELETE FROM ticket_sla_clocks
    WHERE ticket_id = $1 AND (clock, cycle) IN (SELECT * FROM unnest($2::text[], $3::int[]))
"""

# Ticket $1's running clocks (met and breached ones stay): no policy applies any more.
DELETE_RUNNING_CLOCKS = """
    DELETE FROM ticket_sla_clocks WHERE ticket_id = $1 AND met_at IS NULL AND NOT breached
"""

# NOTIFY channel $1 with payload $2 (delivered when the transaction commits).
NOTIFY = "SELECT pg_notify($1, $2)"

# --- escalation levels -----------------------------------------------------------------

# Every active supervisor, by id.
SUPERVISORS = "SELECT id FROM agents WHERE role = 'supervisor' AND active ORDER BY id"

# The active supervisors of group $1, by id.
GROUP_SUPERVISORS = """
    SELECT a.id FROM agents a JOIN agent_groups g ON g.agent_id = a.id
    WHERE g.group_id = $1 AND a.role = 'supervisor' AND a.active ORDER BY a.id
"""

# An in-app notification for agent $1 about ticket $2: kind $3, text $4.
NOTIFY_AGENT = """
    INSERT INTO notifications (agent_id, ticket_id, kind, body) VALUES ($1, $2, $3, $4)
"""

# The email addresses of agents $1 (an array), by id.
AGENT_EMAILS = "SELECT email FROM agents WHERE id = ANY($1::bigint[]) ORDER BY id"

# Level $4 of clock $2, cycle $3 on ticket $1 fires: true, or none when it fired already.
FIRE_LEVEL = """
    INSERT INTO sla_escalations (ticket_id, clock, cycle, level)
    VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING true
"""

# Ticket $1, every column.
TICKET_ROW = "SELECT * FROM tickets WHERE id = $1"

# What firing level $4 of clock $2, cycle $3 on ticket $1 did: $5 (text array).
LEVEL_ACTIONS = """
    UPDATE sla_escalations SET actions = $5
    WHERE ticket_id = $1 AND clock = $2 AND cycle = $3 AND level = $4
"""

# --- jobs ------------------------------------------------------------------------------

# Tickets with a level due before now + $1 (an interval), soonest first, at most $2 (a
# range scan of the `next_sla_check_at` index).
COMING_DUE = """
    SELECT id, next_sla_check_at FROM tickets
    WHERE next_sla_check_at <= now() + $1::interval
    ORDER BY next_sla_check_at LIMIT $2
"""

# When ticket $1 is next due for a check (none when nothing is pending).
NEXT_CHECK = "SELECT next_sla_check_at FROM tickets WHERE id = $1"

# --- calendars and policies ------------------------------------------------------------

# Every calendar, by id.
CALENDARS = "SELECT * FROM sla_calendars ORDER BY id"

# A calendar named $1 with spec $2; the row, none when the name is taken.
CREATE_CALENDAR = """
    INSERT INTO sla_calendars (name, spec) VALUES ($1, $2)
    ON CONFLICT (name) DO NOTHING RETURNING *
"""

# Calendar $1 locked for an edit.
LOCK_CALENDAR = "SELECT * FROM sla_calendars WHERE id = $1 FOR UPDATE"

# Calendar $1 renamed to $2 and/or given spec $3 (null: unchanged); the row.
UPDATE_CALENDAR = """
    UPDATE sla_calendars SET name = coalesce($2, name), spec = coalesce($3, spec),
        updated_at = now()
    WHERE id = $1 RETURNING *
"""

# 1 when calendar $1 exists.
CALENDAR_EXISTS = "SELECT 1 FROM sla_calendars WHERE id = $1"

# The id of the calendar named $1.
CALENDAR_ID = "SELECT id FROM sla_calendars WHERE name = $1"

# Every policy, in the order they are tried.
POLICIES = "SELECT * FROM sla_policies ORDER BY position, id"

# Policy $1 locked for an edit.
LOCK_POLICY = "SELECT * FROM sla_policies WHERE id = $1 FOR UPDATE"

# Seeding waits for, and blocks, any other writer of policies.
LOCK_POLICIES = "LOCK TABLE sla_policies IN SHARE ROW EXCLUSIVE MODE"

# How many policies are stored.
COUNT_POLICIES = "SELECT count(*) FROM sla_policies"


def create_policy(values: dict[str, Any]) -> tuple[str, list[Any]]:
    """A policy with `values` by column (names from `admin`'s fixed field list, never
    from input); the row, none when the name is taken."""
    columns = ", ".join(values)
    placeholders = ", ".join(f"${i}" for i in range(1, len(values) + 1))
    sql = f"""
        INSERT INTO sla_policies ({columns}) VALUES ({placeholders})
        ON CONFLICT (name) DO NOTHING RETURNING *
    """
    return sql, list(values.values())


def update_policy(policy_id: int, values: dict[str, Any]) -> tuple[str, list[Any]]:
    """Policy `policy_id` set to `values` by column (names as in `create_policy`); the row."""
    sets = ", ".join(f"{name} = ${i}" for i, name in enumerate(values, start=2))
    sql = f"UPDATE sla_policies SET {sets}, updated_at = now() WHERE id = $1 RETURNING *"
    return sql, [policy_id, *values.values()]
