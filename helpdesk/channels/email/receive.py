"""The one door for inbound mail (IMAP poller, raw intake endpoint, `helpdesk mail ingest`).

Every raw mail ends in exactly one place: a message on a ticket (stored once per
account and Message-ID), the delivery it bounces (marked failed), or the quarantine
with the reason. Runs in one transaction (a savepoint when the caller has one open, so
the IMAP poller can advance its cursor atomically with the import).
"""

from __future__ import annotations

import hashlib
import logging
from typing import Literal

import asyncpg
import msgspec

from helpdesk.channels import outbox
from helpdesk.channels.email import queries
from helpdesk.channels.email.accounts import EmailAccount, own_addresses
from helpdesk.channels.email.ingest import ingest_email
from helpdesk.channels.email.loops import (
    acknowledgement_text,
    auto_reply_blocker,
    reply_address,
)
from helpdesk.channels.email.parse import ParsedEmail, parse_email
from helpdesk.config import Settings
from helpdesk.routing import service as routing_service
from helpdesk.routing.jobs import ROUTE_JOB, route_job_id
from helpdesk.sla import recording as sla_recording
from helpdesk.tickets import events
from helpdesk.tickets.events import TicketEvent

log = logging.getLogger(__name__)

Source = Literal["imap", "http", "cli"]


class Receipt(msgspec.Struct, kw_only=True):
    """Where one raw mail went."""

    outcome: Literal["stored", "duplicate", "bounce", "quarantined"]
    ticket_id: int | None = None
    message_id: int | None = None
    created_ticket: bool = False
    quarantine_id: int | None = None
    reason: str | None = None
    # Deliveries queued by this mail (an acknowledgement): enqueue after commit.
    outbox_ids: list[int] = msgspec.field(default_factory=list)


def follow_up_jobs(receipt: Receipt) -> list[tuple[str, int, str]]:
    """The worker jobs (name, argument, job id) a stored mail asks for, to enqueue once
    it is committed: its deliveries, and routing a new ticket now rather than at the
    next routing sweep (which stays the safety net when Redis loses the job)."""
    jobs = [(outbox.DELIVER_JOB, i, outbox.job_id(i, 0)) for i in receipt.outbox_ids]
    if receipt.created_ticket and receipt.ticket_id is not None:
        jobs.append((ROUTE_JOB, receipt.ticket_id, route_job_id(receipt.ticket_id)))
    return jobs


def parse_for(settings: Settings, raw: bytes) -> ParsedEmail:
    return parse_email(
        raw,
        max_attachment_bytes=settings.attachment_max_bytes,
        max_attachments=settings.email.max_attachments,
    )


def unreadable_reason(raw: bytes, max_bytes: int) -> str | None:
    """Why `raw` cannot be imported at all (kept in quarantine instead), or None."""
    if not raw.strip():
        return "the mail is empty"
    if len(raw) > max_bytes:
        return f"the mail is {len(raw)} bytes, over the limit of {max_bytes}"
    head = raw[:65536].split(b"\n\n", 1)[0].split(b"\r\n\r\n", 1)[0]
    if b":" not in head:
        return "no mail headers found"
    return None


async def quarantine(
    conn: asyncpg.Connection, account: str, raw: bytes, reason: str, source: Source
) -> int:
    """Keep `raw` with `reason`; the same bytes again stay one entry."""
    quarantine_id: int = await conn.fetchval(
        queries.QUARANTINE,
        account,
        source,
        raw,
        hashlib.sha256(raw).hexdigest(),
        reason,
    )
    log.warning(
        "mail quarantined",
        extra={"account": account, "quarantine_id": quarantine_id, "reason": reason},
    )
    return quarantine_id


async def receive(
    conn: asyncpg.Connection,
    settings: Settings,
    account: EmailAccount,
    raw: bytes,
    *,
    source: Source,
) -> Receipt:
    """Import one raw mail received on `account`. Safe to call again with the same mail."""
    reason = unreadable_reason(raw, settings.email.max_message_bytes)
    if reason is not None:
        return await _quarantined(conn, account, raw, reason, source)
    parsed = parse_for(settings, raw)
    try:
        async with conn.transaction():
            if parsed.bounce:
                bounced = await _fail_bounced_delivery(conn, parsed, settings)
                if bounced is not None:
                    return bounced
            result = await ingest_email(
                conn,
                parsed,
                raw,
                account=account.name,
                sla=settings.sla,
            )
            receipt = Receipt(
                outcome="duplicate" if result.duplicate else "stored",
                ticket_id=result.ticket_id,
                message_id=result.message_id,
                created_ticket=result.created_ticket,
            )
            if result.created_ticket and account.auto_acknowledge:
                outbox_id = await _acknowledge(conn, settings, account, parsed, result.ticket_id)
                if outbox_id is not None:
                    receipt.outbox_ids.append(outbox_id)
            return receipt
    except (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError) as error:
        # The database refused what the parser produced: keep the raw mail for a fix.
        return await _quarantined(
            conn, account, raw, f"could not be stored: {type(error).__name__}: {error}", source
        )


def bounce_is_transient(parsed: ParsedEmail) -> bool:
    """A 'delayed' report (4.x.x, still retrying): the mail may yet arrive."""
    reports = [
        a.content.decode("utf-8", "replace").lower()
        for a in parsed.attachments
        if a.content_type.lower() == "message/delivery-status"
    ]
    text = "\n".join(reports)
    return "action: delayed" in text and "action: failed" not in text


async def _fail_bounced_delivery(
    conn: asyncpg.Connection, parsed: ParsedEmail, settings: Settings
) -> Receipt | None:
    """A bounce of one of our mails fails that delivery (no ticket, no auto-reply); a
    failed reply is withdrawn as a response at once.

    Returns None when the bounce cites nothing we sent: it is then stored like any mail
    (flagged as a bounce, so it never gets an automatic reply).
    """
    cited = [i for i in [*parsed.bounce_message_ids, parsed.in_reply_to, *parsed.references] if i]
    if not cited:
        return None
    row = await conn.fetchrow(queries.BOUNCED_MESSAGE, cited)
    if row is None:
        return None
    recipients = ", ".join(parsed.bounce_recipients) or "the recipient"
    diagnostic = parsed.bounce_diagnostic or "the receiving server returned the mail"
    action: TicketEvent
    if bounce_is_transient(parsed):
        reason = f"delivery to {recipients} is delayed: {diagnostic}"
        action, status = "delivery_delayed", row["delivery_status"]
    else:
        reason = f"bounced by {recipients}: {diagnostic}"
        action, status = "delivery_failed", "failed"
    if row["delivery_status"] == status and row["delivery_error"] == reason:
        return Receipt(outcome="duplicate", ticket_id=row["ticket_id"], message_id=row["id"])
    await conn.execute(queries.SET_BOUNCED_MESSAGE, row["id"], status, reason)
    await conn.execute(queries.SET_BOUNCED_DELIVERY, row["id"], status, reason)
    await events.record(
        conn,
        row["ticket_id"],
        action,
        {"message_id": row["id"], "reason": reason, "bounce_message_id": parsed.message_id},
    )
    if status == "failed":
        await sla_recording.withdraw_reply(conn, row["id"], reason, settings.sla)
    return Receipt(outcome="bounce", ticket_id=row["ticket_id"], message_id=row["id"])


async def _acknowledge(
    conn: asyncpg.Connection,
    settings: Settings,
    account: EmailAccount,
    parsed: ParsedEmail,
    ticket_id: int,
) -> int | None:
    """Queue the automatic acknowledgement of a new ticket, unless it could loop.

    The per-address hourly limit is checked under a lock on the address, so twenty
    concurrent mails from one auto-responder still get at most the limit.
    """
    recipient = reply_address(parsed)
    blocker = auto_reply_blocker(parsed, await own_addresses(conn))
    limit = settings.email.auto_reply_limit_per_hour
    if blocker is None and limit == 0:
        blocker = "automatic replies are turned off"
    if blocker is None and recipient is not None:
        await conn.execute(queries.LOCK_AUTO_REPLY_ADDRESS, f"auto-reply:{recipient}")
        sent = await conn.fetchval(queries.RECENT_AUTO_REPLIES, recipient)
        if sent >= limit:
            blocker = f"{limit} automatic replies to {recipient} in the last hour already"
    if blocker is not None or recipient is None:
        await events.record(conn, ticket_id, "auto_reply_suppressed", {"reason": blocker})
        return None
    number = await conn.fetchval(queries.TICKET_NUMBER, ticket_id)
    language = await routing_service.customer_language(conn, ticket_id)
    template = settings.email.acknowledgement.get(
        language or "", settings.email.acknowledgement_text
    )
    text = acknowledgement_text(template, number, settings.sla.first_response_minutes)
    message_id = await conn.fetchval(
        queries.INSERT_ACKNOWLEDGEMENT,
        ticket_id,
        account.name,
        text,
        [recipient],
    )
    await conn.execute(queries.RECORD_AUTO_REPLY, account.name, recipient, ticket_id, message_id)
    return await outbox.add(conn, message_id, ticket_id, "email")


async def _quarantined(
    conn: asyncpg.Connection, account: EmailAccount, raw: bytes, reason: str, source: Source
) -> Receipt:
    quarantine_id = await quarantine(conn, account.name, raw, reason, source)
    return Receipt(outcome="quarantined", quarantine_id=quarantine_id, reason=reason)
