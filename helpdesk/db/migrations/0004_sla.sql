-- SLA engine: business calendars, ordered policies, each ticket's SLA events and clocks,
-- and escalation levels fired at most once (design: shared/design/sla.md).

CREATE TABLE sla_calendars (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 100),
    -- {"timezone", "hours", "holidays", "country_holidays", "extra_open"} as the
    -- what-if tool reads it; validated by helpdesk.sla.calendar before it is stored.
    spec        jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE sla_policies (
    id                      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name                    text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 100),
    position                integer NOT NULL,  -- first matching active policy wins
    active                  boolean NOT NULL DEFAULT true,
    -- {"priority": [...], "category": [...], "channel": [...], "group_id": [...],
    --  "customer": {"<attribute>": [...]}}; {} matches every ticket (a catch-all).
    conditions              jsonb NOT NULL DEFAULT '{}',
    calendar_id             bigint REFERENCES sla_calendars (id),
    first_response_minutes  integer NOT NULL DEFAULT 0 CHECK (first_response_minutes >= 0),
    next_response_minutes   integer NOT NULL DEFAULT 0 CHECK (next_response_minutes >= 0),
    resolution_minutes      integer NOT NULL DEFAULT 0 CHECK (resolution_minutes >= 0),
    -- Which targets count business time on the calendar (the others: calendar time).
    business_time           text[] NOT NULL DEFAULT '{}',
    pause_statuses          text[] NOT NULL DEFAULT '{pending}',
    pausable                text[] NOT NULL DEFAULT '{resolution}',
    warn_at_percent         integer NOT NULL DEFAULT 75 CHECK (warn_at_percent BETWEEN 1 AND 99),
    -- [{"clock", "level": "warn" | "breach" | "breach+N", "actions": [...]}]
    escalations             jsonb NOT NULL DEFAULT '[]',
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sla_policies_position_idx ON sla_policies (position, id) WHERE active;

-- What the clocks are computed from, in order (the what-if tool's event vocabulary).
CREATE TABLE sla_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ticket_id   bigint NOT NULL REFERENCES tickets (id),
    at          timestamptz NOT NULL,
    type        text NOT NULL CHECK (type IN ('created', 'customer_message', 'customer_auto_reply',
                    'agent_reply', 'auto_reply', 'bot_reply', 'note', 'status', 'solved',
                    'reopened')),
    status      text,
    origin      text CHECK (origin IN ('customer', 'agent')),  -- on `created` only
    -- An agent reply's message: a reply whose delivery fails for good stops counting.
    message_id  bigint REFERENCES messages (id)
);
CREATE INDEX sla_events_ticket_idx ON sla_events (ticket_id, at, id);

ALTER TABLE tickets
    ADD COLUMN sla_policy_id      bigint REFERENCES sla_policies (id) ON DELETE SET NULL,
    ADD COLUMN sla_policy_name    text,
    ADD COLUMN sla_policy_reason  text,
    ADD COLUMN sla_policy_at      timestamptz,
    -- Minimum over running, unmet clocks (null when none): queues and the board.
    ADD COLUMN next_sla_due_at    timestamptz,
    ADD COLUMN next_sla_warn_at   timestamptz,
    -- The next instant an escalation level may fire: what the sweep reads.
    ADD COLUMN next_sla_check_at  timestamptz;
CREATE INDEX tickets_next_sla_due_idx ON tickets (next_sla_due_at) WHERE next_sla_due_at IS NOT NULL;
CREATE INDEX tickets_next_sla_warn_idx ON tickets (next_sla_warn_at) WHERE next_sla_warn_at IS NOT NULL;
CREATE INDEX tickets_next_sla_check_idx ON tickets (next_sla_check_at)
    WHERE next_sla_check_at IS NOT NULL;

-- Each clock cycle of each ticket (first_response and resolution: cycle 0; next_response:
-- one row per cycle, kept for metrics). `counted_seconds`: counted time up to met_at
-- (or up to now for a running clock, as of the last refresh).
CREATE TABLE ticket_sla_clocks (
    ticket_id        bigint NOT NULL REFERENCES tickets (id),
    clock            text NOT NULL CHECK (clock IN ('first_response', 'next_response', 'resolution')),
    cycle            integer NOT NULL DEFAULT 0,
    target_minutes   integer NOT NULL,
    business_time    boolean NOT NULL,
    started_at       timestamptz NOT NULL,
    due_at           timestamptz,
    warn_at          timestamptz,
    met_at           timestamptz,
    breached         boolean NOT NULL DEFAULT false,
    breached_at      timestamptz,
    paused           boolean NOT NULL DEFAULT false,
    counted_seconds  double precision,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (ticket_id, clock, cycle)
);
-- Metrics by period read ended cycles by their met instant.
CREATE INDEX ticket_sla_clocks_met_idx ON ticket_sla_clocks (clock, met_at) WHERE met_at IS NOT NULL;

-- One row per fired level: inserted before acting, so two workers cannot both fire it.
CREATE TABLE sla_escalations (
    ticket_id   bigint NOT NULL REFERENCES tickets (id),
    clock       text NOT NULL,
    cycle       integer NOT NULL,
    level       text NOT NULL,
    fired_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    actions     jsonb NOT NULL DEFAULT '[]',
    PRIMARY KEY (ticket_id, clock, cycle, level)
);

-- What agents and supervisors are told (the console shows them; the SSE stream pushes them).
CREATE TABLE notifications (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    agent_id    bigint NOT NULL REFERENCES agents (id),
    ticket_id   bigint REFERENCES tickets (id),
    kind        text NOT NULL,
    body        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    read_at     timestamptz
);
CREATE INDEX notifications_agent_idx ON notifications (agent_id, id);

-- Escalation messages to people outside the console (supervisors' email, a Slack
-- channel): queued in the escalation's transaction, delivered by the worker, each sent
-- or visibly failed with the reason.
CREATE TABLE sla_notices (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ticket_id   bigint NOT NULL REFERENCES tickets (id),
    channel     text NOT NULL CHECK (channel IN ('email', 'slack')),
    recipient   text NOT NULL,  -- an address, or "<slack account>:<channel id>"
    body        text NOT NULL,
    status      text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts    integer NOT NULL DEFAULT 0,
    last_error  text,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    sent_at     timestamptz
);
CREATE INDEX sla_notices_due_idx ON sla_notices (next_attempt_at) WHERE status = 'pending';

-- The supervisors' live stream reads SLA events after an id.
CREATE INDEX ticket_events_sla_idx ON ticket_events (id)
    WHERE action IN ('sla_warning', 'sla_breached', 'sla_escalated', 'sla_met');
