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
