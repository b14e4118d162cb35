"""The sending side of the channel contract.

A sender delivers one outbound message and returns the provider's message id, or
raises one of the typed errors below so the outbox knows whether to retry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


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


class Sender(Protocol):
    async def send(self, delivery: OutboundDelivery) -> str | None: ...


class ApiChannelSender:
    """Tickets opened through the API are read back through the API: stored means delivered."""

    async def send(self, delivery: OutboundDelivery) -> str | None:
        return None


def senders() -> dict[str, Sender]:
    """Senders by channel. A channel without one fails its deliveries visibly."""
    return {"api": ApiChannelSender()}
