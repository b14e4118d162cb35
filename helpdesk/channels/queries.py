"""SQL of the chat and social channels: stored webhook deliveries, and the relay's
pruning of Idempotency-Keys."""

from __future__ import annotations

# --- inbound_events: webhook deliveries, stored before the 2xx -------------------------

# Keep delivery $3 (the raw body) of account $1 with the provider's delivery id $2;
# its id, no row when that delivery id is stored already.
STORE_EVENT = """
    INSERT INTO inbound_events (account_id, dedupe_key, payload) VALUES ($1, $2, $3)
    ON CONFLICT (account_id, dedupe_key) DO NOTHING RETURNING id
"""

# Pending event $1 with its body and its account's columns; no row once processed.
PENDING_EVENT = """
    SELECT e.payload, a.* FROM inbound_events e
    JOIN channel_accounts a ON a.id = e.account_id
    WHERE e.id = $1 AND e.status = 'pending'
"""

# Event $1 failed with reason $2: one more attempt, `failed` once $3 attempts were made.
EVENT_FAILED = """
    UPDATE inbound_events SET attempts = attempts + 1, last_error = $2,
        status = CASE WHEN attempts + 1 >= $3 THEN 'failed' ELSE status END
    WHERE id = $1
"""

# Event $1 is done.
EVENT_PROCESSED = """
    UPDATE inbound_events SET status = 'processed', processed_at = now(),
        attempts = attempts + 1, last_error = NULL
    WHERE id = $1
"""

# Events still pending after $1 seconds (their job was lost), oldest first, at most 500.
STALE_PENDING_EVENTS = """
    SELECT id FROM inbound_events
    WHERE status = 'pending' AND received_at < now() - make_interval(secs => $1)
    ORDER BY received_at LIMIT 500
"""

# --- relay -----------------------------------------------------------------------------

# Forget Idempotency-Keys older than a day (the relay prunes them).
PRUNE_IDEMPOTENCY_KEYS = (
    "DELETE FROM idempotency_keys WHERE created_at < now() - interval '24 hours'"
)

# --- chat ingestion (channels/ingest.py) -----------------------------------------------

# Whether message $3 of account $2 on channel $1 is stored already (a redelivery).
MESSAGE_STORED = """
    SELECT EXISTS (SELECT FROM messages WHERE channel = $1 AND channel_account = $2
                                             AND external_id = $3)
"""

# Outbound message $3 of account $2 on channel $1 with its statuses, locked while its
# status moves.
LOCK_OUTBOUND_STATUS = """
    SELECT id, provider_status, delivery_status FROM messages
    WHERE channel = $1 AND channel_account = $2 AND external_id = $3
      AND direction = 'outbound'
    FOR UPDATE
"""

# The provider reported message $1 as not delivered, for reason $2.
DELIVERY_FAILED = """
    UPDATE messages SET delivery_status = 'failed', delivery_error = $2 WHERE id = $1
"""

# Message $1's provider status is now $2.
SET_PROVIDER_STATUS = "UPDATE messages SET provider_status = $2 WHERE id = $1"

# Provider status $4 on every sent public outbound message created up to $5 in
# conversation $3 of account $2 on channel $1 whose status is none yet or one of $6.
APPLY_WATERMARK = """
    UPDATE messages m SET provider_status = $4
    FROM conversations c JOIN tickets t ON t.conversation_id = c.id
    WHERE c.channel = $1 AND c.channel_account = $2 AND c.external_id = $3
      AND m.ticket_id = t.id AND m.direction = 'outbound' AND m.kind = 'public'
      AND m.delivery_status = 'sent' AND m.created_at <= $5
      AND (m.provider_status IS NULL OR m.provider_status = ANY($6::text[]))
"""

# Claims due downloads: each try is counted when claimed, so a sweep that dies mid-way
# still moves its attachments towards `failed` instead of retrying them forever.
# At most $1 of them, due again after a lease of $2 seconds.
CLAIM_FETCHES = """
    UPDATE attachments a
    SET fetch_attempts = a.fetch_attempts + 1,
        next_fetch_at = now() + make_interval(secs => $2)
    FROM (SELECT id FROM attachments
          WHERE state = 'pending' AND next_fetch_at <= now()
          ORDER BY next_fetch_at LIMIT $1 FOR UPDATE SKIP LOCKED) due,
         messages m
    WHERE a.id = due.id AND m.id = a.message_id
    RETURNING a.id, a.filename, a.content_type, a.fetch_ref, a.fetch_attempts,
              m.channel, m.channel_account, m.ticket_id
"""

# Pending attachment $1 downloaded: bytes $2, SHA-256 $3, size $4, the provider's
# filename $5 and content type $6 when it gave them; its id, no row when no longer pending.
FETCH_STORED = """
    UPDATE attachments SET state = 'stored', content = $2, sha256 = $3,
        size_bytes = $4, fetch_error = NULL, next_fetch_at = NULL,
        filename = coalesce($5, filename), content_type = coalesce($6, content_type)
    WHERE id = $1 AND state = 'pending' RETURNING id
"""

# Pending attachment $1's download failed with reason $2: due again in $3 seconds, or
# `failed` when $3 is NULL; whether it failed, no row when no longer pending.
FETCH_FAILED = """
    UPDATE attachments SET fetch_error = $2,
        state = CASE WHEN $3::float8 IS NULL THEN 'failed' ELSE 'pending' END,
        next_fetch_at = now() + make_interval(secs => $3::float8)
    WHERE id = $1 AND state = 'pending' RETURNING state = 'failed'
"""
