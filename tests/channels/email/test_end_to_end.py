"""The whole email story on real servers: a customer's mail arrives over IMAP (Dovecot),
becomes a ticket, gets an acknowledgement, an agent replies through the API, the SMTP
server (aiosmtpd) receives the reply threaded to the customer's mail, and the
customer's answer to that reply joins the same ticket."""

from __future__ import annotations

import asyncpg

from helpdesk.channels.email import accounts
from helpdesk.channels.email.accounts import EmailAccountCreate
from helpdesk.channels.email.imap.poller import poll_once
from helpdesk.config import Settings
from tests.channels.email.dovecot import Mailbox
from tests.channels.email.smtp_server import SmtpTestServer
from tests.channels.replies import run_worker
from tests.conftest import Client, Factory

CUSTOMER = "jana.novakova@example.cz"


def customer_mail() -> bytes:
    return (
        f"From: =?utf-8?q?Jana_Nov=C3=A1kov=C3=A1?= <{CUSTOMER}>\r\n"
        "To: podpora@shop.example\r\n"
        "Subject: =?utf-8?q?Reklamace_hrnku?=\r\n"
        "Date: Mon, 23 Nov 2026 09:00:00 +0100\r\n"
        "Message-ID: <first@mail.example.cz>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
        "\r\n"
        "Dobrý den, hrnek dorazil rozbitý.\r\n"
    ).encode()


def customer_answer(our_message_id: str, subject: str) -> bytes:
    """What the customer's mail client writes when she answers our reply."""
    return (
        f"From: Jana <{CUSTOMER}>\r\n"
        "To: podpora@shop.example\r\n"
        f"Subject: Re: {subject}\r\n"
        "Date: Mon, 23 Nov 2026 10:00:00 +0100\r\n"
        "Message-ID: <second@mail.example.cz>\r\n"
        f"In-Reply-To: {our_message_id}\r\n"
        f"References: <first@mail.example.cz> {our_message_id}\r\n"
        "\r\n"
        "Děkuji, posílám fotku později.\r\n"
    ).encode()


async def test_mail_in_over_imap_reply_out_over_smtp_answer_joins_the_ticket(
    client: Client,
    db: asyncpg.Connection,
    pool: asyncpg.Pool,
    settings: Settings,
    factory: Factory,
    mailbox: Mailbox,
    smtp: SmtpTestServer,
) -> None:
    await accounts.create_account(
        db,
        EmailAccountCreate(
            name="support",
            address="podpora@shop.example",
            display_name="Obchod",
            imap_host="127.0.0.1",
            imap_port=mailbox.server.port,
            imap_security="none",
            imap_username=mailbox.user,
            imap_password=mailbox.password,
            smtp_host="127.0.0.1",
            smtp_port=smtp.port,
            smtp_security="none",
        ),
    )
    account = await accounts.get_account(db, "support")
    assert account is not None

    # 1. The customer's mail arrives over IMAP and opens a ticket.
    await mailbox.append(customer_mail())
    assert (await poll_once(pool, settings, account)).imported == 1
    ticket = await db.fetchrow("SELECT * FROM tickets")
    assert ticket["subject"] == "Reklamace hrnku" and ticket["channel"] == "email"
    number = ticket["number"]

    # 2. The worker sends the acknowledgement (automatic: no loops, empty envelope sender).
    await run_worker(settings)
    (ack,) = smtp.received
    assert ack.mail_from in ("", "<>") and ack.rcpt_tos == [CUSTOMER]
    assert ack.message["Auto-Submitted"] == "auto-replied"
    assert ack.message["In-Reply-To"] == "<first@mail.example.cz>"
    assert f"[#{number}]" in ack.message["Subject"]

    # 3. An agent replies through the API; the worker mails it, threaded.
    agent = await factory.agent("agent")
    response = await client.post(
        f"/tickets/{ticket['id']}/replies",
        json={"text": "Dobrý den, pošleme nový hrnek."},
        headers=agent.headers,
    )
    assert response.status_code == 201, response.text
    await run_worker(settings)
    reply = smtp.received[-1]
    assert len(smtp.received) == 2
    assert reply.mail_from == "podpora@shop.example" and reply.rcpt_tos == [CUSTOMER]
    message = reply.message
    assert message["Subject"] == f"Re: Reklamace hrnku [#{number}]"
    assert message["In-Reply-To"] == "<first@mail.example.cz>"
    assert "<first@mail.example.cz>" in message["References"]
    assert message["From"].addresses[0].addr_spec == "podpora@shop.example"
    our_id = message["Message-ID"]
    stored = await db.fetchrow("SELECT * FROM messages WHERE id = $1", response.json()["id"])
    assert our_id == f"<{stored['external_id']}>" and stored["delivery_status"] == "sent"
    body = message.get_body(("plain",))
    assert body is not None and "pošleme nový hrnek" in body.get_content()

    # 4. The customer answers our reply; it joins the same ticket, no new acknowledgement.
    await mailbox.append(customer_answer(our_id, message["Subject"]))
    assert (await poll_once(pool, settings, account)).imported == 1
    assert await db.fetchval("SELECT count(*) FROM tickets") == 1
    inbound = await db.fetch(
        "SELECT external_id, ticket_id FROM messages WHERE direction = 'inbound' ORDER BY id"
    )
    assert [(m["external_id"], m["ticket_id"]) for m in inbound] == [
        ("first@mail.example.cz", ticket["id"]),
        ("second@mail.example.cz", ticket["id"]),
    ]
    await run_worker(settings)
    assert len(smtp.received) == 2

    # Polling again (a restarted poller) imports nothing twice.
    assert (await poll_once(pool, settings, account)).imported == 0
    assert await db.fetchval("SELECT count(*) FROM messages WHERE direction = 'inbound'") == 2
