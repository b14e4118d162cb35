"""Full-text search with and without diacritics, literal filters (docs/reliability.md B5),
stable cursor pages."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import asyncpg
import pytest

from helpdesk.tickets.queries import SEARCH_WINDOW
from tests.conftest import AgentHandle, Client, Factory


async def search(client: Client, agent: AgentHandle, **params: Any) -> list[int]:
    response = await client.get("/tickets", params=params, headers=agent.headers)
    assert response.status_code == 200, response.text
    return [t["id"] for t in response.json()["items"]]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("reklamace", "cs"),
        ("REKLAMACE", "cs"),
        ("zbozi", "cs"),
        ("zboží", "cs"),
        ("Žluťoučký", "cs"),
        ("zlutoucky", "cs"),
        ("reklamácia", "sk"),
        ("reklamacia", "sk"),
        ("vratenie tovaru", "sk"),
        ("vrátenie", "sk"),
        ("refund", "en"),
        ("reklamovat zbozi", "cs"),
        ("reklamovat -zbozi", None),
        ("nonexistentword", None),
    ],
)
async def test_full_text_search_folds_diacritics(
    client: Client, factory: Factory, query: str, expected: str | None
) -> None:
    agent = await factory.agent("agent")
    tickets = {
        "cs": await factory.ticket(
            client, agent, subject="Reklamace", text="Žluťoučký kůň, chci reklamovat zboží."
        ),
        "sk": await factory.ticket(
            client, agent, subject="Reklamácia", text="Prosím o vrátenie tovaru."
        ),
        "en": await factory.ticket(
            client, agent, subject="Order 118", text="I want a refund for my order."
        ),
    }
    found = await search(client, agent, q=query)
    assert found == ([tickets[expected]["id"]] if expected else [])


async def test_search_matches_replies_and_notes_too(client: Client, factory: Factory) -> None:
    agent = await factory.agent("agent")
    ticket = await factory.ticket(client, agent, subject="Dotaz", text="Dobrý den")
    await client.post(
        f"/tickets/{ticket['id']}/notes",
        json={"text": "Zásilka ztracena u PPL"},
        headers=agent.headers,
    )
    assert await search(client, agent, q="zasilka") == [ticket["id"]]


@pytest.mark.parametrize(
    "hostile", ["'; DROP TABLE tickets; --", "%", "_", "\\", "100%_\\'", "a & b | !c", ":*", "("]
)
async def test_hostile_search_and_filters_are_taken_literally(
    client: Client, factory: Factory, hostile: str
) -> None:
    """B5: SQL and LIKE metacharacters match only themselves, never everything or an error."""
    agent = await factory.agent("agent")
    await factory.ticket(client, agent, subject="Plain ticket", customer={"name": "Plain customer"})
    literal = await factory.ticket(
        client, agent, subject=f"Weird {hostile} subject", customer={"name": f"Weird {hostile}"}
    )
    tickets = await client.get(
        "/tickets", params={"q": hostile, "tag": hostile}, headers=agent.headers
    )
    assert tickets.status_code == 200
    assert tickets.json()["items"] == []
    customers = await client.get("/customers", params={"q": hostile}, headers=agent.headers)
    assert customers.status_code == 200
    assert [c["id"] for c in customers.json()["items"]] == [literal["customer_id"]]
    assert len(await search(client, agent)) == 2


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"sort": "subject"}, "sort"),
        ({"status": "deleted"}, "status"),
        ({"limit": "0"}, "limit"),
        ({"limit": "1000"}, "limit"),
        ({"assignee": "someone"}, "assignee"),
        ({"cursor": "garbage!"}, "cursor"),
        ({"order_by": "id"}, "order_by"),
        ({"created_after": "yesterday"}, "created_after"),
        ({"created_after": "2026-01-01T00:00:00"}, "created_after"),
        ({"group_id": "1 OR 1=1"}, "group_id"),
    ],
)
async def test_bad_listing_parameters_are_400_naming_the_parameter(
    client: Client, factory: Factory, params: dict[str, str], field: str
) -> None:
    agent = await factory.agent("agent")
    response = await client.get("/tickets", params=params, headers=agent.headers)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert any(field in e["field"] for e in response.json()["errors"]), response.json()


async def test_filters_combine(client: Client, factory: Factory) -> None:
    group = await factory.group()
    agent = await factory.agent("agent", [group])
    mine = await factory.ticket(
        client,
        agent,
        group_id=group,
        assignee_id=agent.id,
        priority="urgent",
        tags=["vip"],
        category="complaint",
    )
    await factory.ticket(client, agent, group_id=group, priority="urgent")
    await factory.ticket(client, agent, tags=["vip"])
    assert await search(client, agent, assignee="me") == [mine["id"]]
    assert await search(client, agent, assignee=str(agent.id), tag="vip") == [mine["id"]]
    assert len(await search(client, agent, assignee="unassigned")) == 2
    assert len(await search(client, agent, priority="urgent", group_id=group)) == 2
    assert await search(client, agent, category="complaint") == [mine["id"]]
    assert len(await search(client, agent, channel="api")) == 3
    assert await search(client, agent, created_after="2999-01-01T00:00:00Z") == []
    assert len(await search(client, agent, created_before="2999-01-01T00:00:00+01:00")) == 3


@pytest.mark.parametrize("sort", ["-created_at", "created_at"])
async def test_cursor_pages_never_skip_or_repeat_while_tickets_arrive(
    client: Client, factory: Factory, sort: str
) -> None:
    agent = await factory.agent("agent")
    existing = [(await factory.ticket(client, agent))["id"] for _ in range(23)]
    seen: list[int] = []
    keys: list[tuple[str, int]] = []
    cursor: str | None = None
    arrivals = 0
    while True:
        params: dict[str, Any] = {"limit": 4, "sort": sort}
        if cursor:
            params["cursor"] = cursor
        page_request = client.get("/tickets", params=params, headers=agent.headers)
        # Tickets keep arriving between and during page reads.
        results = await asyncio.gather(
            page_request, factory.ticket(client, agent), factory.ticket(client, agent)
        )
        arrivals += 2
        page = results[0].json()
        seen.extend(t["id"] for t in page["items"])
        keys.extend((t["created_at"], t["id"]) for t in page["items"])
        cursor = page["next_cursor"]
        if cursor is None or arrivals > 200:
            break
    assert len(seen) == len(set(seen)), "a ticket was repeated"
    assert set(existing) <= set(seen), "a ticket that existed before paging was skipped"
    # The order is (created_at, id), the keyset; concurrent inserts may take ids out of
    # created_at order, so ids alone need not be sorted.
    order = keys if sort == "created_at" else list(reversed(keys))
    parsed = [(datetime.fromisoformat(at), ticket_id) for at, ticket_id in order]
    assert parsed == sorted(parsed)


async def test_cursor_from_another_sort_is_rejected(client: Client, factory: Factory) -> None:
    agent = await factory.agent("agent")
    for _ in range(3):
        await factory.ticket(client, agent)
    page = (await client.get("/tickets", params={"limit": 1}, headers=agent.headers)).json()
    response = await client.get(
        "/tickets",
        params={"cursor": page["next_cursor"], "sort": "created_at"},
        headers=agent.headers,
    )
    assert response.status_code == 400


async def test_search_beyond_the_newest_tickets_finds_rare_and_frequent_words(
    client: Client, factory: Factory, db: asyncpg.Connection
) -> None:
    """More tickets than a search reads row by row (SEARCH_WINDOW): a rare word in the
    oldest ticket is still found, a word in a few old tickets comes newest first, and a
    word in every ticket pages through them all without gaps."""
    agent = await factory.agent("agent")
    customer = await db.fetchval("INSERT INTO customers (name) VALUES ('Jana') RETURNING id")
    count = SEARCH_WINDOW + 150
    rows = await db.fetch(
        """INSERT INTO tickets (subject, channel, customer_id, created_at, updated_at)
           SELECT 'Dotaz ' || n, 'api', $1, now() - make_interval(mins => $2 - n), now()
           FROM generate_series(1, $2) AS n RETURNING id, created_at""",
        customer,
        count,
    )
    oldest_first = [r["id"] for r in sorted(rows, key=lambda r: r["created_at"])]
    every_100th = oldest_first[::100]  # 12 tickets, most older than the newest window
    await db.execute(
        """INSERT INTO messages (ticket_id, direction, kind, channel, body_text)
           SELECT id, 'inbound', 'public', 'api',
                  'Děkuji za pomoc.'
                  || CASE WHEN id = $1 THEN ' Kompresor v lednici hlučí.' ELSE '' END
                  || CASE WHEN id = ANY($2::bigint[]) THEN ' Chci reklamaci.' ELSE '' END
           FROM unnest($3::bigint[]) AS id""",
        oldest_first[0],
        every_100th,
        oldest_first,
    )

    assert await search(client, agent, q="kompresor") == [oldest_first[0]]
    assert await search(client, agent, q="reklamaci", limit=100) == every_100th[::-1]
    newest_first = oldest_first[::-1]
    seen: list[int] = []
    cursor = None
    for _ in range(count // 100 + 1):
        params: dict[str, Any] = {"q": "dekuji", "limit": 100}
        if cursor:
            params["cursor"] = cursor
        response = await client.get("/tickets", params=params, headers=agent.headers)
        assert response.status_code == 200, response.text
        seen += [t["id"] for t in response.json()["items"]]
        cursor = response.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == newest_first
