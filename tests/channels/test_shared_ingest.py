"""Shared ingestion of chat messages: exactly once, edits in any order, conversations
to tickets, identities (docs/reliability.md rows F6, F7), and the webhook store-first path."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from helpdesk.channels.adapter import (
    AttachmentFetchError,
    InboundMessage,
    SenderIdentity,
    StatusUpdate,
)
from helpdesk.channels.ingest import (
    MAX_FETCH_ATTEMPTS,
    KeptAttachment,
    StoredMessage,
    apply_status,
    fetch_failure_reason,
    fetch_retry_delay,
    store_inbound,
    subject_from,
)
from helpdesk.config import SlaSettings
from helpdesk.customers.senders import customer_row_for
from helpdesk.db.pool import connect
from helpdesk.sla import recording as sla_recording
from helpdesk.sla import refresh as sla_refresh
from tests.conftest import blocked_on_lock
from tests.sla.history import EVERY_CLOCK_POLICY, next_response_cycles, sla_event_types

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def message(
    external_id: str = "100",
    *,
    text: str = "Dobrý den, kde je moje objednávka?",
    conversation: str = "chat-1",
    sender: str = "user-1",
    edited: bool = False,
    at: datetime = T0,
    email: str | None = None,
    notice: bool = False,
) -> InboundMessage:
    return InboundMessage(
        channel="telegram",
        channel_account="bot",
        external_id=external_id,
        conversation_id=conversation,
        sender=SenderIdentity(external_id=sender, display_name="Jana", email=email),
        text=text,
        sent_at=at,
        edited=edited,
        notice=notice,
    )


async def store(conn: asyncpg.Connection, item: InboundMessage) -> StoredMessage:
    return await store_inbound(
        conn, item, attachments=[], raw=b'{"update_id": 1}', sla=SlaSettings()
    )


async def test_same_message_three_times_concurrently_is_stored_once(
    db: asyncpg.Connection, database_url: str
) -> None:
    async def deliver() -> StoredMessage:
        conn = await connect(database_url)
        try:
            return await store(conn, message())
        finally:
            await conn.close()

    results = await asyncio.gather(deliver(), deliver(), deliver())
    assert sorted(r.duplicate for r in results) == [False, True, True]
    assert len({r.message_id for r in results}) == 1
    assert await db.fetchval("SELECT count(*) FROM messages") == 1
    assert await db.fetchval("SELECT count(*) FROM tickets") == 1
    assert await db.fetchval("SELECT count(*) FROM customer_identities") == 1


async def test_a_conversation_feeds_one_ticket_until_it_is_closed(
    db: asyncpg.Connection,
) -> None:
    first = await store(db, message("1"))
    second = await store(db, message("2", text="Ještě dotaz."))
    assert first.created_ticket and not second.created_ticket
    assert first.ticket_id == second.ticket_id
    ticket = await db.fetchrow("SELECT * FROM tickets WHERE id = $1", first.ticket_id)
    assert ticket["subject"] == "Dobrý den, kde je moje objednávka?"
    assert (ticket["channel"], ticket["channel_account"]) == ("telegram", "bot")
    await db.execute("UPDATE tickets SET status = 'solved' WHERE id = $1", first.ticket_id)
    reopened = await store(db, message("3"))
    assert reopened.ticket_id == first.ticket_id
    assert await db.fetchval("SELECT status FROM tickets WHERE id = $1", first.ticket_id) == "open"
    await db.execute("UPDATE tickets SET status = 'closed' WHERE id = $1", first.ticket_id)
    after_close = await store(db, message("4"))
    assert after_close.created_ticket and after_close.ticket_id != first.ticket_id
    other_chat = await store(db, message("5", conversation="chat-2"))
    assert other_chat.created_ticket


async def test_an_edit_before_its_original_keeps_the_newest_text(db: asyncpg.Connection) -> None:
    """F7: the edit arrives first; the original arriving later must not undo it."""
    edit = await store(db, message("7", text="opraveno", edited=True, at=T0 + timedelta(minutes=2)))
    original = await store(db, message("7", text="puvodni", at=T0))
    assert not edit.duplicate and original.duplicate
    assert await db.fetchval("SELECT body_text FROM messages") == "opraveno"
    newer = await store(db, message("7", text="znovu", edited=True, at=T0 + timedelta(minutes=5)))
    older = await store(db, message("7", text="stare", edited=True, at=T0 + timedelta(minutes=1)))
    assert newer.edited and not older.edited
    assert await db.fetchval("SELECT body_text FROM messages") == "znovu"


async def test_verified_email_links_a_new_identity_to_the_known_customer(
    db: asyncpg.Connection,
) -> None:
    known = await db.fetchval(
        "INSERT INTO customers (name, email) VALUES ('Jana', 'jana@example.cz') RETURNING id"
    )
    stored = await store(db, message("1", sender="U1", email="Jana@Example.cz"))
    customer = await db.fetchval("SELECT customer_id FROM tickets WHERE id = $1", stored.ticket_id)
    assert customer == known
    stranger = await store(db, message("2", sender="U2", conversation="c2"))
    assert (
        await db.fetchval("SELECT customer_id FROM tickets WHERE id = $1", stranger.ticket_id)
        != known
    )


async def test_statuses_only_move_forward(db: asyncpg.Connection) -> None:
    stored = await store(db, message("1"))
    await db.execute(
        """INSERT INTO messages (ticket_id, direction, kind, channel, channel_account,
                                 external_id, body_text, delivery_status)
           VALUES ($1, 'outbound', 'public', 'telegram', 'bot', 'out-1', 'hi', 'sent')""",
        stored.ticket_id,
    )
    read = StatusUpdate(external_id="out-1", status="read", at=T0)
    delivered = StatusUpdate(external_id="out-1", status="delivered", at=T0)
    assert await apply_status(db, "telegram", "bot", read, sla=SlaSettings())
    # "read" came before "delivered": the status stays "read"
    assert not await apply_status(db, "telegram", "bot", delivered, sla=SlaSettings())
    assert (
        await db.fetchval("SELECT provider_status FROM messages WHERE external_id = 'out-1'")
        == "read"
    )
    failed = StatusUpdate(external_id="out-1", status="failed", at=T0, reason="user blocked")
    assert await apply_status(db, "telegram", "bot", failed, sla=SlaSettings())
    row = await db.fetchrow("SELECT * FROM messages WHERE external_id = 'out-1'")
    assert (row["delivery_status"], row["delivery_error"]) == ("failed", "user blocked")


async def test_a_providers_failure_report_withdraws_the_reply_at_once(
    db: asyncpg.Connection,
) -> None:
    stored = await store(db, message("1"))
    ticket_id = stored.ticket_id
    reply_id = await db.fetchval(
        """INSERT INTO messages (ticket_id, direction, kind, channel, channel_account,
                                 external_id, body_text, delivery_status)
           VALUES ($1, 'outbound', 'public', 'telegram', 'bot', 'out-9', 'hned', 'sent')
           RETURNING id""",
        ticket_id,
    )
    replied = await db.fetchval("SELECT clock_timestamp()")
    await sla_recording.record(db, ticket_id, "agent_reply", replied, message_id=reply_id)
    await db.execute("UPDATE tickets SET first_responded_at = $2 WHERE id = $1", ticket_id, replied)
    await sla_refresh.refresh(db, ticket_id, SlaSettings())
    met = "SELECT met_at FROM ticket_sla_clocks WHERE ticket_id = $1 AND clock = 'first_response'"
    assert await db.fetchval(met, ticket_id) is not None

    failed = StatusUpdate(external_id="out-9", status="failed", at=T0, reason="bot was blocked")
    async with db.transaction():
        assert await apply_status(db, "telegram", "bot", failed, sla=SlaSettings())

    assert await db.fetchval(met, ticket_id) is None
    ticket = await db.fetchrow("SELECT * FROM tickets WHERE id = $1", ticket_id)
    assert ticket["first_responded_at"] is None
    event = await db.fetchval(
        "SELECT changes FROM ticket_events WHERE ticket_id = $1 AND action = 'reply_withdrawn'",
        ticket_id,
    )
    assert (event["message_id"], event["reason"]) == (reply_id, "bot was blocked")


def test_subjects_come_from_the_first_line() -> None:
    assert subject_from(message(text="\n\n  Reklamace   bot \nvíc textu")) == "Reklamace bot"
    assert len(subject_from(message(text="x" * 300))) == 80
    assert subject_from(message(text="")) == "New telegram conversation"


async def test_a_new_sender_linked_concurrently_ends_as_one_customer(
    db: asyncpg.Connection, database_url: str
) -> None:
    """Two first messages of a new sender stored at the same time (different message ids,
    so the per-message lock does not serialise them): the second waits for the first's
    identity and gets its customer without creating one of its own."""
    first, second = await connect(database_url), await connect(database_url)
    try:
        async with first.transaction():
            created = await customer_row_for(first, "telegram", "bot", message().sender)
            racing = asyncio.create_task(
                customer_row_for(second, "telegram", "bot", message().sender)
            )
            # The second waits on the identity's lock, before it inserts anything.
            assert await blocked_on_lock(db, "%pg_advisory_xact_lock%", racing)
        linked = await asyncio.wait_for(racing, 30)
    finally:
        await first.close()
        await second.close()

    assert linked["id"] == created["id"]
    assert await db.fetchval("SELECT count(*) FROM customers") == 1
    assert await db.fetchval("SELECT count(*) FROM customer_identities") == 1
    # No customer row was made and deleted again (that DELETE scans every referencing
    # table); the identity of the one customer is the first and only sequence value.
    assert await db.fetchval("SELECT last_value FROM customers_id_seq") == created["id"]


async def test_an_identity_linked_by_a_path_without_the_lock_leaves_no_orphan(
    db: asyncpg.Connection, database_url: str
) -> None:
    """An identity inserted meanwhile by code that does not take the identity lock (an
    import, an agent linking a profile): the ingest's own new customer loses the unique
    key, is deleted, and the message goes to the customer who holds the identity."""
    owner = await db.fetchval("INSERT INTO customers (name) VALUES ('Imported') RETURNING id")
    other, ingesting = await connect(database_url), await connect(database_url)
    try:
        async with other.transaction():
            await other.execute(
                """INSERT INTO customer_identities (customer_id, channel, channel_account,
                                                   external_id)
                   VALUES ($1, 'telegram', 'bot', $2)""",
                owner,
                message().sender.external_id,
            )
            racing = asyncio.create_task(
                customer_row_for(ingesting, "telegram", "bot", message().sender)
            )
            assert await blocked_on_lock(db, "%customer_identities%", racing)
        linked = await asyncio.wait_for(racing, 30)
    finally:
        await other.close()
        await ingesting.close()

    assert linked["id"] == owner
    assert await db.fetchval("SELECT count(*) FROM customers") == 1


async def test_a_new_ticket_starts_with_its_clocks_and_policy_in_its_first_row(
    db: asyncpg.Connection,
) -> None:
    """The SLA columns of a ticket opened by a chat message are right from its INSERT: the
    first-response clock runs from the message's arrival and the ticket says which policy
    applies, with the `created` SLA event recorded once."""
    stored = await store(db, message())
    ticket = await db.fetchrow("SELECT * FROM tickets WHERE id = $1", stored.ticket_id)
    clock = await db.fetchrow(
        "SELECT * FROM ticket_sla_clocks WHERE ticket_id = $1 AND clock = 'first_response'",
        stored.ticket_id,
    )
    assert ticket["sla_policy_name"] == "built-in"  # the test database holds no policy
    assert ticket["sla_policy_at"] == ticket["created_at"]
    assert clock["started_at"] == ticket["created_at"]
    assert ticket["first_response_due_at"] == clock["due_at"]
    assert clock["due_at"] - clock["started_at"] == timedelta(minutes=60)
    assert ticket["next_sla_due_at"] == clock["due_at"]
    assert ticket["next_sla_check_at"] is not None
    events = await db.fetch("SELECT type FROM sla_events WHERE ticket_id = $1", stored.ticket_id)
    assert [e["type"] for e in events] == ["created"]


def test_download_retries_back_off_and_end_after_the_last_try() -> None:
    delays = [fetch_retry_delay(attempts) for attempts in range(1, MAX_FETCH_ATTEMPTS + 1)]
    assert delays == [60.0, 240.0, 960.0, 3840.0, 15360.0, None]


def test_a_download_failure_quotes_only_what_the_adapter_vouches_for() -> None:
    leaky = RuntimeError("GET https://api.telegram.org/file/bot123:SECRET/photos/1.jpg: 500")
    assert fetch_failure_reason(leaky) == (
        "the download failed (RuntimeError); it is retried",
        False,
    )
    said = AttachmentFetchError("Telegram getFile failed: file is too big", permanent=True)
    assert fetch_failure_reason(said) == ("Telegram getFile failed: file is too big", True)


async def test_a_file_not_yet_fetched_is_stored_with_its_message_once(
    db: asyncpg.Connection,
) -> None:
    pending = KeptAttachment(
        filename="faktura.pdf",
        content_type="application/pdf",
        state="pending",
        fetch_ref="file-1",
        error="the provider said later",
        attempts=1,
        retry_in=60.0,
    )
    kept = KeptAttachment(filename="a.txt", content_type="text/plain", content=b"abc")
    gone = KeptAttachment(
        filename="b.mov", content_type="video/quicktime", state="failed", error="too big"
    )
    for _ in range(2):  # a redelivery adds neither the message nor its files
        await store_inbound(
            db, message(), attachments=[pending, kept, gone], raw=b"{}", sla=SlaSettings()
        )
    rows = await db.fetch(
        """SELECT a.filename, a.state, a.size_bytes, a.content, a.fetch_error, a.fetch_ref,
                  a.fetch_attempts, a.next_fetch_at - m.created_at AS wait, m.body_text
           FROM attachments a JOIN messages m ON m.id = a.message_id ORDER BY a.id"""
    )
    assert [(r["filename"], r["state"], r["size_bytes"]) for r in rows] == [
        ("faktura.pdf", "pending", 0),
        ("a.txt", "stored", 3),
        ("b.mov", "failed", 0),
    ]
    assert rows[0]["content"] is None and rows[0]["fetch_ref"] == "file-1"
    assert rows[0]["wait"] == timedelta(seconds=60) and rows[2]["wait"] is None
    assert rows[0]["body_text"] == "Dobrý den, kde je moje objednávka?"
    assert [r["fetch_error"] for r in rows] == ["the provider said later", None, "too big"]
    # The schema refuses a stored attachment without content, and a pending one without
    # a next try.
    message_id = await db.fetchval("SELECT id FROM messages")
    for state, content, next_at in (("stored", None, None), ("pending", None, None)):
        with pytest.raises(asyncpg.CheckViolationError):
            await db.execute(
                """INSERT INTO attachments (message_id, filename, content_type, size_bytes,
                                            content, state, next_fetch_at)
                   VALUES ($1, 'x', 'text/plain', 0, $2, $3, $4)""",
                message_id,
                content,
                state,
                next_at,
            )


# --- notices: what nobody wrote (docs/sla.md 1.4) ------------------------------------------


async def agent_replied(db: asyncpg.Connection, ticket_id: int) -> None:
    """A public agent reply as the SLA engine records it (the API path is tested by the
    channels' end-to-end tests)."""
    now = await db.fetchval("SELECT clock_timestamp()")
    await sla_recording.record(db, ticket_id, "agent_reply", now)
    await sla_refresh.refresh(db, ticket_id, SlaSettings(), now=now)


async def test_a_notice_neither_reopens_nor_starts_a_cycle_a_message_does(
    db: asyncpg.Connection,
) -> None:
    await db.execute(EVERY_CLOCK_POLICY)
    first = await store(db, message("1"))
    await agent_replied(db, first.ticket_id)
    await db.execute("UPDATE tickets SET status = 'solved' WHERE id = $1", first.ticket_id)

    reaction = await store(db, message("r1", text="[Reacted 👍 to a message]", notice=True))
    assert reaction.ticket_id == first.ticket_id and not reaction.created_ticket
    ticket = await db.fetchrow("SELECT * FROM tickets WHERE id = $1", first.ticket_id)
    assert ticket["status"] == "solved"
    assert await next_response_cycles(db, first.ticket_id) == 0
    assert (await sla_event_types(db, first.ticket_id))[-1] == "customer_auto_reply"
    row = await db.fetchrow(
        "SELECT kind, direction FROM messages WHERE id = $1", reaction.message_id
    )
    assert (row["kind"], row["direction"]) == ("system", "inbound")
    event = await db.fetchrow(
        "SELECT action, changes FROM ticket_events WHERE ticket_id = $1 ORDER BY id DESC LIMIT 1",
        first.ticket_id,
    )
    assert event["action"] == "customer_notice" and event["changes"]["notice"] is True

    await db.execute("UPDATE tickets SET status = 'pending' WHERE id = $1", first.ticket_id)
    await store(db, message("r2", text="[Removed a reaction]", notice=True))
    assert await db.fetchval("SELECT status FROM tickets WHERE id = $1", first.ticket_id) == (
        "pending"
    )

    written = await store(db, message("2", text="Ještě jedna otázka."))
    assert written.ticket_id == first.ticket_id
    assert await db.fetchval("SELECT status FROM tickets WHERE id = $1", first.ticket_id) == "open"
    assert await next_response_cycles(db, first.ticket_id) == 1


async def test_a_notice_stays_on_a_closed_ticket_and_opens_one_only_when_there_is_none(
    db: asyncpg.Connection,
) -> None:
    first = await store(db, message("1"))
    await db.execute("UPDATE tickets SET status = 'closed' WHERE id = $1", first.ticket_id)
    events_before = await sla_event_types(db, first.ticket_id)
    on_closed = await store(db, message("r1", text="[Reacted ❤️ to a message]", notice=True))
    assert on_closed.ticket_id == first.ticket_id and not on_closed.created_ticket
    assert await db.fetchval("SELECT status FROM tickets WHERE id = $1", first.ticket_id) == (
        "closed"
    )
    assert await sla_event_types(db, first.ticket_id) == events_before  # closed is final

    alone = await store(
        db, message("r2", conversation="chat-2", text="[Reacted 👍 to a message]", notice=True)
    )
    assert alone.created_ticket
    ticket = await db.fetchrow("SELECT * FROM tickets WHERE id = $1", alone.ticket_id)
    assert ticket["status"] == "new" and ticket["first_response_due_at"] is None
    created = await db.fetchrow(
        "SELECT type, origin FROM sla_events WHERE ticket_id = $1", alone.ticket_id
    )
    assert (created["type"], created["origin"]) == ("created", "notice")
    clocks = await db.fetch(
        "SELECT clock FROM ticket_sla_clocks WHERE ticket_id = $1", alone.ticket_id
    )
    assert "first_response" not in {c["clock"] for c in clocks}


async def test_the_same_notice_three_times_concurrently_is_stored_once(
    db: asyncpg.Connection, database_url: str
) -> None:
    first = await store(db, message("1"))
    await db.execute("UPDATE tickets SET status = 'solved' WHERE id = $1", first.ticket_id)

    async def deliver() -> StoredMessage:
        conn = await connect(database_url)
        try:
            return await store(conn, message("r1", text="[Reacted 👍]", notice=True))
        finally:
            await conn.close()

    results = await asyncio.gather(deliver(), deliver(), deliver())
    assert sorted(r.duplicate for r in results) == [False, True, True]
    assert await db.fetchval("SELECT count(*) FROM messages WHERE kind = 'system'") == 1
    assert await db.fetchval("SELECT status FROM tickets") == "solved"
