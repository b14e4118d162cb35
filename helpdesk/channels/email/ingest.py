"""Store one inbound mail exactly once, on the right ticket.

Threading: a reply joins the ticket of a message whose Message-ID it cites
(In-Reply-To, then References) when the sender takes part in that ticket (its
customer, or an address that wrote to or was written to on it); failing that, the
ticket number in the subject (`[#10042]`) if that ticket belongs to the same customer.
So a stranger citing a number or a Message-ID cannot write into someone else's ticket
(where the next agent reply would go to them, `docs/reliability.md` row A11); a new
ticket opens instead.
A merged ticket forwards to the ticket it was merged into; a closed one gets a
follow-up ticket.
"""

from __future__ import annotations

import hashlib
import re
from email.utils import getaddresses

import asyncpg
import msgspec

from helpdesk.channels.adapter import SenderIdentity
from helpdesk.channels.email import queries
from helpdesk.channels.email.parse import ParsedEmail
from helpdesk.config import SlaSettings
from helpdesk.tickets.intake import InboundItem, KeptAttachment, follow_merges, take_in

CHANNEL = "email"
_TICKET_NUMBER = re.compile(r"\[#(\d{1,18})\]")


class IngestResult(msgspec.Struct):
    ticket_id: int
    message_id: int
    created_ticket: bool
    duplicate: bool


def external_id_of(parsed: ParsedEmail, raw: bytes) -> str:
    """The id that makes a mail unique: its Message-ID, or a hash of its bytes."""
    return parsed.message_id or "sha256:" + hashlib.sha256(raw).hexdigest()


def single_line(value: str) -> str:
    """Header text as one line: a subject never carries CR/LF into a reply's headers."""
    return " ".join(value.split())


def _addresses(values: list[str]) -> list[str]:
    """Plain lower-case addresses from parsed address lists (names dropped)."""
    found: list[str] = []
    for _, address in getaddresses(values):
        address = address.strip().lower()
        if "@" in address and address not in found and len(address) <= 320:
            found.append(address)
    return found


def with_placeholders(parsed: ParsedEmail) -> str:
    """The body text, plus one line per attachment not kept, so agents see it existed."""
    notes = [
        f"[attachment {a.filename or a.content_type} ({a.size} bytes) not kept: {a.dropped_reason}]"
        for a in parsed.attachments
        if a.dropped_reason is not None
    ]
    return "\n\n".join([parsed.text, "\n".join(notes)]) if notes else parsed.text


def ticket_number_in(subject: str) -> int | None:
    match = _TICKET_NUMBER.search(subject)
    return int(match.group(1)) if match else None


async def _takes_part(conn: asyncpg.Connection, ticket_id: int, address: str | None) -> bool:
    """Whether `address` wrote on the ticket or was a recipient of one of its mails."""
    if not address:
        return False
    return bool(await conn.fetchval(queries.TAKES_PART, ticket_id, address.lower()))


async def _thread(
    conn: asyncpg.Connection, parsed: ParsedEmail, customer_id: int
) -> asyncpg.Record | None:
    """The ticket (merges followed) the mail continues, or None: the intake's hint."""
    cited = [i for i in [parsed.in_reply_to, *reversed(parsed.references)] if i]
    if cited:
        found = await conn.fetchval(queries.CITED_TICKET, cited)
        if found is not None:
            ticket = await follow_merges(conn, found)
            if ticket is not None and (
                ticket["customer_id"] == customer_id
                or await _takes_part(conn, ticket["id"], parsed.from_email)
            ):
                return ticket
    number = ticket_number_in(parsed.subject)
    if number is not None:
        found = await conn.fetchval(queries.CUSTOMER_TICKET_BY_NUMBER, number, customer_id)
        if found is not None:
            return await follow_merges(conn, found)
    return None


async def ingest_email(
    conn: asyncpg.Connection,
    parsed: ParsedEmail,
    raw: bytes,
    *,
    account: str,
    sla: SlaSettings,
) -> IngestResult:
    """Store `parsed` once per (account, Message-ID); safe to call again for the same mail."""
    dropped = [
        {"filename": a.filename, "size": a.size, "reason": a.dropped_reason}
        for a in parsed.attachments
        if a.dropped_reason is not None
    ]

    async def thread(conn: asyncpg.Connection, customer_id: int) -> asyncpg.Record | None:
        return await _thread(conn, parsed, customer_id)

    taken = await take_in(
        conn,
        InboundItem(
            channel=CHANNEL,
            channel_account=account,
            external_id=external_id_of(parsed, raw),
            # An unknown or ambiguous sender (no From address) is never linked to an
            # existing customer.
            sender=SenderIdentity(
                parsed.from_email or "", parsed.from_name, email=parsed.from_email or None
            ),
            text=with_placeholders(parsed),
            html=parsed.html,
            auto_submitted=parsed.auto_submitted,
            subject=single_line(parsed.subject or "(no subject)")[:998],
            raw=raw,
            attachments=tuple(
                KeptAttachment(
                    filename=(a.filename or "attachment")[:255],
                    content_type=a.content_type[:255],
                    content=a.content,
                )
                for a in parsed.attachments
                if a.dropped_reason is None
            ),
            sender_address=parsed.from_email,
            reply_to_addresses=tuple(_addresses(parsed.reply_to)),
            recipient_addresses=tuple(_addresses([*parsed.to, *parsed.cc])),
            details={
                "channel": CHANNEL,
                "warnings": parsed.warnings,
                "dropped_attachments": dropped,
                "auto_submitted": parsed.auto_submitted,
            },
        ),
        sla=sla,
        find_thread=thread,
    )
    assert taken.message_id is not None  # a mail always has its message
    return IngestResult(taken.ticket_id, taken.message_id, taken.created_ticket, taken.duplicate)
