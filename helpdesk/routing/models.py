"""What the routing endpoints take and return: routing and classification rules, group and
agent routing settings, availability, escalation and the rule statistics."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from helpdesk.routing.rules import RuleConditions

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
