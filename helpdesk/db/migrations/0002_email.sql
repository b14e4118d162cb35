-- Email channel: accounts (IMAP in, SMTP out, raw intake), IMAP cursors, quarantine,
-- the automatic-reply ledger, and the addresses a mail came from or went to.

-- One mailbox we receive on and reply from. `name` is the account key used in URLs
-- and in messages.channel_account. Passwords are write-only through the API.
CREATE TABLE email_accounts (
    id                     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name                   text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    address                text NOT NULL CHECK (length(address) BETWEEN 3 AND 320),
    display_name           text NOT NULL DEFAULT '' CHECK (length(display_name) <= 200),
    reply_to               text CHECK (length(reply_to) <= 320),
    -- Raw RFC 822 intake endpoint: SHA-256 of its secret; NULL disables the endpoint.
    inbound_secret_sha256  bytea,
    smtp_host              text,
    smtp_port              integer CHECK (smtp_port BETWEEN 1 AND 65535),
    smtp_security          text NOT NULL DEFAULT 'starttls'
                           CHECK (smtp_security IN ('none', 'starttls', 'tls')),
    smtp_username          text,
    smtp_password          text,
    imap_host              text,
    imap_port              integer CHECK (imap_port BETWEEN 1 AND 65535),
    imap_security          text NOT NULL DEFAULT 'tls'
                           CHECK (imap_security IN ('none', 'starttls', 'tls')),
    imap_username          text,
    imap_password          text,
    imap_folder            text NOT NULL DEFAULT 'INBOX',
    -- What happens to a mail on the server once it is stored: flag it \Seen, move it
    -- to imap_move_to, or leave it untouched (the UID cursor alone prevents re-import).
    imap_processed         text NOT NULL DEFAULT 'seen'
                           CHECK (imap_processed IN ('seen', 'move', 'keep')),
    imap_move_to           text,
    auto_acknowledge       boolean NOT NULL DEFAULT true,
    active                 boolean NOT NULL DEFAULT true,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    CHECK (imap_processed <> 'move' OR imap_move_to IS NOT NULL)
);

-- Where the IMAP poller stands per account and folder: mail above last_uid in the same
-- UIDVALIDITY is new; a new UIDVALIDITY voids every UID (RFC 3501) and forces a rescan.
-- status/last_error feed /readyz.
CREATE TABLE imap_cursors (
    account_id   bigint NOT NULL REFERENCES email_accounts (id) ON DELETE CASCADE,
    folder       text NOT NULL,
    uidvalidity  bigint,
    last_uid     bigint NOT NULL DEFAULT 0,
    status       text NOT NULL DEFAULT 'starting' CHECK (status IN ('starting', 'ok', 'failing')),
    last_error   text,
    failures     integer NOT NULL DEFAULT 0,
    last_ok_at   timestamptz,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, folder)
);

-- Mail we could not turn into a message, kept byte-exact with the reason so an admin
-- can look at it and re-process it after a fix. Never lost, never silently dropped.
CREATE TABLE email_quarantine (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account      text NOT NULL,
    source       text NOT NULL CHECK (source IN ('imap', 'http', 'cli')),
    raw          bytea NOT NULL,
    sha256       text NOT NULL,
    reason       text NOT NULL,
    status       text NOT NULL DEFAULT 'held' CHECK (status IN ('held', 'reprocessed', 'discarded')),
    ticket_id    bigint REFERENCES tickets (id),
    created_at   timestamptz NOT NULL DEFAULT now(),
    resolved_at  timestamptz,
    -- The same bytes delivered again stay one entry.
    UNIQUE (account, sha256)
);
-- The admin list: what still needs attention, newest first.
CREATE INDEX email_quarantine_status_idx ON email_quarantine (status, id);

-- Automatic replies (acknowledgements) sent per recipient: the per-address hourly
-- limit counts here, so a mail loop with an auto-responder stops after the first one.
CREATE TABLE auto_replies (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account     text NOT NULL,
    recipient   text NOT NULL,
    ticket_id   bigint NOT NULL REFERENCES tickets (id),
    message_id  bigint NOT NULL REFERENCES messages (id),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX auto_replies_recipient_idx ON auto_replies (lower(recipient), created_at);

-- The channel account a ticket talks on (replies go out through it).
ALTER TABLE tickets ADD COLUMN channel_account text NOT NULL DEFAULT '';

-- Email addresses of a message: who sent an inbound mail (and asked replies to go
-- where), and whom an outbound one went to.
ALTER TABLE messages ADD COLUMN sender_address text;
ALTER TABLE messages ADD COLUMN reply_to_addresses text[] NOT NULL DEFAULT '{}';
ALTER TABLE messages ADD COLUMN recipient_addresses text[] NOT NULL DEFAULT '{}';
-- Outbound Message-IDs are looked up when a bounce or a customer's reply cites them;
-- the unique (channel, channel_account, external_id) index covers inbound lookups by
-- account, this one covers lookups across accounts.
CREATE INDEX messages_external_idx ON messages (channel, external_id);

-- Set by a sender just before the point of no return (SMTP DATA, a provider's POST).
-- A lease that expires before it is set never reached the provider and is retried;
-- one that expires after it becomes a visible 'possibly_sent'.
ALTER TABLE outbox ADD COLUMN handed_off_at timestamptz;

-- Every inbound mail byte-exact ("show original"): what the parser repaired or dropped
-- can always be looked at again, and nothing the customer sent is lost.
CREATE TABLE message_sources (
    message_id  bigint PRIMARY KEY REFERENCES messages (id),
    raw         bytea NOT NULL
);
