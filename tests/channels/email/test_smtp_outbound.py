"""Replies to email tickets reach the customer's mailbox once, threaded, or fail visibly.

Real PostgreSQL, a real aiosmtpd server on loopback (tests/channels/email/smtp_server.py)
and the real outbox: deliveries run through `outbox.deliver`, which is what the arq job
does; one story goes through the HTTP API and a burst of the real worker, and the F1
stories SIGKILL a real `helpdesk worker` process.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import signal
import subprocess
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import pytest
from arq.connections import create_pool as create_arq_pool

from helpdesk.app import redis_settings
from helpdesk.channels import outbox
from helpdesk.channels.base import Sender
from helpdesk.channels.jobs import relay_outbox
from helpdesk.channels.outbox import senders
from helpdesk.config import Settings
from helpdesk.db.pool import create_pool
from helpdesk.tickets.messages import store_attachment

# tests/console imports CUSTOMER, add_account, customer_mail and receive_mail from here.
from tests.channels.email.builders import (
    ACCOUNT,
    CUSTOMER,
    SUPPORT,
    add_account,
    customer_mail,
    receive_mail,
)
from tests.channels.email.smtp_server import SmtpTestServer, only
from tests.channels.replies import message_view, run_worker
from tests.conftest import Client, Factory, Servers
from tests.faults import start_worker, wait_until

LEASE = timedelta(seconds=60)
MAX_ATTEMPTS = 3
OUR_MESSAGE_ID = re.compile(r"helpdesk\.(\d+)\.(\d+)\.[0-9a-f]{8}@shop\.example")


async def queue_reply(
    db: asyncpg.Connection,
    ticket_id: int,
    text: str = "Dobry den, posleme novy hrnek.",
    *,
    kind: str = "public",
    recipients: list[str] | None = None,
    attachments: Sequence[tuple[str, str, bytes]] = (),
) -> tuple[int, int]:
    """An outbound email message queued like an agent's reply; returns (message, outbox) ids."""
    async with db.transaction():
        message_id = await db.fetchval(
            """INSERT INTO messages (ticket_id, direction, kind, channel, body_text,
                                     delivery_status, recipient_addresses)
               VALUES ($1, 'outbound', $2, 'email', $3, 'pending', $4) RETURNING id""",
            ticket_id,
            kind,
            text,
            recipients or [],
        )
        for filename, content_type, content in attachments:
            await store_attachment(db, message_id, filename, content_type, content)
        outbox_id = await outbox.add(db, message_id, ticket_id, "email")
    return message_id, outbox_id


@pytest.fixture
async def pool(db: asyncpg.Connection, database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url, 1, 10)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
def channel_senders(pool: asyncpg.Pool, settings: Settings) -> dict[str, Sender]:
    return senders(pool, settings)


async def deliver(
    pool: asyncpg.Pool, channel_senders: dict[str, Sender], outbox_id: int
) -> tuple[str, str] | None:
    return await outbox.deliver(pool, channel_senders, outbox_id, LEASE, MAX_ATTEMPTS)


async def rows(db: asyncpg.Connection, message_id: int) -> tuple[asyncpg.Record, asyncpg.Record]:
    message = await db.fetchrow("SELECT * FROM messages WHERE id = $1", message_id)
    row = await db.fetchrow("SELECT * FROM outbox WHERE message_id = $1", message_id)
    return message, row


async def test_reply_is_mailed_threaded_under_the_customers_mail_with_its_attachments(
    db: asyncpg.Connection,
    pool: asyncpg.Pool,
    smtp: SmtpTestServer,
    channel_senders: dict[str, Sender],
) -> None:
    await add_account(db, smtp, reply_to="odpovedi@shop.example")
    ticket_id, _ = await receive_mail(db, customer_mail())
    number = await db.fetchval("SELECT number FROM tickets WHERE id = $1", ticket_id)
    pdf = os.urandom(4096) + b"\x00\r\n.\r\n"
    notes = b"first line\r\n.second line starts with a dot\r\n\r\nlast, no newline"
    message_id, outbox_id = await queue_reply(
        db,
        ticket_id,
        "Dobrý den,\n\npošleme nový hrnek <zdarma>.\nS pozdravem",
        attachments=[
            ("dobropis č. 7.pdf", "application/pdf", pdf),
            ("notes.txt", "text/plain", notes),
        ],
    )

    assert await deliver(pool, channel_senders, outbox_id) == ("email", "sent")

    mail = only(smtp.received)
    assert mail.mail_from == SUPPORT
    assert mail.rcpt_tos == [CUSTOMER]
    message, row = await rows(db, message_id)
    ours = OUR_MESSAGE_ID.fullmatch(message["external_id"])
    assert ours is not None and ours.groups() == (str(number), str(outbox_id))
    parsed = mail.message
    assert parsed["From"] == f"Podpora Shop <{SUPPORT}>"
    assert parsed["To"] == f"Jana <{CUSTOMER}>"
    assert parsed["Reply-To"] == "odpovedi@shop.example"
    assert parsed["Subject"] == f"Re: Reklamace hrnku [#{number}]"
    assert parsed["Message-ID"] == f"<{message['external_id']}>"
    assert parsed["In-Reply-To"] == "<m1@customer.example>"
    assert parsed["References"] == "<m1@customer.example>"
    assert parsed["X-Loop"] == SUPPORT
    assert parsed["Auto-Submitted"] is None
    assert parsed["Date"].datetime == message["created_at"].replace(microsecond=0)
    assert parsed.get_content_type() == "multipart/mixed"
    alternative, *files = list(parsed.iter_parts())
    plain, html = list(alternative.iter_parts())
    assert plain.get_content().replace("\r\n", "\n") == (
        "Dobrý den,\n\npošleme nový hrnek <zdarma>.\nS pozdravem\n"
    )
    assert html.get_content_type() == "text/html"
    assert "pošleme nový hrnek &lt;zdarma&gt;.<br>" in html.get_content()
    assert [(f.get_filename(), f.get_content_type()) for f in files] == [
        ("dobropis č. 7.pdf", "application/pdf"),
        ("notes.txt", "text/plain"),
    ]
    assert [f.get_payload(decode=True) for f in files] == [pdf, notes]

    assert message["delivery_status"] == "sent"
    assert message["delivery_error"] is None
    assert message["channel_account"] == ACCOUNT
    assert message["recipient_addresses"] == [CUSTOMER]
    assert (row["status"], row["attempts"], row["last_error"]) == ("sent", 1, None)
    assert row["handed_off_at"] is not None


async def test_second_reply_cites_the_first_reply_and_the_customers_answer(
    db: asyncpg.Connection,
    pool: asyncpg.Pool,
    smtp: SmtpTestServer,
    channel_senders: dict[str, Sender],
) -> None:
    await add_account(db, smtp)
    ticket_id, _ = await receive_mail(db, customer_mail())
    first_id, first_outbox = await queue_reply(db, ticket_id, "Posleme novy.")
    await deliver(pool, channel_senders, first_outbox)
    first = await db.fetchval("SELECT external_id FROM messages WHERE id = $1", first_id)
    assert only(smtp.received).message["Message-ID"] == f"<{first}>"

    # The customer answers our reply; their mail client cites our Message-ID.
    answered_ticket, _ = await receive_mail(
        db,
        customer_mail(
            message_id="<m2@customer.example>",
            subject="Re: Reklamace hrnku",
            body="Dekuji.",
            in_reply_to=f"<{first}>",
        ),
    )
    assert answered_ticket == ticket_id
    second_id, second_outbox = await queue_reply(db, ticket_id, "Rado se stalo.")
    assert await deliver(pool, channel_senders, second_outbox) == ("email", "sent")

    assert len(smtp.received) == 2
    second = smtp.received[1].message
    assert second["In-Reply-To"] == "<m2@customer.example>"
    assert second["References"].split() == [
        "<m1@customer.example>",
        f"<{first}>",
        "<m2@customer.example>",
    ]
    second_external = await db.fetchval("SELECT external_id FROM messages WHERE id = $1", second_id)
    assert second["Message-ID"] == f"<{second_external}>" != f"<{first}>"


@pytest.mark.parametrize(
    ("reply_to", "sender", "expected"),
    [
        (
            ["orders@customer.example", "jana.home@example.cz"],
            CUSTOMER,
            ["orders@customer.example", "jana.home@example.cz"],
        ),
        ([], "jana.work@example.cz", ["jana.work@example.cz"]),
        ([], None, [CUSTOMER]),  # nothing on the mail: the customer's own address
    ],
)
async def test_reply_goes_where_the_customers_last_mail_asked(
    db: asyncpg.Connection,
    pool: asyncpg.Pool,
    smtp: SmtpTestServer,
    channel_senders: dict[str, Sender],
    reply_to: list[str],
    sender: str | None,
    expected: list[str],
) -> None:
    await add_account(db, smtp)
    ticket_id, inbound_id = await receive_mail(db, customer_mail())
    await db.execute(
        "UPDATE messages SET reply_to_addresses = $2, sender_address = $3 WHERE id = $1",
        inbound_id,
        reply_to,
        sender,
    )
    message_id, outbox_id = await queue_reply(db, ticket_id)

    assert await deliver(pool, channel_senders, outbox_id) == ("email", "sent")

    assert only(smtp.received).rcpt_tos == expected
    stored = await db.fetchval("SELECT recipient_addresses FROM messages WHERE id = $1", message_id)
    assert stored == expected


async def test_automatic_acknowledgement_has_an_empty_envelope_sender_and_says_auto_replied(
    db: asyncpg.Connection,
    pool: asyncpg.Pool,
    smtp: SmtpTestServer,
    channel_senders: dict[str, Sender],
) -> None:
    await add_account(db, smtp)
    ticket_id, _ = await receive_mail(db, customer_mail())
    _, outbox_id = await queue_reply(
        db, ticket_id, "We have opened your ticket.", kind="system", recipients=[CUSTOMER]
    )

    assert await deliver(pool, channel_senders, outbox_id) == ("email", "sent")

    mail = only(smtp.received)
    assert mail.mail_from == "<>"  # RFC 3834: nothing answers an empty reverse path
    assert mail.rcpt_tos == [CUSTOMER]
    assert mail.message["Auto-Submitted"] == "auto-replied"
    assert mail.message["From"] == f"Podpora Shop <{SUPPORT}>"
    assert mail.message["X-Loop"] == SUPPORT


async def test_customer_without_an_email_address_fails_with_that_reason(
    db: asyncpg.Connection,
    pool: asyncpg.Pool,
    smtp: SmtpTestServer,
    channel_senders: dict[str, Sender],
) -> None:
    await add_account(db, smtp)
    customer = await db.fetchval("INSERT INTO customers (name) VALUES ('Walk-in') RETURNING id")
    ticket_id = await db.fetchval(
        """INSERT INTO tickets (subject, channel, channel_account, customer_id)
           VALUES ('Phoned in', 'email', $1, $2) RETURNING id""",
        ACCOUNT,
        customer,
    )
    message_id, outbox_id = await queue_reply(db, ticket_id)

    assert await deliver(pool, channel_senders, outbox_id) == ("email", "failed")

    message, row = await rows(db, message_id)
    assert message["delivery_status"] == "failed"
    assert message["delivery_error"] == "the customer has no email address"
    assert (row["status"], row["attempts"]) == ("failed", 1)
    assert smtp.received == []


@pytest.mark.parametrize(
    ("account", "reason"),
    [
        (None, "the email account 'support' does not exist"),
        ({"active": False}, "the email account 'support' is inactive"),
        ({"smtp_host": None}, "the email account 'support' has no SMTP server configured"),
    ],
)
async def test_reply_through_an_unusable_account_fails_at_once_with_the_reason(
    db: asyncpg.Connection,
    pool: asyncpg.Pool,
    smtp: SmtpTestServer,
    channel_senders: dict[str, Sender],
    account: dict[str, Any] | None,
    reason: str,
) -> None:
    if account is not None:
        await add_account(db, smtp, **account)
    ticket_id, _ = await receive_mail(db, customer_mail())
    message_id, outbox_id = await queue_reply(db, ticket_id)

    assert await deliver(pool, channel_senders, outbox_id) == ("email", "failed")

    message, row = await rows(db, message_id)
    assert message["delivery_error"] == reason
    assert (row["status"], row["last_error"], row["attempts"]) == ("failed", reason, 1)
    assert smtp.received == []


async def make_due(db: asyncpg.Connection, outbox_id: int) -> None:
    """Skip the backoff wait: the next attempt is due now."""
    await db.execute("UPDATE outbox SET next_attempt_at = now() WHERE id = $1", outbox_id)


async def test_smtp_server_down_is_retried_with_the_reason_then_fails_after_max_attempts(
    db: asyncpg.Connection,
    pool: asyncpg.Pool,
    smtp: SmtpTestServer,
    channel_senders: dict[str, Sender],
) -> None:
    await add_account(db, smtp)
    await smtp.stop()
    ticket_id, _ = await receive_mail(db, customer_mail())
    message_id, outbox_id = await queue_reply(db, ticket_id)
    down = f"cannot connect to the SMTP server 127.0.0.1:{smtp.port}: Connection refused"

    assert await deliver(pool, channel_senders, outbox_id) == ("email", "retrying")
    message, row = await rows(db, message_id)
    assert (row["status"], row["attempts"], row["last_error"]) == ("retrying", 1, down)
    assert (message["delivery_status"], message["delivery_error"]) == ("retrying", down)
    assert await db.fetchval("SELECT next_attempt_at > now() FROM outbox WHERE id = $1", outbox_id)
    assert await deliver(pool, channel_senders, outbox_id) is None  # not due yet

    await make_due(db, outbox_id)
    assert await deliver(pool, channel_senders, outbox_id) == ("email", "retrying")
    await make_due(db, outbox_id)
    assert await deliver(pool, channel_senders, outbox_id) == ("email", "failed")

    message, row = await rows(db, message_id)
    final = f"gave up after {MAX_ATTEMPTS} attempts: {down}"
    assert (row["status"], row["attempts"], row["last_error"]) == ("failed", MAX_ATTEMPTS, final)
    assert (message["delivery_status"], message["delivery_error"]) == ("failed", final)
    assert row["handed_off_at"] is None
    await make_due(db, outbox_id)
    assert await deliver(pool, channel_senders, outbox_id) is None


async def test_reply_waiting_for_a_down_server_goes_out_once_it_is_back(
    db: asyncpg.Connection,
    pool: asyncpg.Pool,
    smtp: SmtpTestServer,
    channel_senders: dict[str, Sender],
) -> None:
    await add_account(db, smtp)
    ticket_id, _ = await receive_mail(db, customer_mail())
    message_id, outbox_id = await queue_reply(db, ticket_id)
    await smtp.stop()
    assert await deliver(pool, channel_senders, outbox_id) == ("email", "retrying")

    await smtp.start()  # the same port
    await make_due(db, outbox_id)
    assert await deliver(pool, channel_senders, outbox_id) == ("email", "sent")

    message, row = await rows(db, message_id)
    assert only(smtp.received).message["Message-ID"] == f"<{message['external_id']}>"
    assert (row["status"], row["attempts"], message["delivery_error"]) == ("sent", 2, None)


@pytest.mark.parametrize(
    ("command", "reply", "status"),
    [
        ("RCPT", "451 4.3.0 try later", "retrying"),
        ("RCPT", "550 5.1.1 no such user here", "failed"),
        ("MAIL", "452 4.3.1 insufficient system storage", "retrying"),
        ("MAIL", "553 5.7.1 sender not allowed", "failed"),
        ("DATA", "451 4.7.1 greylisted, come back later", "retrying"),
        ("DATA", "554 5.6.0 message content rejected", "failed"),
    ],
)
async def test_smtp_reply_code_decides_between_retry_and_failure(
    db: asyncpg.Connection,
    pool: asyncpg.Pool,
    smtp: SmtpTestServer,
    channel_senders: dict[str, Sender],
    command: Any,
    reply: str,
    status: str,
) -> None:
    await add_account(db, smtp)
    smtp.answer(command, reply)
    ticket_id, _ = await receive_mail(db, customer_mail())
    message_id, outbox_id = await queue_reply(db, ticket_id)

    assert await deliver(pool, channel_senders, outbox_id) == ("email", status)

    message, row = await rows(db, message_id)
    code, _, text = reply.partition(" ")
    assert row["last_error"].startswith(f"SMTP {code} {text} (at {command}")
    if command == "RCPT":
        assert row["last_error"].endswith(f"(at RCPT TO:<{CUSTOMER}>)")
    assert (message["delivery_status"], message["delivery_error"]) == (status, row["last_error"])
    assert row["attempts"] == 1
    # Only DATA puts a mail in front of the customer.
    assert (row["handed_off_at"] is not None) == (command == "DATA")
    assert smtp.received == []


async def test_a_tarpitting_server_times_out_and_is_retried_while_other_mail_flows(
    db: asyncpg.Connection,
    pool: asyncpg.Pool,
    settings: Settings,
) -> None:
    tarpit, healthy = SmtpTestServer(), SmtpTestServer()
    await tarpit.start()
    await healthy.start()
    try:
        await add_account(db, tarpit, "slow")
        await add_account(db, healthy)
        slow_ticket, _ = await receive_mail(db, customer_mail(message_id="<slow@customer.example>"))
        await db.execute("UPDATE tickets SET channel_account = 'slow' WHERE id = $1", slow_ticket)
        fast_ticket, _ = await receive_mail(
            db, customer_mail(message_id="<fast@customer.example>", subject="Jina vec")
        )
        slow_message, slow_outbox = await queue_reply(db, slow_ticket, "Pomaly.")
        fast_message, fast_outbox = await queue_reply(db, fast_ticket, "Rychly.")
        short = msgspec.structs.replace(
            settings, email=msgspec.structs.replace(settings.email, smtp_timeout_seconds=2.0)
        )
        channel_senders = senders(pool, short)
        # Stalled before the hand-off: retried. (A server silent after the mail's
        # content may have kept it: that is possibly_sent, tested below.)
        tarpit.stall("RCPT")

        slow = asyncio.create_task(deliver(pool, channel_senders, slow_outbox))
        await tarpit.wait_stalled("RCPT")
        # The stalled delivery holds no database connection and blocks nobody.
        assert await deliver(pool, channel_senders, fast_outbox) == ("email", "sent")
        assert await slow == ("email", "retrying")

        assert only(healthy.received).message["Subject"].startswith("Re: Jina vec")
        assert tarpit.received == []
        _, row = await rows(db, slow_message)
        assert row["status"] == "retrying"
        assert row["last_error"] == (
            f"the SMTP server 127.0.0.1:{tarpit.port} did not answer within 2 s "
            f"(at RCPT TO:<{CUSTOMER}>)"
        )
        _, fast_row = await rows(db, fast_message)
        assert fast_row["status"] == "sent"
    finally:
        tarpit.release("RCPT")
        await tarpit.stop()
        await healthy.stop()


async def test_acceptance_is_recorded_without_waiting_for_a_slow_goodbye(
    db: asyncpg.Connection,
    pool: asyncpg.Pool,
    smtp: SmtpTestServer,
    channel_senders: dict[str, Sender],
) -> None:
    await add_account(db, smtp)
    ticket_id, _ = await receive_mail(db, customer_mail())
    message_id, outbox_id = await queue_reply(db, ticket_id)
    smtp.stall("QUIT")

    assert await deliver(pool, channel_senders, outbox_id) == ("email", "sent")

    # Recorded while the server still holds our QUIT: the session is open, unanswered.
    assert smtp.stalled("QUIT") and smtp.open_sessions() == 1
    message, row = await rows(db, message_id)
    assert (row["status"], message["delivery_status"]) == ("sent", "sent")
    assert len(smtp.received) == 1
    smtp.release("QUIT")
    await wait_until(lambda: _no_sessions(smtp), "the client to hang up", seconds=120)


async def _no_sessions(smtp: SmtpTestServer) -> bool:
    return smtp.open_sessions() == 0


async def test_smtp_login_uses_the_accounts_credentials_and_never_reports_the_password(
    db: asyncpg.Connection,
    pool: asyncpg.Pool,
    channel_senders: dict[str, Sender],
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = SmtpTestServer(credentials=("helpdesk", "s3cret-smtp-pass"))
    await server.start()
    try:
        await add_account(db, server, smtp_username="helpdesk", smtp_password="wrong-pass-123")
        ticket_id, _ = await receive_mail(db, customer_mail())
        message_id, outbox_id = await queue_reply(db, ticket_id)

        assert await deliver(pool, channel_senders, outbox_id) == ("email", "retrying")
        _, row = await rows(db, message_id)
        assert row["last_error"].startswith("SMTP 535 ")
        assert row["last_error"].endswith("(at AUTH)")

        await db.execute(
            "UPDATE email_accounts SET smtp_password = 's3cret-smtp-pass' WHERE name = $1", ACCOUNT
        )
        await make_due(db, outbox_id)
        assert await deliver(pool, channel_senders, outbox_id) == ("email", "sent")
        assert len(server.received) == 1
        assert set(server.auth_logins) == {"helpdesk"}  # aiosmtplib tries each mechanism
        stored = await db.fetchrow("SELECT * FROM outbox WHERE id = $1", outbox_id)
        logged = caplog.text + str(dict(stored))
        assert "s3cret-smtp-pass" not in logged and "wrong-pass-123" not in logged
    finally:
        await server.stop()


async def test_a_worker_that_outlived_its_lease_does_not_send_what_another_took_over(
    db: asyncpg.Connection,
    pool: asyncpg.Pool,
    smtp: SmtpTestServer,
    channel_senders: dict[str, Sender],
) -> None:
    await add_account(db, smtp)
    ticket_id, _ = await receive_mail(db, customer_mail())
    message_id, outbox_id = await queue_reply(db, ticket_id)
    smtp.stall("RCPT")

    late = asyncio.create_task(deliver(pool, channel_senders, outbox_id))
    await smtp.wait_stalled("RCPT")
    # Its lease runs out before the hand-off: the relay gives the delivery to others.
    await db.execute(
        "UPDATE outbox SET locked_until = now() - interval '1 second' WHERE id = $1", outbox_id
    )
    assert await outbox.expire_abandoned_leases(db, MAX_ATTEMPTS) == (1, 0)
    smtp.release("RCPT")

    assert await late is None  # it reached its hand-off, found the row taken, sent nothing
    assert smtp.received == [] and smtp.unanswered == []
    assert await deliver(pool, channel_senders, outbox_id) == ("email", "sent")

    message, row = await rows(db, message_id)
    assert only(smtp.received).message["Message-ID"] == f"<{message['external_id']}>"
    assert (row["status"], row["attempts"]) == ("sent", 2)


async def test_agent_reply_over_the_api_is_mailed_by_the_worker(
    client: Client,
    factory: Factory,
    db: asyncpg.Connection,
    settings: Settings,
    smtp: SmtpTestServer,
) -> None:
    await add_account(db, smtp)
    ticket_id, _ = await receive_mail(db, customer_mail())
    agent = await factory.agent("agent")
    invoice = os.urandom(2000)
    response = await client.post(
        f"/tickets/{ticket_id}/replies",
        json={
            "text": "Dobry den,\n\nvymenime ho.",
            "attachments": [
                {
                    "filename": "invoice.pdf",
                    "content_type": "application/pdf",
                    "content": base64.b64encode(invoice).decode(),
                }
            ],
        },
        headers=agent.headers,
    )
    assert response.status_code == 201, response.text
    reply = response.json()
    assert reply["delivery_status"] == "pending"

    await run_worker(settings)

    shown = await message_view(client, agent, ticket_id, reply["id"])
    assert (shown["delivery_status"], shown["delivery_error"]) == ("sent", None)
    mail = only(smtp.received)
    external_id = await db.fetchval("SELECT external_id FROM messages WHERE id = $1", reply["id"])
    assert mail.message["Message-ID"] == f"<{external_id}>"
    assert mail.message["In-Reply-To"] == "<m1@customer.example>"
    assert mail.rcpt_tos == [CUSTOMER]
    (attachment,) = list(mail.message.iter_attachments())
    assert attachment.get_payload(decode=True) == invoice


# --- F1: a real `helpdesk worker` process killed in the middle of a delivery ---------------


async def kill_worker_when_stalled(
    process: subprocess.Popen[bytes], smtp: SmtpTestServer, command: Any, log: Path
) -> None:
    """SIGKILL the worker once its delivery is held at `command` by the server."""
    try:
        await wait_until(
            lambda: _stalled_or_dead(process, smtp, command),
            f"the worker to reach {command}",
            seconds=120,
        )
        if process.poll() is not None:
            output = await asyncio.to_thread(log.read_text)
            raise AssertionError(f"the worker exited early:\n{output[-3000:]}")
    finally:
        process.send_signal(signal.SIGKILL)
        await asyncio.to_thread(process.wait, 60)


async def _stalled_or_dead(
    process: subprocess.Popen[bytes], smtp: SmtpTestServer, command: Any
) -> bool:
    return smtp.stalled(command) or process.poll() is not None


async def expire_after_lease(db: asyncpg.Connection, outbox_id: int) -> asyncpg.Record:
    """Run the relay's lease check until the dead worker's lease has run out."""

    async def expired() -> bool:
        await outbox.expire_abandoned_leases(db, MAX_ATTEMPTS)
        return await db.fetchval("SELECT status <> 'sending' FROM outbox WHERE id = $1", outbox_id)

    await wait_until(expired, "the lease to expire", seconds=120)
    row: asyncpg.Record = await db.fetchrow("SELECT * FROM outbox WHERE id = $1", outbox_id)
    return row


async def test_worker_killed_before_the_handoff_is_retried_and_mails_exactly_once(
    db: asyncpg.Connection,
    pool: asyncpg.Pool,
    smtp: SmtpTestServer,
    channel_senders: dict[str, Sender],
    database_url: str,
    servers: Servers,
    tmp_path: Path,
) -> None:
    await add_account(db, smtp)
    ticket_id, _ = await receive_mail(db, customer_mail())
    message_id, outbox_id = await queue_reply(db, ticket_id)
    external_id = await db.fetchval("SELECT external_id FROM messages WHERE id = $1", message_id)
    smtp.stall("RCPT")
    log = tmp_path / "worker.log"

    await kill_worker_when_stalled(
        start_worker(database_url, servers.redis_url, log), smtp, "RCPT", log
    )
    smtp.release("RCPT")

    row = await expire_after_lease(db, outbox_id)
    assert (row["status"], row["handed_off_at"]) == ("retrying", None)
    assert row["last_error"] == outbox.NOT_HANDED_OFF
    assert smtp.received == [] and smtp.unanswered == []

    assert await deliver(pool, channel_senders, outbox_id) == ("email", "sent")
    message, row = await rows(db, message_id)
    assert only(smtp.received).message["Message-ID"] == f"<{external_id}>"
    assert message["external_id"] == external_id
    assert (row["status"], message["delivery_status"]) == ("sent", "sent")


async def test_worker_killed_during_data_leaves_possibly_sent_and_nothing_is_resent(
    db: asyncpg.Connection,
    pool: asyncpg.Pool,
    smtp: SmtpTestServer,
    channel_senders: dict[str, Sender],
    database_url: str,
    servers: Servers,
    settings: Settings,
    tmp_path: Path,
) -> None:
    await add_account(db, smtp)
    ticket_id, _ = await receive_mail(db, customer_mail())
    message_id, outbox_id = await queue_reply(db, ticket_id)
    external_id = await db.fetchval("SELECT external_id FROM messages WHERE id = $1", message_id)
    smtp.stall("DATA")
    log = tmp_path / "worker.log"

    await kill_worker_when_stalled(
        start_worker(database_url, servers.redis_url, log), smtp, "DATA", log
    )
    smtp.release("DATA")

    row = await expire_after_lease(db, outbox_id)
    assert row["status"] == "possibly_sent"
    assert row["handed_off_at"] is not None
    assert row["last_error"] == outbox.POSSIBLY_SENT
    message, _ = await rows(db, message_id)
    assert (message["delivery_status"], message["delivery_error"]) == (
        "possibly_sent",
        outbox.POSSIBLY_SENT,
    )
    # The content reached the server once and was never acknowledged.
    assert len(smtp.unanswered) == 1 and smtp.received == []
    assert f"<{external_id}>".encode() in smtp.unanswered[0]

    # Nothing sends it again: neither another attempt nor the relay.
    assert await deliver(pool, channel_senders, outbox_id) is None
    redis = await create_arq_pool(redis_settings(settings.redis_url))
    try:
        assert await relay_outbox({"pool": pool, "settings": settings, "redis": redis}) == 0
    finally:
        await redis.aclose()
    assert smtp.received == [] and len(smtp.unanswered) == 1
    assert dict(await db.fetchrow("SELECT * FROM outbox WHERE id = $1", outbox_id)) == dict(row)
    assert await db.fetchval("SELECT external_id FROM messages WHERE id = $1", message_id) == (
        external_id
    )


async def test_a_connection_lost_after_the_server_took_the_mail_is_possibly_sent_never_resent(
    db: asyncpg.Connection,
    pool: asyncpg.Pool,
    smtp: SmtpTestServer,
    channel_senders: dict[str, Sender],
    settings: Settings,
) -> None:
    """The server accepted the mail, then the connection dropped before its 250 came
    back: a retry would mail the customer twice, so the delivery is possibly_sent."""
    await add_account(db, smtp)
    ticket_id, _ = await receive_mail(db, customer_mail())
    message_id, outbox_id = await queue_reply(db, ticket_id)
    smtp.drop_after_data()

    assert await deliver(pool, channel_senders, outbox_id) == ("email", "possibly_sent")
    message, row = await rows(db, message_id)
    assert (row["status"], message["delivery_status"]) == ("possibly_sent", "possibly_sent")
    assert "may have been accepted" in row["last_error"]
    assert row["handed_off_at"] is not None
    assert len(smtp.received) == 1

    # Neither another attempt nor the relay sends it again.
    assert await deliver(pool, channel_senders, outbox_id) is None
    redis = await create_arq_pool(redis_settings(settings.redis_url))
    try:
        assert await relay_outbox({"pool": pool, "settings": settings, "redis": redis}) == 0
    finally:
        await redis.aclose()
    assert len(smtp.received) == 1


async def test_a_4xx_answer_to_data_is_still_retried(
    db: asyncpg.Connection,
    pool: asyncpg.Pool,
    smtp: SmtpTestServer,
    channel_senders: dict[str, Sender],
) -> None:
    """An answer says the server did not take the mail: safe to try again."""
    await add_account(db, smtp)
    ticket_id, _ = await receive_mail(db, customer_mail())
    _, outbox_id = await queue_reply(db, ticket_id)
    smtp.answer("DATA", "451 4.3.0 try again later")

    assert await deliver(pool, channel_senders, outbox_id) == ("email", "retrying")
    smtp.answer("DATA", None)
    await make_due(db, outbox_id)
    assert await deliver(pool, channel_senders, outbox_id) == ("email", "sent")
    assert len(smtp.received) == 1


async def test_a_server_silent_after_the_mails_content_leaves_it_possibly_sent(
    db: asyncpg.Connection,
    pool: asyncpg.Pool,
    smtp: SmtpTestServer,
    settings: Settings,
) -> None:
    """RFC 1047: a timeout waiting for the answer to the final dot may follow a mail the
    server queued; resending it is how duplicates happen."""
    await add_account(db, smtp)
    ticket_id, _ = await receive_mail(db, customer_mail())
    message_id, outbox_id = await queue_reply(db, ticket_id)
    short = msgspec.structs.replace(
        settings, email=msgspec.structs.replace(settings.email, smtp_timeout_seconds=1.0)
    )
    smtp.stall("DATA")
    try:
        assert await deliver(pool, senders(pool, short), outbox_id) == ("email", "possibly_sent")
    finally:
        smtp.release("DATA")
    _, row = await rows(db, message_id)
    assert "may have been accepted" in row["last_error"]
    assert await deliver(pool, senders(pool, short), outbox_id) is None
