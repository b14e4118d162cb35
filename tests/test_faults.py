"""Faults (docs: reliability rows F1-F3): workers, Redis and database connections die.

Real processes where a process is what is tested: `helpdesk worker` and `helpdesk run`
against the test's database and a redis-server of the test's own, which is killed
and restarted (never the session's Redis).
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import httpx
import pytest
from msgspec import structs

from helpdesk.agents.passwords import Passwords
from helpdesk.app import create_app
from helpdesk.channels.webhooks import event_job_id
from helpdesk.config import Settings
from helpdesk.observability import Metrics
from tests.channels.email.builders import INBOUND_SECRET, SUPPORT, support_account
from tests.channels.email.smtp_server import SmtpTestServer
from tests.channels.replies import reply
from tests.channels.telegram import payloads
from tests.channels.telegram.conftest import TOKEN
from tests.channels.telegram.conftest import add_account as add_telegram_account
from tests.channels.telegram.conftest import deliver as deliver_update
from tests.channels.telegram.fake_bot_api import FakeBotApi
from tests.conftest import Client, Factory, serve
from tests.faults import KillableRedis, alive, start_helpdesk, stop_process, wait_until
from tests.sla.history import check, shift


@pytest.fixture
async def bot_api() -> AsyncIterator[FakeBotApi]:
    server = FakeBotApi(TOKEN)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def _status(db: asyncpg.Connection, message_id: int) -> str:
    status: str = await db.fetchval("SELECT status FROM outbox WHERE message_id = $1", message_id)
    return status


@pytest.mark.parametrize("command", ["worker", "run"])
async def test_a_worker_keeps_running_through_a_redis_restart_and_delivers_after_it(
    command: str,
    client: Client,
    factory: Factory,
    db: asyncpg.Connection,
    database_url: str,
    own_redis: KillableRedis,
    tmp_path: Path,
) -> None:
    agent = await factory.agent("agent")
    ticket = await factory.ticket(client, agent)
    log = tmp_path / "worker.log"
    process = start_helpdesk(command, database_url, own_redis.url, log)
    try:
        # The reply's own job goes to the session's Redis: the worker's relay (on its
        # Redis) is what finds it, so every delivery here proves the worker polls.
        before = await reply(client, agent, ticket["id"], "before the outage")
        await wait_until(lambda: _is_sent(db, before["id"]), "the first reply to be delivered")

        own_redis.kill()
        during = await reply(client, agent, ticket["id"], "while Redis is down")

        async def noticed() -> bool:
            alive(process, log)
            return "Redis unavailable" in log.read_text()

        await wait_until(noticed, "the worker to notice the outage")
        alive(process, log)
        assert await _status(db, during["id"]) == "pending"

        own_redis.start()
        await wait_until(lambda: _is_sent(db, during["id"]), "the reply after the restart")
        after = await reply(client, agent, ticket["id"], "after the outage")
        await wait_until(lambda: _is_sent(db, after["id"]), "a reply written after the restart")
        alive(process, log)
    finally:
        await stop_process(process)
    assert process.returncode == 0, log.read_text()[-3000:]


async def _is_sent(db: asyncpg.Connection, message_id: int) -> bool:
    return await _status(db, message_id) == "sent"


async def test_webhooks_are_answered_while_redis_is_frozen_and_left_to_the_sweep(
    db: asyncpg.Connection,
    settings: Settings,
    passwords: Passwords,
    own_redis: KillableRedis,
    bot_api: FakeBotApi,
) -> None:
    """F3: a frozen Redis (SIGSTOP: connections accepted, nothing answered) must not
    hold webhook answers; the events are durable, and the sweep enqueues them later."""
    await add_telegram_account(db, bot_api.base_url)
    metrics = Metrics()
    app = create_app(structs.replace(settings, redis_url=own_redis.url), passwords, metrics)
    redis = await own_redis.client()
    async with serve(app) as http:
        first = await deliver_update(http, payloads.message(update_id=500, message_id=1))
        assert first.status_code == 200
        first_id = await db.fetchval("SELECT id FROM inbound_events")
        assert await redis.exists(f"arq:job:{event_job_id(first_id)}")  # Redis up: queued

        own_redis.pause()
        try:
            answers = [
                await deliver_update(http, payloads.message(update_id=501 + i, message_id=2 + i))
                for i in range(5)
            ]
        finally:
            own_redis.resume()

    assert [a.status_code for a in answers] == [200] * 5
    assert await db.fetchval("SELECT count(*) FROM inbound_events WHERE status = 'pending'") == 6
    # After the first frozen enqueue the others did not even try Redis (each would have
    # waited for its timeout): they are left to the worker's sweep.
    skipped = metrics.registry.get_sample_value("helpdesk_enqueue_skipped_total")
    assert skipped is not None and skipped >= 4
    await redis.aclose()


async def _terminate_others(db: asyncpg.Connection) -> int:
    """pg_terminate_backend on every other connection to the test's own database."""
    killed: int = await db.fetchval(
        """SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
           WHERE datname = current_database() AND pid <> pg_backend_pid()"""
    )
    return killed


async def test_dropped_database_connections_answer_503_with_retry_after_never_500(
    db: asyncpg.Connection,
    settings: Settings,
    passwords: Passwords,
    factory: Factory,
    bot_api: FakeBotApi,
) -> None:
    """F2 with connections terminated (pg_terminate_backend on the test database's
    connections, not a server restart): every webhook and every authenticated request
    is answered 2xx or 503 + Retry-After problem+json, never 500, and retrying lands
    each webhook exactly once."""
    await add_telegram_account(db, bot_api.base_url)
    agent = await factory.agent("agent")
    updates = 120
    answers: list[int] = []
    done = asyncio.Event()

    async def terminate() -> None:
        # Cut the connections under the requests for a while (a bounded number of
        # rounds, so that the retries then get through), spaced so that requests on
        # fresh connections also run between the cuts.
        for _ in range(40):
            if done.is_set():
                return
            await _terminate_others(db)
            await asyncio.sleep(0.05)

    def check(answer: httpx.Response) -> bool:
        answers.append(answer.status_code)
        if answer.status_code < 300:
            return True
        assert answer.status_code == 503, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert int(answer.headers["retry-after"]) > 0
        return False

    async def until_answered(request: Callable[[], Awaitable[httpx.Response]]) -> None:
        answer = await request()
        while not check(answer):  # the client's retry, its Retry-After shortened
            await asyncio.sleep(0.01)
            answer = await request()

    async def send(http: Client, n: int) -> None:
        update = payloads.message(update_id=1000 + n, message_id=n, text=f"message {n}")
        await until_answered(lambda: deliver_update(http, update))
        await until_answered(lambda: http.get("/tickets", headers=agent.headers))

    app = create_app(structs.replace(settings, database_pool_max=4), passwords)
    async with serve(app) as http:
        killer = asyncio.create_task(terminate())
        try:
            for start in range(0, updates, 10):
                await asyncio.gather(*(send(http, n) for n in range(start, start + 10)))
        finally:
            done.set()
            await killer

    assert 503 in answers  # the connections really were cut under the requests
    payloads_stored = await db.fetch("SELECT payload FROM inbound_events")
    assert len(payloads_stored) == updates
    stored_ids = sorted(json.loads(bytes(r["payload"]))["update_id"] for r in payloads_stored)
    assert stored_ids == [1000 + n for n in range(updates)]


# --- Everything at once: traffic while a worker, Redis and connections die --------------

SLA_LEVEL = {
    "clock": "first_response",
    "level": "breach",
    "actions": [{"action": "notify_supervisors", "email": True}],
}


def _telegram_update(n: int) -> dict[str, object]:
    user = {"id": 7000 + n % 6, "is_bot": False, "first_name": f"Zakaznik {n % 6}"}
    chat = {"id": 7000 + n % 6, "type": "private", "first_name": f"Zakaznik {n % 6}"}
    return payloads.message(
        update_id=20000 + n, message_id=100 + n, text=f"zprava {n}", sender=user, chat=chat
    )


def _mail(n: int) -> bytes:
    return (
        f"From: Zakaznik {n} <zakaznik{n}@example.cz>\r\nTo: {SUPPORT}\r\n"
        f"Subject: Objednavka {n}\r\nDate: Mon, 23 Nov 2026 09:00:00 +0100\r\n"
        f"Message-ID: <fault-{n}@example.cz>\r\n\r\nKde je moje objednavka {n}?\r\n"
    ).encode()


async def test_faults_under_traffic_lose_nothing_double_nothing_and_leave_nothing_stuck(
    db: asyncpg.Connection,
    settings: Settings,
    passwords: Passwords,
    factory: Factory,
    database_url: str,
    own_redis: KillableRedis,
    bot_api: FakeBotApi,
    smtp: SmtpTestServer,
    tmp_path: Path,
) -> None:
    """Telegram webhooks (some delivered 2-3 times, concurrently) and mails arrive while a
    `helpdesk worker` is SIGKILLed, Redis is killed and restarted, the database's
    connections are terminated and the SMTP server drops connections after accepting
    mails. Counted at the end: 0 lost, 0 doubled, 0 stuck; every SLA level fired once."""
    await add_telegram_account(db, bot_api.base_url)
    await support_account(db, smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_security="none")
    admin = await factory.agent("admin")
    await factory.agent("supervisor", email="sefka@shop.example")
    app = create_app(structs.replace(settings, redis_url=own_redis.url), passwords)
    worker_settings = {
        "worker__outbox_lease_seconds": "3",
        "worker__inbound_sweep_seconds": "2",
        "sla__sweep_interval_seconds": "1",
        "routing__sweep_interval_seconds": "1",
        "email__smtp_timeout_seconds": "10",
    }
    logs = [tmp_path / f"worker{i}.log" for i in range(3)]
    workers = [
        start_helpdesk("worker", database_url, own_redis.url, logs[i], **worker_settings)
        for i in range(2)
    ]
    updates: list[int] = []
    mails: list[int] = []
    answers: list[int] = []

    async def until_answered(request: Callable[[], Awaitable[httpx.Response]]) -> None:
        """A provider: retries a 503 and a connection the server closed while the client
        reused it (uvicorn's keep-alive timeout racing a pooled connection)."""
        while True:
            try:
                answer = await request()
            except httpx.TransportError:
                await asyncio.sleep(0.02)
                continue
            answers.append(answer.status_code)
            if answer.status_code == 200:
                return
            assert answer.status_code == 503, answer.text
            assert int(answer.headers["retry-after"]) > 0
            await asyncio.sleep(0.02)

    async def traffic(http: Client, first: int) -> None:
        """20 updates (every third one delivered 3 times, every other one twice, all at
        once) and 3 mails."""
        sends = []
        for n in range(first, first + 20):
            updates.append(n)
            copies = 3 if n % 3 == 0 else 2 if n % 2 == 0 else 1
            sends += [
                until_answered(lambda n=n: deliver_update(http, _telegram_update(n)))
                for _ in range(copies)
            ]
        for n in range(first, first + 3):
            mails.append(n)
            sends.append(
                until_answered(
                    lambda n=n: http.post(
                        "/channels/email/support/inbound",
                        content=_mail(n),
                        headers={"Authorization": f"Bearer {INBOUND_SECRET}"},
                    )
                )
            )
        await asyncio.gather(*sends)

    try:
        async with serve(app) as http:
            policy = await http.post(
                "/sla/policies",
                json={"name": "All", "first_response_minutes": 60, "escalations": [SLA_LEVEL]},
                headers=admin.headers,
            )
            assert policy.status_code == 201, policy.text
            smtp.drop_after_data(2)  # two acknowledgements accepted, then cut

            await traffic(http, 0)
            # A worker dies with work in hand; a new one starts.
            workers[0].send_signal(signal.SIGKILL)
            workers.append(
                start_helpdesk("worker", database_url, own_redis.url, logs[2], **worker_settings)
            )

            own_redis.kill()  # Redis dies: intake goes on, answered at once
            await traffic(http, 100)
            own_redis.start()

            killer = asyncio.create_task(_terminate_rounds(db, rounds=20))
            await traffic(http, 200)
            await killer

            # SLA: three mail tickets breach; the first notice mailed is cut after DATA
            # (once the acknowledgements are done, so that it is a notice that meets it).
            await wait_until(lambda: _acknowledged(db, len(mails)), "the acknowledgements", 100)
            smtp.drop_after_data(1)
            breached = await db.fetch(
                "SELECT id FROM tickets WHERE channel = 'email' ORDER BY id LIMIT 3"
            )
            for row in breached:
                await shift(db, row["id"], 61)
                await check(db, settings, row["id"])

            try:
                await wait_until(lambda: _settled(db, len(updates)), "everything to settle", 100)
            except AssertionError:
                state = await db.fetch(
                    """SELECT 'event' AS kind, status, count(*) FROM inbound_events GROUP BY 2
                       UNION ALL SELECT 'outbox:' || channel, status, count(*) FROM outbox
                       GROUP BY 1, 2
                       UNION ALL SELECT 'notice', status, count(*) FROM sla_notices GROUP BY 2"""
                )
                tails = "\n".join(log.read_text()[-1500:] for log in logs if log.exists())
                raise AssertionError(f"not settled: {[tuple(r) for r in state]}\n{tails}") from None
            # The surviving workers never exited (Redis died and came back under them).
            for process, log in zip(workers[1:], logs[1:], strict=True):
                alive(process, log)
    finally:
        for process in workers:
            await stop_process(process)

    for process, log in zip(workers[1:], logs[1:], strict=True):  # SIGTERM: a clean stop
        assert process.returncode == 0, log.read_text()[-3000:]
    assert 503 in answers  # connections really were cut under requests

    # Lost: none. Every update and every mail is one stored message.
    texts = [
        r["body_text"]
        for r in await db.fetch(
            "SELECT body_text FROM messages WHERE channel = 'telegram' AND direction = 'inbound'"
        )
    ]
    assert sorted(texts) == sorted(f"zprava {n}" for n in updates)  # nothing lost or doubled
    subjects = [
        r["subject"]
        for r in await db.fetch(
            """SELECT t.subject FROM messages m JOIN tickets t ON t.id = m.ticket_id
               WHERE m.channel = 'email' AND m.direction = 'inbound'"""
        )
    ]
    assert sorted(subjects) == sorted(f"Objednavka {n}" for n in mails)

    # Doubled: no mail reached the server twice (acknowledgements and notices alike).
    ids = [m.message["Message-ID"] for m in smtp.received]
    assert len(ids) == len(set(ids)), ids
    # A 'sent' mail reached the server exactly once; a 'possibly_sent' one at most once
    # (the two cut after DATA, and any whose outcome a killed worker or a cut database
    # connection left unknown) and was never tried again.
    acks = await db.fetch(
        """SELECT o.status, o.attempts, m.external_id FROM outbox o
           JOIN messages m ON m.id = o.message_id WHERE o.channel = 'email'"""
    )
    assert len(acks) == len(mails)
    assert {r["status"] for r in acks} <= {"sent", "possibly_sent"}
    assert [r["status"] for r in acks].count("possibly_sent") >= 2
    for ack in acks:
        copies = ids.count(f"<{ack['external_id']}>")
        assert copies == 1 if ack["status"] == "sent" else copies <= 1, dict(ack)

    # SLA: each breached ticket fired its level once and queued one notice, mailed once.
    fired = await db.fetch("SELECT ticket_id, level FROM sla_escalations WHERE level = 'breach'")
    assert sorted(r["ticket_id"] for r in fired) == [r["id"] for r in breached]
    notices = await db.fetch("SELECT id, ticket_id, status FROM sla_notices ORDER BY id")
    assert sorted(n["ticket_id"] for n in notices) == [r["id"] for r in breached]
    assert "possibly_sent" in {n["status"] for n in notices}  # the one cut after DATA
    domain = SUPPORT.partition("@")[2]
    for notice in notices:
        copies = ids.count(f"<sla-notice.{notice['id']}@{domain}>")
        assert copies == 1 if notice["status"] == "sent" else copies <= 1, dict(notice)


async def _acknowledged(db: asyncpg.Connection, mails: int) -> bool:
    done = await db.fetchval(
        """SELECT count(*) FROM outbox
           WHERE channel = 'email' AND status IN ('sent', 'possibly_sent')"""
    )
    return bool(done == mails)


async def _terminate_rounds(db: asyncpg.Connection, rounds: int) -> None:
    for _ in range(rounds):
        await _terminate_others(db)
        await asyncio.sleep(0.05)


async def _settled(db: asyncpg.Connection, updates: int) -> bool:
    """Nothing left to do: every event processed, every delivery and notice finished."""
    row = await db.fetchrow(
        """SELECT
             (SELECT count(*) FROM inbound_events WHERE status = 'pending') AS events,
             (SELECT count(*) FROM inbound_events) AS stored,
             (SELECT count(*) FROM outbox WHERE status NOT IN ('sent', 'possibly_sent'))
               AS deliveries,
             (SELECT count(*) FROM sla_notices WHERE status NOT IN ('sent', 'possibly_sent'))
               AS notices,
             (SELECT count(*) FROM sla_notices) AS notices_queued,
             (SELECT count(*) FROM tickets WHERE routed_at IS NULL) AS unrouted"""
    )
    return bool(
        row["events"] == 0
        and row["stored"] == updates
        and row["deliveries"] == 0
        and row["notices"] == 0
        and row["notices_queued"] == 3
    )
