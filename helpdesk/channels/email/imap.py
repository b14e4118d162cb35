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
import base64
import contextlib
import errno
import logging
import random
import re
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, Literal, TypeVar

import asyncpg
import msgspec
from aioimaplib import aioimaplib  # type: ignore[import-untyped]

from helpdesk.channels.email.accounts import EmailAccount, active_imap_accounts
from helpdesk.channels.email.receive import Receipt, follow_up_jobs, receive
from helpdesk.config import Settings
from helpdesk.db.pool import UNAVAILABLE_ERRORS, connect

log = logging.getLogger(__name__)

T = TypeVar("T")

# The database failing under a mailbox task: it pauses and retries, like an IMAP failure.
DATABASE_ERRORS: tuple[type[BaseException], ...] = (asyncpg.PostgresError, *UNAVAILABLE_ERRORS)
MAX_REASON_LENGTH = 300


class MailboxError(Exception):
    """A mailbox could not be read. The message is short and safe to store and show:
    it never holds the password, and names no host or port (/readyz is public)."""


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


class MailboxState(msgspec.Struct):
    """How the poller of one active mailbox fares (for /readyz)."""

    account: str
    folder: str
    status: Literal["starting", "ok", "failing"]
    last_error: str | None
    failures: int
    last_ok_at: datetime | None


# --- Pure helpers: IMAP responses, the UID range, backoff, reasons -------------------


def search_range(last_uid: int) -> str:
    """The UID set after the cursor, for `UID SEARCH UID <set>`."""
    return f"{last_uid + 1}:*"


def new_uids(found: Iterable[int], last_uid: int) -> list[int]:
    """UIDs above the cursor, ascending and unique.

    `n:*` always matches the highest UID, even when it is below n (RFC 3501 6.4.8), so
    the server's answer is filtered rather than trusted.
    """
    return sorted({uid for uid in found if uid > last_uid})


def parse_search(lines: Sequence[bytes]) -> list[int]:
    """The UIDs of a SEARCH answer as aioimaplib returns it (the last line is the
    completion text; other untagged data never consists of numbers only)."""
    uids: list[int] = []
    for line in lines[:-1]:
        tokens = bytes(line).split()
        if tokens and all(token.isdigit() for token in tokens):
            uids.extend(int(token) for token in tokens)
    return uids


_UIDVALIDITY = re.compile(rb"\[UIDVALIDITY (\d+)\]")
_FETCH = re.compile(rb"^\d+ FETCH \(")
_FETCH_UID = re.compile(rb"\bUID (\d+)")
_LITERAL = re.compile(rb"\{(\d+)\}$")


def parse_uidvalidity(lines: Sequence[bytes]) -> int | None:
    """UIDVALIDITY from the answer to SELECT."""
    for line in lines:
        match = _UIDVALIDITY.search(bytes(line))
        if match:
            return int(match.group(1))
    return None


def parse_fetched_body(lines: Sequence[bytes], uid: int) -> bytes | None:
    """The raw mail of `uid` in the answer to `UID FETCH uid (UID BODY.PEEK[])`.

    aioimaplib returns a literal as the element after the line that announces it
    (`* 1 FETCH (UID 7 BODY[] {1234}`). None when the answer holds no such mail, e.g.
    because it was expunged in the meantime.
    """
    for index, raw_line in enumerate(lines):
        line = bytes(raw_line)
        if not _FETCH.match(line):
            continue
        # UID usually precedes the body; a server may also send it after the literal.
        after = bytes(lines[index + 2]) if index + 2 < len(lines) else b""
        found = _FETCH_UID.search(line) or _FETCH_UID.search(after)
        if found is None or int(found.group(1)) != uid:
            continue
        literal = _LITERAL.search(line)
        if literal and index + 1 < len(lines):
            body = bytes(lines[index + 1])
            if len(body) == int(literal.group(1)):
                return body
        if b"BODY[] NIL" in line:
            return b""
    return None


def backoff_seconds(failures: int, cap: float, base: float = 1.0) -> float:
    """Wait before the next attempt after `failures` failures in a row: 1, 2, 4 ... s,
    never more than `cap`."""
    if failures <= 0:
        return 0.0
    return float(min(cap, base * 2 ** min(failures - 1, 40)))


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """`text` without any of `secrets`, one line, at most MAX_REASON_LENGTH characters."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = " ".join(text.split())
    if len(text) > MAX_REASON_LENGTH:
        text = text[: MAX_REASON_LENGTH - 1] + "…"
    return text


def failure_reason(error: BaseException, step: str) -> str:
    """A short operator-facing reason for an exception raised during `step`.

    Deliberately without the exception's own text where that names the host or port.
    """
    if isinstance(error, ConnectionRefusedError) or (
        isinstance(error, OSError) and error.errno == errno.ECONNREFUSED
    ):
        return f"connection refused ({step})"
    if isinstance(error, (TimeoutError, aioimaplib.CommandTimeout)):
        return f"no answer within the timeout ({step})"
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"TLS certificate not accepted ({step}): {error.verify_message}"
    if isinstance(error, ssl.SSLError):
        return f"TLS failed ({step}): {error.reason or type(error).__name__}"
    if isinstance(error, socket.gaierror):
        return f"host name not found ({step})"
    if isinstance(error, OSError):
        return f"network error ({step}): {error.strerror or type(error).__name__}"
    if isinstance(error, aioimaplib.AioImapException):
        return f"IMAP protocol error ({step}): {error}"
    if isinstance(error, ValueError):  # e.g. a CR or LF in a configured name or password
        return f"invalid IMAP argument ({step})"
    return f"{type(error).__name__} ({step})"


def encode_mailbox_name(name: str) -> str:
    """IMAP's modified UTF-7 (RFC 3501 5.1.3), so folders such as `Zpracováno` work."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            encoded = base64.b64encode("".join(pending).encode("utf-16-be")).rstrip(b"=")
            out.append("&" + encoded.replace(b"/", b",").decode("ascii") + "-")
            pending.clear()

    for char in name:
        if 0x20 <= ord(char) <= 0x7E:
            flush()
            out.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    flush()
    return "".join(out)


def mailbox_argument(name: str) -> str:
    """A folder name as a quoted IMAP string."""
    return str(aioimaplib.quoted(encode_mailbox_name(name)))


def response_text(lines: Sequence[bytes]) -> str:
    """The server's completion text (the last line), e.g. `[TRYCREATE] No such mailbox`."""
    return bytes(lines[-1]).decode("utf-8", "replace") if lines else ""


# --- One IMAP connection --------------------------------------------------------------


class ImapSession:
    """One logged-in IMAP connection with the account's folder selected.

    Every step runs through `_call`, which turns a dropped connection, a timeout or a
    network or protocol error into a MailboxError that names the step.
    """

    def __init__(
        self, account: EmailAccount, settings: Settings, tls_context: ssl.SSLContext | None
    ) -> None:
        self.account = account
        self.uidvalidity = 0
        self._timeout = settings.email.imap_timeout_seconds
        self._tls_context = tls_context
        self._client: Any = None
        self._lost: asyncio.Future[None] | None = None

    @classmethod
    async def open(
        cls,
        account: EmailAccount,
        settings: Settings,
        tls_context: ssl.SSLContext | None = None,
    ) -> ImapSession:
        session = cls(account, settings, tls_context)
        try:
            await session._open()
        except BaseException:
            await session.close()
            raise
        return session

    def _error(self, reason: str) -> MailboxError:
        """A MailboxError without the password, nor the host (a TLS error may name it;
        a bare word such as `mail` is left alone, it could be part of any text)."""
        host = self.account.imap_host or ""
        named_host = host if "." in host or ":" in host else None
        return MailboxError(scrub(reason, [self.account.imap_password, named_host]))

    def _on_connection_lost(self, _: Exception | None) -> None:
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)

    async def _call(self, step: str, operation: Awaitable[T], *, bounded: bool = True) -> T:
        """Await one IMAP operation; fail fast when the connection drops meanwhile.

        aioimaplib leaves a command waiting forever on a closed connection, so each one
        races the connection-lost signal. `bounded` steps get the session's timeout; the
        others time themselves (FETCH has aioimaplib's inactivity timer, so a large mail
        on a slow line is not cut off while bytes keep coming).
        """
        lost = self._lost
        assert lost is not None
        task: asyncio.Future[T] = asyncio.ensure_future(
            asyncio.wait_for(operation, self._timeout if bounded else None)
        )
        waiting: list[asyncio.Future[Any]] = [task, lost]
        try:
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.cancel()
            raise
        if not task.done():
            task.cancel()
            raise self._error(f"the server closed the connection ({step})")
        try:
            return task.result()
        except MailboxError:
            raise
        except Exception as error:  # every way an IMAP step fails becomes MailboxError
            raise self._error(failure_reason(error, step)) from None

    def _expect_ok(self, response: Any, what: str) -> None:
        if response.result != "OK":
            text = response_text(response.lines)
            raise self._error(f"{what} refused by the server: {text}")

    @property
    def capabilities(self) -> set[str]:
        return set(self._client.protocol.capabilities) if self._client is not None else set()

    @property
    def can_idle(self) -> bool:
        return "IDLE" in self.capabilities

    async def _open(self) -> None:
        account = self.account
        if not account.imap_host:
            raise self._error("no IMAP host is configured")
        host = account.imap_host
        port = account.imap_port or (993 if account.imap_security == "tls" else 143)
        loop = asyncio.get_running_loop()
        self._lost = loop.create_future()
        context = None
        if account.imap_security == "tls":
            context = self._tls_context or ssl.create_default_context()
        self._client = aioimaplib.IMAP4(
            host,
            port,
            timeout=self._timeout,
            conn_lost_cb=self._on_connection_lost,
            ssl_context=context,
        )
        await self._call("connect", self._client.wait_hello_from_server(), bounded=False)
        if account.imap_security == "starttls":
            await self._start_tls(host)
        response = await self._call(
            "login",
            self._client.login(
                aioimaplib.quoted(account.imap_username or ""), account.imap_password or ""
            ),
        )
        self._expect_ok(response, "login")
        # The capabilities before login are not the final ones (MOVE, UIDPLUS, IDLE).
        await self._call("CAPABILITY", self._client.protocol.capability())
        response = await self._call(
            "SELECT", self._client.select(mailbox_argument(account.imap_folder))
        )
        self._expect_ok(response, f"SELECT of folder {account.imap_folder!r}")
        uidvalidity = parse_uidvalidity(response.lines)
        if uidvalidity is None:
            raise self._error("the server sent no UIDVALIDITY for the folder")
        self.uidvalidity = uidvalidity

    async def _start_tls(self, host: str) -> None:
        """STARTTLS (aioimaplib has none): upgrade the transport, then forget what was
        said in clear text (buffered input, capabilities)."""
        protocol = self._client.protocol
        if "STARTTLS" not in protocol.capabilities:
            raise self._error("the server does not offer STARTTLS")
        command = aioimaplib.Command("STARTTLS", protocol.new_tag(), loop=protocol.loop)
        response = await self._call("STARTTLS", protocol.execute(command))
        self._expect_ok(response, "STARTTLS")
        protocol.incomplete_line = b""
        transport = await self._call(
            "TLS handshake",
            protocol.loop.start_tls(
                protocol.transport,
                protocol,
                self._tls_context or ssl.create_default_context(),
                server_hostname=host,
                ssl_handshake_timeout=self._timeout,
            ),
        )
        protocol.transport = transport
        await self._call("CAPABILITY", protocol.capability())

    async def search_new(self, last_uid: int) -> list[int]:
        """UIDs above `last_uid`, ascending."""
        response = await self._call(
            "UID SEARCH", self._client.uid_search("UID", search_range(last_uid), charset=None)
        )
        self._expect_ok(response, "UID SEARCH")
        return new_uids(parse_search(response.lines), last_uid)

    async def fetch(self, uid: int) -> bytes | None:
        """The raw mail (without flagging it \\Seen); None when it no longer exists."""
        step = f"UID FETCH {uid}"
        response = await self._call(
            step, self._client.uid("fetch", str(uid), "(UID BODY.PEEK[])"), bounded=False
        )
        self._expect_ok(response, step)
        raw = parse_fetched_body(response.lines, uid)
        if raw is None and uid in await self.search_new(uid - 1):
            # The mail is there but the answer could not be read: never skip it silently.
            raise self._error(f"unreadable answer to {step}")
        return raw

    async def mark_processed(self, uid: int) -> None:
        """Flag or move a stored mail as the account says (after the commit)."""
        processed = self.account.imap_processed
        if processed == "keep":
            return
        await self._store(uid, "+FLAGS.SILENT", r"(\Seen)")
        if processed == "move":
            await self._move(uid, self.account.imap_move_to or "")

    async def _store(self, uid: int, action: str, flags: str) -> None:
        response = await self._call("UID STORE", self._client.uid("store", str(uid), action, flags))
        self._expect_ok(response, "UID STORE")

    async def _move(self, uid: int, folder: str) -> None:
        """UID MOVE, or COPY + \\Deleted + EXPUNGE where MOVE is missing; the target
        folder is created when the server says it does not exist ([TRYCREATE])."""
        target = mailbox_argument(folder)
        verb = "move" if "MOVE" in self.capabilities else "copy"
        step = f"UID {verb.upper()} to {folder!r}"
        response = await self._call(step, self._client.uid(verb, str(uid), target))
        if response.result != "OK" and "[TRYCREATE]" in response_text(response.lines):
            created = await self._call("CREATE", self._client.create(target))
            self._expect_ok(created, f"CREATE of folder {folder!r}")
            response = await self._call(step, self._client.uid(verb, str(uid), target))
        self._expect_ok(response, step)
        if verb == "copy":
            await self._store(uid, "+FLAGS.SILENT", r"(\Deleted)")
            if "UIDPLUS" in self.capabilities:
                expunged = await self._call("UID EXPUNGE", self._client.uid("expunge", str(uid)))
            else:
                expunged = await self._call("EXPUNGE", self._client.expunge())
            self._expect_ok(expunged, "EXPUNGE")

    async def wait_for_mail(self, seconds: float) -> None:
        """Return when the server announces new mail (IDLE) or after `seconds`."""
        if not self.can_idle:
            await self._call("wait", asyncio.sleep(seconds), bounded=False)
            return
        queue = self._client.protocol.idle_queue
        while not queue.empty():  # a stop signal left over from an earlier IDLE
            queue.get_nowait()
        idle = await self._call("IDLE", self._client.idle_start(timeout=seconds))
        try:
            while True:
                pushed = await self._call(
                    "IDLE",
                    self._client.wait_server_push(timeout=seconds + self._timeout),
                    bounded=False,
                )
                if pushed == aioimaplib.STOP_WAIT_SERVER_PUSH:
                    break
                if any(b"EXISTS" in bytes(line) for line in pushed):
                    break
        finally:
            if self._client.has_pending_idle() and not self._is_lost():
                self._client.idle_done()
        response = await self._call("IDLE", idle)
        self._expect_ok(response, "IDLE")

    def _is_lost(self) -> bool:
        return self._lost is None or self._lost.done()

    async def close(self) -> None:
        """Log out when the connection still works, then drop it; never raises."""
        client, self._client = self._client, None
        if client is None:
            return
        protocol = client.protocol
        try:
            if not self._is_lost() and protocol.state in ("NONAUTH", "AUTH", "SELECTED"):
                with contextlib.suppress(Exception):  # best effort: the socket closes anyway
                    await asyncio.wait_for(client.logout(), min(self._timeout, 5.0))
        finally:  # also when cancelled while logging out
            if protocol.transport is not None:
                protocol.transport.close()
            connecting = client._client_task
            if not connecting.done():
                connecting.cancel()
            elif not connecting.cancelled():
                connecting.exception()  # retrieved, so asyncio does not warn about it
            for task in list(client.tasks) + list(protocol.tasks):
                task.cancel()


# --- The cursor ---------------------------------------------------------------------


async def ensure_cursor(conn: asyncpg.Connection, account: EmailAccount) -> None:
    """The mailbox's cursor row exists (status 'starting' when new)."""
    await conn.execute(
        """INSERT INTO imap_cursors (account_id, folder) VALUES ($1, $2)
           ON CONFLICT (account_id, folder) DO NOTHING""",
        account.id,
        account.imap_folder,
    )


async def record_ok(conn: asyncpg.Connection, account: EmailAccount) -> None:
    await conn.execute(
        """UPDATE imap_cursors SET status = 'ok', last_error = NULL, failures = 0,
                  last_ok_at = now(), updated_at = now()
           WHERE account_id = $1 AND folder = $2""",
        account.id,
        account.imap_folder,
    )


async def record_failure(conn: asyncpg.Connection, account: EmailAccount, reason: str) -> int:
    """Mark the mailbox failing with `reason` (already scrubbed); returns the failure count."""
    failures: int = await conn.fetchval(
        """INSERT INTO imap_cursors (account_id, folder, status, last_error, failures)
           VALUES ($1, $2, 'failing', $3, 1)
           ON CONFLICT (account_id, folder) DO UPDATE
           SET status = 'failing', last_error = EXCLUDED.last_error,
               failures = imap_cursors.failures + 1, updated_at = now()
           RETURNING failures""",
        account.id,
        account.imap_folder,
        reason,
    )
    return failures


async def _advance(
    conn: asyncpg.Connection, account: EmailAccount, uidvalidity: int, uid: int
) -> None:
    await conn.execute(
        """UPDATE imap_cursors
           SET last_uid = CASE WHEN uidvalidity = $3 THEN GREATEST(last_uid, $4) ELSE $4 END,
               uidvalidity = $3, updated_at = now()
           WHERE account_id = $1 AND folder = $2""",
        account.id,
        account.imap_folder,
        uidvalidity,
        uid,
    )


async def mailbox_states(conn: asyncpg.Connection) -> list[MailboxState]:
    """Every active IMAP mailbox and how its poller fares; one no poller has touched yet
    (no worker running?) shows as 'starting'."""
    rows = await conn.fetch(
        """SELECT a.name, a.imap_folder, coalesce(c.status, 'starting') AS status,
                  c.last_error, coalesce(c.failures, 0) AS failures, c.last_ok_at
           FROM email_accounts a
           LEFT JOIN imap_cursors c ON c.account_id = a.id AND c.folder = a.imap_folder
           WHERE a.active AND a.imap_host IS NOT NULL
           ORDER BY a.name"""
    )
    return [
        MailboxState(
            account=r["name"],
            folder=r["imap_folder"],
            status=r["status"],
            last_error=r["last_error"],
            failures=r["failures"],
            last_ok_at=r["last_ok_at"],
        )
        for r in rows
    ]


# --- A round -------------------------------------------------------------------------

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
        cursor = await conn.fetchrow(
            "SELECT uidvalidity, last_uid FROM imap_cursors WHERE account_id = $1 AND folder = $2",
            account.id,
            account.imap_folder,
        )
        stored_validity = cursor["uidvalidity"] if cursor else None
        last_uid: int = cursor["last_uid"] if cursor else 0
        changed = stored_validity != session.uidvalidity
        if changed:
            last_uid = 0
            await conn.execute(
                """UPDATE imap_cursors SET uidvalidity = $3, last_uid = 0, updated_at = now()
                   WHERE account_id = $1 AND folder = $2""",
                account.id,
                account.imap_folder,
                session.uidvalidity,
            )
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
            await _advance(conn, account, session.uidvalidity, uid)
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
    held: bool = await conn.fetchval(
        "SELECT pg_try_advisory_lock(hashtextextended($1, 0))", f"imap-mailbox:{account.id}"
    )
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


# --- The poller ------------------------------------------------------------------------


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
                    await lock.fetchval("SELECT 1")  # the lock lives as long as this connection
                    await session.wait_for_mail(
                        email.imap_idle_seconds if session.can_idle else email.imap_poll_seconds
                    )
            finally:
                await session.close()
        finally:
            await _close_quietly(lock)
