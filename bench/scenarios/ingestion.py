# ruff: noqa: S311 - seeded generators for reproducible synthetic data, not secrets
"""Scenario 1: inbound messages per second, each stored exactly once.

Telegram: the real webhook endpoint verifies the secret, stores the update in
`inbound_events` and answers; the worker then stores the message (identity, conversation
to ticket, message, SLA). Two rates: accepted (HTTP 200s per second) and stored (until
the worker has stored every message of the run). Email: the raw intake stores the mail
(parse, identity, threading by In-Reply-To, ticket, message, source) before answering,
so its HTTP rate is its stored rate. Every second message continues the previous
one's conversation, so threading is exercised as well as ticket creation; a client of
the load generator sends both messages of a conversation, one after the other, as a
customer does and as the baselines do.

Two baselines, measured at the same concurrency on the same PostgreSQL:
- the raw SQL ingest transaction (`raw_ingest_run`): what storing one inbound message
  costs when issued directly through asyncpg, with no HTTP, parsing, queue or worker:
  dedupe insert, identity lookup (and creation), conversation (thread) match, ticket
  insert or update, message, event and a router outbox row, in one transaction. Issue 8's
  target is the stored rate at concurrency 8 >= 70 % of it;
- the same transaction behind a minimal litestar endpoint (`http_ingest_run`), driven by
  the same load generator: what HTTP alone costs on this machine, so the most any HTTP
  ingestion can reach against the first baseline;
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
from pathlib import Path

import asyncpg
import httpx
import msgspec

from bench import raw_ingest
from bench.context import Bench, wait_for
from bench.cpu import CpuMeter, describe
from bench.dataset import customer_text
from bench.environment import start_baseline_app
from bench.load import Http, Response, closed_loop
from bench.stats import Row, percentile
from helpdesk.db.pool import create_pool

TELEGRAM_ACCOUNT = raw_ingest.ACCOUNT
TELEGRAM_SECRET = "bench-webhook-secret"  # noqa: S105 - a throwaway benchmark secret
EMAIL_ACCOUNT = "bench-mail"
EMAIL_SECRET = "bench-intake-secret-0123456789"  # noqa: S105

# Numbers 2k and 2k+1 are one conversation (chat k, mail k and its reply) and every run
# takes an even count of them, so a load generator client sends both, in order.
_ids = itertools.count(0)
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
    bench.state.setdefault("first_telegram_number", numbers[0])
    before = await _telegram_counts(bench)
    last_message = await _count(bench.pool, "SELECT coalesce(max(id), 0) FROM messages")
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
    result = await closed_loop(bench.base_url, send, len(bodies), concurrency, in_order=2)
    result.check("telegram webhook")
    total = len(bodies)

    async def all_stored() -> bool:
        # Only this run's messages are counted, by a range of the primary key: counting
        # whole tables (or the pending events' partial index, full of entries that
        # vacuum has not yet removed) every 20 ms cost PostgreSQL more CPU than the
        # messages themselves as the tables grew. The exact counts are checked after.
        stored = await _count(
            bench.pool,
            "SELECT count(*) FROM messages WHERE id > $1 AND channel = 'telegram' "
            "AND direction = 'inbound'",
            last_message,
        )
        return stored >= total

    done = await wait_for(all_stored, 300, "the worker to store the telegram messages")
    if meter:
        meter.stop()

    async def all_marked() -> bool:  # each event is marked processed after its commit
        pending = "SELECT count(*) FROM inbound_events WHERE status = 'pending'"
        return await _count(bench.pool, pending) == 0

    await wait_for(all_marked, 60, "the worker to mark the telegram events processed")
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
    # Each reply is sent by the same client right after the mail it answers was stored,
    # so it finds it (threading), as in the raw baseline.
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
    result = await closed_loop(bench.base_url, send, len(mails), concurrency, in_order=2)
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
                    await raw_ingest.ingest_one(conn, account_id, number, chat, texts[index])

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


async def http_ingest_run(
    bench: Bench, url: str, concurrency: int, meter: CpuMeter | None = None
) -> float:
    """The raw ingest transaction behind a minimal litestar endpoint (`bench.baseline_app`),
    driven by the same load generator: messages per second. What HTTP alone costs the
    baseline on this machine, so the most any HTTP ingestion could reach. A client sends
    both messages of a conversation, in order, as in `raw_ingest_run`."""
    rng = random.Random(3000 + concurrency)
    numbers = [next(_raw_ids) for _ in range(bench.sizes.ingest_messages)]
    bodies = [
        msgspec.json.encode(
            {
                "account_id": bench.state["telegram_account_id"],
                "number": number,
                "chat": 8_000_000 + numbers[index - index % 2],
                "text": customer_text(rng),
            }
        )
        for index, number in enumerate(numbers)
    ]
    headers = {"content-type": "application/json"}

    async def send(http: Http, index: int) -> Response:
        return await http.post("/ingest", content=bodies[index], headers=headers)

    if meter:
        meter.start()
    result = await closed_loop(url, send, len(bodies), concurrency, in_order=2)
    if meter:
        meter.stop()
    result.check("raw ingest over HTTP")
    return len(bodies) / result.elapsed


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
        # The first updates and mails of the first runs (a run has at least 20 of each).
        redelivered = min(20, bench.sizes.ingest_messages)
        first_update = bench.state["first_telegram_number"]
        for number in range(first_update, first_update + redelivered):
            response = await http.post(
                f"/channels/telegram/{TELEGRAM_ACCOUNT}/webhook",
                content=telegram_update(number, customer_text(rng)),
                headers=headers,
            )
            response.raise_for_status()
        first_mail = bench.state["first_email_number"]
        for number in range(first_mail, first_mail + redelivered):
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
    bench.facts["redelivery"] = (
        f"{redelivered} telegram updates and {redelivered} mails redelivered: no new rows"
    )


async def run(bench: Bench, logdir: Path) -> None:
    await setup(bench)
    popen, http_url = start_baseline_app(bench.database_url, bench.pool_size, logdir)
    try:
        await _measure(bench, http_url, popen.pid)
    finally:
        popen.terminate()
        popen.wait(30)


async def _measure(bench: Bench, http_url: str, http_pid: int) -> None:
    sizes = bench.sizes
    stored_rates: list[float] = []
    for concurrency in sizes.concurrencies:
        # Where the CPU goes, per message, in the last run of each kind at concurrency 8.
        meters = {
            kind: CpuMeter(bench.api.pid, bench.worker.pid) if concurrency == 8 else None
            for kind in ("raw", "telegram", "email")
        }
        http_meter = CpuMeter(http_pid, bench.worker.pid) if concurrency == 8 else None
        last = sizes.runs - 1
        baseline = [await raw_insert_run(bench, concurrency) for _ in range(sizes.runs)]
        raw_ingest = [
            await raw_ingest_run(bench, concurrency, meters["raw"] if run == last else None)
            for run in range(sizes.runs)
        ]
        over_http = [
            await http_ingest_run(bench, http_url, concurrency, http_meter if run == last else None)
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
        if http_meter is not None:
            split = http_meter.per_item_ms(messages, ("API", "load generator", "PostgreSQL"))
            split["HTTP server"] = split.pop("API")
            bench.facts["cpu_per_message_c8_raw_ingest_over_http"] = describe(split)
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
        bench.add(
            Row(
                "1 ingestion",
                f"raw ingest transaction behind a minimal litestar endpoint, {case}",
                "HTTP ceiling vs ingest transaction",
                "msg/s",
                runs=over_http,
                better="higher",
                baseline_name=ingest_name,
                baseline_runs=raw_ingest,
                note="what HTTP alone costs: the most any HTTP ingestion reaches here"
                if concurrency == 8
                else "",
            )
        )
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
