"""Inbound mail is stored exactly once and joins the right ticket (issue 3, threading)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import asyncpg

from helpdesk.channels.email.ingest import IngestResult, ingest_email
from helpdesk.channels.email.parse import parse_email
from helpdesk.config import SlaSettings
from helpdesk.db.pool import connect
from tests.conftest import Servers


def mail(
    *,
    message_id: str | None = "<m1@customer.example>",
    sender: str = "jana@example.cz",
    subject: str = "Reklamace hrnku",
    body: str = "Hrnek dorazil rozbity.",
    in_reply_to: str | None = None,
    references: str | None = None,
) -> bytes:
    headers = [
        f"From: Jana <{sender}>",
        "To: podpora@shop.example",
        f"Subject: {subject}",
        "Date: Mon, 23 Nov 2026 09:00:00 +0100",
    ]
    if message_id:
        headers.append(f"Message-ID: {message_id}")
    if in_reply_to:
        headers.append(f"In-Reply-To: {in_reply_to}")
    if references:
        headers.append(f"References: {references}")
    return ("\r\n".join(headers) + "\r\n\r\n" + body + "\r\n").encode()


async def ingest(conn: asyncpg.Connection, raw: bytes) -> IngestResult:
    return await ingest_email(conn, parse_email(raw), raw, account="support", sla=SlaSettings())


async def test_new_mail_opens_a_ticket_for_the_sender(db: asyncpg.Connection) -> None:
    result = await ingest(db, mail())
    assert result.created_ticket and not result.duplicate
    ticket = await db.fetchrow("SELECT * FROM tickets WHERE id = $1", result.ticket_id)
    assert ticket["subject"] == "Reklamace hrnku"
    assert ticket["channel"] == "email"
    assert ticket["first_response_due_at"] is not None
    identity = await db.fetchrow("SELECT * FROM customer_identities")
    assert (identity["channel"], identity["external_id"]) == ("email", "jana@example.cz")
    assert identity["customer_id"] == ticket["customer_id"]


async def test_the_same_mail_delivered_three_times_is_stored_once(
    db: asyncpg.Connection, database_url: str
) -> None:
    raw = mail()
    first = await ingest(db, raw)
    others = [await connect(database_url) for _ in range(3)]
    try:
        results = await asyncio.gather(*(ingest(conn, raw) for conn in others))
    finally:
        for conn in others:
            await conn.close()
    assert all(r.duplicate and r.message_id == first.message_id for r in results)
    assert await db.fetchval("SELECT count(*) FROM messages") == 1
    assert await db.fetchval("SELECT count(*) FROM tickets") == 1


async def test_concurrent_first_deliveries_make_one_ticket(
    db: asyncpg.Connection, database_url: str
) -> None:
    raw = mail(message_id="<race@customer.example>")
    conns = [await connect(database_url) for _ in range(4)]
    try:
        results = await asyncio.gather(*(ingest(conn, raw) for conn in conns))
    finally:
        for conn in conns:
            await conn.close()
    assert sum(not r.duplicate for r in results) == 1
    assert len({r.ticket_id for r in results}) == 1
    assert await db.fetchval("SELECT count(*) FROM messages") == 1
    assert await db.fetchval("SELECT count(*) FROM customers") == 1


async def test_two_mails_of_a_new_sender_at_once_make_one_customer(
    db: asyncpg.Connection, database_url: str
) -> None:
    """Different mails (so different message locks) from an address never seen before,
    stored concurrently: one customer, and no customer row created and deleted again."""
    mails = [
        mail(message_id=f"<burst-{n}@customer.example>", subject=f"Dotaz {n}") for n in range(4)
    ]
    conns = [await connect(database_url) for _ in mails]
    try:
        results = await asyncio.gather(
            *(ingest(c, raw) for c, raw in zip(conns, mails, strict=True))
        )
    finally:
        for conn in conns:
            await conn.close()
    customers = {
        await db.fetchval("SELECT customer_id FROM tickets WHERE id = $1", r.ticket_id)
        for r in results
    }
    assert len(customers) == 1
    assert await db.fetchval("SELECT count(*) FROM customers") == 1
    assert await db.fetchval("SELECT last_value FROM customers_id_seq") == customers.pop()


async def test_mail_without_message_id_is_deduplicated_by_content(
    db: asyncpg.Connection,
) -> None:
    raw = mail(message_id=None)
    first = await ingest(db, raw)
    second = await ingest(db, raw)
    assert second.duplicate and second.message_id == first.message_id


async def test_reply_citing_a_message_id_joins_its_ticket(db: asyncpg.Connection) -> None:
    first = await ingest(db, mail())
    reply = await ingest(
        db,
        mail(
            message_id="<m2@customer.example>",
            subject="Re: něco jiného",
            in_reply_to="<m1@customer.example>",
        ),
    )
    via_references = await ingest(
        db,
        mail(
            message_id="<m3@customer.example>",
            subject="Fwd",
            references="<x@y> <m2@customer.example>",
        ),
    )
    assert reply.ticket_id == via_references.ticket_id == first.ticket_id
    assert not reply.created_ticket
    assert await db.fetchval("SELECT count(*) FROM tickets") == 1


async def test_ticket_number_in_subject_joins_only_for_the_same_customer(
    db: asyncpg.Connection,
) -> None:
    """A11: a stranger citing someone's ticket number gets a ticket of their own."""
    first = await ingest(db, mail())
    number = await db.fetchval("SELECT number FROM tickets WHERE id = $1", first.ticket_id)
    same = await ingest(db, mail(message_id="<m2@x>", subject=f"Re: [#{number}] Reklamace"))
    stranger = await ingest(
        db,
        mail(
            message_id="<m3@x>", sender="mallory@evil.example", subject=f"Re: [#{number}] Reklamace"
        ),
    )
    assert same.ticket_id == first.ticket_id
    assert stranger.created_ticket and stranger.ticket_id != first.ticket_id


async def test_customer_reply_reopens_a_solved_ticket_and_closed_gets_a_follow_up(
    db: asyncpg.Connection,
) -> None:
    first = await ingest(db, mail())
    await db.execute(
        "UPDATE tickets SET status = 'solved', solved_at = now() WHERE id = $1", first.ticket_id
    )
    reopened = await ingest(db, mail(message_id="<m2@x>", in_reply_to="<m1@customer.example>"))
    row = await db.fetchrow("SELECT status, solved_at FROM tickets WHERE id = $1", first.ticket_id)
    assert reopened.ticket_id == first.ticket_id
    assert (row["status"], row["solved_at"]) == ("open", None)
    await db.execute("UPDATE tickets SET status = 'closed' WHERE id = $1", first.ticket_id)
    follow_up = await ingest(db, mail(message_id="<m3@x>", in_reply_to="<m1@customer.example>"))
    assert follow_up.created_ticket and follow_up.ticket_id != first.ticket_id


async def test_reply_to_a_merged_ticket_lands_in_the_surviving_one(
    db: asyncpg.Connection,
) -> None:
    first = await ingest(db, mail())
    other = await ingest(db, mail(message_id="<o1@x>", subject="Jiný dotaz"))
    await db.execute(
        "UPDATE tickets SET merged_into_id = $2, status = 'closed' WHERE id = $1",
        first.ticket_id,
        other.ticket_id,
    )
    reply = await ingest(db, mail(message_id="<m2@x>", in_reply_to="<m1@customer.example>"))
    assert reply.ticket_id == other.ticket_id


async def test_ambiguous_sender_is_never_linked_to_a_customer(db: asyncpg.Connection) -> None:
    """B7: the CVE-2023-27043 address does not make the mail Alice's or Bob's."""
    await ingest(db, mail(sender="alice@example.org"))
    raw = (
        b"From: alice@example.org)<bob@example.org>\r\nSubject: hi\r\n"
        b"Message-ID: <amb@x>\r\n\r\nbody\r\n"
    )
    result = await ingest(db, raw)
    customer = await db.fetchval("SELECT customer_id FROM tickets WHERE id = $1", result.ticket_id)
    alice = await db.fetchval(
        "SELECT customer_id FROM customer_identities WHERE external_id = 'alice@example.org'"
    )
    assert customer != alice
    assert await db.fetchval("SELECT count(*) FROM customer_identities") == 1


async def test_mail_ingest_command_stores_each_file_once(servers: Servers, tmp_path: Path) -> None:
    dsn = await servers.create_database("helpdesk_mail")
    try:
        sample = tmp_path / "one.eml"
        sample.write_bytes(mail())
        env = {k: v for k, v in os.environ.items() if not k.startswith("HELPDESK_")}
        env["HELPDESK_DATABASE_URL"] = dsn
        add = [sys.executable, "-m", "helpdesk", "mail", "account", "add", "support"]
        created = await asyncio.to_thread(
            subprocess.run,
            [*add, "--address", "podpora@shop.example"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert created.returncode == 0, created.stderr
        command = [sys.executable, "-m", "helpdesk", "mail", "ingest", str(sample), str(sample)]
        result = await asyncio.to_thread(
            subprocess.run,
            command,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        lines = [json.loads(line) for line in result.stdout.splitlines()]
        assert [line["outcome"] for line in lines] == ["stored", "duplicate"]
        assert lines[0]["ticket_id"] == lines[1]["ticket_id"]
    finally:
        await servers.drop_database(dsn)
