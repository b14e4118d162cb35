"""Routing on the real database with the real worker: classification and rules, the
first-line filter and its escalation, partner scope, assignment under concurrency,
availability, acknowledgements (docs/reliability.md rows F1, A1, A2, A10 for routing)."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import asyncpg
import pytest
from msgspec import structs

from helpdesk.config import Settings
from helpdesk.db.pool import connect
from helpdesk.routing import service
from helpdesk.routing.jobs import route_ticket
from tests.channels.replies import run_worker
from tests.conftest import AgentHandle, Client, Factory, job_context

FIRST_RESPONSE_START = """SELECT started_at FROM ticket_sla_clocks
                          WHERE ticket_id = $1 AND clock = 'first_response'"""


async def rule(
    client: Client, admin: AgentHandle, name: str, group_id: int, **fields: Any
) -> dict[str, Any]:
    response = await client.post(
        "/routing/rules", json={"name": name, "group_id": group_id, **fields}, headers=admin.headers
    )
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def group_routing(client: Client, admin: AgentHandle, group_id: int, **fields: Any) -> None:
    response = await client.patch(f"/routing/groups/{group_id}", json=fields, headers=admin.headers)
    assert response.status_code == 200, response.text


async def online(client: Client, agent: AgentHandle, state: str = "online") -> dict[str, Any]:
    response = await client.put(
        "/agents/me/availability", json={"availability": state}, headers=agent.headers
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def ticket_row(db: asyncpg.Connection, ticket_id: int) -> asyncpg.Record:
    row = await db.fetchrow("SELECT * FROM tickets WHERE id = $1", ticket_id)
    assert row is not None
    return row


@pytest.mark.parametrize(
    ("subject", "text", "category", "language"),
    [
        ("Reklamace", "Dobrý den, hrnek přišel rozbitý, chci ho reklamovat.", "complaint", "cs"),
        ("reklamacia", "Dobry den, tovar prisiel poskodeny, chcem reklamaciu.", "complaint", "sk"),
        ("Vrácení zboží", "Chci vrátit boty, nesedí mi velikost. Jak postupovat?", "return", "cs"),
        ("Where is my order?", "My order 12345 has not arrived yet. Tracking?", "order", "en"),
        (
            "Refund please",
            "I returned the jacket two weeks ago and want my refund.",
            "return",
            "en",
        ),
    ],
)
async def test_new_tickets_are_classified_and_routed_by_the_rules(
    client: Client,
    db: asyncpg.Connection,
    factory: Factory,
    settings: Settings,
    subject: str,
    text: str,
    category: str,
    language: str,
) -> None:
    admin = await factory.agent("admin")
    groups = {name: await factory.group(name) for name in ("Reklamace", "Objednávky", "Vratky")}
    await rule(
        client, admin, "complaints", groups["Reklamace"], conditions={"category": ["complaint"]}
    )
    await rule(client, admin, "orders", groups["Objednávky"], conditions={"category": ["order"]})
    await rule(client, admin, "returns", groups["Vratky"], conditions={"category": ["return"]})
    agent = await factory.agent("agent")
    ticket = await factory.ticket(client, agent, subject=subject, text=text)
    await run_worker(settings)

    row = await ticket_row(db, ticket["id"])
    assert (row["category"], row["language"]) == (category, language)
    assert row["category_source"] == "classifier" and row["category_reason"]
    expected_group = {"complaint": "Reklamace", "order": "Objednávky", "return": "Vratky"}
    assert row["group_id"] == groups[expected_group[category]]
    assert row["routed_at"] is not None and row["routing_reason"].startswith("rule '")
    events = await db.fetch(
        "SELECT action FROM ticket_events WHERE ticket_id = $1 AND action = 'routed'", ticket["id"]
    )
    assert len(events) == 1


async def test_routing_twice_changes_nothing_and_a_killed_attempt_is_redone(
    client: Client, db: asyncpg.Connection, factory: Factory, settings: Settings
) -> None:
    agent = await factory.agent("agent")
    ticket = await factory.ticket(client, agent, subject="Reklamace", text="Rozbité zboží.")
    with pytest.raises(RuntimeError):
        async with db.transaction():
            assert await service.route(db, ticket["id"], settings) is not None
            raise RuntimeError("worker killed mid-routing")
    assert (await ticket_row(db, ticket["id"]))["routed_at"] is None

    await run_worker(settings)  # the sweep finds the unrouted ticket
    async with db.transaction():
        assert await service.route(db, ticket["id"], settings) is None  # routed already
    events = await db.fetchval(
        "SELECT count(*) FROM ticket_events WHERE ticket_id = $1 AND action = 'routed'",
        ticket["id"],
    )
    assert events == 1


async def test_first_line_takes_simple_tickets_and_escalates_with_the_clock_running(
    client: Client, db: asyncpg.Connection, factory: Factory, settings: Settings
) -> None:
    admin = await factory.agent("admin")
    internal = await factory.group("Podpora")
    first_line = await factory.group("Outsourcing")
    await group_routing(client, admin, first_line, first_line_categories=["question", "order"])
    await rule(client, admin, "all", internal)
    partner = await factory.agent("partner", group_ids=[first_line])
    staff = await factory.agent("agent", group_ids=[internal])
    ticket = await factory.ticket(
        client, staff, subject="Dotaz", text="Dobrý den, jaká je otevírací doba prodejny?"
    )
    await run_worker(settings)

    row = await ticket_row(db, ticket["id"])
    assert row["category"] == "question"
    assert (row["group_id"], row["escalation_group_id"]) == (first_line, internal)
    started = await db.fetchval(
        FIRST_RESPONSE_START,
        ticket["id"],
    )
    note = await client.post(
        f"/tickets/{ticket['id']}/notes",
        json={"text": "Zákazník je VIP, marže 40 %", "internal_only": True},
        headers=staff.headers,
    )
    assert note.status_code == 201
    seen = await client.get(f"/tickets/{ticket['id']}", headers=partner.headers)
    assert seen.status_code == 200
    assert all("marže" not in m["body_text"] for m in seen.json()["messages"])
    assert any(
        "marže" in m["body_text"]
        for m in (await client.get(f"/tickets/{ticket['id']}", headers=staff.headers)).json()[
            "messages"
        ]
    )

    other = await factory.group("Jiná")
    response = await client.post(
        f"/tickets/{ticket['id']}/escalate",
        json={"reason": "Vyžaduje interní systém", "group_id": first_line},
        headers=partner.headers,
    )
    assert response.status_code == 403  # not back to a first-line team
    response = await client.post(
        f"/tickets/{ticket['id']}/escalate",
        json={"reason": "Vyžaduje přístup do skladu"},
        headers=partner.headers,
    )
    assert response.status_code == 200, response.text
    row = await ticket_row(db, ticket["id"])
    assert (row["group_id"], row["assignee_id"]) == (internal, None)
    event = await db.fetchrow(
        "SELECT reason, changes FROM ticket_events WHERE ticket_id = $1 AND action = 'escalated'",
        ticket["id"],
    )
    assert event["reason"] == "Vyžaduje přístup do skladu"
    assert (
        await db.fetchval(
            FIRST_RESPONSE_START,
            ticket["id"],
        )
        == started
    )  # the customer's wait does not restart
    # Out of the partner's queues now: gone for them (A1), and they cannot move it (A2).
    assert (
        await client.get(f"/tickets/{ticket['id']}", headers=partner.headers)
    ).status_code == 404
    response = await client.post(
        f"/tickets/{ticket['id']}/escalate",
        json={"reason": "x", "group_id": other},
        headers=partner.headers,
    )
    assert response.status_code == 404


async def test_round_robin_under_two_workers_assigns_each_ticket_once_within_capacity(
    client: Client, db: asyncpg.Connection, factory: Factory, settings: Settings
) -> None:
    admin = await factory.agent("admin")
    group = await factory.group("Podpora")
    await group_routing(client, admin, group, assignment_strategy="round_robin")
    await rule(client, admin, "all", group)
    agents = [await factory.agent("agent", group_ids=[group]) for _ in range(3)]
    for agent in agents:
        response = await client.patch(
            f"/routing/agents/{agent.id}", json={"capacity": 2}, headers=admin.headers
        )
        assert response.status_code == 200
        await online(client, agent)
    creator = await factory.agent("agent")
    tickets = await asyncio.gather(
        *(
            factory.ticket(client, creator, subject=f"Dotaz {i}", text="Prosím o informaci.")
            for i in range(8)
        )
    )
    await asyncio.gather(run_worker(settings), run_worker(settings))

    rows = await db.fetch("SELECT id, assignee_id FROM tickets ORDER BY id")
    loads = Counter(r["assignee_id"] for r in rows if r["assignee_id"] is not None)
    assert sorted(loads.values()) == [2, 2, 2]  # fair, and nobody over capacity
    assert set(loads) == {a.id for a in agents}
    assert sum(1 for r in rows if r["assignee_id"] is None) == 2  # waiting in the queue
    assigned_events = await db.fetch(
        "SELECT ticket_id FROM ticket_events WHERE action = 'assigned'"
    )
    assert len(assigned_events) == len({e["ticket_id"] for e in assigned_events}) == 6
    assert len(tickets) == 8

    # One agent leaves: their untouched new tickets go back and wait; capacity frees up
    # when another agent raises it, and the oldest waiting tickets are assigned.
    left = await online(client, agents[0], "offline")
    assert len(left["returned_to_queue"]) == 2
    response = await client.patch(
        f"/routing/agents/{agents[1].id}", json={"capacity": 6}, headers=admin.headers
    )
    assert response.status_code == 200
    await run_worker(settings)
    rows = await db.fetch("SELECT assignee_id FROM tickets")
    loads = Counter(r["assignee_id"] for r in rows)
    assert loads[agents[0].id] == 0
    assert loads[agents[1].id] == 6 and loads[agents[2].id] == 2
    assert loads[None] == 0


async def test_least_loaded_respects_language_skills_and_offline_agents(
    client: Client, db: asyncpg.Connection, factory: Factory, settings: Settings
) -> None:
    admin = await factory.agent("admin")
    group = await factory.group("Podpora")
    await group_routing(client, admin, group, assignment_strategy="least_loaded")
    await rule(client, admin, "all", group)
    slovak = await factory.agent("agent", group_ids=[group])
    czech = await factory.agent("agent", group_ids=[group])
    away = await factory.agent("agent", group_ids=[group])
    for agent, languages in ((slovak, ["sk"]), (czech, ["cs"])):
        response = await client.patch(
            f"/routing/agents/{agent.id}",
            json={"skill_languages": languages},
            headers=admin.headers,
        )
        assert response.status_code == 200
        await online(client, agent)
    await online(client, away, "away")
    creator = await factory.agent("agent")
    sk = await factory.ticket(
        client,
        creator,
        subject="Otázka",
        text="Dobrý deň, chcel by som sa opýtať, či máte tovar na sklade.",
    )
    cs = await factory.ticket(
        client,
        creator,
        subject="Otázka",
        text="Dobrý den, chtěl bych se zeptat, jestli máte zboží skladem.",
    )
    await run_worker(settings)

    assert (await ticket_row(db, sk["id"]))["assignee_id"] == slovak.id
    assert (await ticket_row(db, cs["id"]))["assignee_id"] == czech.id


async def test_category_corrections_are_counted_for_rule_improvement(
    client: Client, db: asyncpg.Connection, factory: Factory, settings: Settings
) -> None:
    supervisor = await factory.agent("supervisor")
    agent = await factory.agent("agent")
    ticket = await factory.ticket(
        client, agent, subject="Reklamace", text="Rozbitý displej, reklamace."
    )
    await run_worker(settings)
    row = await ticket_row(db, ticket["id"])
    assert row["category"] == "complaint"
    response = await client.patch(
        f"/tickets/{ticket['id']}",
        json={"category": "return"},
        headers={**agent.headers, "If-Match": f'"{row["version"]}"'},
    )
    assert response.status_code == 200, response.text
    stats = (await client.get("/routing/stats", headers=supervisor.headers)).json()
    assert stats["corrections"] == [
        {"from_category": "complaint", "to_category": "return", "count": 1}
    ]
    assert any(h["hits"] >= 1 for h in stats["classification_rule_hits"])
    assert (await client.get("/routing/stats", headers=agent.headers)).status_code == 403


async def test_acknowledgement_goes_out_once_with_number_and_due_time(
    client: Client, db: asyncpg.Connection, factory: Factory, settings: Settings
) -> None:
    on = structs.replace(settings, routing=structs.replace(settings.routing, acknowledge=True))
    customer = await db.fetchval(
        "INSERT INTO customers (name, language) VALUES ('Jana', 'sk') RETURNING id"
    )
    ticket_id = await db.fetchval(
        """INSERT INTO tickets (subject, channel, channel_account, customer_id)
           VALUES ('Otázka', 'webchat', 'site', $1) RETURNING id""",
        customer,
    )
    await db.execute(
        """INSERT INTO messages (ticket_id, direction, kind, author_customer_id, channel,
                                 channel_account, external_id, body_text)
           VALUES ($1, 'inbound', 'public', $2, 'webchat', 'site', 'v1:1', 'Dobrý deň, otázka')""",
        ticket_id,
        customer,
    )
    async with db.transaction():
        from helpdesk.sla import recording as sla_recording
        from helpdesk.sla import refresh as sla_refresh

        await sla_recording.record(db, ticket_id, "created", await db.fetchval("SELECT now()"))
        await sla_refresh.refresh(db, ticket_id, settings.sla)
    await run_worker(on)
    await run_worker(on)

    acks = await db.fetch(
        """SELECT body_text, author_agent_id FROM messages
           WHERE ticket_id = $1 AND direction = 'outbound'""",
        ticket_id,
    )
    assert len(acks) == 1
    number = await db.fetchval("SELECT number FROM tickets WHERE id = $1", ticket_id)
    assert f"#{number}" in acks[0]["body_text"] and "Ďakujeme" in acks[0]["body_text"]
    assert acks[0]["author_agent_id"] is None
    first = await db.fetchrow(
        "SELECT met_at FROM ticket_sla_clocks WHERE ticket_id = $1 AND clock = 'first_response'",
        ticket_id,
    )
    assert first["met_at"] is None  # an automatic message is no response


async def test_a_routing_job_lost_with_redis_is_redone_by_the_sweep(
    client: Client, db: asyncpg.Connection, factory: Factory, settings: Settings
) -> None:
    """F3: Redis restarts empty with the route job queued; PostgreSQL still knows."""
    from redis.asyncio import Redis

    agent = await factory.agent("agent")
    ticket = await factory.ticket(client, agent, subject="Reklamace", text="Rozbité zboží.")
    redis = Redis.from_url(settings.redis_url)
    try:
        queued = [j.decode() for j in await redis.zrange("arq:queue", 0, -1)]
        assert [j for j in queued if j.startswith("route:")], queued
        await redis.flushdb()
    finally:
        await redis.aclose()
    assert (await ticket_row(db, ticket["id"]))["routed_at"] is None

    await run_worker(settings)
    row = await ticket_row(db, ticket["id"])
    assert row["routed_at"] is not None and row["category"] == "complaint"


async def test_routing_does_not_wait_for_another_routings_rule_counters(
    client: Client, db: asyncpg.Connection, factory: Factory, settings: Settings
) -> None:
    """Every routing counts its hits on the same few counter rows. The counting comes
    after the routing transaction, so a transaction holding those rows (another routing
    counting, here imitated) delays only the count, never a ticket's routing; inside it,
    all routings were serialised (waits of 200-370 ms in the ingestion benchmark)."""
    agent = await factory.agent("agent")
    first = await factory.ticket(client, agent, subject="Reklamace", text="Rozbitý displej.")
    await run_worker(settings)  # the counter rows exist from here on
    second = await factory.ticket(client, agent, subject="Reklamace", text="Prasklý kryt.")
    counted = await db.fetchval("SELECT sum(hits) FROM classification_hits")
    assert (await ticket_row(db, first["id"]))["routed_at"] is not None

    holder = await connect(settings.database_url)
    try:
        async with job_context(settings) as ctx:
            holding = holder.transaction()
            await holding.start()
            await holder.execute("SELECT * FROM classification_hits FOR UPDATE")
            routing = asyncio.create_task(route_ticket(ctx, second["id"]))
            for _ in range(500):  # the routing commits while the counters are held
                row = await ticket_row(db, second["id"])
                if row["routed_at"] is not None or routing.done():
                    break
                await asyncio.sleep(0.01)
            assert (await ticket_row(db, second["id"]))["routed_at"] is not None
            assert not routing.done()  # its count waits for the counters
            await holding.commit()
            await asyncio.wait_for(routing, 30)
    finally:
        await holder.close()
    assert await db.fetchval("SELECT sum(hits) FROM classification_hits") > counted
