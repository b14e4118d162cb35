"""One person on several channels becomes one customer: by an agent's merge through the
API, and automatically where a verified phone number matches (issue 4, Identity across
channels)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import asyncpg

from helpdesk.channels.adapter import InboundMessage, SenderIdentity
from helpdesk.channels.ingest import StoredMessage, store_inbound
from helpdesk.config import SlaSettings
from tests.conftest import AgentHandle, Client, Factory

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


async def chat_message(
    db: asyncpg.Connection,
    channel: Any,
    sender: SenderIdentity,
    *,
    external_id: str = "wamid.1",
    text: str = "Dobrý den, píšu přes WhatsApp.",
) -> StoredMessage:
    return await store_inbound(
        db,
        InboundMessage(
            channel=channel,
            channel_account="shop",
            external_id=external_id,
            conversation_id=sender.external_id,
            sender=sender,
            text=text,
            sent_at=T0,
        ),
        attachments=[],
        raw=b"{}",
        sla=SlaSettings(),
    )


async def merge(client: Client, agent: AgentHandle, source: int, target: int, **fields: Any) -> Any:
    return await client.post(
        f"/customers/{source}/merge",
        json={"into_customer_id": target, **fields},
        headers=agent.headers,
    )


async def test_merge_moves_identities_tickets_and_history_to_one_customer(
    client: Client, factory: Factory, db: asyncpg.Connection
) -> None:
    agent = await factory.agent("agent")
    # Jana by e-mail and on Telegram (one customer), and as an unnamed caller (another).
    mail = await factory.ticket(
        client, agent, customer={"email": "jana@example.cz", "name": "Jana Nováková"}
    )
    jana = mail["customer_id"]
    await db.execute("UPDATE customers SET language = 'cs' WHERE id = $1", jana)
    # Telegram verified her address: the shared ingestion links her there on its own.
    telegram = await chat_message(
        db,
        "telegram",
        SenderIdentity(external_id="tg-1", display_name="Jana", email="jana@example.cz"),
    )
    assert (
        await db.fetchval("SELECT customer_id FROM tickets WHERE id = $1", telegram.ticket_id)
        == jana
    )
    phone = await client.post(
        "/tickets/calls",
        json={
            "subject": "Volala zákaznice",
            "direction": "inbound",
            "phone": "+420 601 234 567",
            "started_at": "2026-11-23T10:00:00+01:00",
            "duration_seconds": 60,
            "summary": "Ptá se na objednávku.",
        },
        headers=agent.headers,
    )
    assert phone.status_code == 201, phone.text
    caller = phone.json()["customer_id"]
    assert caller != jana

    response = await merge(client, agent, jana, caller, reason="Stejná osoba")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["customer"]["id"] == caller
    # Empty fields of the one that stays are filled; its own are kept.
    assert body["customer"]["name"] == "Jana Nováková"
    assert body["customer"]["email"] == "jana@example.cz"
    assert body["customer"]["phone"] == "+420601234567"
    assert body["customer"]["language"] == "cs"
    assert sorted((i["channel"], i["external_id"]) for i in body["identities"]) == [
        ("email", "jana@example.cz"),
        ("phone", "+420601234567"),
        ("telegram", "tg-1"),
    ]
    assert sorted((t["id"], t["channel"]) for t in body["tickets"]) == sorted(
        [(mail["id"], "api"), (telegram.ticket_id, "telegram"), (phone.json()["id"], "phone")]
    )
    assert sorted((h["ticket_id"], h["channel"]) for h in body["history"]) == sorted(
        [(mail["id"], "api"), (telegram.ticket_id, "telegram"), (phone.json()["id"], "phone")]
    )
    # The customer view afterwards is the same, and the merged one is gone.
    view = await client.get(f"/customers/{caller}", headers=agent.headers)
    assert view.json() == body
    assert (await client.get(f"/customers/{jana}", headers=agent.headers)).status_code == 404
    assert await db.fetchval("SELECT count(*) FROM customers") == 1
    assert (
        await db.fetchval(
            "SELECT count(*) FROM messages WHERE author_customer_id IS DISTINCT FROM $1"
            " AND direction = 'inbound'",
            caller,
        )
        == 0
    )
    assert await db.fetchval("SELECT customer_id FROM conversations") == caller

    # The event log of each moved ticket records it; the phone ticket did not move.
    for ticket_id in (mail["id"], telegram.ticket_id):
        events = (await client.get(f"/tickets/{ticket_id}", headers=agent.headers)).json()
        last = events["events"][-1]
        assert last["action"] == "customer_merged"
        assert last["changes"] == {"from_customer_id": jana, "into_customer_id": caller}
        assert (last["reason"], last["actor_agent_id"]) == ("Stejná osoba", agent.id)
    phone_events = await client.get(f"/tickets/{phone.json()['id']}", headers=agent.headers)
    assert "customer_merged" not in [e["action"] for e in phone_events.json()["events"]]
    audit = await db.fetchrow("SELECT * FROM audit_log WHERE action = 'customer.merge'")
    assert (audit["actor_agent_id"], audit["object_id"], audit["outcome"]) == (
        agent.id,
        str(caller),
        "allowed",
    )
    assert audit["detail"]["from_customer_id"] == jana
    assert audit["detail"]["ticket_ids"] == sorted([mail["id"], telegram.ticket_id])
    assert audit["detail"]["identities_moved"] == 2

    # New mail from Jana's address now lands on the merged customer.
    again = await factory.ticket(client, agent, customer={"email": "jana@example.cz"})
    assert again["customer_id"] == caller


async def test_merge_refuses_partners_itself_and_unknown_customers(
    client: Client, factory: Factory, db: asyncpg.Connection
) -> None:
    group = await factory.group()
    agent = await factory.agent("agent")
    partner = await factory.agent("partner", [group])
    supervisor = await factory.agent("supervisor")
    a = (await factory.ticket(client, agent, group_id=group))["customer_id"]
    b = (await factory.ticket(client, agent, group_id=group))["customer_id"]

    denied = await merge(client, partner, a, b)
    assert denied.status_code == 403
    assert denied.headers["content-type"].startswith("application/problem+json")
    itself = await merge(client, agent, a, a)
    assert itself.status_code == 400
    assert [e["field"] for e in itself.json()["errors"]] == ["into_customer_id"]
    assert (await merge(client, agent, 999999, b)).status_code == 404
    assert (await merge(client, agent, a, 999999)).status_code == 404
    assert (await merge(client, agent, a, 0)).status_code == 400
    unknown_field = await merge(client, agent, a, b, keep_source=True)
    assert unknown_field.status_code == 400
    assert await db.fetchval("SELECT count(*) FROM customers") == 2
    assert (await merge(client, supervisor, a, b)).status_code == 200
    assert await db.fetchval("SELECT count(*) FROM customers") == 1


async def test_opposite_concurrent_merges_of_one_pair_leave_one_whole_customer(
    client: Client, factory: Factory, db: asyncpg.Connection
) -> None:
    agent = await factory.agent("agent")
    first = await factory.ticket(client, agent)
    second = await factory.ticket(client, agent)
    a, b = first["customer_id"], second["customer_id"]
    results = await asyncio.gather(merge(client, agent, a, b), merge(client, agent, b, a))
    assert sorted(r.status_code for r in results) == [200, 404], [r.text for r in results]
    [survivor] = [r.json()["customer"]["id"] for r in results if r.status_code == 200]
    assert await db.fetchval("SELECT array_agg(id) FROM customers") == [survivor]
    assert await db.fetchval("SELECT count(*) FROM customer_identities") == 2
    assert set(await db.fetchval("SELECT array_agg(DISTINCT customer_id) FROM tickets")) == {
        survivor
    }


async def test_a_retried_merge_with_its_idempotency_key_answers_the_same(
    client: Client, factory: Factory
) -> None:
    agent = await factory.agent("agent")
    a = (await factory.ticket(client, agent))["customer_id"]
    b = (await factory.ticket(client, agent))["customer_id"]
    headers = {**agent.headers, "Idempotency-Key": "merge-1"}
    body = {"into_customer_id": b}
    first = await client.post(f"/customers/{a}/merge", json=body, headers=headers)
    again = await client.post(f"/customers/{a}/merge", json=body, headers=headers)
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    assert again.headers["idempotent-replayed"] == "true"


async def test_a_caller_and_a_whatsapp_sender_with_the_same_number_are_one_customer(
    client: Client, factory: Factory, db: asyncpg.Connection
) -> None:
    agent = await factory.agent("agent")
    ticket = await factory.ticket(client, agent, customer={"email": "jana@example.cz"})
    logged = await client.post(
        f"/tickets/{ticket['id']}/calls",
        json={
            "direction": "inbound",
            "phone": "+420 601 234 567",
            "started_at": "2026-11-23T10:00:00+01:00",
            "duration_seconds": 95,
            "summary": "Volala kvůli reklamaci.",
        },
        headers=agent.headers,
    )
    assert logged.status_code == 201, logged.text
    stored = await chat_message(
        db,
        "whatsapp",
        SenderIdentity(external_id="420601234567", display_name="Jana", phone="+420601234567"),
    )
    owner = await db.fetchval("SELECT customer_id FROM tickets WHERE id = $1", stored.ticket_id)
    assert owner == ticket["customer_id"]
    view = (await client.get(f"/customers/{owner}", headers=agent.headers)).json()
    assert sorted((i["channel"], i["external_id"]) for i in view["identities"]) == [
        ("email", "jana@example.cz"),
        ("phone", "+420601234567"),
        ("whatsapp", "420601234567"),
    ]
    assert sorted(t["channel"] for t in view["tickets"]) == ["api", "whatsapp"]
    # The history shows the call on the first ticket as what it was: a phone message.
    assert [(h["channel"], h["direction"]) for h in view["history"]] == [
        ("whatsapp", "inbound"),
        ("phone", "inbound"),
        ("api", "inbound"),
    ]
    assert view["history"][1]["excerpt"] == "Volala kvůli reklamaci."


async def test_partner_sees_the_history_of_its_own_tickets_only(
    client: Client, factory: Factory
) -> None:
    mine, theirs = await factory.group(), await factory.group()
    admin = await factory.agent("admin")
    partner = await factory.agent("partner", [mine])
    own = await factory.ticket(client, admin, group_id=mine, customer={"email": "j@example.cz"})
    other = await factory.ticket(client, admin, group_id=theirs, customer={"email": "j@example.cz"})
    view = (await client.get(f"/customers/{own['customer_id']}", headers=partner.headers)).json()
    assert [t["id"] for t in view["tickets"]] == [own["id"]]
    assert [h["ticket_id"] for h in view["history"]] == [own["id"]]
    full = (await client.get(f"/customers/{own['customer_id']}", headers=admin.headers)).json()
    assert [h["ticket_id"] for h in full["history"]] == [other["id"], own["id"]]


async def test_a_whatsapp_sender_finds_a_customer_made_from_a_call(
    client: Client, factory: Factory, db: asyncpg.Connection
) -> None:
    agent = await factory.agent("agent")
    opened = await client.post(
        "/tickets/calls",
        json={
            "subject": "Hovor",
            "direction": "inbound",
            "phone": "+420 (601) 234-567",
            "name": "Jana",
            "started_at": "2026-11-23T10:00:00+01:00",
            "duration_seconds": 30,
            "summary": "Zavolá znovu.",
        },
        headers=agent.headers,
    )
    assert opened.status_code == 201, opened.text
    stored = await chat_message(
        db,
        "whatsapp",
        SenderIdentity(external_id="420601234567", display_name="Jana", phone="+420601234567"),
    )
    owner = await db.fetchval("SELECT customer_id FROM tickets WHERE id = $1", stored.ticket_id)
    assert owner == opened.json()["customer_id"]
    assert await db.fetchval("SELECT count(*) FROM customers") == 1


async def test_a_whatsapp_sender_finds_a_customer_whose_phone_an_agent_typed(
    client: Client, factory: Factory, db: asyncpg.Connection
) -> None:
    agent = await factory.agent("agent")
    ticket = await factory.ticket(
        client, agent, customer={"email": "jana@example.cz", "phone": "+420 601-234-567"}
    )
    stored = await chat_message(
        db,
        "whatsapp",
        SenderIdentity(external_id="420601234567", display_name="Jana", phone="+420601234567"),
    )
    owner = await db.fetchval("SELECT customer_id FROM tickets WHERE id = $1", stored.ticket_id)
    assert owner == ticket["customer_id"]
    found = await client.get("/customers", params={"q": "601 234"}, headers=agent.headers)
    assert [c["id"] for c in found.json()["items"]] == [owner]
    assert found.json()["items"][0]["phone"] == "+420601234567"
