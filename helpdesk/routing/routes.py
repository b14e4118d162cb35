"""Routing endpoints: rules and classification rules (admins), group and agent routing
settings (admins), statistics (supervisors), availability (every agent) and escalation
of a first-line ticket to an internal group."""

from __future__ import annotations

import time
from typing import Any

import msgspec
from litestar import Controller, get, patch, post, put
from litestar.params import JSONBody
from litestar.status_codes import HTTP_201_CREATED

from helpdesk.routing import admin, service
from helpdesk.routing.jobs import ASSIGN_JOB
from helpdesk.routing.models import (
    AgentRouting,
    AvailabilityIn,
    AvailabilityOut,
    EscalateIn,
    GroupRouting,
    RuleIn,
    RuleOut,
    RuleUpdate,
    StatsOut,
)
from helpdesk.web.auth import ADMIN, SUPERVISION
from helpdesk.web.context import Caller, Ctx, Db
from helpdesk.web.query import PathId


class RoutingAdminController(Controller):
    path = "/routing"
    tags = ["routing"]
    guards = [ADMIN]

    @get("/rules", operation_id="listRoutingRules")
    async def list_rules(self, db: Db) -> list[RuleOut]:
        """Routing rules in the order they are tried (first match wins), with hit counts."""
        return await admin.list_rules(db)

    @post("/rules", status_code=HTTP_201_CREATED, operation_id="createRoutingRule")
    async def create_rule(self, db: Db, data: JSONBody[RuleIn]) -> RuleOut:
        return await admin.create_rule(db, data)

    @patch("/rules/{rule_id:int}", operation_id="updateRoutingRule")
    async def update_rule(self, db: Db, rule_id: PathId, data: JSONBody[RuleUpdate]) -> RuleOut:
        return await admin.update_rule(db, rule_id, data)

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
        return await admin.replace_classification_rules(db, data)

    @patch("/groups/{group_id:int}", operation_id="updateGroupRouting")
    async def update_group(
        self, db: Db, group_id: PathId, data: JSONBody[GroupRouting]
    ) -> dict[str, Any]:
        """Assignment strategy, first-line categories and what happens when agents leave."""
        return await admin.update_group(db, group_id, data)

    @patch("/agents/{agent_id:int}", operation_id="updateAgentRouting")
    async def update_agent(
        self, db: Db, agent_id: PathId, data: JSONBody[AgentRouting]
    ) -> dict[str, Any]:
        """Capacity and skills (empty lists: any language, channel, category)."""
        return await admin.update_agent(db, agent_id, data)


class RoutingStatsController(Controller):
    path = "/routing"
    tags = ["routing"]
    guards = [SUPERVISION]

    @get("/stats", operation_id="getRoutingStats")
    async def stats(self, db: Db) -> StatsOut:
        """How often each classification and routing rule matched, and how agents
        corrected the classifier's categories: what to improve in the rules."""
        return await admin.stats(db)


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
            returned = await service.set_availability(db, principal.agent_id, data.availability)
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
