"""SLA endpoints: calendars and policies (admins), the supervisors' board, metrics and live
event stream, and one ticket's clocks (anyone who may see the ticket)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import asyncpg
import msgspec
from litestar import Controller, Request, get, patch, post
from litestar.params import FromQuery, JSONBody, QueryParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage
from litestar.status_codes import HTTP_201_CREATED

from helpdesk.agents.models import Principal
from helpdesk.errors import InvalidInput
from helpdesk.sla import admin, board
from helpdesk.sla.models import (
    BoardOut,
    CalendarIn,
    CalendarOut,
    CalendarUpdate,
    MetricsOut,
    PolicyIn,
    PolicyOut,
    PolicyUpdate,
    TicketSlaOut,
)
from helpdesk.web.auth import ADMIN, SUPERVISION
from helpdesk.web.context import Caller, Ctx, Db
from helpdesk.web.query import MAX_ID, PathId, reject_unknown_params

STREAM_SECONDS = 300.0  # a stream ends after this; the client reconnects with Last-Event-ID
POLL_SECONDS = 1.0
KEEPALIVE_SECONDS = 15.0
MAX_METRICS_DAYS = 366


class SlaAdminController(Controller):
    path = "/sla"
    tags = ["sla"]
    guards = [ADMIN]

    @get("/calendars", operation_id="listCalendars")
    async def list_calendars(self, db: Db) -> list[CalendarOut]:
        return await admin.list_calendars(db)

    @post("/calendars", status_code=HTTP_201_CREATED, operation_id="createCalendar")
    async def create_calendar(
        self, principal: Caller, db: Db, data: JSONBody[CalendarIn]
    ) -> CalendarOut:
        async with db.transaction():
            return await admin.create_calendar(db, data, principal)

    @patch("/calendars/{calendar_id:int}", operation_id="updateCalendar")
    async def update_calendar(
        self, principal: Caller, db: Db, calendar_id: PathId, data: JSONBody[CalendarUpdate]
    ) -> CalendarOut:
        async with db.transaction():
            return await admin.update_calendar(db, calendar_id, data, principal)

    @get("/policies", operation_id="listPolicies")
    async def list_policies(self, db: Db) -> list[PolicyOut]:
        """Every policy in the order they are tried; the first match wins."""
        return await admin.list_policies(db)

    @post("/policies", status_code=HTTP_201_CREATED, operation_id="createPolicy")
    async def create_policy(self, principal: Caller, db: Db, data: JSONBody[PolicyIn]) -> PolicyOut:
        async with db.transaction():
            return await admin.create_policy(db, data, principal)

    @patch("/policies/{policy_id:int}", operation_id="updatePolicy")
    async def update_policy(
        self, principal: Caller, db: Db, policy_id: PathId, data: JSONBody[PolicyUpdate]
    ) -> PolicyOut:
        """A change of targets, calendar or pauses re-targets the policy's open tickets."""
        async with db.transaction():
            return await admin.update_policy(db, policy_id, data, principal)


class SlaBoardController(Controller):
    path = "/sla"
    tags = ["sla"]
    guards = [SUPERVISION]

    @get("/board", operation_id="getSlaBoard")
    async def read_board(
        self,
        request: Request[Principal, Any, Any],
        principal: Caller,
        db: Db,
        window_minutes: Annotated[int, QueryParameter(ge=1, le=7 * 24 * 60)] = 30,
    ) -> BoardOut:
        """Tickets breached now and at risk (due within `window_minutes`), with counts by
        group, agent, channel and policy."""
        reject_unknown_params(request, frozenset({"window_minutes"}))
        return await board.board(db, principal, window_minutes)

    @get("/metrics", operation_id="getSlaMetrics")
    async def read_metrics(
        self,
        request: Request[Principal, Any, Any],
        principal: Caller,
        db: Db,
        ctx: Ctx,
        since: FromQuery[datetime | None] = None,
        until: FromQuery[datetime | None] = None,
        period: FromQuery[Literal["hour", "day", "week", "month"]] = "day",
    ) -> MetricsOut:
        """Per period: ended cycles, breaches, breach rate, p50/p90 counted time per clock
        (default: the last 30 days by day, in the configured SLA time zone)."""
        reject_unknown_params(request, frozenset({"since", "until", "period"}))
        end = until or datetime.now(UTC)
        start = since or end - timedelta(days=30)
        for name, value in (("since", start), ("until", end)):
            if value.tzinfo is None:
                raise InvalidInput(f"{name} must carry a UTC offset", field=name)
        if start >= end or end - start > timedelta(days=MAX_METRICS_DAYS):
            raise InvalidInput(
                f"since must be before until, at most {MAX_METRICS_DAYS} days apart",
                field="since",
            )
        return await board.metrics(db, principal, start, end, period, ctx.settings.sla.timezone)

    @get("/stream", operation_id="streamSla")
    async def stream(
        self,
        request: Request[Principal, Any, Any],
        principal: Caller,
        ctx: Ctx,
        after: Annotated[int, QueryParameter(ge=0, le=MAX_ID)] = 0,
    ) -> ServerSentEvent:
        """Live SLA events (`sla_warning`, `sla_breached`, `sla_escalated`) the caller may
        see, as server-sent events whose id is the event id: reconnect with Last-Event-ID
        (or `?after=`) to resume without a gap."""
        reject_unknown_params(request, frozenset({"after"}))
        last = request.headers.get("last-event-id", "").strip()
        if last.isdigit() and len(last) <= 18:
            after = max(after, int(last))
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return ServerSentEvent(_events(ctx.pool, principal, after), headers=headers)


class TicketSlaController(Controller):
    path = "/tickets"
    tags = ["sla"]

    @get("/{ticket_id:int}/sla", operation_id="getTicketSla")
    async def ticket_sla(self, principal: Caller, db: Db, ticket_id: PathId) -> TicketSlaOut:
        """The ticket's policy (and why), each clock with its time left, fired levels."""
        return await board.ticket_sla(db, principal, ticket_id)


async def _events(
    pool: asyncpg.Pool, principal: Principal, after: int
) -> AsyncIterator[ServerSentEventMessage]:
    """Poll for new SLA events (a connection only per query) until STREAM_SECONDS pass."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STREAM_SECONDS
    quiet_since = loop.time()
    yield ServerSentEventMessage(data=None, retry=2000, comment="open")
    while loop.time() < deadline:
        async with pool.acquire() as conn:
            found = await board.events_after(conn, principal, after)
        for event in found:
            yield ServerSentEventMessage(
                data=msgspec.json.encode(event).decode(), event=event.kind, id=event.id
            )
            after = event.id
        if found:
            quiet_since = loop.time()
            continue
        if loop.time() - quiet_since >= KEEPALIVE_SECONDS:
            yield ServerSentEventMessage(data=None, comment="keepalive")
            quiet_since = loop.time()
        await asyncio.sleep(POLL_SECONDS)
