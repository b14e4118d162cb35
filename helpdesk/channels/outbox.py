"""Transactional outbox: a reply and its delivery row commit together.

States: pending -> sending -> sent | retrying(next_attempt_at, reason) | failed(reason),
and possibly_sent when a worker died holding the lease (providers take no idempotency
key, so a blind resend could reach the customer twice).
"""

from __future__ import annotations

import logging
from datetime import timedelta

import asyncpg

from helpdesk.channels.base import (
    OutboundDelivery,
    PermanentDeliveryError,
    RetryableDeliveryError,
    Sender,
)

log = logging.getLogger(__name__)

DELIVER_JOB = "deliver_outbox"


def job_id(outbox_id: int, attempts: int) -> str:
    """Deterministic arq job id: one job per delivery attempt, however often enqueued."""
    return f"outbox:{outbox_id}:{attempts}"


async def add(conn: asyncpg.Connection, message_id: int, ticket_id: int, channel: str) -> int:
    outbox_id: int = await conn.fetchval(
        "INSERT INTO outbox (message_id, ticket_id, channel) VALUES ($1, $2, $3) RETURNING id",
        message_id,
        ticket_id,
        channel,
    )
    return outbox_id


def backoff(attempts: int) -> timedelta:
    """Exponential backoff: 10 s, 20 s, 40 s ... capped at one hour."""
    return timedelta(seconds=min(10 * 2 ** max(attempts - 1, 0), 3600))


async def _finish(
    conn: asyncpg.Connection,
    outbox_id: int,
    message_id: int,
    status: str,
    error: str | None,
    external_id: str | None = None,
    delay: timedelta | None = None,
) -> None:
    async with conn.transaction():
        await conn.execute(
            """UPDATE outbox SET status = $2, last_error = $3, locked_until = NULL,
                   next_attempt_at = now() + $4::interval, updated_at = now()
               WHERE id = $1""",
            outbox_id,
            status,
            error,
            delay or timedelta(0),
        )
        await conn.execute(
            """UPDATE messages SET delivery_status = $2, delivery_error = $3,
                   external_id = coalesce($4, external_id)
               WHERE id = $1""",
            message_id,
            status,
            error,
            external_id,
        )


async def deliver(
    pool: asyncpg.Pool,
    senders: dict[str, Sender],
    outbox_id: int,
    lease: timedelta,
    max_attempts: int,
) -> tuple[str, str] | None:
    """Claim and send one delivery; returns (channel, new status), or None if not ours.

    Safe to run twice: only a row still waiting and due can be claimed.
    """
    async with pool.acquire() as conn:
        async with conn.transaction():
            row = await conn.fetchrow(
                """
                UPDATE outbox o SET status = 'sending', attempts = attempts + 1,
                       locked_until = now() + $2::interval, updated_at = now()
                FROM messages m JOIN tickets t ON t.id = m.ticket_id
                WHERE o.id = $1 AND m.id = o.message_id
                  AND o.status IN ('pending', 'retrying') AND o.next_attempt_at <= now()
                RETURNING o.id, o.attempts, o.channel, m.id AS message_id, m.body_text,
                          t.id AS ticket_id, t.number, t.subject, t.customer_id
                """,
                outbox_id,
                lease,
            )
            if row is None:
                return None
            await conn.execute(
                "UPDATE messages SET delivery_status = 'sending' WHERE id = $1",
                row["message_id"],
            )
        return row["channel"], await _send(conn, senders.get(row["channel"]), row, max_attempts)


async def _send(
    conn: asyncpg.Connection, sender: Sender | None, row: asyncpg.Record, max_attempts: int
) -> str:
    if sender is None:
        reason = f"no sender is configured for channel '{row['channel']}'"
        await _finish(conn, row["id"], row["message_id"], "failed", reason)
        return "failed"
    delivery = OutboundDelivery(
        outbox_id=row["id"],
        message_id=row["message_id"],
        ticket_id=row["ticket_id"],
        ticket_number=row["number"],
        channel=row["channel"],
        subject=row["subject"],
        text=row["body_text"],
        customer_id=row["customer_id"],
    )
    try:
        external_id = await sender.send(delivery)
    except PermanentDeliveryError as exc:
        await _finish(conn, row["id"], row["message_id"], "failed", exc.reason)
        return "failed"
    except RetryableDeliveryError as exc:
        return await _retry_or_fail(conn, row, exc.reason, exc.retry_after, max_attempts)
    except Exception as exc:
        log.exception("sender crashed", extra={"outbox_id": row["id"]})
        reason = f"sender error: {type(exc).__name__}"
        return await _retry_or_fail(conn, row, reason, None, max_attempts)
    await _finish(conn, row["id"], row["message_id"], "sent", None, external_id)
    return "sent"


async def _retry_or_fail(
    conn: asyncpg.Connection,
    row: asyncpg.Record,
    reason: str,
    retry_after: float | None,
    max_attempts: int,
) -> str:
    if row["attempts"] >= max_attempts:
        await _finish(
            conn,
            row["id"],
            row["message_id"],
            "failed",
            f"gave up after {row['attempts']} attempts: {reason}",
        )
        return "failed"
    delay = timedelta(seconds=retry_after) if retry_after else backoff(row["attempts"])
    await _finish(conn, row["id"], row["message_id"], "retrying", reason, delay=delay)
    return "retrying"


async def expire_abandoned_leases(conn: asyncpg.Connection) -> int:
    """Deliveries whose worker died mid-send become visibly 'possibly_sent'."""
    reason = "the worker stopped during delivery; it may or may not have reached the customer"
    async with conn.transaction():
        rows = await conn.fetch(
            """UPDATE outbox SET status = 'possibly_sent', last_error = $1, locked_until = NULL,
                   updated_at = now()
               WHERE status = 'sending' AND locked_until < now()
               RETURNING message_id""",
            reason,
        )
        await conn.execute(
            """UPDATE messages SET delivery_status = 'possibly_sent', delivery_error = $2
               WHERE id = ANY($1::bigint[])""",
            [r["message_id"] for r in rows],
            reason,
        )
    return len(rows)


async def due_deliveries(conn: asyncpg.Connection, limit: int = 500) -> list[asyncpg.Record]:
    return list(
        await conn.fetch(
            """SELECT id, attempts FROM outbox
           WHERE status IN ('pending', 'retrying') AND next_attempt_at <= now()
           ORDER BY next_attempt_at LIMIT $1""",
            limit,
        )
    )
