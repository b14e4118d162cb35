"""Public endpoints of the web chat widget: no agent authentication.

Every request passes `webchat_access` first (the account exists, is active and is a web
chat; a browser `Origin` is on the account's `allowed_origins`), so even errors carry
the CORS headers an allowed widget needs to read them, and a refused origin gets none.
Visitors authenticate with the token `POST /conversations` returned.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

import asyncpg
import msgspec
from litestar import Controller, Request, Response, get, post, route
from litestar.connection import ASGIConnection
from litestar.enums import HttpMethod
from litestar.handlers.base import BaseRouteHandler
from litestar.params import JSONBody, QueryParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage

from helpdesk.channels import accounts
from helpdesk.channels.accounts import ChannelAccount
from helpdesk.channels.webchat import service
from helpdesk.channels.webchat.models import (
    ConversationStart,
    ConversationStarted,
    VisitorMessageIn,
    VisitorMessages,
    VisitorMessageStored,
)
from helpdesk.errors import Forbidden, NotFound
from helpdesk.web.context import AppContext, Ctx, Db, client_ip
from helpdesk.web.problems import EXCEPTION_HANDLERS
from helpdesk.web.query import MAX_ID, reject_unknown_params

STREAM_SECONDS = 300.0  # an SSE stream ends after this; the browser reconnects
POLL_SECONDS = 0.5  # how often an open stream looks for new messages
KEEPALIVE_SECONDS = 15.0  # a comment line so proxies keep an idle stream open
RETRY_MS = 2000  # the reconnect delay the stream asks the browser for
PREFLIGHT_MAX_AGE = 600

_ACCOUNT = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
_ALLOWED_METHODS = "GET, POST, OPTIONS"
_ALLOWED_HEADERS = "Authorization, Content-Type, Last-Event-ID"
_EXPOSED_HEADERS = "Retry-After, X-Request-ID"

AfterId = Annotated[int, QueryParameter(ge=0, le=MAX_ID)]


async def webchat_access(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    """Resolve the account and the caller's origin before anything else runs."""
    name = connection.path_params.get("account", "")
    ctx: AppContext = connection.app.state.ctx
    account = None
    if isinstance(name, str) and _ACCOUNT.fullmatch(name):
        async with ctx.pool.acquire() as conn:
            account = await accounts.get_account(conn, service.CHANNEL, name)
    if account is None or not account.active:
        raise NotFound("No such web chat")
    origin = connection.headers.get("origin")
    if origin is not None and not service.origin_allowed(
        account.setting("allowed_origins"), origin
    ):
        raise Forbidden("This origin may not use this web chat")
    connection.state.webchat_account = account
    connection.state.webchat_origin = origin


def cors_headers(connection: ASGIConnection[Any, Any, Any, Any]) -> dict[str, str]:
    """`Vary: Origin` always; the allow header only for an origin the guard accepted."""
    headers = {"Vary": "Origin"}
    origin = connection.state.get("webchat_origin")
    if origin:
        headers["Access-Control-Allow-Origin"] = origin
        headers["Access-Control-Expose-Headers"] = _EXPOSED_HEADERS
    return headers


def _with_cors(handler: Callable[..., Response[Any]]) -> Callable[..., Response[Any]]:
    def handle(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
        response = handler(request, exc)
        for name, value in cors_headers(request).items():
            response.headers[name] = value
        return response

    return handle


def _account(request: Request[Any, Any, Any]) -> ChannelAccount:
    account: ChannelAccount = request.state.webchat_account
    return account


def _bearer(request: Request[Any, Any, Any]) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _ip(request: Request[Any, Any, Any]) -> str:
    return client_ip(request) or "unknown"


class WebChatController(Controller):
    path = "/webchat/{account:str}"
    tags = ["web chat"]
    guards = [webchat_access]
    exception_handlers = {kind: _with_cors(h) for kind, h in EXCEPTION_HANDLERS.items()}
    opt = {"exclude_from_auth": True}

    # One preflight per path, named to sort first: litestar 2.25 registers a controller's
    # handlers by qualified name, and a path whose GET/POST comes first gets litestar's
    # own bare OPTIONS answer instead of ours (the CORS test preflights every path).
    @route("/conversations", http_method=[HttpMethod.OPTIONS], include_in_schema=False)
    async def cors_preflight_conversations(self, request: Request[Any, Any, Any]) -> Response[None]:
        return _preflight(request)

    @route("/messages", http_method=[HttpMethod.OPTIONS], include_in_schema=False)
    async def cors_preflight_messages(self, request: Request[Any, Any, Any]) -> Response[None]:
        return _preflight(request)

    @route("/events", http_method=[HttpMethod.OPTIONS], include_in_schema=False)
    async def cors_preflight_events(self, request: Request[Any, Any, Any]) -> Response[None]:
        return _preflight(request)

    @post("/conversations", status_code=201, operation_id="startChat")
    async def start(
        self,
        request: Request[Any, Any, Any],
        db: Db,
        ctx: Ctx,
        data: JSONBody[ConversationStart | None] = None,
    ) -> Response[ConversationStarted]:
        """Start a conversation (name and email optional) and get a visitor token.

        The email is taken as typed, unverified: it never links the visitor to an
        existing customer. Limited per IP address.
        """
        account = _account(request)
        await service.hit_limit(
            ctx.redis,
            ctx.redis_outage,
            service.limit_key("ip-start", account, _ip(request)),
            service.IP_CONVERSATIONS_PER_WINDOW,
            "new conversations from this address",
        )
        started = await service.start_conversation(
            db, ctx.redis, ctx.redis_outage, account, data or ConversationStart()
        )
        return Response(started, status_code=201, headers=cors_headers(request))

    @post("/messages", status_code=200, operation_id="sendChatMessage")
    async def send(
        self, request: Request[Any, Any, Any], db: Db, ctx: Ctx, data: JSONBody[VisitorMessageIn]
    ) -> Response[VisitorMessageStored]:
        """Post the visitor's message (`Authorization: Bearer <visitor_token>`).

        `client_message_id` makes it exactly-once: a retry answers 200 with the same id
        and `duplicate: true`. Limited per visitor and per IP address.
        """
        account = _account(request)
        await service.hit_limit(
            ctx.redis,
            ctx.redis_outage,
            service.limit_key("ip-messages", account, _ip(request)),
            service.IP_MESSAGES_PER_WINDOW,
            "messages from this address",
        )
        visitor_id = service.authenticate(account, _bearer(request))
        await service.hit_limit(
            ctx.redis,
            ctx.redis_outage,
            service.limit_key("visitor-messages", account, visitor_id),
            service.VISITOR_MESSAGES_PER_WINDOW,
            "messages",
        )
        stored = await service.post_message(
            db, ctx.redis, ctx.redis_outage, account, visitor_id, data, ctx.settings.sla
        )
        return Response(stored, status_code=200, headers=cors_headers(request))

    @get("/messages", operation_id="listChatMessages")
    async def messages(
        self, request: Request[Any, Any, Any], db: Db, after: AfterId = 0
    ) -> Response[VisitorMessages]:
        """The visitor's conversation after message `after`: their messages and agents'
        public replies, oldest first, at most 200 (page on with the last id)."""
        reject_unknown_params(request, frozenset({"after"}))
        account = _account(request)
        visitor_id = service.authenticate(account, _bearer(request))
        found = await service.visitor_messages(db, account, visitor_id, after)
        return Response(VisitorMessages(messages=found), headers=cors_headers(request))

    @get("/events", operation_id="streamChatEvents")
    async def events(
        self,
        request: Request[Any, Any, Any],
        ctx: Ctx,
        after: AfterId = 0,
        token: Annotated[str | None, QueryParameter(max_length=200)] = None,
    ) -> ServerSentEvent:
        """Server-sent events: each new message of the conversation as a `message` event
        whose id is the message id, so a reconnect with `Last-Event-ID` resumes.

        The token comes as a bearer header or, for browsers' EventSource (which cannot
        set headers), as `?token=`. The stream ends after a while; reconnect. Stream
        openings are limited per IP address.
        """
        reject_unknown_params(request, frozenset({"after", "token"}))
        account = _account(request)
        await service.hit_limit(
            ctx.redis,
            ctx.redis_outage,
            service.limit_key("ip-streams", account, _ip(request)),
            service.IP_STREAMS_PER_WINDOW,
            "event streams from this address",
        )
        visitor_id = service.authenticate(account, _bearer(request) or (token or ""))
        last = request.headers.get("last-event-id", "").strip()
        if last.isdigit() and len(last) <= 18:
            after = max(after, int(last))
        headers = cors_headers(request) | {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return ServerSentEvent(_stream(ctx.pool, account, visitor_id, after), headers=headers)


def _preflight(request: Request[Any, Any, Any]) -> Response[None]:
    """CORS preflight: answered for allowed origins only (the guard refuses others)."""
    headers = cors_headers(request)
    if "Access-Control-Allow-Origin" in headers:
        headers |= {
            "Access-Control-Allow-Methods": _ALLOWED_METHODS,
            "Access-Control-Allow-Headers": _ALLOWED_HEADERS,
            "Access-Control-Max-Age": str(PREFLIGHT_MAX_AGE),
        }
    headers["Allow"] = _ALLOWED_METHODS
    return Response(None, status_code=204, headers=headers)


async def _stream(
    pool: asyncpg.Pool, account: ChannelAccount, visitor_id: str, after: int
) -> AsyncIterator[ServerSentEventMessage]:
    """Poll the visitor's conversation (a connection only for each query, never held
    while idle) until STREAM_SECONDS have passed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STREAM_SECONDS
    quiet_since = loop.time()
    yield ServerSentEventMessage(data=None, retry=RETRY_MS, comment="open")
    while loop.time() < deadline:
        async with pool.acquire() as conn:
            found = await service.visitor_messages(conn, account, visitor_id, after)
        for message in found:
            yield ServerSentEventMessage(
                data=msgspec.json.encode(message).decode(), event="message", id=message.id
            )
            after = message.id
        if len(found) == service.PAGE_SIZE:
            continue  # a full page: there may be more right away
        if found:
            quiet_since = loop.time()
        if loop.time() - quiet_since >= KEEPALIVE_SECONDS:
            yield ServerSentEventMessage(data=None, comment="keepalive")
            quiet_since = loop.time()
        await asyncio.sleep(POLL_SECONDS)
