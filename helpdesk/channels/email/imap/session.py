"""One IMAP connection to a mailbox: connect, TLS, log in, SELECT, search, fetch, flag, IDLE."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable
from typing import Any, TypeVar

from aioimaplib import aioimaplib  # type: ignore[import-untyped]

from helpdesk.channels.email.accounts import EmailAccount
from helpdesk.channels.email.imap.protocol import (
    MailboxError,
    failure_reason,
    mailbox_argument,
    new_uids,
    parse_fetched_body,
    parse_search,
    parse_uidvalidity,
    response_text,
    scrub,
    search_range,
)
from helpdesk.config import Settings

T = TypeVar("T")


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
