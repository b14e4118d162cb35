"""The web chat side of the channel contract.

Web chat has no provider: visitors post through our own public endpoints
(`helpdesk.channels.webchat.routes`), so there is no webhook to verify, and an agent's
reply is delivered by being stored (the widget reads it from the database). `send`
therefore only names the delivery so the outbox can mark it 'sent'.
"""

from __future__ import annotations

from helpdesk.channels.accounts import ChannelAccount
from helpdesk.channels.adapter import (
    ChannelKind,
    InboundAttachment,
    Normalized,
    OutboundChatMessage,
    Verdict,
    WebhookRequest,
)
from helpdesk.channels.base import PermanentDeliveryError
from helpdesk.config import Settings

# The webhook route answers this for web chat: there is no provider webhook to receive.
NO_WEBHOOK = Verdict(accept=False, status=404)


class WebChatAdapter:
    kind: ChannelKind = "webchat"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def verify(self, account: ChannelAccount, request: WebhookRequest, now: float) -> Verdict:
        return NO_WEBHOOK

    def normalize(self, account: ChannelAccount, payload: bytes) -> list[Normalized]:
        return []

    async def send(self, account: ChannelAccount, outbound: OutboundChatMessage) -> str:
        """Stored is delivered: the visitor's widget reads public replies from the
        database. The id only has to be unique within the account."""
        return f"webchat:{outbound.message_id}"

    async def fetch_attachment(
        self, account: ChannelAccount, attachment: InboundAttachment
    ) -> bytes:
        raise PermanentDeliveryError("web chat messages carry no attachments to fetch")
