"""The demo's outgoing mail server: a local SMTP sink that keeps every mail as a file.

`helpdesk run` with the demo on starts it on 127.0.0.1 and points the demo email account
at it, so acknowledgements, agent replies and satisfaction surveys are really delivered
over SMTP (the outbox shows them `sent`) and can be read as `.eml` files under
`<data_dir>/demo-mail/`; nothing leaves the machine. Development only: no TLS, no AUTH,
no relaying anywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import re
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from helpdesk.demo import queries

log = logging.getLogger("helpdesk.demo.mail")

# One mail at most this big (the service's own limit on outgoing mail is lower).
MAX_BYTES = 64 * 1024 * 1024
_ADDRESS = re.compile(rb"^(MAIL FROM|RCPT TO):\s*<([^>]*)>", re.IGNORECASE)


class MailSink:
    """An SMTP server on loopback that writes each accepted mail to `directory`."""

    def __init__(self, directory: Path, host: str = "127.0.0.1", port: int = 0) -> None:
        self.directory = directory
        self.host = host
        self.port = port
        self.saved: list[Path] = []
        self._server: asyncio.Server | None = None
        self._numbers = itertools.count(1)

    async def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._server = await asyncio.start_server(self._session, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def say(line: str) -> None:
            writer.write(line.encode() + b"\r\n")
            await writer.drain()

        sender, recipients = "", list[str]()
        try:
            await say("220 helpdesk demo mail sink")
            while line := await reader.readline():
                verb = line[:4].upper()
                if verb == b"EHLO":
                    await say("250-helpdesk demo mail sink\r\n250-8BITMIME\r\n250 SMTPUTF8")
                elif verb == b"HELO":
                    await say("250 helpdesk demo mail sink")
                elif verb in (b"MAIL", b"RCPT"):
                    match = _ADDRESS.match(line)
                    if match is None:
                        await say("501 syntax: MAIL FROM:<address> / RCPT TO:<address>")
                    elif verb == b"MAIL":
                        sender, recipients = match.group(2).decode(errors="replace"), []
                        await say("250 OK")
                    else:
                        recipients.append(match.group(2).decode(errors="replace"))
                        await say("250 OK")
                elif verb == b"DATA":
                    if not recipients:
                        await say("503 RCPT first")
                        continue
                    await say("354 end with <CRLF>.<CRLF>")
                    data = await self._data(reader)
                    if data is None:
                        await say("552 message too big")
                    else:
                        self._save(sender, recipients, data)
                        await say("250 OK saved")
                    sender, recipients = "", []
                elif verb == b"RSET":
                    sender, recipients = "", []
                    await say("250 OK")
                elif verb == b"NOOP":
                    await say("250 OK")
                elif verb == b"QUIT":
                    await say("221 bye")
                    break
                else:
                    await say("502 not implemented")
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    @staticmethod
    async def _data(reader: asyncio.StreamReader) -> bytes | None:
        """The mail up to the lone dot, dot-stuffing undone; None if it is too big."""
        lines: list[bytes] = []
        size = 0
        while True:
            line = await reader.readline()
            if not line:
                raise asyncio.IncompleteReadError(b"", None)
            if line in (b".\r\n", b".\n"):
                break
            size += len(line)
            if size <= MAX_BYTES:
                lines.append(line[1:] if line.startswith(b".") else line)
        return b"".join(lines) if size <= MAX_BYTES else None

    def _save(self, sender: str, recipients: list[str], data: bytes) -> None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        path = self.directory / f"{stamp}-{next(self._numbers):04d}.eml"
        envelope = f"X-Demo-Envelope: from <{sender}> to {', '.join(recipients)}\r\n"
        path.write_bytes(envelope.encode() + data)
        self.saved.append(path)
        log.info("demo mail kept", extra={"to": recipients, "file": str(path)})


async def point_demo_account(conn: asyncpg.Connection, address: str, port: int) -> bool:
    """Send the demo account's mail through the sink on `port` (each start: the port is
    new). An account an admin has given a real SMTP server is left alone; False then."""
    updated = await conn.fetchval(queries.POINT_AT_SINK, address, port)
    return updated is not None
