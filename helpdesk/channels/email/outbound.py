"""The database side of outbound email: fix a reply's envelope once, load it for each try.

`prepare` runs in the transaction that queues the reply (`outbox.add`), so the account
it goes out from, its Message-ID and its recipients are decided once: every retry
sends the same mail under the same Message-ID, and a bounce or the customer's answer
citing that id finds the message.
"""

from __future__ import annotations

import secrets

import asyncpg
import msgspec

from helpdesk.channels.base import PermanentDeliveryError
from helpdesk.channels.email import compose, queries
from helpdesk.channels.email.accounts import EmailAccount, get_account


class Outgoing(msgspec.Struct, frozen=True):
    """What one send needs: the account to send through and the mail to send."""

    account: EmailAccount
    mail: compose.OutgoingEmail


async def prepare(conn: asyncpg.Connection, outbox_id: int, message_id: int) -> None:
    """Fix the account, Message-ID and recipients of a queued email message (once).

    Values already set are kept: an automatic acknowledgement arrives with its
    recipients, and a second call changes nothing.
    """
    row = await conn.fetchrow(queries.ENVELOPE_SOURCE, message_id)
    if row is None:
        raise LookupError(f"message {message_id} does not exist")
    account = row["channel_account"] or row["ticket_account"] or await _inbound_account(conn, row)
    external_id = row["external_id"]
    if external_id is None and account:
        address = await conn.fetchval(queries.ACCOUNT_ADDRESS, account)
        if address is not None:
            external_id = compose.message_id_for(
                row["number"], outbox_id, secrets.token_hex(4), address.rpartition("@")[2]
            )
    recipients = list(row["recipient_addresses"]) or await _recipients(conn, row)
    await conn.execute(queries.SET_ENVELOPE, message_id, account, external_id, recipients)


async def _latest_inbound(
    conn: asyncpg.Connection, message: asyncpg.Record
) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        queries.LATEST_INBOUND,
        message["ticket_id"],
        message["created_at"],
        message["id"],
    )
    return row


async def _inbound_account(conn: asyncpg.Connection, message: asyncpg.Record) -> str:
    """The account the customer last wrote to (for tickets stored before they had one)."""
    latest = await _latest_inbound(conn, message)
    return str(latest["channel_account"]) if latest is not None else ""


async def _recipients(conn: asyncpg.Connection, message: asyncpg.Record) -> list[str]:
    """Where the customer asked answers to go, else whom they wrote from, else their address."""
    latest = await _latest_inbound(conn, message)
    if latest is not None and latest["reply_to_addresses"]:
        return list(latest["reply_to_addresses"])
    if latest is not None and latest["sender_address"]:
        return [latest["sender_address"]]
    address = await conn.fetchval(queries.CUSTOMER_ADDRESS, message["customer_id"])
    return [address] if address else []


async def load(conn: asyncpg.Connection, message_id: int) -> Outgoing:
    """The account and the mail for one send; PermanentDeliveryError says why not."""
    row = await conn.fetchrow(queries.OUTGOING, message_id)
    if row is None:
        raise PermanentDeliveryError(f"message {message_id} does not exist")
    account = await _sending_account(conn, row["channel_account"])
    if row["external_id"] is None:
        raise PermanentDeliveryError("the message has no Message-ID; it was not queued for email")
    if not row["recipient_addresses"]:
        raise PermanentDeliveryError("the customer has no email address")
    for address in row["recipient_addresses"]:
        if not compose.is_address(address):
            raise PermanentDeliveryError(f"{address!r} is not an email address we can send to")
    thread = await conn.fetch(queries.THREAD, row["ticket_id"], row["created_at"], row["id"])
    inbound = [
        r["external_id"]
        for r in thread
        if r["direction"] == "inbound" and compose.is_message_id(r["external_id"])
    ]
    attachments = await conn.fetch(queries.ATTACHMENTS, message_id)
    customer_email = (row["customer_email"] or "").lower()
    mail = compose.OutgoingEmail(
        message_id=row["external_id"],
        from_address=account.address,
        from_name=account.display_name,
        reply_to=account.reply_to,
        to=[
            compose.Recipient(
                address, row["customer_name"] if address.lower() == customer_email else ""
            )
            for address in row["recipient_addresses"]
        ],
        subject=row["subject"],
        ticket_number=row["number"],
        text=row["body_text"],
        date=row["created_at"],
        in_reply_to=inbound[-1] if inbound else None,
        references=compose.references_chain(r["external_id"] for r in thread),
        auto_reply=row["kind"] == "system",
        loop_marker=account.address,
        attachments=[
            compose.Attachment(a["filename"], a["content_type"], a["content"]) for a in attachments
        ],
    )
    return Outgoing(account, mail)


async def _sending_account(conn: asyncpg.Connection, name: str) -> EmailAccount:
    if not name:
        raise PermanentDeliveryError("the ticket has no email account to reply from")
    account = await get_account(conn, name)
    if account is None:
        raise PermanentDeliveryError(f"the email account '{name}' does not exist")
    if not account.active:
        raise PermanentDeliveryError(f"the email account '{name}' is inactive")
    if not account.smtp_host:
        raise PermanentDeliveryError(f"the email account '{name}' has no SMTP server configured")
    return account
