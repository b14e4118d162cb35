"""What agents write on a ticket: replies (queued for delivery) and notes, their files,
and a failed reply's retry.

Each use case takes a connection inside the caller's transaction; the outbox id to
enqueue is returned, for the caller to enqueue after commit.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import asyncpg

from helpdesk.agents.models import Principal
from helpdesk.channels import catalogue, outbox, windows
from helpdesk.config import SlaSettings
from helpdesk.errors import Conflict, NotFound, PayloadTooLarge
from helpdesk.sla import recording as sla_recording
from helpdesk.sla import refresh as sla_refresh
from helpdesk.tickets import events, queries, writer
from helpdesk.tickets.models import AttachmentIn, AttachmentOut, MessageOut, TicketOut
from helpdesk.tickets.queries import get_in_scope


def message_out(row: asyncpg.Record, attachments: list[AttachmentOut]) -> MessageOut:
    """A `messages` row (every column) with its files, as the API shows it."""
    return MessageOut(
        id=row["id"],
        ticket_id=row["ticket_id"],
        direction=row["direction"],
        kind=row["kind"],
        author_agent_id=row["author_agent_id"],
        author_customer_id=row["author_customer_id"],
        channel=row["channel"],
        body_text=row["body_text"],
        body_html=row["body_html"],
        delivery_status=row["delivery_status"],
        delivery_error=row["delivery_error"],
        created_at=row["created_at"],
        attachments=attachments,
        internal_only=row["internal_only"],
    )


async def store_attachment(
    conn: asyncpg.Connection, message_id: int, filename: str, content_type: str, content: bytes
) -> int:
    """Keep one attachment of a message (any channel); returns its id."""
    attachment_id: int = await conn.fetchval(
        queries.INSERT_ATTACHMENT,
        message_id,
        filename,
        content_type,
        len(content),
        hashlib.sha256(content).digest(),
        content,
    )
    return attachment_id


async def _store_attachments(
    conn: asyncpg.Connection, message_id: int, attachments: list[AttachmentIn], max_bytes: int
) -> list[AttachmentOut]:
    stored = []
    for item in attachments:
        if len(item.content) > max_bytes:
            raise PayloadTooLarge(f"Attachment {item.filename!r} is larger than {max_bytes} bytes")
        attachment_id = await store_attachment(
            conn, message_id, item.filename, item.content_type, item.content
        )
        stored.append(
            AttachmentOut(
                id=attachment_id,
                filename=item.filename,
                content_type=item.content_type,
                size_bytes=len(item.content),
            )
        )
    return stored


async def _check_reply_possible(conn: asyncpg.Connection, ticket: TicketOut) -> str:
    """Refuse, before anything is queued, a reply its channel cannot carry now (a phone
    ticket; Meta's 24-hour window). Returns the channel account a chat reply goes out
    on, so the provider's delivery reports find the message ('' for email and the API:
    an email's own Message-ID must stay free for a copy that comes back)."""
    if ticket.channel == "phone":
        raise Conflict(
            "A phone ticket has no written channel to reply on; log the call "
            "(POST /tickets/{id}/calls) or write to the customer on another channel"
        )
    row = await conn.fetchrow(queries.REPLY_WINDOW, ticket.id)
    refusal = windows.reply_refusal(
        ticket.channel,
        row["last_inbound_at"],
        datetime.now(UTC),
        human_agent_tag=row["human_agent_tag"],
    )
    if refusal is not None:
        raise Conflict(refusal)
    declared = catalogue.CATALOGUE.get(ticket.channel)
    return "" if declared is not None and not declared.chat else str(row["channel_account"])


async def add_agent_message(
    conn: asyncpg.Connection,
    principal: Principal,
    ticket_id: int,
    text: str,
    attachments: list[AttachmentIn],
    *,
    public: bool,
    max_attachment_bytes: int,
    sla: SlaSettings,
    internal_only: bool = False,
) -> tuple[MessageOut, int | None]:
    """A public reply (queued in the outbox, first response recorded) or an internal note.

    Returns the message and the outbox id to enqueue after commit (None for notes).
    """
    ticket = await get_in_scope(conn, principal, ticket_id, for_update=True)
    if ticket.status == "closed":
        raise Conflict("The ticket is closed")
    kind = "public" if public else "note"
    account = await _check_reply_possible(conn, ticket) if public else ""
    row = await conn.fetchrow(
        queries.AGENT_MESSAGE,
        ticket.id,
        kind,
        principal.agent_id,
        ticket.channel,
        text,
        "pending" if public else None,
        account,
        internal_only and not public and not principal.is_partner,
    )
    stored = await _store_attachments(conn, row["id"], attachments, max_attachment_bytes)
    outbox_id = None
    if public:
        outbox_id = await outbox.add(conn, row["id"], ticket.id, ticket.channel)
        await writer.reply_sent(
            conn, ticket.id, row["id"], row["created_at"], actor_agent_id=principal.agent_id
        )
    else:
        await writer.note_added(conn, ticket.id, row["id"], actor_agent_id=principal.agent_id)
    if public:
        await sla_recording.record(
            conn, ticket.id, "agent_reply", row["created_at"], message_id=row["id"]
        )
        await sla_refresh.refresh(conn, ticket.id, sla)
    return message_out(row, stored), outbox_id


async def get_attachment(
    conn: asyncpg.Connection, principal: Principal, attachment_id: int
) -> asyncpg.Record:
    """A file with its content, if the caller may see its message (404 otherwise, 409
    while a channel's file is not downloaded)."""
    sql, params = queries.attachment_in_scope(principal, attachment_id)
    row = await conn.fetchrow(sql, *params)
    if row is None:
        raise NotFound(f"Attachment {attachment_id} not found")
    if row["content"] is None:  # a channel file not downloaded (yet)
        raise Conflict(
            f"Attachment {attachment_id} is not downloaded ({row['state']}): "
            f"{row['fetch_error'] or 'no reason recorded'}"
        )
    return row


async def retry_delivery(
    conn: asyncpg.Connection,
    principal: Principal,
    ticket_id: int,
    message_id: int,
    *,
    sla: SlaSettings,
) -> tuple[MessageOut, outbox.Requeued]:
    """Send a reply whose delivery failed for good once more (any agent who sees the ticket).

    404 for a message not on this ticket (or hidden from the caller), 409 when its
    delivery has not failed or the ticket can no longer be answered. The reply counts as
    a response again from now, when it is accepted again (docs/sla.md 1.4). Returns the message
    and the outbox row to enqueue after commit.
    """
    ticket = await get_in_scope(conn, principal, ticket_id, for_update=True)
    row = await conn.fetchrow(
        queries.OUTBOUND_MESSAGE,
        message_id,
        ticket.id,
        principal.is_partner,
    )
    if row is None:
        raise NotFound(f"Message {message_id} not found on ticket {ticket_id}")
    if row["delivery_status"] != "failed":
        raise Conflict(f"Message {message_id} has not failed; only a failed delivery is retried")
    if ticket.status == "closed":
        raise Conflict("The ticket is closed")
    if row["channel"] == ticket.channel:  # e.g. Meta's 24-hour window has closed since
        await _check_reply_possible(conn, ticket)
    requeued = await outbox.requeue_failed(conn, message_id)
    if requeued is None:
        raise Conflict(f"Message {message_id} has no delivery to retry")
    counted_at = await sla_recording.reply_retried(conn, ticket.id, message_id, sla)
    await events.record(
        conn,
        ticket.id,
        "reply_retried",
        {
            "message_id": message_id,
            "previous_error": row["delivery_error"],
            "counted_at": counted_at.isoformat() if counted_at else None,
        },
        actor_agent_id=principal.agent_id,
    )
    message = await conn.fetchrow(queries.MESSAGE, message_id)
    attachments = [
        AttachmentOut(
            id=a["id"],
            filename=a["filename"],
            content_type=a["content_type"],
            size_bytes=a["size_bytes"],
        )
        for a in await conn.fetch(queries.MESSAGE_ATTACHMENTS, message_id)
    ]
    return message_out(message, attachments), requeued
