-- Routing: classification, ordered routing rules, the outsourced first-line filter,
-- availability, skills and capacity of agents, and assignment strategies per group.

ALTER TABLE groups
    ADD COLUMN assignment_strategy text NOT NULL DEFAULT 'manual'
        CHECK (assignment_strategy IN ('manual', 'round_robin', 'least_loaded')),
    -- An outsourced first-line team (its members are partner agents): the categories
    -- listed here go to it first; it resolves them or escalates to an internal group.
    ADD COLUMN first_line_categories text[] NOT NULL DEFAULT '{}',
    -- When an agent goes offline, their untouched new tickets return to the queue.
    ADD COLUMN return_on_offline boolean NOT NULL DEFAULT true;

ALTER TABLE agents
    ADD COLUMN availability text NOT NULL DEFAULT 'offline'
        CHECK (availability IN ('online', 'away', 'offline')),
    ADD COLUMN capacity integer NOT NULL DEFAULT 10 CHECK (capacity BETWEEN 0 AND 1000),
    -- Skills: empty means "any".
    ADD COLUMN skill_languages text[] NOT NULL DEFAULT '{}',
    ADD COLUMN skill_channels text[] NOT NULL DEFAULT '{}',
    ADD COLUMN skill_categories text[] NOT NULL DEFAULT '{}',
    ADD COLUMN last_assigned_at timestamptz;

ALTER TABLE tickets
    ADD COLUMN language text,
    ADD COLUMN category_confidence real,
    ADD COLUMN category_reason text,
    ADD COLUMN category_source text CHECK (category_source IN ('classifier', 'agent', 'api')),
    ADD COLUMN routed_at timestamptz,
    ADD COLUMN routing_reason text,
    -- Where a first-line team escalates to by default (the rule's internal group).
    ADD COLUMN escalation_group_id bigint REFERENCES groups (id),
    ADD COLUMN acknowledged_at timestamptz;
-- The routing sweep: tickets that should have been routed and were not.
CREATE INDEX tickets_unrouted_idx ON tickets (created_at) WHERE routed_at IS NULL;
-- Waiting for an agent in a group queue, oldest due first.
CREATE INDEX tickets_waiting_idx ON tickets (group_id, next_sla_due_at, created_at)
    WHERE assignee_id IS NULL AND status IN ('new', 'open');
-- An agent's load (open assigned tickets).
CREATE INDEX tickets_assignee_open_idx ON tickets (assignee_id)
    WHERE status IN ('new', 'open', 'pending', 'on_hold');

-- Internal-only notes are never shown to partner agents.
ALTER TABLE messages ADD COLUMN internal_only boolean NOT NULL DEFAULT false;

CREATE TABLE routing_rules (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 100),
    position    integer NOT NULL,
    active      boolean NOT NULL DEFAULT true,
    -- {"category": [...], "language": [...], "channel": [...], "keywords": [...],
    --  "customer": {"<attribute>": [...]}}
    conditions  jsonb NOT NULL DEFAULT '{}',
    group_id    bigint NOT NULL REFERENCES groups (id),
    priority    text CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    tags        text[] NOT NULL DEFAULT '{}',
    hits        bigint NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- The classifier's rules as edited through the admin API (config/ holds the defaults).
CREATE TABLE classification_rules (
    id          integer PRIMARY KEY CHECK (id = 1),
    rules       jsonb NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- How often each classification rule matched, and how agents corrected categories.
CREATE TABLE classification_hits (
    rule        text PRIMARY KEY,
    hits        bigint NOT NULL DEFAULT 0
);
CREATE TABLE classification_corrections (
    from_category  text NOT NULL,
    to_category    text NOT NULL,
    count          bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (from_category, to_category)
);
