# ruff: noqa: S311 - seeded generators for reproducible synthetic data, not secrets
"""Scenario 1: inbound messages per second, each stored exactly once.

Telegram: the real webhook endpoint verifies the secret, stores the update in
`inbound_events` and answers; the worker then stores the message (identity, conversation
to ticket, message, SLA). Two rates: accepted (HTTP 200s per second) and stored (until
the worker has stored every message of the run). Email: the raw intake stores the mail
(parse, identity, threading by In-Reply-To, ticket, message, source) before answering,
so its HTTP rate is its stored rate. Every second message continues the previous
one's conversation, so threading is exercised as well as ticket creation.

Two baselines, measured at the same concurrency on the same PostgreSQL:
- the raw SQL ingest transaction (`raw_ingest_run`): what storing one inbound message
  costs when issued directly through asyncpg, with no HTTP, parsing, queue or worker:
  dedupe insert, identity lookup (and creation), conversation (thread) match, ticket
  insert or update, message, event and a router outbox row, in one transaction. Issue 8's
  target is the stored rate at concurrency 8 >= 70 % of it;
- single-row INSERT + commit through asyncpg: what the server can commit at all.
After the runs, redelivered updates and mails must write no new rows.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from datetime import UTC, datetime
from email.utils import format_datetime

import asyncpg
import httpx
import msgspec

from bench.context import Bench, wait_for
from bench.cpu import CpuMeter, describe
from bench.dataset import customer_text
from bench.load import Http, Response, closed_loop
from bench.stats import Row, percentile
from helpdesk.db.pool import create_pool

TELEGRAM_ACCOUNT = "bench"
TELEGRAM_SECRET = "bench-webhook-secret"  # noqa: S105 - a throwaway benchmark secret
EMAIL_ACCOUNT = "bench-mail"
EMAIL_SECRET = "bench-intake-secret-0123456789"  # noqa: S105

_ids = itertools.count(1)
_raw_ids = itertools.count(900_000_000)  # the raw baseline's own numbers


async def setup(bench: Bench) -> None:
    async with httpx.AsyncClient(base_url=bench.base_url, headers=bench.admin_headers) as http:
        response = await http.post(
            "/channels/accounts",
            json={
                "kind": "telegram",
                "name": TELEGRAM_ACCOUNT,
                "secrets": {"bot_token": "123456:bench", "webhook_secret": TELEGRAM_SECRET},
                "settings": {"base_url": "http://127.0.0.1:9"},  # nothing is sent
            },
        )
        response.raise_for_status()
        response = await http.post(
            "/channels/email/accounts",
            json={
                "name": EMAIL_ACCOUNT,
                "address": "podpora@bench.example.cz",
                "inbound_secret": EMAIL_SECRET,
                "auto_acknowledge": False,  # no SMTP here; outbound is scenario 6
            },
        )
        response.raise_for_status()
    async with bench.pool.acquire() as conn:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS bench_raw_insert "
            "(id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, body text NOT NULL, "
            "created_at timestamptz NOT NULL DEFAULT now())"
        )
        # The router's outbox of the raw baseline (the service enqueues a job instead).
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS bench_router_outbox "
            "(id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, ticket_id bigint NOT NULL, "
            "created_at timestamptz NOT NULL DEFAULT now())"
        )
        bench.state["telegram_account_id"] = await conn.fetchval(
            "SELECT id FROM channel_accounts WHERE kind = 'telegram' AND name = $1",
            TELEGRAM_ACCOUNT,
        )


def telegram_update(number: int, text: str, chat: int | None = None) -> bytes:
    """An update; by default two consecutive numbers share a chat (a conversation)."""
    chat = chat if chat is not None else 5_000_000 + number // 2
    return msgspec.json.encode(
        {
            "update_id": 100_000_000 + number,
            "message": {
                "message_id": number,
                "date": int(time.time()),
                "chat": {"id": chat, "type": "private"},
                "from": {
                    "id": chat,
                    "is_bot": False,
                    "first_name": "Zákazník",
                    "last_name": str(chat),
                },
                "text": text,
            },
        }
    )


def raw_mail(number: int, text: str) -> bytes:
    customer = number // 2
    headers = [
        f"From: Zákazník {customer} <zakaznik{customer}@example.cz>",
        "To: podpora@bench.example.cz",
        f"Subject: {'Re: ' if number % 2 else ''}Dotaz {customer}",
        f"Message-ID: <bench-{number}@example.cz>",
        f"Date: {format_datetime(datetime.now(UTC))}",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 8bit",
    ]
    if number % 2:
        headers.append(f"In-Reply-To: <bench-{number - 1}@example.cz>")
    return ("\r\n".join(headers) + "\r\n\r\n" + text + "\r\n").encode()


async def _count(pool: asyncpg.Pool, sql: str, *args: object) -> int:
    async with pool.acquire() as conn:
        value: int = await conn.fetchval(sql, *args)
        return value


async def _telegram_counts(bench: Bench) -> tuple[int, int, int]:
    events = await _count(bench.pool, "SELECT count(*) FROM inbound_events")
    processed = await _count(
        bench.pool, "SELECT count(*) FROM inbound_events WHERE status = 'processed'"
    )
    messages = await _count(
        bench.pool,
        "SELECT count(*) FROM messages WHERE channel = 'telegram' AND direction = 'inbound'",
    )
    return events, processed, messages


async def _email_messages(bench: Bench) -> int:
    return await _count(
        bench.pool,
        "SELECT count(*) FROM messages WHERE channel = 'email' AND direction = 'inbound' "
        "AND channel_account = $1",
        EMAIL_ACCOUNT,
    )


async def telegram_run(
    bench: Bench, concurrency: int, meter: CpuMeter | None = None
) -> tuple[float, float, list[float]]:
    """One run: (accepted per second, stored per second, latencies)."""
    rng = random.Random(concurrency)
    numbers = [next(_ids) for _ in range(bench.sizes.ingest_messages)]
    bodies = [telegram_update(n, customer_text(rng)) for n in numbers]
    before = await _telegram_counts(bench)
    headers = {
        "X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET,
        "content-type": "application/json",
    }

    async def send(http: Http, index: int) -> Response:
        return await http.post(
            f"/channels/telegram/{TELEGRAM_ACCOUNT}/webhook", content=bodies[index], headers=headers
        )

    if meter:
        meter.start()
    began = time.monotonic()
    result = await closed_loop(bench.base_url, send, len(bodies), concurrency)
    result.check("telegram webhook")
    total = len(bodies)

    async def all_stored() -> bool:
        # Every update was accepted (stored as an event) before this polls, so the worker
        # is done when no event is pending: a read of the small pending index, where
        # counting whole tables every 20 ms would cost PostgreSQL more CPU than the
        # messages themselves as the tables grow. The exact counts are checked after.
        pending = await _count(
            bench.pool, "SELECT count(*) FROM inbound_events WHERE status = 'pending'"
        )
        return pending == 0

    done = await wait_for(all_stored, 300, "the worker to store the telegram messages")
    if meter:
        meter.stop()
    events, processed, messages = await _telegram_counts(bench)
    counts = (events - before[0], processed - before[1], messages - before[2])
    if counts != (total, total, total):
        raise RuntimeError(
            f"telegram: {total} updates sent; {counts[0]} events stored, {counts[1]} "
            f"processed and {counts[2]} messages stored (expected exactly one each)"
        )
    return result.rate, total / (done - began), result.latencies


async def email_run(
    bench: Bench, concurrency: int, meter: CpuMeter | None = None
) -> tuple[float, list[float]]:
    rng = random.Random(1000 + concurrency)
    numbers = [next(_ids) for _ in range(bench.sizes.ingest_messages)]
    # Each reply is sent by the same worker right after the mail it answers, so it
    # usually finds it (threading); when it races ahead, it opens a ticket instead.
    mails = [raw_mail(n, customer_text(rng)) for n in numbers]
    bench.state.setdefault("first_email_number", numbers[0])
    before = await _email_messages(bench)
    headers = {"Authorization": f"Bearer {EMAIL_SECRET}", "content-type": "message/rfc822"}

    async def send(http: Http, index: int) -> Response:
        return await http.post(
            f"/channels/email/{EMAIL_ACCOUNT}/inbound", content=mails[index], headers=headers
        )

    if meter:
        meter.start()
    result = await closed_loop(bench.base_url, send, len(mails), concurrency)
    if meter:
        meter.stop()
    result.check("email intake")
    stored = await _email_messages(bench) - before
    if stored != len(mails):
        raise RuntimeError(f"email: {len(mails)} mails sent, {stored} messages stored")
    return result.rate, result.latencies


async def raw_insert_run(bench: Bench, concurrency: int) -> float:
    """Baseline: single-row INSERT, each its own transaction (commit), at `concurrency`."""
    total = bench.sizes.raw_insert_rows
    pool = await asyncpg.create_pool(bench.database_url, min_size=concurrency, max_size=concurrency)
    counter = iter(range(total))

    async def worker() -> None:
        async with pool.acquire() as conn:
            for index in counter:
                await conn.execute("INSERT INTO bench_raw_insert (body) VALUES ($1)", f"m{index}")

    try:
        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    finally:
        await pool.close()
    return total / elapsed


RAW_CHANNEL = "bench-raw"


async def _raw_ingest_one(
    conn: asyncpg.Connection, account_id: int, number: int, chat: int, text: str
) -> None:
    """One inbound message stored the way the service stores it, in plain SQL."""
    external_id = f"{chat}:{number}"
    async with conn.transaction():
        fresh = await conn.fetchval(
            """INSERT INTO inbound_events (account_id, dedupe_key, payload, status)
               VALUES ($1, $2, $3, 'processed')
               ON CONFLICT (account_id, dedupe_key) DO NOTHING RETURNING id""",
            account_id,
            f"raw:{number}",
            text.encode(),
        )
        if fresh is None:
            return
        customer_id = await conn.fetchval(
            """SELECT customer_id FROM customer_identities
               WHERE channel = $1 AND channel_account = $2 AND external_id = $3""",
            RAW_CHANNEL,
            TELEGRAM_ACCOUNT,
            str(chat),
        )
        if customer_id is None:
            customer_id = await conn.fetchval(
                "INSERT INTO customers (name) VALUES ($1) RETURNING id", f"Zákazník {chat}"
            )
            await conn.execute(
                """INSERT INTO customer_identities
                       (customer_id, channel, channel_account, external_id, display_name)
                   VALUES ($1, $2, $3, $4, $5)""",
                customer_id,
                RAW_CHANNEL,
                TELEGRAM_ACCOUNT,
                str(chat),
                f"Zákazník {chat}",
            )
        conversation = await conn.fetchrow(
            """INSERT INTO conversations (channel, channel_account, external_id, customer_id)
               VALUES ($1, $2, $3, $4)
               ON CONFLICT (channel, channel_account, external_id)
               DO UPDATE SET external_id = EXCLUDED.external_id
               RETURNING id, ticket_id""",
            RAW_CHANNEL,
            TELEGRAM_ACCOUNT,
            str(chat),
            customer_id,
        )
        ticket_id = conversation["ticket_id"]
        if ticket_id is None:
            ticket_id = await conn.fetchval(
                # routed_at set: the routing sweep must leave the baseline's tickets alone.
                """INSERT INTO tickets (subject, channel, channel_account, customer_id,
                                       conversation_id, first_response_due_at, routed_at)
                   VALUES ($1, $2, $3, $4, $5, now() + interval '60 minutes', now())
                   RETURNING id""",
                text[:80],
                RAW_CHANNEL,
                TELEGRAM_ACCOUNT,
                customer_id,
                conversation["id"],
            )
            await conn.execute(
                "UPDATE conversations SET ticket_id = $2 WHERE id = $1",
                conversation["id"],
                ticket_id,
            )
        else:
            await conn.execute(
                "UPDATE tickets SET updated_at = now(), version = version + 1 WHERE id = $1",
                ticket_id,
            )
        message_id = await conn.fetchval(
            """INSERT INTO messages (ticket_id, direction, kind, author_customer_id, channel,
                                     channel_account, external_id, body_text)
               VALUES ($1, 'inbound', 'public', $2, $3, $4, $5, $6) RETURNING id""",
            ticket_id,
            customer_id,
            RAW_CHANNEL,
            TELEGRAM_ACCOUNT,
            external_id,
            text,
        )
        await conn.execute(
            "INSERT INTO ticket_events (ticket_id, action, changes) VALUES ($1, $2, $3)",
            ticket_id,
            "customer_message",
            {"message_id": message_id},
        )
        await conn.execute("INSERT INTO bench_router_outbox (ticket_id) VALUES ($1)", ticket_id)


async def raw_ingest_run(bench: Bench, concurrency: int, meter: CpuMeter | None = None) -> float:
    """Baseline: the ingest transaction in raw SQL, messages per second at `concurrency`.
    As in the webhook runs, two consecutive messages share a conversation; each worker
    takes both messages of a conversation, in order."""
    rng = random.Random(2000 + concurrency)
    numbers = [next(_raw_ids) for _ in range(bench.sizes.ingest_messages)]
    texts = [customer_text(rng) for _ in numbers]
    pairs = iter(range(0, len(numbers), 2))
    account_id: int = bench.state["telegram_account_id"]
    # The service's pool setup (its jsonb codec), so both sides encode events alike.
    pool = await create_pool(bench.database_url, min_size=concurrency, max_size=concurrency)

    async def worker() -> None:
        async with pool.acquire() as conn:
            for start in pairs:
                for index in range(start, min(start + 2, len(numbers))):
                    number = numbers[index]
                    chat = 7_000_000 + numbers[start]
                    await _raw_ingest_one(conn, account_id, number, chat, texts[index])

    try:
        if meter:
            meter.start()
        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
        if meter:
            meter.stop()  # before the backends exit with their CPU time
    finally:
        await pool.close()
    return len(numbers) / elapsed


async def redelivery_check(bench: Bench) -> None:
    """Send the first updates and mails again: no new rows may appear."""
    before_tg = await _telegram_counts(bench)
    before_mail = await _email_messages(bench)
    rng = random.Random(0)
    headers = {
        "X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET,
        "content-type": "application/json",
    }
    async with httpx.AsyncClient(base_url=bench.base_url, timeout=60) as http:
        for number in range(1, 21):
            response = await http.post(
                f"/channels/telegram/{TELEGRAM_ACCOUNT}/webhook",
                content=telegram_update(number, customer_text(rng)),
                headers=headers,
            )
            response.raise_for_status()
        first_mail = bench.state["first_email_number"]
        for number in range(first_mail, first_mail + 20):
            response = await http.post(
                f"/channels/email/{EMAIL_ACCOUNT}/inbound",
                content=raw_mail(number, "opakované doručení"),
                headers={
                    "Authorization": f"Bearer {EMAIL_SECRET}",
                    "content-type": "message/rfc822",
                },
            )
            response.raise_for_status()
            if response.json()["outcome"] != "duplicate":
                raise RuntimeError(f"a redelivered mail was not a duplicate: {response.text}")
    await asyncio.sleep(2)  # anything the worker would do with a duplicate
    if await _telegram_counts(bench) != before_tg or await _email_messages(bench) != before_mail:
        raise RuntimeError("a redelivered message wrote new rows")
    bench.facts["redelivery"] = "20 telegram updates and 20 mails redelivered: no new rows"


async def run(bench: Bench) -> None:
    await setup(bench)
    sizes = bench.sizes
    stored_rates: list[float] = []
    for concurrency in sizes.concurrencies:
        # Where the CPU goes, per message, in the last run of each kind at concurrency 8.
        meters = {
            kind: CpuMeter(bench.api.pid, bench.worker.pid) if concurrency == 8 else None
            for kind in ("raw", "telegram", "email")
        }
        last = sizes.runs - 1
        baseline = [await raw_insert_run(bench, concurrency) for _ in range(sizes.runs)]
        raw_ingest = [
            await raw_ingest_run(bench, concurrency, meters["raw"] if run == last else None)
            for run in range(sizes.runs)
        ]
        accepted, stored, tg_p99 = [], [], []
        for run in range(sizes.runs):
            rate, stored_rate, latencies = await telegram_run(
                bench, concurrency, meters["telegram"] if run == last else None
            )
            accepted.append(rate)
            stored.append(stored_rate)
            tg_p99.append(percentile(latencies, 99) * 1000)
        stored_rates.extend(stored)
        mail, mail_p99 = [], []
        for run in range(sizes.runs):
            rate, latencies = await email_run(
                bench, concurrency, meters["email"] if run == last else None
            )
            mail.append(rate)
            mail_p99.append(percentile(latencies, 99) * 1000)
        messages = sizes.ingest_messages
        if meters["raw"] is not None:
            bench.facts["cpu_per_message_c8_raw_ingest"] = describe(
                meters["raw"].per_item_ms(messages, ("load generator", "PostgreSQL"))
            )
        for kind in ("telegram", "email"):
            meter = meters[kind]
            if meter is not None:
                bench.facts[f"cpu_per_message_c8_{kind}"] = describe(meter.per_item_ms(messages))
        case = f"concurrency {concurrency}"
        base_name = f"raw INSERT+commit, asyncpg, c={concurrency}"
        common = {"unit": "msg/s", "better": "higher", "baseline_name": base_name}
        ingest_name = f"raw SQL ingest transaction, asyncpg, c={concurrency}"
        target = "issue 8 target: ratio >= 0.70" if concurrency == 8 else ""
        for what, runs in (("telegram webhook", stored), ("email raw intake", mail)):
            bench.add(
                Row(
                    "1 ingestion",
                    f"{what}, {case}",
                    "stored vs ingest transaction",
                    "msg/s",
                    runs=runs,
                    better="higher",
                    baseline_name=ingest_name,
                    baseline_runs=raw_ingest,
                    note=target,
                )
            )
        bench.add(
            Row(
                "1 ingestion",
                f"telegram webhook, {case}",
                "accepted (HTTP 200)",
                runs=accepted,
                baseline_runs=baseline,
                note=f"request p99 {sorted(tg_p99)[len(tg_p99) // 2]:.1f} ms",
                **common,  # type: ignore[arg-type]
            )
        )
        bench.add(
            Row(
                "1 ingestion",
                f"telegram webhook, {case}",
                "stored by the worker",
                runs=stored,
                baseline_runs=baseline,
                note="first request to last message stored",
                **common,  # type: ignore[arg-type]
            )
        )
        bench.add(
            Row(
                "1 ingestion",
                f"email raw intake, {case}",
                "stored (HTTP 200)",
                runs=mail,
                baseline_runs=baseline,
                note=f"request p99 {sorted(mail_p99)[len(mail_p99) // 2]:.1f} ms",
                **common,  # type: ignore[arg-type]
            )
        )
    bench.facts["max_stored_telegram_rate"] = round(max(stored_rates), 1)
    await redelivery_check(bench)
