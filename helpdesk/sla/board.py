"""What supervisors watch: breached and at-risk tickets, per-period metrics, SLA events.

Every query is limited by `ticket_scope`, so a partner's supervisor view shows only its
groups' tickets. Metrics are computed in SQL over the stored clock cycles: an *ended*
cycle is a met one (its `met_at` in the period); its counted time is `counted_seconds`;
breach rate = breached ended cycles / ended cycles.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Literal

import asyncpg

from helpdesk.agents.models import Principal
from helpdesk.errors import NotFound
from helpdesk.sla import queries
from helpdesk.sla.models import (
    BoardCount,
    BoardItem,
    BoardOut,
    ClockOut,
    MetricRow,
    MetricsOut,
    SlaEventOut,
    TicketSlaOut,
)
from helpdesk.tickets.events import SLA_EVENTS

SLA_EVENT_ACTIONS = SLA_EVENTS  # the one list lives in tickets/events.py
BOARD_LIMIT = 500


def _item(row: asyncpg.Record) -> BoardItem:
    return BoardItem(
        ticket_id=row["id"],
        number=row["number"],
        subject=row["subject"],
        clock=row["clock"],
        cycle=row["cycle"],
        due_at=row["due_at"],
        breached_at=row["breached_at"],
        group_id=row["group_id"],
        assignee_id=row["assignee_id"],
        channel=row["channel"],
        policy=row["sla_policy_name"],
        priority=row["priority"],
    )


def _counts(breached: list[BoardItem], at_risk: list[BoardItem], key: str) -> list[BoardCount]:
    def name(item: BoardItem) -> str:
        value = getattr(item, key)
        return "none" if value is None else str(value)

    hot = Counter(name(i) for i in breached)
    warm = Counter(name(i) for i in at_risk)
    return [
        BoardCount(key=k, breached=hot[k], at_risk=warm[k]) for k in sorted(set(hot) | set(warm))
    ]


async def board(conn: asyncpg.Connection, principal: Principal, window_minutes: int) -> BoardOut:
    """Running clocks already past due (breached now) and due within the window (at risk),
    most urgent first. Both read `next_sla_due_at` through its index first."""
    now: datetime = await conn.fetchval(queries.NOW)
    until = now + timedelta(minutes=window_minutes)
    sql, params = queries.board(principal, until, BOARD_LIMIT)
    rows = await conn.fetch(sql, *params)
    breached = [_item(r) for r in rows if r["due_at"] < now]
    at_risk = [_item(r) for r in rows if r["due_at"] >= now]
    return BoardOut(
        now=now,
        window_minutes=window_minutes,
        breached=breached,
        at_risk=at_risk,
        by_group=_counts(breached, at_risk, "group_id"),
        by_agent=_counts(breached, at_risk, "assignee_id"),
        by_channel=_counts(breached, at_risk, "channel"),
        by_policy=_counts(breached, at_risk, "policy"),
    )


async def metrics(
    conn: asyncpg.Connection,
    principal: Principal,
    since: datetime,
    until: datetime,
    period: Literal["hour", "day", "week", "month"],
    timezone: str,
) -> MetricsOut:
    """Per period (in `timezone`) and clock: ended cycles, breaches, breach rate and the
    p50/p90 of counted time."""
    sql, params = queries.metrics(principal, period, timezone, since, until)
    rows = await conn.fetch(sql, *params)
    return MetricsOut(
        period=period,
        since=since,
        until=until,
        rows=[
            MetricRow(
                period=r["period"],
                clock=r["clock"],
                ended=r["ended"],
                breached=r["breached"],
                breach_rate=r["breached"] / r["ended"] if r["ended"] else None,
                p50_seconds=r["p50"],
                p90_seconds=r["p90"],
            )
            for r in rows
        ],
    )


async def ticket_sla(
    conn: asyncpg.Connection, principal: Principal, ticket_id: int
) -> TicketSlaOut:
    sql, params = queries.ticket(principal, ticket_id)
    ticket = await conn.fetchrow(sql, *params)
    if ticket is None:
        raise NotFound(f"Ticket {ticket_id} not found")
    now: datetime = await conn.fetchval(queries.NOW)
    clocks = await conn.fetch(queries.TICKET_CLOCKS, ticket_id)
    fired = await conn.fetch(queries.TICKET_ESCALATIONS, ticket_id)
    sent = await conn.fetch(queries.TICKET_NOTICES, ticket_id)
    return TicketSlaOut(
        ticket_id=ticket_id,
        policy=ticket["sla_policy_name"],
        policy_reason=ticket["sla_policy_reason"],
        policy_chosen_at=ticket["sla_policy_at"],
        next_due_at=ticket["next_sla_due_at"],
        next_warn_at=ticket["next_sla_warn_at"],
        clocks=[
            ClockOut(
                clock=c["clock"],
                cycle=c["cycle"],
                target_minutes=c["target_minutes"],
                business_time=c["business_time"],
                started_at=c["started_at"],
                due_at=c["due_at"],
                warn_at=c["warn_at"],
                met_at=c["met_at"],
                breached=c["breached"],
                breached_at=c["breached_at"],
                paused=c["paused"],
                counted_seconds=c["counted_seconds"],
                seconds_left=(
                    (c["due_at"] - now).total_seconds()
                    if c["due_at"] is not None and c["met_at"] is None
                    else None
                ),
            )
            for c in clocks
        ],
        escalations=[
            {
                "clock": f["clock"],
                "cycle": f["cycle"],
                "level": f["level"],
                "fired_at": f["fired_at"].isoformat(),
                "actions": list(f["actions"]),
            }
            for f in fired
        ],
        notices=[
            {
                "channel": n["channel"],
                "recipient": n["recipient"],
                "status": n["status"],
                "attempts": n["attempts"],
                "error": n["last_error"],
                "sent_at": n["sent_at"].isoformat() if n["sent_at"] else None,
            }
            for n in sent
        ],
    )


async def events_after(
    conn: asyncpg.Connection, principal: Principal, after: int, limit: int = 100
) -> list[SlaEventOut]:
    """SLA events (warning, breach, escalation) after event id `after`, oldest first."""
    sql, params = queries.events_after(principal, after, list(SLA_EVENT_ACTIONS), limit)
    rows = await conn.fetch(sql, *params)
    return [
        SlaEventOut(
            id=r["id"],
            ticket_id=r["ticket_id"],
            kind=r["action"],
            at=r["created_at"],
            detail=dict(r["changes"]),
        )
        for r in rows
    ]
