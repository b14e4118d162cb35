"""Escalation notices outside the console: email to supervisors, a message to a Slack channel.

A notice is a row queued in the escalation's own transaction (so a fired level always has
its notices, and a rolled-back one has none), then delivered by the worker: right after
the check that fired it, and by the sweep for anything still pending. Each ends `sent` or
`failed` with the reason (shown on the ticket's SLA view), after a few attempts with
backoff; nothing is dropped silently. Email goes out through the SMTP settings of the
email account `sla.notice_email_account` (default: the first account with SMTP), as an
automatic message (RFC 3834) so no auto-responder answers it.
"""

from __future__ import annotations

import logging
import secrets
from datetime import UTC, datetime, timedelta

import asyncpg

from helpdesk.channels import accounts as chat_accounts
from helpdesk.channels.base import PermanentDeliveryError, RetryableDeliveryError
from helpdesk.channels.email import compose
from helpdesk.channels.email.accounts import EmailAccount, get_account
from helpdesk.channels.email.smtp import EmailSender
from helpdesk.config import Settings

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
BATCH = 100


async def queue(
    conn: asyncpg.Connection, ticket_id: int, channel: str, recipient: str, body: str
) -> None:
    await conn.execute(
        "INSERT INTO sla_notices (ticket_id, channel, recipient, body) VALUES ($1, $2, $3, $4)",
        ticket_id,
        channel,
        recipient,
        body,
    )


async def _mail_account(conn: asyncpg.Connection, settings: Settings) -> EmailAccount | None:
    if settings.sla.notice_email_account:
        return await get_account(conn, settings.sla.notice_email_account)
    name = await conn.fetchval(
        "SELECT name FROM email_accounts WHERE smtp_host IS NOT NULL AND active ORDER BY id LIMIT 1"
    )
    return None if name is None else await get_account(conn, name)


async def _send_email(
    conn: asyncpg.Connection,
    sender: EmailSender,
    settings: Settings,
    row: asyncpg.Record,
    ticket: asyncpg.Record,
) -> None:
    account = await _mail_account(conn, settings)
    if account is None or not account.smtp_host:
        raise PermanentDeliveryError("no email account with SMTP settings to send notices from")
    domain = account.address.rpartition("@")[2] or "helpdesk.invalid"
    mail = compose.OutgoingEmail(
        message_id=f"sla-notice.{row['id']}.{secrets.token_hex(6)}@{domain}",
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
    await sender.transmit(account, "", [row["recipient"]], raw)


async def _send_slack(conn: asyncpg.Connection, row: asyncpg.Record) -> None:
    from slack_sdk.errors import SlackApiError, SlackClientError

    from helpdesk.channels.slack.adapter import delivery_error, web_client

    name, _, channel = row["recipient"].partition(":")
    account = await chat_accounts.get_account(conn, "slack", name)
    if account is None or not account.active:
        raise PermanentDeliveryError(f"the slack account '{name}' is not configured or active")
    try:
        await web_client(account).chat_postMessage(channel=channel, text=row["body"])
    except (SlackApiError, SlackClientError, TimeoutError) as error:
        raise delivery_error(error) from None


async def deliver_pending(pool: asyncpg.Pool, settings: Settings) -> int:
    """Send every due notice once; returns how many went out."""
    sent = 0
    mailer = EmailSender(pool, settings)
    async with pool.acquire() as conn:
        while True:
            async with conn.transaction():
                row = await conn.fetchrow(
                    """SELECT * FROM sla_notices
                       WHERE status = 'pending' AND next_attempt_at <= now()
                       ORDER BY next_attempt_at, id LIMIT 1 FOR UPDATE SKIP LOCKED"""
                )
                if row is None:
                    return sent
                ticket = await conn.fetchrow(
                    "SELECT number, subject FROM tickets WHERE id = $1", row["ticket_id"]
                )
                attempts = row["attempts"] + 1
                status, error, delay = "sent", None, timedelta(0)
                try:
                    if row["channel"] == "email":
                        await _send_email(conn, mailer, settings, row, ticket)
                    else:
                        await _send_slack(conn, row)
                except PermanentDeliveryError as exc:
                    status, error = "failed", exc.reason
                except RetryableDeliveryError as exc:
                    error = exc.reason
                    status = "failed" if attempts >= MAX_ATTEMPTS else "pending"
                    delay = timedelta(seconds=exc.retry_after or 30 * 2 ** (attempts - 1))
                except Exception as exc:  # never lose the notice: record and retry
                    log.exception("sla notice crashed", extra={"notice_id": row["id"]})
                    error = f"{type(exc).__name__}"
                    status = "failed" if attempts >= MAX_ATTEMPTS else "pending"
                    delay = timedelta(seconds=30 * 2 ** (attempts - 1))
                await conn.execute(
                    """UPDATE sla_notices SET status = $2, attempts = $3, last_error = $4,
                           next_attempt_at = now() + $5::interval,
                           sent_at = CASE WHEN $2 = 'sent' THEN now() END
                       WHERE id = $1""",
                    row["id"],
                    status,
                    attempts,
                    error,
                    delay,
                )
                sent += status == "sent"
