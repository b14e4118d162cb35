"""Warnings, breaches and escalation levels: each fired at most once per clock cycle.

A level's row in `sla_escalations` is inserted before its actions run, in the same
transaction, so two workers checking one ticket cannot both fire it, and a worker that
dies mid-way rolls the row back with the actions (the next check fires it again). The
level fires only if its clock is still running and unmet at that moment (`refresh` lists
only those). Every fired level is a `ticket_events` row (`sla_warning`, `sla_breached`,
`sla_escalated`): the event log, and what the supervisors' live stream reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from helpdesk.config import SlaSettings
from helpdesk.customers import relationship
from helpdesk.sla import notices, queries
from helpdesk.sla.policies import EscalationAction, raised
from helpdesk.sla.refresh import refresh
from helpdesk.tickets import events, writer
from helpdesk.tickets.events import TicketEvent

# The ticket events of fired levels (names from `tickets.events.SLA_EVENTS`); any other
# level is `sla_escalated`.
EVENT_ACTIONS: dict[str, TicketEvent] = {"warn": "sla_warning", "breach": "sla_breached"}
_LABELS = {
    "first_response": "first response",
    "next_response": "next response",
    "resolution": "resolution",
}


@dataclass
class Fired:
    ticket_id: int
    clock: str
    cycle: int
    level: str
    actions: list[str]


def _event_action(level: str) -> TicketEvent:
    return EVENT_ACTIONS.get(level, "sla_escalated")


async def _supervisors(conn: asyncpg.Connection, group_id: int | None) -> list[int]:
    """Supervisors of the ticket's group, or every supervisor when it has none."""
    if group_id is None:
        rows = await conn.fetch(queries.SUPERVISORS)
    else:
        rows = await conn.fetch(queries.GROUP_SUPERVISORS, group_id)
    return [r["id"] for r in rows]


async def _notify(
    conn: asyncpg.Connection, agent_ids: list[int], ticket_id: int, kind: str, body: str
) -> None:
    for agent_id in agent_ids:
        await conn.execute(queries.NOTIFY_AGENT, agent_id, ticket_id, kind, body)


async def _act(
    conn: asyncpg.Connection,
    ticket: asyncpg.Record,
    action: EscalationAction,
    kind: str,
    text: str,
) -> tuple[str, bool]:
    """Run one action; returns what was done and whether the policy must be re-chosen."""
    if action.action in ("notify_assignee", "notify_supervisors"):
        if action.action == "notify_assignee":
            targets = [] if ticket["assignee_id"] is None else [ticket["assignee_id"]]
            who = f"agent {targets[0]}" if targets else "no assignee"
        else:
            targets = await _supervisors(conn, ticket["group_id"])
            who = f"supervisors {targets}"
        await _notify(conn, targets, ticket["id"], kind, text)
        if action.email:
            for address in await conn.fetch(queries.AGENT_EMAILS, targets):
                await notices.queue(conn, ticket["id"], "email", address["email"], text)
        if action.slack_account and action.slack_channel:
            recipient = f"{action.slack_account}:{action.slack_channel}"
            await notices.queue(conn, ticket["id"], "slack", recipient, text)
            who += f", Slack {action.slack_channel}"
        return f"notified {who}" + (" by email" if action.email and targets else ""), False
    if action.action == "raise_priority":
        new = raised(ticket["priority"])
        if new == ticket["priority"]:
            return f"priority already {new}", False
        await writer.update(
            conn,
            ticket["id"],
            {"priority": new},
            "updated",
            {"priority": {"from": ticket["priority"], "to": new}},
            reason="SLA escalation",
        )
        return f"priority {ticket['priority']} -> {new}", True
    # reassign
    await writer.update(
        conn,
        ticket["id"],
        {"group_id": action.group_id, "assignee_id": None},
        "updated",
        {
            "group_id": {"from": ticket["group_id"], "to": action.group_id},
            "assignee_id": {"from": ticket["assignee_id"], "to": None},
        },
        reason="SLA escalation",
    )
    return f"reassigned to group {action.group_id}", True


async def check(
    conn: asyncpg.Connection, ticket_id: int, sla: SlaSettings, *, now: datetime | None = None
) -> list[Fired]:
    """Refresh the ticket's clocks and fire every level that is due; call in a transaction."""
    refreshed = await refresh(conn, ticket_id, sla, now=now)
    fired: list[Fired] = []
    reselect = False
    for due in refreshed.due:
        inserted = await conn.fetchval(
            queries.FIRE_LEVEL, ticket_id, due.clock, due.cycle, due.level
        )
        if not inserted:
            continue  # another worker fired it
        ticket = await conn.fetchrow(queries.TICKET_ROW, ticket_id)
        label = _LABELS.get(due.clock, due.clock)
        moment = "is due soon" if due.level == "warn" else "was missed"
        if due.level not in EVENT_ACTIONS:
            moment = f"was missed ({due.level})"
        due_text = f"{due.at:%Y-%m-%d %H:%M} UTC"
        text = f"Ticket #{ticket['number']}: the {label} target {moment} (due {due_text})"
        done: list[str] = []
        for action in due.actions:
            outcome, rechoose = await _act(conn, ticket, action, _event_action(due.level), text)
            done.append(outcome)
            reselect = reselect or rechoose
            ticket = await conn.fetchrow(queries.TICKET_ROW, ticket_id)
        await conn.execute(queries.LEVEL_ACTIONS, ticket_id, due.clock, due.cycle, due.level, done)
        await events.record(
            conn,
            ticket_id,
            _event_action(due.level),
            {
                "clock": due.clock,
                "cycle": due.cycle,
                "level": due.level,
                "due_at": due.at.isoformat(),
                "actions": done,
                "group_id": ticket["group_id"],
                "assignee_id": ticket["assignee_id"],
                "channel": ticket["channel"],
                "policy": ticket["sla_policy_name"],
            },
        )
        if due.level == "breach":  # the customer had a bad experience (issue 7)
            await relationship.record_bad_experience(
                conn, ticket_id, "sla_breach", f"{label} target missed"
            )
        fired.append(Fired(ticket_id, due.clock, due.cycle, due.level, done))
    if fired:
        # Fired levels drop out of the pending ones; a raised priority re-chooses the
        # policy (levels already fired stay fired).
        await refresh(conn, ticket_id, sla, reselect=reselect)
    return fired
