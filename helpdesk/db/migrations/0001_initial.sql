-- 0001: the core data model. Index choices are explained next to each index.

-- Diacritics folding for search without the unaccent extension (the embedded
-- PostgreSQL ships no contrib). IMMUTABLE so it can be used in generated columns
-- and indexes; accented capitals map straight to ASCII lower case because lower()
-- under the C locale only folds ASCII.
CREATE FUNCTION helpdesk_fold(value text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
    SELECT lower(translate(value,
        'ÁÀÂÄÃÅĀĂĄáàâäãåāăąÇĆČçćčĎĐďđÉÈÊËĚĒĖĘéèêëěēėęÍÌÎÏĪíìîïīĹĽŁĺľłŃŇÑńňñÓÒÔÖÕŐØóòôöõőøŔŘŕřŚŠŞśšşŤŢťţÚÙÛÜŮŰŪúùûüůűūÝŸýÿŹŻŽźżž',
        'aaaaaaaaaaaaaaaaaaccccccddddeeeeeeeeeeeeeeeeiiiiiiiiiillllllnnnnnnoooooooooooooorrrrssssssttttuuuuuuuuuuuuuuyyyyzzzzzz'))
$$;

CREATE TABLE groups (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 200),
    description text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE agents (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email         text NOT NULL CHECK (length(email) BETWEEN 3 AND 320),
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    role          text NOT NULL CHECK (role IN ('agent', 'supervisor', 'admin', 'partner')),
    password_hash text,
    active        boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
-- Login looks agents up by case-folded e-mail.
CREATE UNIQUE INDEX agents_email_key ON agents (lower(email));

CREATE TABLE agent_groups (
    agent_id bigint NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    group_id bigint NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    PRIMARY KEY (agent_id, group_id)
);
-- "Members of group X" (assignment checks) reads by group.
CREATE INDEX agent_groups_group_idx ON agent_groups (group_id);

-- Opaque bearer tokens, stored as SHA-256 of the token; revoking = deleting rows.
CREATE TABLE agent_tokens (
    token_hash  bytea PRIMARY KEY,
    agent_id    bigint NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
-- Revoke-all-of-an-agent deletes by agent.
CREATE INDEX agent_tokens_agent_idx ON agent_tokens (agent_id);

CREATE TABLE customers (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL DEFAULT '' CHECK (length(name) <= 200),
    email       text CHECK (length(email) <= 320),
    phone       text CHECK (length(phone) <= 50),
    external_id text UNIQUE CHECK (length(external_id) <= 200),
    language    text CHECK (length(language) <= 16),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX customers_email_idx ON customers (lower(email));

-- One person known on several channels: (channel, account, external id) is unique,
-- so the same Telegram user or e-mail address can never become two customers.
CREATE TABLE customer_identities (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id     bigint NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    channel         text NOT NULL,
    channel_account text NOT NULL DEFAULT '',
    external_id     text NOT NULL CHECK (length(external_id) BETWEEN 1 AND 320),
    display_name    text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (channel, channel_account, external_id)
);
CREATE INDEX customer_identities_customer_idx ON customer_identities (customer_id);

CREATE SEQUENCE ticket_number_seq START WITH 10001;

CREATE TABLE tickets (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    number                bigint NOT NULL UNIQUE DEFAULT nextval('ticket_number_seq'),
    subject               text NOT NULL CHECK (length(subject) <= 998),
    status                text NOT NULL DEFAULT 'new'
                          CHECK (status IN ('new', 'open', 'pending', 'on_hold', 'solved', 'closed')),
    priority              text NOT NULL DEFAULT 'normal'
                          CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    category              text CHECK (category IN ('complaint', 'order', 'return', 'question', 'other')),
    channel               text NOT NULL,
    customer_id           bigint NOT NULL REFERENCES customers (id),
    group_id              bigint REFERENCES groups (id),
    assignee_id           bigint REFERENCES agents (id),
    tags                  text[] NOT NULL DEFAULT '{}',
    merged_into_id        bigint REFERENCES tickets (id),
    first_response_due_at timestamptz,
    created_at            timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at            timestamptz NOT NULL DEFAULT clock_timestamp(),
    first_responded_at    timestamptz,
    solved_at             timestamptz,
    closed_at             timestamptz,
    version               integer NOT NULL DEFAULT 1,
    search_vector         tsvector GENERATED ALWAYS AS
                          (to_tsvector('simple', helpdesk_fold(subject))) STORED
);
-- Queue listing pages by (created_at, id) in either direction (keyset pagination).
CREATE INDEX tickets_created_idx ON tickets (created_at, id);
-- Group queues and the partner scope (group_id = ANY(...)) page in the same order.
CREATE INDEX tickets_group_created_idx ON tickets (group_id, created_at, id);
-- "My tickets" / "unassigned" views.
CREATE INDEX tickets_assignee_created_idx ON tickets (assignee_id, created_at, id);
-- Status views (open, pending, ...).
CREATE INDEX tickets_status_created_idx ON tickets (status, created_at, id);
-- A customer's ticket history.
CREATE INDEX tickets_customer_created_idx ON tickets (customer_id, created_at, id);
-- Tag filter (tags @> ARRAY[...]).
CREATE INDEX tickets_tags_idx ON tickets USING gin (tags);
-- Full-text search over subjects.
CREATE INDEX tickets_search_idx ON tickets USING gin (search_vector);

CREATE TABLE messages (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ticket_id          bigint NOT NULL REFERENCES tickets (id),
    direction          text NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    kind               text NOT NULL CHECK (kind IN ('public', 'note', 'system')),
    author_agent_id    bigint REFERENCES agents (id),
    author_customer_id bigint REFERENCES customers (id),
    channel            text NOT NULL,
    channel_account    text NOT NULL DEFAULT '',
    external_id        text,
    body_text          text NOT NULL DEFAULT '',
    body_html          text,
    delivery_status    text CHECK (delivery_status IN
                       ('pending', 'sending', 'sent', 'retrying', 'failed', 'possibly_sent')),
    delivery_error     text,
    created_at         timestamptz NOT NULL DEFAULT clock_timestamp(),
    search_vector      tsvector GENERATED ALWAYS AS
                       (to_tsvector('simple', helpdesk_fold(body_text))) STORED,
    -- Exactly-once storage of inbound messages: a provider's redelivery hits this.
    UNIQUE (channel, channel_account, external_id)
);
-- A ticket's conversation in order.
CREATE INDEX messages_ticket_idx ON messages (ticket_id, created_at, id);
-- Full-text search over message bodies.
CREATE INDEX messages_search_idx ON messages USING gin (search_vector);

CREATE TABLE attachments (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id   bigint NOT NULL REFERENCES messages (id),
    filename     text NOT NULL CHECK (length(filename) BETWEEN 1 AND 255),
    content_type text NOT NULL CHECK (length(content_type) <= 255),
    size_bytes   integer NOT NULL CHECK (size_bytes BETWEEN 0 AND 26214400),
    sha256       bytea NOT NULL,
    content      bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX attachments_message_idx ON attachments (message_id);

-- Who changed what on a ticket, when and why (shown in the ticket view).
CREATE TABLE ticket_events (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ticket_id      bigint NOT NULL REFERENCES tickets (id),
    actor_agent_id bigint REFERENCES agents (id),
    action         text NOT NULL,
    changes        jsonb NOT NULL DEFAULT '{}',
    reason         text,
    created_at     timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX ticket_events_ticket_idx ON ticket_events (ticket_id, id);

-- Transactional outbox: a reply and its delivery row commit together; a relay in the
-- worker hands due rows to arq, so losing Redis loses no reply.
CREATE TABLE outbox (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id      bigint NOT NULL UNIQUE REFERENCES messages (id),
    ticket_id       bigint NOT NULL REFERENCES tickets (id),
    channel         text NOT NULL,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'sending', 'sent', 'retrying', 'failed', 'possibly_sent')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    locked_until    timestamptz,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
-- The relay only ever looks at rows still waiting.
CREATE INDEX outbox_due_idx ON outbox (next_attempt_at) WHERE status IN ('pending', 'retrying');
-- Leases of crashed workers.
CREATE INDEX outbox_sending_idx ON outbox (locked_until) WHERE status = 'sending';

-- Idempotency-Key: the first response of a POST is kept so a retry gets the same answer.
CREATE TABLE idempotency_keys (
    agent_id        bigint NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    key             text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_method  text NOT NULL,
    request_path    text NOT NULL,
    request_hash    bytea NOT NULL,
    response_status integer,
    response_body   bytea,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agent_id, key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);

-- Append-only security audit: denials and privileged changes. No API alters it and
-- the trigger below refuses UPDATE and DELETE for every role but a superuser's TRUNCATE.
CREATE TABLE audit_log (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at             timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor_agent_id bigint,
    actor_role     text,
    action         text NOT NULL,
    object_type    text,
    object_id      text,
    outcome        text NOT NULL CHECK (outcome IN ('allowed', 'denied')),
    detail         jsonb NOT NULL DEFAULT '{}',
    request_id     text,
    ip             text
);
CREATE INDEX audit_log_at_idx ON audit_log (at, id);

CREATE FUNCTION audit_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_is_append_only();
