"""The sending side of the channel contract.

A sender delivers one outbound message and returns the provider's message id, or
raises one of the typed errors below so the outbox knows whether to retry.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol


async def _nothing_to_record() -> None:
    return None


@dataclass(frozen=True)
class OutboundDelivery:
    outbox_id: int
    message_id: int
    ticket_id: int
    ticket_number: int
    channel: str
    subject: str
    text: str
    customer_id: int
    # Awaited by a sender immediately before its point of no return (SMTP DATA, a
    # provider's POST): from then on a worker that dies leaves a 'possibly_sent'
    # delivery, never a blind resend. Raises DeliveryLeaseLost if another worker has
    # taken the delivery over meanwhile; the sender must then stop without sending.
    handoff: Callable[[], Awaitable[None]] = field(default=_nothing_to_record)


class RetryableDeliveryError(Exception):
    """Try again later (after `retry_after` seconds when the provider said so)."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class PermanentDeliveryError(Exception):
    """Will never succeed; the message is marked failed with this reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PossiblySentError(Exception):
    """The provider may have the message: the connection was lost after the hand-off
    (e.g. SMTP dropped after the mail's content, before the server's answer). Never
    retried, since a retry could deliver it twice; shown as 'possibly_sent'."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RecipientUnreachableError(PermanentDeliveryError):
    """The customer cannot be reached on this channel any more (e.g. blocked the bot):
    the delivery fails and the customer's identity is marked unreachable."""


class DeliveryLeaseLost(Exception):
    """The delivery is no longer this worker's (its lease expired and it was re-queued)."""


class Sender(Protocol):
    async def send(self, delivery: OutboundDelivery) -> str | None: ...
