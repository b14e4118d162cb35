"""A real SMTP server on loopback for outbound tests: aiosmtpd, served by the test's loop.

It keeps every accepted mail (envelope and raw bytes) and can misbehave on demand:
answer MAIL, RCPT or DATA with any reply (`answer`), stall one of them or QUIT until
released (`stall`, a tarpit; DATA stalls after the content arrived, before the reply),
require AUTH, cut the connection after accepting a mail (`drop_after_data`), or go
down (`stop`: nothing listens any more, open sessions are cut) and come back on the
same port (`start`). Other processes (a `helpdesk worker`) can
use it too, as long as the test awaits something meanwhile.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any, Literal, cast

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

Command = Literal["MAIL", "RCPT", "DATA", "QUIT"]


@dataclass
class Received:
    mail_from: str  # "<>" for an empty reverse path
    rcpt_tos: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        return cast(EmailMessage, BytesParser(policy=policy.default).parsebytes(self.data))


@dataclass
class _Stall:
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    reached: asyncio.Event = field(default_factory=asyncio.Event)


class SmtpTestServer:
    def __init__(self, *, credentials: tuple[str, str] | None = None) -> None:
        self.port = 0
        self.credentials = credentials
        self.received: list[Received] = []
        # Mail content that reached a stalled DATA and was never answered.
        self.unanswered: list[bytes] = []
        self.auth_logins: list[str] = []
        self._answers: dict[str, str] = {}
        self._stalls: dict[str, _Stall] = {}
        self._server: asyncio.Server | None = None
        self._sessions: set[SMTP] = set()
        self._drops = 0

    async def start(self) -> None:
        """Listen on 127.0.0.1 (the same port as before after a `stop`)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._session, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Down: connections are refused and open sessions are cut."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for session in list(self._sessions):
            if session.transport is not None:
                session.transport.close()
        self._sessions.clear()

    def answer(self, command: Command, reply: str | None) -> None:
        """Answer `command` with `reply` (e.g. "451 4.3.0 try later"); None: normally."""
        if reply is None:
            self._answers.pop(command, None)
        else:
            self._answers[command] = reply

    def drop_after_data(self, count: int = 1) -> None:
        """The next `count` mails are accepted (kept in `received`: they reach the
        mailbox) but the connection is cut before the reply to DATA is sent, as when a
        link or a server dies right after queueing a mail."""
        self._drops += count

    def stall(self, command: Command) -> None:
        """Hold every `command` unanswered until `release`."""
        self._stalls[command] = _Stall()

    def release(self, command: Command) -> None:
        stall = self._stalls.pop(command, None)
        if stall is not None:
            stall.gate.set()

    async def wait_stalled(self, command: Command, seconds: float = 120) -> None:
        """Until some client is held at `command` (bounded, for a test that went wrong)."""
        async with asyncio.timeout(seconds):
            await self._stalls[command].reached.wait()

    def stalled(self, command: Command) -> bool:
        stall = self._stalls.get(command)
        return stall is not None and stall.reached.is_set()

    def _session(self) -> SMTP:
        session = SMTP(
            self,
            hostname="smtp.test",
            loop=asyncio.get_running_loop(),
            auth_require_tls=False,
            authenticator=self._authenticate if self.credentials else None,
        )
        self._sessions.add(session)
        return session

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if not isinstance(data, LoginPassword) or self.credentials is None:
            return AuthResult(success=False, handled=False)
        login, password = data.login.decode(), data.password.decode()
        self.auth_logins.append(login)
        return AuthResult(success=(login, password) == self.credentials, handled=False)

    async def _hold(self, command: Command) -> None:
        stall = self._stalls.get(command)
        if stall is not None:
            stall.reached.set()
            await stall.gate.wait()

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        options: list[str],
    ) -> str:
        await self._hold("MAIL")
        if self.credentials and not session.authenticated:
            return "530 5.7.0 Authentication required"
        if "MAIL" in self._answers:
            return self._answers["MAIL"]
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        options: list[str],
    ) -> str:
        await self._hold("RCPT")
        if "RCPT" in self._answers:
            return self._answers["RCPT"]
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = bytes(envelope.original_content or b"")
        if "DATA" in self._stalls:
            self.unanswered.append(content)
        await self._hold("DATA")
        if "DATA" in self._answers:
            return self._answers["DATA"]
        if content in self.unanswered:
            self.unanswered.remove(content)
        self.received.append(Received(str(envelope.mail_from), list(envelope.rcpt_tos), content))
        if self._drops > 0:
            self._drops -= 1
            if server.transport is not None:
                server.transport.abort()  # accepted, and the answer never leaves
        return "250 2.0.0 OK queued"

    async def handle_QUIT(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        await self._hold("QUIT")
        return "221 2.0.0 Bye"

    def open_sessions(self) -> int:
        """Client connections still open (a client that hung up is gone at once)."""
        return sum(
            1 for s in self._sessions if s.transport is not None and not s.transport.is_closing()
        )


def only(received: list[Received]) -> Received:
    """The one mail the server received (asserts there was exactly one)."""
    assert len(received) == 1, received
    return received[0]
