"""A new ticket's SLA, computed before its row exists.

`plan_start` chooses the policy and computes the first clocks; the ticket's INSERT takes
`StartPlan.columns` (one row version, not an insert and an update: `tickets.writer.open_ticket`
writes them with the row), then `start` stores the `created` event and the clocks in the
same transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import asyncpg

from helpdesk.config import SlaSettings
from helpdesk.sla import store
from helpdesk.sla.calendar import InvalidCalendar
from helpdesk.sla.clocks import InvalidEvents, SlaEvent
from helpdesk.sla.policies import TicketFacts
from helpdesk.sla.policy_choice import (
    active_policies,
    choose_policy,
    customer_facts,
    policy_columns,
)
from helpdesk.sla.replay import NOTHING_DUE, ClockKey, compute

log = logging.getLogger(__name__)

# The ticket columns the SLA engine writes (names are never taken from input), in the
# order a new ticket's INSERT lists them (`StartPlan.columns`).
START_COLUMNS = (
    "sla_policy_id",
    "sla_policy_name",
    "sla_policy_reason",
    "sla_policy_at",
    "next_sla_due_at",
    "next_sla_warn_at",
    "next_sla_check_at",
    "first_response_due_at",
)


def new_ticket_facts(channel: str, customer: Mapping[str, Any] | None) -> TicketFacts:
    """What a policy sees of a ticket being created from a customer's message."""
    return TicketFacts(
        priority="normal",  # the column's default
        category=None,
        channel=channel,
        group_id=None,
        customer=customer_facts(customer),
    )


@dataclass(frozen=True)
class StartPlan:
    """A new ticket's SLA, computed before its row exists: `columns` go into the ticket's
    INSERT (one row version, not an insert and an update), then `start` stores the
    `created` event and the first clocks."""

    columns: dict[str, Any]  # every column of START_COLUMNS
    clocks: list[tuple[ClockKey, dict[str, Any]]]
    due_soon: bool
    origin: Literal["customer", "agent", "notice"] | None = None  # the `created` event's
    status: Literal["new", "open"] | None = None  # the `created` event's (None: new)

    def values(self) -> list[Any]:
        """The columns' values in `START_COLUMNS` order."""
        return [self.columns[name] for name in START_COLUMNS]


async def plan_start(
    conn: asyncpg.Connection,
    facts: TicketFacts,
    sla: SlaSettings,
    *,
    now: datetime,
    origin: Literal["customer", "agent", "notice"] | None = None,
    status: Literal["new", "open"] | None = None,
) -> StartPlan:
    """Choose the policy of a ticket about to be created at `now` and compute its first
    clocks (its history is the one `created` event; nothing has fired). `origin="notice"`:
    a channel notice nobody wrote opens it, so no first response is owed; `"agent"`: an
    agent opened it (an outbound call). `status`: the new row's (open when assigned)."""
    chosen, reason = choose_policy(await active_policies(conn), facts, sla)
    columns = policy_columns(chosen, reason, now) | NOTHING_DUE
    if chosen is None:
        return StartPlan(columns, [], False, origin, status)
    try:
        computed = compute(
            chosen,
            [SlaEvent(at=now, type="created", status=status, origin=origin)],
            {},
            set(),
            sla,
            now=now,
            retargeted=None,
        )
    except (InvalidEvents, InvalidCalendar, ValueError) as error:
        log.warning("sla start skipped", extra={"error": str(error)})
        return StartPlan(columns, [], False, origin, status)
    next_check = computed.summary["next_sla_check_at"]
    return StartPlan(
        columns | computed.summary,
        list(computed.final.items()),
        store.due_soon(next_check, now, sla),
        origin,
        status,
    )


async def start(
    conn: asyncpg.Connection, ticket_id: int, plan: StartPlan, *, now: datetime
) -> None:
    """Store the `created` event and first clocks of a ticket inserted in this
    transaction, at `now`, with `plan.columns`: one statement."""
    await store.upsert_clocks(
        conn,
        ticket_id,
        plan.clocks,
        now,
        created_event=True,
        origin=plan.origin,
        status=plan.status,
    )
    if plan.due_soon:
        await store.notify_due_soon(conn, ticket_id)
