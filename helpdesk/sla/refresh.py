"""The SLA engine on the database: a ticket's events in, its clocks out.

Everything that moves a clock appends an `sla_events` row (`recording.record`) in the
same transaction as the change, then `refresh` replays the ticket's events through the
pure engine (`replay.compute`) and stores each clock, the ticket's `next_sla_due_at` /
`next_sla_warn_at` and the next instant an escalation level is due
(`next_sla_check_at`, what the sweep and the precise jobs read). A caller that writes the
ticket anyway (routing) splits it: `plan_refresh` computes from the locked row, the
caller's UPDATE carries `RefreshPlan.columns`, `apply_refresh` writes the rest.

Sticky breaches, kept verdicts and retargeting are the replay's rules (`replay`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from helpdesk.config import SlaSettings
from helpdesk.sla import queries, store
from helpdesk.sla.calendar import InvalidCalendar
from helpdesk.sla.clocks import InvalidEvents
from helpdesk.sla.policy_choice import (
    PolicyCalendar,
    active_policies,
    choose_policy,
    current_policy,
    policy_columns,
    ticket_facts,
)
from helpdesk.sla.replay import NOTHING_DUE, ClockKey, Due, compute
from helpdesk.sla.start import START_COLUMNS
from helpdesk.tickets import events, writer

log = logging.getLogger(__name__)

# The ticket columns a refresh may write (names are never taken from input).
_REFRESH_COLUMNS = frozenset(START_COLUMNS)


@dataclass
class Refreshed:
    ticket_id: int
    next_check_at: datetime | None
    due: list[Due]  # levels due now (at <= now) and not fired yet


@dataclass
class RefreshPlan:
    """What one refresh writes, computed from the locked ticket as the caller holds it.
    A caller that updates the ticket anyway (routing) puts `columns` in its own UPDATE:
    every row version of a ticket costs an entry in each of its indexes."""

    ticket_id: int
    columns: dict[str, Any] = field(default_factory=dict)  # ticket columns that move
    policy_changed: dict[str, Any] | None = None  # the `sla_policy_changed` event
    met: list[tuple[ClockKey, dict[str, Any]]] = field(default_factory=list)
    upsert: list[tuple[ClockKey, dict[str, Any]]] = field(default_factory=list)
    gone: list[ClockKey] = field(default_factory=list)
    clear_running: bool = False  # no policy applies any more
    next_check: datetime | None = None
    due: list[Due] = field(default_factory=list)  # levels due now, not fired yet
    due_soon: bool = False
    now: datetime | None = None


def _moved(ticket: Mapping[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    assert _REFRESH_COLUMNS.issuperset(values)
    return {name: value for name, value in values.items() if ticket[name] != value}


async def plan_refresh(
    conn: asyncpg.Connection,
    ticket: Mapping[str, Any],
    sla: SlaSettings,
    *,
    now: datetime,
    reselect: bool = False,
    customer: Mapping[str, Any] | None = None,
) -> RefreshPlan:
    """Recompute the clocks of the locked `ticket` (a row with `sla_fired`, possibly with
    the caller's pending changes applied); reads policies and history, writes nothing.
    `customer` spares reading the ticket's customer when the caller holds it."""
    fired = {(clock, cycle, level) for clock, cycle, level in ticket["sla_fired"]}
    plan = RefreshPlan(ticket["id"], now=now)
    new_policy: dict[str, Any] = {}
    chosen: PolicyCalendar | None
    if reselect or ticket["sla_policy_at"] is None:
        if customer is None and ticket["customer_id"] is not None:
            customer = await conn.fetchrow(queries.CUSTOMER, ticket["customer_id"])
        facts = ticket_facts(ticket, customer)
        chosen, reason = choose_policy(await active_policies(conn), facts, sla)
        columns = policy_columns(chosen, reason, now)
        if ticket["sla_policy_at"] is None or (
            columns["sla_policy_id"] != ticket["sla_policy_id"]
            or columns["sla_policy_name"] != ticket["sla_policy_name"]
        ):
            new_policy = columns
            if ticket["sla_policy_at"] is not None:
                plan.policy_changed = {
                    "from": ticket["sla_policy_name"],
                    "to": columns["sla_policy_name"],
                    "reason": reason,
                }
    else:
        chosen = await current_policy(conn, ticket, sla)
    if chosen is None:
        plan.columns = _moved(ticket, new_policy | NOTHING_DUE)
        plan.clear_running = True
        return plan
    history = await store.history(conn, ticket)
    policy_at = new_policy.get("sla_policy_at", ticket["sla_policy_at"])
    retargeted = policy_at if policy_at > ticket["created_at"] else None
    try:
        computed = compute(
            chosen, history.events, history.clocks, fired, sla, now=now, retargeted=retargeted
        )
    except (InvalidEvents, InvalidCalendar, ValueError) as error:
        # Never fail the change that triggered this: keep the last stored clocks.
        log.warning("sla refresh skipped", extra={"ticket_id": ticket["id"], "error": str(error)})
        plan.columns = _moved(ticket, new_policy)
        plan.next_check = ticket["next_sla_check_at"]
        return plan
    stored, final = history.clocks, computed.final
    plan.met = [
        (key, values)
        for key, values in final.items()
        if values["met_at"] is not None and (key not in stored or stored[key]["met_at"] is None)
    ]
    plan.upsert = [
        (key, values)
        for key, values in final.items()
        if key not in stored or any(stored[key][name] != v for name, v in values.items())
    ]
    plan.gone = [key for key in stored if key not in final]  # e.g. a target dropped
    plan.columns = _moved(ticket, new_policy | computed.summary)
    plan.next_check = computed.summary["next_sla_check_at"]
    plan.due = [d for d in computed.pending if d.at <= now]
    plan.due_soon = store.due_soon(plan.next_check, now, sla)
    return plan


async def apply_refresh(
    conn: asyncpg.Connection,
    ticket: Mapping[str, Any],
    plan: RefreshPlan,
    *,
    write_ticket: bool = True,
) -> Refreshed:
    """Write `plan`: events, clocks and (unless the caller writes `plan.columns` in its
    own UPDATE) the ticket's SLA columns."""
    ticket_id = plan.ticket_id
    if plan.policy_changed is not None:
        await events.record(conn, ticket_id, "sla_policy_changed", plan.policy_changed)
    for key, values in plan.met:  # a live SLA event for supervisors, like breaches
        await events.record(
            conn,
            ticket_id,
            "sla_met",
            {
                "clock": key[0],
                "cycle": key[1],
                "met_at": values["met_at"].isoformat(),
                "breached": values["breached"],
                "group_id": ticket["group_id"],
                "assignee_id": ticket["assignee_id"],
                "channel": ticket["channel"],
            },
        )
    if plan.upsert:
        assert plan.now is not None
        await store.upsert_clocks(conn, ticket_id, plan.upsert, plan.now)
    if plan.gone:
        await conn.execute(
            queries.DELETE_CLOCKS,
            ticket_id,
            [clock for clock, _ in plan.gone],
            [cycle for _, cycle in plan.gone],
        )
    if plan.clear_running:  # met and breached clocks stay
        await conn.execute(queries.DELETE_RUNNING_CLOCKS, ticket_id)
    if write_ticket and plan.columns:  # clock upkeep: no version bump (see the writer)
        await writer.write_sla_columns(conn, ticket_id, plan.columns)
    if plan.due_soon:
        await store.notify_due_soon(conn, ticket_id)
    return Refreshed(ticket_id, plan.next_check, plan.due)


async def refresh(
    conn: asyncpg.Connection,
    ticket_id: int,
    sla: SlaSettings,
    *,
    now: datetime | None = None,
    reselect: bool = False,
    locked: Mapping[str, Any] | None = None,
) -> Refreshed:
    """Recompute and store the ticket's clocks (call inside the changing transaction).
    `locked`: the ticket's row with `sla_fired` when the caller has just locked it
    (`UPDATE tickets t ... RETURNING t.*, ` + `queries.SLA_FIRED`), so it is not read
    again. A level fired while that UPDATE waited for the lock may be missing from
    `sla_fired`; firing is idempotent, so the worst case is one early re-check."""
    now = now or await conn.fetchval(queries.NOW)
    assert now is not None
    ticket = locked if locked is not None else await conn.fetchrow(queries.LOCKED_TICKET, ticket_id)
    if ticket is None:
        return Refreshed(ticket_id, None, [])
    plan = await plan_refresh(conn, ticket, sla, now=now, reselect=reselect)
    return await apply_refresh(conn, ticket, plan)
