"""The customer relationship: imports from an e-shop or CRM, lifecycle stages, bad
experiences and the at-risk flag.

Stages change only through `set_stage` (by hand or by an integration: kept as `manual`)
and `rederive` (the rules of `lifecycle.py`, for derived stages only); both write the
history with the cause. A bad experience is recorded at most once per ticket and kind;
the customer is at risk with `risk_threshold` of them within `risk_window_days`. The flag
clears (rule, documented in the README) when a later check finds fewer than the threshold
in the window, or when the customer rates a ticket 4 or 5 after being flagged. Changes of
stage or flag re-choose the SLA policy of the customer's open tickets, since policies and
routing rules may look at both.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import asyncpg

from helpdesk.agents.models import Principal
from helpdesk.config import Settings
from helpdesk.customers import lifecycle, queries
from helpdesk.customers.models import CustomerUpsert, UpsertResult
from helpdesk.sla import refresh as sla_refresh

OPEN = ("new", "open", "pending", "on_hold")


async def _reselect_open_tickets(
    conn: asyncpg.Connection, customer_id: int, settings: Settings
) -> None:
    rows = await conn.fetch(queries.OPEN_TICKETS, customer_id, list(OPEN))
    for row in rows:
        await sla_refresh.refresh(conn, row["id"], settings.sla, reselect=True)


async def _change_stage(
    conn: asyncpg.Connection,
    customer_id: int,
    stage: str,
    source: str,
    cause: str,
    actor: int | None,
    settings: Settings,
) -> bool:
    row = await conn.fetchrow(queries.LOCK_STAGE, customer_id)
    if row is None or (row["lifecycle_stage"], row["stage_source"]) == (stage, source):
        return False
    await conn.execute(queries.SET_STAGE, customer_id, stage, source)
    if row["lifecycle_stage"] != stage:
        await conn.execute(
            queries.RECORD_STAGE_CHANGE,
            customer_id,
            row["lifecycle_stage"],
            stage,
            cause,
            actor,
        )
        await _reselect_open_tickets(conn, customer_id, settings)
    return True


async def rederive(
    conn: asyncpg.Connection, customer_id: int, settings: Settings, now: datetime | None = None
) -> str:
    """Apply the lifecycle rules to a derived stage; returns the stage."""
    row = await conn.fetchrow(queries.STAGE, customer_id)
    if row["stage_source"] == "manual":
        return str(row["lifecycle_stage"])
    now = now or await conn.fetchval(queries.NOW)
    assert now is not None
    orders = await conn.fetch(queries.ORDER_FIGURES, customer_id)
    stage, cause = lifecycle.derive(
        [(o["ordered_at"], float(o["total"])) for o in orders], now, settings.customers
    )
    await _change_stage(conn, customer_id, stage, "derived", cause, None, settings)
    return stage


async def set_stage(
    conn: asyncpg.Connection,
    customer_id: int,
    stage: str,
    reason: str | None,
    actor: Principal | None,
    settings: Settings,
) -> str:
    """A stage set by an agent or integration (kept), or `derived` to hand it back."""
    who = f"set by agent {actor.agent_id}" if actor else "set by an integration"
    if stage == "derived":
        await conn.execute(queries.HAND_BACK_STAGE, customer_id)
        return await rederive(conn, customer_id, settings)
    cause = who + (f": {reason}" if reason else "")
    await _change_stage(
        conn, customer_id, stage, "manual", cause, actor.agent_id if actor else None, settings
    )
    return stage


async def upsert(
    conn: asyncpg.Connection,
    data: CustomerUpsert,
    actor: Principal | None,
    settings: Settings,
) -> UpsertResult:
    """Create or update the customer with this external id, then its orders; the stage is
    derived again from the orders (unless set by hand or in `data.stage`)."""
    await conn.execute(queries.ADVISORY_LOCK, f"customer:{data.external_id}")
    existing = await conn.fetchval(queries.BY_EXTERNAL_ID, data.external_id)
    created = existing is None
    if existing is None and data.email:
        # The shop knows this address: a customer we met on a channel with exactly that
        # address (and no other shop id) becomes this one, instead of a duplicate.
        matches = await conn.fetch(queries.UNIMPORTED_WITH_EMAIL, data.email)
        if len(matches) == 1:
            existing = matches[0]["id"]
            created = False
    if existing is None:
        existing = await conn.fetchval(queries.INSERT_IMPORTED, data.name or "", data.external_id)
    await conn.execute(
        queries.UPDATE_IMPORTED,
        existing,
        data.external_id,
        data.name,
        data.email,
        data.phone,
        data.language,
        data.organization,
        None if data.tags is None else sorted(set(data.tags)),
        data.notes,
    )
    if data.email:
        # The shop verified this address: mail and API tickets from it find this customer.
        await conn.execute(
            queries.LINK_VERIFIED_EMAIL,
            existing,
            data.email.strip().lower(),
            data.name or "",
        )
    for order in data.orders:
        await conn.execute(
            queries.UPSERT_ORDER,
            existing,
            order.external_id,
            order.number,
            order.status,
            order.total,
            order.currency,
            order.ordered_at,
        )
    if data.stage is not None:
        stage = await set_stage(conn, existing, data.stage, None, actor, settings)
    else:
        stage = await rederive(conn, existing, settings)
    return UpsertResult(
        external_id=data.external_id, customer_id=int(existing), created=created, stage=stage
    )


async def mark_inactive(conn: asyncpg.Connection, settings: Settings) -> int:
    """Derived customers whose last order is older than the inactivity period."""
    rows = await conn.fetch(queries.INACTIVE, settings.customers.inactive_after_days)
    for row in rows:
        async with conn.transaction():
            await rederive(conn, row["id"], settings)
    return len(rows)


# --- bad experiences and the at-risk flag ---------------------------------------------------


async def record_bad_experience(
    conn: asyncpg.Connection, ticket_id: int, kind: str, detail: str
) -> bool:
    """Once per ticket and kind, in the caller's transaction; the worker counts it towards
    the at-risk flag (`evaluate_pending`). True when recorded."""
    inserted = await conn.fetchval(queries.RECORD_BAD_EXPERIENCE, ticket_id, kind, detail[:500])
    return inserted is not None


async def reopened_after_solved(conn: asyncpg.Connection, ticket_id: int, how: str) -> bool:
    """A solved ticket opened again (`how`: by whom) is a bad experience for its
    customer; see `record_bad_experience`."""
    return await record_bad_experience(conn, ticket_id, "reopened", how)


async def evaluate_pending(conn: asyncpg.Connection, settings: Settings) -> int:
    """Evaluate the customers with new bad experiences, and the flagged ones (whose old
    experiences may have left the window); returns how many were evaluated."""
    rows = await conn.fetch(queries.TO_EVALUATE)
    for row in rows:
        async with conn.transaction():
            changed = await evaluate_risk(conn, row["customer_id"], settings, reselect=False)
            await conn.execute(queries.MARK_EVALUATED, row["customer_id"])
        if changed:  # after the commit, one ticket at a time: no long-held locks
            await reselect_each(conn, row["customer_id"], settings)
    return len(rows)


async def reselect_each(conn: asyncpg.Connection, customer_id: int, settings: Settings) -> None:
    """Re-choose the SLA policy of the customer's open tickets, each in its own transaction."""
    rows = await conn.fetch(queries.OPEN_TICKETS, customer_id, list(OPEN))
    for row in rows:
        async with conn.transaction():
            await sla_refresh.refresh(conn, row["id"], settings.sla, reselect=True)


async def evaluate_risk(
    conn: asyncpg.Connection, customer_id: int, settings: Settings, *, reselect: bool = True
) -> bool:
    """Flag or clear the customer from the bad experiences in the window; True when the
    flag changed. With `reselect=False` the caller re-chooses the tickets' policies."""
    customer = await conn.fetchrow(queries.LOCK_RISK, customer_id)
    window = timedelta(days=settings.customers.risk_window_days)
    count = await conn.fetchval(
        queries.COUNT_BAD_EXPERIENCES,
        customer_id,
        window,
        list(settings.customers.bad_experience_kinds),
    )
    at_risk = count >= settings.customers.risk_threshold
    if at_risk == customer["at_risk"]:
        return False
    await conn.execute(queries.SET_AT_RISK, customer_id, at_risk)
    if at_risk:
        supervisors = await conn.fetch(queries.SUPERVISORS)
        text = (
            f"Customer {customer['name'] or customer_id} is at risk: {count} bad experiences "
            f"in {settings.customers.risk_window_days} days"
        )
        for supervisor in supervisors:
            await conn.execute(queries.NOTIFY_AT_RISK, supervisor["id"], text)
    if reselect:
        await _reselect_open_tickets(conn, customer_id, settings)
    return True


async def clear_risk_after_good_rating(
    conn: asyncpg.Connection, customer_id: int, settings: Settings
) -> None:
    """A rating of 4-5 after the flag was raised clears it (a good outcome)."""
    cleared = await conn.fetchval(queries.CLEAR_RISK, customer_id)
    if cleared is not None:
        await _reselect_open_tickets(conn, customer_id, settings)
