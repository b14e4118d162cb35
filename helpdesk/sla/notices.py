"""Escalation notices outside the console: email to supervisors, a message to a Slack channel.

A notice is a row queued in the escalation's own transaction (so a fired level always has
its notices, and a rolled-back one has none), then delivered by the worker: right after
the check that fired it, and by the sweep for anything still pending. Each ends `sent` or
`failed` with the reason (shown on the ticket's SLA view), after a few attempts with
backoff; nothing is dropped silently. Like the outbox's messages, a notice lost after its
hand-off (SMTP DATA) ends `possibly_sent` and is never sent twice. Email goes out
through the SMTP settings of the email account `sla.notice_email_account` (default: the
first account with SMTP), as an automatic message (RFC 3834) so no auto-responder
answers it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import asyncpg

from helpdesk.channels import accounts as chat_accounts
from helpdesk.channels.base import (
    DeliveryLeaseLost,
    PermanentDeliveryError,
    PossiblySentError,
    RetryableDeliveryError,
)
from helpdesk.channels.email import compose
from helpdesk.channels.email.accounts import EmailAccount, get_account
from helpdesk.channels.email.smtp import EmailSender
from helpdesk.config import Settings
from helpdesk.sla import queries

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
BATCH = 100
# How long one attempt may hold a notice; a worker killed mid-send leaves it to expire.
LEASE = timedelta(minutes=3)
NOT_HANDED_OFF = "the worker stopped before handing the notice over; it was not sent"
POSSIBLY_SENT = "the worker stopped during delivery; the notice may or may not have arrived"


async def queue(
    conn: asyncpg.Connection, ticket_id: int, channel: str, recipient: str, body: str
) -> None:
    await conn.execute(
        queries.QUEUE_NOTICE,
        ticket_id,
        channel,
        recipient,
        body,
    )


async def _mail_account(conn: asyncpg.Connection, settings: Settings) -> EmailAccount | None:
    if settings.sla.notice_email_account:
        return await get_account(conn, settings.sla.notice_email_account)
    name = await conn.fetchval(queries.NOTICE_MAIL_ACCOUNT)
    return None if name is None else await get_account(conn, name)


async def _send_email(
    conn: asyncpg.Connection,
    sender: EmailSender,
    settings: Settings,
    row: asyncpg.Record,
    ticket: asyncpg.Record,
    handoff: Callable[[], Awaitable[None]],
) -> None:
    account = await _mail_account(conn, settings)
    if account is None or not account.smtp_host:
        raise PermanentDeliveryError("no email account with SMTP settings to send notices from")
    domain = account.address.rpartition("@")[2] or "helpdesk.invalid"
    mail = compose.OutgoingEmail(
        # One Message-ID per notice, whatever the attempt: a copy is recognisably a copy.
        message_id=f"sla-notice.{row['id']}@{domain}",
        from_address=account.address,
        from_name=f"{account.display_name or 'Helpdesk'} SLA",
        reply_to=None,
        to=[compose.Recipient(row["recipient"])],
        subject=ticket["subject"],
        ticket_number=ticket["number"],
        text=row["body"],
        date=datetime.now(UTC),
        in_reply_to=None,
        references=[],
        auto_reply=True,
        loop_marker=f"helpdesk-sla@{domain}",
    )
    raw = compose.render(compose.compose(mail))
    await sender.transmit(account, "", [row["recipient"]], raw, handoff)


async def _send_slack(
    conn: asyncpg.Connection, row: asyncpg.Record, handoff: Callable[[], Awaitable[None]]
) -> None:
    from slack_sdk.errors import SlackApiError, SlackClientError

    from helpdesk.channels.slack.adapter import delivery_error, web_client

    name, _, channel = row["recipient"].partition(":")
    account = await chat_accounts.get_account(conn, "slack", name)
    if account is None or not account.active:
        raise PermanentDeliveryError(f"the slack account '{name}' is not configured or active")
    await handoff()
    try:
        await web_client(account).chat_postMessage(channel=channel, text=row["body"])
    except (SlackApiError, SlackClientError, TimeoutError) as error:
        raise delivery_error(error) from None


async def expire_abandoned(conn: asyncpg.Connection) -> int:
    """Notices whose worker died mid-send: due again if they were never handed over,
    else 'possibly_sent' (shown with the reason, never sent twice)."""
    changed = await conn.fetch(
        queries.EXPIRE_ABANDONED_NOTICES,
        NOT_HANDED_OFF,
        POSSIBLY_SENT,
        MAX_ATTEMPTS,
    )
    return len(changed)


async def _claim(conn: asyncpg.Connection) -> asyncpg.Record | None:
    """The next due notice, now this worker's for one lease (committed before sending,
    so no transaction or row lock is held while SMTP or Slack answers)."""
    row: asyncpg.Record | None = await conn.fetchrow(queries.CLAIM_NOTICE, LEASE)
    return row


def _handoff(pool: asyncpg.Pool, row: asyncpg.Record) -> Callable[[], Awaitable[None]]:
    async def handoff() -> None:
        """Record the point of no return, if the notice is still this attempt's."""
        async with pool.acquire() as conn:
            ours = await conn.fetchval(queries.NOTICE_HANDED_OFF, row["id"], row["attempts"])
        if not ours:
            raise DeliveryLeaseLost(f"sla notice {row['id']} attempt {row['attempts']}")

    return handoff


async def _attempt(
    pool: asyncpg.Pool, mailer: EmailSender, settings: Settings, row: asyncpg.Record
) -> tuple[str, str | None, timedelta] | None:
    """Send one claimed notice; its (status, error, delay), or None if it was taken over."""
    attempts = row["attempts"]
    handoff = _handoff(pool, row)
    try:
        async with pool.acquire() as conn:
            ticket = await conn.fetchrow(queries.NOTICE_TICKET, row["ticket_id"])
            if row["channel"] == "email":
                await _send_email(conn, mailer, settings, row, ticket, handoff)
            else:
                await _send_slack(conn, row, handoff)
    except DeliveryLeaseLost:
        return None
    except PermanentDeliveryError as exc:
        return "failed", exc.reason, timedelta(0)
    except PossiblySentError as exc:
        return "possibly_sent", exc.reason, timedelta(0)
    except RetryableDeliveryError as exc:
        status = "failed" if attempts >= MAX_ATTEMPTS else "pending"
        return status, exc.reason, timedelta(seconds=exc.retry_after or 30 * 2 ** (attempts - 1))
    except Exception as exc:  # never lose the notice: record and retry
        log.exception("sla notice crashed", extra={"notice_id": row["id"]})
        status = "failed" if attempts >= MAX_ATTEMPTS else "pending"
        return status, type(exc).__name__, timedelta(seconds=30 * 2 ** (attempts - 1))
    return "sent", None, timedelta(0)


async def deliver_pending(pool: asyncpg.Pool, settings: Settings) -> int:
    """Send every due notice once; returns how many went out.

    Each notice is claimed (committed), then sent with no connection or lock held, then
    its outcome recorded, fenced by the attempt number. Like the outbox: a notice whose
    sender died before the hand-off is sent again, one lost after it is 'possibly_sent'.
    """
    sent = 0
    mailer = EmailSender(pool, settings)
    async with pool.acquire() as conn:
        await expire_abandoned(conn)
    while True:
        async with pool.acquire() as conn:
            row = await _claim(conn)
        if row is None:
            return sent
        outcome = await _attempt(pool, mailer, settings, row)
        if outcome is None:
            log.warning("sla notice taken over after its lease", extra={"notice_id": row["id"]})
            continue
        status, error, delay = outcome
        async with pool.acquire() as conn:
            await conn.execute(
                queries.NOTICE_OUTCOME,
                row["id"],
                status,
                error,
                delay,
                row["attempts"],
            )
        sent += status == "sent"
