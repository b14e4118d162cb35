"""Who wrote: the customer behind a channel's sender, found or created at intake.

A chat sender is an identity per (channel, account, provider id); a mail address is one
identity whatever mailbox it wrote to. A new identity joins an existing customer only
through an identifier the provider verified (email, phone) that matches exactly one
customer; never through a name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg

from helpdesk.channels.adapter import SenderIdentity
from helpdesk.customers import identities as customers
from helpdesk.customers import queries
from helpdesk.tickets.models import CustomerRef


async def customer_for(
    conn: asyncpg.Connection, channel: str, account: str, sender: SenderIdentity
) -> int:
    """The id of the customer behind `sender`, created if new (see `customer_row_for`)."""
    row = await customer_row_for(conn, channel, account, sender)
    return int(row["id"])


async def customer_row_for(
    conn: asyncpg.Connection, channel: str, account: str, sender: SenderIdentity
) -> Mapping[str, Any]:
    """The customer behind `sender` (its `customers` row), created if new.

    A new identity joins an existing customer only through an identifier the provider
    verified (email, phone) that matches exactly one customer; never through a name.
    """
    key = (channel, account, sender.external_id)
    existing: Mapping[str, Any] | None = await conn.fetchrow(queries.SENDER_CUSTOMER, *key)
    if existing is not None:
        return await _named_at_last(conn, key, existing, sender)
    await customers.lock_identity(conn, *key)
    existing = await conn.fetchrow(queries.SENDER_CUSTOMER, *key)
    if existing is not None:  # created by the transaction we waited for
        return existing
    name = sender.display_name[:200]
    customer_id = await _verified_match(conn, sender)
    if customer_id is None:
        created: asyncpg.Record = await conn.fetchrow(
            queries.NEW_SENDER, *key, name, sender.email, sender.phone
        )
        if created["linked"]:
            return {k: v for k, v in created.items() if k != "linked"}
        await conn.execute(queries.DELETE_CUSTOMER, created["id"])
    else:
        await conn.execute(queries.LINK_SENDER, customer_id, *key, name)
    winner: Mapping[str, Any] = await conn.fetchrow(queries.SENDER_CUSTOMER, *key)
    return winner


async def _named_at_last(
    conn: asyncpg.Connection,
    key: tuple[str, str, str],
    customer: Mapping[str, Any],
    sender: SenderIdentity,
) -> Mapping[str, Any]:
    """A customer first known only by the provider's id (its name could not be looked
    up then) takes the name the provider gives now; a name an agent set is kept."""
    name = sender.display_name[:200]
    if customer["name"] != sender.external_id or not name or name == sender.external_id:
        return customer
    await conn.execute(queries.NAME_SENDER, *key, name)
    renamed: Mapping[str, Any] | None = await conn.fetchrow(
        queries.NAME_CUSTOMER,
        customer["id"],
        name,
        sender.external_id,
    )
    return renamed or customer


async def _verified_match(conn: asyncpg.Connection, sender: SenderIdentity) -> int | None:
    candidates: list[asyncpg.Record] = []
    if sender.email:
        candidates = await conn.fetch(queries.BY_VERIFIED_EMAIL, sender.email)
    if not candidates and sender.phone:
        candidates = await conn.fetch(queries.BY_VERIFIED_PHONE, sender.phone)
    return int(candidates[0]["id"]) if len(candidates) == 1 else None


async def mail_customer(conn: asyncpg.Connection, sender: SenderIdentity) -> int:
    """The customer behind a mail's sender: its address is the identity (`sender.email`,
    any mailbox). A mail without a usable From (unknown or ambiguous sender) gets a new
    customer of its own, never linked to an existing one."""
    name = sender.display_name[:200]
    if sender.email:
        return await customers.by_identity(
            conn, "email", sender.email, CustomerRef(email=sender.email, name=name)
        )
    customer_id: int = await conn.fetchval(queries.INSERT_NAMED, name or "Unknown sender")
    return customer_id
