from __future__ import annotations

from typing import Any

from tests.conftest import Client, Factory


async def test_search_customers_by_name_email_or_phone(client: Client, factory: Factory) -> None:
    agent = await factory.agent("agent")
    jana = await factory.ticket(
        client,
        agent,
        customer={"email": "jana@example.cz", "name": "Jana Nováková", "phone": "+420 777 123 456"},
    )
    await factory.ticket(client, agent, customer={"email": "petr@example.cz", "name": "Petr"})
    for q in ("novakova", "Nováková", "JANA@EXAMPLE", "777 123"):
        response = await client.get("/customers", params={"q": q}, headers=agent.headers)
        assert response.status_code == 200
        assert [c["id"] for c in response.json()["items"]] == [jana["customer_id"]], q


async def test_customer_detail_has_identities_and_tickets(client: Client, factory: Factory) -> None:
    agent = await factory.agent("agent")
    first = await factory.ticket(client, agent, customer={"email": "a@example.cz"})
    second = await factory.ticket(client, agent, customer={"email": "a@example.cz"})
    response = await client.get(f"/customers/{first['customer_id']}", headers=agent.headers)
    assert response.status_code == 200
    body = response.json()
    assert [(i["channel"], i["external_id"]) for i in body["identities"]] == [
        ("email", "a@example.cz")
    ]
    assert [t["id"] for t in body["tickets"]] == [second["id"], first["id"]]
    assert (await client.get("/customers/999999", headers=agent.headers)).status_code == 404


async def test_customer_pages_follow_the_cursor(client: Client, factory: Factory) -> None:
    agent = await factory.agent("agent")
    for _ in range(5):
        await factory.ticket(client, agent)
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/customers", params=params, headers=agent.headers)).json()
        seen += [c["id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == sorted(seen, reverse=True) and len(seen) == 5
    bad = await client.get("/customers", params={"cursor": "x"}, headers=agent.headers)
    assert bad.status_code == 400
