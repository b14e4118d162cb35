"""SQL of reply templates."""

from __future__ import annotations

# The active templates, in language $1 (every language when NULL), by name and language.
ACTIVE_TEMPLATES = """
    SELECT * FROM reply_templates WHERE active AND ($1::text IS NULL OR language = $1)
    ORDER BY name, language
"""

# What a template is chosen by for ticket $1: the customer's name, the ticket's language
# (else the customer's, else Czech) and the customer's lifecycle stage.
TICKET_CUSTOMER = """
    SELECT c.name, coalesce(t.language, c.language, 'cs') AS language, c.lifecycle_stage
    FROM customers c JOIN tickets t ON t.customer_id = c.id
    WHERE t.id = $1
"""

# The name of agent $1 (the {agent_name} placeholder).
AGENT_NAME = "SELECT name FROM agents WHERE id = $1"

# The active templates in language $1 for lifecycle stage $2 (no stages: every stage).
TEMPLATES_FOR = """
    SELECT * FROM reply_templates WHERE active AND language = $1
      AND (cardinality(stages) = 0 OR $2 = ANY(stages))
    ORDER BY name
"""

# A new template ($1 name, $2 language, $3 body, $4 stages, $5 active); no row when a
# template of that name and language exists.
INSERT_TEMPLATE = """
    INSERT INTO reply_templates (name, language, body, stages, active)
    VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name, language) DO NOTHING RETURNING *
"""

# Change template $1: NULL keeps body $2, stages $3 or active $4; no row when unknown.
UPDATE_TEMPLATE = """
    UPDATE reply_templates SET body = coalesce($2, body), stages = coalesce($3, stages),
                               active = coalesce($4, active)
    WHERE id = $1 RETURNING *
"""

# Delete template $1 (nothing when unknown).
DELETE_TEMPLATE = "DELETE FROM reply_templates WHERE id = $1"
