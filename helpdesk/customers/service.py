"""Customer profiles: search, one customer's detail and timeline, the at-risk list.

Which customer a contact or identity belongs to is `identities`; merging two customers is
`merge`; imports, stages and the at-risk flag are `relationship`.
"""

from __future__ import annotations

import asyncpg

from helpdesk.agents.models import Principal
from helpdesk.customers import queries
from helpdesk.customers.identities import PHONE_PUNCTUATION
from helpdesk.customers.models import (
    AtRiskCustomer,
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
from helpdesk.errors import NotFound
from helpdesk.tickets.queries import ticket_out


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


def _bad_experience(row: asyncpg.Record) -> BadExperience:
    return BadExperience(
        ticket_id=row["ticket_id"],
        kind=row["kind"],
        detail=row["detail"],
        created_at=row["created_at"],
    )


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
    # Phones compare without punctuation: "777 123" finds "+420777123456".
    digits = PHONE_PUNCTUATION.sub("", q) if q else ""
    sql, params = queries.search(principal, q, digits, before_id, limit)
    rows = await conn.fetch(sql, *params)
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
    sql, params = queries.timeline(principal, customer_id, before, limit)
    rows = await conn.fetch(sql, *params)
    return [HistoryEntry(**{key: r[key] for key in HistoryEntry.__struct_fields__}) for r in rows]


async def get_customer_row(
    conn: asyncpg.Connection, principal: Principal, customer_id: int
) -> asyncpg.Record:
    sql, params = queries.customer(principal, customer_id)
    row = await conn.fetchrow(sql, *params)
    if row is None:
        raise NotFound(f"Customer {customer_id} not found")
    return row


async def get_customer(
    conn: asyncpg.Connection, principal: Principal, customer_id: int
) -> CustomerDetail:
    row = await get_customer_row(conn, principal, customer_id)
    identities = await conn.fetch(queries.IDENTITIES, customer_id)
    sql, params = queries.tickets(principal, customer_id)
    tickets = await conn.fetch(sql, *params)
    sql, params = queries.history(principal, customer_id)
    history = await conn.fetch(sql, *params)
    sql, params = queries.ratings(principal, customer_id)
    ratings = await conn.fetch(sql, *params)
    orders = await conn.fetch(queries.ORDERS, customer_id)
    stages = await conn.fetch(queries.STAGE_HISTORY, customer_id)
    bad = await conn.fetch(queries.BAD_EXPERIENCES, customer_id)
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
        bad_experiences=[_bad_experience(b) for b in bad],
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


async def customers_at_risk(conn: asyncpg.Connection, principal: Principal) -> list[AtRiskCustomer]:
    """Customers flagged at risk, longest first, with the bad experiences behind it."""
    found = []
    for row in await conn.fetch(queries.AT_RISK):
        reasons = await conn.fetch(queries.AT_RISK_REASONS, row["id"])
        found.append(
            AtRiskCustomer(
                customer=customer_out(row, principal),
                reasons=[_bad_experience(r) for r in reasons],
            )
        )
    return found
