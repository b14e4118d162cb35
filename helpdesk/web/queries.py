"""SQL of the HTTP plumbing: Idempotency-Key rows, readiness and metrics."""

from __future__ import annotations

# Claim key $2 of agent $1 for a request ($3 method, $4 path, $5 hash of method, path
# and body); true when claimed, no row when the key was claimed before.
CLAIM_IDEMPOTENCY_KEY = """
    INSERT INTO idempotency_keys (agent_id, key, request_method, request_path, request_hash)
    VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING true
"""

# What an earlier request with key $2 of agent $1 was and answered.
IDEMPOTENT_RESPONSE = """
    SELECT request_hash, response_status, response_body FROM idempotency_keys
    WHERE agent_id = $1 AND key = $2
"""

# The answer ($3 status, $4 body) to replay for key $2 of agent $1.
STORE_IDEMPOTENT_RESPONSE = """
    UPDATE idempotency_keys SET response_status = $3, response_body = $4
    WHERE agent_id = $1 AND key = $2
"""

# PostgreSQL answers (readiness).
PING = "SELECT 1"

# How many outbox rows wait in each unfinished status (zero included), for /metrics.
OUTBOX_WAITING = """
    SELECT s.status, count(o.id) AS n
    FROM unnest(ARRAY['pending', 'retrying', 'sending']) AS s(status)
    LEFT JOIN outbox o ON o.status = s.status GROUP BY s.status
"""
