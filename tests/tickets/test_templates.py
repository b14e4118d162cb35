"""Canned replies: chosen by the customer's language and stage, rendered with only the
known placeholders, managed by admins."""

from __future__ import annotations

import asyncpg

from tests.conftest import Client, Factory


async def test_templates_follow_the_customers_language_and_stage(
    client: Client, db: asyncpg.Connection, factory: Factory
) -> None:
    admin = await factory.agent("admin")
    for body in (
        {
            "name": "Omluva",
            "language": "cs",
            "body": "Dobrý den {customer_name}, k #{ticket_number}: {x}",
        },
        {"name": "Omluva", "language": "en", "body": "Hello {customer_name}"},
        {"name": "VIP", "language": "cs", "body": "Pro věrné zákazníky", "stages": ["loyal"]},
    ):
        response = await client.post("/templates", json=body, headers=admin.headers)
        assert response.status_code == 201, response.text
    agent = await factory.agent("agent")
    assert (
        await client.post(
            "/templates", json={"name": "x", "language": "cs", "body": "y"}, headers=agent.headers
        )
    ).status_code == 403
    ticket = await factory.ticket(
        client, agent, customer={"email": "jana@example.cz", "name": "Jana"}
    )
    await db.execute("UPDATE customers SET language = 'cs'")

    offered = (
        await client.get(f"/templates/for-ticket/{ticket['id']}", headers=agent.headers)
    ).json()
    assert [o["name"] for o in offered] == ["Omluva"]  # Czech, and not the loyal-only one
    assert offered[0]["text"] == f"Dobrý den Jana, k #{ticket['number']}: {{x}}"
    await db.execute("UPDATE customers SET lifecycle_stage = 'loyal'")
    offered = (
        await client.get(f"/templates/for-ticket/{ticket['id']}", headers=agent.headers)
    ).json()
    assert [o["name"] for o in offered] == ["Omluva", "VIP"]
