"""Phone calls logged by agents: a `phone` message on the ticket, the caller's number a
customer identity, an outbound public call the first response, an inbound call the
customer speaking (issue 4, Phone)."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from helpdesk.customers.identities import normalize_phone
from tests.conftest import AgentHandle, Client, Factory

STARTED = "2026-11-23T09:00:00+01:00"


def call(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "direction": "outbound",
        "phone": "+420 601 234 567",
        "started_at": STARTED,
        "duration_seconds": 312,
        "summary": "Zavolal jsem zákazníkovi, zásilka dorazí zítra.",
    }
    body.update(fields)
    return body


async def log_call(
    client: Client, agent: AgentHandle, ticket_id: int, **fields: Any
) -> dict[str, Any]:
    response = await client.post(
        f"/tickets/{ticket_id}/calls", json=call(**fields), headers=agent.headers
    )
    assert response.status_code == 201, response.text
    message: dict[str, Any] = response.json()
    return message


async def detail(client: Client, agent: AgentHandle, ticket_id: int) -> dict[str, Any]:
    response = await client.get(f"/tickets/{ticket_id}", headers=agent.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@given(
    digits=st.text(alphabet="0123456789", min_size=6, max_size=15),
    separators=st.lists(st.sampled_from([" ", "-", ".", "(", ")", "/", "\u00a0"]), max_size=15),
)
def test_a_number_normalizes_the_same_however_it_is_typed(
    digits: str, separators: list[str]
) -> None:
    typed = "+" + "".join(
        d + (separators[i] if i < len(separators) else "") for i, d in enumerate(digits)
    )
    assert normalize_phone(typed) == "+" + digits
    assert normalize_phone(digits) is None  # no country code: ambiguous, refused


async def test_outbound_public_call_is_the_first_response_and_is_never_queued(
    client: Client, factory: Factory, db: asyncpg.Connection
) -> None:
    agent = await factory.agent("agent")
    ticket = await factory.ticket(client, agent, customer={"email": "jana@example.cz"})
    assert ticket["status"] == "new" and ticket["first_responded_at"] is None

    message = await log_call(client, agent, ticket["id"], phone="+420 (601) 234-567")
    assert message["channel"] == "phone"
    assert (message["direction"], message["kind"]) == ("outbound", "public")
    assert message["body_text"] == "Zavolal jsem zákazníkovi, zásilka dorazí zítra."
    assert message["author_agent_id"] == agent.id
    assert message["delivery_status"] == "sent"  # a call needs no delivery
    assert await db.fetchval("SELECT count(*) FROM outbox") == 0

    body = await detail(client, agent, ticket["id"])
    assert body["ticket"]["status"] == "open"
    assert body["ticket"]["first_responded_at"] == message["created_at"]
    # The call, then the SLA event it caused: the first response was met.
    assert [e["action"] for e in body["events"][-2:]] == ["call_logged", "sla_met"]
    event = body["events"][-2]
    assert event["action"] == "call_logged"
    assert event["actor_agent_id"] == agent.id
    assert event["changes"] == {
        "message_id": message["id"],
        "direction": "outbound",
        "phone": "+420601234567",
        "customer_id": ticket["customer_id"],
        "started_at": "2026-11-23T09:00:00+01:00",
        "duration_seconds": 312,
        "public": True,
        "first_response": True,
    }
    # The unknown number joined the ticket's customer and filled its phone.
    assert body["customer"]["phone"] == "+420601234567"
    identity = await db.fetchrow(
        "SELECT customer_id, channel_account FROM customer_identities WHERE channel = 'phone'"
    )
    assert tuple(identity) == (ticket["customer_id"], "")

    later = await log_call(client, agent, ticket["id"], summary="Druhý hovor.")
    again = await detail(client, agent, ticket["id"])
    assert again["ticket"]["first_responded_at"] == message["created_at"] != later["created_at"]
    assert again["events"][-1]["changes"]["first_response"] is False


async def test_a_call_logged_privately_is_a_note_and_no_response(
    client: Client, factory: Factory, db: asyncpg.Connection
) -> None:
    agent = await factory.agent("agent")
    ticket = await factory.ticket(client, agent)
    message = await log_call(client, agent, ticket["id"], public=False)
    assert (message["kind"], message["delivery_status"]) == ("note", None)
    body = await detail(client, agent, ticket["id"])
    assert body["ticket"]["first_responded_at"] is None
    assert body["ticket"]["status"] == "new"
    assert body["ticket"]["version"] == ticket["version"]  # like a note: the ETag stays
    assert await db.fetchval("SELECT count(*) FROM outbox") == 0


async def test_inbound_call_is_the_customer_speaking_and_reopens_a_solved_ticket(
    client: Client, factory: Factory
) -> None:
    agent = await factory.agent("agent")
    ticket = await factory.ticket(client, agent, customer={"email": "petr@example.cz"})
    await log_call(client, agent, ticket["id"])  # our call: the ticket is open
    etag = (await client.get(f"/tickets/{ticket['id']}", headers=agent.headers)).headers["etag"]
    solved = await client.patch(
        f"/tickets/{ticket['id']}",
        json={"status": "solved"},
        headers={**agent.headers, "If-Match": etag},
    )
    assert solved.status_code == 200 and solved.json()["solved_at"] is not None

    message = await log_call(
        client, agent, ticket["id"], direction="inbound", summary="Zásilka stále nedorazila."
    )
    assert (message["direction"], message["kind"]) == ("inbound", "public")
    assert message["author_customer_id"] == ticket["customer_id"]
    assert message["author_agent_id"] is None
    assert message["delivery_status"] is None
    body = await detail(client, agent, ticket["id"])
    assert body["ticket"]["status"] == "open"
    assert body["ticket"]["solved_at"] is None
    assert body["ticket"]["version"] == solved.json()["version"] + 1


async def test_a_call_from_another_known_number_is_that_customer_speaking(
    client: Client, factory: Factory
) -> None:
    agent = await factory.agent("agent")
    colleague = await factory.ticket(
        client, agent, customer={"email": "kolega@example.cz", "phone": "+420 777 000 111"}
    )
    ticket = await factory.ticket(client, agent, customer={"email": "jana@example.cz"})
    message = await log_call(
        client, agent, ticket["id"], direction="inbound", phone="+420777000111"
    )
    assert message["author_customer_id"] == colleague["customer_id"]
    assert (await detail(client, agent, ticket["id"]))["customer"]["phone"] is None


async def test_open_a_ticket_from_a_call(
    client: Client, factory: Factory, db: asyncpg.Connection
) -> None:
    group = await factory.group("Telefon")
    agent = await factory.agent("agent", [group])
    response = await client.post(
        "/tickets/calls",
        json=call(
            direction="inbound",
            subject="Reklamace po telefonu",
            name="Jana Nováková",
            phone="+420.601.234.567",
            group_id=group,
            priority="high",
        ),
        headers=agent.headers,
    )
    assert response.status_code == 201, response.text
    ticket = response.json()
    assert (ticket["channel"], ticket["subject"], ticket["priority"]) == (
        "phone",
        "Reklamace po telefonu",
        "high",
    )
    assert ticket["first_responded_at"] is None and ticket["status"] == "new"
    body = await detail(client, agent, ticket["id"])
    assert body["customer"]["name"] == "Jana Nováková"
    assert body["customer"]["phone"] == "+420601234567"
    [message] = body["messages"]
    assert (message["channel"], message["direction"]) == ("phone", "inbound")
    assert message["author_customer_id"] == ticket["customer_id"]
    assert [e["action"] for e in body["events"]] == ["created", "call_logged"]

    # The same number, typed differently, is the same customer.
    second = await client.post(
        "/tickets/calls",
        json=call(subject="Další hovor", phone="+420601234567"),
        headers=agent.headers,
    )
    assert second.status_code == 201, second.text
    assert second.json()["customer_id"] == ticket["customer_id"]
    assert second.json()["first_responded_at"] is not None  # we called: that is a response
    assert second.json()["status"] == "open"
    assert await db.fetchval("SELECT count(*) FROM customers") == 1
    assert await db.fetchval("SELECT count(*) FROM outbox") == 0


async def test_a_call_from_a_customers_known_phone_links_that_customer(
    client: Client, factory: Factory, db: asyncpg.Connection
) -> None:
    agent = await factory.agent("agent")
    known = await factory.ticket(
        client, agent, customer={"email": "jana@example.cz", "phone": "+420 601 234 567"}
    )
    response = await client.post(
        "/tickets/calls", json=call(subject="Volá Jana"), headers=agent.headers
    )
    assert response.status_code == 201, response.text
    assert response.json()["customer_id"] == known["customer_id"]
    identities = await db.fetch(
        "SELECT channel, external_id FROM customer_identities WHERE customer_id = $1 ORDER BY id",
        known["customer_id"],
    )
    assert [tuple(i) for i in identities] == [
        ("email", "jana@example.cz"),
        ("phone", "+420601234567"),
    ]


async def test_concurrent_first_calls_from_one_number_make_one_customer(
    client: Client, factory: Factory, db: asyncpg.Connection
) -> None:
    agent = await factory.agent("agent")
    responses = await asyncio.gather(
        *(
            client.post("/tickets/calls", json=call(subject=f"Hovor {n}"), headers=agent.headers)
            for n in range(4)
        )
    )
    assert [r.status_code for r in responses] == [201] * 4, [r.text for r in responses]
    assert len({r.json()["customer_id"] for r in responses}) == 1
    assert await db.fetchval("SELECT count(*) FROM customers") == 1


async def test_ticket_api_with_only_a_phone_uses_the_phone_identity(
    client: Client, factory: Factory
) -> None:
    agent = await factory.agent("agent")
    by_api = await factory.ticket(
        client, agent, channel="phone", customer={"phone": "+420 601 234 567", "name": "Jana"}
    )
    from_call = await client.post("/tickets/calls", json=call(subject="s"), headers=agent.headers)
    assert from_call.json()["customer_id"] == by_api["customer_id"]
    bad = await client.post(
        "/tickets",
        json={"subject": "s", "text": "t", "customer": {"phone": "601 234 567"}},
        headers=agent.headers,
    )
    assert bad.status_code == 400
    assert [e["field"] for e in bad.json()["errors"]] == ["customer.phone"]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"phone": "601 234 567"}, "phone"),  # no country code
        ({"phone": "+420 12"}, "phone"),  # too short
        ({"phone": "+420 601 234 567 890 12"}, "phone"),  # more than 15 digits
        ({"phone": "+420 601 abc 567"}, "phone"),
        ({"phone": "+420\n601234567\nBcc: x"}, "phone"),
        ({"started_at": "2026-11-23T09:00:00"}, "started_at"),  # no offset
        ({"started_at": "2100-01-01T00:00:00+00:00"}, "started_at"),  # in the future
        ({"duration_seconds": -1}, "duration_seconds"),
        ({"direction": "sideways"}, "direction"),
        ({"summary": ""}, "summary"),
        ({"recording_url": "http://x"}, "recording_url"),
    ],
)
async def test_invalid_call_names_the_field_and_stores_nothing(
    client: Client,
    factory: Factory,
    db: asyncpg.Connection,
    fields: dict[str, Any],
    field: str,
) -> None:
    agent = await factory.agent("agent")
    ticket = await factory.ticket(client, agent)
    for path, extra in (
        (f"/tickets/{ticket['id']}/calls", {}),
        ("/tickets/calls", {"subject": "Hovor"}),
    ):
        response = await client.post(path, json=call(**extra, **fields), headers=agent.headers)
        assert response.status_code == 400, (path, response.text)
        problem = response.json()
        assert problem["type"] == "urn:helpdesk:problem:invalid-input"
        assert field in [e["field"] for e in problem["errors"]], problem
    assert await db.fetchval("SELECT count(*) FROM messages WHERE channel = 'phone'") == 0
    assert await db.fetchval("SELECT count(*) FROM tickets") == 1
    assert await db.fetchval("SELECT count(*) FROM customer_identities") == 1  # the e-mail


async def test_partner_logs_calls_only_on_tickets_in_scope(
    client: Client, factory: Factory, db: asyncpg.Connection
) -> None:
    mine, theirs = await factory.group("Partner"), await factory.group("Interní")
    admin = await factory.agent("admin")
    partner = await factory.agent("partner", [mine])
    own = await factory.ticket(client, admin, group_id=mine)
    other = await factory.ticket(client, admin, group_id=theirs)
    assert (
        await client.post(f"/tickets/{own['id']}/calls", json=call(), headers=partner.headers)
    ).status_code == 201
    hidden = await client.post(
        f"/tickets/{other['id']}/calls", json=call(), headers=partner.headers
    )
    missing = await client.post("/tickets/999999/calls", json=call(), headers=partner.headers)
    assert hidden.status_code == missing.status_code == 404
    strip = lambda b: {k: v for k, v in b.items() if k not in ("instance", "detail", "request_id")}  # noqa: E731
    assert strip(hidden.json()) == strip(missing.json())
    assert await db.fetchval("SELECT count(*) FROM messages WHERE ticket_id = $1", other["id"]) == 1
    # Opening a ticket from a call: a partner must keep it in one of its groups.
    no_group = await client.post("/tickets/calls", json=call(subject="s"), headers=partner.headers)
    assert no_group.status_code == 400
    foreign = await client.post(
        "/tickets/calls", json=call(subject="s", group_id=theirs), headers=partner.headers
    )
    assert foreign.status_code == 403
    ok = await client.post(
        "/tickets/calls", json=call(subject="s", group_id=mine), headers=partner.headers
    )
    assert ok.status_code == 201, ok.text


async def test_a_closed_ticket_takes_no_calls(
    client: Client, factory: Factory, db: asyncpg.Connection
) -> None:
    agent = await factory.agent("agent")
    ticket = await factory.ticket(client, agent)
    await db.execute("UPDATE tickets SET status = 'closed' WHERE id = $1", ticket["id"])
    response = await client.post(
        f"/tickets/{ticket['id']}/calls", json=call(direction="inbound"), headers=agent.headers
    )
    assert response.status_code == 409
    assert await db.fetchval("SELECT count(*) FROM messages WHERE channel = 'phone'") == 0


async def test_a_retried_call_with_its_idempotency_key_is_logged_once(
    client: Client, factory: Factory, db: asyncpg.Connection
) -> None:
    agent = await factory.agent("agent")
    ticket = await factory.ticket(client, agent)
    headers = {**agent.headers, "Idempotency-Key": "call-1"}
    results = await asyncio.gather(
        *(
            client.post(f"/tickets/{ticket['id']}/calls", json=call(), headers=headers)
            for _ in range(3)
        )
    )
    assert {r.status_code for r in results} == {201}
    assert len({r.json()["id"] for r in results}) == 1
    assert await db.fetchval("SELECT count(*) FROM messages WHERE channel = 'phone'") == 1
    opened = [
        await client.post(
            "/tickets/calls",
            json=call(subject="s"),
            headers={**agent.headers, "Idempotency-Key": "open-1"},
        )
        for _ in range(2)
    ]
    assert opened[0].json() == opened[1].json()
    assert opened[1].headers["idempotent-replayed"] == "true"
