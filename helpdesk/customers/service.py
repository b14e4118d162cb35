"""Customer lookup, search, the find-or-create used when a ticket arrives, and merges."""

from __future__ import annotations

import re

import asyncpg
import msgspec

from helpdesk.agents.models import Principal
from helpdesk.agents.scope import ticket_scope
from helpdesk.audit import service as audit
from helpdesk.config import Settings
from helpdesk.customers import relationship
from helpdesk.customers.models import (
    BadExperience,
    CsatAnswer,
    CustomerDetail,
    CustomerOut,
    CustomerPage,
    HistoryEntry,
    IdentityOut,
    OrderOut,
    StageChange,
)
from helpdesk.db.sql import Params
from helpdesk.errors import InvalidInput, NotFound
from helpdesk.tickets import writer
from helpdesk.tickets.models import CustomerRef
from helpdesk.tickets.queries import TICKET_COLUMNS, ticket_out

# Every other (table, column) that references customers: a merge moves these rows as
# they are. Identities and tickets move first, with their own bookkeeping; a test
# compares this list with the schema's foreign keys, so a new table cannot be forgotten.
MOVED_BY_THEMSELVES = (("customer_identities", "customer_id"), ("tickets", "customer_id"))
MOVED_WITH_THE_CUSTOMER = (
    ("messages", "author_customer_id"),
    ("conversations", "customer_id"),
    ("customer_orders", "customer_id"),
    ("customer_stage_history", "customer_id"),
    ("bad_experiences", "customer_id"),
    ("csat_surveys", "customer_id"),
)

# What a caller's number must look like once the punctuation people type is removed.
PHONE_RULE = (
    "A phone number must start with + and a country code and have 6 to 15 digits, "
    "e.g. +420 601 234 567"
)
_PHONE_PUNCTUATION = re.compile(r"[\s().\-/]")
_E164ISH = re.compile(r"\+[0-9]{6,15}")


def customer_out(row: asyncpg.Record, principal: Principal | None = None) -> CustomerOut:
    """The profile; a partner agent gets no internal notes."""
    return CustomerOut(
        id=row["id"],
        name=row["name"],
        email=row["email"],
        phone=row["phone"],
        external_id=row["external_id"],
        language=row["language"],
        created_at=row["created_at"],
        organization=row["organization"],
        tags=list(row["tags"]),
        notes="" if principal is not None and principal.is_partner else row["notes"],
        lifecycle_stage=row["lifecycle_stage"],
        stage_source=row["stage_source"],
        at_risk=row["at_risk"],
        at_risk_since=row["at_risk_since"],
        csat_average=row["csat_average"],
        csat_count=row["csat_count"],
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
        # Phones compare without punctuation: "777 123" finds "+420777123456".
        digits = params.add(_PHONE_PUNCTUATION.sub("", q))
        where.append(
            f"""(strpos(helpdesk_fold(c.name), helpdesk_fold({needle})) > 0
                 OR strpos(lower(coalesce(c.email, '')), lower({needle})) > 0
                 OR ({digits} <> '' AND strpos(
                        regexp_replace(coalesce(c.phone, ''), '[[:space:]()./-]', '', 'g'),
                        {digits}) > 0)
                 OR c.external_id = {needle})"""
        )
    if before_id is not None:
        where.append(f"c.id < {params.add(before_id)}")
    rows = await conn.fetch(
        f"""SELECT c.* FROM customers c WHERE {" AND ".join(where)}
            ORDER BY c.id DESC LIMIT {params.add(limit + 1)}""",
        *params.values,
    )
    items = [customer_out(r, principal) for r in rows[:limit]]
    next_cursor = str(items[-1].id) if len(rows) > limit else None
    return CustomerPage(items=items, next_cursor=next_cursor)


async def timeline(
    conn: asyncpg.Connection,
    principal: Principal,
    customer_id: int,
    before: int | None,
    limit: int,
) -> list[HistoryEntry]:
    """One page (plus one, to tell whether more follow) of the customer's messages."""
    await get_customer_row(conn, principal, customer_id)
    params = Params()
    scope = ticket_scope(principal, params)
    where = [f"t.customer_id = {params.add(customer_id)}", scope]
    if principal.is_partner:
        where.append("NOT m.internal_only")
    if before is not None:
        where.append(f"m.id < {params.add(before)}")
    rows = await conn.fetch(
        f"""SELECT m.id AS message_id, m.ticket_id, t.number AS ticket_number, m.channel,
                   m.direction, m.kind, left(m.body_text, 200) AS excerpt, m.created_at
            FROM messages m JOIN tickets t ON t.id = m.ticket_id
            WHERE {" AND ".join(where)}
            ORDER BY m.id DESC LIMIT {params.add(limit + 1)}""",
        *params.values,
    )
    return [HistoryEntry(**{key: r[key] for key in HistoryEntry.__struct_fields__}) for r in rows]


async def get_customer_row(
    conn: asyncpg.Connection, principal: Principal, customer_id: int
) -> asyncpg.Record:
    params = Params()
    visible = _visible(principal, params)
    row = await conn.fetchrow(
        f"SELECT c.* FROM customers c WHERE c.id = {params.add(customer_id)} AND {visible}",
        *params.values,
    )
    if row is None:
        raise NotFound(f"Customer {customer_id} not found")
    return row


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
    params = Params()
    scope = ticket_scope(principal, params)
    history = await conn.fetch(
        f"""SELECT m.id AS message_id, m.ticket_id, t.number AS ticket_number, m.channel,
                   m.direction, m.kind, left(m.body_text, 200) AS excerpt, m.created_at
            FROM messages m JOIN tickets t ON t.id = m.ticket_id
            WHERE t.customer_id = {params.add(customer_id)} AND {scope}
            ORDER BY m.created_at DESC, m.id DESC LIMIT 100""",
        *params.values,
    )
    params = Params()
    scope = ticket_scope(principal, params)
    ratings = await conn.fetch(
        f"""SELECT s.ticket_id, t.number AS ticket_number, s.rating, s.comment, s.answered_at
            FROM csat_surveys s JOIN tickets t ON t.id = s.ticket_id
            WHERE t.customer_id = {params.add(customer_id)} AND s.rating IS NOT NULL
              AND {scope}
            ORDER BY s.answered_at DESC, s.id DESC LIMIT 50""",
        *params.values,
    )
    orders = await conn.fetch(
        """SELECT * FROM customer_orders WHERE customer_id = $1
           ORDER BY ordered_at DESC LIMIT 50""",
        customer_id,
    )
    stages = await conn.fetch(
        "SELECT * FROM customer_stage_history WHERE customer_id = $1 ORDER BY id DESC LIMIT 50",
        customer_id,
    )
    bad = await conn.fetch(
        """SELECT * FROM bad_experiences WHERE customer_id = $1
           ORDER BY created_at DESC LIMIT 50""",
        customer_id,
    )
    if principal.is_partner:  # what the ticket needs, not the relationship's history
        stages, bad = [], []
    return CustomerDetail(
        orders=[
            OrderOut(
                external_id=o["external_id"],
                number=o["number"],
                status=o["status"],
                total=float(o["total"]),
                currency=o["currency"],
                ordered_at=o["ordered_at"],
            )
            for o in orders
        ],
        stage_history=[
            StageChange(
                from_stage=h["from_stage"],
                to_stage=h["to_stage"],
                cause=h["cause"],
                actor_agent_id=h["actor_agent_id"],
                created_at=h["created_at"],
            )
            for h in stages
        ],
        bad_experiences=[
            BadExperience(
                ticket_id=b["ticket_id"],
                kind=b["kind"],
                detail=b["detail"],
                created_at=b["created_at"],
            )
            for b in bad
        ],
        customer=customer_out(row, principal),
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
        csat=[CsatAnswer(**dict(r)) for r in ratings],
        history=[
            HistoryEntry(**{key: h[key] for key in HistoryEntry.__struct_fields__}) for h in history
        ],
    )


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
    new_id: int = await conn.fetchval(
        "INSERT INTO customers (name) VALUES ($1) RETURNING id", ref.name
    )
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
    the one customer that has it (`helpdesk.channels.ingest`).
    """
    params = Params()
    visible = _visible(principal, params)
    if email:
        match = f"lower(c.email) = lower({params.add(email)})"
        identity = (
            f"c.id IN (SELECT i.customer_id FROM customer_identities i WHERE i.channel = 'email'"
            f" AND i.channel_account = '' AND i.external_id = lower({params.add(email)}))"
        )
    else:
        assert phone is not None
        number = params.add(phone)
        match = f"regexp_replace(coalesce(c.phone, ''), '[[:space:]()./-]', '', 'g') = {number}"
        identity = (
            f"c.id IN (SELECT i.customer_id FROM customer_identities i WHERE i.channel = 'phone'"
            f" AND i.channel_account = '' AND i.external_id = {number})"
        )
    found = await conn.fetchval(
        f"""SELECT c.id FROM customers c WHERE ({identity} OR {match}) AND {visible}
            ORDER BY ({identity}) DESC, c.id DESC LIMIT 1""",
        *params.values,
    )
    if found is not None:
        return int(found)
    new_id: int = await conn.fetchval(
        "INSERT INTO customers (name, email, phone) VALUES ($1, $2, $3) RETURNING id",
        name,
        email,
        phone,
    )
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
    params = Params()
    visible = _visible(principal, params)
    digits = params.add(number)
    found = await conn.fetchval(
        f"""SELECT c.id FROM customers c
            WHERE (c.id IN (SELECT i.customer_id FROM customer_identities i
                            WHERE i.channel = 'phone' AND i.channel_account = ''
                              AND i.external_id = {digits})
                   OR regexp_replace(coalesce(c.phone, ''), '[[:space:]()./-]', '', 'g')
                      = {digits})
              AND {visible}
            ORDER BY (c.id = {params.add(ticket_customer_id)}) DESC, c.id DESC LIMIT 1""",
        *params.values,
    )
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
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        f"identity:{channel}:{account}:{external_id}",
    )


_IDENTITY_OWNER = """SELECT customer_id FROM customer_identities
WHERE channel = $1 AND channel_account = '' AND external_id = $2"""


async def by_identity(
    conn: asyncpg.Connection, channel: str, external_id: str, ref: CustomerRef
) -> int:
    """The customer known on `channel` as `external_id`, created (with `ref`'s data) if new."""
    existing = await conn.fetchval(_IDENTITY_OWNER, channel, external_id)
    if existing is not None:
        return int(existing)
    await lock_identity(conn, channel, "", external_id)
    existing = await conn.fetchval(_IDENTITY_OWNER, channel, external_id)
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
        if linked is None:  # linked meanwhile by a path that skips the lock: use theirs
            await conn.execute("DELETE FROM customers WHERE id = $1", customer_id)
            winner: int = await conn.fetchval(_IDENTITY_OWNER, channel, external_id)
            return winner
        return int(customer_id)


def normalize_phone(raw: str) -> str | None:
    """The one form a phone number is stored and matched in (`+420601234567`), or None.

    Spaces, dashes, dots, slashes and parentheses are dropped; what remains must be `+`
    and 6 to 15 ASCII digits. Phone identities and `customers.phone` of customers made
    from calls use this form, so a WhatsApp sender with the same verified number links
    to the same customer (`helpdesk.customers.senders._verified_match` compares exactly).
    """
    number = _PHONE_PUNCTUATION.sub("", raw)
    return number if _E164ISH.fullmatch(number) else None


class _LostRace(Exception):
    """Another transaction linked the same number first: undo our savepoint, use theirs."""


async def _phone_owner(conn: asyncpg.Connection, number: str) -> int | None:
    owner = await conn.fetchval(
        """SELECT customer_id FROM customer_identities
           WHERE channel = 'phone' AND channel_account = '' AND external_id = $1""",
        number,
    )
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
            matches = await conn.fetch(
                """SELECT id FROM customers
                   WHERE regexp_replace(phone, '[[:space:]()./-]', '', 'g') = $1 LIMIT 2""",
                number,
            )
            customer_id = int(matches[0]["id"]) if len(matches) == 1 else fallback_customer_id
            if customer_id is None:
                customer_id = await conn.fetchval(
                    "INSERT INTO customers (name, phone) VALUES ($1, $2) RETURNING id",
                    name,
                    number,
                )
            else:
                await conn.execute(
                    """UPDATE customers SET phone = $2, updated_at = clock_timestamp()
                       WHERE id = $1 AND coalesce(phone, '') = ''""",
                    customer_id,
                    number,
                )
            linked = await conn.fetchval(
                """INSERT INTO customer_identities (customer_id, channel, external_id,
                                                   display_name)
                   VALUES ($1, 'phone', $2, $3) ON CONFLICT DO NOTHING RETURNING customer_id""",
                customer_id,
                number,
                name,
            )
            if linked is None:
                raise _LostRace
            return int(linked)
    except _LostRace:
        winner = await _phone_owner(conn, number)
        assert winner is not None  # the conflicting row is committed and identities stay
        return winner


async def merge_customers(
    conn: asyncpg.Connection,
    principal: Principal,
    source_id: int,
    target_id: int,
    reason: str | None,
    settings: Settings | None = None,
) -> CustomerDetail:
    """Make `source_id` part of `target_id`: one person, one customer.

    Every row that references the source moves to the target (identities, tickets,
    then `MOVED_WITH_THE_CUSTOMER`: authored messages, conversations, orders, stage
    history, bad experiences, surveys); the target's satisfaction figures are counted
    again and, with `settings`, its stage and at-risk flag derived again. The target's
    empty name, e-mail, phone, external id and language are filled from the source; the
    source row is then deleted (nothing references it any more, and a husk would show
    up in searches). Each moved ticket gets a `customer_merged` event and the merge an
    audit row. Both rows are locked in id order, so opposite concurrent merges of one
    pair serialise: the second finds its source gone (404) instead of deadlocking.
    Runs in the caller's transaction.
    """
    if source_id == target_id:
        raise InvalidInput("A customer cannot be merged into itself", field="into_customer_id")
    locked: dict[int, asyncpg.Record] = {}
    for customer_id in sorted((source_id, target_id)):
        row = await conn.fetchrow("SELECT * FROM customers WHERE id = $1 FOR UPDATE", customer_id)
        if row is not None:
            locked[customer_id] = row
    if source_id not in locked:
        raise NotFound(f"Customer {source_id} not found")
    if target_id not in locked:
        raise NotFound(f"Customer {target_id} not found")
    source, target = locked[source_id], locked[target_id]
    identities = await conn.fetch(
        "UPDATE customer_identities SET customer_id = $2 WHERE customer_id = $1 RETURNING id",
        source_id,
        target_id,
    )
    ticket_ids = await writer.move_to_customer(
        conn, source_id, target_id, actor_agent_id=principal.agent_id, reason=reason
    )
    moved = {
        f"{table}.{column}": await conn.fetchval(
            f"""WITH m AS (UPDATE {table} SET {column} = $2 WHERE {column} = $1 RETURNING 1)
                SELECT count(*) FROM m""",
            source_id,
            target_id,
        )
        for table, column in MOVED_WITH_THE_CUSTOMER
    }
    filled = [
        name
        for name in ("name", "email", "phone", "external_id", "language")
        if not target[name] and source[name]
    ]
    # Deleted before the target takes its external id (unique).
    await conn.execute("DELETE FROM customers WHERE id = $1", source_id)
    await conn.execute(
        """UPDATE customers SET
               name = CASE WHEN name = '' THEN $2 ELSE name END,
               email = coalesce(nullif(email, ''), $3),
               phone = coalesce(nullif(phone, ''), $4),
               external_id = coalesce(nullif(external_id, ''), $5),
               language = coalesce(nullif(language, ''), $6),
               updated_at = clock_timestamp()
           WHERE id = $1""",
        target_id,
        source["name"],
        source["email"],
        source["phone"],
        source["external_id"],
        source["language"],
    )
    # What the target's own figures are derived from has changed.
    await conn.execute(
        """UPDATE customers c SET csat_count = s.n, csat_average = s.average
           FROM (SELECT count(*) AS n, avg(rating)::real AS average FROM csat_surveys
                 WHERE customer_id = $1 AND rating IS NOT NULL) s
           WHERE c.id = $1""",
        target_id,
    )
    if settings is not None:
        await relationship.rederive(conn, target_id, settings)
        await relationship.evaluate_risk(conn, target_id, settings)
    await audit.record(
        conn,
        action="customer.merge",
        outcome="allowed",
        actor=principal,
        object_type="customer",
        object_id=target_id,
        detail={
            "from_customer_id": source_id,
            "into_customer_id": target_id,
            "ticket_ids": ticket_ids,
            "identities_moved": len(identities),
            "moved": moved,
            "filled": filled,
            "reason": reason,
        },
    )
    return await get_customer(conn, principal, target_id)
