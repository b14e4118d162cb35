from __future__ import annotations

from typing import Any

from litestar.testing import AsyncTestClient

from tests.conftest import Factory

Client = AsyncTestClient[Any]


async def test_agent_creates_replies_and_reads_a_ticket(client: Client, factory: Factory) -> None:
    group = await factory.group("Support")
    agent = await factory.agent("agent", [group])
    ticket = await factory.ticket(client, agent, group_id=group, subject="Kde je objednávka?")
    assert ticket["status"] == "new"
    assert ticket["first_response_due_at"] is not None

    reply = await client.post(
        f"/tickets/{ticket['id']}/replies",
        json={"text": "Dobrý den, už to řešíme."},
        headers=agent.headers,
    )
    assert reply.status_code == 201, reply.text
    assert reply.json()["delivery_status"] == "pending"

    detail = await client.get(f"/tickets/{ticket['id']}", headers=agent.headers)
    assert detail.status_code == 200
    body = detail.json()
    assert body["ticket"]["status"] == "open"
    assert body["ticket"]["first_responded_at"] is not None
    assert [m["direction"] for m in body["messages"]] == ["inbound", "outbound"]
    assert [e["action"] for e in body["events"]] == ["created", "replied"]
    assert detail.headers["etag"] == f'"{body["ticket"]["version"]}"'
