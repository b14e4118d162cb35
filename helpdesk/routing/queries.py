"""SQL of the routing domain: routing a ticket, assigning it, escalating it, the rules
admins edit and the counters supervisors read."""

from __future__ import annotations

from helpdesk.tickets.queries import SLA_FIRED

# --- routing a ticket ------------------------------------------------------------------

# The admin-edited classification rules (NULL: the shipped defaults are in use).
CLASSIFICATION_RULES = "SELECT rules FROM classification_rules WHERE id = 1"

# What routing is configured with, in one round trip (three small admin-edited tables).
CONFIG = """SELECT
    (SELECT rules FROM classification_rules WHERE id = 1) AS classification,
    coalesce((SELECT jsonb_agg(jsonb_build_object(
                         'id', r.id, 'name', r.name, 'position', r.position,
                         'conditions', r.conditions, 'group_id', r.group_id,
                         'priority', r.priority, 'tags', r.tags)
                     ORDER BY r.position, r.id)
              FROM routing_rules r WHERE r.active), '[]') AS rules,
    coalesce((SELECT jsonb_agg(jsonb_build_array(g.id, g.first_line_categories)
                               ORDER BY g.id)
              FROM groups g WHERE cardinality(g.first_line_categories) > 0), '[]')
        AS first_line
"""

# Ticket $1 not routed yet (locked), its first inbound message, its customer and the SLA
# levels fired on it, in one round trip.
TICKET_TO_ROUTE = f"""SELECT t.*, clock_timestamp() AS routing_at, c AS customer,
        first.body_text AS first_text, first.sender_address AS first_sender,
        first.kind = 'system' AS opened_by_notice,
        {SLA_FIRED}
    FROM tickets t
    LEFT JOIN customers c ON c.id = t.customer_id
    LEFT JOIN LATERAL (SELECT m.body_text, m.sender_address, m.kind FROM messages m
                       WHERE m.ticket_id = t.id AND m.direction = 'inbound'
                       ORDER BY m.id LIMIT 1) first ON true
    WHERE t.id = $1 AND t.routed_at IS NULL
    FOR UPDATE OF t
"""

# Ticket $1's language facts: its own, its customer's, and its first inbound message.
LANGUAGE_FACTS = """SELECT t.language, t.subject, t.channel, c AS customer,
        first.body_text AS first_text, first.sender_address AS first_sender
    FROM tickets t
    LEFT JOIN customers c ON c.id = t.customer_id
    LEFT JOIN LATERAL (SELECT m.body_text, m.sender_address FROM messages m
                       WHERE m.ticket_id = t.id AND m.direction = 'inbound'
                       ORDER BY m.id LIMIT 1) first ON true
    WHERE t.id = $1
"""

# One hit on each classification rule named in $1 and on routing rule $2 (rows in a fixed
# order: concurrent counts never deadlock).
COUNT_HITS = """WITH classified AS (
        INSERT INTO classification_hits (rule, hits)
        SELECT rule, 1 FROM unnest($1::text[]) AS rule ORDER BY rule
        ON CONFLICT (rule) DO UPDATE SET hits = classification_hits.hits + 1)
    UPDATE routing_rules SET hits = hits + 1 WHERE id = $2
"""

# The acknowledgement to ticket $1 on channel $2 / account $3 with text $4 at $5, and its
# SLA event (an automatic message meets no clock) at once; the message id.
INSERT_ACKNOWLEDGEMENT = """WITH message AS (
        INSERT INTO messages (ticket_id, direction, kind, channel, channel_account,
                              body_text, delivery_status, created_at)
        VALUES ($1, 'outbound', 'public', $2, $3, $4, 'pending', $5) RETURNING id),
    event AS (
        INSERT INTO sla_events (ticket_id, at, type, message_id)
        SELECT $1, $5, 'auto_reply', id FROM message)
    SELECT id FROM message
"""

# Open tickets not routed yet, oldest first, at most $1.
UNROUTED = """SELECT id FROM tickets WHERE routed_at IS NULL AND status <> 'closed'
    ORDER BY created_at LIMIT $1
"""

# Who chose ticket $1's category (classifier, agent, api...).
CATEGORY_SOURCE = "SELECT category_source FROM tickets WHERE id = $1"

# One more correction of the classifier's category $1 to $2.
COUNT_CORRECTION = """INSERT INTO classification_corrections
        (from_category, to_category, count)
    VALUES ($1, $2, 1)
    ON CONFLICT (from_category, to_category)
    DO UPDATE SET count = classification_corrections.count + 1
"""

# --- escalation ------------------------------------------------------------------------

# The group named $1 and its first-line categories.
GROUP_BY_NAME = "SELECT id, first_line_categories FROM groups WHERE name = $1"

# Group $1 and its first-line categories.
GROUP = "SELECT id, first_line_categories FROM groups WHERE id = $1"

# Ticket $1's group and the internal group routing named for an escalation.
TICKET_GROUPS = "SELECT escalation_group_id, group_id FROM tickets WHERE id = $1"

# --- assignment ------------------------------------------------------------------------

# An agent's load, for `FROM agents a`: open tickets assigned to them
# (tickets_assignee_open_idx).
_LOAD = (
    "(SELECT count(*) FROM tickets l WHERE l.assignee_id = a.id"
    " AND l.status IN ('new', 'open', 'pending', 'on_hold'))"
)

# Ticket $1 as assignment sees it, with its group's strategy (none without a group).
ASSIGNABLE_TICKET = """SELECT t.id, t.group_id, t.assignee_id, t.status, t.language,
        t.channel, t.category, g.assignment_strategy
    FROM tickets t JOIN groups g ON g.id = t.group_id
    WHERE t.id = $1
"""

# Serialise the choices in one group (key $1) until the transaction ends.
LOCK_GROUP = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))"

# Active, online members of group $1 with the skills for language $2, channel $3 and
# category $4 and below their capacity, in the order a strategy tries them.
_CANDIDATES = f"""SELECT a.id FROM agents a JOIN agent_groups m ON m.agent_id = a.id
    WHERE m.group_id = $1 AND a.active AND a.availability = 'online'
      AND a.role IN ('agent', 'supervisor', 'partner')
      AND (cardinality(a.skill_languages) = 0 OR $2::text = ANY(a.skill_languages))
      AND (cardinality(a.skill_channels) = 0 OR $3::text = ANY(a.skill_channels))
      AND (cardinality(a.skill_categories) = 0 OR $4::text = ANY(a.skill_categories))
      AND {_LOAD} < a.capacity
    ORDER BY {{order}}
"""

# The candidates for round robin: the member assigned least recently first.
CANDIDATES_ROUND_ROBIN = _CANDIDATES.format(order="a.last_assigned_at NULLS FIRST, a.id")

# The candidates for least loaded: the fewest open assigned tickets first.
CANDIDATES_LEAST_LOADED = _CANDIDATES.format(order=f"{_LOAD}, a.last_assigned_at NULLS FIRST, a.id")

# Agent $1 (locked) with their load counted again.
LOCKED_AGENT = f"""SELECT a.id, a.capacity, a.availability, a.active, {_LOAD} AS load
    FROM agents a WHERE a.id = $1 FOR UPDATE
"""

# Agent $1 was just given a ticket (round robin's order).
MARK_ASSIGNED = "UPDATE agents SET last_assigned_at = clock_timestamp() WHERE id = $1"

# Unassigned routed tickets waiting in the groups $1 (not manual), oldest due first, at
# most $2.
WAITING_TICKETS = """SELECT t.id FROM tickets t JOIN groups g ON g.id = t.group_id
    WHERE t.group_id = ANY($1::bigint[]) AND t.assignee_id IS NULL
      AND t.status IN ('new', 'open') AND g.assignment_strategy <> 'manual'
      AND t.routed_at IS NOT NULL
    ORDER BY t.next_sla_due_at NULLS LAST, t.created_at, t.id
    LIMIT $2
"""

# The groups with at least one active, online member.
GROUPS_WITH_ONLINE_AGENTS = """SELECT DISTINCT m.group_id
    FROM agent_groups m JOIN agents a ON a.id = m.agent_id
    WHERE a.availability = 'online' AND a.active
"""

# Ticket $1 locked if it is still unassigned and nobody else holds it (else no row).
LOCK_UNASSIGNED = """SELECT id FROM tickets WHERE id = $1 AND assignee_id IS NULL
    FOR UPDATE SKIP LOCKED"""

# Agent $1's availability becomes $2.
SET_AVAILABILITY = "UPDATE agents SET availability = $2, updated_at = now() WHERE id = $1"

# --- what admins edit and supervisors read ---------------------------------------------

# 1 when group $1 exists.
GROUP_EXISTS = "SELECT 1 FROM groups WHERE id = $1"

# The routing rules in the order they are tried.
ALL_RULES = "SELECT * FROM routing_rules ORDER BY position, id"

# Routing rule $1.
RULE = "SELECT * FROM routing_rules WHERE id = $1"

# A new routing rule ($1 name, $2 position, $3 active, $4 conditions, $5 group, $6
# priority, $7 tags); no row when the name is taken.
INSERT_RULE = """INSERT INTO routing_rules
        (name, position, active, conditions, group_id, priority, tags)
    VALUES ($1, $2, $3, $4, $5, $6, $7)
    ON CONFLICT (name) DO NOTHING RETURNING *
"""

# An admin's change of rule $1: NULL keeps name $2, position $3, active $4, conditions $5,
# group $6 and tags $8 as they are; priority $7 is written as given.
UPDATE_RULE = """UPDATE routing_rules SET name = coalesce($2, name),
        position = coalesce($3, position), active = coalesce($4, active),
        conditions = coalesce($5, conditions), group_id = coalesce($6, group_id),
        priority = $7, tags = coalesce($8, tags), updated_at = now()
    WHERE id = $1 RETURNING *
"""

# The classification rules $1 replace the stored ones (or the shipped defaults).
STORE_CLASSIFICATION_RULES = """INSERT INTO classification_rules (id, rules) VALUES (1, $1)
    ON CONFLICT (id) DO UPDATE SET rules = EXCLUDED.rules, updated_at = now()
"""

# Group $1's routing settings: NULL keeps strategy $2, first-line categories $3 and
# return-on-offline $4 as they are.
UPDATE_GROUP_ROUTING = """UPDATE groups SET
        assignment_strategy = coalesce($2, assignment_strategy),
        first_line_categories = coalesce($3, first_line_categories),
        return_on_offline = coalesce($4, return_on_offline)
    WHERE id = $1
    RETURNING id, name, assignment_strategy, first_line_categories, return_on_offline
"""

# Agent $1's capacity and skills: NULL keeps capacity $2, languages $3, channels $4 and
# categories $5 as they are.
UPDATE_AGENT_ROUTING = """UPDATE agents SET capacity = coalesce($2, capacity),
        skill_languages = coalesce($3, skill_languages),
        skill_channels = coalesce($4, skill_channels),
        skill_categories = coalesce($5, skill_categories), updated_at = now()
    WHERE id = $1
    RETURNING id, capacity, skill_languages, skill_channels, skill_categories, availability
"""

# How often each classification rule matched, most first.
CLASSIFICATION_HITS = "SELECT rule, hits FROM classification_hits ORDER BY hits DESC"

# How often agents corrected the classifier from one category to another, most first.
CORRECTIONS = """SELECT from_category, to_category, count FROM classification_corrections
    ORDER BY count DESC
"""

# How often each routing rule matched, in the order they are tried.
RULE_HITS = "SELECT id, name, hits FROM routing_rules ORDER BY position, id"
