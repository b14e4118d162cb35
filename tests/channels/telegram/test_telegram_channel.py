"""Telegram end to end: real app, real worker, python-telegram-bot against a fake Bot API.

Updates are POSTed to the webhook as Telegram would, processed by one burst of the real
arq worker, and agent replies go out through the outbox to the fake Bot API, which
records what Telegram would have received (docs/reliability.md rows W3, F5, F6, F7, B9).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
from datetime import timedelta
from typing import Any

import asyncpg
import httpx

from helpdesk.channels.ingest import MAX_FETCH_ATTEMPTS
from helpdesk.channels.jobs import process_inbound_event, retry_attachment_fetches
from helpdesk.channels.telegram.commands import poll
from helpdesk.channels.telegram.parse import BOT_API_DOWNLOAD_LIMIT
from helpdesk.config import Settings
from helpdesk.db.migrate import migrate_dsn
from helpdesk.db.pool import connect, create_pool
from tests.channels.telegram import payloads
from tests.channels.telegram.conftest import ACCOUNT, SECRET, TOKEN, add_account
from tests.channels.telegram.fake_bot_api import FakeBotApi
from tests.channels.test_outbox import message_view, outbox_row, reply, run_worker
from tests.channels.test_shared_ingest import (
    EVERY_CLOCK_POLICY,
    next_response_cycles,
    sla_event_types,
    solve_through_api,
)
from tests.conftest import Client, Factory, Servers, blocked_on_lock, job_context

WEBHOOK = f"/channels/telegram/{ACCOUNT}/webhook"


async def deliver(
    client: Client, update: dict[str, Any] | bytes, secret: str | None = SECRET
) -> httpx.Response:
    body = update if isinstance(update, bytes) else payloads.encode(update)
    headers = {"content-type": "application/json"}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    return await client.post(WEBHOOK, content=body, headers=headers)


async def inbound(db: asyncpg.Connection) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT * FROM messages WHERE direction = 'inbound' AND channel = 'telegram' ORDER BY id"
    )


async def customer_ticket(
    client: Client, db: asyncpg.Connection, settings: Settings, text: str = "Kde je zásilka?"
) -> int:
    response = await deliver(client, payloads.message(10000, 1365, text))
    assert response.status_code == 200, response.text
    await run_worker(settings)
    ticket_id: int = await db.fetchval("SELECT id FROM tickets")
    return ticket_id


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
    messages = await inbound(db)
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


async def test_agent_reply_is_sent_with_sendmessage_quoting_the_customer(
    client: Client,
    db: asyncpg.Connection,
    settings: Settings,
    factory: Factory,
    bot_api: FakeBotApi,
    bot_account: str,
) -> None:
    ticket_id = await customer_ticket(client, db, settings)
    agent = await factory.agent("agent")
    sent = await reply(client, agent, ticket_id, "Zásilka dorazí zítra.")
    await run_worker(settings)

    (call,) = bot_api.calls_of("sendMessage")
    assert call.params["chat_id"] == "1111111"
    assert call.params["text"] == "Zásilka dorazí zítra."
    assert json.loads(call.params["reply_parameters"]) == {
        "message_id": 1365,
        "allow_sending_without_reply": True,
    }
    assert bot_api.calls_of("getMe") == []  # no extra round trip per reply
    view = await message_view(client, agent, ticket_id, sent["id"])
    assert view["delivery_status"] == "sent" and view["delivery_error"] is None
    external = await db.fetchval("SELECT external_id FROM messages WHERE id = $1", sent["id"])
    assert external == "1111111:500"  # the fake's first message id, in our chat:message form


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
    attachment = {
        "filename": "faktura.pdf",
        "content_type": "application/pdf",
        "content": base64.b64encode(content).decode(),
    }
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


async def test_a_file_failing_after_the_text_went_out_fails_without_a_resend(
    client: Client,
    db: asyncpg.Connection,
    settings: Settings,
    factory: Factory,
    bot_api: FakeBotApi,
    bot_account: str,
) -> None:
    ticket_id = await customer_ticket(client, db, settings)
    agent = await factory.agent("agent")
    attachment = {"filename": "a.txt", "content_type": "text/plain", "content": "YQ=="}
    response = await client.post(
        f"/tickets/{ticket_id}/replies",
        json={"text": "x" * 2000, "attachments": [attachment]},  # too long for a caption
        headers=agent.headers,
    )
    assert response.status_code == 201, response.text
    bot_api.fail("sendDocument", 502, "Bad Gateway")
    await run_worker(settings)

    assert len(bot_api.calls_of("sendMessage")) == 1
    row = await outbox_row(db, response.json()["id"])
    assert row["status"] == "failed"
    assert row["last_error"].startswith("only partly sent (1 of 2 parts reached Telegram")
    await run_worker(settings)
    assert len(bot_api.calls_of("sendMessage")) == 1


async def test_429_is_retried_no_sooner_than_telegram_says(
    client: Client,
    db: asyncpg.Connection,
    settings: Settings,
    factory: Factory,
    bot_api: FakeBotApi,
    bot_account: str,
) -> None:
    ticket_id = await customer_ticket(client, db, settings)
    agent = await factory.agent("agent")
    sent = await reply(client, agent, ticket_id)
    bot_api.fail("sendMessage", 429, "Too Many Requests: retry after 37", retry_after=37)
    await run_worker(settings)

    row = await outbox_row(db, sent["id"])
    assert row["status"] == "retrying"
    assert "Flood control exceeded" in row["last_error"]
    assert row["next_attempt_at"] - row["updated_at"] == timedelta(seconds=37)
    view = await message_view(client, agent, ticket_id, sent["id"])
    assert view["delivery_status"] == "retrying" and "37" in view["delivery_error"]

    await run_worker(settings)  # the relay runs, but the delivery is not due yet
    assert len(bot_api.calls_of("sendMessage")) == 1

    await db.execute("UPDATE outbox SET next_attempt_at = now() WHERE id = $1", row["id"])
    await run_worker(settings)  # N seconds later (time moved in the database)
    assert len(bot_api.calls_of("sendMessage")) == 2
    assert (await outbox_row(db, sent["id"]))["status"] == "sent"


async def test_5xx_is_retried_with_backoff(
    client: Client,
    db: asyncpg.Connection,
    settings: Settings,
    factory: Factory,
    bot_api: FakeBotApi,
    bot_account: str,
) -> None:
    ticket_id = await customer_ticket(client, db, settings)
    agent = await factory.agent("agent")
    sent = await reply(client, agent, ticket_id)
    bot_api.fail("sendMessage", 502, "Bad Gateway")
    await run_worker(settings)

    row = await outbox_row(db, sent["id"])
    assert row["status"] == "retrying"
    assert row["last_error"] == "Telegram unavailable: Bad Gateway"
    assert row["next_attempt_at"] - row["updated_at"] == timedelta(seconds=10)
    assert TOKEN not in row["last_error"]


async def test_user_who_blocked_the_bot_fails_the_reply_and_is_marked_unreachable(
    client: Client,
    db: asyncpg.Connection,
    settings: Settings,
    factory: Factory,
    bot_api: FakeBotApi,
    bot_account: str,
) -> None:
    ticket_id = await customer_ticket(client, db, settings)
    agent = await factory.agent("agent")
    sent = await reply(client, agent, ticket_id)
    bot_api.fail("sendMessage", 403, "Forbidden: bot was blocked by the user")
    await run_worker(settings)

    view = await message_view(client, agent, ticket_id, sent["id"])
    assert view["delivery_status"] == "failed"
    assert "bot was blocked by the user" in view["delivery_error"]
    assert (await outbox_row(db, sent["id"]))["status"] == "failed"
    reason = await db.fetchval("SELECT unreachable_reason FROM customer_identities")
    assert reason is not None and "bot was blocked by the user" in reason
    events = await db.fetch(
        "SELECT changes FROM ticket_events WHERE ticket_id = $1 AND action = $2",
        ticket_id,
        "customer_unreachable",
    )
    assert len(events) == 1 and events[0]["changes"]["channel"] == "telegram"
    await run_worker(settings)  # failed is final: no second try
    assert len(bot_api.calls_of("sendMessage")) == 1


async def test_other_400_fails_at_once_with_telegrams_description(
    client: Client,
    db: asyncpg.Connection,
    settings: Settings,
    factory: Factory,
    bot_api: FakeBotApi,
    bot_account: str,
) -> None:
    ticket_id = await customer_ticket(client, db, settings)
    agent = await factory.agent("agent")
    sent = await reply(client, agent, ticket_id)
    bot_api.fail("sendMessage", 400, "Bad Request: chat not found")
    await run_worker(settings)

    view = await message_view(client, agent, ticket_id, sent["id"])
    assert view["delivery_status"] == "failed"
    assert view["delivery_error"] == "Telegram refused the message: Chat not found"
    assert await db.fetchval("SELECT unreachable_reason FROM customer_identities") is None


async def test_wrong_or_missing_secret_is_403_and_nothing_is_stored(
    client: Client, db: asyncpg.Connection, bot_api: FakeBotApi, bot_account: str
) -> None:
    update = payloads.message(10000, 1365, "Dobrý den")
    for secret in (None, "", "wrong", SECRET[:-1], SECRET + "0"):
        response = await deliver(client, update, secret)
        assert response.status_code == 403, secret
        assert response.headers["content-type"].startswith("application/problem+json")
        assert SECRET not in response.text
    assert await db.fetchval("SELECT count(*) FROM inbound_events") == 0
    assert await db.fetchval("SELECT count(*) FROM messages") == 0


async def test_account_without_webhook_secret_is_never_open(
    client: Client, db: asyncpg.Connection, bot_api: FakeBotApi
) -> None:
    await add_account(db, bot_api.base_url, secrets={"bot_token": TOKEN})
    update = payloads.message(10000, 1365, "Dobrý den")
    for secret in (None, "", "anything"):
        assert (await deliver(client, update, secret)).status_code == 403
    assert await db.fetchval("SELECT count(*) FROM inbound_events") == 0


async def test_same_update_three_times_concurrently_is_one_event_and_one_message(
    client: Client, db: asyncpg.Connection, settings: Settings, bot_account: str
) -> None:
    update = payloads.message(10000, 1365, "Dobrý den")
    responses = await asyncio.gather(*(deliver(client, update) for _ in range(3)))
    assert [r.status_code for r in responses] == [200, 200, 200]
    await run_worker(settings)
    assert await db.fetchval("SELECT count(*) FROM inbound_events") == 1
    assert len(await inbound(db)) == 1
    assert await db.fetchval("SELECT count(*) FROM tickets") == 1


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

    messages = {m["external_id"]: m for m in await inbound(db)}
    assert set(messages) == {"1111111:1365", "1111111:1366"}
    assert messages["1111111:1365"]["body_text"] == "První zpráva (opraveno)"
    assert messages["1111111:1365"]["edited_at"] is not None
    assert messages["1111111:1366"]["body_text"] == "Druhá zpráva"
    assert await db.fetchval("SELECT count(*) FROM tickets") == 1
    statuses = await db.fetch("SELECT status FROM inbound_events")
    assert {s["status"] for s in statuses} == {"processed"}


async def test_edit_after_the_original_replaces_the_text(
    client: Client, db: asyncpg.Connection, settings: Settings, bot_account: str
) -> None:
    await deliver(client, payloads.message(100, 1365, "Původní text"))
    await run_worker(settings)
    await deliver(client, payloads.edited(101, 1365, "Nový text"))
    await run_worker(settings)
    (message,) = await inbound(db)
    assert message["body_text"] == "Nový text"
    edits = await db.fetchval("SELECT count(*) FROM ticket_events WHERE action = 'message_edited'")
    assert edits == 1


async def test_unknown_update_types_are_answered_200_and_stored_as_processed(
    client: Client, db: asyncpg.Connection, settings: Settings, bot_account: str
) -> None:
    updates: list[dict[str, Any] | bytes] = [
        payloads.callback_query(20000),
        payloads.my_chat_member(20001),
        {"update_id": 20002, "invented_update_type": {"whatever": [1, 2, 3]}},
        b"<html>not json at all</html>",
    ]
    for update in updates:
        response = await deliver(client, update)
        assert response.status_code == 200
    await run_worker(settings)
    events = await db.fetch("SELECT dedupe_key, status, payload FROM inbound_events ORDER BY id")
    assert [(e["dedupe_key"], e["status"]) for e in events] == [
        ("20000", "processed"),
        ("20001", "processed"),
        ("20002", "processed"),
        (None, "processed"),
    ]
    assert bytes(events[3]["payload"]) == b"<html>not json at all</html>"  # kept as received
    assert await db.fetchval("SELECT count(*) FROM messages") == 0


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
    (message,) = await inbound(db)
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

    messages = await inbound(db)
    assert [m["body_text"] for m in messages] == [
        "Dobrý den, kde je zásilka?",
        "Ještě jedna otázka.",
    ]
    assert {m["ticket_id"] for m in messages} == {ticket_id}
    assert await db.fetchval("SELECT priority FROM tickets WHERE id = $1", ticket_id) == "high"


async def attachment_rows(db: asyncpg.Connection) -> list[asyncpg.Record]:
    return await db.fetch(
        """SELECT a.*, m.body_text FROM attachments a JOIN messages m ON m.id = a.message_id
           ORDER BY a.id"""
    )


async def retry_due_downloads(db: asyncpg.Connection, settings: Settings) -> int:
    """The retry sweep once, with every pending download made due now."""
    await db.execute("UPDATE attachments SET next_fetch_at = now() WHERE state = 'pending'")
    async with job_context(settings) as ctx:
        return await retry_attachment_fetches(ctx)


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

    messages = await inbound(db)
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
