"""The outbox's sender for chat and social channels: one class for every adapter.

It loads what a reply needs (the account, the conversation, the customer message it
answers, attachments), then hands over to the adapter. `delivery.handoff()` is awaited
right before the provider call: chat APIs take no idempotency key, so a worker that
dies after it leaves a visible 'possibly_sent' instead of a second message.
"""

from __future__ import annotations

import asyncpg

from helpdesk.channels import accounts, queries
from helpdesk.channels.adapter import OutboundChatMessage
from helpdesk.channels.base import (
    OutboundDelivery,
    PermanentDeliveryError,
    RecipientUnreachableError,
)
from helpdesk.channels.registry import adapter_for
from helpdesk.config import Settings
from helpdesk.tickets import events


class ChatSender:
    def __init__(self, pool: asyncpg.Pool, settings: Settings, kind: str) -> None:
        self._pool = pool
        self._settings = settings
        self._kind = kind

    async def send(self, delivery: OutboundDelivery) -> str | None:
        adapter = adapter_for(self._kind, self._settings)
        if adapter is None:
            raise PermanentDeliveryError(f"the {self._kind} channel is not available")
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(queries.CHAT_REPLY, delivery.message_id)
            account = (
                None
                if row is None
                else await accounts.get_account(conn, self._kind, row["account"])
            )
            files = await conn.fetch(queries.ATTACHMENTS, delivery.message_id)
        if row is None or account is None or not account.active:
            name = row["account"] if row is not None else "?"
            raise PermanentDeliveryError(
                f"the {self._kind} account '{name}' is not configured or not active"
            )
        if row["conversation"] is None:
            raise PermanentDeliveryError(f"the ticket has no {self._kind} conversation to reply in")
        outbound = OutboundChatMessage(
            outbox_id=delivery.outbox_id,
            message_id=delivery.message_id,
            conversation_id=row["conversation"],
            text=row["body_text"],
            reply_to_external_id=row["answers"],
            attachments=tuple(
                (f["filename"], f["content_type"], bytes(f["content"])) for f in files
            ),
            last_inbound_at=row["last_inbound_at"],
            buttons=tuple((str(b[0]), str(b[1])) for b in (row["buttons"] or [])),
        )
        await delivery.handoff()
        try:
            return await adapter.send(account, outbound)
        except RecipientUnreachableError as error:
            await self._mark_unreachable(delivery, account.name, error.reason)
            raise

    async def _mark_unreachable(
        self, delivery: OutboundDelivery, account: str, reason: str
    ) -> None:
        """Remember on the customer's identity (and tell the agents on the ticket)."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                queries.MARK_UNREACHABLE,
                self._kind,
                account,
                delivery.customer_id,
                reason,
            )
            await events.record(
                conn,
                delivery.ticket_id,
                "customer_unreachable",
                {"channel": self._kind, "account": account, "reason": reason},
            )
