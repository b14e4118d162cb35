"""Telegram end to end: real app, real worker, python-telegram-bot against a fake Bot API.

Updates are POSTed to the webhook as Telegram would, processed by one burst of the real
arq worker, and agent replies go out through the outbox to the fake Bot API, which
records what Telegram would have received (docs/reliability.md rows W3, F5, F6, F7, B9).

What every chat channel shares (signatures, redeliveries, edits, replies and how they
fail) is tested once per provider in tests/channels/test_chat_contract.py; this module
keeps what is Telegram's own.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from typing import Any

import asyncpg

from helpdesk.channels.ingest import MAX_FETCH_ATTEMPTS
from helpdesk.channels.jobs import process_inbound_event
from helpdesk.channels.telegram.commands import poll
from helpdesk.channels.telegram.parse import BOT_API_DOWNLOAD_LIMIT
from helpdesk.config import Settings
from helpdesk.db.migrate import migrate_dsn
from helpdesk.db.pool import connect, create_pool
from tests.channels.replies import file_attachment, message_view, reply, run_worker
from tests.channels.stored import attachment_rows, inbound_messages, retry_due_downloads
from tests.channels.telegram import payloads
from tests.channels.telegram.conftest import (
    ACCOUNT,
    SECRET,
    TOKEN,
    add_account,
    customer_ticket,
    deliver,
)
from tests.channels.telegram.fake_bot_api import FakeBotApi
from tests.conftest import Client, Factory, Servers, blocked_on_lock, job_context, solve_through_api
from tests.sla.history import EVERY_CLOCK_POLICY, next_response_cycles, sla_event_types


async def test_text_message_opens_a_ticket_for_the_telegram_user(
    client: Client, db: asyncpg.Connection, settings: Settings, bot_account: str
) -> None:
    response = await deliver(client, payloads.message(10000, 1365, "/start"))
    assert response.status_code == 200
    await run_worker(settings)  # the worker runs jobs concurrently: keep the order here
    response = await deliver(client, payloads.message(10001, 1366, "Dobrý den, kde je zásilka?"))
    assert response.status_code == 200
    await run_worker(settings)

    events = await db.fetch("SELECT dedupe_key, status FROM inbound_events ORDER BY id")
    assert [(e["dedupe_key"], e["status"]) for e in events] == [
        ("10000", "processed"),
        ("10001", "processed"),
    ]
    ticket = await db.fetchrow("SELECT * FROM tickets")
    assert (ticket["channel"], ticket["channel_account"]) == ("telegram", ACCOUNT)
    assert ticket["subject"] == "New Telegram conversation with Test Lastname"
    messages = await inbound_messages(db, "telegram")
    assert [m["body_text"] for m in messages] == ["/start", "Dobrý den, kde je zásilka?"]
    assert [m["external_id"] for m in messages] == ["1111111:1365", "1111111:1366"]
    assert {m["ticket_id"] for m in messages} == {ticket["id"]}
    identity = await db.fetchrow("SELECT * FROM customer_identities")
    assert (identity["channel"], identity["external_id"]) == ("telegram", "1111111")
    assert identity["display_name"] == "Test Lastname"
    conversation = await db.fetchrow("SELECT * FROM conversations")
    assert conversation["external_id"] == "1111111"
    assert conversation["ticket_id"] == ticket["id"]
    assert await db.fetchval("SELECT name FROM customers") == "Test Lastname"


async def test_photo_and_document_are_fetched_through_getfile_byte_exact(
    client: Client,
    db: asyncpg.Connection,
    settings: Settings,
    bot_api: FakeBotApi,
    bot_account: str,
) -> None:
    picture = bytes(range(256)) * 160  # 40960 bytes, every byte value
    pdf = b"%PDF-1.4\n" + os.urandom(4096) + b"\n%%EOF\n"
    bot_api.add_file("AgACAgQAAx0large", "photos/file_7.jpg", picture)
    bot_api.add_file("AwADBAADbXXXXXXXXXXXGBdhD2l6_XX", "documents/file_8.pdf", pdf)
    assert (await deliver(client, payloads.photo(10010, 1400, "Rozbité balení"))).status_code == 200
    assert (await deliver(client, payloads.document(10011, 1401, len(pdf)))).status_code == 200
    await run_worker(settings)

    # The worker handles the two updates concurrently: the fetch order is not fixed.
    assert sorted(c.params["file_id"] for c in bot_api.calls_of("getFile")) == [
        "AgACAgQAAx0large",
        "AwADBAADbXXXXXXXXXXXGBdhD2l6_XX",
    ]
    rows = await db.fetch(
        """SELECT m.body_text, a.filename, a.content_type, a.content FROM messages m
           JOIN attachments a ON a.message_id = m.id ORDER BY m.external_id"""
    )
    assert [(r["body_text"], r["filename"], r["content_type"]) for r in rows] == [
        ("Rozbité balení", "photo_AQADlarge.jpg", "image/jpeg"),
        ("", "Testfile.pdf", "application/pdf"),
    ]
    assert bytes(rows[0]["content"]) == picture
    assert bytes(rows[1]["content"]) == pdf


async def test_reply_with_a_file_goes_as_one_senddocument_with_the_text_as_caption(
    client: Client,
    db: asyncpg.Connection,
    settings: Settings,
    factory: Factory,
    bot_api: FakeBotApi,
    bot_account: str,
) -> None:
    ticket_id = await customer_ticket(client, db, settings)
    agent = await factory.agent("agent")
    content = b"%PDF-1.4 invoice\n"
    attachment = file_attachment("faktura.pdf", "application/pdf", content)
    response = await client.post(
        f"/tickets/{ticket_id}/replies",
        json={"text": "Posílám fakturu.", "attachments": [attachment]},
        headers=agent.headers,
    )
    assert response.status_code == 201, response.text
    sent = response.json()
    await run_worker(settings)

    assert bot_api.calls_of("sendMessage") == []
    (call,) = bot_api.calls_of("sendDocument")
    assert call.params["chat_id"] == "1111111"
    assert call.params["caption"] == "Posílám fakturu."
    assert call.files["document"] == ("faktura.pdf", content)
    assert json.loads(call.params["reply_parameters"])["message_id"] == 1365
    status = await db.fetchval("SELECT delivery_status FROM messages WHERE id = $1", sent["id"])
    assert status == "sent"


async def test_out_of_order_updates_and_an_edit_before_its_original(
    client: Client, db: asyncpg.Connection, settings: Settings, bot_account: str
) -> None:
    # 101 before 100, and the edit of 1365 (update 102) before 1365 itself (update 100).
    assert (await deliver(client, payloads.message(101, 1366, "Druhá zpráva"))).status_code == 200
    edit = payloads.edited(102, 1365, "První zpráva (opraveno)")
    assert (await deliver(client, edit)).status_code == 200
    await run_worker(settings)
    assert (await deliver(client, payloads.message(100, 1365, "První zpráva"))).status_code == 200
    await run_worker(settings)

    messages = {m["external_id"]: m for m in await inbound_messages(db, "telegram")}
    assert set(messages) == {"1111111:1365", "1111111:1366"}
    assert messages["1111111:1365"]["body_text"] == "První zpráva (opraveno)"
    assert messages["1111111:1365"]["edited_at"] is not None
    assert messages["1111111:1366"]["body_text"] == "Druhá zpráva"
    assert await db.fetchval("SELECT count(*) FROM tickets") == 1
    statuses = await db.fetch("SELECT status FROM inbound_events")
    assert {s["status"] for s in statuses} == {"processed"}


async def test_set_webhook_command_registers_our_url_with_the_secret(
    servers: Servers, bot_api: FakeBotApi
) -> None:
    dsn = await servers.create_database("helpdesk_telegram")
    try:
        await migrate_dsn(dsn)
        conn = await connect(dsn)
        try:
            await add_account(conn, bot_api.base_url)
        finally:
            await conn.close()
        env = {k: v for k, v in os.environ.items() if not k.startswith("HELPDESK_")}
        env["HELPDESK_DATABASE_URL"] = dsn
        command = [sys.executable, "-m", "helpdesk", "telegram", "set-webhook", ACCOUNT]
        result = await asyncio.to_thread(
            subprocess.run,
            [*command, "--url", "https://help.example.com/"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        url = f"https://help.example.com/channels/telegram/{ACCOUNT}/webhook"
        assert url in result.stdout
        assert SECRET not in result.stdout + result.stderr
        assert TOKEN not in result.stdout + result.stderr
        (call,) = bot_api.calls_of("setWebhook")
        assert call.params["url"] == url
        assert call.params["secret_token"] == SECRET
        assert json.loads(call.params["allowed_updates"]) == [
            "message",
            "edited_message",
            "callback_query",  # satisfaction rating buttons
        ]

        missing = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "helpdesk", "telegram", "set-webhook", "nobot", "--url", url],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert missing.returncode == 1
        assert "no telegram account 'nobot'" in missing.stderr
    finally:
        await servers.drop_database(dsn)


async def test_poll_stores_each_update_once_like_a_webhook_delivery(
    db: asyncpg.Connection, settings: Settings, bot_api: FakeBotApi, bot_account: str
) -> None:
    bot_api.webhook = {"url": "https://old.example.com/hook"}
    bot_api.updates = [
        payloads.message(300, 1365, "Dobrý den"),
        payloads.callback_query(301),
        payloads.edited(302, 1365, "Dobrý den, opraveno"),
    ]
    pool = await create_pool(settings.database_url, min_size=1, max_size=2)
    try:
        account = await poll_account(db)
        assert await poll(pool, settings, account, once=True) == 1
        # A second round: Telegram returns the same updates (not confirmed yet); none is new.
        assert await poll(pool, settings, account, once=True) == 0
    finally:
        await pool.close()

    assert len(bot_api.calls_of("deleteWebhook")) == 2 and bot_api.webhook is None
    events = await db.fetch("SELECT dedupe_key, status FROM inbound_events ORDER BY id")
    assert [(e["dedupe_key"], e["status"]) for e in events] == [
        ("300", "processed"),
        ("301", "processed"),
        ("302", "processed"),
    ]
    (message,) = await inbound_messages(db, "telegram")
    assert message["body_text"] == "Dobrý den, opraveno"


async def poll_account(db: asyncpg.Connection) -> Any:
    from helpdesk.channels.accounts import get_account

    account = await get_account(db, "telegram", ACCOUNT)
    assert account is not None
    return account


async def test_a_new_chat_ticket_is_routed_and_assigned_by_the_job_that_stores_it(
    client: Client, db: asyncpg.Connection, factory: Factory, settings: Settings, bot_account: str
) -> None:
    """No second queue hop between storing a customer's first message and assigning its
    ticket (issue 8: webhook to assigned within 100 ms): the store job routes at once."""

    admin = await factory.agent("admin")
    group = await factory.group("Chat")
    response = await client.patch(
        f"/routing/groups/{group}",
        json={"assignment_strategy": "round_robin"},
        headers=admin.headers,
    )
    assert response.status_code == 200, response.text
    response = await client.post(
        "/routing/rules", json={"name": "all chats", "group_id": group}, headers=admin.headers
    )
    assert response.status_code == 201, response.text
    agent = await factory.agent("agent", group_ids=[group])
    response = await client.put(
        "/agents/me/availability", json={"availability": "online"}, headers=agent.headers
    )
    assert response.status_code == 200, response.text

    response = await deliver(client, payloads.message(10000, 1365, "Dobrý den, kde je zásilka?"))
    assert response.status_code == 200, response.text
    event_id = await db.fetchval("SELECT id FROM inbound_events")

    # The store job alone, as the worker runs it, and nothing after it.
    async with job_context(settings) as ctx:
        await process_inbound_event(ctx, event_id)
        queued = [job.decode() for job in await ctx["redis"].zrange("arq:queue", 0, -1)]

    ticket = await db.fetchrow("SELECT * FROM tickets")
    assert ticket["routed_at"] is not None and ticket["group_id"] == group
    assert ticket["assignee_id"] == agent.id
    assert not [job for job in queued if job.startswith("route:")], queued


async def test_a_message_arriving_while_its_ticket_is_being_routed_waits_and_is_stored(
    client: Client, db: asyncpg.Connection, settings: Settings, bot_account: str
) -> None:
    """The customer's second message is stored while a transaction (routing, here
    imitated) holds the ticket and updates it twice. Storing waits for the ticket with
    the conversation locked; the second update's foreign-key check on that conversation
    must not wait for it in turn (that was a deadlock, seen under load in the benchmark)."""
    ticket_id = await customer_ticket(client, db, settings, "Dobrý den, kde je zásilka?")
    response = await deliver(client, payloads.message(10001, 1366, "Ještě jedna otázka."))
    assert response.status_code == 200, response.text
    event_id = await db.fetchval("SELECT id FROM inbound_events WHERE dedupe_key = '10001'")

    router = await connect(settings.database_url)
    try:
        async with job_context(settings) as ctx:
            routing = router.transaction()
            await routing.start()
            await router.execute("UPDATE tickets SET priority = 'high' WHERE id = $1", ticket_id)
            store = asyncio.create_task(process_inbound_event(ctx, event_id))
            # The store waits for the routing transaction's ticket.
            assert await blocked_on_lock(db, "UPDATE tickets%", store)
            # The second update of the same ticket in the routing transaction.
            await router.execute("UPDATE tickets SET updated_at = now() WHERE id = $1", ticket_id)
            await routing.commit()
            assert await asyncio.wait_for(store, 30) == 1
    finally:
        await router.close()

    messages = await inbound_messages(db, "telegram")
    assert [m["body_text"] for m in messages] == [
        "Dobrý den, kde je zásilka?",
        "Ještě jedna otázka.",
    ]
    assert {m["ticket_id"] for m in messages} == {ticket_id}
    assert await db.fetchval("SELECT priority FROM tickets WHERE id = $1", ticket_id) == "high"


async def test_a_file_getfile_refuses_keeps_the_text_and_is_fetched_later(
    client: Client,
    db: asyncpg.Connection,
    settings: Settings,
    factory: Factory,
    bot_api: FakeBotApi,
    bot_account: str,
) -> None:
    pdf = b"%PDF-1.4\n" + os.urandom(2048) + b"\n%%EOF\n"
    bot_api.add_file("AwADBAADbXXXXXXXXXXXGBdhD2l6_XX", "documents/file_9.pdf", pdf)
    bot_api.fail(
        "getFile", 400, "Bad Request: wrong file_id or the file is temporarily unavailable"
    )
    update = payloads.document(10020, 1420, len(pdf))
    update["message"]["caption"] = "Posílám fakturu, zboží nedorazilo."
    assert (await deliver(client, update)).status_code == 200
    await run_worker(settings)

    # The message and its text are stored at once; the event is done, not retried.
    assert await db.fetchval("SELECT status FROM inbound_events") == "processed"
    (row,) = await attachment_rows(db)
    assert row["body_text"] == "Posílám fakturu, zboží nedorazilo."
    assert (row["state"], row["filename"], row["fetch_attempts"]) == ("pending", "Testfile.pdf", 1)
    assert row["content"] is None
    assert row["fetch_error"] == (
        "Telegram getFile failed: Wrong file_id or the file is temporarily unavailable"
    )
    assert TOKEN not in row["fetch_error"]

    # The agent sees what was sent and why it is not there yet; downloading it says why.
    agent = await factory.agent("agent")
    ticket_id = await db.fetchval("SELECT id FROM tickets")
    message_id = await db.fetchval("SELECT id FROM messages")
    view = await message_view(client, agent, ticket_id, message_id)
    assert view["body_text"] == "Posílám fakturu, zboží nedorazilo."
    (shown,) = view["attachments"]
    assert (shown["state"], shown["size_bytes"]) == ("pending", 0)
    assert "temporarily unavailable" in shown["fetch_error"]
    download = await client.get(f"/attachments/{shown['id']}", headers=agent.headers)
    assert download.status_code == 409
    assert download.headers["content-type"].startswith("application/problem+json")
    assert "temporarily unavailable" in download.json()["detail"]

    # A redelivery of the update stores neither the message nor the file again.
    await db.execute("DELETE FROM inbound_events")
    assert (await deliver(client, update)).status_code == 200
    await run_worker(settings)
    assert await db.fetchval("SELECT count(*) FROM messages") == 1
    assert await db.fetchval("SELECT count(*) FROM attachments") == 1
    assert len(bot_api.calls_of("getFile")) == 1  # a stored message fetches nothing

    # The retry downloads it into the same attachment row.
    assert await retry_due_downloads(db, settings) == 1
    (row,) = await attachment_rows(db)
    assert (row["state"], row["fetch_error"], row["next_fetch_at"]) == ("stored", None, None)
    assert bytes(row["content"]) == pdf and row["size_bytes"] == len(pdf)
    assert row["fetch_attempts"] == 2
    download = await client.get(f"/attachments/{row['id']}", headers=agent.headers)
    assert download.status_code == 200 and download.content == pdf
    fetched = await db.fetchval(
        "SELECT changes FROM ticket_events WHERE action = 'attachment_fetched'"
    )
    assert fetched == {"attachment_id": row["id"], "attempts": 2}
    assert await retry_due_downloads(db, settings) == 0  # nothing left to do


async def test_a_download_that_keeps_failing_is_given_up_after_bounded_tries(
    client: Client,
    db: asyncpg.Connection,
    settings: Settings,
    bot_api: FakeBotApi,
    bot_account: str,
) -> None:
    bot_api.fail("getFile", 502, "Bad Gateway", times=100)
    assert (await deliver(client, payloads.photo(10021, 1421, "Rozbité"))).status_code == 200
    await run_worker(settings)
    delays = []
    while await db.fetchval("SELECT state FROM attachments") == "pending":
        delays.append(
            await db.fetchval(
                "SELECT extract(epoch FROM next_fetch_at - now())::int FROM attachments"
            )
        )
        assert await retry_due_downloads(db, settings) == 1
        assert len(delays) < 20
    (row,) = await attachment_rows(db)
    assert (row["state"], row["next_fetch_at"]) == ("failed", None)
    assert row["fetch_attempts"] == MAX_FETCH_ATTEMPTS == len(bot_api.calls_of("getFile"))
    assert row["body_text"] == "Rozbité"
    # Backoff: each wait about four times the one before.
    assert [round(d / 60) for d in delays] == [1, 4, 16, 64, 256]
    failed = await db.fetchval(
        "SELECT changes FROM ticket_events WHERE action = 'attachment_fetch_failed'"
    )
    assert failed["attempts"] == MAX_FETCH_ATTEMPTS and "Bad Gateway" in failed["reason"]


async def test_a_file_over_the_bot_api_limit_is_a_failed_attachment_without_a_download(
    client: Client,
    db: asyncpg.Connection,
    settings: Settings,
    bot_api: FakeBotApi,
    bot_account: str,
) -> None:
    update = payloads.document(10022, 1422, size=BOT_API_DOWNLOAD_LIMIT + 1)
    assert (await deliver(client, update)).status_code == 200
    await run_worker(settings)
    (row,) = await attachment_rows(db)
    assert (row["state"], row["filename"], row["fetch_attempts"]) == ("failed", "Testfile.pdf", 0)
    assert row["fetch_error"] == "Telegram lets bots download files of at most 20 MB"
    assert bot_api.calls_of("getFile") == []
    assert await db.fetchval("SELECT subject FROM tickets") == "Testfile.pdf (telegram)"


async def test_video_notes_polls_venues_and_unknown_kinds_all_reach_the_agent(
    client: Client,
    db: asyncpg.Connection,
    settings: Settings,
    bot_api: FakeBotApi,
    bot_account: str,
) -> None:
    clip = b"\x00\x00\x00\x18ftypmp42" + os.urandom(1024)
    bot_api.add_file("DQvn", "video_notes/file_3.mp4", clip)
    kinds = ["video_note", "poll", "venue", "successful_payment"]
    for index, kind in enumerate(kinds):
        fields, _ = payloads.KINDS[kind]
        update = payloads.message(10200 + index, 1600 + index, None, **fields)
        assert (await deliver(client, update)).status_code == 200
        await run_worker(settings)  # one at a time: the order of the conversation is fixed
    future = payloads.message(10210, 1610, None, hologram={"id": "h1"})
    assert (await deliver(client, future)).status_code == 200
    await run_worker(settings)

    messages = await inbound_messages(db, "telegram")
    assert [m["body_text"] for m in messages] == [
        "",
        *[payloads.KINDS[kind][1] for kind in kinds[1:]],
        "Customer sent a Telegram message of a kind this helpdesk cannot show yet (hologram); "
        "open Telegram to see it",
    ]
    assert len({m["ticket_id"] for m in messages}) == 1
    (row,) = await attachment_rows(db)
    assert (row["filename"], row["content_type"], row["state"]) == (
        "video_note.mp4",
        "video/mp4",
        "stored",
    )
    assert bytes(row["content"]) == clip
    assert await db.fetchval("SELECT subject FROM tickets") == "video_note.mp4 (telegram)"


async def test_a_service_message_leaves_a_solved_ticket_solved_a_written_one_reopens(
    client: Client,
    db: asyncpg.Connection,
    settings: Settings,
    factory: Factory,
    bot_account: str,
) -> None:
    """docs/sla.md 1.4: a pinned message is nobody writing to us. Before: it reopened the
    solved ticket and started a next-response cycle, like a customer's message."""
    await db.execute(EVERY_CLOCK_POLICY)
    ticket_id = await customer_ticket(client, db, settings)
    agent = await factory.agent("agent")
    await reply(client, agent, ticket_id, "Zásilka je na cestě.")
    await run_worker(settings)
    await solve_through_api(client, db, agent, ticket_id)
    fields, note = payloads.KINDS["pinned_message"]
    update = payloads.message(10400, 1700, None)
    update["message"].update(fields)
    assert (await deliver(client, update)).status_code == 200
    await run_worker(settings)

    assert await db.fetchval("SELECT status FROM tickets WHERE id = $1", ticket_id) == "solved"
    assert await next_response_cycles(db, ticket_id) == 0
    assert (await sla_event_types(db, ticket_id))[-1] == "customer_auto_reply"
    notice_id = await db.fetchval("SELECT id FROM messages WHERE external_id = '1111111:1700'")
    view = await message_view(client, agent, ticket_id, notice_id)
    assert (view["kind"], view["direction"], view["body_text"]) == ("system", "inbound", note)

    written = payloads.message(10401, 1701, "Ještě jedna věc: změna adresy.")
    assert (await deliver(client, written)).status_code == 200
    await run_worker(settings)
    assert await db.fetchval("SELECT status FROM tickets WHERE id = $1", ticket_id) == "open"
    assert await next_response_cycles(db, ticket_id) == 1
    assert (await sla_event_types(db, ticket_id))[-1] == "customer_message"
