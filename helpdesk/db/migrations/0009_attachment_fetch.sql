-- Attachments a provider would not hand over at once (a Telegram getFile error, an
-- expired Meta media URL, a Slack 403) no longer fail their whole message: the message
-- is stored with its text, the file as an attachment row without content, and the
-- download is retried apart with backoff, a bounded number of times.
--
-- state: 'stored' (content held), 'pending' (a download will be tried again at
-- next_fetch_at), 'failed' (given up, or the provider will never hand it out);
-- fetch_error says why, for the agent. fetch_ref is the provider's handle to fetch with
-- (a Telegram file_id, a Slack file URL or id, a Meta media URL or id).
-- size_bytes stays the size of what is stored: 0 until it is.

ALTER TABLE attachments
    ALTER COLUMN content DROP NOT NULL,
    ALTER COLUMN sha256 DROP NOT NULL,
    ADD COLUMN state text NOT NULL DEFAULT 'stored'
        CHECK (state IN ('stored', 'pending', 'failed')),
    ADD COLUMN fetch_ref text,
    ADD COLUMN fetch_error text CHECK (length(fetch_error) <= 500),
    ADD COLUMN fetch_attempts integer NOT NULL DEFAULT 0 CHECK (fetch_attempts >= 0),
    ADD COLUMN next_fetch_at timestamptz,
    ADD CONSTRAINT attachments_content_when_stored
        CHECK ((state = 'stored') = (content IS NOT NULL AND sha256 IS NOT NULL)),
    ADD CONSTRAINT attachments_retry_when_pending
        CHECK ((state = 'pending') = (next_fetch_at IS NOT NULL));

-- The retry sweep reads only the downloads that are due.
CREATE INDEX attachments_pending_fetch_idx ON attachments (next_fetch_at)
    WHERE state = 'pending';
