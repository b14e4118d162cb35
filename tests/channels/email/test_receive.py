"""Inbound mail end to end through `receive`: loops (B8), bounces, control headers (B9),
strangers (A11), malformed mail (B1) and the quarantine, on real PostgreSQL (rows of
docs/reliability.md)."""

from __future__ import annotations

import asyncio
import base64

import asyncpg
import msgspec
import pytest

from helpdesk.channels.email.accounts import get_account
from helpdesk.channels.email.receive import Receipt, receive
from helpdesk.config import Settings
from helpdesk.db.pool import connect
from tests.channels.email.builders import SUPPORT, dsn, mail, support_account


async def _receive(db: asyncpg.Connection, settings: Settings, raw: bytes) -> Receipt:
    """Receive `raw` on the 'support' account (created on first use)."""
    account = await get_account(db, "support") or await support_account(db)
    return await receive(db, settings, account, raw, source="cli")


async def _acks(db: asyncpg.Connection) -> list[asyncpg.Record]:
    return list(
        await db.fetch(
            """SELECT m.*, o.status AS outbox_status FROM messages m
               JOIN outbox o ON o.message_id = m.id
               WHERE m.kind = 'system' ORDER BY m.id"""
        )
    )


async def test_new_ticket_gets_one_acknowledgement_queued(
    db: asyncpg.Connection, settings: Settings
) -> None:
    receipt = await _receive(db, settings, mail())
    assert receipt.outcome == "stored" and receipt.created_ticket
    acks = await _acks(db)
    assert len(acks) == 1
    assert receipt.outbox_ids == [await db.fetchval("SELECT id FROM outbox")]
    ack = acks[0]
    number = await db.fetchval("SELECT number FROM tickets WHERE id = $1", receipt.ticket_id)
    assert ack["direction"] == "outbound" and ack["channel_account"] == "support"
    assert ack["recipient_addresses"] == ["jana@example.cz"]
    # Jana writes Czech from a .cz address: acknowledged in Czech.
    assert f"#{number}" in ack["body_text"] and "60 minut" in ack["body_text"]
    assert ack["body_text"].startswith("Děkujeme")
    assert ack["outbox_status"] == "pending"
    # The acknowledgement is not an agent's first response.
    assert (
        await db.fetchval("SELECT first_responded_at FROM tickets WHERE id = $1", receipt.ticket_id)
        is None
    )
    # A follow-up on the same ticket gets none.
    await _receive(
        db, settings, mail(message_id="<m2@customer.example>", in_reply_to="<m1@customer.example>")
    )
    assert len(await _acks(db)) == 1


@pytest.mark.parametrize(
    ("label", "raw"),
    [
        ("Auto-Submitted", mail(headers={"Auto-Submitted": "auto-replied"})),
        ("Precedence bulk", mail(headers={"Precedence": "bulk"})),
        ("Precedence list", mail(headers={"Precedence": "list"})),
        ("X-Autoreply", mail(headers={"X-Autoreply": "yes"})),
        ("X-Auto-Response-Suppress", mail(headers={"X-Auto-Response-Suppress": "All"})),
        ("List-Id", mail(headers={"List-Id": "<news.example.cz>"})),
        ("X-Loop", mail(headers={"X-Loop": "podpora@shop.example"})),
        ("null Return-Path", mail(headers={"Return-Path": "<>"})),
        ("mailer-daemon", mail(sender="MAILER-DAEMON@mx.example.cz")),
        ("our own address", mail(sender=f"Shop <{SUPPORT}>")),
        ("our own Message-ID", mail(message_id="<helpdesk.10001.1.ab12cd34@shop.example>")),
        ("a bounce of something we never sent", dsn("unknown@elsewhere.example")),
    ],
)
async def test_loop_mail_is_stored_but_never_auto_answered(
    db: asyncpg.Connection, settings: Settings, label: str, raw: bytes
) -> None:
    """B8: stored (nothing lost), no acknowledgement, and the reason is on the ticket."""
    receipt = await _receive(db, settings, raw)
    assert receipt.outcome == "stored", label
    assert await _acks(db) == [], label
    event = await db.fetchrow(
        """SELECT changes FROM ticket_events
           WHERE ticket_id = $1 AND action = 'auto_reply_suppressed'""",
        receipt.ticket_id,
    )
    assert event is not None and event["changes"]["reason"], label


async def test_twenty_mails_in_ten_minutes_get_at_most_one_acknowledgement(
    db: asyncpg.Connection, settings: Settings, database_url: str
) -> None:
    """B8: an auto-responder answering our acknowledgement cannot start a loop, even when
    its mails arrive concurrently."""
    account = await support_account(db)

    async def deliver(n: int) -> Receipt:
        conn = await connect(database_url)
        try:
            raw = mail(message_id=f"<loop-{n}@customer.example>", subject=f"Re: ticket {n}")
            return await receive(conn, settings, account, raw, source="imap")
        finally:
            await conn.close()

    receipts = await asyncio.gather(*(deliver(n) for n in range(20)))
    assert sum(r.created_ticket for r in receipts) == 20
    assert len(await _acks(db)) == 1
    assert await db.fetchval("SELECT count(*) FROM auto_replies") == 1


async def test_limit_is_configurable_and_zero_turns_acknowledgements_off(
    db: asyncpg.Connection, settings: Settings
) -> None:
    three = msgspec.structs.replace(
        settings, email=msgspec.structs.replace(settings.email, auto_reply_limit_per_hour=3)
    )
    for n in range(5):
        await _receive(db, three, mail(message_id=f"<n{n}@customer.example>"))
    assert len(await _acks(db)) == 3
    off = msgspec.structs.replace(
        settings, email=msgspec.structs.replace(settings.email, auto_reply_limit_per_hour=0)
    )
    await _receive(db, off, mail(message_id="<x@customer.example>", sender="eva@example.cz"))
    assert len(await _acks(db)) == 3


async def test_account_without_acknowledgements_sends_none(
    db: asyncpg.Connection, settings: Settings
) -> None:
    account = await support_account(db, auto_acknowledge=False)
    receipt = await receive(db, settings, account, mail(), source="http")
    assert receipt.created_ticket and await _acks(db) == []


async def _sent_reply(db: asyncpg.Connection, ticket_id: int) -> tuple[int, str]:
    """An outbound email reply of ours on the ticket, as the outbox leaves it once sent."""
    external_id = f"helpdesk.10001.7.0badc0de@{SUPPORT.split('@')[1]}"
    message_id = await db.fetchval(
        """INSERT INTO messages (ticket_id, direction, kind, channel, channel_account,
                                 external_id, body_text, delivery_status, recipient_addresses)
           VALUES ($1, 'outbound', 'public', 'email', 'support', $2, 'Omlouvame se.', 'sent',
                   ARRAY['jana@example.cz']) RETURNING id""",
        ticket_id,
        external_id,
    )
    await db.execute(
        """INSERT INTO outbox (message_id, ticket_id, channel, status)
           VALUES ($1, $2, 'email', 'sent')""",
        message_id,
        ticket_id,
    )
    return message_id, external_id


async def test_bounce_fails_the_original_delivery_instead_of_opening_a_ticket(
    db: asyncpg.Connection, settings: Settings
) -> None:
    first = await _receive(db, settings, mail())
    assert first.ticket_id is not None
    reply_id, external_id = await _sent_reply(db, first.ticket_id)
    tickets_before = await db.fetchval("SELECT count(*) FROM tickets")

    bounce = await _receive(db, settings, dsn(external_id))
    assert bounce.outcome == "bounce"
    assert (bounce.ticket_id, bounce.message_id) == (first.ticket_id, reply_id)
    assert await db.fetchval("SELECT count(*) FROM tickets") == tickets_before
    reply = await db.fetchrow("SELECT * FROM messages WHERE id = $1", reply_id)
    assert reply["delivery_status"] == "failed"
    assert "jana@example.cz" in reply["delivery_error"]
    assert "550 5.1.1" in reply["delivery_error"]
    assert (
        await db.fetchval("SELECT status FROM outbox WHERE message_id = $1", reply_id) == "failed"
    )
    assert len(await _acks(db)) == 1  # only the first mail's acknowledgement, none for the DSN
    # The same bounce again (IMAP re-fetch) changes nothing.
    again = await _receive(db, settings, dsn(external_id))
    assert again.outcome == "duplicate"
    assert (
        await db.fetchval("SELECT count(*) FROM ticket_events WHERE action = 'delivery_failed'")
        == 1
    )


async def test_delayed_dsn_does_not_fail_the_delivery(
    db: asyncpg.Connection, settings: Settings
) -> None:
    first = await _receive(db, settings, mail())
    assert first.ticket_id is not None
    reply_id, external_id = await _sent_reply(db, first.ticket_id)
    receipt = await _receive(db, settings, dsn(external_id, action="delayed", status="4.4.1"))
    assert receipt.outcome == "bounce"
    reply = await db.fetchrow("SELECT * FROM messages WHERE id = $1", reply_id)
    assert reply["delivery_status"] == "sent"
    assert "delayed" in reply["delivery_error"]


async def test_control_headers_in_customer_mail_are_ignored(
    db: asyncpg.Connection, settings: Settings
) -> None:
    """B9: nothing in a customer's mail can set priority, group, assignee or status."""
    raw = mail(
        headers={
            "X-Helpdesk-Priority": "urgent",
            "X-Helpdesk-Group": "1",
            "X-Helpdesk-Assignee": "1",
            "X-Helpdesk-Status": "closed",
            "X-Helpdesk-Ticket": "1",
        }
    )
    receipt = await _receive(db, settings, raw)
    ticket = await db.fetchrow("SELECT * FROM tickets WHERE id = $1", receipt.ticket_id)
    assert (ticket["priority"], ticket["status"]) == ("normal", "new")
    assert ticket["group_id"] is None and ticket["assignee_id"] is None


async def test_stranger_citing_our_message_id_gets_a_ticket_of_their_own(
    db: asyncpg.Connection, settings: Settings
) -> None:
    """A11: mail citing ticket A's Message-ID or number, from someone who is not part of
    ticket A, never lands on it (the next reply on A would go to them)."""
    first = await _receive(db, settings, mail())
    assert first.ticket_id is not None
    _, external_id = await _sent_reply(db, first.ticket_id)
    number = await db.fetchval("SELECT number FROM tickets WHERE id = $1", first.ticket_id)
    stranger = await _receive(
        db,
        settings,
        mail(
            message_id="<evil@attacker.example>",
            sender="Mallory <mallory@attacker.example>",
            subject=f"Re: Reklamace hrnku [#{number}]",
            in_reply_to=f"<{external_id}>",
        ),
    )
    assert stranger.created_ticket and stranger.ticket_id != first.ticket_id
    authors = await db.fetch(
        """SELECT DISTINCT author_customer_id FROM messages
           WHERE ticket_id = $1 AND direction = 'inbound'""",
        first.ticket_id,
    )
    assert len(authors) == 1
    # No inbound mail is ever an agent action.
    assert (
        await db.fetchval(
            """SELECT count(*) FROM messages
               WHERE direction = 'inbound' AND author_agent_id IS NOT NULL"""
        )
        == 0
    )


async def test_colleague_in_cc_replying_to_all_joins_the_ticket(
    db: asyncpg.Connection, settings: Settings
) -> None:
    first = await _receive(db, settings, mail(to=f"{SUPPORT}, petr@example.cz"))
    colleague = await _receive(
        db,
        settings,
        mail(
            message_id="<cc-reply@example.cz>",
            sender="Petr <petr@example.cz>",
            subject="Re: Reklamace hrnku",
            in_reply_to="<m1@customer.example>",
        ),
    )
    assert colleague.ticket_id == first.ticket_id and not colleague.created_ticket


async def test_malformed_mail_becomes_a_ticket_with_warnings_and_its_original_kept(
    db: asyncpg.Connection, settings: Settings
) -> None:
    """B1: no boundary, truncated base64, unknown charset, bad RFC 2047."""
    raw = (
        b"From: Jana <jana@example.cz>\r\nTo: podpora@shop.example\r\n"
        b"Subject: =?x-unknown?Q?Reklamace_=C8?= zbozi\r\nMessage-ID: <bad@example.cz>\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed\r\n\r\n"
        b"--nope\r\nContent-Type: text/plain; charset=x-martian\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n"
        b"SGVsbG8gd29ybGQhIFRoaXMgaXMgdHJ1bmNhdGVk\r\nSGVsbG8"
    )
    receipt = await _receive(db, settings, raw)
    assert receipt.outcome == "stored" and receipt.created_ticket
    event = await db.fetchrow(
        "SELECT changes FROM ticket_events WHERE ticket_id = $1 AND action = 'created'",
        receipt.ticket_id,
    )
    assert event["changes"]["warnings"]
    kept = await db.fetchval(
        "SELECT raw FROM message_sources WHERE message_id = $1", receipt.message_id
    )
    assert bytes(kept) == raw


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "empty"),
        (b"\r\n\r\n   \r\n", "empty"),
        (b"\x00\x01\x02 binary garbage without any header line", "no mail headers"),
    ],
)
async def test_unimportable_mail_is_quarantined_byte_exact(
    db: asyncpg.Connection, settings: Settings, raw: bytes, reason: str
) -> None:
    receipt = await _receive(db, settings, raw)
    assert receipt.outcome == "quarantined" and reason in (receipt.reason or "")
    row = await db.fetchrow("SELECT * FROM email_quarantine WHERE id = $1", receipt.quarantine_id)
    assert bytes(row["raw"]) == raw and row["status"] == "held" and row["source"] == "cli"
    assert await db.fetchval("SELECT count(*) FROM tickets") == 0
    again = await _receive(db, settings, raw)
    assert again.quarantine_id == receipt.quarantine_id


async def test_oversized_mail_is_quarantined_not_dropped(
    db: asyncpg.Connection, settings: Settings
) -> None:
    small = msgspec.structs.replace(
        settings, email=msgspec.structs.replace(settings.email, max_message_bytes=2048)
    )
    raw = mail(body="x" * 5000)
    receipt = await _receive(db, small, raw)
    assert receipt.outcome == "quarantined" and "over the limit" in (receipt.reason or "")
    assert (
        bytes(
            await db.fetchval(
                "SELECT raw FROM email_quarantine WHERE id = $1", receipt.quarantine_id
            )
        )
        == raw
    )


async def test_attachment_over_the_limit_leaves_a_placeholder_and_the_message(
    db: asyncpg.Connection, settings: Settings
) -> None:
    """B2: the mail is kept, the big attachment is named on the message, not stored."""
    small = msgspec.structs.replace(settings, attachment_max_bytes=1000)
    big = base64.b64encode(b"%PDF" + b"x" * 5000).decode()
    raw = (
        "From: Jana <jana@example.cz>\r\nTo: podpora@shop.example\r\nSubject: Faktura\r\n"
        "Message-ID: <big@example.cz>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nPosilam fakturu.\r\n"
        '--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename="f.pdf"'
        f"\r\nContent-Transfer-Encoding: base64\r\n\r\n{big}\r\n--b--\r\n"
    ).encode()
    receipt = await _receive(db, small, raw)
    assert receipt.outcome == "stored"
    body = await db.fetchval("SELECT body_text FROM messages WHERE id = $1", receipt.message_id)
    assert body.startswith("Posilam fakturu.")
    assert "[attachment f.pdf (5004 bytes) not kept: larger than 1000 bytes]" in body
    assert await db.fetchval("SELECT count(*) FROM attachments") == 0


async def test_invalid_utf8_and_nul_are_stored_with_replacement_characters(
    db: asyncpg.Connection, settings: Settings
) -> None:
    """B3: PostgreSQL text takes neither NUL nor invalid UTF-8; nothing is lost either."""
    raw = (
        b"From: Jana <jana@example.cz>\r\nTo: podpora@shop.example\r\n"
        b"Subject: Vadn\xe9 znaky\x00\r\nMessage-ID: <b3@example.cz>\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n\r\nHrnek \xff\xfe rozbit\x00y.\r\n"
    )
    receipt = await _receive(db, settings, raw)
    assert receipt.outcome == "stored"
    row = await db.fetchrow(
        """SELECT m.body_text, t.subject FROM messages m JOIN tickets t ON t.id = m.ticket_id
           WHERE m.id = $1""",
        receipt.message_id,
    )
    assert "\x00" not in row["body_text"] and "\x00" not in row["subject"]
    assert row["body_text"].startswith("Hrnek") and "rozbit" in row["body_text"]
    assert (
        bytes(
            await db.fetchval(
                "SELECT raw FROM message_sources WHERE message_id = $1", receipt.message_id
            )
        )
        == raw
    )
