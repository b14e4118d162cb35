"""Raw test mails and email accounts, built the way real clients and MTAs write them."""

from __future__ import annotations

from typing import Any

import asyncpg

from helpdesk.channels.email.accounts import (
    EmailAccount,
    EmailAccountCreate,
    create_account,
    get_account,
)
from helpdesk.channels.email.ingest import ingest_email
from helpdesk.channels.email.parse import parse_email
from helpdesk.config import SlaSettings
from tests.channels.email.smtp_server import SmtpTestServer

SUPPORT = "podpora@shop.example"
INBOUND_SECRET = "inbound-secret-0123456789"
ACCOUNT = "support"  # the email account SUPPORT belongs to
CUSTOMER = "jana@example.cz"


def mail(
    *,
    message_id: str | None = "<m1@customer.example>",
    sender: str = "Jana <jana@example.cz>",
    to: str = SUPPORT,
    subject: str = "Reklamace hrnku",
    body: str = "Hrnek dorazil rozbity.",
    in_reply_to: str | None = None,
    references: str | None = None,
    headers: dict[str, str] | None = None,
) -> bytes:
    lines = [
        f"From: {sender}",
        f"To: {to}",
        f"Subject: {subject}",
        "Date: Mon, 23 Nov 2026 09:00:00 +0100",
    ]
    if message_id:
        lines.append(f"Message-ID: {message_id}")
    if in_reply_to:
        lines.append(f"In-Reply-To: {in_reply_to}")
    if references:
        lines.append(f"References: {references}")
    lines.extend(f"{name}: {value}" for name, value in (headers or {}).items())
    return ("\r\n".join(lines) + "\r\n\r\n" + body + "\r\n").encode()


def customer_mail(
    *,
    message_id: str = "<m1@customer.example>",
    subject: str = "Reklamace hrnku",
    body: str = "Hrnek dorazil rozbity.",
    in_reply_to: str | None = None,
) -> bytes:
    """Jana's mail to SUPPORT; an answer names what it answers in both threading headers."""
    return mail(
        message_id=message_id,
        sender=f"Jana <{CUSTOMER}>",
        subject=subject,
        body=body,
        in_reply_to=in_reply_to,
        references=in_reply_to,
    )


async def receive_mail(db: asyncpg.Connection, raw: bytes) -> tuple[int, int]:
    """Store a customer's mail as the email channel does; returns (ticket id, message id)."""
    result = await ingest_email(db, parse_email(raw), raw, account=ACCOUNT, sla=SlaSettings())
    return result.ticket_id, result.message_id


async def add_account(
    db: asyncpg.Connection, server: SmtpTestServer, name: str = ACCOUNT, **columns: Any
) -> None:
    """An email account that sends through `server` (plain SMTP on loopback); ACCOUNT has
    the address SUPPORT, another name `<name>@shop.example`. `columns` override."""
    values: dict[str, Any] = {
        "name": name,
        "address": SUPPORT if name == ACCOUNT else f"{name}@shop.example",
        "display_name": "Podpora Shop",
        "smtp_host": "127.0.0.1",
        "smtp_port": server.port,
        "smtp_security": "none",
        **columns,
    }
    placeholders = ", ".join(f"${i}" for i in range(1, len(values) + 1))
    await db.execute(
        f"INSERT INTO email_accounts ({', '.join(values)}) VALUES ({placeholders})",
        *values.values(),
    )


def dsn(original_message_id: str, *, action: str = "failed", status: str = "5.1.1") -> bytes:
    """A Postfix-style delivery status notification (RFC 3464) for one of our mails."""
    return (
        "From: MAILER-DAEMON@mx.example.cz (Mail Delivery System)\r\n"
        f"To: {SUPPORT}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "Auto-Submitted: auto-replied\r\n"
        f"Message-ID: <dsn-{status}-{action}@mx.example.cz>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n'
        "\r\n"
        "--B\r\n"
        "Content-Type: text/plain\r\n"
        "\r\n"
        "I'm sorry to have to inform you that your message could not be delivered.\r\n"
        "--B\r\n"
        "Content-Type: message/delivery-status\r\n"
        "\r\n"
        "Reporting-MTA: dns; mx.example.cz\r\n"
        "\r\n"
        "Final-Recipient: rfc822; jana@example.cz\r\n"
        f"Action: {action}\r\n"
        f"Status: {status}\r\n"
        f"Diagnostic-Code: smtp; 550 {status} <jana@example.cz>: Recipient address rejected\r\n"
        "--B\r\n"
        "Content-Type: text/rfc822-headers\r\n"
        "\r\n"
        f"From: Shop <{SUPPORT}>\r\n"
        "To: jana@example.cz\r\n"
        f"Message-ID: <{original_message_id}>\r\n"
        "Subject: Re: Reklamace hrnku\r\n"
        "--B--\r\n"
    ).encode()


async def support_account(
    conn: asyncpg.Connection, *, name: str = "support", **fields: object
) -> EmailAccount:
    values: dict[str, object] = {
        "name": name,
        "address": SUPPORT,
        "display_name": "Shop Support",
        "inbound_secret": INBOUND_SECRET,
    }
    values.update(fields)
    await create_account(conn, EmailAccountCreate(**values))  # type: ignore[arg-type]
    account = await get_account(conn, name)
    assert account is not None
    return account
