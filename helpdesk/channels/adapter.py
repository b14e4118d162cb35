"""The contract every chat and social channel implements.

An adapter is three things, kept apart so the first two stay pure and easy to test:

1. `verify(account, request, now)`: is this HTTP request really from the provider?
   (signature or secret on the raw bytes). It may also answer a handshake itself
   (Slack's `url_verification`, Meta's `hub.challenge`).
2. `normalize(account, payload)`: the stored webhook body as zero or more
   `InboundMessage`s and `StatusUpdate`s, the one shape every channel produces.
3. `send(account, outbound)`: deliver one reply through the provider's API, returning
   the provider's message id or raising `RetryableDeliveryError` (with a delay when the
   provider gave one) or `PermanentDeliveryError` (with the reason an agent reads).

Webhooks are stored first (`inbound_events`) and answered at once; a worker runs
`normalize` and the shared ingestion (`helpdesk.channels.ingest`) afterwards.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal, Protocol

import msgspec

from helpdesk.channels.accounts import ChannelAccount
from helpdesk.channels.catalogue import ChatKind

ChannelKind = ChatKind  # the catalogue's chat kinds


class WebhookRequest(msgspec.Struct, frozen=True):
    """What verification may look at: the raw request, before anything parses it."""

    method: str
    headers: dict[str, str]  # lower-case names
    query: dict[str, str]
    body: bytes


class Verdict(msgspec.Struct, frozen=True):
    """`accept`: store the body. Otherwise answer `status` with `body` (a rejection, or a
    handshake the adapter answers itself) and store nothing."""

    accept: bool
    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain"
    # The provider's delivery id (Telegram update_id, Slack event_id): redeliveries of
    # the same id are stored once.
    dedupe_key: str | None = None


REJECT_UNAUTHENTIC = Verdict(accept=False, status=401)


class SenderIdentity(msgspec.Struct, frozen=True):
    """Who wrote, as the provider knows them; becomes a customer identity."""

    external_id: str
    display_name: str = ""
    email: str | None = None  # only when the provider verified it
    phone: str | None = None  # only when the provider verified it (WhatsApp numbers)


class InboundAttachment(msgspec.Struct, frozen=True):
    """A file that came with a message. Its bytes are inline (`content`) or fetched with
    the adapter's `fetch_attachment` through `fetch_ref`; a file the provider will never
    hand out (too big for its API, deleted, hidden) says why in `unavailable` and is
    kept as a failed attachment, so the agent still sees that it was sent."""

    filename: str
    content_type: str
    content: bytes | None = None  # inline content, or fetched later through `fetch_ref`
    fetch_ref: str | None = None  # e.g. a Telegram file_id, a Meta media URL/id
    size: int | None = None
    unavailable: str | None = None  # why it can never be fetched (never tried then)


class FetchedFile(msgspec.Struct, frozen=True):
    """What `fetch_attachment` may return instead of bare bytes when the provider names
    the file only on download (a Slack Connect file's name comes from files.info)."""

    content: bytes
    filename: str | None = None
    content_type: str | None = None


class AttachmentFetchError(Exception):
    """`fetch_attachment` could not download a file. `reason` is shown to agents and must
    never contain a secret (tokens in URLs); `permanent` says a retry cannot help (the
    provider refused the id for good). Any other exception from `fetch_attachment` is
    retried too, with only its type name as the reason."""

    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


class InboundMessage(msgspec.Struct, frozen=True, kw_only=True):
    """One customer message from any channel."""

    channel: ChannelKind
    channel_account: str
    external_id: str  # unique within the account: exactly-once key
    conversation_id: str  # chat / thread / user: which ticket it feeds
    sender: SenderIdentity
    text: str
    sent_at: datetime
    attachments: tuple[InboundAttachment, ...] = ()
    reply_to_external_id: str | None = None
    edited: bool = False  # a newer text of an earlier message (same external_id)
    subject: str | None = None  # a new ticket's subject; derived from the text if None
    # Not a person writing to us: a reaction or its removal, an unsend, a system or
    # service notice (number changed, member joined, message pinned), a welcome request,
    # an opt-in, a referral without text. Stored as a readable note in the thread (kind
    # `system`) that neither reopens the ticket, nor starts or moves a response clock,
    # nor is acknowledged (`docs/sla.md` 1.4: it is no customer message). What the
    # customer sent (text, files, a contact card, a location, a poll, a form, an order,
    # a button they pressed) is never a notice.
    notice: bool = False


class StatusUpdate(msgspec.Struct, frozen=True, kw_only=True):
    """The provider's news about one of our outbound messages (delivered, read, failed)."""

    external_id: str
    status: Literal["delivered", "read", "failed"]
    at: datetime
    reason: str | None = None


class StatusWatermark(msgspec.Struct, frozen=True, kw_only=True):
    """Every outbound message of a conversation sent up to `up_to` reached `status`
    (Messenger reports reads and deliveries as a watermark, not per message)."""

    conversation_id: str
    status: Literal["delivered", "read"]
    up_to: datetime


class ButtonPress(msgspec.Struct, frozen=True, kw_only=True):
    """A customer pressed a button of one of our messages (a satisfaction rating)."""

    value: str  # what we put on the button
    sender_id: str  # who pressed it, as the provider knows them
    ack_ref: str | None = None  # e.g. Telegram's callback_query id, answered after


class OutboundChatMessage(msgspec.Struct, frozen=True, kw_only=True):
    """One agent reply to send on a conversation."""

    outbox_id: int
    message_id: int
    conversation_id: str  # the provider's chat / thread / user id
    text: str
    reply_to_external_id: str | None = None  # the customer's message it answers
    attachments: tuple[tuple[str, str, bytes], ...] = ()  # (filename, content type, bytes)
    last_inbound_at: datetime | None = None  # for providers' reply windows
    buttons: tuple[tuple[str, str], ...] = ()  # (label, value) under the text


Normalized = InboundMessage | StatusUpdate | StatusWatermark | ButtonPress


async def normalize_event(
    adapter: ChannelAdapter, account: ChannelAccount, payload: bytes
) -> list[Normalized]:
    """`adapter.normalize`, or the adapter's `normalize_with_lookups` when it has one: an
    async variant that may ask the provider for what the body lacks (names behind ids)
    and falls back to `normalize`'s result when the provider does not answer."""
    with_lookups = getattr(adapter, "normalize_with_lookups", None)
    if with_lookups is None:
        return adapter.normalize(account, payload)
    found: list[Normalized] = await with_lookups(account, payload)
    return found


class ChannelAdapter(Protocol):
    kind: ChannelKind

    def verify(self, account: ChannelAccount, request: WebhookRequest, now: float) -> Verdict: ...

    def normalize(self, account: ChannelAccount, payload: bytes) -> list[Normalized]: ...

    async def send(self, account: ChannelAccount, outbound: OutboundChatMessage) -> str: ...

    async def fetch_attachment(
        self, account: ChannelAccount, attachment: InboundAttachment
    ) -> bytes | FetchedFile:
        """The file's bytes (at most the attachment limit + 1 may be read), or raises
        `AttachmentFetchError`. Called at ingestion and again, with only `filename`,
        `content_type` and `fetch_ref` set, by the retry sweep: a message is stored with
        its text at once whatever this does."""
        ...
