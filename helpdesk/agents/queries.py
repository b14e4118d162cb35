"""SQL of the agents domain: agents, their groups and bearer tokens."""

from __future__ import annotations

# The columns of an `AgentOut` (with the sorted group ids), for `FROM agents a`.
_AGENT_COLUMNS = """
    a.id, a.email, a.name, a.role, a.active, a.created_at, a.availability,
    coalesce((SELECT array_agg(g.group_id ORDER BY g.group_id) FROM agent_groups g
              WHERE g.agent_id = a.id), '{}') AS group_ids
"""

# One agent by id.
AGENT = f"SELECT {_AGENT_COLUMNS} FROM agents a WHERE a.id = $1"

# Every agent, by id.
ALL_AGENTS = f"SELECT {_AGENT_COLUMNS} FROM agents a ORDER BY a.id"

# The agents in any of the groups $1 (what a partner may see), by id.
AGENTS_IN_GROUPS = f"""
    SELECT {_AGENT_COLUMNS} FROM agents a
    WHERE EXISTS (SELECT 1 FROM agent_groups g WHERE g.agent_id = a.id
                  AND g.group_id = ANY($1::bigint[]))
    ORDER BY a.id
"""

# A new agent ($1 e-mail, $2 name, $3 role, $4 password hash or NULL); its id.
INSERT_AGENT = """
    INSERT INTO agents (email, name, role, password_hash) VALUES ($1, $2, $3, $4) RETURNING id
"""

# An admin's change of agent $1: NULL keeps name $2, role $3 or active $4 as they are.
UPDATE_AGENT = """
    UPDATE agents SET name = coalesce($2, name), role = coalesce($3, role),
                      active = coalesce($4, active), updated_at = now()
    WHERE id = $1
"""

# A new password hash $2 for agent $1, set by an admin or rehashed after a login.
SET_PASSWORD_HASH = "UPDATE agents SET password_hash = $2 WHERE id = $1"

# A new password hash $2 that agent $1 chose.
CHANGE_OWN_PASSWORD_HASH = "UPDATE agents SET password_hash = $2, updated_at = now() WHERE id = $1"

# The password hash of agent $1.
PASSWORD_HASH = "SELECT password_hash FROM agents WHERE id = $1"

# The active agent with e-mail $1 (case-insensitive) and its password hash, for a login.
LOGIN_CANDIDATE = "SELECT id, password_hash FROM agents WHERE lower(email) = lower($1) AND active"

# How many of the group ids $1 exist.
COUNT_GROUPS = "SELECT count(*) FROM groups WHERE id = ANY($1::bigint[])"

# Take agent $1 out of every group (before `ADD_TO_GROUPS`).
REMOVE_FROM_GROUPS = "DELETE FROM agent_groups WHERE agent_id = $1"

# Put agent $1 into each of the groups $2.
ADD_TO_GROUPS = "INSERT INTO agent_groups (agent_id, group_id) SELECT $1, unnest($2::bigint[])"

# Every group, by id.
ALL_GROUPS = "SELECT * FROM groups ORDER BY id"

# The id of the group named $1.
GROUP_ID_BY_NAME = "SELECT id FROM groups WHERE name = $1"

# The groups $1 (a partner's own), by id.
GROUPS = "SELECT * FROM groups WHERE id = ANY($1::bigint[]) ORDER BY id"

# A new group ($1 name, $2 description), the whole row.
INSERT_GROUP = "INSERT INTO groups (name, description) VALUES ($1, $2) RETURNING *"

# A bearer token's hash $1 for agent $2, valid until $3.
INSERT_TOKEN = "INSERT INTO agent_tokens (token_hash, agent_id, expires_at) VALUES ($1, $2, $3)"

# Revoke every token of agent $1.
DELETE_TOKENS_OF_AGENT = "DELETE FROM agent_tokens WHERE agent_id = $1"

# Revoke the token with hash $1.
DELETE_TOKEN = "DELETE FROM agent_tokens WHERE token_hash = $1"

# The active agent an unexpired token with hash $1 stands for: id, role, sorted group ids.
TOKEN_PRINCIPAL = """
    SELECT a.id, a.role,
           coalesce((SELECT array_agg(g.group_id ORDER BY g.group_id) FROM agent_groups g
                     WHERE g.agent_id = a.id), '{}') AS group_ids
    FROM agent_tokens t JOIN agents a ON a.id = t.agent_id
    WHERE t.token_hash = $1 AND t.expires_at > now() AND a.active
"""
