"""Inbound webhooks of chat and social channels: verify, store, answer; work comes later.

`POST /channels/{kind}/{account}/webhook` checks the provider's signature or secret on
the raw bytes (capped before hashing), stores the body in `inbound_events` (once per
provider delivery id) and answers 200 at once: within Slack's 3 seconds, and only after
a durable insert (503 while PostgreSQL is down, so the provider retries). A worker job
then normalizes the body and stores the messages (`process_event`); a periodic sweep
re-runs events whose job was lost.
"""

from __future__ import annotations

import logging
import time
from typing import Annotated, Any

import asyncpg
from litestar import Controller, Request, Response, get, post
from litestar.exceptions import HTTPException
from litestar.params import PathParameter

from helpdesk.channels import accounts, queries
from helpdesk.channels.adapter import (
    ButtonPress,
    ChannelAdapter,
    InboundMessage,
    StatusUpdate,
    StatusWatermark,
    WebhookRequest,
    normalize_event,
)
from helpdesk.channels.ingest import (
    StoredMessage,
    apply_status,
    apply_watermark,
    fetch_inbound_files,
    store_inbound,
)
from helpdesk.channels.registry import adapter_for
from helpdesk.config import Settings
from helpdesk.errors import Forbidden, NotFound, PayloadTooLarge, Unauthenticated
from helpdesk.web.context import Ctx, Db

log = logging.getLogger(__name__)

PROCESS_JOB = "process_inbound_event"
MAX_WEBHOOK_BYTES = 1024 * 1024  # providers' payloads are small; media is fetched apart
MAX_EVENT_ATTEMPTS = 5

Kind = Annotated[str, PathParameter(pattern=r"^[a-z]{1,20}$(?!\n)")]
AccountName = Annotated[str, PathParameter(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$(?!\n)")]


def event_job_id(event_id: int) -> str:
    return f"inbound:{event_id}"


async def _read(request: Request[Any, Any, Any]) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_WEBHOOK_BYTES:
            raise PayloadTooLarge(f"A webhook body may have at most {MAX_WEBHOOK_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _account_and_adapter(
    db: asyncpg.Connection, settings: Settings, kind: str, name: str
) -> tuple[accounts.ChannelAccount, ChannelAdapter]:
    """The account and its adapter; an unknown or inactive one looks like a bad secret
    (an unconfigured channel is never open, and we do not say which accounts exist)."""
    adapter = adapter_for(kind, settings)
    if adapter is None:
        raise NotFound(f"No channel kind '{kind}'")
    account = await accounts.get_account(db, kind, name)
    if account is None or not account.active:
        raise Unauthenticated("The request could not be authenticated")
    return account, adapter


async def store_event(
    db: asyncpg.Connection, account: accounts.ChannelAccount, dedupe_key: str | None, body: bytes
) -> int | None:
    """Keep an authentic delivery; None when this delivery id is stored already."""
    event_id: int | None = await db.fetchval(queries.STORE_EVENT, account.id, dedupe_key, body)
    return event_id


class WebhookController(Controller):
    path = "/channels"
    tags = ["channels"]

    @post(
        "/{kind:str}/{account:str}/webhook",
        operation_id="receiveWebhook",
        exclude_from_auth=True,
        status_code=200,
        request_max_body_size=None,  # capped by _read before hashing
    )
    async def receive(
        self, request: Request[Any, Any, Any], db: Db, ctx: Ctx, kind: Kind, account: AccountName
    ) -> Response[bytes]:
        return await _receive(request, db, ctx, kind, account)

    @post(
        "/{kind:str}/{account:str}/interactivity",
        operation_id="receiveInteraction",
        exclude_from_auth=True,
        status_code=200,
        request_max_body_size=None,
    )
    async def interactivity(
        self, request: Request[Any, Any, Any], db: Db, ctx: Ctx, kind: Kind, account: AccountName
    ) -> Response[bytes]:
        """Slack's interactivity request URL (button presses): verified and stored like
        any webhook delivery, with the same signature check."""
        return await _receive(request, db, ctx, kind, account)

    @get("/{kind:str}/{account:str}/webhook", exclude_from_auth=True, operation_id="verifyWebhook")
    async def handshake(
        self, request: Request[Any, Any, Any], db: Db, ctx: Ctx, kind: Kind, account: AccountName
    ) -> Response[bytes]:
        """Subscription handshakes (Meta's `hub.challenge`); the adapter decides."""
        found, adapter = await _account_and_adapter(db, ctx.settings, kind, account)
        verdict = adapter.verify(found, _webhook_request(request, b""), time.time())
        if verdict.accept or verdict.status != 200:
            return _refusal(verdict.status if not verdict.accept else 405, b"", "text/plain")
        return Response(verdict.body, status_code=200, media_type=verdict.content_type)


async def _receive(
    request: Request[Any, Any, Any], db: Db, ctx: Ctx, kind: str, account: str
) -> Response[bytes]:
    """Verify on the raw bytes, store once, answer at once; a worker does the rest."""
    found, adapter = await _account_and_adapter(db, ctx.settings, kind, account)
    body = await _read(request)
    verdict = adapter.verify(found, _webhook_request(request, body), time.time())
    if not verdict.accept:
        return _refusal(verdict.status, verdict.body, verdict.content_type)
    event_id = await store_event(db, found, verdict.dedupe_key, body)
    if event_id is not None:
        await ctx.enqueue(PROCESS_JOB, event_id, job_id=event_job_id(event_id))
    return Response(verdict.body or b"ok", status_code=200, media_type=verdict.content_type)


def _webhook_request(request: Request[Any, Any, Any], body: bytes) -> WebhookRequest:
    return WebhookRequest(
        method=request.method,
        headers={k.lower(): v for k, v in request.headers.items()},
        query={k: v for k, v in request.query_params.items()},
        body=body,
    )


def _refusal(status: int, body: bytes, content_type: str) -> Response[bytes]:
    """A rejection as problem+json (never saying which check failed), or the adapter's
    own non-2xx answer."""
    if status == 401:
        raise Unauthenticated("The request could not be authenticated")
    if status == 403:
        raise Forbidden("The request could not be authenticated")
    if status >= 400:  # every error is problem+json, as documented
        raise HTTPException(status_code=status, detail=_REFUSALS.get(status, "Refused"))
    return Response(body, status_code=status, media_type=content_type)


_REFUSALS = {
    400: "The request is not what this provider sends",
    404: "This channel kind takes no webhooks",
    405: "This provider makes no such request (no subscription handshake)",
}


async def process_event(
    pool: asyncpg.Pool, settings: Settings, event_id: int, created: list[int] | None = None
) -> int | None:
    """Normalize one stored delivery and store its messages; returns how many were new.

    Idempotent: a processed event is skipped, and messages are stored once anyway.
    A failure is recorded on the event and retried by the sweep, up to a limit, after
    which the event stays visibly `failed` with the reason.
    """
    # One connection for the whole event, and the event comes with its account.
    async with pool.acquire() as conn:
        row = await conn.fetchrow(queries.PENDING_EVENT, event_id)
        if row is None:
            return None
        account = accounts.account_from_row(row)
        adapter = adapter_for(account.kind, settings)
        if adapter is None:
            return None
        payload = bytes(row["payload"])
        try:
            items = await normalize_event(adapter, account, payload)
            new = 0
            for item in items:
                if isinstance(item, InboundMessage):
                    item = await _resolve_sender(conn, adapter, account, item)
                    stored = await _store_message(conn, settings, adapter, account, item, payload)
                    new += 0 if stored.duplicate else 1
                    if stored.created_ticket and created is not None:
                        created.append(stored.ticket_id)  # to route at once
                elif isinstance(item, StatusUpdate):
                    async with conn.transaction():
                        await apply_status(conn, account.kind, account.name, item, sla=settings.sla)
                elif isinstance(item, StatusWatermark):
                    await apply_watermark(conn, account.kind, account.name, item)
                elif isinstance(item, ButtonPress):
                    await _pressed(conn, settings, adapter, account, item)
        except Exception as error:  # recorded on the event, retried by the sweep
            log.exception("inbound event failed", extra={"event_id": event_id})
            reason = f"{type(error).__name__}: {error}"[:500]
            # On another connection: this one may be what failed.
            async with pool.acquire() as other:
                await other.execute(queries.EVENT_FAILED, event_id, reason, MAX_EVENT_ATTEMPTS)
            raise
        await conn.execute(queries.EVENT_PROCESSED, event_id)
    return new


async def _resolve_sender(
    conn: asyncpg.Connection,
    adapter: ChannelAdapter,
    account: accounts.ChannelAccount,
    message: InboundMessage,
) -> InboundMessage:
    """The message with its sender named by the adapter's `resolve_sender`, for channels
    whose webhooks carry an id but no name (Messenger, Instagram: a profile lookup the
    adapter caches on the identity). A failing lookup never fails ingestion."""
    resolve = getattr(adapter, "resolve_sender", None)
    if resolve is None:
        return message
    try:
        resolved: InboundMessage = await resolve(conn, account, message)
    except Exception as error:  # the name is a nicety; the message is what matters
        log.warning(
            "sender lookup failed", extra={"channel": account.kind, "error": type(error).__name__}
        )
        return message
    return resolved


async def _pressed(
    conn: asyncpg.Connection,
    settings: Settings,
    adapter: ChannelAdapter,
    account: accounts.ChannelAccount,
    press: ButtonPress,
) -> None:
    """A button under one of our messages: today, a satisfaction rating."""
    from helpdesk.csat.service import answer_press  # the channel layer knows no CSAT

    async with conn.transaction():
        thanks = await answer_press(conn, account.kind, account.name, press, settings)
    acknowledge = getattr(adapter, "acknowledge_press", None)
    if acknowledge is not None:
        await acknowledge(account, press, thanks)


async def _store_message(
    conn: asyncpg.Connection,
    settings: Settings,
    adapter: ChannelAdapter,
    account: accounts.ChannelAccount,
    message: InboundMessage,
    payload: bytes,
) -> StoredMessage:
    """Store the message with its text whatever its files do: a file that cannot be
    downloaded is kept as a pending (or failed) attachment and retried apart."""
    files = await fetch_inbound_files(
        conn, adapter, account, message, settings.attachment_max_bytes
    )
    return await store_inbound(conn, message, attachments=files, raw=payload, sla=settings.sla)


async def pending_events(conn: asyncpg.Connection, older_than_seconds: float) -> list[int]:
    rows = await conn.fetch(queries.STALE_PENDING_EVENTS, older_than_seconds)
    return [r["id"] for r in rows]
