"""SQL of the chat and social channels: their accounts, stored webhook deliveries, what
a chat reply needs, the outbox (every channel's deliveries), the web chat visitor's
view, Meta's profile names, the relay's pruning of Idempotency-Keys, and what chat
ingestion does besides the intake (statuses, watermarks, attachment fetch retries)."""

from __future__ import annotations

# --- channel_accounts ------------------------------------------------------------------

# The account of kind $1 named $2, every column.
ACCOUNT = "SELECT * FROM channel_accounts WHERE kind = $1 AND name = $2"

# The account of kind $1 named $2, every column, locked for a change.
LOCK_ACCOUNT = "SELECT * FROM channel_accounts WHERE kind = $1 AND name = $2 FOR UPDATE"

# Account $1, every column.
ACCOUNT_BY_ID = "SELECT * FROM channel_accounts WHERE id = $1"

# Every account, by id.
ALL_ACCOUNTS = "SELECT * FROM channel_accounts ORDER BY id"

# A new account: $1 kind, $2 name, $3 active, $4 settings, $5 secrets; the whole row.
INSERT_ACCOUNT = """
    INSERT INTO channel_accounts (kind, name, active, settings, secrets)
    VALUES ($1, $2, $3, $4, $5) RETURNING *
"""

# Account $1 becomes $2 active with settings $3 and secrets $4 (merged by the caller);
# the whole row.
UPDATE_ACCOUNT = """
    UPDATE channel_accounts SET active = $2, settings = $3, secrets = $4, updated_at = now()
    WHERE id = $1 RETURNING *
"""

# Secret $2 of account $1 becomes $3 unless it is set already (the first use wins).
ADD_SECRET = """
    UPDATE channel_accounts
    SET secrets = secrets || jsonb_build_object($2::text, $3::text)
    WHERE id = $1 AND NOT secrets ? $2
"""

# Secret $2 of account $1 as stored.
SECRET = "SELECT secrets ->> $2 FROM channel_accounts WHERE id = $1"

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

# --- chat replies ----------------------------------------------------------------------

# What a chat reply (message $1) needs: its text and buttons, the account it goes out
# on (its own, else the ticket's), the conversation, and the external id of the latest
# public customer message on the ticket's channel (the one it answers).
CHAT_REPLY = """
    SELECT m.body_text, m.buttons,
           coalesce(nullif(m.channel_account, ''), t.channel_account) AS account,
           c.external_id AS conversation, c.last_inbound_at,
           (SELECT i.external_id FROM messages i
            WHERE i.ticket_id = t.id AND i.direction = 'inbound'
              AND i.channel = t.channel AND i.kind = 'public'
            ORDER BY i.id DESC LIMIT 1) AS answers
    FROM messages m JOIN tickets t ON t.id = m.ticket_id
    LEFT JOIN conversations c ON c.id = t.conversation_id
    WHERE m.id = $1
"""

# The attachments of message $1, in order.
ATTACHMENTS = """
    SELECT filename, content_type, content FROM attachments WHERE message_id = $1 ORDER BY id
"""

# --- customer identities seen from a channel -------------------------------------------

# The customer of channel $1, account $2 cannot be reached there: reason $4.
MARK_UNREACHABLE = """
    UPDATE customer_identities SET unreachable_reason = $4
    WHERE channel = $1 AND channel_account = $2 AND customer_id = $3
"""

# The identity $3 on channel $1, account $2: its name and customer.
IDENTITY = """
    SELECT i.display_name, i.customer_id FROM customer_identities i
    WHERE i.channel = $1 AND i.channel_account = $2 AND i.external_id = $3
"""

# Identity $3 on channel $1, account $2 is named $4 (from the provider's profile).
NAME_IDENTITY = """
    UPDATE customer_identities SET display_name = $4
    WHERE channel = $1 AND channel_account = $2 AND external_id = $3
"""

# Customer $1 is named $2, unless an agent renamed them from placeholder $3.
NAME_CUSTOMER = """
    UPDATE customers SET name = $2, updated_at = clock_timestamp() WHERE id = $1 AND name = $3
"""

# --- outbox: deliveries of every channel ----------------------------------------------
#
# Every write after the claim is fenced by the attempt number (`attempts = $n`): a worker
# that lost its lease (the relay expired it and a successor claimed the row) matches no
# row, so it can neither hand off nor record an outcome over its successor's.

# Queue the delivery of message $1 on ticket $2 over channel $3; its id.
ADD_DELIVERY = (
    "INSERT INTO outbox (message_id, ticket_id, channel) VALUES ($1, $2, $3) RETURNING id"
)

# Lock ticket $1 before a failed reply is withdrawn, as every writer of a ticket's
# messages locks the ticket first.
LOCK_TICKET = "SELECT 1 FROM tickets WHERE id = $1 FOR UPDATE"

# The outcome of attempt $5 of delivery $1: status $2, reason $3, due again after $4.
# Fenced by the attempt: no row (and no message id) when the delivery moved on without
# this worker. A 'possibly_sent' row still takes it: the worker that outlived its lease
# knows better than the relay's guess.
FINISH_DELIVERY = """
    UPDATE outbox SET status = $2, last_error = $3, locked_until = NULL,
        next_attempt_at = now() + $4::interval, updated_at = now()
    WHERE id = $1 AND attempts = $5 AND status IN ('sending', 'possibly_sent')
    RETURNING message_id
"""

# Message $1's delivery is $2 with reason $3; external id $4 when the provider gave one.
# Only run after FINISH_DELIVERY matched, so fenced by it.
SET_DELIVERY_STATUS = """
    UPDATE messages SET delivery_status = $2, delivery_error = $3,
        external_id = coalesce($4, external_id)
    WHERE id = $1
"""

# Claim delivery $1 for a lease of $2 if it is waiting and due: the next attempt, with
# what the sender needs (the message, its ticket). No row when it is not ours to send;
# the attempt number returned fences every later write.
CLAIM_DELIVERY = """
    UPDATE outbox o SET status = 'sending', attempts = attempts + 1,
        locked_until = now() + $2::interval, handed_off_at = NULL, updated_at = now()
    FROM messages m JOIN tickets t ON t.id = m.ticket_id
    WHERE o.id = $1 AND m.id = o.message_id
      AND o.status IN ('pending', 'retrying') AND o.next_attempt_at <= now()
    RETURNING o.id, o.attempts, o.attempts_base, o.channel, m.id AS message_id, m.body_text,
              t.id AS ticket_id, t.number, t.subject, t.customer_id
"""

# Message $1 is being sent (in the claim's transaction).
MESSAGE_SENDING = "UPDATE messages SET delivery_status = 'sending' WHERE id = $1"

# The point of no return of attempt $2 of delivery $1: true only while the delivery is
# still this attempt's (fenced), so a worker that lost its lease never sends.
HAND_OFF = """
    UPDATE outbox SET handed_off_at = now(), updated_at = now()
    WHERE id = $1 AND attempts = $2 AND status = 'sending'
    RETURNING true
"""

# Leases that expired before the hand-off: nothing was sent, so the delivery is due again
# now with reason $1, or failed once $2 attempts since the last agent's retry were made.
# Not fenced by attempt: the expired lease is the fence (a live worker's lease holds).
EXPIRE_NOT_HANDED_OFF = """
    UPDATE outbox SET
        status = CASE WHEN attempts - attempts_base >= $2 THEN 'failed' ELSE 'retrying' END,
        last_error = CASE WHEN attempts - attempts_base >= $2
                          THEN 'gave up after ' || attempts - attempts_base
                               || ' attempts: ' || $1
                          ELSE $1 END,
        locked_until = NULL, next_attempt_at = now(), updated_at = now()
    WHERE status = 'sending' AND locked_until < now() AND handed_off_at IS NULL
    RETURNING message_id, status, last_error
"""

# Leases that expired after the hand-off: the outcome is unknown, so 'possibly_sent'
# with reason $1, shown and never resent.
EXPIRE_HANDED_OFF = """
    UPDATE outbox SET status = 'possibly_sent', last_error = $1, locked_until = NULL,
        updated_at = now()
    WHERE status = 'sending' AND locked_until < now() AND handed_off_at IS NOT NULL
    RETURNING message_id, status, last_error
"""

# Messages $1 take delivery statuses $2 with reasons $3 (parallel arrays).
SET_DELIVERY_STATUSES = """
    UPDATE messages m SET delivery_status = u.status, delivery_error = u.error
    FROM unnest($1::bigint[], $2::text[], $3::text[]) AS u(id, status, error)
    WHERE m.id = u.id
"""

# Deliveries waiting and due, at most $1, oldest due first; `overdue` when due for more
# than $2 seconds (their job will not run).
DUE_DELIVERIES = """
    SELECT id, attempts, next_attempt_at < now() - make_interval(secs => $2) AS overdue
    FROM outbox
    WHERE status IN ('pending', 'retrying') AND next_attempt_at <= now()
    ORDER BY next_attempt_at LIMIT $1
"""

# Outbound message $1 whose delivery failed is pending again; true, no row otherwise.
REQUEUE_MESSAGE = """
    UPDATE messages SET delivery_status = 'pending', delivery_error = NULL
    WHERE id = $1 AND direction = 'outbound' AND delivery_status = 'failed'
    RETURNING true
"""

# The latest delivery of message $1 is due again with a fresh set of attempts
# (`attempts_base` moves up; `attempts` goes on counting, so job ids stay new); its id
# and attempts.
REQUEUE_DELIVERY = """
    UPDATE outbox SET status = 'pending', last_error = NULL, next_attempt_at = now(),
        locked_until = NULL, handed_off_at = NULL, attempts_base = attempts,
        updated_at = now()
    WHERE id = (SELECT max(id) FROM outbox WHERE message_id = $1)
    RETURNING id, attempts
"""

# --- web chat --------------------------------------------------------------------------

# The visitor's conversation (channel $1, account $2, visitor $3) after message $4, at
# most $5, oldest first: their own messages and agents' public replies on its channel,
# never notes nor another visitor's messages merged into one of its tickets.
VISITOR_MESSAGES = """
    SELECT m.id, m.direction, m.body_text, m.created_at
    FROM conversations c
    JOIN tickets t ON t.conversation_id = c.id
    JOIN messages m ON m.ticket_id = t.id
    WHERE c.channel = $1 AND c.channel_account = $2 AND c.external_id = $3
      AND m.kind = 'public' AND m.channel = $1 AND m.id > $4
      AND (m.direction = 'outbound'
           OR (m.channel_account = $2 AND starts_with(m.external_id, $3 || ':')))
    ORDER BY m.id
    LIMIT $5
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
