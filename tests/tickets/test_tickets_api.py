from __future__ import annotations

import asyncio
import base64
import uuid
from typing import Any

import asyncpg
import pytest

from helpdesk.config import Settings
from tests.conftest import AgentHandle, Client, Factory


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
    assert [e["action"] for e in body["events"]] == ["created", "replied", "sla_met"]
    assert detail.headers["etag"] == f'"{body["ticket"]["version"]}"'


async def etag_of(client: Client, agent: AgentHandle, ticket_id: int) -> str:
    response = await client.get(f"/tickets/{ticket_id}", headers=agent.headers)
    assert response.status_code == 200, response.text
    return str(response.headers["etag"])


async def test_every_ticket_endpoint_requires_a_token(client: Client, factory: Factory) -> None:
    agent = await factory.agent("agent")
    ticket = await factory.ticket(client, agent)
    tid = ticket["id"]
    calls = [
        client.get("/tickets"),
        client.post("/tickets", json={}),
        client.get(f"/tickets/{tid}"),
        client.patch(f"/tickets/{tid}", json={"priority": "high"}),
        client.post(f"/tickets/{tid}/replies", json={"text": "x"}),
        client.post(f"/tickets/{tid}/notes", json={"text": "x"}),
        client.post(f"/tickets/{tid}/merge", json={"into_ticket_id": tid}),
        client.get("/attachments/1"),
        client.get("/customers"),
        client.get(f"/customers/{ticket['customer_id']}"),
        client.get("/agents"),
        client.get("/groups"),
        client.get("/audit"),
    ]
    for response in await asyncio.gather(*calls):
        assert response.status_code == 401, (response.request.url, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")


async def test_create_ticket_reuses_the_customer_by_email(client: Client, factory: Factory) -> None:
    agent = await factory.agent("agent")
    first = await factory.ticket(client, agent, customer={"email": "Jana@Example.cz"})
    second = await factory.ticket(client, agent, customer={"email": "jana@example.cz"})
    assert first["customer_id"] == second["customer_id"]
    assert first["number"] != second["number"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"subject": "", "text": "x", "customer": {"name": "A"}}, "subject"),
        ({"subject": "s", "text": "x", "customer": {"email": "not-an-email"}}, "customer.email"),
        ({"subject": "s", "text": "x", "customer": {"name": "A"}, "priority": "asap"}, "priority"),
        ({"subject": "s", "text": "x", "customer": {"name": "A"}, "status": "open"}, "status"),
        ({"subject": "s", "customer": {"name": "A"}}, "text"),
        ({"subject": 5, "text": "x", "customer": {"name": "A"}}, "subject"),
        ({"subject": "s", "text": "x", "customer": {"name": "A"}, "tags": ["a b"]}, "tags[0]"),
        ({"subject": "s", "text": "x", "customer": {}}, "customer"),
    ],
)
async def test_invalid_ticket_input_names_the_field(
    client: Client, factory: Factory, db: asyncpg.Connection, body: dict[str, Any], field: str
) -> None:
    agent = await factory.agent("agent")
    response = await client.post("/tickets", json=body, headers=agent.headers)
    assert response.status_code == 400, response.text
    problem = response.json()
    assert problem["type"] == "urn:helpdesk:problem:invalid-input"
    assert field in [e["field"] for e in problem["errors"]], problem
    assert await db.fetchval("SELECT count(*) FROM tickets") == 0


async def test_update_needs_the_current_version(
    client: Client, factory: Factory, db: asyncpg.Connection
) -> None:
    agent = await factory.agent("agent")
    ticket = await factory.ticket(client, agent)
    tid = ticket["id"]
    missing = await client.patch(
        f"/tickets/{tid}", json={"priority": "high"}, headers=agent.headers
    )
    assert missing.status_code == 428
    etag = await etag_of(client, agent, tid)
    ok = await client.patch(
        f"/tickets/{tid}",
        json={"priority": "high", "tags": ["vip", "vip", "eshop"]},
        headers={**agent.headers, "If-Match": etag},
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["priority"] == "high"
    assert ok.json()["tags"] == ["eshop", "vip"]
    assert ok.headers["etag"] != etag
    stale = await client.patch(
        f"/tickets/{tid}", json={"priority": "low"}, headers={**agent.headers, "If-Match": etag}
    )
    assert stale.status_code == 412
    assert stale.json()["current_version"] == ok.json()["version"]
    assert await db.fetchval("SELECT priority FROM tickets WHERE id = $1", tid) == "high"
    events = await db.fetch("SELECT action, changes FROM ticket_events WHERE ticket_id = $1", tid)
    assert events[-1]["changes"]["priority"] == {"from": "normal", "to": "high"}


async def test_two_agents_racing_on_one_version_one_wins(client: Client, factory: Factory) -> None:
    agent = await factory.agent("agent")
    other = await factory.agent("agent")
    ticket = await factory.ticket(client, agent)
    etag = await etag_of(client, agent, ticket["id"])
    results = await asyncio.gather(
        client.patch(
            f"/tickets/{ticket['id']}",
            json={"priority": "urgent"},
            headers={**agent.headers, "If-Match": etag},
        ),
        client.patch(
            f"/tickets/{ticket['id']}",
            json={"priority": "low"},
            headers={**other.headers, "If-Match": etag},
        ),
    )
    assert sorted(r.status_code for r in results) == [200, 412]


async def test_status_changes_set_and_clear_timestamps(client: Client, factory: Factory) -> None:
    agent = await factory.agent("agent")
    ticket = await factory.ticket(client, agent)
    tid = ticket["id"]

    async def set_status(status: str) -> dict[str, Any]:
        etag = await etag_of(client, agent, tid)
        response = await client.patch(
            f"/tickets/{tid}", json={"status": status}, headers={**agent.headers, "If-Match": etag}
        )
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    assert (await set_status("solved"))["solved_at"] is not None
    reopened = await set_status("open")
    assert reopened["solved_at"] is None
    closed = await set_status("closed")
    assert closed["closed_at"] is not None


async def test_closed_ticket_can_no_longer_change(
    client: Client, factory: Factory, db: asyncpg.Connection
) -> None:
    """A3: a PATCH, reply or merge on a closed ticket is a 409 and changes nothing."""
    agent = await factory.agent("agent")
    ticket = await factory.ticket(client, agent)
    other = await factory.ticket(client, agent)
    tid = ticket["id"]
    etag = await etag_of(client, agent, tid)
    await client.patch(
        f"/tickets/{tid}", json={"status": "closed"}, headers={**agent.headers, "If-Match": etag}
    )
    etag = await etag_of(client, agent, tid)
    patch = await client.patch(
        f"/tickets/{tid}", json={"status": "open"}, headers={**agent.headers, "If-Match": etag}
    )
    reply = await client.post(f"/tickets/{tid}/replies", json={"text": "hi"}, headers=agent.headers)
    merge = await client.post(
        f"/tickets/{other['id']}/merge", json={"into_ticket_id": tid}, headers=agent.headers
    )
    assert [patch.status_code, reply.status_code, merge.status_code] == [409, 409, 409]
    assert await db.fetchval("SELECT status FROM tickets WHERE id = $1", tid) == "closed"
    assert await db.fetchval("SELECT count(*) FROM messages WHERE ticket_id = $1", tid) == 1


async def test_internal_note_is_not_a_reply(client: Client, factory: Factory) -> None:
    agent = await factory.agent("agent")
    ticket = await factory.ticket(client, agent)
    note = await client.post(
        f"/tickets/{ticket['id']}/notes",
        json={"text": "Zákazník volal, chce vrátit peníze."},
        headers=agent.headers,
    )
    assert note.status_code == 201
    assert note.json()["kind"] == "note"
    assert note.json()["delivery_status"] is None
    detail = (await client.get(f"/tickets/{ticket['id']}", headers=agent.headers)).json()
    assert detail["ticket"]["first_responded_at"] is None
    assert detail["ticket"]["status"] == "new"


async def test_reply_with_attachment_is_downloadable_safely(
    client: Client, factory: Factory, settings: Settings
) -> None:
    agent = await factory.agent("agent")
    ticket = await factory.ticket(client, agent)
    html = b"<script>alert(1)</script>"
    reply = await client.post(
        f"/tickets/{ticket['id']}/replies",
        json={
            "text": "see attached",
            "attachments": [
                {
                    "filename": "x.html",
                    "content_type": "text/html",
                    "content": base64.b64encode(html).decode(),
                }
            ],
        },
        headers=agent.headers,
    )
    assert reply.status_code == 201, reply.text
    attachment = reply.json()["attachments"][0]
    download = await client.get(f"/attachments/{attachment['id']}", headers=agent.headers)
    assert download.status_code == 200
    assert download.content == html
    assert download.headers["content-type"] == "application/octet-stream"
    assert download.headers["content-disposition"].startswith("attachment;")
    assert download.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in download.headers["content-security-policy"]

    too_big = base64.b64encode(b"x" * (settings.attachment_max_bytes + 1)).decode()
    over = await client.post(
        f"/tickets/{ticket['id']}/replies",
        json={
            "text": "big",
            "attachments": [
                {
                    "filename": "big.bin",
                    "content_type": "application/octet-stream",
                    "content": too_big,
                }
            ],
        },
        headers=agent.headers,
    )
    assert over.status_code == 413


async def test_merge_moves_messages_and_links_the_closed_ticket(
    client: Client, factory: Factory
) -> None:
    agent = await factory.agent("agent")
    target = await factory.ticket(client, agent, subject="Reklamace")
    source = await factory.ticket(client, agent, subject="Reklamace znovu")
    await client.post(
        f"/tickets/{source['id']}/notes", json={"text": "duplicate"}, headers=agent.headers
    )
    merged = await client.post(
        f"/tickets/{source['id']}/merge",
        json={"into_ticket_id": target["id"], "reason": "same issue"},
        headers=agent.headers,
    )
    assert merged.status_code == 200, merged.text
    assert merged.json()["id"] == target["id"]
    target_detail = (await client.get(f"/tickets/{target['id']}", headers=agent.headers)).json()
    assert len(target_detail["messages"]) == 3
    assert target_detail["events"][-1]["action"] == "merged_from"
    source_detail = (await client.get(f"/tickets/{source['id']}", headers=agent.headers)).json()
    assert source_detail["ticket"]["status"] == "closed"
    assert source_detail["ticket"]["merged_into_id"] == target["id"]
    assert source_detail["messages"] == []
    itself = await client.post(
        f"/tickets/{target['id']}/merge",
        json={"into_ticket_id": target["id"]},
        headers=agent.headers,
    )
    assert itself.status_code == 400
    missing = await client.post(
        f"/tickets/{target['id']}/merge", json={"into_ticket_id": 999999}, headers=agent.headers
    )
    assert missing.status_code == 404


async def test_idempotent_create_under_concurrency_has_one_effect(
    client: Client, factory: Factory, db: asyncpg.Connection
) -> None:
    """F9: two concurrent identical POSTs with one key make one ticket and one answer."""
    agent = await factory.agent("agent")
    body = {"subject": "Double click", "text": "once", "customer": {"email": "d@example.test"}}
    headers = {**agent.headers, "Idempotency-Key": str(uuid.uuid4())}
    first, second = await asyncio.gather(
        client.post("/tickets", json=body, headers=headers),
        client.post("/tickets", json=body, headers=headers),
    )
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert await db.fetchval("SELECT count(*) FROM tickets") == 1
    again = await client.post("/tickets", json=body, headers=headers)
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    changed = await client.post("/tickets", json={**body, "text": "twice"}, headers=headers)
    assert changed.status_code == 422
    assert changed.json()["type"] == "urn:helpdesk:problem:idempotency-key-reused"
    assert await db.fetchval("SELECT count(*) FROM tickets") == 1


async def test_idempotent_reply_is_sent_once(
    client: Client, factory: Factory, db: asyncpg.Connection
) -> None:
    agent = await factory.agent("agent")
    ticket = await factory.ticket(client, agent)
    headers = {**agent.headers, "Idempotency-Key": "reply-1"}
    results = await asyncio.gather(
        *(
            client.post(
                f"/tickets/{ticket['id']}/replies", json={"text": "Hotovo."}, headers=headers
            )
            for _ in range(5)
        )
    )
    assert {r.status_code for r in results} == {201}
    assert len({r.json()["id"] for r in results}) == 1
    assert await db.fetchval("SELECT count(*) FROM outbox") == 1


async def test_failed_request_does_not_burn_its_idempotency_key(
    client: Client, factory: Factory
) -> None:
    agent = await factory.agent("agent")
    headers = {**agent.headers, "Idempotency-Key": "k1"}
    body = {"subject": "s", "text": "t", "customer": {"id": 424242}}
    assert (await client.post("/tickets", json=body, headers=headers)).status_code == 400
    body["customer"] = {"name": "Now valid"}
    assert (await client.post("/tickets", json=body, headers=headers)).status_code == 201
