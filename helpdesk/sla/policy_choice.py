"""Which policy a ticket's clocks are measured against, and on which calendar.

Policies are tried in order (`position`); the first whose conditions match the ticket's
facts applies (`policies.choose`, pure). A database without any stored policy uses the
built-in one (the promise of the settings alone); with policies but no match, no clock
runs. Each clock uses the policy's calendar when that target counts business time, else
24x7 in `sla.timezone` (`PolicyCalendar.calendar`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from helpdesk.config import SlaSettings
from helpdesk.sla import queries
from helpdesk.sla.calendar import BusinessCalendar
from helpdesk.sla.policies import Conditions, EscalationLevel, Policy, TicketFacts, choose


def _policy(row: asyncpg.Record) -> Policy:
    return Policy(
        id=row["id"],
        name=row["name"],
        position=row["position"],
        conditions=msgspec.convert(row["conditions"], Conditions),
        calendar_id=row["calendar_id"],
        first_response_minutes=row["first_response_minutes"],
        next_response_minutes=row["next_response_minutes"],
        resolution_minutes=row["resolution_minutes"],
        business_time=tuple(row["business_time"]),
        pause_statuses=tuple(row["pause_statuses"]),
        pausable=tuple(row["pausable"]),
        warn_at_percent=row["warn_at_percent"],
        escalations=tuple(msgspec.convert(row["escalations"], list[EscalationLevel])),
    )


def builtin_policy(sla: SlaSettings) -> Policy:
    """The promise alone (first response in calendar time), for a database without any
    policy (a fresh one before seeding, or the test suite's)."""
    return Policy(
        id=None,
        name="built-in",
        position=0,
        conditions=Conditions(),
        calendar_id=None,
        first_response_minutes=sla.first_response_minutes,
        next_response_minutes=0,
        resolution_minutes=0,
    )


@dataclass(frozen=True)
class PolicyCalendar:
    """A policy as the engine uses it: the policy and its calendar's stored spec."""

    policy: Policy
    calendar_spec: Any = None

    def calendar(self, sla: SlaSettings) -> BusinessCalendar:
        """The policy's business calendar; 24x7 in `sla.timezone` when it has none."""
        if self.calendar_spec is not None:
            return BusinessCalendar.shared(self.calendar_spec)
        return BusinessCalendar.twenty_four_seven(sla.timezone)


async def active_policies(conn: asyncpg.Connection) -> list[PolicyCalendar] | None:
    """Every active policy in order; None when the database holds no policy at all."""
    rows = await conn.fetch(queries.POLICIES_WITH_CALENDARS)
    if not rows:
        return None
    return [PolicyCalendar(_policy(r), r["calendar_spec"]) for r in rows if r["active"]]


async def current_policy(
    conn: asyncpg.Connection, ticket: Mapping[str, Any], sla: SlaSettings
) -> PolicyCalendar | None:
    """The policy the ticket was last given (`sla_policy_id`, or the built-in one), as it
    is stored now; None when it is gone or none applied."""
    if ticket["sla_policy_id"] is not None:
        row = await conn.fetchrow(queries.POLICY_WITH_CALENDAR, ticket["sla_policy_id"])
        if row is not None:
            return PolicyCalendar(_policy(row), row["calendar_spec"])
    if ticket["sla_policy_name"] == "built-in":
        return PolicyCalendar(builtin_policy(sla))
    return None


def customer_facts(customer: Mapping[str, Any] | None) -> dict[str, Any]:
    """The customer's attributes as policy conditions see them (a customers row)."""
    return {k: v for k, v in dict(customer or {}).items() if k != "id"}


def ticket_facts(ticket: Mapping[str, Any], customer: Mapping[str, Any] | None) -> TicketFacts:
    """What a policy sees of a stored ticket (a tickets row) and its customer."""
    return TicketFacts(
        priority=ticket["priority"],
        category=ticket["category"],
        channel=ticket["channel"],
        group_id=ticket["group_id"],
        customer=customer_facts(customer),
    )


def choose_policy(
    stored: list[PolicyCalendar] | None, facts: TicketFacts, sla: SlaSettings
) -> tuple[PolicyCalendar | None, str]:
    """The policy that applies (None when none matches) and why."""
    if stored is None:
        return PolicyCalendar(builtin_policy(sla)), "built-in default (no policies stored)"
    match = choose([s.policy for s in stored], facts)
    if match is None:
        return None, "no policy matched"
    return next(s for s in stored if s.policy is match[0]), match[1]


def policy_columns(chosen: PolicyCalendar | None, reason: str, at: datetime) -> dict[str, Any]:
    """The ticket's `sla_policy_*` columns for the policy chosen at `at`."""
    policy = chosen.policy if chosen else None
    return {
        "sla_policy_id": policy.id if policy else None,
        "sla_policy_name": policy.name if policy else None,
        "sla_policy_reason": reason,
        "sla_policy_at": at,
    }
