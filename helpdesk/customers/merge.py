"""Merging two customers that are one person into one."""

from __future__ import annotations

import asyncpg

from helpdesk.agents.models import Principal
from helpdesk.audit import service as audit
from helpdesk.config import Settings
from helpdesk.customers import queries, relationship
from helpdesk.customers.models import CustomerDetail
from helpdesk.customers.service import get_customer
from helpdesk.errors import InvalidInput, NotFound
from helpdesk.tickets import writer

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
        row = await conn.fetchrow(queries.LOCK_CUSTOMER, customer_id)
        if row is not None:
            locked[customer_id] = row
    if source_id not in locked:
        raise NotFound(f"Customer {source_id} not found")
    if target_id not in locked:
        raise NotFound(f"Customer {target_id} not found")
    source, target = locked[source_id], locked[target_id]
    identities = await conn.fetch(queries.MOVE_IDENTITIES, source_id, target_id)
    ticket_ids = await writer.move_to_customer(
        conn, source_id, target_id, actor_agent_id=principal.agent_id, reason=reason
    )
    moved = {
        f"{table}.{column}": await conn.fetchval(
            queries.move_references(table, column), source_id, target_id
        )
        for table, column in MOVED_WITH_THE_CUSTOMER
    }
    filled = [
        name
        for name in ("name", "email", "phone", "external_id", "language")
        if not target[name] and source[name]
    ]
    # Deleted before the target takes its external id (unique).
    await conn.execute(queries.DELETE_CUSTOMER, source_id)
    await conn.execute(
        queries.FILL_FROM_MERGED,
        target_id,
        source["name"],
        source["email"],
        source["phone"],
        source["external_id"],
        source["language"],
    )
    # What the target's own figures are derived from has changed.
    await conn.execute(queries.RECOUNT_CSAT, target_id)
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
