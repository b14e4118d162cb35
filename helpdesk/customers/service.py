"""Customer lookup, search and the find-or-create used when a ticket arrives."""

from __future__ import annotations

import asyncpg

from helpdesk.agents.models import Principal
from helpdesk.agents.scope import ticket_scope
from helpdesk.customers.models import CustomerDetail, CustomerOut, CustomerPage, IdentityOut
from helpdesk.db.sql import Params
from helpdesk.errors import InvalidInput, NotFound
from helpdesk.tickets.models import CustomerRef
from helpdesk.tickets.queries import TICKET_COLUMNS, ticket_out


def customer_out(row: asyncpg.Record) -> CustomerOut:
    return CustomerOut(
        id=row["id"],
        name=row["name"],
        email=row["email"],
        phone=row["phone"],
        external_id=row["external_id"],
        language=row["language"],
        created_at=row["created_at"],
    )


def _visible(principal: Principal, params: Params, customer_alias: str = "c") -> str:
    """A partner sees a customer only through a ticket it may see."""
    if not principal.is_partner:
        return "TRUE"
    scope = ticket_scope(principal, params, "t")
    return f"EXISTS (SELECT 1 FROM tickets t WHERE t.customer_id = {customer_alias}.id AND {scope})"


async def search_customers(
    conn: asyncpg.Connection,
    principal: Principal,
    q: str | None,
    before_id: int | None,
    limit: int,
) -> CustomerPage:
    """Newest first; `q` matches name, e-mail, phone or external id literally.

    Matching ignores case and (for names) diacritics; `%`, `_` and `\\` are plain characters.
    """
    params = Params()
    where = [_visible(principal, params)]
    if q:
        needle = params.add(q)
        where.append(
            f"""(strpos(helpdesk_fold(c.name), helpdesk_fold({needle})) > 0
                 OR strpos(lower(coalesce(c.email, '')), lower({needle})) > 0
                 OR strpos(coalesce(c.phone, ''), {needle}) > 0
                 OR c.external_id = {needle})"""
        )
    if before_id is not None:
        where.append(f"c.id < {params.add(before_id)}")
    rows = await conn.fetch(
        f"""SELECT c.* FROM customers c WHERE {" AND ".join(where)}
            ORDER BY c.id DESC LIMIT {params.add(limit + 1)}""",
        *params.values,
    )
    items = [customer_out(r) for r in rows[:limit]]
    next_cursor = str(items[-1].id) if len(rows) > limit else None
    return CustomerPage(items=items, next_cursor=next_cursor)


async def get_customer(
    conn: asyncpg.Connection, principal: Principal, customer_id: int
) -> CustomerDetail:
    params = Params()
    visible = _visible(principal, params)
    row = await conn.fetchrow(
        f"SELECT c.* FROM customers c WHERE c.id = {params.add(customer_id)} AND {visible}",
        *params.values,
    )
    if row is None:
        raise NotFound(f"Customer {customer_id} not found")
    identities = await conn.fetch(
        "SELECT * FROM customer_identities WHERE customer_id = $1 ORDER BY id", customer_id
    )
    params = Params()
    scope = ticket_scope(principal, params)
    tickets = await conn.fetch(
        f"""SELECT {TICKET_COLUMNS} FROM tickets t
            WHERE t.customer_id = {params.add(customer_id)} AND {scope}
            ORDER BY t.created_at DESC, t.id DESC LIMIT 100""",
        *params.values,
    )
    return CustomerDetail(
        customer=customer_out(row),
        identities=[
            IdentityOut(
                id=i["id"],
                channel=i["channel"],
                channel_account=i["channel_account"],
                external_id=i["external_id"],
                display_name=i["display_name"],
            )
            for i in identities
        ],
        tickets=[ticket_out(t) for t in tickets],
    )


async def find_or_create(conn: asyncpg.Connection, principal: Principal, ref: CustomerRef) -> int:
    """The customer a new ticket belongs to; identities make this race-safe and unique."""
    if ref.id is not None:
        params = Params()
        visible = _visible(principal, params)
        found = await conn.fetchval(
            f"SELECT c.id FROM customers c WHERE c.id = {params.add(ref.id)} AND {visible}",
            *params.values,
        )
        if found is None:
            raise InvalidInput("Unknown customer", field="customer.id")
        return int(found)
    if ref.email:
        return await by_identity(conn, "email", ref.email.strip().lower(), ref)
    if ref.phone:
        digits = "".join(ch for ch in ref.phone if ch.isdigit() or ch == "+")
        return await by_identity(conn, "phone", digits, ref)
    if not ref.name:
        raise InvalidInput("Give a customer id, e-mail, phone or at least a name", field="customer")
    new_id: int = await conn.fetchval(
        "INSERT INTO customers (name) VALUES ($1) RETURNING id", ref.name
    )
    return new_id


async def by_identity(
    conn: asyncpg.Connection, channel: str, external_id: str, ref: CustomerRef
) -> int:
    """The customer known on `channel` as `external_id`, created (with `ref`'s data) if new."""
    existing = await conn.fetchval(
        """SELECT customer_id FROM customer_identities
           WHERE channel = $1 AND channel_account = '' AND external_id = $2""",
        channel,
        external_id,
    )
    if existing is not None:
        return int(existing)
    async with conn.transaction():  # a savepoint when the caller holds a transaction
        customer_id = await conn.fetchval(
            "INSERT INTO customers (name, email, phone) VALUES ($1, $2, $3) RETURNING id",
            ref.name,
            ref.email,
            ref.phone,
        )
        linked = await conn.fetchval(
            """INSERT INTO customer_identities (customer_id, channel, external_id, display_name)
               VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING customer_id""",
            customer_id,
            channel,
            external_id,
            ref.name,
        )
        if linked is None:  # someone else created this person meanwhile: use theirs
            await conn.execute("DELETE FROM customers WHERE id = $1", customer_id)
            winner: int = await conn.fetchval(
                """SELECT customer_id FROM customer_identities
                   WHERE channel = $1 AND channel_account = '' AND external_id = $2""",
                channel,
                external_id,
            )
            return winner
        return int(customer_id)
