"""HTTP endpoints of the email channel: raw intake (ours and the mail providers'
webhooks), accounts and quarantine (admins)."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from typing import Annotated, Any

import asyncpg
import msgspec
from litestar import Controller, Request, Response, get, patch, post
from litestar.params import JSONBody, PathParameter, QueryParameter
from litestar.status_codes import HTTP_201_CREATED

from helpdesk.channels.email import accounts, providers, quarantine, queries
from helpdesk.channels.email.accounts import (
    EmailAccount,
    EmailAccountCreate,
    EmailAccountOut,
    EmailAccountUpdate,
)
from helpdesk.channels.email.quarantine import QuarantinedMail, QuarantinePage, QuarantineStatus
from helpdesk.channels.email.receive import Receipt, follow_up_jobs, receive
from helpdesk.errors import InvalidInput, NotFound, PayloadTooLarge, Unauthenticated
from helpdesk.web.auth import ADMIN
from helpdesk.web.context import AppContext, Caller, Ctx, Db
from helpdesk.web.downloads import attachment_disposition
from helpdesk.web.openapi import by_last_segment
from helpdesk.web.query import MAX_ID, PathId

AccountPath = Annotated[str, PathParameter(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$(?!\n)")]
# The raw intake's one answer for an unknown or inactive account and a wrong secret.
INTAKE_REFUSED = "Unknown account or missing or wrong intake secret"
# One answer for every failed provider check: it never says which one failed.
REFUSED = "The request could not be authenticated"
SENDGRID_SIGNATURE = "x-twilio-email-event-webhook-signature"
SENDGRID_TIMESTAMP = "x-twilio-email-event-webhook-timestamp"


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


async def enqueue_follow_ups(ctx: AppContext, receipt: Receipt) -> None:
    for function, argument, job_id in follow_up_jobs(receipt):
        await ctx.enqueue(function, argument, job_id=job_id)


async def provider_account(
    db: asyncpg.Connection, name: str, secret: Callable[[EmailAccount], object]
) -> EmailAccount:
    """The account behind a provider's webhook; unknown, inactive or without that
    provider's secret looks like a bad signature (an unconfigured endpoint is closed)."""
    found = await accounts.get_account(db, name)
    if found is None or not found.active or secret(found) is None:
        raise Unauthenticated(REFUSED)
    return found


async def read_envelope(request: Request[Any, Any, Any], ctx: AppContext) -> bytes:
    """A provider's body, capped (before any hashing or parsing) for the largest mail."""
    return await read_capped(
        request, providers.envelope_limit(ctx.settings.email.max_message_bytes)
    )


async def store_mail(
    db: asyncpg.Connection, ctx: AppContext, account: EmailAccount, raw: bytes
) -> Receipt:
    """Through the one door; whatever it did (stored, duplicate, bounce, quarantined)
    is a 200, so the provider stops retrying only once the mail is durable."""
    receipt = await receive(db, ctx.settings, account, raw, source="http")
    await enqueue_follow_ups(ctx, receipt)
    return receipt


class EmailIntakeController(Controller):
    path = "/channels/email"
    tags = ["email"]

    @post(
        "/{account:str}/inbound",
        operation_id="receiveMail",
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
            # One answer for all three on purpose: strangers must not learn which
            # accounts exist (README, Email: Raw intake).
            raise Unauthenticated(INTAKE_REFUSED)
        raw = await read_capped(request, ctx.settings.email.max_message_bytes)
        receipt = await receive(db, ctx.settings, found, raw, source="http")
        await enqueue_follow_ups(ctx, receipt)
        return receipt

    @post(
        ["/{account:str}/inbound/mailgun/mime", "/{account:str}/inbound/mailgun"],
        operation_id=by_last_segment(mime="receiveMailgunMime", mailgun="receiveMailgun"),
        exclude_from_auth=True,
        status_code=200,
        request_max_body_size=None,  # capped by read_envelope before parsing
    )
    async def mailgun(
        self, request: Request[Any, Any, Any], db: Db, ctx: Ctx, account: AccountPath
    ) -> Receipt:
        """A Mailgun route's `forward()`. Mailgun posts the raw mail only to a URL ending
        in `mime`; the other URL answers 400 saying so (Mailgun retries meanwhile).

        401 for a wrong or stale (over 15 minutes) signature or a token used before.
        """
        found = await provider_account(db, account, lambda a: a.mailgun_signing_key)
        fields = providers.form_fields(
            request.headers.get("content-type"), await read_envelope(request, ctx)
        )
        timestamp = providers.text_field(fields, "timestamp")
        token = providers.text_field(fields, "token")
        signature = providers.text_field(fields, "signature")
        if (
            timestamp is None
            or token is None
            or not providers.verify_mailgun(
                found.mailgun_signing_key, timestamp, token, signature, time.time()
            )
        ):
            raise Unauthenticated(REFUSED)
        raw = providers.mailgun_mime(fields)
        if raw is None:
            raise InvalidInput(
                "Mailgun sent no body-mime: forward the route to the URL ending in"
                f" /channels/email/{account}/inbound/mailgun/mime. Nothing was stored.",
                field="body-mime",
            )
        async with db.transaction():  # the token is used exactly when the mail is stored
            if not await providers.claim_mailgun_token(db, found.id, token, timestamp):
                raise Unauthenticated(REFUSED)
            receipt = await receive(db, ctx.settings, found, raw, source="http")
        await enqueue_follow_ups(ctx, receipt)
        return receipt

    @post(
        "/{account:str}/inbound/sendgrid",
        operation_id="receiveSendgridMail",
        exclude_from_auth=True,
        status_code=200,
        request_max_body_size=None,  # capped by read_envelope before hashing
    )
    async def sendgrid(
        self, request: Request[Any, Any, Any], db: Db, ctx: Ctx, account: AccountPath
    ) -> Receipt:
        """SendGrid Inbound Parse ("send raw", signature security policy).

        401 for a missing, wrong or stale (over 15 minutes) ECDSA signature.
        """
        found = await provider_account(db, account, lambda a: a.sendgrid_public_key)
        body = await read_envelope(request, ctx)
        if not providers.verify_sendgrid(
            found.sendgrid_public_key,
            request.headers.get(SENDGRID_TIMESTAMP),
            request.headers.get(SENDGRID_SIGNATURE),
            body,
            time.time(),
        ):
            raise Unauthenticated(REFUSED)
        raw = providers.sendgrid_mime(
            providers.form_fields(request.headers.get("content-type"), body)
        )
        if raw is None:
            raise InvalidInput(
                "SendGrid sent no raw mail: turn on 'POST the raw, full MIME message' in"
                " the Inbound Parse settings. Nothing was stored.",
                field="email",
            )
        return await store_mail(db, ctx, found, raw)

    @post(
        "/{account:str}/inbound/postmark",
        operation_id="receivePostmarkMail",
        exclude_from_auth=True,
        status_code=200,
        request_max_body_size=None,  # capped by read_envelope before parsing
    )
    async def postmark(
        self, request: Request[Any, Any, Any], db: Db, ctx: Ctx, account: AccountPath
    ) -> Receipt:
        """Postmark's inbound webhook, with the URL's Basic auth credentials."""
        found = await provider_account(db, account, lambda a: a.postmark_credentials_sha256)
        if not providers.verify_postmark(
            found.postmark_credentials_sha256, request.headers.get("authorization")
        ):
            raise Unauthenticated(REFUSED)
        try:
            raw = providers.postmark_mime(await read_envelope(request, ctx))
        except msgspec.DecodeError:
            raise InvalidInput("The body is not Postmark's inbound JSON") from None
        if raw is None:
            raise InvalidInput(
                "Postmark sent no RawEmail: turn on 'Include raw email content in JSON"
                " payload' for this inbound stream. Nothing was stored.",
                field="RawEmail",
            )
        return await store_mail(db, ctx, found, raw)


class EmailSourceController(Controller):
    path = "/channels/email/messages"
    tags = ["email"]

    @get("/{message_id:int}/raw", operation_id="downloadMessageSource")
    async def download_source(
        self, principal: Caller, db: Db, message_id: PathId
    ) -> Response[bytes]:
        """The original mail of an inbound message, byte-exact, as a download.

        Any agent, partners included, within the tickets they may see (404 otherwise).
        """
        sql, params = queries.message_source(principal, message_id)
        raw = await db.fetchval(sql, *params)
        if raw is None:
            raise NotFound(f"No original mail for message {message_id}")
        return _eml_download(bytes(raw), f"message-{message_id}.eml")


def _eml_download(raw: bytes, filename: str) -> Response[bytes]:
    """A mail as a download, never rendered on our origin."""
    return Response(
        raw,
        media_type="message/rfc822",
        headers={
            "Content-Disposition": attachment_disposition(filename),
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox; default-src 'none'",
        },
    )


class EmailAccountController(Controller):
    path = "/channels/email/accounts"
    tags = ["email"]
    guards = [ADMIN]

    @get("/", operation_id="listEmailAccounts")
    async def list_accounts(self, db: Db) -> list[EmailAccountOut]:
        """All accounts; secrets are never shown, only whether they are set."""
        return await accounts.list_accounts(db)

    @post("/", status_code=HTTP_201_CREATED, operation_id="createEmailAccount")
    async def create_account(
        self, principal: Caller, db: Db, data: JSONBody[EmailAccountCreate]
    ) -> EmailAccountOut:
        async with db.transaction():
            return await accounts.create_account(db, data, principal)

    @get("/{name:str}", operation_id="getEmailAccount")
    async def read_account(self, db: Db, name: AccountPath) -> EmailAccountOut:
        return await accounts.read_account(db, name)

    @patch("/{name:str}", operation_id="updateEmailAccount")
    async def update_account(
        self, principal: Caller, db: Db, name: AccountPath, data: JSONBody[EmailAccountUpdate]
    ) -> EmailAccountOut:
        async with db.transaction():
            return await accounts.update_account(db, name, data, principal)


class EmailQuarantineController(Controller):
    path = "/channels/email/quarantine"
    tags = ["email"]
    guards = [ADMIN]

    @get("/", operation_id="listQuarantinedMail")
    async def list_entries(
        self,
        db: Db,
        status: Annotated[QuarantineStatus | None, QueryParameter()] = "held",
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
        cursor: Annotated[int | None, QueryParameter(ge=1, le=MAX_ID)] = None,
    ) -> QuarantinePage:
        """Mail that could not be imported, newest first (held ones by default)."""
        return await quarantine.list_quarantine(db, status, limit, cursor)

    @get("/{entry_id:int}", operation_id="getQuarantinedMail")
    async def read_entry(self, db: Db, entry_id: PathId) -> QuarantinedMail:
        return await quarantine.get_entry(db, entry_id)

    @get("/{entry_id:int}/raw", operation_id="downloadQuarantinedMail")
    async def download_raw(self, db: Db, entry_id: PathId) -> Response[bytes]:
        """The mail byte-exact, as a download (never rendered on our origin)."""
        raw = await quarantine.raw_mail(db, entry_id)
        return _eml_download(raw, f"quarantine-{entry_id}.eml")

    @post("/{entry_id:int}/reprocess", status_code=200, operation_id="reprocessQuarantinedMail")
    async def reprocess(
        self, principal: Caller, db: Db, ctx: Ctx, entry_id: PathId
    ) -> QuarantinedMail:
        """Import the mail again after a fix; 409 with the reason if it still fails."""
        entry, receipt = await quarantine.reprocess(db, ctx.settings, entry_id, principal)
        await enqueue_follow_ups(ctx, receipt)
        return entry

    @post("/{entry_id:int}/discard", status_code=200, operation_id="discardQuarantinedMail")
    async def discard(self, principal: Caller, db: Db, entry_id: PathId) -> QuarantinedMail:
        return await quarantine.discard(db, entry_id, principal)
