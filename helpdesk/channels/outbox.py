"""Transactional outbox: a reply and its delivery row commit together.

States: pending -> sending -> sent | retrying(next_attempt_at, reason) | failed(reason),
and possibly_sent when a worker died holding the lease after handing the message to
the provider (providers take no idempotency key, so a blind resend could reach the
customer twice). A worker that died before the hand-off sent nothing: that delivery
is simply retried.

`attempts` counts every claim over the row's whole life: arq job ids and the fencing
below are derived from it, so it never goes back. An agent's retry of a failed
delivery (`requeue_failed`) moves `attempts_base` up to it instead, and the limit and
the backoff count only the attempts since (`attempts - attempts_base`).

No database connection is held while a sender talks to its provider (a tarpitting
SMTP server must not starve the pool). Every write after the claim is fenced by the
attempt number, so a worker that lost its lease cannot overwrite its successor.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import NamedTuple

import asyncpg

from helpdesk.channels import queries
from helpdesk.channels.base import (
    DeliveryLeaseLost,
    OutboundDelivery,
    PermanentDeliveryError,
    PossiblySentError,
    RetryableDeliveryError,
    Sender,
)
from helpdesk.channels.chat import ChatSender
from helpdesk.channels.email import outbound as email_outbound
from helpdesk.channels.email.smtp import EmailSender
from helpdesk.channels.registry import chat_kinds
from helpdesk.config import Settings, SlaSettings
from helpdesk.sla import recording as sla_recording
from helpdesk.tickets import writer

log = logging.getLogger(__name__)

DELIVER_JOB = "deliver_outbox"


class ApiChannelSender:
    """Tickets opened through the API are read back through the API: stored means delivered."""

    async def send(self, delivery: OutboundDelivery) -> str | None:
        return None


def senders(pool: asyncpg.Pool, settings: Settings) -> dict[str, Sender]:
    """Senders by channel. A channel without one fails its deliveries visibly."""
    found: dict[str, Sender] = {"api": ApiChannelSender(), "email": EmailSender(pool, settings)}
    for kind in chat_kinds():
        found[kind] = ChatSender(pool, settings, kind)
    return found


def job_id(outbox_id: int, attempts: int) -> str:
    """Deterministic arq job id: one job per delivery attempt, however often enqueued."""
    return f"outbox:{outbox_id}:{attempts}"


async def add(conn: asyncpg.Connection, message_id: int, ticket_id: int, channel: str) -> int:
    """Queue the delivery of `message_id`, in the caller's transaction: the one way to send.

    Email also fixes the message's account, Message-ID and recipients now, so that
    every attempt sends the same mail.
    """
    outbox_id: int = await conn.fetchval(queries.ADD_DELIVERY, message_id, ticket_id, channel)
    if channel == "email":
        await email_outbound.prepare(conn, outbox_id, message_id)
    return outbox_id


def backoff(attempts: int) -> timedelta:
    """Exponential backoff: 10 s, 20 s, 40 s ... capped at one hour."""
    return timedelta(seconds=min(10 * 2 ** max(attempts - 1, 0), 3600))


async def _finish(
    pool: asyncpg.Pool,
    row: asyncpg.Record,
    status: str,
    error: str | None,
    external_id: str | None = None,
    delay: timedelta | None = None,
    sla: SlaSettings | None = None,
) -> bool:
    """Record the outcome of this attempt; False if the row has moved on without us.

    A 'possibly_sent' row still takes the outcome: a worker that outlived its lease
    knows better than the relay's guess. A reply that failed for good is withdrawn as a
    response in the same transaction (see `_withdraw_failed`).
    """
    async with pool.acquire() as conn, conn.transaction():
        if status == "failed" and sla is not None:
            # The ticket first, as every writer of a ticket's messages locks it.
            await conn.execute(queries.LOCK_TICKET, row["ticket_id"])
        message_id = await conn.fetchval(
            queries.FINISH_DELIVERY,
            row["id"],
            status,
            error,
            delay or timedelta(0),
            row["attempts"],
        )
        if message_id is None:
            return False
        await conn.execute(
            queries.SET_DELIVERY_STATUS,
            message_id,
            status,
            error,
            external_id,
        )
        if status == "failed":
            await _withdraw_failed(conn, [(message_id, error)], sla)
    return True


async def _withdraw_failed(
    conn: asyncpg.Connection, failed: list[tuple[int, str | None]], sla: SlaSettings | None
) -> None:
    """Replies that never reached the customer are no response (docs/sla.md 1.4): withdrawn at
    once, in the caller's transaction. Without the SLA settings (a caller from before),
    the SLA check is made due now and recomputes the clocks without them."""
    for message_id, reason in failed:
        if sla is not None:
            await sla_recording.withdraw_reply(conn, message_id, reason, sla)
        else:
            await writer.recheck_sla_now(conn, message_id)


async def deliver(
    pool: asyncpg.Pool,
    senders: dict[str, Sender],
    outbox_id: int,
    lease: timedelta,
    max_attempts: int,
    sla: SlaSettings | None = None,
) -> tuple[str, str] | None:
    """Claim and send one delivery; returns (channel, new status), or None if not ours.

    Safe to run twice: only a row still waiting and due can be claimed.
    """
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(queries.CLAIM_DELIVERY, outbox_id, lease)
        if row is None:
            return None
        await conn.execute(queries.MESSAGE_SENDING, row["message_id"])
    status = await _send(pool, senders.get(row["channel"]), row, max_attempts, sla)
    return None if status is None else (row["channel"], status)


def _delivery(pool: asyncpg.Pool, row: asyncpg.Record) -> OutboundDelivery:
    """What the sender gets, with a hand-off that only the current attempt can make."""

    async def handoff() -> None:
        """Mark the point of no return, if the delivery is still this attempt's."""
        async with pool.acquire() as conn:
            ours = await conn.fetchval(queries.HAND_OFF, row["id"], row["attempts"])
        if not ours:
            raise DeliveryLeaseLost(f"outbox {row['id']} attempt {row['attempts']}")

    return OutboundDelivery(
        outbox_id=row["id"],
        message_id=row["message_id"],
        ticket_id=row["ticket_id"],
        ticket_number=row["number"],
        channel=row["channel"],
        subject=row["subject"],
        text=row["body_text"],
        customer_id=row["customer_id"],
        handoff=handoff,
    )


async def _send(
    pool: asyncpg.Pool,
    sender: Sender | None,
    row: asyncpg.Record,
    max_attempts: int,
    sla: SlaSettings | None,
) -> str | None:
    if sender is None:
        reason = f"no sender is configured for channel '{row['channel']}'"
        return await _outcome(pool, row, "failed", reason, sla=sla)
    try:
        external_id = await sender.send(_delivery(pool, row))
    except PermanentDeliveryError as exc:
        return await _outcome(pool, row, "failed", exc.reason, sla=sla)
    except PossiblySentError as exc:  # lost after the hand-off: shown, never resent
        return await _outcome(pool, row, "possibly_sent", exc.reason)
    except RetryableDeliveryError as exc:
        return await _retry_or_fail(pool, row, exc.reason, exc.retry_after, max_attempts, sla)
    except DeliveryLeaseLost:
        log.warning("delivery taken over after its lease expired", extra={"outbox_id": row["id"]})
        return None
    except Exception as exc:
        log.exception("sender crashed", extra={"outbox_id": row["id"]})
        reason = f"sender error: {type(exc).__name__}"
        return await _retry_or_fail(pool, row, reason, None, max_attempts, sla)
    return await _outcome(pool, row, "sent", None, external_id)


async def _outcome(
    pool: asyncpg.Pool,
    row: asyncpg.Record,
    status: str,
    error: str | None,
    external_id: str | None = None,
    delay: timedelta | None = None,
    sla: SlaSettings | None = None,
) -> str | None:
    if await _finish(pool, row, status, error, external_id, delay, sla):
        return status
    log.warning("delivery outcome not recorded: the row moved on", extra={"outbox_id": row["id"]})
    return None


async def _retry_or_fail(
    pool: asyncpg.Pool,
    row: asyncpg.Record,
    reason: str,
    retry_after: float | None,
    max_attempts: int,
    sla: SlaSettings | None = None,
) -> str | None:
    tried = row["attempts"] - row["attempts_base"]  # since the agent's last retry, if any
    if tried >= max_attempts:
        return await _outcome(
            pool, row, "failed", f"gave up after {tried} attempts: {reason}", sla=sla
        )
    delay = timedelta(seconds=retry_after) if retry_after else backoff(tried)
    return await _outcome(pool, row, "retrying", reason, delay=delay)


NOT_HANDED_OFF = "the worker stopped before handing the message over; it was not sent"
POSSIBLY_SENT = "the worker stopped during delivery; it may or may not have reached the customer"


class ExpiredLeases(NamedTuple):
    retried: int  # never handed over: due again now (or failed after max_attempts)
    possibly_sent: int  # handed over, outcome unknown: shown, never resent


async def expire_abandoned_leases(
    conn: asyncpg.Connection, max_attempts: int, sla: SlaSettings | None = None
) -> ExpiredLeases:
    """Deliveries whose worker died mid-send: retried if they never reached the provider.

    Only a delivery whose sender had passed its hand-off point becomes the visible
    'possibly_sent'; the others are due again at once, as if the attempt had failed.
    """
    async with conn.transaction():
        retried = await conn.fetch(queries.EXPIRE_NOT_HANDED_OFF, NOT_HANDED_OFF, max_attempts)
        possibly = await conn.fetch(queries.EXPIRE_HANDED_OFF, POSSIBLY_SENT)
        changed = [*retried, *possibly]
        await conn.execute(
            queries.SET_DELIVERY_STATUSES,
            [r["message_id"] for r in changed],
            [r["status"] for r in changed],
            [r["last_error"] for r in changed],
        )
        failed = [(r["message_id"], r["last_error"]) for r in retried if r["status"] == "failed"]
        await _withdraw_failed(conn, failed, sla)
    return ExpiredLeases(len(retried), len(possibly))


# A due delivery still waiting this long after it became due has a job that will not
# run: lost with Redis, or held by arq under its id (the in-progress mark of a killed
# worker, or the kept result of a run that failed on a lost database connection).
OVERDUE_SECONDS = 30


async def due_deliveries(conn: asyncpg.Connection, limit: int = 500) -> list[asyncpg.Record]:
    """Deliveries waiting for a job: `overdue` ones need a job id of their own."""
    return list(await conn.fetch(queries.DUE_DELIVERIES, limit, OVERDUE_SECONDS))


class Requeued(NamedTuple):
    outbox_id: int
    attempts: int  # unchanged: `job_id(outbox_id, attempts)` names a job never used


async def requeue_failed(conn: asyncpg.Connection, message_id: int) -> Requeued | None:
    """Queue a delivery that failed for good once more (an agent's retry), in the caller's
    transaction; None when the message's delivery has not failed.

    The retried delivery gets a fresh set of attempts with backoff, as a new one does
    (a greylisting 4xx or a provider's 429 on the first try is retried, not failed again
    at once): `attempts_base` moves up to the attempts made so far. `attempts` itself
    goes on counting, so the job id of every attempt from here is one no earlier attempt
    used (arq refuses an id while it keeps that job's result). Email resends the same
    prepared mail.
    """
    failed = await conn.fetchval(queries.REQUEUE_MESSAGE, message_id)
    if not failed:
        return None
    row = await conn.fetchrow(queries.REQUEUE_DELIVERY, message_id)
    return None if row is None else Requeued(row["id"], row["attempts"])


def relay_job_id(row: asyncpg.Record, now: float) -> str:
    """The attempt's own id while it is fresh (so the relay and the enqueue after commit
    make one job); once overdue, a new id every OVERDUE_SECONDS, since arq keeps
    refusing the old one. A second job is harmless: only one run can claim the row."""
    base = job_id(row["id"], row["attempts"])
    return f"{base}:relay:{int(now) // OVERDUE_SECONDS}" if row["overdue"] else base
