"""Slack end to end: real app, real worker, slack-sdk against a fake Slack Web API.

Events are POSTed to the webhook signed as Slack signs them, processed by one burst of
the real arq worker, and agent replies go out through the outbox to the fake Web API,
which records what Slack would have received (docs/reliability.md rows W1, F5, F6, B9).

What every chat channel shares (signatures, redeliveries, edits, replies and how they
fail) is tested once per provider in tests/channels/test_chat_contract.py; this module
keeps what is Slack's own.
"""

from __future__ import annotations

import asyncpg

from helpdesk.config import Settings
from tests.channels.replies import file_attachment, message_view, outbox_row, reply, run_worker
from tests.channels.slack import payloads
from tests.channels.slack.conftest import (
    ACCOUNT,
    ROOT_TS,
    TOKEN,
    WEBHOOK,
    customer_ticket,
    deliver,
)
from tests.channels.slack.fake_slack_api import FakeSlackApi
from tests.channels.stored import inbound_messages, nothing_stored, retry_due_downloads
from tests.conftest import Client, Factory


async def test_message_in_a_support_channel_opens_a_ticket_for_the_slack_user(
    client: Client, db: asyncpg.Connection, settings: Settings, slack_account: str
) -> None:
    response = await deliver(client, payloads.message("Ev0001", ROOT_TS, "Kde je zásilka?"))
    assert response.status_code == 200
    await run_worker(settings)

    event = await db.fetchrow("SELECT dedupe_key, status FROM inbound_events")
    assert (event["dedupe_key"], event["status"]) == ("Ev0001", "processed")
    ticket = await db.fetchrow("SELECT * FROM tickets")
    assert (ticket["channel"], ticket["channel_account"]) == ("slack", ACCOUNT)
    assert ticket["subject"] == "Kde je zásilka?"
    (message,) = await inbound_messages(db, "slack")
    assert message["external_id"] == f"{payloads.SUPPORT_CHANNEL}:{ROOT_TS}"
    assert message["body_text"] == "Kde je zásilka?"
    identity = await db.fetchrow("SELECT * FROM customer_identities")
    assert (identity["channel"], identity["external_id"]) == ("slack", payloads.CUSTOMER)
    assert identity["display_name"] == "jana"
    conversation = await db.fetchval("SELECT external_id FROM conversations")
    assert conversation == f"{payloads.SUPPORT_CHANNEL}:{ROOT_TS}"


async def test_url_verification_is_answered_with_its_challenge_and_must_be_signed(
    client: Client, db: asyncpg.Connection, slack_account: str
) -> None:
    challenge = "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    body = payloads.encode(payloads.url_verification(challenge))
    response = await deliver(client, body)
    assert response.status_code == 200
    assert response.text == challenge
    assert response.headers["content-type"].startswith("text/plain")

    unsigned = await client.post(
        WEBHOOK, content=body, headers={"content-type": "application/json"}
    )
    assert unsigned.status_code == 401 and challenge not in unsigned.text
    await nothing_stored(db)


async def test_a_thread_is_one_ticket_and_a_new_top_level_message_another(
    client: Client, db: asyncpg.Connection, settings: Settings, slack_account: str
) -> None:
    await deliver(client, payloads.message("Ev0001", ROOT_TS, "Objednávka 1234 nedorazila"))
    await run_worker(settings)
    in_thread = payloads.message("Ev0002", "1355517600.000100", "Pořád nic", thread_ts=ROOT_TS)
    await deliver(client, in_thread)
    await run_worker(settings)
    await deliver(client, payloads.message("Ev0003", "1355518000.000200", "Jiný dotaz"))
    await run_worker(settings)

    messages = await inbound_messages(db, "slack")
    assert [m["body_text"] for m in messages] == [
        "Objednávka 1234 nedorazila",
        "Pořád nic",
        "Jiný dotaz",
    ]
    assert messages[0]["ticket_id"] == messages[1]["ticket_id"] != messages[2]["ticket_id"]
    conversations = await db.fetch("SELECT external_id FROM conversations ORDER BY id")
    assert [c["external_id"] for c in conversations] == [
        f"{payloads.SUPPORT_CHANNEL}:{ROOT_TS}",
        f"{payloads.SUPPORT_CHANNEL}:1355518000.000200",
    ]
    assert await db.fetchval("SELECT count(DISTINCT customer_id) FROM tickets") == 1


async def test_direct_message_to_the_app_opens_a_ticket(
    client: Client, db: asyncpg.Connection, settings: Settings, slack_account: str
) -> None:
    body = payloads.message(
        "Ev0001", ROOT_TS, "Ahoj", channel=payloads.DM_CHANNEL, channel_type="im"
    )
    assert (await deliver(client, body)).status_code == 200
    await run_worker(settings)
    (message,) = await inbound_messages(db, "slack")
    assert message["external_id"] == f"{payloads.DM_CHANNEL}:{ROOT_TS}"


async def test_file_share_is_downloaded_with_the_bot_token_byte_exact(
    client: Client,
    db: asyncpg.Connection,
    settings: Settings,
    slack_api: FakeSlackApi,
    slack_account: str,
) -> None:
    gif = b"GIF89a" + bytes(range(256)) * 40
    slack_api.add_file("T123ABC456-F0S43PZDF/download/tedair.gif", gif, "image/gif")
    body = payloads.file_share("Ev0001", ROOT_TS, "Rozbité balení", len(gif))
    assert (await deliver(client, body)).status_code == 200
    await run_worker(settings)

    assert slack_api.downloads == [f"Bearer {TOKEN}"]
    row = await db.fetchrow(
        """SELECT m.body_text, a.filename, a.content_type, a.content FROM messages m
           JOIN attachments a ON a.message_id = m.id"""
    )
    assert (row["body_text"], row["filename"], row["content_type"]) == (
        "Rozbité balení",
        "tedair.gif",
        "image/gif",
    )
    assert bytes(row["content"]) == gif


async def test_reply_with_a_file_uploads_it_into_the_thread_after_the_text(
    client: Client,
    db: asyncpg.Connection,
    settings: Settings,
    factory: Factory,
    slack_api: FakeSlackApi,
    slack_account: str,
) -> None:
    ticket_id = await customer_ticket(client, db, settings)
    agent = await factory.agent("agent")
    content = b"%PDF-1.4 invoice\n" + bytes(range(256))
    attachment = file_attachment("faktura.pdf", "application/pdf", content)
    response = await client.post(
        f"/tickets/{ticket_id}/replies",
        json={"text": "Posílám fakturu.", "attachments": [attachment]},
        headers=agent.headers,
    )
    assert response.status_code == 201, response.text
    await run_worker(settings)

    assert [c.method for c in slack_api.calls] == [
        "chat.postMessage",
        "files.getUploadURLExternal",
        "files.completeUploadExternal",
    ]
    assert all(c.authorization == f"Bearer {TOKEN}" for c in slack_api.calls)
    (upload,) = slack_api.uploads.values()
    assert (upload.filename, upload.content) == ("faktura.pdf", content)
    assert upload.completed["channel_id"] == payloads.SUPPORT_CHANNEL
    assert upload.completed["thread_ts"] == ROOT_TS
    row = await outbox_row(db, response.json()["id"])
    assert row["status"] == "sent"


async def test_revoked_token_fails_without_the_token_in_the_reason(
    client: Client,
    db: asyncpg.Connection,
    settings: Settings,
    factory: Factory,
    slack_api: FakeSlackApi,
    slack_account: str,
) -> None:
    ticket_id = await customer_ticket(client, db, settings)
    agent = await factory.agent("agent")
    slack_api.token = "xoxb-the-new-one"  # Slack no longer takes ours
    sent = await reply(client, agent, ticket_id)
    await run_worker(settings)

    row = await outbox_row(db, sent["id"])
    assert row["status"] == "failed"
    assert row["last_error"] == (
        "Slack refused the message: invalid_auth (the bot token was rejected; check bot_token)"
    )
    assert TOKEN not in row["last_error"]


async def test_slack_unreachable_is_retried(
    client: Client,
    db: asyncpg.Connection,
    settings: Settings,
    factory: Factory,
    slack_api: FakeSlackApi,
    slack_account: str,
) -> None:
    ticket_id = await customer_ticket(client, db, settings)
    agent = await factory.agent("agent")
    sent = await reply(client, agent, ticket_id)
    await slack_api.stop()  # connection refused
    await run_worker(settings)

    row = await outbox_row(db, sent["id"])
    assert row["status"] == "retrying"
    assert row["last_error"].startswith("Slack unreachable: ")


async def test_a_slack_connect_file_is_looked_up_with_files_info_then_downloaded(
    client: Client,
    db: asyncpg.Connection,
    settings: Settings,
    slack_api: FakeSlackApi,
    slack_account: str,
) -> None:
    pdf = b"%PDF-1.4\n" + bytes(range(256)) * 8 + b"%%EOF\n"
    slack_api.add_file("T0EXT-F0CONNECT1/download/faktura_2023.pdf", pdf, "application/pdf")
    slack_api.add_file_object({**payloads.CONNECT_FILE_OBJECT, "size": len(pdf)})
    slack_api.add_user(payloads.USER_OBJECT)
    body = payloads.connect_file_share("Ev0100", ROOT_TS, "Faktura v příloze")
    assert (await deliver(client, body)).status_code == 200
    await run_worker(settings)

    (info,) = slack_api.calls_of("files.info")
    assert info.params["file"] == "F0CONNECT1" and info.authorization == f"Bearer {TOKEN}"
    assert slack_api.downloads == [f"Bearer {TOKEN}"]
    row = await db.fetchrow(
        """SELECT m.body_text, a.filename, a.content_type, a.content, a.state
           FROM messages m JOIN attachments a ON a.message_id = m.id"""
    )
    assert (row["body_text"], row["filename"], row["content_type"], row["state"]) == (
        "Faktura v příloze",
        "faktura_2023.pdf",
        "application/pdf",
        "stored",
    )
    assert bytes(row["content"]) == pdf


async def test_a_refused_download_keeps_the_message_and_is_retried_until_it_comes(
    client: Client,
    db: asyncpg.Connection,
    settings: Settings,
    factory: Factory,
    slack_api: FakeSlackApi,
    slack_account: str,
) -> None:
    gif = b"GIF89a" + bytes(range(256)) * 4
    slack_api.add_file("T123ABC456-F0S43PZDF/download/tedair.gif", gif, "image/gif")
    slack_api.fail_downloads(403, times=2)
    body = payloads.file_share("Ev0101", ROOT_TS, "Rozbité balení", len(gif))
    assert (await deliver(client, body)).status_code == 200
    await run_worker(settings)

    assert await db.fetchval("SELECT status FROM inbound_events") == "processed"
    row = await db.fetchrow("SELECT * FROM attachments")
    assert (row["state"], row["fetch_attempts"], row["content"]) == ("pending", 1, None)
    assert row["fetch_error"] == (
        "Slack refused the download: HTTP 403 (the app needs the files:read scope and access "
        "to the channel)"
    )
    agent = await factory.agent("agent")
    ticket_id = await db.fetchval("SELECT id FROM tickets")
    message = await message_view(client, agent, ticket_id, row["message_id"])
    assert message["body_text"] == "Rozbité balení"
    assert message["attachments"][0]["state"] == "pending"

    assert await retry_due_downloads(db, settings) == 1  # refused once more
    assert await db.fetchval("SELECT state FROM attachments") == "pending"
    assert await retry_due_downloads(db, settings) == 1
    row = await db.fetchrow("SELECT * FROM attachments")
    assert (row["state"], row["fetch_attempts"], bytes(row["content"])) == ("stored", 3, gif)
    assert slack_api.downloads == [f"Bearer {TOKEN}"] * 3


async def test_a_deleted_file_is_failed_at_once_and_not_retried(
    client: Client,
    db: asyncpg.Connection,
    settings: Settings,
    slack_api: FakeSlackApi,
    slack_account: str,
) -> None:
    body = payloads.file_share("Ev0102", ROOT_TS, "Tady", 10)  # the fake has no such file
    assert (await deliver(client, body)).status_code == 200
    await run_worker(settings)
    row = await db.fetchrow("SELECT * FROM attachments")
    assert (row["state"], row["next_fetch_at"]) == ("failed", None)
    assert row["fetch_error"] == "Slack file download failed: HTTP 404 (the file is gone)"


async def test_names_behind_user_ids_are_looked_up_once_and_mrkdwn_reads_as_text(
    client: Client,
    db: asyncpg.Connection,
    settings: Settings,
    slack_api: FakeSlackApi,
    slack_account: str,
) -> None:
    slack_api.add_user(payloads.USER_OBJECT)
    slack_api.add_user({"id": "U0PETR001", "name": "petr", "profile": {"display_name": "Petr"}})
    first = payloads.forwarded("Ev0103", ROOT_TS)
    del first["event"]["user_profile"]
    assert (await deliver(client, first)).status_code == 200
    await run_worker(settings)
    second = payloads.message(
        "Ev0104",
        "1355517524.000001",
        "<@U0PETR001> &amp; <#C0OTHER01|general>?",
        thread_ts=ROOT_TS,
        profile=False,
    )
    assert (await deliver(client, second)).status_code == 200
    await run_worker(settings)

    messages = await inbound_messages(db, "slack")
    assert [m["body_text"] for m in messages] == [
        "@U0HELPBOT what about this?\n\nForwarded message from Petr Svoboda:\n"
        "> Order 1234 arrived broken, @Petr knows more & <fast>",
        "@Petr & #general?",
    ]
    assert await db.fetchval("SELECT name FROM customers") == "Jana Nováková"
    assert await db.fetchval("SELECT display_name FROM customer_identities") == "Jana Nováková"
    # Each user once (cached); the bot's own id is unknown to users.info and stays an id.
    asked = sorted(c.params["user"] for c in slack_api.calls_of("users.info"))
    assert asked == ["U061F7AUR", "U0HELPBOT", "U0PETR001"]


async def test_users_info_failing_leaves_the_ids_and_stores_the_message(
    client: Client,
    db: asyncpg.Connection,
    settings: Settings,
    slack_api: FakeSlackApi,
    slack_account: str,
) -> None:
    slack_api.fail("users.info", 500, None, times=10)
    body = payloads.message("Ev0105", ROOT_TS, "Ahoj <@U0PETR001>", profile=False)
    assert (await deliver(client, body)).status_code == 200
    await run_worker(settings)
    (message,) = await inbound_messages(db, "slack")
    assert message["body_text"] == "Ahoj @U0PETR001"
    assert await db.fetchval("SELECT name FROM customers") == payloads.CUSTOMER


async def test_a_customer_first_known_by_id_takes_the_name_once_slack_gives_it(
    client: Client,
    db: asyncpg.Connection,
    settings: Settings,
    slack_api: FakeSlackApi,
    slack_account: str,
) -> None:
    slack_api.fail("users.info", 500, None)
    first = payloads.message("Ev0106", ROOT_TS, "Ahoj", profile=False)
    assert (await deliver(client, first)).status_code == 200
    await run_worker(settings)
    assert await db.fetchval("SELECT name FROM customers") == payloads.CUSTOMER

    slack_api.add_user(payloads.USER_OBJECT)
    second = payloads.message(
        "Ev0107", "1355517524.000002", "Ještě", thread_ts=ROOT_TS, profile=False
    )
    assert (await deliver(client, second)).status_code == 200
    await run_worker(settings)
    assert await db.fetchval("SELECT name FROM customers") == "Jana Nováková"
    assert await db.fetchval("SELECT display_name FROM customer_identities") == "Jana Nováková"
    assert await db.fetchval("SELECT count(*) FROM customers") == 1

    # A name an agent gave is never overwritten by the provider's.
    await db.execute("UPDATE customers SET name = 'Jana (VIP)'")
    third = payloads.message("Ev0108", "1355517524.000003", "A ještě", thread_ts=ROOT_TS)
    assert (await deliver(client, third)).status_code == 200
    await run_worker(settings)
    assert await db.fetchval("SELECT name FROM customers") == "Jana (VIP)"
