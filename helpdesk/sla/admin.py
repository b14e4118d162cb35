"""Calendars and policies: validated before they are stored, seeded from the settings once.

An edit takes effect on the tickets that use it without rewriting history: the affected
open tickets get `sla_policy_at = now` (a breach the new settings would date earlier is
dated at the edit, never back-dated; breaches already stored stay) and are due for an
immediate check, which the sweep picks up in batches.
Known simplification (documented in the README): after a calendar edit the clocks are
recomputed on the new calendar from their start, not only from the edit instant.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec

from helpdesk.agents.models import Principal
from helpdesk.audit import service as audit
from helpdesk.config import SlaSettings
from helpdesk.errors import Conflict, InvalidInput, NotFound
from helpdesk.sla import queries
from helpdesk.sla.calendar import BusinessCalendar, InvalidCalendar
from helpdesk.sla.models import (
    CalendarIn,
    CalendarOut,
    CalendarUpdate,
    PolicyIn,
    PolicyOut,
    PolicyUpdate,
)
from helpdesk.tickets import writer

log = logging.getLogger(__name__)

_POLICY_FIELDS = (
    "name",
    "position",
    "active",
    "conditions",
    "calendar_id",
    "first_response_minutes",
    "next_response_minutes",
    "resolution_minutes",
    "business_time",
    "pause_statuses",
    "pausable",
    "warn_at_percent",
    "escalations",
)
# Changing these changes what the open tickets' clocks are measured against.
_TARGET_FIELDS = frozenset(_POLICY_FIELDS) - {"name", "position", "active", "conditions"}


def check_calendar(spec: dict[str, Any]) -> None:
    """400 with the calendar's own message when it is invalid or never opens."""
    try:
        calendar = BusinessCalendar.parse(spec)
        calendar.check_open_within(datetime.now(UTC))
    except (InvalidCalendar, ValueError, msgspec.ValidationError) as error:
        raise InvalidInput(f"Invalid calendar: {error}", field="spec") from None


def _calendar_out(row: asyncpg.Record) -> CalendarOut:
    return CalendarOut(
        id=row["id"],
        name=row["name"],
        spec=dict(row["spec"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _policy_out(row: asyncpg.Record) -> PolicyOut:
    return PolicyOut(
        id=row["id"],
        name=row["name"],
        position=row["position"],
        active=row["active"],
        conditions=dict(row["conditions"]),
        calendar_id=row["calendar_id"],
        first_response_minutes=row["first_response_minutes"],
        next_response_minutes=row["next_response_minutes"],
        resolution_minutes=row["resolution_minutes"],
        business_time=list(row["business_time"]),
        pause_statuses=list(row["pause_statuses"]),
        pausable=list(row["pausable"]),
        warn_at_percent=row["warn_at_percent"],
        escalations=list(row["escalations"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


async def list_calendars(conn: asyncpg.Connection) -> list[CalendarOut]:
    return [_calendar_out(r) for r in await conn.fetch(queries.CALENDARS)]


async def create_calendar(
    conn: asyncpg.Connection, data: CalendarIn, principal: Principal | None
) -> CalendarOut:
    check_calendar(data.spec)
    row = await conn.fetchrow(queries.CREATE_CALENDAR, data.name, data.spec)
    if row is None:
        raise Conflict(f"A calendar named '{data.name}' exists")
    if principal is not None:
        await audit.record(
            conn,
            action="sla.calendar.create",
            outcome="allowed",
            actor=principal,
            object_type="sla_calendar",
            object_id=row["id"],
        )
    return _calendar_out(row)


async def update_calendar(
    conn: asyncpg.Connection, calendar_id: int, data: CalendarUpdate, principal: Principal
) -> CalendarOut:
    row = await conn.fetchrow(queries.LOCK_CALENDAR, calendar_id)
    if row is None:
        raise NotFound(f"Calendar {calendar_id} not found")
    if data.spec is not None:
        check_calendar(data.spec)
    updated = await conn.fetchrow(queries.UPDATE_CALENDAR, calendar_id, data.name, data.spec)
    if data.spec is not None:
        await writer.retarget_sla(conn, calendar_id=calendar_id)
    await audit.record(
        conn,
        action="sla.calendar.update",
        outcome="allowed",
        actor=principal,
        object_type="sla_calendar",
        object_id=calendar_id,
        detail={"fields": [n for n in ("name", "spec") if getattr(data, n) is not None]},
    )
    return _calendar_out(updated)


async def _check_policy_refs(
    conn: asyncpg.Connection, calendar_id: int | None, business_time: Sequence[str]
) -> None:
    if calendar_id is not None:
        if await conn.fetchval(queries.CALENDAR_EXISTS, calendar_id) is None:
            raise InvalidInput(f"Calendar {calendar_id} does not exist", field="calendar_id")
    elif business_time:
        raise InvalidInput(
            "Business-time targets need a calendar (calendar_id)", field="business_time"
        )


async def list_policies(conn: asyncpg.Connection) -> list[PolicyOut]:
    rows = await conn.fetch(queries.POLICIES)
    return [_policy_out(r) for r in rows]


def _values(data: PolicyIn) -> dict[str, Any]:
    values = {name: getattr(data, name) for name in _POLICY_FIELDS}
    values["conditions"] = msgspec.to_builtins(data.conditions)
    values["escalations"] = msgspec.to_builtins(data.escalations)
    return values


async def create_policy(
    conn: asyncpg.Connection, data: PolicyIn, principal: Principal | None
) -> PolicyOut:
    await _check_policy_refs(conn, data.calendar_id, data.business_time)
    sql, params = queries.create_policy(_values(data))
    row = await conn.fetchrow(sql, *params)
    if row is None:
        raise Conflict(f"A policy named '{data.name}' exists")
    if principal is not None:
        await audit.record(
            conn,
            action="sla.policy.create",
            outcome="allowed",
            actor=principal,
            object_type="sla_policy",
            object_id=row["id"],
        )
    return _policy_out(row)


async def update_policy(
    conn: asyncpg.Connection, policy_id: int, data: PolicyUpdate, principal: Principal
) -> PolicyOut:
    row = await conn.fetchrow(queries.LOCK_POLICY, policy_id)
    if row is None:
        raise NotFound(f"Policy {policy_id} not found")
    current = _policy_out(row)
    merged = msgspec.to_builtins(current)
    for name in _POLICY_FIELDS:
        value = getattr(data, name)
        if value is msgspec.UNSET or (value is None and name != "calendar_id"):
            continue  # not given (calendar_id: null removes the calendar)
        merged[name] = msgspec.to_builtins(value)
    checked = msgspec.convert({k: merged[k] for k in _POLICY_FIELDS}, PolicyIn)
    await _check_policy_refs(conn, checked.calendar_id, checked.business_time)
    sql, params = queries.update_policy(policy_id, _values(checked))
    updated = await conn.fetchrow(sql, *params)
    changed = [n for n in _POLICY_FIELDS if merged[n] != msgspec.to_builtins(current)[n]]
    if set(changed) & _TARGET_FIELDS:
        await writer.retarget_sla(conn, policy_id=policy_id)
    # Conditions, order and activity apply to tickets when their own condition fields
    # change, and to new tickets at once (docs/sla.md 1.7), not retroactively.
    await audit.record(
        conn,
        action="sla.policy.update",
        outcome="allowed",
        actor=principal,
        object_type="sla_policy",
        object_id=policy_id,
        detail={"fields": changed},
    )
    return _policy_out(updated)


async def seed_defaults(conn: asyncpg.Connection, sla: SlaSettings) -> bool:
    """Store the calendars and policies of the settings when the database holds no policy;
    False when there were policies already (admins own them from then on)."""
    async with conn.transaction():
        await conn.execute(queries.LOCK_POLICIES)
        if await conn.fetchval(queries.COUNT_POLICIES):
            return False
        names: dict[str, int] = {}
        for seed in sla.calendars:
            existing = await conn.fetchval(queries.CALENDAR_ID, seed.name)
            if existing is None:
                created = await create_calendar(
                    conn, CalendarIn(name=seed.name, spec=seed.spec), None
                )
                existing = created.id
            names[seed.name] = existing
        for position, policy in enumerate(sla.policies, start=1):
            raw = msgspec.to_builtins(policy)
            calendar = raw.pop("calendar")
            if calendar is not None and calendar not in names:
                raise InvalidInput(f"sla.policies: unknown calendar {calendar!r}")
            raw["calendar_id"] = names.get(calendar) if calendar else None
            raw["position"] = position * 10
            await create_policy(conn, msgspec.convert(raw, PolicyIn), None)
        if sla.policies:
            log.info("sla policies seeded", extra={"count": len(sla.policies)})
    return bool(sla.policies)
