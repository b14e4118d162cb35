"""A partner never gets linked to, or learns of, a customer outside its scope (issue 19).

Whatever a partner types (e-mail, phone) when it opens a ticket or logs a call, the
answer is the same whether or not a customer of another group has that address or
number: a customer the partner already sees, else a new one that claims no identity.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from tests.conftest import AgentHandle, Client, Factory

SECRET_PHONE = "+420 777 111 222"


async def two_queues(
    client: Client, factory: Factory
) -> tuple[AgentHandle, AgentHandle, int, dict[str, Any]]:
    """A partner in its own group, and an internal customer with e-mail and phone in another."""
    mine, internal = await factory.group("Partner"), await factory.group("Interní")
    admin = await factory.agent("admin")
    partner = await factory.agent("partner", [mine])
    hidden = await factory.ticket(
        client,
        admin,
        group_id=internal,
        customer={"email": "vip@example.test", "name": "VIP Zákazník"},
    )
    logged = await client.post(f"/tickets/{hidden['id']}/calls", json=call(), headers=admin.headers)
    assert logged.status_code == 201, logged.text
    return partner, admin, mine, hidden


def call(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "direction": "inbound",
        "phone": SECRET_PHONE,
        "started_at": "2026-11-23T09:00:00+01:00",
        "duration_seconds": 60,
        "summary": "Volal zákazník.",
    }
    body.update(fields)
    return body


async def new_ticket(
    client: Client, partner: AgentHandle, group_id: int, customer: dict[str, Any]
) -> dict[str, Any]:
    response = await client.post(
        "/tickets",
        json={"subject": "Dotaz", "text": "Dobrý den", "customer": customer, "group_id": group_id},
        headers=partner.headers,
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def profile(client: Client, agent: AgentHandle, customer_id: int) -> dict[str, Any]:
    response = await client.get(f"/customers/{customer_id}", headers=agent.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def looks(detail: dict[str, Any]) -> dict[str, Any]:
    """What a partner sees of a customer it made, without ids and times."""
    customer = detail["customer"]
    return {
        "customer": {k: customer[k] for k in ("name", "email", "phone", "external_id", "tags")},
        "identities": detail["identities"],
        "orders": detail["orders"],
        "tickets": len(detail["tickets"]),
    }


async def test_partner_ticket_with_a_hidden_customers_email_gets_its_own_customer(
    client: Client, factory: Factory, db: asyncpg.Connection
) -> None:
    partner, admin, mine, hidden = await two_queues(client, factory)
    taken = await new_ticket(client, partner, mine, {"email": "VIP@example.test", "name": "X"})
    fresh = await new_ticket(client, partner, mine, {"email": "nobody@example.test", "name": "X"})
    assert taken["customer_id"] != hidden["customer_id"]
    # Nothing of the hidden customer reaches the partner, and the answers for a taken
    # and a free address look alike.
    seen = await profile(client, partner, taken["customer_id"])
    assert "VIP" not in str(seen) and "777" not in str(seen)
    other = await profile(client, partner, fresh["customer_id"])
    assert looks(seen) == {
        **looks(other),
        "customer": {**looks(other)["customer"], "email": "vip@example.test"},
    }
    assert seen["identities"] == other["identities"] == []
    denied = await client.get(f"/customers/{hidden['customer_id']}", headers=partner.headers)
    assert denied.status_code == 404
    # The hidden customer keeps its identity and gains no ticket from the partner.
    still = await profile(client, admin, hidden["customer_id"])
    assert [t["id"] for t in still["tickets"]] == [hidden["id"]]
    owner = await db.fetchval(
        "SELECT customer_id FROM customer_identities WHERE external_id = 'vip@example.test'"
    )
    assert owner == hidden["customer_id"]


async def test_partner_ticket_with_a_hidden_customers_phone_gets_its_own_customer(
    client: Client, factory: Factory
) -> None:
    partner, _, mine, hidden = await two_queues(client, factory)
    by_phone = await new_ticket(client, partner, mine, {"phone": "+420777111222", "name": "Y"})
    assert by_phone["customer_id"] != hidden["customer_id"]
    seen = await profile(client, partner, by_phone["customer_id"])
    assert seen["customer"]["name"] == "Y" and seen["identities"] == []


async def test_partner_call_ticket_from_a_hidden_customers_number_is_not_linked(
    client: Client, factory: Factory
) -> None:
    partner, _, mine, hidden = await two_queues(client, factory)
    response = await client.post(
        "/tickets/calls",
        json=call(subject="Hovor", group_id=mine, name="Z"),
        headers=partner.headers,
    )
    assert response.status_code == 201, response.text
    ticket = response.json()
    assert ticket["customer_id"] != hidden["customer_id"]
    seen = await profile(client, partner, ticket["customer_id"])
    assert seen["customer"]["name"] == "Z" and "VIP" not in str(seen)
    assert seen["identities"] == []


async def test_partner_call_on_its_ticket_stays_with_the_tickets_customer(
    client: Client, factory: Factory, db: asyncpg.Connection
) -> None:
    partner, _, mine, hidden = await two_queues(client, factory)
    own = await new_ticket(client, partner, mine, {"email": "own@example.test", "name": "Own"})
    logged = await client.post(f"/tickets/{own['id']}/calls", json=call(), headers=partner.headers)
    assert logged.status_code == 201, logged.text
    assert logged.json()["author_customer_id"] == own["customer_id"]
    event = await db.fetchval(
        "SELECT changes FROM ticket_events WHERE ticket_id = $1 AND action = 'call_logged'",
        own["id"],
    )
    assert event["customer_id"] == own["customer_id"]
    # The number stays the hidden customer's identity; nothing moved to the partner.
    owner = await db.fetchval("SELECT customer_id FROM customer_identities WHERE channel = 'phone'")
    assert owner == hidden["customer_id"]


async def test_partner_reuses_a_customer_it_already_sees(client: Client, factory: Factory) -> None:
    partner, _, mine, _ = await two_queues(client, factory)
    first = await new_ticket(client, partner, mine, {"email": "own@example.test", "name": "Own"})
    again = await new_ticket(client, partner, mine, {"email": "OWN@example.test"})
    assert again["customer_id"] == first["customer_id"]


async def test_internal_agents_still_link_by_email_and_phone(
    client: Client, factory: Factory
) -> None:
    *_, hidden = await two_queues(client, factory)
    agent = await factory.agent("agent")
    by_mail = await factory.ticket(client, agent, customer={"email": "vip@example.test"})
    by_phone = await client.post("/tickets/calls", json=call(subject="s"), headers=agent.headers)
    assert by_phone.status_code == 201, by_phone.text
    assert by_mail["customer_id"] == by_phone.json()["customer_id"] == hidden["customer_id"]
