"""Messenger, Instagram and WhatsApp end to end: real app, real worker, httpx against a
fake Graph API on loopback (docs/reliability.md rows W2, F5, F6, F7).

Webhooks are POSTed signed as Meta signs them (`X-Hub-Signature-256` over the raw bytes),
processed by one burst of the real arq worker; agent replies go out through the outbox to
the fake Graph API, which records what Meta would have received.

What every chat channel shares (signatures, redeliveries, edits, replies and how they
fail) is tested once per provider in tests/channels/test_chat_contract.py; this module
keeps what is Meta's own.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import asyncpg
import msgspec

from helpdesk.config import Settings
from tests.channels.meta import payloads
from tests.channels.meta.conftest import ACCOUNT, TOKEN, VERIFY_TOKEN, deliver, webhook
from tests.channels.meta.fake_graph_api import FakeGraphApi
from tests.channels.replies import file_attachment, message_view, outbox_row, reply, run_worker
from tests.channels.stored import nothing_stored
from tests.conftest import Client, Factory, solve_through_api
from tests.sla.history import EVERY_CLOCK_POLICY, next_response_cycles, sla_event_types


async def ticket_from(
    client: Client, db: asyncpg.Connection, settings: Settings, kind: str, body: dict[str, Any]
) -> int:
    response = await deliver(client, kind, body)
    assert response.status_code == 200, response.text
    await run_worker(settings)
    ticket_id: int = await db.fetchval("SELECT id FROM tickets WHERE channel = $1", kind)
    return ticket_id


# --- W2: the handshake (signatures: tests/channels/test_chat_contract.py) -------------------


async def test_handshake_echoes_the_challenge_only_for_our_verify_token(
    client: Client, db: asyncpg.Connection, meta_accounts: str
) -> None:
    for kind in ("messenger", "instagram", "whatsapp"):
        good = {
            "hub.mode": "subscribe",
            "hub.verify_token": VERIFY_TOKEN,
            "hub.challenge": "1158201444",
        }
        response = await client.get(webhook(kind), params=good)
        assert response.status_code == 200
        assert response.text == "1158201444"

        wrong = {**good, "hub.verify_token": "guess"}
        response = await client.get(webhook(kind), params=wrong)
        assert response.status_code == 403
        assert response.headers["content-type"].startswith("application/problem+json")
        assert "1158201444" not in response.text
        response = await client.get(webhook(kind), params={**good, "hub.mode": "unsubscribe"})
        assert response.status_code == 403
    await nothing_stored(db)


# --- Messenger ----------------------------------------------------------------------------


async def test_messenger_read_before_delivered_ends_read(
    client: Client,
    db: asyncpg.Connection,
    settings: Settings,
    factory: Factory,
    graph_api: FakeGraphApi,
    meta_accounts: str,
) -> None:
    ticket_id = await ticket_from(
        client, db, settings, "messenger", payloads.messenger_text("m_AAA1", "Dobrý den")
    )
    agent = await factory.agent("agent")
    sent = await reply(client, agent, ticket_id)
    await run_worker(settings)
    later = payloads.now_ms() + 60_000
    assert (await deliver(client, "messenger", payloads.messenger_read(later))).status_code == 200
    await run_worker(settings)
    assert (
        await deliver(client, "messenger", payloads.messenger_delivery(["m_out1"], later))
    ).status_code == 200
    await run_worker(settings)

    status = await db.fetchval("SELECT provider_status FROM messages WHERE id = $1", sent["id"])
    assert status == "read"


async def test_messenger_image_is_fetched_from_the_cdn_byte_exact(
    client: Client,
    db: asyncpg.Connection,
    settings: Settings,
    graph_api: FakeGraphApi,
    meta_accounts: str,
) -> None:
    picture = bytes(range(256)) * 64
    path = "/v/t1.15752-9/431547_photo.jpg"
    graph_api.add_cdn_file(path, picture, "image/jpeg")
    url = f"https://scontent.xx.fbcdn.net{path}?_nc_cat=1&oh=abc"
    await ticket_from(client, db, settings, "messenger", payloads.messenger_image("m_IMG", url))

    row = await db.fetchrow("SELECT filename, content_type, content FROM attachments")
    assert (row["filename"], row["content_type"]) == ("431547_photo.jpg", "image/jpeg")
    assert bytes(row["content"]) == picture
    assert graph_api.downloads == [(path, None)]  # no token goes to the CDN


async def test_rate_limit_and_outage_are_retried_token_errors_are_not(
    client: Client,
    db: asyncpg.Connection,
    settings: Settings,
    factory: Factory,
    graph_api: FakeGraphApi,
    meta_accounts: str,
) -> None:
    ticket_id = await ticket_from(
        client, db, settings, "messenger", payloads.messenger_text("m_AAA1", "Dobrý den")
    )
    agent = await factory.agent("agent")
    first = await reply(client, agent, ticket_id, "první")
    graph_api.fail("me/messages", 400, 613, "Calls to this api have exceeded the rate limit.")
    await run_worker(settings)
    row = await outbox_row(db, first["id"])
    assert row["status"] == "retrying"
    assert "rate limit" in row["last_error"] and "613" in row["last_error"]
    assert TOKEN not in row["last_error"]

    await db.execute("UPDATE outbox SET next_attempt_at = now() WHERE id = $1", row["id"])
    graph_api.fail("me/messages", 502, None)
    await run_worker(settings)
    row = await outbox_row(db, first["id"])
    assert (row["status"], row["last_error"]) == (
        "retrying",
        "messenger unavailable: HTTP 502".replace("messenger", "Messenger"),
    )

    await db.execute("UPDATE outbox SET next_attempt_at = now() WHERE id = $1", row["id"])
    await run_worker(settings)
    assert (await outbox_row(db, first["id"]))["status"] == "sent"

    second = await reply(client, agent, ticket_id, "druhá")
    graph_api.fail("me/messages", 400, 190, "Error validating access token: Session has expired")
    await run_worker(settings)
    row = await outbox_row(db, second["id"])
    assert row["status"] == "failed"
    assert "access token" in row["last_error"] and "190" in row["last_error"]


async def test_a_long_reply_is_sent_in_pieces_messenger_accepts(
    client: Client,
    db: asyncpg.Connection,
    settings: Settings,
    factory: Factory,
    graph_api: FakeGraphApi,
    meta_accounts: str,
) -> None:
    ticket_id = await ticket_from(
        client, db, settings, "messenger", payloads.messenger_text("m_AAA1", "Dobrý den")
    )
    agent = await factory.agent("agent")
    paragraphs = [" ".join([f"Odstavec {i}."] * 40) for i in range(6)]  # about 3,300 characters
    await reply(client, agent, ticket_id, "\n\n".join(paragraphs))
    await run_worker(settings)

    texts = [c.body["message"]["text"] for c in graph_api.calls_to("me/messages")]
    assert len(texts) == 2
    assert all(len(t) <= 2000 for t in texts)
    assert "\n\n".join(texts) == "\n\n".join(paragraphs)  # cut between paragraphs


async def test_a_file_goes_up_with_the_send_api_as_filedata(
    client: Client,
    db: asyncpg.Connection,
    settings: Settings,
    factory: Factory,
    graph_api: FakeGraphApi,
    meta_accounts: str,
) -> None:
    ticket_id = await ticket_from(
        client, db, settings, "messenger", payloads.messenger_text("m_AAA1", "Pošlete fakturu")
    )
    agent = await factory.agent("agent")
    pdf = b"%PDF-1.4\n" + bytes(range(256)) + b"\n%%EOF\n"
    response = await client.post(
        f"/tickets/{ticket_id}/replies",
        json={
            "text": "Faktura v příloze.",
            "attachments": [file_attachment("faktura.pdf", "application/pdf", pdf)],
        },
        headers=agent.headers,
    )
    assert response.status_code == 201, response.text
    await run_worker(settings)

    text_call, file_call = graph_api.calls_to("me/messages")
    assert text_call.body["message"] == {"text": "Faktura v příloze."}
    assert file_call.body["recipient"] == {"id": payloads.PSID}
    assert file_call.body["message"]["attachment"]["type"] == "file"
    assert file_call.files["filedata"] == ("faktura.pdf", pdf, "application/pdf")


# --- the 24-hour window ---------------------------------------------------------------------


async def test_reply_outside_the_24_hour_window_is_refused_before_sending(
    client: Client,
    db: asyncpg.Connection,
    settings: Settings,
    factory: Factory,
    graph_api: FakeGraphApi,
    meta_accounts: str,
) -> None:
    ticket_id = await ticket_from(
        client, db, settings, "whatsapp", payloads.whatsapp_text("wamid.IN1", "Dobrý den")
    )
    await db.execute("UPDATE conversations SET last_inbound_at = now() - interval '25 hours'")
    agent = await factory.agent("agent")
    response = await client.post(
        f"/tickets/{ticket_id}/replies", json={"text": "Omlouváme se"}, headers=agent.headers
    )
    assert response.status_code == 409
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "24 hours" in response.json()["detail"] and "template" in response.json()["detail"]
    assert await db.fetchval("SELECT count(*) FROM outbox") == 0
    # An internal note is not a reply to the customer: still possible.
    note = await client.post(
        f"/tickets/{ticket_id}/notes", json={"text": "zavolat"}, headers=agent.headers
    )
    assert note.status_code == 201, note.text


async def test_a_reply_that_waited_past_the_window_fails_with_the_reason_unsent(
    client: Client,
    db: asyncpg.Connection,
    settings: Settings,
    factory: Factory,
    graph_api: FakeGraphApi,
    meta_accounts: str,
) -> None:
    ticket_id = await ticket_from(
        client, db, settings, "messenger", payloads.messenger_text("m_AAA1", "Dobrý den")
    )
    agent = await factory.agent("agent")
    sent = await reply(client, agent, ticket_id)
    await db.execute("UPDATE conversations SET last_inbound_at = now() - interval '25 hours'")
    await run_worker(settings)

    view = await message_view(client, agent, ticket_id, sent["id"])
    assert view["delivery_status"] == "failed"
    assert "within 24 hours" in view["delivery_error"]
    assert graph_api.calls_to("me/messages") == []


async def test_human_agent_tag_extends_messenger_replies_to_seven_days(
    client: Client,
    db: asyncpg.Connection,
    settings: Settings,
    factory: Factory,
    graph_api: FakeGraphApi,
    meta_accounts: str,
) -> None:
    ticket_id = await ticket_from(
        client, db, settings, "messenger", payloads.messenger_text("m_AAA1", "Dobrý den")
    )
    admin = await factory.agent("admin")
    response = await client.patch(
        f"/channels/accounts/messenger/{ACCOUNT}",
        json={"settings": {"human_agent_tag": True}},
        headers=admin.headers,
    )
    assert response.status_code == 200, response.text
    await db.execute("UPDATE conversations SET last_inbound_at = now() - interval '3 days'")
    agent = await factory.agent("agent")
    await reply(client, agent, ticket_id)
    await run_worker(settings)

    (call,) = graph_api.calls_to("me/messages")
    assert (call.body["messaging_type"], call.body["tag"]) == ("MESSAGE_TAG", "HUMAN_AGENT")


# --- WhatsApp -------------------------------------------------------------------------------


async def test_whatsapp_message_links_the_phone_to_the_customer_who_has_it(
    client: Client, db: asyncpg.Connection, settings: Settings, meta_accounts: str
) -> None:
    """The reply quoting it: tests/channels/test_chat_contract.py."""
    known = await db.fetchval(
        "INSERT INTO customers (name, phone) VALUES ('Jana N.', '+420601234567') RETURNING id"
    )
    ticket_id = await ticket_from(
        client, db, settings, "whatsapp", payloads.whatsapp_text("wamid.IN1", "Reklamace bot")
    )
    assert await db.fetchval("SELECT customer_id FROM tickets WHERE id = $1", ticket_id) == known


async def test_whatsapp_statuses_out_of_order_move_only_forward_and_failed_tells_why(
    client: Client,
    db: asyncpg.Connection,
    settings: Settings,
    factory: Factory,
    graph_api: FakeGraphApi,
    meta_accounts: str,
) -> None:
    ticket_id = await ticket_from(
        client, db, settings, "whatsapp", payloads.whatsapp_text("wamid.IN1", "Dobrý den")
    )
    agent = await factory.agent("agent")
    first = await reply(client, agent, ticket_id, "jedna")
    await run_worker(settings)
    for status in ("read", "delivered", "sent"):
        response = await deliver(client, "whatsapp", payloads.whatsapp_status("wamid.OUT1", status))
        assert response.status_code == 200
        await run_worker(settings)
    assert (
        await db.fetchval("SELECT provider_status FROM messages WHERE id = $1", first["id"])
        == "read"
    )

    second = await reply(client, agent, ticket_id, "dvě")
    await run_worker(settings)
    error = {"code": 131047, "title": "Re-engagement message", "message": "Re-engagement message"}
    response = await deliver(
        client, "whatsapp", payloads.whatsapp_status("wamid.OUT2", "failed", errors=[error])
    )
    assert response.status_code == 200
    await run_worker(settings)
    view = await message_view(client, agent, ticket_id, second["id"])
    assert view["delivery_status"] == "failed"
    assert "131047" in view["delivery_error"] and "template" in view["delivery_error"]


async def test_whatsapp_image_is_fetched_by_media_id_with_the_token(
    client: Client,
    db: asyncpg.Connection,
    settings: Settings,
    graph_api: FakeGraphApi,
    meta_accounts: str,
) -> None:
    photo = bytes(range(256)) * 32
    graph_api.add_media("1037543291543636", photo, "image/jpeg")
    await ticket_from(
        client,
        db,
        settings,
        "whatsapp",
        payloads.whatsapp_image("wamid.IMG", "1037543291543636", "Rozbitý hrnek"),
    )

    message = await db.fetchrow("SELECT id, body_text FROM messages")
    assert message["body_text"] == "Rozbitý hrnek"
    row = await db.fetchrow("SELECT filename, content_type, content FROM attachments")
    assert row["content_type"] == "image/jpeg" and row["filename"].startswith("image_")
    assert bytes(row["content"]) == photo
    assert [auth for _, auth in graph_api.downloads] == [f"Bearer {TOKEN}"] * 2


async def test_whatsapp_file_reply_is_uploaded_then_sent_by_media_id(
    client: Client,
    db: asyncpg.Connection,
    settings: Settings,
    factory: Factory,
    graph_api: FakeGraphApi,
    meta_accounts: str,
) -> None:
    ticket_id = await ticket_from(
        client, db, settings, "whatsapp", payloads.whatsapp_text("wamid.IN1", "Faktura?")
    )
    agent = await factory.agent("agent")
    pdf = b"%PDF-1.4\nfaktura\n%%EOF\n"
    response = await client.post(
        f"/tickets/{ticket_id}/replies",
        json={
            "text": "Faktura v příloze.",
            "attachments": [file_attachment("faktura.pdf", "application/pdf", pdf)],
        },
        headers=agent.headers,
    )
    assert response.status_code == 201, response.text
    await run_worker(settings)

    (upload,) = graph_api.calls_to(f"{payloads.PHONE_NUMBER_ID}/media")
    assert upload.files["file"] == ("faktura.pdf", pdf, "application/pdf")
    assert upload.body["messaging_product"] == "whatsapp"
    text, message = graph_api.calls_to(f"{payloads.PHONE_NUMBER_ID}/messages")
    assert text.body["text"]["body"] == "Faktura v příloze."
    media_id = message.body["document"]["id"]
    assert message.body["type"] == "document"
    assert message.body["document"] == {"id": media_id, "filename": "faktura.pdf"}


async def test_phone_ticket_cannot_take_a_written_reply(
    client: Client, db: asyncpg.Connection, factory: Factory
) -> None:
    agent = await factory.agent("agent")
    ticket = await factory.ticket(client, agent)
    await db.execute("UPDATE tickets SET channel = 'phone' WHERE id = $1", ticket["id"])
    response = await client.post(
        f"/tickets/{ticket['id']}/replies", json={"text": "Dobrý den"}, headers=agent.headers
    )
    assert response.status_code == 409
    assert "log the call" in response.json()["detail"]
    assert await db.fetchval("SELECT count(*) FROM outbox") == 0


def test_window_arithmetic() -> None:
    from datetime import UTC, datetime

    from helpdesk.channels.windows import reply_refusal

    now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    assert reply_refusal("whatsapp", now - timedelta(hours=23, minutes=59), now) is None
    assert reply_refusal("whatsapp", now - timedelta(hours=24, seconds=1), now) is not None
    assert reply_refusal("messenger", now - timedelta(days=6), now, human_agent_tag=True) is None
    assert reply_refusal("messenger", now - timedelta(days=8), now, human_agent_tag=True)
    assert reply_refusal("whatsapp", now - timedelta(days=2), now, human_agent_tag=True)
    assert reply_refusal("whatsapp", None, now) is not None
    assert reply_refusal("telegram", None, now) is None


# --- every kind arrives (issue 19) ----------------------------------------------------------


async def test_whatsapp_username_without_phone_opens_a_ticket_and_is_answered_by_bsuid(
    client: Client,
    db: asyncpg.Connection,
    settings: Settings,
    factory: Factory,
    graph_api: FakeGraphApi,
    meta_accounts: str,
) -> None:
    """Before: the contact's missing `wa_id` failed the decoding of the whole delivery,
    which was still marked processed: the customer's message was lost without a trace."""
    body = payloads.whatsapp_username_message(
        {"id": "wamid.USR1", "type": "text", "text": {"body": "Kdy otevíráte?"}}
    )
    ticket_id = await ticket_from(client, db, settings, "whatsapp", body)
    assert await db.fetchval("SELECT body_text FROM messages") == "Kdy otevíráte?"
    identity = await db.fetchrow("SELECT external_id, display_name FROM customer_identities")
    assert tuple(identity) == (payloads.BSUID, "@jana.shop")
    assert await db.fetchval("SELECT status FROM inbound_events") == "processed"

    agent = await factory.agent("agent")
    await reply(client, agent, ticket_id, "Od devíti.")
    await run_worker(settings)
    (call,) = graph_api.calls_to(f"{payloads.PHONE_NUMBER_ID}/messages")
    assert call.body["recipient"] == payloads.BSUID
    assert "to" not in call.body
    assert call.body["text"]["body"] == "Od devíti."


async def test_whatsapp_kinds_that_were_dropped_reach_the_agent(
    client: Client, db: asyncpg.Connection, settings: Settings, meta_accounts: str
) -> None:
    await ticket_from(
        client, db, settings, "whatsapp", payloads.whatsapp_text("wamid.K0", "Objednávka")
    )
    for body in (
        payloads.whatsapp_contacts("wamid.K1"),
        payloads.whatsapp_order("wamid.K2"),
        payloads.whatsapp_flow_reply("wamid.K3", "wamid.OUT1"),
        payloads.whatsapp_reaction("wamid.K4", "wamid.OUT1", "🙏"),
        payloads.whatsapp_unsupported("wamid.K5", "poll_creation"),
    ):
        assert (await deliver(client, "whatsapp", body)).status_code == 200
    await run_worker(settings)
    assert (
        await deliver(
            client, "whatsapp", payloads.whatsapp_edit("wamid.K6", "wamid.K0", "Objednávka 2")
        )
    ).status_code == 200
    await run_worker(settings)

    rows = await db.fetch("SELECT external_id, body_text, edited_at FROM messages ORDER BY id")
    texts = {r["external_id"]: r["body_text"] for r in rows}
    assert texts["wamid.K0"] == "Objednávka 2"
    assert rows[0]["edited_at"] is not None
    assert texts["wamid.K1"].startswith("[Shared contact: Petr Svoboda")
    assert "di9ozbzfi4" in texts["wamid.K2"]
    assert "address: Veveří 12, Brno" in texts["wamid.K3"]
    assert texts["wamid.K4"] == "[Reacted 🙏 to a message]"
    assert texts["wamid.K5"] == "[The customer sent a poll; open WhatsApp to see it]"
    assert await db.fetchval("SELECT count(DISTINCT ticket_id) FROM messages") == 1
    statuses = await db.fetch("SELECT status FROM inbound_events")
    assert {r["status"] for r in statuses} == {"processed"}


async def test_a_body_that_is_no_delivery_is_failed_visibly(
    client: Client, db: asyncpg.Connection, settings: Settings, meta_accounts: str
) -> None:
    """Before: a signed body that decoded to nothing was marked processed, no error."""
    response = await deliver(client, "messenger", b'{"object": "page", "entry": 5}')
    assert response.status_code == 200
    await run_worker(settings, failed=1)
    row = await db.fetchrow("SELECT status, attempts, last_error FROM inbound_events")
    assert (row["status"], row["attempts"]) == ("pending", 1)  # the sweep tries again
    assert row["last_error"].startswith("MalformedDelivery: not a Meta webhook delivery")


async def test_instagram_files_go_out_as_the_type_instagram_takes(
    client: Client,
    db: asyncpg.Connection,
    settings: Settings,
    factory: Factory,
    graph_api: FakeGraphApi,
    meta_accounts: str,
) -> None:
    """Before: the type came from the content type's major part alone, so e.g. an
    `audio/mpeg` went as audio (Instagram refuses MP3) and anything else as `file`."""
    ticket_id = await ticket_from(
        client, db, settings, "instagram", payloads.instagram_text("aWdf_1", "Pošlete foto")
    )
    agent = await factory.agent("agent")
    files = [
        file_attachment("foto.png", "image/png", b"\x89PNG\r\n\x1a\n" + bytes(64)),
        file_attachment("hlas.m4a", "audio/x-m4a", b"\x00\x00\x00\x20ftypM4A " + bytes(32)),
        file_attachment("video.mov", "application/octet-stream", b"\x00\x00\x00\x14ftypqt  "),
        file_attachment("navod.pdf", "application/pdf", b"%PDF-1.4\n%%EOF\n"),
    ]
    response = await client.post(
        f"/tickets/{ticket_id}/replies",
        json={"text": "Tady jsou.", "attachments": files},
        headers=agent.headers,
    )
    assert response.status_code == 201, response.text
    await run_worker(settings)

    text, *uploads = graph_api.calls_to("me/messages")
    assert text.body["message"] == {"text": "Tady jsou."}
    sent = [(c.files["filedata"][0], c.body["message"]["attachment"]["type"]) for c in uploads]
    assert sent == [
        ("foto.png", "image"),
        ("hlas.m4a", "audio"),
        ("video.mov", "video"),
        ("navod.pdf", "file"),
    ]
    view = await message_view(client, agent, ticket_id, response.json()["id"])
    assert view["delivery_status"] == "sent"


async def test_instagram_refuses_a_file_it_cannot_take_visibly_and_sends_nothing(
    client: Client,
    db: asyncpg.Connection,
    settings: Settings,
    factory: Factory,
    graph_api: FakeGraphApi,
    meta_accounts: str,
) -> None:
    ticket_id = await ticket_from(
        client, db, settings, "instagram", payloads.instagram_text("aWdf_1", "Smlouvu prosím")
    )
    agent = await factory.agent("agent")
    docx = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    response = await client.post(
        f"/tickets/{ticket_id}/replies",
        json={
            "text": "Smlouva v příloze.",
            "attachments": [file_attachment("smlouva.docx", docx, b"PK\x03\x04" + bytes(32))],
        },
        headers=agent.headers,
    )
    assert response.status_code == 201, response.text
    await run_worker(settings)

    assert graph_api.calls_to("me/messages") == []
    view = await message_view(client, agent, ticket_id, response.json()["id"])
    assert view["delivery_status"] == "failed"
    assert "Instagram cannot take smlouva.docx" in view["delivery_error"]
    assert "PDF" in view["delivery_error"] and "Nothing was sent" in view["delivery_error"]


# --- display names --------------------------------------------------------------------------


async def test_messenger_and_instagram_senders_get_their_profile_name_once(
    client: Client,
    db: asyncpg.Connection,
    settings: Settings,
    graph_api: FakeGraphApi,
    meta_accounts: str,
) -> None:
    """Before: every Messenger/Instagram customer was 'Messenger user …360713'."""
    graph_api.add_profile(
        payloads.PSID, first_name="Jana", last_name="Nováková", name="Jana Nováková"
    )
    graph_api.add_profile(payloads.IGSID, name="Petr Svoboda", username="petr.sv")
    for kind, body in (
        ("messenger", payloads.messenger_text("m_N1", "Dobrý den")),
        ("instagram", payloads.instagram_text("aWdf_N1", "Ahoj")),
    ):
        assert (await deliver(client, kind, body)).status_code == 200
    await run_worker(settings)

    names = {
        r["channel"]: (r["display_name"], r["name"])
        for r in await db.fetch(
            """SELECT i.channel, i.display_name, c.name FROM customer_identities i
               JOIN customers c ON c.id = i.customer_id"""
        )
    }
    assert names == {
        "messenger": ("Jana Nováková", "Jana Nováková"),
        "instagram": ("Petr Svoboda (@petr.sv)", "Petr Svoboda (@petr.sv)"),
    }
    # The worker takes the two deliveries concurrently: one lookup each, in either order.
    assert sorted(graph_api.profile_calls) == sorted(
        [
            (payloads.PSID, "first_name,last_name,name", f"Bearer {TOKEN}"),
            (payloads.IGSID, "name,username", f"Bearer {TOKEN}"),
        ]
    )

    # The next message of the same person asks nothing: the identity keeps the name.
    assert (
        await deliver(client, "messenger", payloads.messenger_text("m_N2", "Ještě jedna věc"))
    ).status_code == 200
    await run_worker(settings)
    assert len(graph_api.profile_calls) == 2
    assert await db.fetchval("SELECT count(*) FROM messages") == 3


async def test_a_failed_profile_lookup_keeps_the_message_and_the_placeholder(
    client: Client,
    db: asyncpg.Connection,
    settings: Settings,
    graph_api: FakeGraphApi,
    meta_accounts: str,
) -> None:
    psid = "7345123987654321"
    graph_api.fail(psid, 500, 2, "An unexpected error has occurred.")
    body = payloads.messenger_text("m_F1", "Je tam někdo?", psid=psid)
    ticket_id = await ticket_from(client, db, settings, "messenger", body)
    assert await db.fetchval("SELECT body_text FROM messages WHERE ticket_id = $1", ticket_id) == (
        "Je tam někdo?"
    )
    assert await db.fetchval("SELECT name FROM customers") == "Messenger user …654321"
    assert await db.fetchval("SELECT status FROM inbound_events") == "processed"
    # Not asked again at once for every message of that person.
    again = payloads.messenger_text("m_F2", "Haló?", psid=psid)
    assert (await deliver(client, "messenger", again)).status_code == 200
    await run_worker(settings)
    assert [c[0] for c in graph_api.profile_calls] == [psid]
    assert await db.fetchval("SELECT count(*) FROM messages") == 2


async def test_a_placeholder_identity_is_named_when_its_profile_can_be_read(
    client: Client,
    db: asyncpg.Connection,
    settings: Settings,
    graph_api: FakeGraphApi,
    meta_accounts: str,
) -> None:
    """A person first seen without a name (before this lookup existed) is named at their
    next message, unless an agent has renamed the customer meanwhile."""
    psid, renamed = "5500000000001111", "5500000000002222"
    for user, name in ((psid, "Messenger user …001111"), (renamed, "Pan Novák (VIP)")):
        customer = await db.fetchval("INSERT INTO customers (name) VALUES ($1) RETURNING id", name)
        await db.execute(
            """INSERT INTO customer_identities (customer_id, channel, channel_account,
                                               external_id, display_name)
               VALUES ($1, 'messenger', $2, $3, $4)""",
            customer,
            ACCOUNT,
            user,
            f"Messenger user …{user[-6:]}",
        )
        graph_api.add_profile(user, name=f"Profil {user[-4:]}")
        body = payloads.messenger_text(f"m_{user}", "Dobrý den", psid=user)
        assert (await deliver(client, "messenger", body)).status_code == 200
    await run_worker(settings)

    rows = await db.fetch(
        """SELECT i.external_id, i.display_name, c.name FROM customer_identities i
           JOIN customers c ON c.id = i.customer_id ORDER BY i.external_id"""
    )
    assert [tuple(r) for r in rows] == [
        (psid, "Profil 1111", "Profil 1111"),
        (renamed, "Profil 2222", "Pan Novák (VIP)"),
    ]


# --- files that cannot be fetched -------------------------------------------------------------


async def test_failed_downloads_say_why_without_urls_and_whether_to_retry(
    db: asyncpg.Connection, settings: Settings, graph_api: FakeGraphApi, meta_accounts: str
) -> None:
    """What the shared ingestion needs to keep a message's text when its file cannot be
    had: a reason without the signed URL or the token, and whether a retry can help."""
    from helpdesk.channels.accounts import get_account
    from helpdesk.channels.adapter import InboundAttachment
    from helpdesk.channels.meta.adapter import MessengerAdapter, WhatsAppAdapter
    from helpdesk.channels.meta.graph import MediaFetchError

    messenger = await get_account(db, "messenger", ACCOUNT)
    whatsapp = await get_account(db, "whatsapp", ACCOUNT)
    assert messenger is not None and whatsapp is not None
    expired = "https://scontent.xx.fbcdn.net/v/t1/expired.jpg?oh=SIGNATURE&oe=65F0"
    flaky = "https://scontent.xx.fbcdn.net/v/t1/flaky.jpg?oh=SIGNATURE"
    graph_api.fail("/v/t1/flaky.jpg", 503, None)
    cases = [
        (MessengerAdapter(settings), messenger, expired, True, "HTTP 404"),
        (MessengerAdapter(settings), messenger, flaky, False, "HTTP 503"),
        (MessengerAdapter(settings), messenger, "https://evil.example/x.jpg", True, "not on"),
        (WhatsAppAdapter(settings), whatsapp, "1037543291549999", True, "HTTP 400"),
    ]
    for adapter, account, ref, permanent, said in cases:
        try:
            file = InboundAttachment("x.jpg", "image/jpeg", fetch_ref=ref)
            await adapter.fetch_attachment(account, file)
        except MediaFetchError as error:
            assert error.permanent is permanent, ref
            assert said in error.reason
            assert "SIGNATURE" not in error.reason and TOKEN not in error.reason
            assert "fbcdn" not in error.reason
        else:
            raise AssertionError(f"{ref} was fetched")

    closed = msgspec.structs.replace(
        whatsapp, settings={**whatsapp.settings, "base_url": "http://127.0.0.1:9/v21.0/"}
    )
    try:
        await WhatsAppAdapter(settings).fetch_attachment(
            closed, InboundAttachment("x.jpg", "image/jpeg", fetch_ref="1037543291543636")
        )
    except MediaFetchError as error:
        assert error.permanent is False
        assert error.reason == "WhatsApp unreachable (ConnectError)"
    else:
        raise AssertionError("fetched from a closed port")


async def test_a_reply_whose_quote_whatsapp_refuses_goes_out_unquoted(
    client: Client,
    db: asyncpg.Connection,
    settings: Settings,
    factory: Factory,
    graph_api: FakeGraphApi,
    meta_accounts: str,
) -> None:
    """WhatsApp may refuse the quoted message (deleted meanwhile, too old): the refused
    request sent nothing, so it goes unquoted. A reaction after the customer's words is
    a notice: the reply quotes the words, not the reaction."""
    ticket_id = await ticket_from(
        client, db, settings, "whatsapp", payloads.whatsapp_text("wamid.IN1", "Dobrý den")
    )
    reaction = payloads.whatsapp_reaction("wamid.R9", "wamid.IN1", "👍")
    assert (await deliver(client, "whatsapp", reaction)).status_code == 200
    await run_worker(settings)
    agent = await factory.agent("agent")
    graph_api.fail(
        f"{payloads.PHONE_NUMBER_ID}/messages", 400, 131009, "Parameter value is not valid"
    )
    sent = await reply(client, agent, ticket_id, "Děkujeme!")
    await run_worker(settings)

    refused, unquoted = graph_api.calls_to(f"{payloads.PHONE_NUMBER_ID}/messages")
    assert refused.body["context"] == {"message_id": "wamid.IN1"}
    assert "context" not in unquoted.body
    assert unquoted.body["text"]["body"] == "Děkujeme!"
    view = await message_view(client, agent, ticket_id, sent["id"])
    assert view["delivery_status"] == "sent"


# --- notices: what nobody wrote reopens nothing (docs/sla.md 1.4) -------------------------


async def test_a_whatsapp_reaction_to_our_reply_leaves_the_solved_ticket_solved(
    client: Client,
    db: asyncpg.Connection,
    settings: Settings,
    factory: Factory,
    graph_api: FakeGraphApi,
    meta_accounts: str,
) -> None:
    """Before: the customer's 👍 to our answer reopened the ticket and started a
    next-response cycle, as if they had written again."""
    await db.execute(EVERY_CLOCK_POLICY)
    ticket_id = await ticket_from(
        client, db, settings, "whatsapp", payloads.whatsapp_text("wamid.IN1", "Kde je balík?")
    )
    agent = await factory.agent("agent")
    await reply(client, agent, ticket_id, "Balík dorazí zítra.")
    await run_worker(settings)
    await solve_through_api(client, db, agent, ticket_id)
    reaction = payloads.whatsapp_reaction("wamid.R1", "wamid.OUT1", "👍")
    assert (await deliver(client, "whatsapp", reaction)).status_code == 200
    await run_worker(settings)

    ticket = await db.fetchrow("SELECT status, solved_at FROM tickets WHERE id = $1", ticket_id)
    assert ticket["status"] == "solved" and ticket["solved_at"] is not None
    assert await next_response_cycles(db, ticket_id) == 0
    assert (await sla_event_types(db, ticket_id))[-1] == "customer_auto_reply"
    notice_id = await db.fetchval("SELECT id FROM messages WHERE external_id = 'wamid.R1'")
    view = await message_view(client, agent, ticket_id, notice_id)
    assert (view["kind"], view["body_text"]) == ("system", "[Reacted 👍 to a message]")

    written = payloads.whatsapp_text("wamid.IN2", "Ještě nedorazil.")
    assert (await deliver(client, "whatsapp", written)).status_code == 200
    await run_worker(settings)
    assert await db.fetchval("SELECT status FROM tickets WHERE id = $1", ticket_id) == "open"
    assert await next_response_cycles(db, ticket_id) == 1


async def test_a_messenger_reaction_without_a_conversation_is_kept_visibly_unacknowledged(
    client: Client,
    db: asyncpg.Connection,
    settings: Settings,
    factory: Factory,
    graph_api: FakeGraphApi,
    meta_accounts: str,
) -> None:
    """A reaction to a message of a conversation we never stored has no ticket to go to:
    it opens one (an agent must see it), routed like any other, but owes no first
    response and is not acknowledged (before: "we have your request" went to the
    customer who had only reacted, and a first-response clock ran)."""
    event = {"reaction": {"mid": "m_old", "action": "react", "emoji": "😡", "reaction": "angry"}}
    assert (
        await deliver(client, "messenger", payloads.messaging_event("messenger", event))
    ).status_code == 200
    await run_worker(settings)

    ticket = await db.fetchrow("SELECT * FROM tickets WHERE channel = 'messenger'")
    assert ticket is not None and ticket["status"] == "new"
    assert ticket["routed_at"] is not None and ticket["acknowledged_at"] is None
    assert ticket["first_response_due_at"] is None
    assert await db.fetchval("SELECT count(*) FROM messages WHERE direction = 'outbound'") == 0
    assert [c.path for c in graph_api.calls if c.path.endswith("messages")] == []
    agent = await factory.agent("agent")
    notice_id = await db.fetchval("SELECT id FROM messages WHERE ticket_id = $1", ticket["id"])
    view = await message_view(client, agent, ticket["id"], notice_id)
    assert (view["kind"], view["direction"]) == ("system", "inbound")
    assert view["body_text"] == "[Reacted 😡 to a message]"
