"""HTTP endpoints of the tickets domain: parse, call one service function, shape output."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import asyncpg
from litestar import Controller, Request, Response, get, patch, post
from litestar.params import FromQuery, JSONBody, QueryParameter
from litestar.response import ServerSentEvent

from helpdesk.agents.models import Principal
from helpdesk.channels.outbox import DELIVER_JOB, job_id
from helpdesk.db.sql import Id
from helpdesk.errors import InvalidInput, PreconditionRequired
from helpdesk.routing.jobs import ROUTE_JOB, route_job_id
from helpdesk.tickets import detail, edits, messages, opening, queries, stream
from helpdesk.tickets.models import (
    CallCreate,
    CallTicketCreate,
    Category,
    Channel,
    MergeRequest,
    MessageOut,
    NoteCreate,
    Priority,
    ReplyCreate,
    Sort,
    Status,
    TicketCreate,
    TicketDetail,
    TicketFilters,
    TicketOut,
    TicketPage,
    TicketUpdate,
)
from helpdesk.web.context import AppContext, Caller, Ctx, Db
from helpdesk.web.downloads import attachment_disposition
from helpdesk.web.idempotency import run_idempotent
from helpdesk.web.query import (
    MAX_ID,
    OptionalQueryId,
    PathId,
    parse_if_match,
    reject_unknown_params,
)

LIST_PARAMS = frozenset(
    {
        "status",
        "sla",
        "priority",
        "category",
        "channel",
        "group_id",
        "assignee",
        "customer_id",
        "number",
        "tag",
        "created_after",
        "created_before",
        "q",
        "sort",
        "limit",
        "cursor",
    }
)


def _etag(ticket: TicketOut) -> dict[str, str]:
    return {"ETag": f'"{ticket.version}"'}


async def _post_agent_message(
    request: Request[Principal, Any, Any],
    principal: Principal,
    db: asyncpg.Connection,
    ctx: AppContext,
    ticket_id: int,
    data: ReplyCreate | NoteCreate,
    *,
    public: bool,
) -> Response[bytes]:
    """Store a reply or note (idempotently); after commit, hand a reply to the worker."""
    outbox_ids: list[int] = []

    async def action() -> MessageOut:
        message, outbox_id = await messages.add_agent_message(
            db,
            principal,
            ticket_id,
            data.text,
            data.attachments,
            public=public,
            max_attachment_bytes=ctx.settings.attachment_max_bytes,
            sla=ctx.settings.sla,
            internal_only=isinstance(data, NoteCreate) and data.internal_only,
        )
        if outbox_id is not None:
            outbox_ids.append(outbox_id)
        return message

    async def after_commit(message: MessageOut) -> None:
        ctx.metrics.messages_stored.labels(message.channel, "outbound", message.kind).inc()
        for outbox_id in outbox_ids:
            await ctx.enqueue(DELIVER_JOB, outbox_id, job_id=job_id(outbox_id, 0))

    return await run_idempotent(db, request, principal, data, 201, action, after_commit)


class TicketController(Controller):
    path = "/tickets"
    tags = ["tickets"]

    @get("/", operation_id="listTickets")
    async def list_tickets(
        self,
        request: Request[Principal, Any, Any],
        principal: Caller,
        db: Db,
        status: FromQuery[list[Status] | None] = None,
        priority: FromQuery[list[Priority] | None] = None,
        category: FromQuery[list[Category] | None] = None,
        channel: FromQuery[list[Channel] | None] = None,
        group_id: FromQuery[list[Id] | None] = None,
        assignee: Annotated[
            str | None,
            QueryParameter(
                pattern=r"^(me|unassigned|[0-9]{1,18})$",
                description="'me', 'unassigned' or an agent id",
            ),
        ] = None,
        customer_id: OptionalQueryId = None,
        number: OptionalQueryId = None,
        tag: FromQuery[list[str] | None] = None,
        created_after: FromQuery[datetime | None] = None,
        created_before: FromQuery[datetime | None] = None,
        q: Annotated[str | None, QueryParameter(max_length=500)] = None,
        sla: FromQuery[Literal["breached", "at_risk"] | None] = None,
        sort: FromQuery[Sort] = "-created_at",
        limit: Annotated[int, QueryParameter(ge=1, le=100)] = 25,
        cursor: Annotated[str | None, QueryParameter(max_length=500)] = None,
    ) -> TicketPage:
        """Queue listing with filters, full-text search and keyset pagination."""
        reject_unknown_params(request, LIST_PARAMS)
        for name, value in (("created_after", created_after), ("created_before", created_before)):
            if value is not None and value.tzinfo is None:
                raise InvalidInput(
                    "Give a timezone offset, e.g. 2026-11-23T10:00:00+01:00", field=name
                )
        filters = TicketFilters(
            status=tuple(status or ()),
            priority=tuple(priority or ()),
            category=tuple(category or ()),
            channel=tuple(channel or ()),
            group_id=tuple(group_id or ()),
            assignee=assignee,
            customer_id=customer_id,
            number=number,
            tags=tuple(tag or ()),
            created_after=created_after,
            created_before=created_before,
            q=q.strip() or None if q else None,
            sla=sla,
        )
        after = queries.decode_cursor(cursor, sort) if cursor else None
        items, more = await queries.list_tickets(db, principal, filters, sort, after, limit)
        next_cursor = queries.encode_cursor(sort, items[-1]) if more and items else None
        return TicketPage(items=items, next_cursor=next_cursor)

    @post("/", status_code=201, operation_id="createTicket")
    async def create_ticket(
        self,
        request: Request[Principal, Any, Any],
        principal: Caller,
        db: Db,
        ctx: Ctx,
        data: JSONBody[TicketCreate],
    ) -> Response[bytes]:
        """Open a ticket for a customer (API channel, phone calls, internal use)."""

        async def action() -> TicketOut:
            return await opening.create_ticket(db, principal, data, sla=ctx.settings.sla)

        async def count(ticket: TicketOut) -> None:
            ctx.metrics.messages_stored.labels(data.channel, "inbound", "public").inc()
            # Routed by the worker now (the routing sweep would find it anyway).
            await ctx.enqueue(ROUTE_JOB, ticket.id, job_id=route_job_id(ticket.id))

        return await run_idempotent(db, request, principal, data, 201, action, count)

    @post("/calls", status_code=201, operation_id="createTicketFromCall")
    async def create_ticket_from_call(
        self,
        request: Request[Principal, Any, Any],
        principal: Caller,
        db: Db,
        ctx: Ctx,
        data: JSONBody[CallTicketCreate],
    ) -> Response[bytes]:
        """Open a `phone` ticket from a call; the caller's number finds or makes the customer."""

        async def action() -> TicketOut:
            return await opening.create_ticket_from_call(db, principal, data, sla=ctx.settings.sla)

        async def count(ticket: TicketOut) -> None:
            kind = "public" if data.public else "note"
            ctx.metrics.messages_stored.labels("phone", data.direction, kind).inc()
            await ctx.enqueue(ROUTE_JOB, ticket.id, job_id=route_job_id(ticket.id))

        return await run_idempotent(db, request, principal, data, 201, action, count)

    @get("/stream", operation_id="streamTickets")
    async def stream(
        self,
        request: Request[Principal, Any, Any],
        principal: Caller,
        ctx: Ctx,
        after: Annotated[int | None, QueryParameter(ge=0, le=MAX_ID)] = None,
    ) -> ServerSentEvent:
        """New and changed tickets the caller may see, live (server-sent events; each
        event names the ticket and what happened). Resume with Last-Event-ID."""
        reject_unknown_params(request, frozenset({"after"}))
        last = request.headers.get("last-event-id", "").strip()
        if last.isdigit() and len(last) <= 18:
            after = max(after or 0, int(last))
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return ServerSentEvent(stream.events(ctx.pool, principal, after), headers=headers)

    @get("/{ticket_id:int}", operation_id="getTicket")
    async def get_ticket(
        self, principal: Caller, db: Db, ticket_id: PathId
    ) -> Response[TicketDetail]:
        found = await detail.get_detail(db, principal, ticket_id)
        return Response(found, headers=_etag(found.ticket))

    @patch("/{ticket_id:int}", operation_id="updateTicket")
    async def update_ticket(
        self,
        request: Request[Principal, Any, Any],
        principal: Caller,
        db: Db,
        ctx: Ctx,
        ticket_id: PathId,
        data: JSONBody[TicketUpdate],
    ) -> Response[TicketOut]:
        """Change status, priority, category, group, assignee or tags. Requires If-Match."""
        version = parse_if_match(request.headers.get("if-match"))
        if version is None:
            raise PreconditionRequired("Send If-Match with the ticket's ETag")
        async with db.transaction():
            ticket = await edits.update_ticket(
                db, principal, ticket_id, data, version, sla=ctx.settings.sla
            )
        return Response(ticket, headers=_etag(ticket))

    @post("/{ticket_id:int}/replies", status_code=201, operation_id="createReply")
    async def reply(
        self,
        request: Request[Principal, Any, Any],
        principal: Caller,
        db: Db,
        ctx: Ctx,
        ticket_id: PathId,
        data: JSONBody[ReplyCreate],
    ) -> Response[bytes]:
        """A public reply to the customer, delivered on the ticket's channel via the outbox."""
        return await _post_agent_message(request, principal, db, ctx, ticket_id, data, public=True)

    @post("/{ticket_id:int}/notes", status_code=201, operation_id="createNote")
    async def note(
        self,
        request: Request[Principal, Any, Any],
        principal: Caller,
        db: Db,
        ctx: Ctx,
        ticket_id: PathId,
        data: JSONBody[NoteCreate],
    ) -> Response[bytes]:
        """An internal note, visible to agents only."""
        return await _post_agent_message(request, principal, db, ctx, ticket_id, data, public=False)

    @post("/{ticket_id:int}/calls", status_code=201, operation_id="logCall")
    async def log_call(
        self,
        request: Request[Principal, Any, Any],
        principal: Caller,
        db: Db,
        ctx: Ctx,
        ticket_id: PathId,
        data: JSONBody[CallCreate],
    ) -> Response[bytes]:
        """Log a phone call on the ticket as a `phone` message; nothing is sent anywhere."""

        async def action() -> MessageOut:
            return await opening.log_call(db, principal, ticket_id, data, sla=ctx.settings.sla)

        async def count(message: MessageOut) -> None:
            ctx.metrics.messages_stored.labels("phone", message.direction, message.kind).inc()

        return await run_idempotent(db, request, principal, data, 201, action, count)

    @post(
        "/{ticket_id:int}/messages/{message_id:int}/retry",
        status_code=200,
        operation_id="retryDelivery",
    )
    async def retry_delivery(
        self, principal: Caller, db: Db, ctx: Ctx, ticket_id: PathId, message_id: PathId
    ) -> MessageOut:
        """Send a reply whose delivery failed for good once more (409 if it has not failed).

        It gets a fresh set of delivery attempts with backoff, as a new reply does, and
        counts as a response again from now; failing for good again withdraws it again.
        """
        async with db.transaction():
            message, requeued = await messages.retry_delivery(
                db, principal, ticket_id, message_id, sla=ctx.settings.sla
            )
        await ctx.enqueue(
            DELIVER_JOB,
            requeued.outbox_id,
            job_id=job_id(requeued.outbox_id, requeued.attempts),
        )
        return message

    @post("/{ticket_id:int}/merge", status_code=200, operation_id="mergeTicket")
    async def merge(
        self,
        request: Request[Principal, Any, Any],
        principal: Caller,
        db: Db,
        ctx: Ctx,
        ticket_id: PathId,
        data: JSONBody[MergeRequest],
    ) -> Response[bytes]:
        """Merge this ticket into another: messages move, this one closes with a link."""

        async def action() -> TicketOut:
            return await edits.merge_tickets(
                db, principal, ticket_id, data.into_ticket_id, data.reason, sla=ctx.settings.sla
            )

        return await run_idempotent(db, request, principal, data, 200, action)


class AttachmentController(Controller):
    path = "/attachments"
    tags = ["tickets"]

    @get("/{attachment_id:int}", operation_id="downloadAttachment")
    async def download(self, principal: Caller, db: Db, attachment_id: PathId) -> Response[bytes]:
        """Always a download, never rendered on our origin (no stored XSS via attachments)."""
        row = await messages.get_attachment(db, principal, attachment_id)
        return Response(
            bytes(row["content"]),
            media_type="application/octet-stream",
            headers={
                "Content-Disposition": attachment_disposition(row["filename"]),
                "X-Content-Type-Options": "nosniff",
                "Content-Security-Policy": "sandbox; default-src 'none'",
                "X-Original-Content-Type": row["content_type"],
            },
        )
