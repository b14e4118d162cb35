-- Inbound mail through the webhooks of Mailgun, SendGrid and Postmark: each account's
-- provider secrets (write-only through the API; NULL closes that provider's endpoint)
-- and the Mailgun tokens already used.

-- Mailgun's webhook signing key, as given: it keys the HMAC we recompute.
ALTER TABLE email_accounts ADD COLUMN mailgun_signing_key text;
-- SendGrid's signature verification key (base64 DER SubjectPublicKeyInfo, or PEM).
ALTER TABLE email_accounts ADD COLUMN sendgrid_public_key text;
-- SHA-256 of Postmark's `user:password` (the Basic auth of the webhook URL).
ALTER TABLE email_accounts ADD COLUMN postmark_credentials_sha256 bytea;

-- Mailgun signs only timestamp + token, not the mail: a token is accepted once. A row
-- is inserted in the transaction that stores the mail (so a failed delivery can be
-- retried) and pruned once its timestamp is far outside the accepted window.
CREATE TABLE mailgun_tokens (
    account_id  bigint NOT NULL REFERENCES email_accounts (id) ON DELETE CASCADE,
    token       text NOT NULL CHECK (length(token) BETWEEN 1 AND 256),
    signed_at   timestamptz NOT NULL,
    PRIMARY KEY (account_id, token)
);
CREATE INDEX mailgun_tokens_signed_at_idx ON mailgun_tokens (account_id, signed_at);
