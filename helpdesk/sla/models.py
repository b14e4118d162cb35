"""API shapes of the SLA domain."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from helpdesk.sla.clocks import ClockName
from helpdesk.sla.policies import Conditions, EscalationLevel

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
Minutes = Annotated[int, msgspec.Meta(ge=0, le=5_256_000)]
Percent = Annotated[int, msgspec.Meta(ge=1, le=99)]
PauseStatus = Literal["new", "open", "pending", "on_hold"]


class CalendarIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: Name
    spec: dict[str, Any]


class CalendarUpdate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: Name | None = None
    spec: dict[str, Any] | None = None


class CalendarOut(msgspec.Struct):
    id: int
    name: str
    spec: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class PolicyIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: Name
    position: int = 100
    active: bool = True
    conditions: Conditions = Conditions()
    calendar_id: int | None = None
    first_response_minutes: Minutes = 0
    next_response_minutes: Minutes = 0
    resolution_minutes: Minutes = 0
    business_time: list[ClockName] = []
    pause_statuses: list[PauseStatus] = msgspec.field(default_factory=lambda: ["pending"])
    pausable: list[ClockName] = msgspec.field(default_factory=lambda: ["resolution"])
    warn_at_percent: Percent = 75
    escalations: list[EscalationLevel] = []


class PolicyUpdate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Partial change; a change of targets re-targets the policy's open tickets."""

    name: Name | None = None
    position: int | None = None
    active: bool | None = None
    conditions: Conditions | None = None
    calendar_id: int | msgspec.UnsetType | None = msgspec.UNSET
    first_response_minutes: Minutes | None = None
    next_response_minutes: Minutes | None = None
    resolution_minutes: Minutes | None = None
    business_time: list[ClockName] | None = None
    pause_statuses: list[PauseStatus] | None = None
    pausable: list[ClockName] | None = None
    warn_at_percent: Percent | None = None
    escalations: list[EscalationLevel] | None = None


class PolicyOut(msgspec.Struct):
    id: int
    name: str
    position: int
    active: bool
    conditions: dict[str, Any]
    calendar_id: int | None
    first_response_minutes: int
    next_response_minutes: int
    resolution_minutes: int
    business_time: list[str]
    pause_statuses: list[str]
    pausable: list[str]
    warn_at_percent: int
    escalations: list[dict[str, Any]]
    created_at: datetime
    updated_at: datetime


class ClockOut(msgspec.Struct):
    clock: str
    cycle: int
    target_minutes: int
    business_time: bool
    started_at: datetime
    due_at: datetime | None
    warn_at: datetime | None
    met_at: datetime | None
    breached: bool
    breached_at: datetime | None
    paused: bool
    counted_seconds: float | None
    # Seconds until due_at (negative once overdue); None when stopped or met.
    seconds_left: float | None


class TicketSlaOut(msgspec.Struct):
    ticket_id: int
    policy: str | None
    policy_reason: str | None
    policy_chosen_at: datetime | None
    next_due_at: datetime | None
    next_warn_at: datetime | None
    clocks: list[ClockOut]
    escalations: list[dict[str, Any]]
    # Email and Slack messages of fired levels: sent, pending or failed with the reason.
    notices: list[dict[str, Any]]


class BoardItem(msgspec.Struct):
    ticket_id: int
    number: int
    subject: str
    clock: str
    cycle: int
    due_at: datetime | None
    breached_at: datetime | None
    group_id: int | None
    assignee_id: int | None
    channel: str
    policy: str | None
    priority: str


class BoardCount(msgspec.Struct):
    key: str
    breached: int
    at_risk: int


class BoardOut(msgspec.Struct):
    now: datetime
    window_minutes: int
    breached: list[BoardItem]
    at_risk: list[BoardItem]
    by_group: list[BoardCount]
    by_agent: list[BoardCount]
    by_channel: list[BoardCount]
    by_policy: list[BoardCount]


class MetricRow(msgspec.Struct):
    period: datetime
    clock: str
    ended: int
    breached: int
    breach_rate: float | None
    p50_seconds: float | None
    p90_seconds: float | None


class MetricsOut(msgspec.Struct):
    period: str
    since: datetime
    until: datetime
    rows: list[MetricRow]


class SlaEventOut(msgspec.Struct):
    id: int
    ticket_id: int
    kind: str
    at: datetime
    detail: dict[str, Any]
