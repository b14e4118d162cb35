"""IMAP poller: the mail of every active account with an IMAP host becomes tickets, once.

A round on one mailbox: connect, log in, SELECT the folder and compare its UIDVALIDITY
with the stored cursor (a new one voids every UID, RFC 3501 2.3.1.1: rescan from 0 and
let `receive()` drop what is already stored), search the UIDs above the cursor and FETCH
at most `imap_batch_size` of them in UID order with BODY.PEEK (reading flags nothing).
Each mail is imported by `receive()` and the cursor advanced in the same transaction;
only after the commit is the mail flagged \\Seen, moved or left alone on the server. So a
crash between the commit and the flag never imports it twice (zammad#1662: the cursor is
past it, and `receive()` dedupes by Message-ID anyway), and a connection dropped in the
middle of a FETCH leaves the cursor before that mail, which the next round fetches again.

`MailPoller` runs one task per mailbox in the worker process and re-reads the accounts
periodically. A task holds a PostgreSQL session advisory lock on a dedicated connection
while it polls, so one process polls a mailbox at a time; between rounds it waits in IDLE
(woken by new mail) or sleeps `imap_poll_seconds`. A failure is recorded on the cursor
row (status 'failing', a short reason without secrets, shown by /readyz), logged, and
retried with exponential backoff capped at `imap_backoff_max_seconds`; other mailboxes
are not affected.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import msgspec

from helpdesk.channels.email import queries
from helpdesk.channels.email.accounts import EmailAccount, active_imap_accounts
from helpdesk.channels.email.imap.cursor import (
    advance_cursor,
    ensure_cursor,
    read_cursor,
    record_failure,
    record_ok,
    restart_cursor,
)
from helpdesk.channels.email.imap.protocol import MailboxError, backoff_seconds
from helpdesk.channels.email.imap.session import ImapSession
from helpdesk.channels.email.receive import Receipt, follow_up_jobs, receive
from helpdesk.config import Settings
from helpdesk.db.pool import UNAVAILABLE_ERRORS, connect

log = logging.getLogger(__name__)


# The database failing under a mailbox task: it pauses and retries, like an IMAP failure.
DATABASE_ERRORS: tuple[type[BaseException], ...] = (asyncpg.PostgresError, *UNAVAILABLE_ERRORS)


class MailboxBusy(Exception):
    """Another worker process polls this mailbox right now (it holds the advisory lock)."""


class PollResult(msgspec.Struct, kw_only=True):
    """What one round (one bounded batch) did on one mailbox."""

    uidvalidity: int
    last_uid: int  # the cursor after the round
    imported: int = 0
    duplicates: int = 0
    bounces: int = 0
    quarantined: int = 0
    more: bool = False  # mail above the cursor was left for the next batch
    rescanned: bool = False  # UIDVALIDITY changed: the folder was read again from UID 1


OnReceipt = Callable[[Receipt], Awaitable[None]]


async def sync_batch(
    pool: asyncpg.Pool,
    settings: Settings,
    account: EmailAccount,
    session: ImapSession,
    *,
    on_receipt: OnReceipt | None = None,
) -> PollResult:
    """Import at most `imap_batch_size` new mails of the selected folder, oldest first.

    Each mail is stored and the cursor advanced in one transaction; the mail is marked
    on the server only after that commit. `on_receipt` runs after each commit (to
    enqueue what the mail queued).
    """
    async with pool.acquire() as conn:
        await ensure_cursor(conn, account)
        stored_validity, last_uid = await read_cursor(conn, account)
        changed = stored_validity != session.uidvalidity
        if changed:
            last_uid = 0
            await restart_cursor(conn, account, session.uidvalidity)
            if stored_validity is not None:
                log.warning(
                    "IMAP folder has a new UIDVALIDITY; reading it again from the start",
                    extra={"account": account.name, "folder": account.imap_folder},
                )
    found = await session.search_new(last_uid)
    batch = found[: settings.email.imap_batch_size]
    result = PollResult(
        uidvalidity=session.uidvalidity,
        last_uid=last_uid,
        more=len(found) > len(batch),
        rescanned=changed and stored_validity is not None,
    )
    for uid in batch:
        raw = await session.fetch(uid)
        receipt: Receipt | None = None
        async with pool.acquire() as conn, conn.transaction():
            if raw is not None:
                receipt = await receive(conn, settings, account, raw, source="imap")
            await advance_cursor(conn, account, session.uidvalidity, uid)
        result.last_uid = uid
        if receipt is None:
            log.info(
                "IMAP mail vanished before it was fetched",
                extra={"account": account.name, "uid": uid},
            )
            continue
        _count(result, receipt)
        log.info(
            "IMAP mail received",
            extra={
                "account": account.name,
                "uid": uid,
                "outcome": receipt.outcome,
                "ticket_id": receipt.ticket_id,
            },
        )
        if on_receipt is not None:
            await on_receipt(receipt)
        await session.mark_processed(uid)
    return result


def _count(result: PollResult, receipt: Receipt) -> None:
    if receipt.outcome == "stored":
        result.imported += 1
    elif receipt.outcome == "duplicate":
        result.duplicates += 1
    elif receipt.outcome == "bounce":
        result.bounces += 1
    else:
        result.quarantined += 1


async def _try_lock(conn: asyncpg.Connection, account: EmailAccount) -> bool:
    """The session advisory lock of the mailbox; held until `conn` closes."""
    held: bool = await conn.fetchval(queries.TRY_LOCK_MAILBOX, f"imap-mailbox:{account.id}")
    return held


async def _close_quietly(conn: asyncpg.Connection) -> None:
    """Close a lock connection (which releases its locks), even a broken one."""
    if conn.is_closed():
        return
    try:
        await asyncio.wait_for(conn.close(), 5)
    except DATABASE_ERRORS:
        conn.terminate()


async def poll_once(
    pool: asyncpg.Pool,
    settings: Settings,
    account: EmailAccount,
    *,
    tls_context: ssl.SSLContext | None = None,
    on_receipt: OnReceipt | None = None,
) -> PollResult:
    """One round on `account`, as the poller runs it: lock, connect, one batch, log out.

    Records the outcome on the cursor row. Raises MailboxError (already recorded) when
    the mailbox cannot be read, MailboxBusy when another process polls it.
    `tls_context` replaces the system's trust store (tests with their own CA).
    """
    lock = await connect(settings.database_url)
    try:
        if not await _try_lock(lock, account):
            raise MailboxBusy(account.name)
        try:
            session = await ImapSession.open(account, settings, tls_context)
            try:
                result = await sync_batch(pool, settings, account, session, on_receipt=on_receipt)
            finally:
                await session.close()
        except MailboxError as error:
            async with pool.acquire() as conn:
                await record_failure(conn, account, str(error))
            raise
        async with pool.acquire() as conn:
            await record_ok(conn, account)
        return result
    finally:
        await _close_quietly(lock)


class MailPoller:
    """Polls every active IMAP account, one task per mailbox, until stopped.

    The account list is re-read every `refresh_seconds`: a new account gets a task, a
    changed one (host, password, folder ...) a fresh task, a deactivated one none.
    `redis` (arq) gets the deliveries a mail queued (acknowledgements); without it, or
    when Redis is down, the outbox relay sends them.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: Settings,
        *,
        redis: Any = None,
        refresh_seconds: float = 60.0,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.pool = pool
        self.settings = settings
        self.redis = redis
        self.refresh_seconds = refresh_seconds
        self.tls_context = tls_context
        self._mailboxes: dict[int, tuple[EmailAccount, asyncio.Task[None]]] = {}
        self._ending: set[asyncio.Task[None]] = set()  # cancelled, still cleaning up
        self._supervisor: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._supervisor is None:
            self._supervisor = asyncio.create_task(self._supervise(), name="imap-poller")

    async def stop(self) -> None:
        """Cancel every task; each logs out of its server and releases its lock."""
        if self._supervisor is not None:
            self._supervisor.cancel()
            await asyncio.gather(self._supervisor, return_exceptions=True)
            self._supervisor = None
        tasks = [task for _, task in self._mailboxes.values()] + list(self._ending)
        self._mailboxes.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def polled_accounts(self) -> set[int]:
        """Ids of the accounts whose mailbox task is running."""
        return {key for key, (_, task) in self._mailboxes.items() if not task.done()}

    async def _supervise(self) -> None:
        while True:
            try:
                async with self.pool.acquire() as conn:
                    accounts = await active_imap_accounts(conn)
            except DATABASE_ERRORS as error:
                log.warning(
                    "IMAP poller cannot read the accounts; keeping the current ones",
                    extra={"error": type(error).__name__},
                )
            else:
                await self._reconcile(accounts)
            await asyncio.sleep(self.refresh_seconds)

    async def _reconcile(self, accounts: list[EmailAccount]) -> None:
        wanted = {account.id: account for account in accounts}
        ended: list[asyncio.Task[None]] = []
        for account_id, (account, task) in list(self._mailboxes.items()):
            if wanted.get(account_id) == account and not task.done():
                continue
            if task.done() and not task.cancelled() and task.exception() is not None:
                log.error(
                    "IMAP mailbox task crashed; restarting it",
                    extra={"account": account.name},
                    exc_info=task.exception(),
                )
            task.cancel()
            ended.append(task)
            del self._mailboxes[account_id]
        # The old task must have released the mailbox's lock before its successor starts.
        self._ending.update(ended)
        await asyncio.gather(*ended, return_exceptions=True)
        self._ending.difference_update(ended)
        for account_id, account in wanted.items():
            if account_id not in self._mailboxes:
                task = asyncio.create_task(
                    _MailboxLoop(self, account).run(), name=f"imap:{account.name}"
                )
                self._mailboxes[account_id] = (account, task)

    async def enqueue(self, receipt: Receipt) -> None:
        if self.redis is None:
            return
        for function, argument, job_id in follow_up_jobs(receipt):
            try:
                await self.redis.enqueue_job(function, argument, _job_id=job_id)
            except Exception:  # Redis down: the relay or the sweep picks the row up later
                log.warning("enqueue failed; left for the relay", extra={"job": function})


class _MailboxLoop:
    """Polls one mailbox for as long as its task lives; failures back off, never end it."""

    def __init__(self, poller: MailPoller, account: EmailAccount) -> None:
        self.poller = poller
        self.account = account
        self.failures = 0

    async def run(self) -> None:
        email = self.poller.settings.email
        while True:
            try:
                await self._hold_and_poll()
                delay = email.imap_poll_seconds  # another process holds the mailbox
            except MailboxError as error:
                self.failures += 1
                delay = self._backoff()
                await self._record_failure(str(error))
                log.warning(
                    "IMAP mailbox failing",
                    extra={
                        "account": self.account.name,
                        "reason": str(error),
                        "failures": self.failures,
                        "retry_in_seconds": round(delay, 1),
                    },
                )
            except DATABASE_ERRORS as error:
                self.failures += 1
                delay = self._backoff()
                log.warning(
                    "IMAP mailbox paused: database unavailable",
                    extra={"account": self.account.name, "error": type(error).__name__},
                )
            await asyncio.sleep(delay)

    def _backoff(self) -> float:
        cap = self.poller.settings.email.imap_backoff_max_seconds
        # Jitter, so mailboxes on one failed server do not retry in lockstep.
        return backoff_seconds(self.failures, cap) * random.uniform(0.8, 1.0)  # noqa: S311

    async def _record_failure(self, reason: str) -> None:
        try:
            async with self.poller.pool.acquire() as conn:
                await record_failure(conn, self.account, reason)
        except DATABASE_ERRORS:
            log.warning("IMAP mailbox failure not recorded: database unavailable")

    async def _hold_and_poll(self) -> None:
        """Poll while holding the mailbox's lock; returns at once if another has it."""
        poller, account = self.poller, self.account
        email = poller.settings.email
        async with poller.pool.acquire() as conn:
            await ensure_cursor(conn, account)
        lock = await connect(poller.settings.database_url)
        try:
            if not await _try_lock(lock, account):
                log.debug("IMAP mailbox polled by another process", extra={"account": account.name})
                return
            session = await ImapSession.open(account, poller.settings, poller.tls_context)
            try:
                while True:
                    result = await sync_batch(
                        poller.pool, poller.settings, account, session, on_receipt=poller.enqueue
                    )
                    async with poller.pool.acquire() as conn:
                        await record_ok(conn, account)
                    self.failures = 0
                    if result.more:
                        continue  # a backlog: the next batch at once
                    await lock.fetchval(queries.PING)  # the lock lives as long as this connection
                    await session.wait_for_mail(
                        email.imap_idle_seconds if session.can_idle else email.imap_poll_seconds
                    )
            finally:
                await session.close()
        finally:
            await _close_quietly(lock)
