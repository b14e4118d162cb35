"""What every chat channel promises, checked once per provider (docs/reliability.md rows
W1-W3, F5, F6).

Slack, Telegram, Messenger, Instagram and WhatsApp each run these stories against their
fake API on loopback, with the real app, the real worker and the provider's own SDK or
HTTP client; tests/channels/providers.py says how each provider builds, signs and posts
its deliveries and how to read what its fake received. Provider-specific stories stay in
tests/channels/<provider>/.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from helpdesk.config import Settings
from tests.channels.providers import (
    EVERY,
    MESSENGER,
    SLACK,
    TELEGRAM,
    WHATSAPP,
    ChatProvider,
    Outage,
)
from tests.channels.replies import message_view, outbox_row, reply, run_worker
from tests.channels.stored import inbound_messages, nothing_stored
from tests.conftest import AgentHandle, Client, Factory


def ids(provider: ChatProvider) -> str:
    return provider.kind


def providers(*chosen: ChatProvider) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("provider", chosen, ids=ids)


@pytest.fixture
async def fake(provider: ChatProvider) -> AsyncIterator[Any]:
    """The provider's fake API on loopback."""
    server = provider.fake()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def account(db: asyncpg.Connection, provider: ChatProvider, fake: Any) -> str:
    """The provider's account, pointed at the fake, with its webhook secret."""
    await provider.add_account(db, fake.base_url)
    return provider.account


async def customer_ticket(
    client: Client, db: asyncpg.Connection, settings: Settings, provider: ChatProvider
) -> int:
    """The customer's first message, stored by the worker; its ticket id."""
    response = await provider.post(client, provider.text(1, "Kde je zásilka?"))
    assert response.status_code == 200, response.text
    await run_worker(settings)
    ticket_id: int = await db.fetchval("SELECT id FROM tickets WHERE channel = $1", provider.kind)
    return ticket_id


async def a_reply_to_the_customer(
    client: Client,
    db: asyncpg.Connection,
    settings: Settings,
    factory: Factory,
    provider: ChatProvider,
) -> tuple[AgentHandle, int, dict[str, Any]]:
    """The customer's ticket and an agent's reply to it, not yet delivered: (the agent,
    the ticket id, the reply)."""
    ticket_id = await customer_ticket(client, db, settings, provider)
    agent = await factory.agent("agent")
    return agent, ticket_id, await reply(client, agent, ticket_id)


# --- W1-W3: who may deliver -----------------------------------------------------------------


@providers(*EVERY)
async def test_a_forged_or_missing_signature_is_refused_as_problem_json_and_leaves_no_trace(
    client: Client,
    db: asyncpg.Connection,
    provider: ChatProvider,
    account: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    forgeries = provider.forgeries()
    for forgery in forgeries:
        response = await client.post(
            provider.webhook, content=forgery.body, headers=forgery.headers
        )
        assert response.status_code == provider.refused_status, forgery.name
        assert response.headers["content-type"].startswith("application/problem+json"), forgery.name
        assert provider.secret not in response.text
    await nothing_stored(db)
    # The message and every extra field a structured formatter would print.
    logged = caplog.text + "".join(repr(vars(record)) for record in caplog.records)
    assert "helpdesk.access" in logged  # the requests were logged, just not their secrets
    assert provider.secret not in logged
    for forgery in forgeries:
        if len(forgery.credential) >= 8:
            assert forgery.credential not in logged, forgery.name


@providers(SLACK, TELEGRAM, WHATSAPP)
async def test_a_webhook_without_a_secret_to_check_is_never_open(
    client: Client, db: asyncpg.Connection, provider: ChatProvider, fake: Any
) -> None:
    """Slack and Telegram: an account saved without its secret; WhatsApp: no account."""
    await provider.add_account_without_secret(db, fake.base_url)
    for body, headers in provider.without_secret():
        response = await client.post(provider.webhook, content=body, headers=headers)
        assert response.status_code == provider.refused_status
    await nothing_stored(db)


# --- W1-W3: each message once, in its latest words ----------------------------------------


@providers(SLACK, TELEGRAM, WHATSAPP)
async def test_the_same_message_delivered_again_and_concurrently_is_stored_once(
    client: Client,
    db: asyncpg.Connection,
    settings: Settings,
    provider: ChatProvider,
    account: str,
) -> None:
    racing, late, events = provider.repeats()
    first = await asyncio.gather(*(provider.post(client, d.body, d.headers) for d in racing))
    await run_worker(settings)
    after = [await provider.post(client, d.body, d.headers) for d in late]
    if late:
        await run_worker(settings)

    assert [r.status_code for r in [*first, *after]] == [200] * (len(racing) + len(late))
    assert await db.fetchval("SELECT count(*) FROM inbound_events") == events
    (message,) = await inbound_messages(db, provider.kind)
    assert message["external_id"] == provider.external_id(1)
    assert await db.fetchval("SELECT count(*) FROM tickets") == 1


@providers(SLACK, TELEGRAM, MESSENGER)
async def test_an_edit_replaces_the_text_also_when_it_arrives_before_its_message(
    client: Client,
    db: asyncpg.Connection,
    settings: Settings,
    provider: ChatProvider,
    account: str,
) -> None:
    # The edit of message 2 arrives before message 2 itself.
    assert (await provider.post(client, provider.edit(3, 2, "Druhá (opraveno)"))).status_code == 200
    await run_worker(settings)
    assert (await provider.post(client, provider.text(2, "Druhá"))).status_code == 200
    assert (await provider.post(client, provider.text(1, "První"))).status_code == 200
    await run_worker(settings)
    assert (await provider.post(client, provider.edit(4, 1, "První (opraveno)"))).status_code == 200
    await run_worker(settings)

    messages = {m["external_id"]: m for m in await inbound_messages(db, provider.kind)}
    assert set(messages) == {provider.external_id(1), provider.external_id(2)}
    first, second = messages[provider.external_id(1)], messages[provider.external_id(2)]
    assert (first["body_text"], second["body_text"]) == ("První (opraveno)", "Druhá (opraveno)")
    assert first["edited_at"] is not None and second["edited_at"] is not None
    edits = await db.fetchval("SELECT count(*) FROM ticket_events WHERE action = 'message_edited'")
    assert edits == 1  # the early edit was stored as the message itself
    statuses = await db.fetch("SELECT status FROM inbound_events")
    assert {s["status"] for s in statuses} == {"processed"}


@providers(SLACK, TELEGRAM)
async def test_events_that_are_no_customer_message_are_answered_200_and_kept_processed(
    client: Client,
    db: asyncpg.Connection,
    settings: Settings,
    provider: Any,
    account: str,
) -> None:
    ignored = provider.ignored()
    for body, _ in ignored:
        assert (await provider.post(client, body)).status_code == 200
    await run_worker(settings)

    events = await db.fetch("SELECT dedupe_key, status, payload FROM inbound_events ORDER BY id")
    assert [(e["dedupe_key"], e["status"]) for e in events] == [
        (key, "processed") for _, key in ignored
    ]
    # Kept as received (also what is not JSON at all).
    assert [bytes(e["payload"]) for e in events] == [body for body, _ in ignored]
    assert await db.fetchval("SELECT count(*) FROM messages") == 0
    assert await db.fetchval("SELECT count(*) FROM tickets") == 0


# --- F5, F6: replies reach the customer through the provider, or visibly don't ------------


@providers(*EVERY)
async def test_an_agent_reply_reaches_the_provider_and_shows_as_sent(
    client: Client,
    db: asyncpg.Connection,
    settings: Settings,
    factory: Factory,
    provider: ChatProvider,
    fake: Any,
    account: str,
) -> None:
    ticket_id = await customer_ticket(client, db, settings, provider)
    (message,) = await inbound_messages(db, provider.kind)
    assert (message["external_id"], message["body_text"]) == (
        provider.external_id(1),
        "Kde je zásilka?",
    )
    identity = await db.fetchrow("SELECT channel, external_id FROM customer_identities")
    assert tuple(identity) == (provider.kind, provider.customer)
    subject = await db.fetchval("SELECT subject FROM tickets WHERE id = $1", ticket_id)
    assert subject == provider.subject("Kde je zásilka?")

    agent = await factory.agent("agent")
    sent = await reply(client, agent, ticket_id, provider.reply_text)
    await run_worker(settings)

    provider.check_reply(fake)
    view = await message_view(client, agent, ticket_id, sent["id"])
    assert view["delivery_status"] == "sent" and view["delivery_error"] is None
    external = await db.fetchval("SELECT external_id FROM messages WHERE id = $1", sent["id"])
    assert external == provider.reply_external_id
    await provider.after_reply(client, db, settings)


@providers(SLACK, TELEGRAM)
async def test_a_refused_reply_fails_with_the_providers_reason_and_is_not_retried(
    client: Client,
    db: asyncpg.Connection,
    settings: Settings,
    factory: Factory,
    provider: Any,
    fake: Any,
    account: str,
) -> None:
    agent, ticket_id, sent = await a_reply_to_the_customer(client, db, settings, factory, provider)
    provider.refuse(fake)
    await run_worker(settings)

    view = await message_view(client, agent, ticket_id, sent["id"])
    assert view["delivery_status"] == "failed"
    provider.check_refusal(view["delivery_error"])
    assert (await outbox_row(db, sent["id"]))["status"] == "failed"
    # Not the customer's doing: they stay reachable.
    assert await db.fetchval("SELECT unreachable_reason FROM customer_identities") is None
    await run_worker(settings)  # failed is final: no second try
    assert len(provider.sends(fake)) == 1


@providers(TELEGRAM, MESSENGER)
async def test_a_customer_who_cannot_be_reached_fails_the_reply_and_is_marked_unreachable(
    client: Client,
    db: asyncpg.Connection,
    settings: Settings,
    factory: Factory,
    provider: Any,
    fake: Any,
    account: str,
) -> None:
    agent, ticket_id, sent = await a_reply_to_the_customer(client, db, settings, factory, provider)
    provider.block(fake)
    await run_worker(settings)

    view = await message_view(client, agent, ticket_id, sent["id"])
    assert view["delivery_status"] == "failed"
    assert (await outbox_row(db, sent["id"]))["status"] == "failed"
    reason = await db.fetchval("SELECT unreachable_reason FROM customer_identities")
    assert reason is not None
    provider.check_blocked(view["delivery_error"], reason)
    events = await db.fetch(
        "SELECT changes FROM ticket_events WHERE ticket_id = $1 AND action = $2",
        ticket_id,
        "customer_unreachable",
    )
    assert len(events) == 1 and events[0]["changes"]["channel"] == provider.kind
    await run_worker(settings)  # failed is final: no second try
    assert len(provider.sends(fake)) == 1


@providers(SLACK, TELEGRAM)
async def test_a_rate_limited_reply_is_retried_no_sooner_than_the_provider_says(
    client: Client,
    db: asyncpg.Connection,
    settings: Settings,
    factory: Factory,
    provider: Any,
    fake: Any,
    account: str,
) -> None:
    agent, ticket_id, sent = await a_reply_to_the_customer(client, db, settings, factory, provider)
    wait = provider.rate_limit(fake)
    await run_worker(settings)

    row = await outbox_row(db, sent["id"])
    assert row["status"] == "retrying"
    assert row["next_attempt_at"] - row["updated_at"] == timedelta(seconds=wait)
    view = await message_view(client, agent, ticket_id, sent["id"])
    assert view["delivery_status"] == "retrying"
    provider.check_rate_limited(row["last_error"], view["delivery_error"])

    await run_worker(settings)  # the relay runs, but the delivery is not due yet
    assert len(provider.sends(fake)) == 1

    await db.execute("UPDATE outbox SET next_attempt_at = now() WHERE id = $1", row["id"])
    await run_worker(settings)  # `wait` seconds later (time moved in the database)
    assert len(provider.sends(fake)) == 2
    assert (await outbox_row(db, sent["id"]))["status"] == "sent"


@pytest.mark.parametrize(
    ("provider", "outage"),
    [(p, outage) for p in (SLACK, TELEGRAM) for outage in p.outages],
    ids=lambda value: value.kind if isinstance(value, ChatProvider) else str(value.status),
)
async def test_a_provider_outage_is_retried_with_backoff(
    client: Client,
    db: asyncpg.Connection,
    settings: Settings,
    factory: Factory,
    provider: Any,
    outage: Outage,
    fake: Any,
    account: str,
) -> None:
    _, _, sent = await a_reply_to_the_customer(client, db, settings, factory, provider)
    provider.fail_send(fake, outage)
    await run_worker(settings)

    row = await outbox_row(db, sent["id"])
    assert (row["status"], row["last_error"]) == ("retrying", outage.reason)
    assert row["next_attempt_at"] - row["updated_at"] == timedelta(seconds=10)
    assert provider.token not in row["last_error"]


@providers(SLACK, TELEGRAM)
async def test_a_file_failing_after_the_text_went_out_fails_without_a_resend(
    client: Client,
    db: asyncpg.Connection,
    settings: Settings,
    factory: Factory,
    provider: Any,
    fake: Any,
    account: str,
) -> None:
    ticket_id = await customer_ticket(client, db, settings, provider)
    agent = await factory.agent("agent")
    body = provider.partial_reply(fake)
    response = await client.post(f"/tickets/{ticket_id}/replies", json=body, headers=agent.headers)
    assert response.status_code == 201, response.text
    await run_worker(settings)

    assert len(provider.sends(fake)) == 1
    row = await outbox_row(db, response.json()["id"])
    assert row["status"] == "failed"
    provider.check_partly_sent(row["last_error"])
    await run_worker(settings)
    assert len(provider.sends(fake)) == 1
