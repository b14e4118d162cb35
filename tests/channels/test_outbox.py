"""The outbox and the worker: replies reach the customer exactly once, or visibly don't.

Every test runs the real arq worker (`workers.settings.build_worker`) in burst mode
against the session's PostgreSQL and Redis: it starts, runs the relay cron once
(`run_at_startup`), processes whatever is queued and stops.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from arq import Worker
from arq.connections import ArqRedis, create_pool
from arq.jobs import Job

from helpdesk.app import redis_settings
from helpdesk.channels import outbox
from helpdesk.config import Settings

# tests/console imports run_worker from here.
from tests.channels.replies import message_view, outbox_row, reply, run_worker
from tests.conftest import Client, Factory

QUEUE = "arq:queue"
DELIVERIES = "helpdesk_deliveries_total"


@pytest.fixture
async def arq_redis(db: asyncpg.Connection, settings: Settings) -> AsyncIterator[ArqRedis]:
    """The worker's queue, seen from the test (after `db` flushed Redis)."""
    redis = await create_pool(redis_settings(settings.redis_url))
    try:
        yield redis
    finally:
        await redis.aclose()


async def deliveries_queued(redis: ArqRedis) -> int:
    """Delivery jobs waiting in the queue (a new ticket also queues its routing job)."""
    jobs = await redis.zrange(QUEUE, 0, -1)
    return sum(1 for job in jobs if job.decode().startswith("outbox:"))


def deliveries(worker: Worker, outcome: str | None = None, channel: str | None = None) -> float:
    """Delivery attempts the worker counted (its own metrics registry), optionally filtered."""
    total = 0.0
    for family in worker.ctx["metrics"].registry.collect():
        for sample in family.samples:
            if sample.name != DELIVERIES:
                continue
            if outcome is not None and sample.labels.get("outcome") != outcome:
                continue
            if channel is not None and sample.labels.get("channel") != channel:
                continue
            total += sample.value
    return total


async def test_public_reply_on_api_ticket_is_sent_once_and_a_second_job_changes_nothing(
    client: Client,
    factory: Factory,
    db: asyncpg.Connection,
    settings: Settings,
    arq_redis: ArqRedis,
) -> None:
    agent = await factory.agent("agent")
    ticket = await factory.ticket(client, agent)
    assert ticket["channel"] == "api"
    message = await reply(client, agent, ticket["id"])
    assert message["delivery_status"] == "pending"
    row = await outbox_row(db, message["id"])
    assert row["status"] == "pending"
    assert await deliveries_queued(arq_redis) == 1  # enqueued after the commit

    worker = await run_worker(settings)

    assert deliveries(worker, "sent") == 1
    first_job = await Job(f"outbox:{row['id']}:0", arq_redis).result_info()
    assert first_job is not None and first_job.result == "sent"
    delivered = await message_view(client, agent, ticket["id"], message["id"])
    assert delivered["delivery_status"] == "sent"
    assert delivered["delivery_error"] is None
    after_first = await outbox_row(db, message["id"])
    assert after_first["status"] == "sent"
    assert after_first["attempts"] == 1
    assert after_first["locked_until"] is None

    # The same delivery asked for again (a duplicate job, e.g. a retried enqueue).
    again = await arq_redis.enqueue_job("deliver_outbox", row["id"], _job_id="outbox-again")
    assert again is not None
    worker = await run_worker(settings)

    assert deliveries(worker) == 0
    second_job = await again.result_info()
    assert second_job is not None and second_job.success and second_job.result is None
    after_second = await outbox_row(db, message["id"])
    assert dict(after_second) == dict(after_first)
    assert await message_view(client, agent, ticket["id"], message["id"]) == delivered


async def test_reply_on_channel_without_sender_fails_visibly_with_the_channel_named(
    client: Client,
    factory: Factory,
    db: asyncpg.Connection,
    settings: Settings,
    arq_redis: ArqRedis,
) -> None:
    agent = await factory.agent("agent")
    ticket = await factory.ticket(client, agent)
    await db.execute("UPDATE tickets SET channel = 'telegram' WHERE id = $1", ticket["id"])
    message = await reply(client, agent, ticket["id"])
    assert message["channel"] == "telegram"

    worker = await run_worker(settings)

    assert deliveries(worker, "failed", channel="telegram") == 1
    assert deliveries(worker, "sent") == 0
    shown = await message_view(client, agent, ticket["id"], message["id"])
    assert shown["delivery_status"] == "failed"
    assert shown["delivery_error"] and "telegram" in shown["delivery_error"]
    row = await outbox_row(db, message["id"])
    assert row["status"] == "failed"
    assert row["last_error"] == shown["delivery_error"]
    assert row["attempts"] == 1

    # A failed delivery stays failed: the relay does not pick it up again.
    worker = await run_worker(settings)
    assert deliveries(worker) == 0
    assert dict(await outbox_row(db, message["id"])) == dict(row)


async def test_reply_lost_from_redis_is_delivered_by_relay(
    client: Client,
    factory: Factory,
    db: asyncpg.Connection,
    settings: Settings,
    arq_redis: ArqRedis,
) -> None:
    agent = await factory.agent("agent")
    ticket = await factory.ticket(client, agent)
    message = await reply(client, agent, ticket["id"])
    assert await deliveries_queued(arq_redis) == 1
    await arq_redis.flushdb()  # F3: Redis loses the queued job
    assert await deliveries_queued(arq_redis) == 0
    assert (await outbox_row(db, message["id"]))["status"] == "pending"

    worker = await run_worker(settings)

    assert deliveries(worker, "sent") == 1
    shown = await message_view(client, agent, ticket["id"], message["id"])
    assert shown["delivery_status"] == "sent"
    row = await outbox_row(db, message["id"])
    assert row["status"] == "sent"
    assert row["attempts"] == 1
    # It was the relay's job (same deterministic id as the lost one) that delivered it.
    relayed = await Job(f"outbox:{row['id']}:0", arq_redis).result_info()
    assert relayed is not None and relayed.result == "sent"


async def abandon_delivery(db: asyncpg.Connection, message_id: int, *, handed_off: bool) -> None:
    """A worker claimed the delivery and died while sending: its lease has run out."""
    await db.execute(
        """UPDATE outbox SET status = 'sending', attempts = 1,
               locked_until = now() - interval '1 minute',
               handed_off_at = CASE WHEN $2 THEN now() - interval '2 minutes' END
           WHERE message_id = $1""",
        message_id,
        handed_off,
    )
    await db.execute("UPDATE messages SET delivery_status = 'sending' WHERE id = $1", message_id)


async def test_delivery_abandoned_after_its_handoff_becomes_possibly_sent_and_is_never_resent(
    client: Client,
    factory: Factory,
    db: asyncpg.Connection,
    settings: Settings,
    arq_redis: ArqRedis,
) -> None:
    agent = await factory.agent("agent")
    ticket = await factory.ticket(client, agent)
    message = await reply(client, agent, ticket["id"])
    # The worker had handed the message to the provider when it died: maybe sent.
    await abandon_delivery(db, message["id"], handed_off=True)
    assert await deliveries_queued(arq_redis) == 1  # the original job is still queued, too

    worker = await run_worker(settings)

    assert deliveries(worker) == 0
    row = await outbox_row(db, message["id"])
    assert row["status"] == "possibly_sent"
    assert row["last_error"] == outbox.POSSIBLY_SENT
    assert row["attempts"] == 1
    assert row["locked_until"] is None
    shown = await message_view(client, agent, ticket["id"], message["id"])
    assert shown["delivery_status"] == "possibly_sent"
    assert shown["delivery_error"] == row["last_error"]

    # Asked to deliver it again, the worker still does not resend it.
    job = await arq_redis.enqueue_job("deliver_outbox", row["id"], _job_id="outbox-resend")
    assert job is not None
    worker = await run_worker(settings)
    assert deliveries(worker) == 0
    result = await job.result_info()
    assert result is not None and result.success and result.result is None
    assert dict(await outbox_row(db, message["id"])) == dict(row)
    assert await message_view(client, agent, ticket["id"], message["id"]) == shown


async def test_delivery_abandoned_before_its_handoff_is_retried_and_sent_once(
    client: Client,
    factory: Factory,
    db: asyncpg.Connection,
    settings: Settings,
    arq_redis: ArqRedis,
) -> None:
    agent = await factory.agent("agent")
    ticket = await factory.ticket(client, agent)
    message = await reply(client, agent, ticket["id"])
    # The worker died before handing the message over: nothing reached the customer.
    await abandon_delivery(db, message["id"], handed_off=False)

    worker = await run_worker(settings)

    # The relay made it due again at once; one of the two jobs (the original one and the
    # relay's) delivered it, the other found nothing to claim.
    assert deliveries(worker, "sent") == 1
    assert deliveries(worker) == 1
    row = await outbox_row(db, message["id"])
    assert row["status"] == "sent"
    assert row["attempts"] == 2
    assert row["last_error"] is None
    shown = await message_view(client, agent, ticket["id"], message["id"])
    assert (shown["delivery_status"], shown["delivery_error"]) == ("sent", None)


async def test_delivery_abandoned_before_its_handoff_on_the_last_attempt_fails_visibly(
    client: Client,
    factory: Factory,
    db: asyncpg.Connection,
    settings: Settings,
    arq_redis: ArqRedis,
) -> None:
    agent = await factory.agent("agent")
    ticket = await factory.ticket(client, agent)
    message = await reply(client, agent, ticket["id"])
    await abandon_delivery(db, message["id"], handed_off=False)
    attempts = settings.worker.outbox_max_attempts
    await db.execute(
        "UPDATE outbox SET attempts = $2 WHERE message_id = $1", message["id"], attempts
    )

    worker = await run_worker(settings)

    assert deliveries(worker) == 0
    row = await outbox_row(db, message["id"])
    assert row["status"] == "failed"
    assert row["attempts"] == attempts
    assert row["last_error"] == f"gave up after {attempts} attempts: {outbox.NOT_HANDED_OFF}"
    shown = await message_view(client, agent, ticket["id"], message["id"])
    assert (shown["delivery_status"], shown["delivery_error"]) == ("failed", row["last_error"])


async def test_internal_note_never_creates_an_outbox_row(
    client: Client,
    factory: Factory,
    db: asyncpg.Connection,
    settings: Settings,
    arq_redis: ArqRedis,
) -> None:
    agent = await factory.agent("agent")
    ticket = await factory.ticket(client, agent)
    response = await client.post(
        f"/tickets/{ticket['id']}/notes",
        json={"text": "Customer called twice, be gentle."},
        headers=agent.headers,
    )
    assert response.status_code == 201, response.text
    note = response.json()
    assert note["kind"] == "note"
    assert note["delivery_status"] is None
    assert await db.fetchval("SELECT count(*) FROM outbox") == 0
    assert await deliveries_queued(arq_redis) == 0

    worker = await run_worker(settings)

    assert deliveries(worker) == 0
    assert await db.fetchval("SELECT count(*) FROM outbox") == 0
    shown = await message_view(client, agent, ticket["id"], note["id"])
    assert shown["kind"] == "note"
    assert shown["delivery_status"] is None
