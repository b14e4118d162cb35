-- Chat and social channels: accounts with write-only secrets, webhook deliveries stored
-- before anything else happens, and conversations (a chat, a thread) mapped to tickets.

-- A bot, a workspace, a page, a number, a web chat widget. `settings` holds what may be
-- shown (base URL, channel ids, page id, allowed origins); `secrets` never leaves the
-- service (tokens, signing secrets, verify tokens) and is write-only in the API.
CREATE TABLE channel_accounts (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind        text NOT NULL
                CHECK (kind IN ('telegram', 'slack', 'messenger', 'instagram', 'whatsapp',
                                'webchat')),
    name        text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    active      boolean NOT NULL DEFAULT true,
    settings    jsonb NOT NULL DEFAULT '{}',
    secrets     jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (kind, name)
);

-- Every authentic webhook delivery, stored before the 2xx (the provider's deadline is
-- short: Slack waits 3 s). A worker turns it into messages. `dedupe_key` is the
-- provider's delivery id (Telegram update_id, Slack event_id, ...) so a redelivery is
-- one row; NULL when the provider has none (then messages dedupe by their own ids).
CREATE TABLE inbound_events (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id    bigint NOT NULL REFERENCES channel_accounts (id),
    dedupe_key    text,
    payload       bytea NOT NULL,
    status        text NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'processed', 'failed')),
    attempts      integer NOT NULL DEFAULT 0,
    last_error    text,
    received_at   timestamptz NOT NULL DEFAULT now(),
    processed_at  timestamptz,
    UNIQUE (account_id, dedupe_key)
);
-- The sweep finds deliveries a worker has not processed (Redis lost the job, a crash).
CREATE INDEX inbound_events_pending_idx ON inbound_events (received_at) WHERE status = 'pending';

-- A conversation on a channel (a Telegram chat, a Slack thread, a Messenger/WhatsApp
-- user, a web chat visitor) and the ticket it currently feeds.
CREATE TABLE conversations (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    channel          text NOT NULL,
    channel_account  text NOT NULL,
    external_id      text NOT NULL CHECK (length(external_id) BETWEEN 1 AND 500),
    customer_id      bigint NOT NULL REFERENCES customers (id),
    ticket_id        bigint REFERENCES tickets (id),
    -- Meta's 24-hour customer-service window starts at the customer's last message.
    last_inbound_at  timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (channel, channel_account, external_id)
);
CREATE INDEX conversations_ticket_idx ON conversations (ticket_id);

-- The conversation a ticket talks in (replies go back there).
ALTER TABLE tickets ADD COLUMN conversation_id bigint REFERENCES conversations (id);

-- Provider state of a message: edits keep the latest text; statuses only move forward.
ALTER TABLE messages ADD COLUMN edited_at timestamptz;
ALTER TABLE messages ADD COLUMN provider_status text
    CHECK (provider_status IN ('delivered', 'read'));

-- A customer identity we can no longer reach (e.g. the user blocked the bot).
ALTER TABLE customer_identities ADD COLUMN unreachable_reason text;
