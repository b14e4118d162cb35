"""SQL of the demo: seeding once, and pointing the demo account at the mail sink."""

from __future__ import annotations

# Held by the seeding transaction, so replicas starting together seed once.
LOCK_AGENTS = "LOCK TABLE agents IN EXCLUSIVE MODE"

# How many agents exist (any: the demo is not seeded).
COUNT_AGENTS = "SELECT count(*) FROM agents"

# Send the mail of the account with address $1 through the sink on port $2, unless an
# admin gave it a real SMTP server; its id, no row then.
POINT_AT_SINK = """
    UPDATE email_accounts
    SET smtp_host = '127.0.0.1', smtp_port = $2, smtp_security = 'none',
        smtp_username = NULL, smtp_password = NULL, updated_at = now()
    WHERE address = $1 AND (smtp_host IS NULL OR smtp_host = '127.0.0.1')
    RETURNING id
"""
