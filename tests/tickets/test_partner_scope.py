"""A partner (outsourced first line) sees and touches only its own groups
(docs/reliability.md rows A1, A2, A4, A5, A10)."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import asyncpg
import pytest

from tests.conftest import AgentHandle, Client, Factory


async def setup_two_queues(
    client: Client, factory: Factory
) -> tuple[AgentHandle, AgentHandle, dict[str, Any], dict[str, Any], int, int]:
    """Group "1" (the partner's) and group "12" (not), one ticket each."""
    group_1 = await factory.group("1")
    group_12 = await factory.group("12")
    admin = await factory.agent("admin")
    # Make the ids line up with the names, so "1" vs "12" is a real prefix collision.
    while group_12 < 12:
        group_12 = await factory.group()
    partner = await factory.agent("partner", [group_1])
    own = await factory.ticket(
        client,
        admin,
        group_id=group_1,
        subject="Objednávka partner",
        customer={"email": "own@example.test"},
    )
    other = await factory.ticket(
        client,
        admin,
        group_id=group_12,
        subject="Objednávka interní",
        customer={"email": "other@example.test"},
    )
    reply = await client.post(
        f"/tickets/{other['id']}/replies",
        json={
            "text": "interní",
            "attachments": [
                {
                    "filename": "a.txt",
                    "content_type": "text/plain",
                    "content": base64.b64encode(b"secret").decode(),
                }
            ],
        },
        headers=admin.headers,
    )
    assert reply.status_code == 201
    return partner, admin, own, other, group_1, group_12


async def test_partner_cannot_read_other_group_ticket(client: Client, factory: Factory) -> None:
    """A1/A10: every path to the other queue's ticket answers the same 404."""
    partner, admin, own, other, _, _ = await setup_two_queues(client, factory)
    detail = await client.get(f"/tickets/{other['id']}", headers=partner.headers)
    missing = await client.get("/tickets/999999", headers=partner.headers)
    assert detail.status_code == missing.status_code == 404
    strip = lambda b: {k: v for k, v in b.items() if k not in ("instance", "detail", "request_id")}  # noqa: E731
    assert strip(detail.json()) == strip(missing.json())
    admin_view = (await client.get(f"/tickets/{other['id']}", headers=admin.headers)).json()
    attachment_id = admin_view["messages"][-1]["attachments"][0]["id"]
    download = await client.get(f"/attachments/{attachment_id}", headers=partner.headers)
    assert download.status_code == 404
    assert (await client.get(f"/tickets/{own['id']}", headers=partner.headers)).status_code == 200


async def test_partner_listing_search_and_counts_stay_in_scope(
    client: Client, factory: Factory
) -> None:
    partner, _, own, other, _, group_12 = await setup_two_queues(client, factory)
    for query in [
        "",
        "?q=objednavka",
        "?q=interni",
        f"?group_id={group_12}",
        f"?customer_id={other['customer_id']}",
        f"?number={other['number']}",
        "?status=new&status=open",
    ]:
        response = await client.get(f"/tickets{query}", headers=partner.headers)
        assert response.status_code == 200, response.text
        ids = {t["id"] for t in response.json()["items"]}
        assert other["id"] not in ids, query
    everything = (await client.get("/tickets", headers=partner.headers)).json()["items"]
    assert [t["id"] for t in everything] == [own["id"]]
    # The number customers quote finds the ticket (in scope only, as above).
    by_number = await client.get(f"/tickets?number={own['number']}", headers=partner.headers)
    assert [t["id"] for t in by_number.json()["items"]] == [own["id"]]


async def test_partner_sees_only_customers_of_its_tickets(client: Client, factory: Factory) -> None:
    partner, _, own, other, _, _ = await setup_two_queues(client, factory)
    listing = (await client.get("/customers", headers=partner.headers)).json()["items"]
    assert [c["id"] for c in listing] == [own["customer_id"]]
    assert (
        await client.get(f"/customers/{other['customer_id']}", headers=partner.headers)
    ).status_code == 404
    mine = (await client.get(f"/customers/{own['customer_id']}", headers=partner.headers)).json()
    assert [t["id"] for t in mine["tickets"]] == [own["id"]]
    reuse = await client.post(
        "/tickets",
        json={
            "subject": "s",
            "text": "t",
            "customer": {"id": other["customer_id"]},
            "group_id": own["group_id"],
        },
        headers=partner.headers,
    )
    assert reuse.status_code == 400


async def test_partner_cannot_write_to_other_group_ticket(
    client: Client, factory: Factory, db: asyncpg.Connection
) -> None:
    partner, _, own, other, _, _ = await setup_two_queues(client, factory)
    calls = [
        client.patch(
            f"/tickets/{other['id']}",
            json={"priority": "low"},
            headers={**partner.headers, "If-Match": '"1"'},
        ),
        client.post(f"/tickets/{other['id']}/replies", json={"text": "x"}, headers=partner.headers),
        client.post(f"/tickets/{other['id']}/notes", json={"text": "x"}, headers=partner.headers),
        client.post(
            f"/tickets/{own['id']}/merge",
            json={"into_ticket_id": other["id"]},
            headers=partner.headers,
        ),
        client.post(
            f"/tickets/{other['id']}/merge",
            json={"into_ticket_id": own["id"]},
            headers=partner.headers,
        ),
    ]
    for response in await asyncio.gather(*calls):
        assert response.status_code == 404, response.text
    assert await db.fetchval("SELECT count(*) FROM messages WHERE ticket_id = $1", other["id"]) == 2
    assert await db.fetchval("SELECT status FROM tickets WHERE id = $1", own["id"]) == "new"


async def test_partner_cannot_move_or_assign_out_of_scope(
    client: Client, factory: Factory, db: asyncpg.Connection
) -> None:
    """A2: moving a ticket to another group, or to an agent outside the partner's groups: 403."""
    partner, admin, own, _, group_1, group_12 = await setup_two_queues(client, factory)
    internal = await factory.agent("agent", [group_12])
    colleague = await factory.agent("partner", [group_1])
    etag = (await client.get(f"/tickets/{own['id']}", headers=partner.headers)).headers["etag"]
    headers = {**partner.headers, "If-Match": etag}
    for change in ({"group_id": group_12}, {"assignee_id": internal.id}, {"group_id": None}):
        response = await client.patch(f"/tickets/{own['id']}", json=change, headers=headers)
        assert response.status_code == 403, (change, response.text)
    assert await db.fetchval("SELECT group_id FROM tickets WHERE id = $1", own["id"]) == group_1
    ok = await client.patch(
        f"/tickets/{own['id']}", json={"assignee_id": colleague.id}, headers=headers
    )
    assert ok.status_code == 200, ok.text
    create_elsewhere = await client.post(
        "/tickets",
        json={"subject": "s", "text": "t", "customer": {"name": "N"}, "group_id": group_12},
        headers=partner.headers,
    )
    assert create_elsewhere.status_code == 403
    # Internal agents are not limited by groups.
    etag = (await client.get(f"/tickets/{own['id']}", headers=admin.headers)).headers["etag"]
    moved = await client.patch(
        f"/tickets/{own['id']}",
        json={"group_id": group_12},
        headers={**admin.headers, "If-Match": etag},
    )
    assert moved.status_code == 200


@pytest.mark.parametrize("field", ["customer_id", "sla", "role", "number", "merged_into_id"])
async def test_protected_fields_cannot_be_patched(
    client: Client, factory: Factory, db: asyncpg.Connection, field: str
) -> None:
    """A5: fields outside the change model are rejected by name and nothing changes."""
    partner, _, own, other, _, _ = await setup_two_queues(client, factory)
    etag = (await client.get(f"/tickets/{own['id']}", headers=partner.headers)).headers["etag"]
    response = await client.patch(
        f"/tickets/{own['id']}",
        json={field: other["customer_id"], "priority": "urgent"},
        headers={**partner.headers, "If-Match": etag},
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == field
    row = await db.fetchrow("SELECT customer_id, priority FROM tickets WHERE id = $1", own["id"])
    assert (row["customer_id"], row["priority"]) == (own["customer_id"], "normal")


async def test_walking_ticket_ids_is_slowed_down(
    client: Client, factory: Factory, settings: Any
) -> None:
    """A4: identical 404s for every id, then 429 once the not-found budget is spent."""
    partner, _, _, _, _, _ = await setup_two_queues(client, factory)
    limit = settings.auth.not_found_limit
    bodies = []
    for ticket_id in range(1000, 1000 + limit):
        response = await client.get(f"/tickets/{ticket_id}", headers=partner.headers)
        assert response.status_code == 404
        bodies.append(response.json()["type"])
    assert set(bodies) == {"urn:helpdesk:problem:not-found"}
    for _ in range(50):  # the budget is counted just after each response
        blocked = await client.get("/tickets/5000", headers=partner.headers)
        if blocked.status_code == 429:
            break
        await asyncio.sleep(0.02)
    assert blocked.status_code == 429
    assert int(blocked.headers["retry-after"]) > 0
