"""A reply that never reached the customer is no response, at once; an agent can send it again.

Design 1.4: a public agent reply counts at the instant it is accepted; if its delivery
fails for good it is withdrawn and the clock it met is open again from its original
start. Real PostgreSQL, a real SMTP server on loopback, the real worker and HTTP API.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import asyncpg
from arq.connections import ArqRedis, create_pool
from msgspec import structs

from helpdesk.app import redis_settings
from helpdesk.channels import outbox
from helpdesk.channels.email.accounts import get_account
from helpdesk.channels.email.receive import receive
from helpdesk.config import Settings
from tests.channels.email.builders import CUSTOMER, add_account, customer_mail, dsn, receive_mail
from tests.channels.email.smtp_server import SmtpTestServer, only
from tests.channels.replies import run_worker
from tests.conftest import AgentHandle, Client, Factory


async def first_response_clock(db: asyncpg.Connection, ticket_id: int) -> asyncpg.Record:
    row = await db.fetchrow(
        """SELECT * FROM ticket_sla_clocks
           WHERE ticket_id = $1 AND clock = 'first_response' AND cycle = 0""",
        ticket_id,
    )
    assert row is not None
    return row


async def events(db: asyncpg.Connection, ticket_id: int, action: str) -> list[asyncpg.Record]:
    return list(
        await db.fetch(
            "SELECT * FROM ticket_events WHERE ticket_id = $1 AND action = $2 ORDER BY id",
            ticket_id,
            action,
        )
    )


async def reply(client: Client, agent: AgentHandle, ticket_id: int) -> int:
    response = await client.post(
        f"/tickets/{ticket_id}/replies", json={"text": "Posleme novy."}, headers=agent.headers
    )
    assert response.status_code == 201, response.text
    message_id: int = response.json()["id"]
    return message_id


async def failed_reply(
    client: Client,
    db: asyncpg.Connection,
    factory: Factory,
    settings: Settings,
    smtp: SmtpTestServer,
) -> tuple[int, int, AgentHandle]:
    """A customer's mail, an agent's reply the server refuses for good: (ticket, message, agent)."""
    await add_account(db, smtp)
    ticket_id, _ = await receive_mail(db, customer_mail())
    agent = await factory.agent("agent")
    smtp.answer("RCPT", "550 5.1.1 mailbox unavailable")
    message_id = await reply(client, agent, ticket_id)
    assert (await first_response_clock(db, ticket_id))["met_at"] is not None
    await run_worker(settings)
    status = await db.fetchval("SELECT delivery_status FROM messages WHERE id = $1", message_id)
    assert status == "failed"
    return ticket_id, message_id, agent


async def test_a_reply_that_fails_for_good_is_withdrawn_in_the_same_transaction(
    client: Client,
    db: asyncpg.Connection,
    factory: Factory,
    settings: Settings,
    smtp: SmtpTestServer,
) -> None:
    ticket_id, message_id, _ = await failed_reply(client, db, factory, settings, smtp)

    # No sweep has run: the failure itself reopened the clock and cleared the response.
    ticket = await db.fetchrow("SELECT * FROM tickets WHERE id = $1", ticket_id)
    assert ticket["first_responded_at"] is None
    clock = await first_response_clock(db, ticket_id)
    assert clock["met_at"] is None and not clock["breached"]
    assert clock["due_at"] == ticket["created_at"] + timedelta(minutes=60)
    assert ticket["next_sla_due_at"] == clock["due_at"]
    types = await db.fetch(
        "SELECT type FROM sla_events WHERE message_id = $1 ORDER BY id", message_id
    )
    assert [r["type"] for r in types] == ["agent_reply_withdrawn"]
    [withdrawn] = await events(db, ticket_id, "reply_withdrawn")
    changes = withdrawn["changes"]
    assert changes["message_id"] == message_id
    assert changes["reason"].startswith("SMTP 550 5.1.1 mailbox unavailable")
    assert changes["first_responded_at"]["to"] is None
    assert changes["first_responded_at"]["from"] is not None


async def test_an_earlier_reply_that_was_delivered_stays_the_first_response(
    client: Client,
    db: asyncpg.Connection,
    factory: Factory,
    settings: Settings,
    smtp: SmtpTestServer,
) -> None:
    await add_account(db, smtp)
    ticket_id, _ = await receive_mail(db, customer_mail())
    agent = await factory.agent("agent")
    await reply(client, agent, ticket_id)
    await run_worker(settings)
    first = await db.fetchval("SELECT first_responded_at FROM tickets WHERE id = $1", ticket_id)
    met = (await first_response_clock(db, ticket_id))["met_at"]
    assert first is not None and met is not None

    smtp.answer("RCPT", "550 5.1.1 mailbox unavailable")
    second = await reply(client, agent, ticket_id)
    await run_worker(settings)

    assert await db.fetchval("SELECT delivery_status FROM messages WHERE id = $1", second) == (
        "failed"
    )
    assert (
        await db.fetchval("SELECT first_responded_at FROM tickets WHERE id = $1", ticket_id)
        == first
    )
    assert (await first_response_clock(db, ticket_id))["met_at"] == met
    [withdrawn] = await events(db, ticket_id, "reply_withdrawn")
    assert withdrawn["changes"]["first_responded_at"]["to"] == first.isoformat()


async def test_a_bounce_of_a_reply_withdraws_it_at_once(
    client: Client,
    db: asyncpg.Connection,
    factory: Factory,
    settings: Settings,
    smtp: SmtpTestServer,
) -> None:
    await add_account(db, smtp)
    ticket_id, _ = await receive_mail(db, customer_mail())
    agent = await factory.agent("agent")
    message_id = await reply(client, agent, ticket_id)
    await run_worker(settings)
    external = await db.fetchval("SELECT external_id FROM messages WHERE id = $1", message_id)
    assert (await first_response_clock(db, ticket_id))["met_at"] is not None

    account = await get_account(db, "support")
    assert account is not None
    async with db.transaction():
        receipt = await receive(db, settings, account, dsn(external), source="cli")
    assert receipt.outcome == "bounce"

    assert await db.fetchval("SELECT delivery_status FROM messages WHERE id = $1", message_id) == (
        "failed"
    )
    assert await db.fetchval("SELECT first_responded_at FROM tickets WHERE id = $1", ticket_id) is (
        None
    )
    assert (await first_response_clock(db, ticket_id))["met_at"] is None
    assert len(await events(db, ticket_id, "reply_withdrawn")) == 1


async def test_an_agent_retries_a_failed_reply_and_it_counts_from_the_retry(
    client: Client,
    db: asyncpg.Connection,
    factory: Factory,
    settings: Settings,
    smtp: SmtpTestServer,
) -> None:
    ticket_id, message_id, agent = await failed_reply(client, db, factory, settings, smtp)
    before_retry = await db.fetchval("SELECT clock_timestamp()")
    smtp.answer("RCPT", None)  # the mailbox works again

    response = await client.post(
        f"/tickets/{ticket_id}/messages/{message_id}/retry", headers=agent.headers
    )

    assert response.status_code == 200, response.text
    assert response.json()["delivery_status"] == "pending"
    assert response.json()["delivery_error"] is None
    first = await db.fetchval("SELECT first_responded_at FROM tickets WHERE id = $1", ticket_id)
    assert first is not None and first >= before_retry  # accepted again now, not back then
    met: datetime = (await first_response_clock(db, ticket_id))["met_at"]
    assert met == first
    [retried] = await events(db, ticket_id, "reply_retried")
    assert retried["actor_agent_id"] == agent.id
    assert retried["changes"]["previous_error"].startswith("SMTP 550")

    await run_worker(settings)

    assert await db.fetchval("SELECT delivery_status FROM messages WHERE id = $1", message_id) == (
        "sent"
    )
    assert only(smtp.received).rcpt_tos == [CUSTOMER]
    assert (await first_response_clock(db, ticket_id))["met_at"] == met
    # Retried once more (409 now: it did not fail).
    again = await client.post(
        f"/tickets/{ticket_id}/messages/{message_id}/retry", headers=agent.headers
    )
    assert again.status_code == 409
    assert again.headers["content-type"].startswith("application/problem+json")


async def test_a_retried_reply_that_fails_again_is_withdrawn_again(
    client: Client,
    db: asyncpg.Connection,
    factory: Factory,
    settings: Settings,
    smtp: SmtpTestServer,
) -> None:
    ticket_id, message_id, agent = await failed_reply(client, db, factory, settings, smtp)
    response = await client.post(
        f"/tickets/{ticket_id}/messages/{message_id}/retry", headers=agent.headers
    )
    assert response.status_code == 200, response.text

    await run_worker(settings)  # the server still refuses

    assert await db.fetchval("SELECT first_responded_at FROM tickets WHERE id = $1", ticket_id) is (
        None
    )
    assert (await first_response_clock(db, ticket_id))["met_at"] is None
    assert len(await events(db, ticket_id, "reply_withdrawn")) == 2
    assert smtp.received == []


async def delivery_jobs_run(redis: ArqRedis, outbox_id: int) -> list[str]:
    """Job ids of the delivery's attempts that ran (arq keeps each result for an hour)."""
    keys = await redis.keys(f"arq:result:outbox:{outbox_id}:*")
    return sorted(key.decode().removeprefix("arq:result:") for key in keys)


async def test_a_retried_reply_gets_a_fresh_set_of_attempts_with_new_job_ids(
    client: Client,
    db: asyncpg.Connection,
    factory: Factory,
    settings: Settings,
    smtp: SmtpTestServer,
) -> None:
    """Greylisted until the delivery gave up; the agent retries; one more greylisting 4xx
    is retried with backoff (not failed at once), then the mail goes out."""
    worker_settings = structs.replace(
        settings, worker=structs.replace(settings.worker, outbox_max_attempts=2)
    )
    arq_redis = await create_pool(redis_settings(settings.redis_url))
    try:
        await greylisted_until_given_up_then_retried(
            client, db, factory, worker_settings, smtp, arq_redis
        )
    finally:
        await arq_redis.aclose()


async def greylisted_until_given_up_then_retried(
    client: Client,
    db: asyncpg.Connection,
    factory: Factory,
    worker_settings: Settings,
    smtp: SmtpTestServer,
    arq_redis: ArqRedis,
) -> None:
    await add_account(db, smtp)
    ticket_id, _ = await receive_mail(db, customer_mail())
    agent = await factory.agent("agent")
    smtp.answer("RCPT", "451 4.7.1 greylisted, come back later")
    message_id = await reply(client, agent, ticket_id)
    outbox_id = await db.fetchval("SELECT id FROM outbox WHERE message_id = $1", message_id)

    async def attempt(status: str) -> None:
        await db.execute("UPDATE outbox SET next_attempt_at = now() WHERE id = $1", outbox_id)
        await run_worker(worker_settings)
        row = await db.fetchrow("SELECT * FROM outbox WHERE id = $1", outbox_id)
        assert row["status"] == status, row["last_error"]

    await attempt("retrying")
    await attempt("failed")
    greylisted = f"SMTP 451 4.7.1 greylisted, come back later (at RCPT TO:<{CUSTOMER}>)"
    assert await db.fetchval("SELECT last_error FROM outbox WHERE id = $1", outbox_id) == (
        f"gave up after 2 attempts: {greylisted}"
    )

    response = await client.post(
        f"/tickets/{ticket_id}/messages/{message_id}/retry", headers=agent.headers
    )
    assert response.status_code == 200, response.text
    # The retry's own job, under an id no earlier attempt used.
    assert await arq_redis.exists(f"arq:job:{outbox.job_id(outbox_id, 2)}")

    await run_worker(worker_settings)  # greylisted once more: retried later, not failed
    row = await db.fetchrow("SELECT * FROM outbox WHERE id = $1", outbox_id)
    assert (row["status"], row["attempts"], row["attempts_base"]) == ("retrying", 3, 2)
    assert row["last_error"] == greylisted
    assert await db.fetchval("SELECT next_attempt_at > now() FROM outbox WHERE id = $1", outbox_id)
    assert (
        await db.fetchval("SELECT delivery_status FROM messages WHERE id = $1", message_id)
        == "retrying"
    )
    assert len(await events(db, ticket_id, "reply_withdrawn")) == 1  # not withdrawn again

    smtp.answer("RCPT", None)  # the greylisting period is over
    await attempt("sent")

    assert only(smtp.received).rcpt_tos == [CUSTOMER]
    assert await db.fetchval("SELECT delivery_status FROM messages WHERE id = $1", message_id) == (
        "sent"
    )
    # Every attempt ran as a job of its own: no id was reused (arq would have refused it).
    assert await delivery_jobs_run(arq_redis, outbox_id) == [
        outbox.job_id(outbox_id, attempts) for attempts in range(4)
    ]


async def test_only_a_failed_reply_on_a_visible_ticket_can_be_retried(
    client: Client,
    db: asyncpg.Connection,
    factory: Factory,
    settings: Settings,
    smtp: SmtpTestServer,
) -> None:
    ticket_id, message_id, _ = await failed_reply(client, db, factory, settings, smtp)
    group = await factory.group()
    partner = await factory.agent("partner", group_ids=[group])
    outsider = await client.post(
        f"/tickets/{ticket_id}/messages/{message_id}/retry", headers=partner.headers
    )
    assert outsider.status_code == 404
    agent = await factory.agent("agent")
    inbound = await db.fetchval(
        "SELECT id FROM messages WHERE ticket_id = $1 AND direction = 'inbound'", ticket_id
    )
    not_ours = await client.post(
        f"/tickets/{ticket_id}/messages/{inbound}/retry", headers=agent.headers
    )
    assert not_ours.status_code == 404
    other_ticket, _ = await receive_mail(db, customer_mail(message_id="<m9@customer.example>"))
    elsewhere = await client.post(
        f"/tickets/{other_ticket}/messages/{message_id}/retry", headers=agent.headers
    )
    assert elsewhere.status_code == 404
    assert await db.fetchval("SELECT status FROM outbox WHERE message_id = $1", message_id) == (
        "failed"
    )


async def test_a_reply_given_up_after_a_dead_worker_is_withdrawn_by_the_relay(
    client: Client, db: asyncpg.Connection, factory: Factory, settings: Settings
) -> None:
    ticket_id, _ = await receive_mail(db, customer_mail())
    agent = await factory.agent("agent")
    message_id = await reply(client, agent, ticket_id)
    # Its last attempt's worker died before handing the mail over, and its lease ran out.
    await db.execute(
        """UPDATE outbox SET status = 'sending', attempts = $2,
               locked_until = now() - interval '1 minute', handed_off_at = NULL
           WHERE message_id = $1""",
        message_id,
        settings.worker.outbox_max_attempts,
    )

    await outbox.expire_abandoned_leases(db, settings.worker.outbox_max_attempts, settings.sla)

    assert await db.fetchval("SELECT delivery_status FROM messages WHERE id = $1", message_id) == (
        "failed"
    )
    assert await db.fetchval("SELECT first_responded_at FROM tickets WHERE id = $1", ticket_id) is (
        None
    )
    assert (await first_response_clock(db, ticket_id))["met_at"] is None
    [withdrawn] = await events(db, ticket_id, "reply_withdrawn")
    assert withdrawn["changes"]["reason"].startswith("gave up after")
