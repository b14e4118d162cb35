"""SQL of the audit log (append-only: a trigger refuses UPDATE and DELETE)."""

from __future__ import annotations

# One audit row: $1 actor agent, $2 actor role, $3 action, $4/$5 object type and id,
# $6 outcome, $7 detail (jsonb), $8 request id, $9 client address.
INSERT_ENTRY = """
    INSERT INTO audit_log (actor_agent_id, actor_role, action, object_type, object_id,
                           outcome, detail, request_id, ip)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
"""

# A page of the log, newest first: entries before id $1 (every entry when NULL), at most $2.
ENTRIES = """
    SELECT id, at, actor_agent_id, actor_role, action, object_type, object_id,
           outcome, detail, request_id, ip
    FROM audit_log
    WHERE ($1::bigint IS NULL OR id < $1)
    ORDER BY id DESC
    LIMIT $2
"""
