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

from helpdesk.channels.email.parse import ParsedEmail
from helpdesk.config import SlaSettings
from helpdesk.customers import identities as customers
from helpdesk.customers import relationship
from helpdesk.sla import queries as sla_queries
from helpdesk.sla import recording as sla_recording
from helpdesk.sla import refresh as sla_refresh
from helpdesk.sla import start as sla_start
from helpdesk.tickets.models import CustomerRef
from helpdesk.tickets.service import store_attachment

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


async def _follow_merges(conn: asyncpg.Connection, ticket_id: int) -> asyncpg.Record | None:
    for _ in range(20):  # merge chains are short; the bound guards against a cycle
        row = await conn.fetchrow(
            "SELECT id, status, customer_id, merged_into_id FROM tickets WHERE id = $1",
            ticket_id,
        )
        if row is None or row["merged_into_id"] is None:
            return row
        ticket_id = row["merged_into_id"]
    return None


async def _takes_part(conn: asyncpg.Connection, ticket_id: int, address: str | None) -> bool:
    """Whether `address` wrote on the ticket or was a recipient of one of its mails."""
    if not address:
        return False
    return bool(
        await conn.fetchval(
            """SELECT EXISTS (
                   SELECT 1 FROM messages m
                   WHERE m.ticket_id = $1
                     AND (lower(m.sender_address) = $2
                          OR EXISTS (SELECT 1 FROM unnest(m.recipient_addresses) r
                                     WHERE lower(r) = $2)))""",
            ticket_id,
            address.lower(),
        )
    )


async def _thread(
    conn: asyncpg.Connection, parsed: ParsedEmail, customer_id: int
) -> asyncpg.Record | None:
    cited = [i for i in [parsed.in_reply_to, *reversed(parsed.references)] if i]
    if cited:
        found = await conn.fetchval(
            """SELECT ticket_id FROM messages
               WHERE channel = 'email' AND external_id = ANY($1::text[])
               ORDER BY array_position($1::text[], external_id), id DESC LIMIT 1""",
            cited,
        )
        if found is not None:
            ticket = await _follow_merges(conn, found)
            if ticket is not None and (
                ticket["customer_id"] == customer_id
                or await _takes_part(conn, ticket["id"], parsed.from_email)
            ):
                return ticket
    number = ticket_number_in(parsed.subject)
    if number is not None:
        found = await conn.fetchval(
            "SELECT id FROM tickets WHERE number = $1 AND customer_id = $2", number, customer_id
        )
        if found is not None:
            return await _follow_merges(conn, found)
    return None


# A new ticket's SLA columns, computed before its INSERT (`sla_start.plan_start`).
_SLA_COLUMNS, _SLA_VALUES = sla_start.start_columns_sql(6)


async def ingest_email(
    conn: asyncpg.Connection,
    parsed: ParsedEmail,
    raw: bytes,
    *,
    account: str,
    sla: SlaSettings,
) -> IngestResult:
    """Store `parsed` once per (account, Message-ID); safe to call again for the same mail."""
    external_id = external_id_of(parsed, raw)
    async with conn.transaction():
        # Serialises concurrent deliveries of the same mail (IMAP re-fetch, webhook retry).
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            f"{CHANNEL}:{account}:{external_id}",
        )
        existing = await conn.fetchrow(
            """SELECT id, ticket_id FROM messages
               WHERE channel = $1 AND channel_account = $2 AND external_id = $3""",
            CHANNEL,
            account,
            external_id,
        )
        if existing is not None:
            return IngestResult(existing["ticket_id"], existing["id"], False, True)
        if parsed.from_email:
            customer_id = await customers.by_identity(
                conn,
                CHANNEL,
                parsed.from_email,
                CustomerRef(email=parsed.from_email, name=parsed.from_name[:200]),
            )
        else:  # unknown or ambiguous sender: never linked to an existing customer
            customer_id = await conn.fetchval(
                "INSERT INTO customers (name) VALUES ($1) RETURNING id",
                parsed.from_name[:200] or "Unknown sender",
            )
        ticket = await _thread(conn, parsed, customer_id)
        created = ticket is None or ticket["status"] == "closed"
        now = await conn.fetchval("SELECT clock_timestamp()")
        if created:
            customer = await conn.fetchrow("SELECT * FROM customers WHERE id = $1", customer_id)
            plan = await sla_start.plan_start(
                conn, sla_start.new_ticket_facts(CHANNEL, customer), sla, now=now
            )
            ticket_id = await conn.fetchval(
                f"""INSERT INTO tickets (subject, channel, channel_account, customer_id,
                                        created_at, updated_at, {_SLA_COLUMNS})
                    VALUES ($1, $2, $3, $4, $5, $5, {_SLA_VALUES}) RETURNING id""",
                single_line(parsed.subject or "(no subject)")[:998],
                CHANNEL,
                account,
                customer_id,
                now,
                *plan.values(),
            )
        else:
            assert ticket is not None
            ticket_id = ticket["id"]
            # An auto-reply (out-of-office, bulk mail) does not reopen the ticket. The
            # locked row comes back for the SLA refresh below (no second read).
            updated = await conn.fetchrow(
                f"""UPDATE tickets t SET updated_at = $2, version = version + 1,
                       status = CASE WHEN status IN ('solved', 'pending') AND NOT $3
                                     THEN 'open' ELSE status END,
                       solved_at = CASE WHEN status = 'solved' AND NOT $3 THEN NULL
                                        ELSE solved_at END
                   WHERE id = $1 RETURNING t.*, {sla_queries.SLA_FIRED}""",
                ticket_id,
                now,
                parsed.auto_submitted,
            )
        dropped = [
            {"filename": a.filename, "size": a.size, "reason": a.dropped_reason}
            for a in parsed.attachments
            if a.dropped_reason is not None
        ]
        # The message, its raw source and the ticket's event in one round trip.
        message_id = await conn.fetchval(
            """WITH message AS (
                   INSERT INTO messages (ticket_id, direction, kind, author_customer_id,
                                         channel, channel_account, external_id, body_text,
                                         body_html, created_at, sender_address,
                                         reply_to_addresses, recipient_addresses)
                   VALUES ($1, 'inbound', 'public', $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                   RETURNING id),
               source AS (
                   INSERT INTO message_sources (message_id, raw) SELECT id, $12 FROM message),
               event AS (
                   INSERT INTO ticket_events (ticket_id, action, changes)
                   SELECT $1, $13, $14::jsonb || jsonb_build_object('message_id', id)
                   FROM message)
               SELECT id FROM message""",
            ticket_id,
            customer_id,
            CHANNEL,
            account,
            external_id,
            with_placeholders(parsed),
            parsed.html,
            now,
            parsed.from_email,
            _addresses(parsed.reply_to),
            _addresses([*parsed.to, *parsed.cc]),
            raw,
            "created" if created else "customer_replied",
            {
                "channel": CHANNEL,
                "warnings": parsed.warnings,
                "dropped_attachments": dropped,
                "auto_submitted": parsed.auto_submitted,
            },
        )
        for attachment in parsed.attachments:
            if attachment.dropped_reason is not None:
                continue
            await store_attachment(
                conn,
                message_id,
                (attachment.filename or "attachment")[:255],
                attachment.content_type[:255],
                attachment.content,
            )
        if created:
            await sla_start.start(conn, ticket_id, plan, now=now)
        else:
            kind = "customer_auto_reply" if parsed.auto_submitted else "customer_message"
            await sla_recording.record(conn, ticket_id, kind, now, message_id=message_id)
            if ticket is not None and ticket["status"] == "solved" and not parsed.auto_submitted:
                await relationship.reopened_after_solved(conn, ticket_id, "the customer wrote")
            await sla_refresh.refresh(conn, ticket_id, sla, now=now, locked=updated)
    return IngestResult(ticket_id, message_id, created, False)
