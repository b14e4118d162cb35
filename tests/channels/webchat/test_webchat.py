"""Web chat end to end: a widget talks to the real app (uvicorn on loopback) backed by
real PostgreSQL and Redis; agents answer through the API and the real arq worker."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import msgspec

from helpdesk.channels.accounts import ChannelAccountCreate, create_account
from helpdesk.config import Settings
from tests.channels.replies import run_worker
from tests.channels.webchat.conftest import ACCOUNT, ORIGIN, Visitor, start
from tests.conftest import AgentHandle, Client, Factory

MESSAGES = f"/webchat/{ACCOUNT}/messages"
EVENTS = f"/webchat/{ACCOUNT}/events"
CONVERSATIONS = f"/webchat/{ACCOUNT}/conversations"
STREAM_WAIT = 20.0  # bound on waiting for an SSE event (the stream polls every 0.5 s)


def new_id() -> str:
    return str(uuid.uuid4())


async def ticket_of(db: asyncpg.Connection, visitor: Visitor) -> asyncpg.Record:
    row = await db.fetchrow(
        """SELECT t.* FROM tickets t JOIN conversations c ON c.id = t.conversation_id
           WHERE c.channel = 'webchat' AND c.channel_account = $1 AND c.external_id = $2""",
        ACCOUNT,
        visitor.conversation_id,
    )
    assert row is not None
    return row


async def agent_post(
    client: Client, agent: AgentHandle, ticket_id: int, kind: str, text: str
) -> dict[str, Any]:
    response = await client.post(
        f"/tickets/{ticket_id}/{kind}", json={"text": text}, headers=agent.headers
    )
    assert response.status_code == 201, response.text
    message: dict[str, Any] = response.json()
    return message


async def sse_events(response: httpx.Response) -> AsyncIterator[dict[str, str]]:
    """The stream's events as field dicts (comment lines under '')."""
    event: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line == "":
            if event:
                yield event
            event = {}
            continue
        name, _, value = line.partition(":")
        event[name] = event.get(name, "") + value.removeprefix(" ")


async def next_message(events: AsyncIterator[dict[str, str]]) -> dict[str, str]:
    async with asyncio.timeout(STREAM_WAIT):
        async for event in events:
            if event.get("event") == "message":
                return event
    raise AssertionError("the stream ended without a message")


def problem_field(response: httpx.Response) -> str:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    fields = [e["field"] for e in response.json()["errors"]]
    assert len(fields) == 1, fields
    return str(fields[0])


async def test_visitor_message_opens_a_webchat_ticket_for_a_new_customer(
    client: Client, db: asyncpg.Connection, chat: str
) -> None:
    response = await client.post(
        CONVERSATIONS,
        json={"name": "Jana Nováková", "email": "jana@example.test"},
        headers={"Origin": ORIGIN},
    )
    assert response.status_code == 201, response.text
    started = response.json()
    assert started["welcome_text"] == "Hi! How can we help?"
    visitor = Visitor(client, started["visitor_token"], started["conversation_id"])

    sent = await visitor.say("Where is my order 1234?", new_id())

    assert sent.status_code == 200, sent.text
    assert sent.json()["duplicate"] is False
    ticket = await ticket_of(db, visitor)
    assert ticket["channel"] == "webchat"
    assert ticket["channel_account"] == ACCOUNT
    assert ticket["subject"] == "Where is my order 1234?"
    customer = await db.fetchrow("SELECT * FROM customers WHERE id = $1", ticket["customer_id"])
    assert customer["name"] == "Jana Nováková"
    assert customer["email"] is None  # typed, not verified: never stored as theirs
    identity = await db.fetchrow(
        "SELECT * FROM customer_identities WHERE customer_id = $1", ticket["customer_id"]
    )
    assert (identity["channel"], identity["channel_account"], identity["external_id"]) == (
        "webchat",
        ACCOUNT,
        visitor.conversation_id,
    )
    claimed = await db.fetchval(
        "SELECT changes FROM ticket_events WHERE ticket_id = $1 AND action = 'webchat_visitor'",
        ticket["id"],
    )
    assert claimed == {"email_unverified": "jana@example.test"}  # shown to agents as such
    assert [(m["author"], m["text"]) for m in await visitor.read()] == [
        ("visitor", "Where is my order 1234?")
    ]


async def test_same_client_message_id_three_times_concurrently_is_stored_once(
    client: Client, db: asyncpg.Connection, chat: str
) -> None:
    visitor = await start(client)
    client_id = new_id()

    responses = await asyncio.gather(*(visitor.say("Hello?", client_id) for _ in range(3)))

    assert [r.status_code for r in responses] == [200, 200, 200]
    assert len({r.json()["id"] for r in responses}) == 1
    assert sorted(r.json()["duplicate"] for r in responses) == [False, True, True]
    assert await db.fetchval("SELECT count(*) FROM messages") == 1
    assert await db.fetchval("SELECT count(*) FROM tickets") == 1


async def test_agent_reply_reaches_the_visitor_live_over_sse_and_on_reconnect(
    client: Client, db: asyncpg.Connection, factory: Factory, settings: Settings, chat: str
) -> None:
    agent = await factory.agent("agent")
    visitor = await start(client, name="Petr")
    first = (await visitor.say("Is the blue one in stock?", new_id())).json()["id"]
    ticket = await ticket_of(db, visitor)

    async with client.stream(
        "GET", EVENTS, params={"after": first}, headers=visitor.headers
    ) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        assert stream.headers["access-control-allow-origin"] == ORIGIN
        events = sse_events(stream)
        async with asyncio.timeout(STREAM_WAIT):
            opening = await anext(events)
        assert opening["retry"] == "2000"  # the reconnect hint comes first

        reply = await agent_post(client, agent, ticket["id"], "replies", "Yes, 3 left.")
        await run_worker(settings)

        live = await next_message(events)
    assert live["id"] == str(reply["id"])
    assert msgspec.json.decode(live["data"])["text"] == "Yes, 3 left."
    assert msgspec.json.decode(live["data"])["author"] == "agent"
    delivered = await db.fetchrow("SELECT * FROM messages WHERE id = $1", reply["id"])
    assert delivered["delivery_status"] == "sent"
    assert delivered["external_id"] == f"webchat:{reply['id']}"
    assert [(m["author"], m["text"]) for m in await visitor.read()] == [
        ("visitor", "Is the blue one in stock?"),
        ("agent", "Yes, 3 left."),
    ]
    assert [m["id"] for m in await visitor.read(after=first)] == [reply["id"]]

    # A reconnect with Last-Event-ID resumes after what the browser saw.
    later = (await visitor.say("Great, thanks", new_id())).json()["id"]
    async with client.stream(
        "GET", EVENTS, headers=visitor.headers | {"Last-Event-ID": str(reply["id"])}
    ) as stream:
        resumed = await next_message(sse_events(stream))
    assert resumed["id"] == str(later)


async def test_internal_notes_never_reach_the_visitor(
    client: Client, db: asyncpg.Connection, factory: Factory, settings: Settings, chat: str
) -> None:
    agent = await factory.agent("agent")
    visitor = await start(client)
    await visitor.say("My parcel is damaged", new_id())
    ticket = await ticket_of(db, visitor)
    note = await agent_post(client, agent, ticket["id"], "notes", "Customer is a known troll")
    reply = await agent_post(client, agent, ticket["id"], "replies", "Sorry! Sending a new one.")
    await run_worker(settings)

    seen = await visitor.read()
    assert [m["text"] for m in seen] == ["My parcel is damaged", "Sorry! Sending a new one."]
    async with client.stream("GET", EVENTS, headers=visitor.headers) as stream:
        events = sse_events(stream)
        streamed = [await next_message(events), await next_message(events)]
    assert [int(e["id"]) for e in streamed] == [seen[0]["id"], reply["id"]]
    assert all("troll" not in e["data"] for e in streamed)
    assert note["id"] not in {m["id"] for m in seen}


async def test_a_visitor_sees_only_their_own_conversation(
    client: Client, db: asyncpg.Connection, chat: str
) -> None:
    alice = await start(client, name="Alice")
    await alice.say("My address is 5 Elm Street", new_id())
    bob = await start(client, name="Bob")

    assert await bob.read() == []
    async with client.stream("GET", EVENTS, headers=bob.headers) as stream:
        async with asyncio.timeout(STREAM_WAIT):
            opening = await anext(sse_events(stream))
        assert "data" not in opening

    # Alice's token is worth nothing on another web chat account.
    await create_account(
        db,
        ChannelAccountCreate(
            kind="webchat", name="other-shop", settings={"allowed_origins": [ORIGIN]}
        ),
    )
    await start_on(client, "other-shop")  # the account has a signing key of its own now
    response = await client.get("/webchat/other-shop/messages", headers=alice.headers)
    assert response.status_code == 401


async def start_on(client: Client, account: str) -> None:
    response = await client.post(f"/webchat/{account}/conversations", json={})
    assert response.status_code == 201, response.text


async def test_forged_garbled_or_missing_tokens_are_refused_and_nothing_is_stored(
    client: Client, db: asyncpg.Connection, chat: str
) -> None:
    real = await start(client)
    visitor_id, _, mac = real.token.partition(".")
    forged_visitor = "0" * 32 + "." + mac  # someone else's id under this signature
    forged_mac = visitor_id + "." + "0" * 64
    body = {"text": "hi", "client_message_id": new_id()}
    for headers in (
        {"Authorization": f"Bearer {forged_visitor}"},
        {"Authorization": f"Bearer {forged_mac}"},
        {"Authorization": "Bearer garbage"},
        {"Authorization": f"Basic {real.token}"},
        {},
    ):
        posted = await client.post(MESSAGES, json=body, headers=headers)
        assert posted.status_code == 401, (headers, posted.text)
        assert posted.headers["content-type"].startswith("application/problem+json")
        read = await client.get(MESSAGES, headers=headers)
        assert read.status_code == 401
        streamed = await client.get(EVENTS, headers=headers)
        assert streamed.status_code == 401
    assert (await client.get(EVENTS, params={"token": "x.y"})).status_code == 401
    assert await db.fetchval("SELECT count(*) FROM messages") == 0
    assert await db.fetchval("SELECT count(*) FROM tickets") == 0


async def test_unknown_inactive_or_non_webchat_accounts_are_404(
    client: Client, db: asyncpg.Connection, chat: str
) -> None:
    await create_account(db, ChannelAccountCreate(kind="webchat", name="closed", active=False))
    await create_account(db, ChannelAccountCreate(kind="telegram", name="bot"))
    for account in ("nope", "closed", "bot"):
        response = await client.post(f"/webchat/{account}/conversations", json={})
        assert response.status_code == 404, account
        assert (await client.get(f"/webchat/{account}/messages")).status_code == 404
    assert await db.fetchval("SELECT count(*) FROM customers") == 0


async def test_cors_allows_listed_origins_and_refuses_others(
    client: Client, db: asyncpg.Connection, chat: str
) -> None:
    allowed = await client.post(CONVERSATIONS, json={}, headers={"Origin": ORIGIN})
    assert allowed.status_code == 201
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    assert "Origin" in allowed.headers["vary"]

    denied = await client.post(CONVERSATIONS, json={}, headers={"Origin": "https://evil.test"})
    assert denied.status_code == 403
    assert denied.headers["content-type"].startswith("application/problem+json")
    assert "access-control-allow-origin" not in denied.headers

    # An allowed widget can read the errors it gets, too.
    unauthenticated = await client.get(MESSAGES, headers={"Origin": ORIGIN})
    assert unauthenticated.status_code == 401
    assert unauthenticated.headers["access-control-allow-origin"] == ORIGIN
    invalid = await client.post(CONVERSATIONS, json={"nick": "x"}, headers={"Origin": ORIGIN})
    assert problem_field(invalid) == "nick"
    assert invalid.headers["access-control-allow-origin"] == ORIGIN

    preflight_headers = {
        "Origin": ORIGIN,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    for path in (CONVERSATIONS, MESSAGES, EVENTS):
        preflight = await client.options(path, headers=preflight_headers)
        assert preflight.status_code == 204, preflight.text
        assert preflight.headers["access-control-allow-origin"] == ORIGIN
        assert "POST" in preflight.headers["access-control-allow-methods"]
        allowed_headers = preflight.headers["access-control-allow-headers"].lower()
        assert "authorization" in allowed_headers and "content-type" in allowed_headers
    refused = await client.options(
        MESSAGES, headers=preflight_headers | {"Origin": "https://evil.test"}
    )
    assert refused.status_code == 403
    assert "access-control-allow-origin" not in refused.headers
    assert await db.fetchval("SELECT count(*) FROM customers") == 1


async def test_rate_limits_answer_429_with_retry_after(
    client: Client, db: asyncpg.Connection, chat: str
) -> None:
    visitor = await start(client)
    for n in range(20):
        assert (await visitor.say(f"message {n}", new_id())).status_code == 200
    limited = await visitor.say("one too many", new_id())
    assert limited.status_code == 429
    assert limited.headers["content-type"].startswith("application/problem+json")
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert limited.headers["access-control-allow-origin"] == ORIGIN
    assert await db.fetchval("SELECT count(*) FROM messages") == 20

    for _ in range(9):  # 10 new conversations per address and minute, one used above
        await start(client)
    too_many = await client.post(CONVERSATIONS, json={}, headers={"Origin": ORIGIN})
    assert too_many.status_code == 429
    assert int(too_many.headers["retry-after"]) >= 1
    assert await db.fetchval("SELECT count(*) FROM customers") == 10


async def test_message_flood_from_one_address_is_limited_before_tokens_are_checked(
    client: Client, chat: str
) -> None:
    body = {"text": "spam", "client_message_id": new_id()}
    headers = {"Authorization": "Bearer nonsense"}
    responses = await asyncio.gather(
        *(client.post(MESSAGES, json=body, headers=headers) for _ in range(121))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [401] * 120 + [429]  # the counter is atomic: exactly one over


async def test_event_stream_openings_are_limited_per_address(client: Client, chat: str) -> None:
    responses = await asyncio.gather(
        *(client.get(EVENTS, params={"token": "nonsense"}) for _ in range(31))
    )
    assert sorted(r.status_code for r in responses) == [401] * 30 + [429]


async def test_bad_input_is_a_400_naming_the_field(
    client: Client, db: asyncpg.Connection, chat: str
) -> None:
    visitor = await start(client)
    good = new_id()
    cases: list[tuple[str, dict[str, Any], str]] = [
        (MESSAGES, {"text": "", "client_message_id": good}, "text"),
        (MESSAGES, {"text": "   \n", "client_message_id": good}, "text"),
        (MESSAGES, {"text": "x" * 5001, "client_message_id": good}, "text"),
        (MESSAGES, {"text": "hi", "client_message_id": "not-a-uuid"}, "client_message_id"),
        (MESSAGES, {"text": "hi"}, "client_message_id"),
        (MESSAGES, {"text": "hi", "client_message_id": good, "html": "<b>"}, "html"),
        (CONVERSATIONS, {"name": "Eve\r\nBcc: all"}, "name"),
        (CONVERSATIONS, {"email": "eve@example.test\nBcc: x@y.z"}, "email"),
        (CONVERSATIONS, {"email": "not an email"}, "email"),
        (CONVERSATIONS, {"name": ""}, "name"),
    ]
    for path, body, field in cases:
        response = await client.post(path, json=body, headers=visitor.headers)
        assert problem_field(response) == field, (body, response.text)
    for path in (MESSAGES, EVENTS):
        unknown = await client.get(path, params={"since": "1"}, headers=visitor.headers)
        assert problem_field(unknown) == "since"
    assert (await visitor.say("x" * 5000, good)).status_code == 200  # the limit itself is fine
    assert await db.fetchval("SELECT count(*) FROM messages") == 1


async def test_an_unverified_email_never_links_to_the_existing_customer(
    client: Client, db: asyncpg.Connection, factory: Factory, chat: str
) -> None:
    agent = await factory.agent("agent")
    existing = await factory.ticket(
        client, agent, customer={"email": "vip@example.test", "name": "Real VIP"}
    )
    impostor = await start(client, name="Real VIP", email="vip@example.test")
    await impostor.say("Please read me my last order", new_id())

    ticket = await ticket_of(db, impostor)
    assert ticket["customer_id"] != existing["customer_id"]
    assert (
        await db.fetchval("SELECT count(*) FROM customers WHERE lower(email) = 'vip@example.test'")
        == 1
    )
    seen = await impostor.read()
    assert [m["text"] for m in seen] == ["Please read me my last order"]


async def test_the_generic_webhook_route_refuses_web_chat(
    client: Client, db: asyncpg.Connection, chat: str
) -> None:
    response = await client.post(f"/channels/webchat/{ACCOUNT}/webhook", content=b"{}")
    assert response.status_code == 404
    assert await db.fetchval("SELECT count(*) FROM inbound_events") == 0
