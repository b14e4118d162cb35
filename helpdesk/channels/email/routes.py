"""HTTP endpoints of the email channel: raw intake, accounts and quarantine (admins)."""

from __future__ import annotations

import base64
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, patch, post
from litestar.params import JSONBody, PathParameter, QueryParameter
from litestar.status_codes import HTTP_201_CREATED

from helpdesk.agents.scope import ticket_scope
from helpdesk.channels.email import accounts, quarantine
from helpdesk.channels.email.accounts import (
    EmailAccountCreate,
    EmailAccountOut,
    EmailAccountUpdate,
)
from helpdesk.channels.email.quarantine import QuarantinedMail, QuarantinePage, QuarantineStatus
from helpdesk.channels.email.receive import Receipt, receive
from helpdesk.channels.outbox import DELIVER_JOB, job_id
from helpdesk.db.sql import Params
from helpdesk.errors import NotFound, PayloadTooLarge, Unauthenticated
from helpdesk.web.auth import ADMIN
from helpdesk.web.context import AppContext, Caller, Ctx, Db
from helpdesk.web.query import MAX_ID, PathId

AccountPath = Annotated[str, PathParameter(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$(?!\n)")]


def presented_secret(request: Request[Any, Any, Any]) -> str:
    """The intake secret: `Authorization: Bearer <secret>` or Basic auth's password
    (what providers such as Postmark put in the webhook URL)."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        return value.strip()
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except ValueError:
            return ""
        return decoded.partition(":")[2]
    return ""


async def read_capped(request: Request[Any, Any, Any], limit: int) -> bytes:
    """The raw body, refusing more than `limit` bytes before reading them all."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"A mail may have at most {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def enqueue_deliveries(ctx: AppContext, outbox_ids: list[int]) -> None:
    for outbox_id in outbox_ids:
        await ctx.enqueue(DELIVER_JOB, outbox_id, job_id=job_id(outbox_id, 0))


class EmailIntakeController(Controller):
    path = "/channels/email"
    tags = ["email"]

    @post(
        "/{account:str}/inbound",
        exclude_from_auth=True,
        status_code=200,
        request_max_body_size=None,  # capped by email.max_message_bytes in read_capped
    )
    async def inbound(
        self, request: Request[Any, Any, Any], db: Db, ctx: Ctx, account: AccountPath
    ) -> Receipt:
        """Take one raw RFC 822 mail (an MTA pipe or a provider's inbound webhook).

        Authenticated with the account's intake secret. 200 means stored durably (or
        quarantined with the reason, or a known duplicate); 503 while the database is
        down, so the sender retries.
        """
        found = await accounts.get_account(db, account)
        if (
            found is None
            or not found.active
            or not accounts.secret_matches(found, presented_secret(request))
        ):
            raise Unauthenticated("Missing or wrong intake secret")
        raw = await read_capped(request, ctx.settings.email.max_message_bytes)
        receipt = await receive(db, ctx.settings, found, raw, source="http")
        await enqueue_deliveries(ctx, receipt.outbox_ids)
        return receipt


class EmailSourceController(Controller):
    path = "/channels/email/messages"
    tags = ["email"]

    @get("/{message_id:int}/raw")
    async def download_source(
        self, principal: Caller, db: Db, message_id: PathId
    ) -> Response[bytes]:
        """The original mail of an inbound message, byte-exact, as a download.

        Any agent, partners included, within the tickets they may see (404 otherwise).
        """
        params = Params()
        scope = ticket_scope(principal, params)
        raw = await db.fetchval(
            f"""SELECT s.raw FROM message_sources s JOIN messages m ON m.id = s.message_id
                JOIN tickets t ON t.id = m.ticket_id
                WHERE s.message_id = {params.add(message_id)} AND {scope}""",
            *params.values,
        )
        if raw is None:
            raise NotFound(f"No original mail for message {message_id}")
        return _eml_download(bytes(raw), f"message-{message_id}.eml")


def _eml_download(raw: bytes, filename: str) -> Response[bytes]:
    """A mail as a download, never rendered on our origin."""
    return Response(
        raw,
        media_type="message/rfc822",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox; default-src 'none'",
        },
    )


class EmailAccountController(Controller):
    path = "/channels/email/accounts"
    tags = ["email"]
    guards = [ADMIN]

    @get("/")
    async def list_accounts(self, db: Db) -> list[EmailAccountOut]:
        """All accounts; secrets are never shown, only whether they are set."""
        return await accounts.list_accounts(db)

    @post("/", status_code=HTTP_201_CREATED)
    async def create_account(
        self, principal: Caller, db: Db, data: JSONBody[EmailAccountCreate]
    ) -> EmailAccountOut:
        async with db.transaction():
            return await accounts.create_account(db, data, principal)

    @get("/{name:str}")
    async def read_account(self, db: Db, name: AccountPath) -> EmailAccountOut:
        return await accounts.read_account(db, name)

    @patch("/{name:str}")
    async def update_account(
        self, principal: Caller, db: Db, name: AccountPath, data: JSONBody[EmailAccountUpdate]
    ) -> EmailAccountOut:
        async with db.transaction():
            return await accounts.update_account(db, name, data, principal)


class EmailQuarantineController(Controller):
    path = "/channels/email/quarantine"
    tags = ["email"]
    guards = [ADMIN]

    @get("/")
    async def list_entries(
        self,
        db: Db,
        status: Annotated[QuarantineStatus | None, QueryParameter()] = "held",
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
        cursor: Annotated[int | None, QueryParameter(ge=1, le=MAX_ID)] = None,
    ) -> QuarantinePage:
        """Mail that could not be imported, newest first (held ones by default)."""
        return await quarantine.list_quarantine(db, status, limit, cursor)

    @get("/{entry_id:int}")
    async def read_entry(self, db: Db, entry_id: PathId) -> QuarantinedMail:
        return await quarantine.get_entry(db, entry_id)

    @get("/{entry_id:int}/raw")
    async def download_raw(self, db: Db, entry_id: PathId) -> Response[bytes]:
        """The mail byte-exact, as a download (never rendered on our origin)."""
        raw = await quarantine.raw_mail(db, entry_id)
        return _eml_download(raw, f"quarantine-{entry_id}.eml")

    @post("/{entry_id:int}/reprocess", status_code=200)
    async def reprocess(
        self, principal: Caller, db: Db, ctx: Ctx, entry_id: PathId
    ) -> QuarantinedMail:
        """Import the mail again after a fix; 409 with the reason if it still fails."""
        entry, receipt = await quarantine.reprocess(db, ctx.settings, entry_id, principal)
        await enqueue_deliveries(ctx, receipt.outbox_ids)
        return entry

    @post("/{entry_id:int}/discard", status_code=200)
    async def discard(self, principal: Caller, db: Db, entry_id: PathId) -> QuarantinedMail:
        return await quarantine.discard(db, entry_id, principal)
