"""Shared ingestion of chat and social messages: one path for every adapter.

A chat message becomes an `InboundItem` for the one intake (`tickets/intake.py`):
identity lookup, conversation-to-ticket matching and exactly-once storage keyed by
(channel, account, external message id), serialised per message id by an advisory
lock, so three concurrent deliveries of one update store one message. An edit that
arrives before its original is stored as the message (with `edited_at`); the original
arriving later is then a duplicate and does not overwrite the newer text. What stays
here is the chat's own: downloading files, delivery statuses.

Files never hold a message back: one that cannot be downloaded (a provider error, an
expired URL, a missing permission) is stored with the message as an attachment row in
state `pending` with the reason, and `retry_attachment_fetches` tries again with backoff
a bounded number of times (then `failed`). One the provider will never hand out is
`failed` at once. The agent reads the state and the reason on the message.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import asyncpg
import msgspec

from helpdesk.channels import queries
from helpdesk.channels.adapter import (
    AttachmentFetchError,
    FetchedFile,
    InboundAttachment,
    InboundMessage,
    StatusUpdate,
    StatusWatermark,
)
from helpdesk.config import SlaSettings
from helpdesk.sla import recording as sla_recording
from helpdesk.tickets import events
from helpdesk.tickets.intake import (
    FETCH_RETRY_BASE_SECONDS,
    InboundItem,
    KeptAttachment,
    take_in,
)

if TYPE_CHECKING:
    from helpdesk.channels.accounts import ChannelAccount
    from helpdesk.channels.adapter import ChannelAdapter
    from helpdesk.config import Settings

log = logging.getLogger(__name__)

_STATUS_RANK = {None: 0, "delivered": 1, "read": 2}


class StoredMessage(msgspec.Struct, kw_only=True):
    ticket_id: int
    message_id: int
    created_ticket: bool
    duplicate: bool
    edited: bool = False


# Downloads of one file: the first at ingestion, then retries after 1, 4, 16, 64 and 256
# minutes (about five and a half hours in all), then the attachment is `failed`.
MAX_FETCH_ATTEMPTS = 6
# A sweep that claimed a download and died: the download is due again after this.
FETCH_LEASE_SECONDS = 600


def fetch_retry_delay(attempts: int) -> float | None:
    """Seconds before the next download of a file tried `attempts` times, or None when
    that was the last try (the attachment then stays `failed`)."""
    if attempts >= MAX_FETCH_ATTEMPTS:
        return None
    return FETCH_RETRY_BASE_SECONDS * float(4 ** max(0, attempts - 1))


def fetch_failure_reason(error: Exception) -> tuple[str, bool]:
    """(the reason an agent reads, permanent?) of a failed download. Only an
    `AttachmentFetchError` speaks for itself: other errors may quote URLs with tokens."""
    if isinstance(error, AttachmentFetchError):
        return error.reason[:500], error.permanent
    return f"the download failed ({type(error).__name__}); it is retried", False


def too_big(max_bytes: int) -> str:
    return f"larger than {max_bytes} bytes, the attachment limit"


async def fetch_inbound_files(
    conn: asyncpg.Connection,
    adapter: ChannelAdapter,
    account: ChannelAccount,
    message: InboundMessage,
    max_bytes: int,
) -> list[KeptAttachment]:
    """Download what the message carries, once each; what fails is kept as pending (or
    failed) with the reason instead of failing the message. A message stored already
    (a redelivery) downloads nothing: its files are not stored twice anyway."""
    kept: list[KeptAttachment] = []
    if not message.attachments or await conn.fetchval(
        queries.MESSAGE_STORED,
        message.channel,
        message.channel_account,
        message.external_id,
    ):
        return kept
    for attachment in message.attachments:
        kept.append(await _first_fetch(adapter, account, attachment, max_bytes))
    return kept


async def _first_fetch(
    adapter: ChannelAdapter, account: ChannelAccount, attachment: InboundAttachment, max_bytes: int
) -> KeptAttachment:
    base = KeptAttachment(
        filename=attachment.filename,
        content_type=attachment.content_type,
        fetch_ref=attachment.fetch_ref,
    )
    if attachment.unavailable is not None:
        return msgspec.structs.replace(base, state="failed", error=attachment.unavailable[:500])
    if attachment.size is not None and attachment.size > max_bytes:
        return msgspec.structs.replace(base, state="failed", error=too_big(max_bytes))
    fetched: bytes | FetchedFile | None = attachment.content
    if fetched is None:
        try:
            fetched = await adapter.fetch_attachment(account, attachment)
        except Exception as error:  # the file's problem, never the message's
            reason, permanent = fetch_failure_reason(error)
            log.warning(
                "attachment download failed",
                extra={"channel": account.kind, "error_type": type(error).__name__},
            )
            delay = None if permanent else fetch_retry_delay(1)
            return msgspec.structs.replace(
                base,
                state="failed" if delay is None else "pending",
                error=reason,
                attempts=1,
                retry_in=delay,
            )
    if isinstance(fetched, FetchedFile):
        base = msgspec.structs.replace(
            base,
            filename=fetched.filename or base.filename,
            content_type=fetched.content_type or base.content_type,
        )
        fetched = fetched.content
    content: bytes = fetched
    if len(content) > max_bytes:
        return msgspec.structs.replace(base, state="failed", error=too_big(max_bytes), attempts=1)
    return msgspec.structs.replace(
        base, content=content, attempts=1 if attachment.content is None else 0
    )


def subject_from(message: InboundMessage) -> str:
    """A new ticket's subject: the given one, else the first line of the text."""
    if message.subject:
        return " ".join(message.subject.split())[:200]
    for line in message.text.splitlines():
        if line.strip():
            words = " ".join(line.split())
            return words if len(words) <= 80 else words[:77].rstrip() + "..."
    if message.attachments:
        return f"{message.attachments[0].filename} ({message.channel})"
    return f"New {message.channel} conversation"


async def store_inbound(
    conn: asyncpg.Connection,
    message: InboundMessage,
    *,
    attachments: Sequence[KeptAttachment | tuple[str, str, bytes]],
    raw: bytes,
    sla: SlaSettings,
) -> StoredMessage:
    """Store `message` once, on its conversation's ticket (a new one when there is none,
    or when that ticket is closed). Safe to call again with the same message.

    A notice (`InboundMessage.notice`: a reaction, a service message, nothing a person
    wrote) is stored as a `system` message on the conversation's ticket, whatever its
    status, without reopening it or moving its SLA clocks; only a conversation with no
    ticket at all gets a new one for it (origin `notice`: no first response is owed, and
    routing sends no acknowledgement), since an agent must be able to see it."""
    kept = tuple(
        item
        if isinstance(item, KeptAttachment)
        else KeptAttachment(filename=item[0], content_type=item[1], content=item[2])
        for item in attachments
    )
    taken = await take_in(
        conn,
        InboundItem(
            channel=message.channel,
            channel_account=message.channel_account,
            external_id=message.external_id,
            conversation_key=message.conversation_id,
            sender=message.sender,
            text=message.text,
            kind="system" if message.notice else "public",
            sent_at=message.sent_at,
            edited=message.edited,
            notice=message.notice,
            subject=subject_from(message),
            raw=raw,
            attachments=kept,
            details={
                "channel": message.channel,
                "account": message.channel_account,
                "notice": message.notice,
            },
        ),
        sla=sla,
    )
    assert taken.message_id is not None  # an item with text always has its message
    return StoredMessage(
        ticket_id=taken.ticket_id,
        message_id=taken.message_id,
        created_ticket=taken.created_ticket,
        duplicate=taken.duplicate,
        edited=taken.edited,
    )


async def apply_status(
    conn: asyncpg.Connection,
    channel: str,
    account: str,
    update: StatusUpdate,
    *,
    sla: SlaSettings,
) -> bool:
    """Move one outbound message's provider status forward (never back: statuses arrive
    out of order). A failure report fails the delivery with the provider's reason and
    withdraws the reply as a response at once."""
    row = await conn.fetchrow(
        queries.LOCK_OUTBOUND_STATUS,
        channel,
        account,
        update.external_id,
    )
    if row is None:
        return False
    if update.status == "failed":
        reason = update.reason or "the provider reported the message as not delivered"
        await conn.execute(queries.DELIVERY_FAILED, row["id"], reason)
        await sla_recording.withdraw_reply(conn, row["id"], reason, sla)
        return True
    if _STATUS_RANK[update.status] <= _STATUS_RANK.get(row["provider_status"], 0):
        return False
    await conn.execute(queries.SET_PROVIDER_STATUS, row["id"], update.status)
    return True


async def apply_watermark(
    conn: asyncpg.Connection, channel: str, account: str, watermark: StatusWatermark
) -> int:
    """Move every sent outbound message of the conversation up to the watermark forward;
    returns how many moved. Never moves a status back."""
    lower = [s for s, rank in _STATUS_RANK.items() if rank < _STATUS_RANK[watermark.status]]
    result: str = await conn.execute(
        queries.APPLY_WATERMARK,
        channel,
        account,
        watermark.conversation_id,
        watermark.status,
        watermark.up_to,
        [s for s in lower if s is not None],
    )
    return int(result.rsplit(" ", 1)[-1])


async def retry_attachment_fetches(pool: asyncpg.Pool, settings: Settings, limit: int = 8) -> int:
    """Try the due downloads once more; returns how many were claimed. A success stores
    the bytes on the same attachment row (and records it on the ticket); a failure waits
    `fetch_retry_delay` longer, or leaves the attachment `failed` after the last try.
    Safe to run concurrently (rows are claimed with SKIP LOCKED and a lease)."""
    from helpdesk.channels import accounts  # the registry imports the adapters
    from helpdesk.channels.registry import adapter_for

    async with pool.acquire() as conn:
        claimed = await conn.fetch(queries.CLAIM_FETCHES, limit, FETCH_LEASE_SECONDS)
    for row in claimed:
        async with pool.acquire() as conn:
            account = await accounts.get_account(conn, row["channel"], row["channel_account"])
        adapter = adapter_for(row["channel"], settings)
        if account is None or adapter is None:
            outcome: FetchedFile | tuple[str, bool] = (
                "the channel account no longer exists",
                True,
            )
        else:
            outcome = await _retry_one(adapter, account, row, settings.attachment_max_bytes)
        async with pool.acquire() as conn, conn.transaction():
            await _record_retry(conn, row, outcome)
    return len(claimed)


async def _retry_one(
    adapter: ChannelAdapter, account: ChannelAccount, row: asyncpg.Record, max_bytes: int
) -> FetchedFile | tuple[str, bool]:
    """The file, or (reason, permanent)."""
    attachment = InboundAttachment(
        filename=row["filename"], content_type=row["content_type"], fetch_ref=row["fetch_ref"]
    )
    try:
        content = await adapter.fetch_attachment(account, attachment)
    except Exception as error:  # recorded on the attachment; the sweep goes on
        log.warning(
            "attachment download retry failed",
            extra={"attachment_id": row["id"], "error_type": type(error).__name__},
        )
        return fetch_failure_reason(error)
    if not isinstance(content, FetchedFile):
        content = FetchedFile(content)
    if len(content.content) > max_bytes:
        return too_big(max_bytes), True
    return content


async def _record_retry(
    conn: asyncpg.Connection, row: asyncpg.Record, outcome: FetchedFile | tuple[str, bool]
) -> None:
    if isinstance(outcome, FetchedFile):
        stored = await conn.fetchval(
            queries.FETCH_STORED,
            row["id"],
            outcome.content,
            hashlib.sha256(outcome.content).digest(),
            len(outcome.content),
            outcome.filename[:255] if outcome.filename else None,
            outcome.content_type[:255] if outcome.content_type else None,
        )
        if stored is not None:
            await events.record(
                conn,
                row["ticket_id"],
                "attachment_fetched",
                {"attachment_id": row["id"], "attempts": row["fetch_attempts"]},
            )
        return
    reason, permanent = outcome
    delay = None if permanent else fetch_retry_delay(row["fetch_attempts"])
    failed = await conn.fetchval(
        queries.FETCH_FAILED,
        row["id"],
        reason[:500],
        delay,
    )
    if failed:
        await events.record(
            conn,
            row["ticket_id"],
            "attachment_fetch_failed",
            {"attachment_id": row["id"], "attempts": row["fetch_attempts"], "reason": reason},
        )
