"""Which customer a contact belongs to: the find-or-create used when a ticket arrives or
a call is logged, identities (a customer as a channel knows it) and phone numbers.

An identity is unique per channel, so concurrent first contacts from one sender agree on
one customer. A partner agent is never linked to a customer outside its scope and never
claims an identity (`_partner_customer`).
"""

from __future__ import annotations

import re

import asyncpg
import msgspec

from helpdesk.agents.models import Principal
from helpdesk.customers import queries
from helpdesk.errors import InvalidInput
from helpdesk.tickets.models import CustomerRef

# What a caller's number must look like once the punctuation people type is removed.
PHONE_RULE = (
    "A phone number must start with + and a country code and have 6 to 15 digits, "
    "e.g. +420 601 234 567"
)
# The punctuation people type in phone numbers, dropped before numbers are compared.
PHONE_PUNCTUATION = re.compile(r"[\s().\-/]")
_E164ISH = re.compile(r"\+[0-9]{6,15}")


async def find_or_create(conn: asyncpg.Connection, principal: Principal, ref: CustomerRef) -> int:
    """The customer a new ticket belongs to; identities make this race-safe and unique.

    A partner agent is never linked to a customer outside its scope (`_partner_customer`).
    """
    if ref.id is None and principal.is_partner and (ref.email or ref.phone):
        number = ref.phone and normalize_phone(ref.phone)
        if ref.phone and not ref.email and number is None:
            raise InvalidInput(PHONE_RULE, field="customer.phone")
        return await _partner_customer(
            conn,
            principal,
            name=ref.name,
            email=ref.email.strip().lower() if ref.email else None,
            phone=number or ref.phone,
        )
    if ref.id is not None:
        sql, params = queries.customer_id(principal, ref.id)
        found = await conn.fetchval(sql, *params)
        if found is None:
            raise InvalidInput("Unknown customer", field="customer.id")
        return int(found)
    if ref.email:
        # The phone, if any, kept in the matching form (a verified WhatsApp number finds it).
        phone = ref.phone and (normalize_phone(ref.phone) or ref.phone)
        return await by_identity(
            conn, "email", ref.email.strip().lower(), msgspec.structs.replace(ref, phone=phone)
        )
    if ref.phone:
        number = normalize_phone(ref.phone)
        if number is None:
            raise InvalidInput(PHONE_RULE, field="customer.phone")
        return await by_phone(conn, number, ref.name)
    if not ref.name:
        raise InvalidInput("Give a customer id, e-mail, phone or at least a name", field="customer")
    new_id: int = await conn.fetchval(queries.INSERT_NAMED, ref.name)
    return new_id


async def _partner_customer(
    conn: asyncpg.Connection,
    principal: Principal,
    *,
    name: str,
    email: str | None = None,
    phone: str | None = None,
) -> int:
    """The customer a partner's new ticket belongs to, never one outside its scope.

    A customer the partner already sees (through a ticket of its groups) is reused when
    its identity or contact matches. Otherwise a new customer is made with the contact
    data on the row and no identity, whether or not the address or number belongs to
    somebody else: a partner's answer never depends on customers it cannot see, and an
    identity (which a partner did not prove) is never claimed. An internal agent merges
    the two when they are one person; a mail from the address links its identity to
    the one customer that has it (`helpdesk.customers.senders`).
    """
    sql, params = queries.partner_match(principal, email, phone)
    found = await conn.fetchval(sql, *params)
    if found is not None:
        return int(found)
    new_id: int = await conn.fetchval(queries.INSERT_WITH_CONTACT, name, email, phone)
    return new_id


async def call_customer(
    conn: asyncpg.Connection,
    principal: Principal,
    number: str,
    name: str,
    *,
    ticket_customer_id: int | None = None,
) -> int:
    """Whose call this is: `by_phone` for internal agents; for a partner, a customer it
    sees with that number, else the ticket's customer (a call logged on a ticket), else
    a new one; a partner never links a number to a customer or claims its identity."""
    if not principal.is_partner:
        return await by_phone(conn, number, name, fallback_customer_id=ticket_customer_id)
    if ticket_customer_id is None:
        return await _partner_customer(conn, principal, name=name, phone=number)
    sql, params = queries.partner_caller(principal, number, ticket_customer_id)
    found = await conn.fetchval(sql, *params)
    return ticket_customer_id if found is None else int(found)


async def lock_identity(
    conn: asyncpg.Connection, channel: str, account: str, external_id: str
) -> None:
    """Serialise the creation of one identity's customer until this transaction ends.

    Two messages of a new sender often arrive together (a customer types three chat
    lines in a row). Without this lock both transactions create a customer, one loses
    the identity's unique key and must delete its orphan; that DELETE checks every
    table that references customers and cost more than the messages themselves. Taken
    only after a lookup missed, and then the lookup is repeated: the waiter sees the
    winner's committed identity.
    """
    await conn.execute(queries.ADVISORY_LOCK, f"identity:{channel}:{account}:{external_id}")


async def by_identity(
    conn: asyncpg.Connection, channel: str, external_id: str, ref: CustomerRef
) -> int:
    """The customer known on `channel` as `external_id`, created (with `ref`'s data) if new."""
    existing = await conn.fetchval(queries.IDENTITY_OWNER, channel, external_id)
    if existing is not None:
        return int(existing)
    await lock_identity(conn, channel, "", external_id)
    existing = await conn.fetchval(queries.IDENTITY_OWNER, channel, external_id)
    if existing is not None:
        return int(existing)
    async with conn.transaction():  # a savepoint when the caller holds a transaction
        customer_id = await conn.fetchval(
            queries.INSERT_WITH_CONTACT, ref.name, ref.email, ref.phone
        )
        linked = await conn.fetchval(
            queries.LINK_IDENTITY, customer_id, channel, external_id, ref.name
        )
        if linked is None:  # linked meanwhile by a path that skips the lock: use theirs
            await conn.execute(queries.DELETE_CUSTOMER, customer_id)
            winner: int = await conn.fetchval(queries.IDENTITY_OWNER, channel, external_id)
            return winner
        return int(customer_id)


def normalize_phone(raw: str) -> str | None:
    """The one form a phone number is stored and matched in (`+420601234567`), or None.

    Spaces, dashes, dots, slashes and parentheses are dropped; what remains must be `+`
    and 6 to 15 ASCII digits. Phone identities and `customers.phone` of customers made
    from calls use this form, so a WhatsApp sender with the same verified number links
    to the same customer (`helpdesk.customers.senders._verified_match` compares exactly).
    """
    number = PHONE_PUNCTUATION.sub("", raw)
    return number if _E164ISH.fullmatch(number) else None


class _LostRace(Exception):
    """Another transaction linked the same number first: undo our savepoint, use theirs."""


async def _phone_owner(conn: asyncpg.Connection, number: str) -> int | None:
    owner = await conn.fetchval(queries.PHONE_OWNER, number)
    return None if owner is None else int(owner)


async def by_phone(
    conn: asyncpg.Connection, number: str, name: str, *, fallback_customer_id: int | None = None
) -> int:
    """The customer behind the normalized phone `number`, linked by a `phone` identity.

    An existing identity wins; else the one customer whose phone is that number; else
    `fallback_customer_id` (the customer of the ticket a call is logged on); else a new
    customer named `name`. The identity's uniqueness makes concurrent first calls from
    one number agree on one customer.
    """
    owner = await _phone_owner(conn, number)
    if owner is not None:
        return owner
    try:
        async with conn.transaction():  # a savepoint inside the caller's transaction
            matches = await conn.fetch(queries.WITH_PHONE, number)
            customer_id = int(matches[0]["id"]) if len(matches) == 1 else fallback_customer_id
            if customer_id is None:
                customer_id = await conn.fetchval(queries.INSERT_CALLER, name, number)
            else:
                await conn.execute(queries.FILL_PHONE, customer_id, number)
            linked = await conn.fetchval(queries.LINK_PHONE, customer_id, number, name)
            if linked is None:
                raise _LostRace
            return int(linked)
    except _LostRace:
        winner = await _phone_owner(conn, number)
        assert winner is not None  # the conflicting row is committed and identities stay
        return winner
