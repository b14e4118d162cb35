"""SLA policies as data, and which one a ticket gets: pure, no I/O.

Policies are ordered; the first active one whose conditions all hold wins. A condition
lists the accepted values of one ticket field (`priority`, `category`, `channel`,
`group_id`) or of one customer attribute (`customer: {"lifecycle_stage": [...]}`); an
empty condition set is a catch-all. When nothing matches (a deployment that removed the
catch-all) the ticket has no SLA clocks, as `docs/sla.md` 1.7 says.

Escalation levels belong to a policy and a clock: `warn`, `breach`, or `breach+N` (N
minutes after the breach, counted in the clock's own time base), each with actions.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

import msgspec

from helpdesk.sla.clocks import ClockName, SlaPolicy

Action = Literal["notify_assignee", "notify_supervisors", "raise_priority", "reassign"]
LEVEL_PATTERN = r"^(warn|breach|breach\+[1-9][0-9]{0,5})$"
_LEVEL = re.compile(LEVEL_PATTERN)
PRIORITIES = ("low", "normal", "high", "urgent")


class EscalationAction(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    action: Action
    group_id: int | None = None  # reassign: the escalation group
    # notify_*: also by email to the agents' addresses, and/or to a Slack channel.
    email: bool = False
    slack_account: str | None = None
    slack_channel: str | None = None


class EscalationLevel(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    clock: ClockName
    level: Annotated[str, msgspec.Meta(pattern=LEVEL_PATTERN)]
    actions: list[EscalationAction] = []

    def __post_init__(self) -> None:
        for action in self.actions:
            if action.action == "reassign" and action.group_id is None:
                raise ValueError("a reassign action needs group_id")
            if (action.slack_account is None) != (action.slack_channel is None):
                raise ValueError("a Slack notice needs both slack_account and slack_channel")


class Conditions(msgspec.Struct, forbid_unknown_fields=True, frozen=True, omit_defaults=True):
    priority: list[str] | None = None
    category: list[str] | None = None
    channel: list[str] | None = None
    group_id: list[int] | None = None
    customer: dict[str, list[Any]] | None = None


class Policy(msgspec.Struct, frozen=True, kw_only=True):
    """A stored policy as the engine uses it."""

    id: int | None
    name: str
    position: int
    conditions: Conditions
    calendar_id: int | None
    first_response_minutes: int
    next_response_minutes: int
    resolution_minutes: int
    business_time: tuple[str, ...] = ()
    pause_statuses: tuple[str, ...] = ("pending",)
    pausable: tuple[str, ...] = ("resolution",)
    warn_at_percent: int = 75
    escalations: tuple[EscalationLevel, ...] = ()

    def clock_policy(self, *, business_hours: bool) -> SlaPolicy:
        """The pure engine's policy, counting every target on one time base."""
        return msgspec.convert(
            {
                "first_response_minutes": self.first_response_minutes,
                "next_response_minutes": self.next_response_minutes,
                "resolution_minutes": self.resolution_minutes,
                "business_hours": business_hours,
                "pause_statuses": list(self.pause_statuses),
                "pausable": list(self.pausable),
                "warn_at_percent": self.warn_at_percent,
            },
            SlaPolicy,
        )

    def counts_business_time(self, clock: str) -> bool:
        return clock in self.business_time and self.calendar_id is not None

    def target_minutes(self, clock: str) -> int:
        minutes: int = getattr(self, f"{clock}_minutes")
        return minutes

    def levels(self, clock: str) -> list[EscalationLevel]:
        return [level for level in self.escalations if level.clock == clock]


class TicketFacts(msgspec.Struct, frozen=True, kw_only=True):
    """What policy conditions may look at."""

    priority: str
    category: str | None
    channel: str
    group_id: int | None
    customer: dict[str, Any]


def _holds(accepted: list[Any] | None, value: Any) -> bool:
    if accepted is None:
        return True
    if isinstance(value, list | tuple | set):  # e.g. customer tags: any of them
        return any(item in accepted for item in value)
    return value in accepted


def matches(conditions: Conditions, facts: TicketFacts) -> bool:
    if not (
        _holds(conditions.priority, facts.priority)
        and _holds(conditions.category, facts.category)
        and _holds(conditions.channel, facts.channel)
        and _holds(conditions.group_id, facts.group_id)
    ):
        return False
    for attribute, accepted in (conditions.customer or {}).items():
        if attribute not in facts.customer or not _holds(accepted, facts.customer[attribute]):
            return False  # an attribute the customer lacks never matches
    return True


def describe(conditions: Conditions) -> str:
    """The matched rule in words, recorded on the ticket as the reason."""
    parts = [
        f"{name} in {values}"
        for name in ("priority", "category", "channel", "group_id")
        if (values := getattr(conditions, name)) is not None
    ]
    parts += [
        f"customer.{name} in {values}" for name, values in (conditions.customer or {}).items()
    ]
    return " and ".join(parts) if parts else "catch-all"


def choose(policies: list[Policy], facts: TicketFacts) -> tuple[Policy, str] | None:
    """The first matching policy (in position order) and why it matched."""
    for policy in sorted(policies, key=lambda p: (p.position, p.id or 0)):
        if matches(policy.conditions, facts):
            return policy, f"policy '{policy.name}': {describe(policy.conditions)}"
    return None


def level_delay(level: str) -> timedelta | None:
    """How long after the breach a `breach+N` level fires; None for warn and breach."""
    if not _LEVEL.fullmatch(level) or "+" not in level:
        return None
    return timedelta(minutes=int(level.split("+", 1)[1]))


def raised(priority: str) -> str:
    """One step more urgent (urgent stays urgent)."""
    index = PRIORITIES.index(priority) if priority in PRIORITIES else 1
    return PRIORITIES[min(index + 1, len(PRIORITIES) - 1)]
