"""Scenario 6: replies delivered per second to a local SMTP server, through the worker.

Email tickets are opened through the raw intake of an account whose SMTP server is a
local aiosmtpd sink (bench/smtp_sink, its own process); agents reply through the API
and the worker delivers from the outbox. Rate = replies / (first reply request to the
last outbox row `sent`). Baseline: the same number of mails sent straight to the same
sink with aiosmtplib, one connection per mail, at the worker's job concurrency (20).
The sink must have received every mail exactly once.
"""

from __future__ import annotations

import asyncio
import sys
import time
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import httpx

from bench.context import Bench, wait_for
from bench.environment import ROOT, free_port, start_process
from bench.load import Http, Response, closed_loop
from bench.scenarios.ingestion import raw_mail
from bench.stats import Row

ACCOUNT = "bench-out"
SECRET = "bench-outbound-intake-0123456789"  # noqa: S105
REPLY_CONCURRENCY = 8
SMTP_CONCURRENCY = 20  # the worker's max_jobs


async def _open_tickets(bench: Bench, count: int, first_number: int) -> list[int]:
    headers = {"Authorization": f"Bearer {SECRET}", "content-type": "message/rfc822"}
    ids = []
    async with httpx.AsyncClient(base_url=bench.base_url, headers=headers, timeout=60) as http:
        for i in range(count):
            number = first_number + 2 * i  # even: a new conversation each
            response = await http.post(
                f"/channels/email/{ACCOUNT}/inbound",
                content=raw_mail(number, "Dobrý den, kdy dorazí moje objednávka?"),
            )
            response.raise_for_status()
            ids.append(response.json()["ticket_id"])
    return ids


async def _reply_run(bench: Bench, tickets: list[int]) -> float:
    message_ids: list[int] = []

    async def reply(http: Http, index: int) -> Response:
        response = await http.post(
            f"/tickets/{tickets[index]}/replies",
            json={"text": "Dobrý den, objednávka dorazí zítra. S pozdravem, podpora"},
            headers=bench.admin_headers,
        )
        if response.is_success:
            message_ids.append(response.json()["id"])
        return response

    began = time.monotonic()
    result = await closed_loop(bench.base_url, reply, len(tickets), REPLY_CONCURRENCY)
    result.check("reply")

    async def all_sent() -> bool:
        async with bench.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT status, count(*) AS n FROM outbox WHERE message_id = ANY($1::bigint[]) "
                "GROUP BY status",
                message_ids,
            )
        by_status = {r["status"]: r["n"] for r in rows}
        failed = by_status.get("failed", 0) + by_status.get("possibly_sent", 0)
        if failed:
            raise RuntimeError(f"outbound: deliveries failed: {by_status}")
        sent: int = by_status.get("sent", 0)
        return sent == len(tickets)

    done = await wait_for(all_sent, 300, "every reply to be delivered", interval=0.05)
    return len(tickets) / (done - began)


async def _smtp_baseline(port: int, count: int) -> float:
    message = EmailMessage()
    message["From"] = "podpora@bench.example.cz"
    message["To"] = "zakaznik@example.cz"
    message["Subject"] = "Re: [#10001] Dotaz"
    message.set_content("Dobrý den, objednávka dorazí zítra. S pozdravem, podpora")
    counter = iter(range(count))

    async def worker() -> None:
        for _ in counter:
            await aiosmtplib.send(message, hostname="127.0.0.1", port=port, start_tls=False)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(SMTP_CONCURRENCY)))
    return count / (time.perf_counter() - began)


async def run(bench: Bench, logdir: Path) -> None:
    sizes = bench.sizes
    port = free_port()
    count_file = logdir / "smtp-sink.count"
    count_file.write_text("")
    sink = start_process(
        "smtp-sink",
        [
            sys.executable,
            "-m",
            "bench.smtp_sink",
            "--port",
            str(port),
            "--count-file",
            str(count_file),
        ],
        {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
        logdir,
    )
    try:
        await asyncio.sleep(1)
        async with httpx.AsyncClient(base_url=bench.base_url, headers=bench.admin_headers) as http:
            response = await http.post(
                "/channels/email/accounts",
                json={
                    "name": ACCOUNT,
                    "address": "podpora@bench.example.cz",
                    "inbound_secret": SECRET,
                    "auto_acknowledge": False,
                    "smtp_host": "127.0.0.1",
                    "smtp_port": port,
                    "smtp_security": "none",
                },
            )
            response.raise_for_status()
        per_run = sizes.outbound_replies
        tickets = await _open_tickets(bench, per_run * sizes.runs, 900_000_000)
        baseline = [await _smtp_baseline(port, per_run) for _ in range(sizes.runs)]
        rates = [
            await _reply_run(bench, tickets[i * per_run : (i + 1) * per_run])
            for i in range(sizes.runs)
        ]
        await asyncio.sleep(0.5)
        received = len(count_file.read_text().splitlines())
        expected = 2 * per_run * sizes.runs
        if received != expected:
            raise RuntimeError(f"the SMTP sink received {received} mails, expected {expected}")
    finally:
        sink.stop()
    bench.add(
        Row(
            "6 outbound",
            f"email replies via worker, {REPLY_CONCURRENCY} agents replying",
            "delivered",
            "mail/s",
            runs=rates,
            better="higher",
            baseline_name=f"aiosmtplib straight to the sink, c={SMTP_CONCURRENCY}",
            baseline_runs=baseline,
            note="request to SMTP 250, counted by the sink",
        )
    )
