"""SQL of the email channel: accounts, quarantine, bounces, automatic acknowledgements,
outbound envelopes, Mailgun's token ledger, IMAP mailbox cursors and the original mail of
a message."""

from __future__ import annotations

from typing import Any

from helpdesk.agents.models import Principal
from helpdesk.agents.scope import ticket_scope
from helpdesk.db.sql import Params

# --- accounts --------------------------------------------------------------------------

# The account named $1, every column.
ACCOUNT = "SELECT * FROM email_accounts WHERE name = $1"

# Every account, by id.
ALL_ACCOUNTS = "SELECT * FROM email_accounts ORDER BY id"

# The active accounts with an IMAP server to poll, by id.
ACTIVE_IMAP_ACCOUNTS = (
    "SELECT * FROM email_accounts WHERE active AND imap_host IS NOT NULL ORDER BY id"
)

# Every address we send from or ask replies to.
OWN_ADDRESSES = "SELECT address, reply_to FROM email_accounts"


def insert_account(columns: list[str]) -> str:
    """A new account with values $1.. for `columns` (names from the account Structs, never
    from input), the whole row."""
    placeholders = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    return f"INSERT INTO email_accounts ({', '.join(columns)}) VALUES ({placeholders}) RETURNING *"


def update_account(columns: list[str]) -> str:
    """Set `columns` (names from the account Structs) to $2.. on the account named $1;
    the whole row, none when there is no such account."""
    assignments = ", ".join(f"{column} = ${i}" for i, column in enumerate(columns, start=2))
    return (
        f"UPDATE email_accounts SET {assignments}, updated_at = now() WHERE name = $1 RETURNING *"
    )


# --- quarantine ------------------------------------------------------------------------

# The columns of a `QuarantinedMail` (the size, not the bytes).
_QUARANTINE_COLUMNS = """
    id, account, source, octet_length(raw) AS size_bytes, sha256, reason, status, ticket_id,
    created_at, resolved_at
"""

# Held mail newest first: in status $1 (any when NULL), ids before $2 (any when NULL),
# at most $3.
QUARANTINE_PAGE = f"""
    SELECT {_QUARANTINE_COLUMNS} FROM email_quarantine
    WHERE ($1::text IS NULL OR status = $1) AND ($2::bigint IS NULL OR id < $2)
    ORDER BY id DESC LIMIT $3
"""

# Quarantine entry $1.
QUARANTINE_ENTRY = f"SELECT {_QUARANTINE_COLUMNS} FROM email_quarantine WHERE id = $1"

# The bytes of quarantine entry $1.
QUARANTINED_RAW = "SELECT raw FROM email_quarantine WHERE id = $1"

# Quarantine entry $1 with its bytes, locked for reprocessing.
LOCK_QUARANTINED_MAIL = "SELECT account, raw, status FROM email_quarantine WHERE id = $1 FOR UPDATE"

# The status of quarantine entry $1, locked for discarding.
LOCK_QUARANTINE_STATUS = "SELECT status FROM email_quarantine WHERE id = $1 FOR UPDATE"

# Keep raw mail $3 of account $1 from source $2 (sha256 $4) with reason $5; the same bytes
# again stay one entry, with the latest reason. Its id.
QUARANTINE = """
    INSERT INTO email_quarantine (account, source, raw, sha256, reason)
    VALUES ($1, $2, $3, $4, $5)
    ON CONFLICT (account, sha256) DO UPDATE SET reason = EXCLUDED.reason
    RETURNING id
"""

# Quarantine entry $1 was imported as ticket $2.
MARK_REPROCESSED = """
    UPDATE email_quarantine SET status = 'reprocessed', ticket_id = $2, resolved_at = now()
    WHERE id = $1
"""

# Quarantine entry $1 was dealt with without importing it (the bytes stay).
MARK_DISCARDED = """
    UPDATE email_quarantine SET status = 'discarded', resolved_at = now() WHERE id = $1
"""

# --- bounces ---------------------------------------------------------------------------

# The first of our sent mails among Message-IDs $1 (in their order), locked: the
# delivery a bounce report cites.
BOUNCED_MESSAGE = """
    SELECT id, ticket_id, delivery_status, delivery_error FROM messages
    WHERE channel = 'email' AND direction = 'outbound' AND external_id = ANY($1::text[])
    ORDER BY array_position($1::text[], external_id) LIMIT 1
    FOR UPDATE
"""

# Message $1's delivery is $2 with reason $3 (what the bounce said).
SET_BOUNCED_MESSAGE = "UPDATE messages SET delivery_status = $2, delivery_error = $3 WHERE id = $1"

# The deliveries of message $1 are $2 with reason $3 (what the bounce said).
SET_BOUNCED_DELIVERY = """
    UPDATE outbox SET status = $2, last_error = $3, updated_at = now() WHERE message_id = $1
"""

# --- automatic acknowledgements --------------------------------------------------------

# Serialize the acknowledgements to one address (key $1) until the transaction ends.
LOCK_AUTO_REPLY_ADDRESS = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))"

# How many automatic replies went to address $1 (lower case) in the last hour.
RECENT_AUTO_REPLIES = """
    SELECT count(*) FROM auto_replies
    WHERE lower(recipient) = $1 AND created_at > now() - interval '1 hour'
"""

# The number of ticket $1.
TICKET_NUMBER = "SELECT number FROM tickets WHERE id = $1"

# A pending acknowledgement on ticket $1 from account $2: text $3 to recipients $4; its id.
INSERT_ACKNOWLEDGEMENT = """
    INSERT INTO messages (ticket_id, direction, kind, channel, channel_account,
                          body_text, delivery_status, recipient_addresses)
    VALUES ($1, 'outbound', 'system', 'email', $2, $3, 'pending', $4) RETURNING id
"""

# Account $1 sent an automatic reply to $2 on ticket $3 (message $4): counted by the limit.
RECORD_AUTO_REPLY = """
    INSERT INTO auto_replies (account, recipient, ticket_id, message_id) VALUES ($1, $2, $3, $4)
"""

# --- outbound --------------------------------------------------------------------------

# The ticket's earlier email messages in conversation order ($1 ticket, before the
# message created at $2 with id $3). An outbound one that failed never reached anyone,
# so it is nobody's parent.
THREAD = """
    SELECT direction, external_id FROM messages
    WHERE ticket_id = $1 AND channel = 'email' AND external_id IS NOT NULL
      AND (created_at, id) < ($2, $3)
      AND (direction = 'inbound' OR delivery_status IS DISTINCT FROM 'failed')
    ORDER BY created_at, id
"""

# What fixing the envelope of queued message $1 needs: the message, its ticket's
# number, customer and account.
ENVELOPE_SOURCE = """
    SELECT m.id, m.ticket_id, m.created_at, m.channel_account, m.external_id,
           m.recipient_addresses, t.number, t.customer_id,
           t.channel_account AS ticket_account
    FROM messages m JOIN tickets t ON t.id = m.ticket_id
    WHERE m.id = $1
"""

# The address of the account named $1.
ACCOUNT_ADDRESS = "SELECT address FROM email_accounts WHERE name = $1"

# The envelope of message $1: $2 account, $3 Message-ID, $4 recipients.
SET_ENVELOPE = """
    UPDATE messages SET channel_account = $2, external_id = $3, recipient_addresses = $4
    WHERE id = $1
"""

# The customer's latest email on ticket $1 before the message created at $2 with id $3:
# the account they wrote to and where they asked answers to go.
LATEST_INBOUND = """
    SELECT channel_account, sender_address, reply_to_addresses FROM messages
    WHERE ticket_id = $1 AND channel = 'email' AND direction = 'inbound'
      AND (created_at, id) < ($2, $3)
    ORDER BY created_at DESC, id DESC LIMIT 1
"""

# Customer $1's email address, else the newest email identity's.
CUSTOMER_ADDRESS = """
    SELECT coalesce(nullif(c.email, ''),
                    (SELECT i.external_id FROM customer_identities i
                     WHERE i.customer_id = c.id AND i.channel = 'email'
                     ORDER BY i.id DESC LIMIT 1))
    FROM customers c WHERE c.id = $1
"""

# What one send of message $1 needs: the message, its ticket and its customer.
OUTGOING = """
    SELECT m.id, m.ticket_id, m.kind, m.body_text, m.created_at, m.channel_account,
           m.external_id, m.recipient_addresses, t.number, t.subject,
           c.name AS customer_name, c.email AS customer_email
    FROM messages m JOIN tickets t ON t.id = m.ticket_id
    JOIN customers c ON c.id = t.customer_id
    WHERE m.id = $1
"""

# The attachments of message $1, in order.
ATTACHMENTS = """
    SELECT filename, content_type, content FROM attachments WHERE message_id = $1 ORDER BY id
"""

# --- Mailgun's token ledger ------------------------------------------------------------

# Forget the tokens of account $1 signed more than $2 seconds ago.
PRUNE_MAILGUN_TOKENS = """
    DELETE FROM mailgun_tokens
    WHERE account_id = $1 AND signed_at < now() - make_interval(secs => $2)
"""

# Record token $2 of account $1 signed at $3; true when new, no row when seen before.
CLAIM_MAILGUN_TOKEN = """
    INSERT INTO mailgun_tokens (account_id, token, signed_at) VALUES ($1, $2, $3)
    ON CONFLICT (account_id, token) DO NOTHING RETURNING true
"""

# --- IMAP mailbox cursors -------------------------------------------------------------

# The cursor row of account $1's folder $2 exists (status 'starting' when new).
ENSURE_CURSOR = """
    INSERT INTO imap_cursors (account_id, folder) VALUES ($1, $2)
    ON CONFLICT (account_id, folder) DO NOTHING
"""

# A round on account $1's folder $2 went well.
CURSOR_OK = """
    UPDATE imap_cursors SET status = 'ok', last_error = NULL, failures = 0,
        last_ok_at = now(), updated_at = now()
    WHERE account_id = $1 AND folder = $2
"""

# A round on account $1's folder $2 failed with reason $3; the failures in a row.
CURSOR_FAILURE = """
    INSERT INTO imap_cursors (account_id, folder, status, last_error, failures)
    VALUES ($1, $2, 'failing', $3, 1)
    ON CONFLICT (account_id, folder) DO UPDATE
    SET status = 'failing', last_error = EXCLUDED.last_error,
        failures = imap_cursors.failures + 1, updated_at = now()
    RETURNING failures
"""

# UID $4 of UIDVALIDITY $3 is imported from account $1's folder $2 (the cursor never
# goes back within one UIDVALIDITY).
ADVANCE_CURSOR = """
    UPDATE imap_cursors
    SET last_uid = CASE WHEN uidvalidity = $3 THEN GREATEST(last_uid, $4) ELSE $4 END,
        uidvalidity = $3, updated_at = now()
    WHERE account_id = $1 AND folder = $2
"""

# The stored UIDVALIDITY and last imported UID of account $1's folder $2.
CURSOR = "SELECT uidvalidity, last_uid FROM imap_cursors WHERE account_id = $1 AND folder = $2"

# Account $1's folder $2 has the new UIDVALIDITY $3: read again from the start.
RESTART_CURSOR = """
    UPDATE imap_cursors SET uidvalidity = $3, last_uid = 0, updated_at = now()
    WHERE account_id = $1 AND folder = $2
"""

# Every active IMAP mailbox by account name, with its poller's status ('starting' before
# any poller touched it).
MAILBOX_STATES = """
    SELECT a.name, a.imap_folder, coalesce(c.status, 'starting') AS status,
           c.last_error, coalesce(c.failures, 0) AS failures, c.last_ok_at
    FROM email_accounts a
    LEFT JOIN imap_cursors c ON c.account_id = a.id AND c.folder = a.imap_folder
    WHERE a.active AND a.imap_host IS NOT NULL
    ORDER BY a.name
"""

# The session advisory lock of a mailbox (key $1), held until the connection closes;
# true when this session got it.
TRY_LOCK_MAILBOX = "SELECT pg_try_advisory_lock(hashtextextended($1, 0))"

# A round trip that keeps the lock connection (and so the mailbox lock) alive.
PING = "SELECT 1"

# --- original mail ---------------------------------------------------------------------


def message_source(principal: Principal, message_id: int) -> tuple[str, list[Any]]:
    """The original mail (`raw`) of inbound message `message_id`, within the tickets
    `principal` may see: the SQL and its parameters."""
    params = Params()
    scope = ticket_scope(principal, params)
    sql = f"""
        SELECT s.raw FROM message_sources s JOIN messages m ON m.id = s.message_id
        JOIN tickets t ON t.id = m.ticket_id
        WHERE s.message_id = {params.add(message_id)} AND {scope}
    """
    return sql, params.values


# --- mail ingestion (channels/email/ingest.py) -----------------------------------------

# Whether lower-case address $2 wrote a message on ticket $1 or was a recipient of one.
TAKES_PART = """
    SELECT EXISTS (
        SELECT 1 FROM messages m
        WHERE m.ticket_id = $1
          AND (lower(m.sender_address) = $2
               OR EXISTS (SELECT 1 FROM unnest(m.recipient_addresses) r
                          WHERE lower(r) = $2)))
"""

# The ticket of the email whose Message-ID comes first in $1 (the cited ids, most
# relevant first), the newest such message when several have that id.
CITED_TICKET = """
    SELECT ticket_id FROM messages
    WHERE channel = 'email' AND external_id = ANY($1::text[])
    ORDER BY array_position($1::text[], external_id), id DESC LIMIT 1
"""

# Ticket number $1, when customer $2's.
CUSTOMER_TICKET_BY_NUMBER = "SELECT id FROM tickets WHERE number = $1 AND customer_id = $2"
