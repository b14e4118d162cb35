"""What admins configure about routing (routing rules, classification rules, group and
agent routing settings) and what supervisors read of it (how often each rule matched and
how agents corrected the classifier). Each takes a connection; new tickets use a change
at once (routing reads its configuration per ticket)."""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec

from helpdesk.errors import Conflict, InvalidInput, NotFound
from helpdesk.routing import queries
from helpdesk.routing.classification_rules import ClassificationRules
from helpdesk.routing.models import (
    AgentRouting,
    GroupRouting,
    RuleIn,
    RuleOut,
    RuleUpdate,
    StatsOut,
)


def _rule_out(row: asyncpg.Record) -> RuleOut:
    return RuleOut(
        id=row["id"],
        name=row["name"],
        position=row["position"],
        active=row["active"],
        conditions=dict(row["conditions"]),
        group_id=row["group_id"],
        priority=row["priority"],
        tags=list(row["tags"]),
        hits=row["hits"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


async def _check_group(conn: asyncpg.Connection, group_id: int) -> None:
    if await conn.fetchval(queries.GROUP_EXISTS, group_id) is None:
        raise InvalidInput("Unknown group", field="group_id")


async def list_rules(conn: asyncpg.Connection) -> list[RuleOut]:
    """Routing rules in the order they are tried (first match wins), with hit counts."""
    return [_rule_out(r) for r in await conn.fetch(queries.ALL_RULES)]


async def create_rule(conn: asyncpg.Connection, data: RuleIn) -> RuleOut:
    """A new rule; 409 when its name is taken."""
    await _check_group(conn, data.group_id)
    row = await conn.fetchrow(
        queries.INSERT_RULE,
        data.name,
        data.position,
        data.active,
        msgspec.to_builtins(data.conditions),
        data.group_id,
        data.priority,
        sorted(set(data.tags)),
    )
    if row is None:
        raise Conflict(f"A routing rule named '{data.name}' exists")
    return _rule_out(row)


async def update_rule(conn: asyncpg.Connection, rule_id: int, data: RuleUpdate) -> RuleOut:
    """Change the fields given; an explicit `priority: null` clears the priority."""
    row = await conn.fetchrow(queries.RULE, rule_id)
    if row is None:
        raise NotFound(f"Routing rule {rule_id} not found")
    if data.group_id is not None:
        await _check_group(conn, data.group_id)
    priority = row["priority"] if data.priority is msgspec.UNSET else data.priority
    updated = await conn.fetchrow(
        queries.UPDATE_RULE,
        rule_id,
        data.name,
        data.position,
        data.active,
        None if data.conditions is None else msgspec.to_builtins(data.conditions),
        data.group_id,
        priority,
        None if data.tags is None else sorted(set(data.tags)),
    )
    return _rule_out(updated)


async def replace_classification_rules(
    conn: asyncpg.Connection, data: dict[str, Any]
) -> dict[str, Any]:
    """Replace the classifier's rules, validated as a whole (422 naming the error); returns
    them as stored."""
    try:
        rules = msgspec.convert(data, ClassificationRules)
    except (msgspec.ValidationError, ValueError) as error:
        raise InvalidInput(f"Invalid classification rules: {error}") from None
    stored: dict[str, Any] = msgspec.to_builtins(rules)
    await conn.execute(queries.STORE_CLASSIFICATION_RULES, stored)
    return stored


async def update_group(
    conn: asyncpg.Connection, group_id: int, data: GroupRouting
) -> dict[str, Any]:
    """A group's assignment strategy, first-line categories and return-on-offline."""
    row = await conn.fetchrow(
        queries.UPDATE_GROUP_ROUTING,
        group_id,
        data.assignment_strategy,
        data.first_line_categories,
        data.return_on_offline,
    )
    if row is None:
        raise NotFound(f"Group {group_id} not found")
    return dict(row)


async def update_agent(
    conn: asyncpg.Connection, agent_id: int, data: AgentRouting
) -> dict[str, Any]:
    """An agent's capacity and skills."""
    row = await conn.fetchrow(
        queries.UPDATE_AGENT_ROUTING,
        agent_id,
        data.capacity,
        data.skill_languages,
        data.skill_channels,
        data.skill_categories,
    )
    if row is None:
        raise NotFound(f"Agent {agent_id} not found")
    return dict(row)


async def stats(conn: asyncpg.Connection) -> StatsOut:
    """Hits per classification and routing rule, and the classifier's corrections."""
    hits = await conn.fetch(queries.CLASSIFICATION_HITS)
    corrections = await conn.fetch(queries.CORRECTIONS)
    rules = await conn.fetch(queries.RULE_HITS)
    return StatsOut(
        classification_rule_hits=[dict(r) for r in hits],
        corrections=[dict(r) for r in corrections],
        routing_rule_hits=[dict(r) for r in rules],
    )
