-- Customer relationships: profile fields, orders from an e-shop or CRM, lifecycle stages
-- with their history, bad experiences and the at-risk flag, satisfaction surveys.

ALTER TABLE customers
    ADD COLUMN organization     text CHECK (length(organization) <= 200),
    ADD COLUMN tags             text[] NOT NULL DEFAULT '{}',
    ADD COLUMN notes            text NOT NULL DEFAULT '' CHECK (length(notes) <= 10000),
    ADD COLUMN lifecycle_stage  text NOT NULL DEFAULT 'prospect'
        CHECK (lifecycle_stage IN ('prospect', 'first_time', 'repeat', 'loyal', 'advocate',
                                   'partner', 'inactive', 'lost', 'disqualified')),
    -- 'derived': the rules move it; 'manual': set by an agent or integration, kept.
    ADD COLUMN stage_source     text NOT NULL DEFAULT 'derived'
        CHECK (stage_source IN ('derived', 'manual')),
    ADD COLUMN at_risk          boolean NOT NULL DEFAULT false,
    ADD COLUMN at_risk_since    timestamptz,
    ADD COLUMN csat_average     real,
    ADD COLUMN csat_count       integer NOT NULL DEFAULT 0;
CREATE INDEX customers_at_risk_idx ON customers (at_risk_since) WHERE at_risk;

CREATE TABLE customer_stage_history (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id     bigint NOT NULL REFERENCES customers (id),
    from_stage      text,
    to_stage        text NOT NULL,
    cause           text NOT NULL,
    actor_agent_id  bigint REFERENCES agents (id),
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX customer_stage_history_idx ON customer_stage_history (customer_id, id);

CREATE TABLE customer_orders (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id  bigint NOT NULL REFERENCES customers (id),
    external_id  text NOT NULL UNIQUE CHECK (length(external_id) BETWEEN 1 AND 200),
    number       text CHECK (length(number) <= 100),
    status       text CHECK (length(status) <= 50),
    total        numeric(14, 2) NOT NULL DEFAULT 0,
    currency     text NOT NULL DEFAULT 'CZK' CHECK (currency ~ '^[A-Z]{3}$'),
    ordered_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX customer_orders_customer_idx ON customer_orders (customer_id, ordered_at);

-- A ticket's bad outcome for its customer, once per ticket and kind.
CREATE TABLE bad_experiences (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id  bigint NOT NULL REFERENCES customers (id),
    ticket_id    bigint NOT NULL REFERENCES tickets (id),
    kind         text NOT NULL CHECK (kind IN ('sla_breach', 'low_rating', 'reopened')),
    detail       text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- Set when the worker has counted it towards the at-risk flag.
    evaluated_at timestamptz,
    UNIQUE (ticket_id, kind)
);
CREATE INDEX bad_experiences_customer_idx ON bad_experiences (customer_id, created_at);
CREATE INDEX bad_experiences_pending_idx ON bad_experiences (id) WHERE evaluated_at IS NULL;

CREATE TABLE csat_surveys (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ticket_id    bigint NOT NULL UNIQUE REFERENCES tickets (id),  -- at most once per ticket
    customer_id  bigint NOT NULL REFERENCES customers (id),
    channel      text NOT NULL,
    status       text NOT NULL DEFAULT 'scheduled'
        CHECK (status IN ('scheduled', 'sent', 'answered', 'cancelled', 'failed')),
    reason       text,
    send_after   timestamptz NOT NULL,
    sent_at      timestamptz,
    expires_at   timestamptz,
    rating       integer CHECK (rating BETWEEN 1 AND 5),
    comment      text CHECK (length(comment) <= 5000),
    answered_at  timestamptz,
    -- Who the ticket was with when solved: the metrics group by these.
    agent_id     bigint REFERENCES agents (id),
    group_id     bigint REFERENCES groups (id),
    category     text,
    stage        text,
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX csat_surveys_due_idx ON csat_surveys (send_after) WHERE status = 'scheduled';
CREATE INDEX csat_surveys_answered_idx ON csat_surveys (answered_at) WHERE rating IS NOT NULL;

ALTER TABLE tickets ADD COLUMN csat_rating integer CHECK (csat_rating BETWEEN 1 AND 5);

-- Keys the service signs with (survey links); created on first use, never shown.
CREATE TABLE signing_keys (
    name        text PRIMARY KEY,
    key         text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- The survey sweep: solved tickets by their solve instant.
CREATE INDEX tickets_solved_idx ON tickets (solved_at) WHERE status = 'solved';

-- Buttons under an outbound chat message ([[label, value], ...]): satisfaction ratings
-- in Telegram (inline keyboard) and Slack (block actions).
ALTER TABLE messages ADD COLUMN buttons jsonb;

-- Canned replies in the customer's language, optionally only for some lifecycle stages.
CREATE TABLE reply_templates (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    language    text NOT NULL CHECK (language ~ '^[a-z]{2}$'),
    body        text NOT NULL CHECK (length(body) BETWEEN 1 AND 10000),
    stages      text[] NOT NULL DEFAULT '{}',  -- empty: every stage
    active      boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (name, language)
);
