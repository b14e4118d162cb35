"""Routing endpoints: rules and classification rules (admins), group and agent routing
settings (admins), statistics (supervisors), availability (every agent) and escalation
of a first-line ticket to an internal group."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Annotated, Any, Literal

import asyncpg
import msgspec
from litestar import Controller, get, patch, post, put
from litestar.params import JSONBody
from litestar.status_codes import HTTP_201_CREATED

from helpdesk.errors import Conflict, InvalidInput, NotFound
from helpdesk.routing import service
from helpdesk.routing.classification_rules import ClassificationRules
from helpdesk.routing.jobs import ASSIGN_JOB
from helpdesk.routing.rules import RuleConditions
from helpdesk.tickets import writer
from helpdesk.web.auth import ADMIN, SUPERVISION
from helpdesk.web.context import Caller, Ctx, Db
from helpdesk.web.query import PathId

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
Tag = Annotated[str, msgspec.Meta(min_length=1, max_length=50, pattern=r"^[^\s,]+$")]
Priority = Literal["low", "normal", "high", "urgent"]
Category = Literal["complaint", "order", "return", "question", "other"]
Availability = Literal["online", "away", "offline"]


class RuleIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: Name
    group_id: int
    position: int = 100
    active: bool = True
    conditions: RuleConditions = RuleConditions()
    priority: Priority | None = None
    tags: list[Tag] = []


class RuleUpdate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: Name | None = None
    group_id: int | None = None
    position: int | None = None
    active: bool | None = None
    conditions: RuleConditions | None = None
    priority: Priority | msgspec.UnsetType | None = msgspec.UNSET
    tags: list[Tag] | None = None


class RuleOut(msgspec.Struct):
    id: int
    name: str
    position: int
    active: bool
    conditions: dict[str, Any]
    group_id: int
    priority: str | None
    tags: list[str]
    hits: int
    created_at: datetime
    updated_at: datetime


class GroupRouting(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    assignment_strategy: Literal["manual", "round_robin", "least_loaded"] | None = None
    first_line_categories: list[Category] | None = None
    return_on_offline: bool | None = None


class AgentRouting(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    capacity: Annotated[int, msgspec.Meta(ge=0, le=1000)] | None = None
    skill_languages: list[Annotated[str, msgspec.Meta(pattern=r"^[a-z]{2}$")]] | None = None
    skill_channels: list[Annotated[str, msgspec.Meta(pattern=r"^[a-z]{2,20}$")]] | None = None
    skill_categories: list[Category] | None = None


class AvailabilityIn(msgspec.Struct, forbid_unknown_fields=True):
    availability: Availability


class AvailabilityOut(msgspec.Struct):
    agent_id: int
    availability: str
    returned_to_queue: list[int]


class EscalateIn(msgspec.Struct, forbid_unknown_fields=True):
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]
    group_id: int | None = None


class StatsOut(msgspec.Struct):
    classification_rule_hits: list[dict[str, Any]]
    corrections: list[dict[str, Any]]
    routing_rule_hits: list[dict[str, Any]]


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


async def _check_group(db: asyncpg.Connection, group_id: int) -> None:
    if await db.fetchval("SELECT 1 FROM groups WHERE id = $1", group_id) is None:
        raise InvalidInput("Unknown group", field="group_id")


class RoutingAdminController(Controller):
    path = "/routing"
    tags = ["routing"]
    guards = [ADMIN]

    @get("/rules", operation_id="listRoutingRules")
    async def list_rules(self, db: Db) -> list[RuleOut]:
        """Routing rules in the order they are tried (first match wins), with hit counts."""
        rows = await db.fetch("SELECT * FROM routing_rules ORDER BY position, id")
        return [_rule_out(r) for r in rows]

    @post("/rules", status_code=HTTP_201_CREATED, operation_id="createRoutingRule")
    async def create_rule(self, db: Db, data: JSONBody[RuleIn]) -> RuleOut:
        await _check_group(db, data.group_id)
        row = await db.fetchrow(
            """INSERT INTO routing_rules (name, position, active, conditions, group_id,
                                          priority, tags)
               VALUES ($1, $2, $3, $4, $5, $6, $7)
               ON CONFLICT (name) DO NOTHING RETURNING *""",
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

    @patch("/rules/{rule_id:int}", operation_id="updateRoutingRule")
    async def update_rule(self, db: Db, rule_id: PathId, data: JSONBody[RuleUpdate]) -> RuleOut:
        row = await db.fetchrow("SELECT * FROM routing_rules WHERE id = $1", rule_id)
        if row is None:
            raise NotFound(f"Routing rule {rule_id} not found")
        if data.group_id is not None:
            await _check_group(db, data.group_id)
        priority = row["priority"] if data.priority is msgspec.UNSET else data.priority
        updated = await db.fetchrow(
            """UPDATE routing_rules SET name = coalesce($2, name),
                   position = coalesce($3, position), active = coalesce($4, active),
                   conditions = coalesce($5, conditions), group_id = coalesce($6, group_id),
                   priority = $7, tags = coalesce($8, tags), updated_at = now()
               WHERE id = $1 RETURNING *""",
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

    @get("/classification-rules", operation_id="getClassificationRules")
    async def read_classification_rules(self, db: Db) -> dict[str, Any]:
        """The classifier's rules in use (the shipped defaults until edited)."""
        rules: dict[str, Any] = msgspec.to_builtins(await service.classification_rules(db))
        return rules

    @put("/classification-rules", operation_id="replaceClassificationRules")
    async def replace_classification_rules(
        self, db: Db, data: JSONBody[dict[str, Any]]
    ) -> dict[str, Any]:
        """Replace the rules (validated as a whole); new tickets use them at once."""
        try:
            rules = msgspec.convert(data, ClassificationRules)
        except (msgspec.ValidationError, ValueError) as error:
            raise InvalidInput(f"Invalid classification rules: {error}") from None
        stored: dict[str, Any] = msgspec.to_builtins(rules)
        await db.execute(
            """INSERT INTO classification_rules (id, rules) VALUES (1, $1)
               ON CONFLICT (id) DO UPDATE SET rules = EXCLUDED.rules, updated_at = now()""",
            stored,
        )
        return stored

    @patch("/groups/{group_id:int}", operation_id="updateGroupRouting")
    async def update_group(
        self, db: Db, group_id: PathId, data: JSONBody[GroupRouting]
    ) -> dict[str, Any]:
        """Assignment strategy, first-line categories and what happens when agents leave."""
        row = await db.fetchrow(
            """UPDATE groups SET
                   assignment_strategy = coalesce($2, assignment_strategy),
                   first_line_categories = coalesce($3, first_line_categories),
                   return_on_offline = coalesce($4, return_on_offline)
               WHERE id = $1
               RETURNING id, name, assignment_strategy, first_line_categories,
                         return_on_offline""",
            group_id,
            data.assignment_strategy,
            data.first_line_categories,
            data.return_on_offline,
        )
        if row is None:
            raise NotFound(f"Group {group_id} not found")
        return dict(row)

    @patch("/agents/{agent_id:int}", operation_id="updateAgentRouting")
    async def update_agent(
        self, db: Db, agent_id: PathId, data: JSONBody[AgentRouting]
    ) -> dict[str, Any]:
        """Capacity and skills (empty lists: any language, channel, category)."""
        row = await db.fetchrow(
            """UPDATE agents SET capacity = coalesce($2, capacity),
                   skill_languages = coalesce($3, skill_languages),
                   skill_channels = coalesce($4, skill_channels),
                   skill_categories = coalesce($5, skill_categories), updated_at = now()
               WHERE id = $1
               RETURNING id, capacity, skill_languages, skill_channels, skill_categories,
                         availability""",
            agent_id,
            data.capacity,
            data.skill_languages,
            data.skill_channels,
            data.skill_categories,
        )
        if row is None:
            raise NotFound(f"Agent {agent_id} not found")
        return dict(row)


class RoutingStatsController(Controller):
    path = "/routing"
    tags = ["routing"]
    guards = [SUPERVISION]

    @get("/stats", operation_id="getRoutingStats")
    async def stats(self, db: Db) -> StatsOut:
        """How often each classification and routing rule matched, and how agents
        corrected the classifier's categories: what to improve in the rules."""
        hits = await db.fetch("SELECT rule, hits FROM classification_hits ORDER BY hits DESC")
        corrections = await db.fetch(
            """SELECT from_category, to_category, count FROM classification_corrections
               ORDER BY count DESC"""
        )
        rules = await db.fetch("SELECT id, name, hits FROM routing_rules ORDER BY position, id")
        return StatsOut(
            classification_rule_hits=[dict(r) for r in hits],
            corrections=[dict(r) for r in corrections],
            routing_rule_hits=[dict(r) for r in rules],
        )


class AvailabilityController(Controller):
    path = "/agents/me"
    tags = ["routing"]

    @put("/availability", operation_id="setAvailability")
    async def set_availability(
        self, principal: Caller, db: Db, ctx: Ctx, data: JSONBody[AvailabilityIn]
    ) -> AvailabilityOut:
        """Online agents get tickets; going offline returns untouched new tickets to
        their group queues (where the group says so)."""
        async with db.transaction():
            await db.execute(
                "UPDATE agents SET availability = $2, updated_at = now() WHERE id = $1",
                principal.agent_id,
                data.availability,
            )
            returned: list[int] = []
            if data.availability == "offline":
                returned = await writer.unassign_on_offline(db, principal.agent_id)
        if data.availability == "online" or returned:
            await ctx.enqueue(ASSIGN_JOB, job_id=f"assign:{principal.agent_id}:{time.time():.3f}")
        return AvailabilityOut(principal.agent_id, data.availability, returned)


class EscalationController(Controller):
    path = "/tickets"
    tags = ["routing"]

    @post("/{ticket_id:int}/escalate", status_code=200, operation_id="escalateTicket")
    async def escalate(
        self, principal: Caller, db: Db, ctx: Ctx, ticket_id: PathId, data: JSONBody[EscalateIn]
    ) -> dict[str, Any]:
        """Hand the ticket to an internal group (default: the one routing named) with a
        reason; the SLA clocks keep running from the ticket's start."""
        async with db.transaction():
            group_id = await service.escalate(
                db, principal, ticket_id, data.group_id, data.reason, ctx.settings
            )
        return {"ticket_id": ticket_id, "group_id": group_id}
