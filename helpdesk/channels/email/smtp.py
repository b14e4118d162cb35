"""Outbound email over SMTP (aiosmtplib): one connection per delivery.

The SMTP conversation is driven step by step because only DATA can put a mail in
front of the customer: up to RCPT a failure or a dead worker leaves nothing behind,
so `delivery.handoff()` is awaited right before DATA and the outbox knows whether a
lost delivery may be retried or must be shown as possibly sent.

Failures become the outbox's two kinds: a 5xx answer to MAIL, RCPT or DATA will not
change on a retry (permanent); refused or dropped connections, timeouts and 4xx
answers may (retryable). Reasons quote the server's reply and the step; they never
contain the account's password.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable, Iterator

import aiosmtplib
import asyncpg

from helpdesk.channels.base import (
    OutboundDelivery,
    PermanentDeliveryError,
    PossiblySentError,
    RetryableDeliveryError,
)
from helpdesk.channels.email import compose, outbound
from helpdesk.channels.email.accounts import EmailAccount
from helpdesk.config import Settings

_DEFAULT_PORTS = {"none": 25, "starttls": 587, "tls": 465}
# The commands whose 5xx answers are about this mail, not about the connection.
_PERMANENT_AT = frozenset({"MAIL", "RCPT", "DATA"})


class _Step:
    """Where the conversation is, for the failure reason."""

    def __init__(self, server: str) -> None:
        self.server = server
        self.command = "connect"
        self.argument = ""

    def now(self, command: str, argument: str = "") -> None:
        self.command, self.argument = command, argument

    def __str__(self) -> str:
        return f"at {self.command}{self.argument}"


async def _goodbye(smtp: aiosmtplib.SMTP) -> None:
    """QUIT politely; the mail was accepted already, so nothing here can fail it."""
    try:
        with contextlib.suppress(aiosmtplib.SMTPException, OSError):
            await smtp.quit()
    finally:
        smtp.close()


@contextlib.contextmanager
def _after_handoff(step: _Step) -> Iterator[None]:
    """After the hand-off (DATA) only the server's answer tells: a 4xx or 5xx says the
    mail was not taken (mapped by `_failures` like any answer). A connection lost or
    timed out there leaves it unknown whether the server kept the mail (it may have
    queued it and not said so yet): `PossiblySentError`, never a retry that could
    deliver the mail twice."""
    try:
        yield
    except aiosmtplib.SMTPResponseException:
        raise
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        raise PossiblySentError(
            f"the connection to the SMTP server {step.server} was lost after the mail was "
            f"handed over ({step}: {type(exc).__name__}); it may have been accepted, so it "
            "is not sent again"
        ) from None


class EmailSender:
    """The `Sender` of the email channel; the account comes from the message."""

    def __init__(self, pool: asyncpg.Pool, settings: Settings) -> None:
        self._pool = pool
        self._timeout = settings.email.smtp_timeout_seconds
        self._goodbyes: set[asyncio.Task[None]] = set()

    async def send(self, delivery: OutboundDelivery) -> str | None:
        """Send the message once; returns its Message-ID (no brackets, as stored)."""
        async with self._pool.acquire() as conn:
            outgoing = await outbound.load(conn, delivery.message_id)
        try:
            raw = compose.render(compose.compose(outgoing.mail))
        except ValueError as exc:
            raise PermanentDeliveryError(f"the mail cannot be built: {exc}") from None
        await self._transmit(
            outgoing.account,
            compose.envelope_sender(outgoing.mail),
            [r.address for r in outgoing.mail.to],
            raw,
            delivery.handoff,
        )
        return outgoing.mail.message_id

    async def transmit(
        self,
        account: EmailAccount,
        sender: str,
        recipients: list[str],
        raw: bytes,
        handoff: Callable[[], Awaitable[None]],
    ) -> None:
        """Send a mail that is not an outbox delivery (an SLA notice to supervisors)
        through the same SMTP conversation as every reply, acknowledgement and survey:
        `handoff` is awaited right before DATA and must record that point durably, and a
        connection lost after it raises `PossiblySentError` instead of a retryable error."""
        await self._transmit(account, sender, recipients, raw, handoff)

    async def _transmit(
        self,
        account: EmailAccount,
        sender: str,
        recipients: list[str],
        raw: bytes,
        handoff: Callable[[], Awaitable[None]],
    ) -> None:
        host = account.smtp_host or ""
        port = account.smtp_port or _DEFAULT_PORTS[account.smtp_security]
        step = _Step(f"{host}:{port}")
        smtp = aiosmtplib.SMTP(
            hostname=host,
            port=port,
            use_tls=account.smtp_security == "tls",
            start_tls=False,
            timeout=self._timeout,
        )
        try:
            with self._failures(step):
                await smtp.connect()
                step.now("EHLO")
                await smtp.ehlo()
                if account.smtp_security == "starttls":
                    step.now("STARTTLS")
                    await smtp.starttls()
                if account.smtp_username:
                    step.now("AUTH")
                    await smtp.login(account.smtp_username, account.smtp_password or "")
                step.now("MAIL", f" FROM:<{sender}>")
                size = [f"SIZE={len(raw)}"] if smtp.supports_extension("size") else []
                await smtp.mail(sender, options=size)
                for recipient in recipients:
                    step.now("RCPT", f" TO:<{recipient}>")
                    await smtp.rcpt(recipient)
            await handoff()  # the point of no return starts with DATA
            with self._failures(step), _after_handoff(step):
                step.now("DATA")
                await smtp.data(raw)
        except BaseException:
            smtp.close()
            raise
        # Accepted: the outbox records 'sent' now; QUIT must not delay that (a worker
        # killed while a slow server says goodbye would leave a 'possibly_sent').
        goodbye = asyncio.create_task(_goodbye(smtp))
        self._goodbyes.add(goodbye)
        goodbye.add_done_callback(self._goodbyes.discard)

    @contextlib.contextmanager
    def _failures(self, step: _Step) -> Iterator[None]:
        """Map aiosmtplib's errors to the outbox's permanent/retryable pair."""
        try:
            yield
        except aiosmtplib.SMTPResponseException as exc:
            reason = f"SMTP {exc.code} {compose.one_line(exc.message)} ({step})"
            if exc.code >= 500 and step.command in _PERMANENT_AT:
                raise PermanentDeliveryError(reason) from None
            raise RetryableDeliveryError(reason) from None
        except TimeoutError:  # aiosmtplib's connect and read timeouts included
            raise RetryableDeliveryError(
                f"the SMTP server {step.server} did not answer within {self._timeout:g} s ({step})"
            ) from None
        except aiosmtplib.SMTPConnectError as exc:
            cause = exc.__cause__
            detail = (
                os.strerror(cause.errno)
                if isinstance(cause, OSError) and cause.errno
                else compose.one_line(str(cause or exc.message))
            )
            raise RetryableDeliveryError(
                f"cannot connect to the SMTP server {step.server}: {detail}"
            ) from None
        except aiosmtplib.SMTPServerDisconnected:
            raise RetryableDeliveryError(
                f"the SMTP server {step.server} closed the connection ({step})"
            ) from None
        except aiosmtplib.SMTPException as exc:  # e.g. STARTTLS or AUTH not offered
            raise RetryableDeliveryError(
                f"SMTP error with {step.server} ({step}): {compose.one_line(exc.message)}"
            ) from None
        except OSError as exc:  # TLS and socket errors after connecting
            raise RetryableDeliveryError(
                f"SMTP connection to {step.server} failed ({step}): {type(exc).__name__}: "
                f"{compose.one_line(str(exc))}"
            ) from None
