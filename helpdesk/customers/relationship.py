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
from helpdesk.customers import lifecycle
from helpdesk.customers.models import CustomerUpsert, UpsertResult
from helpdesk.sla import refresh as sla_refresh

OPEN = ("new", "open", "pending", "on_hold")


async def _reselect_open_tickets(
    conn: asyncpg.Connection, customer_id: int, settings: Settings
) -> None:
    rows = await conn.fetch(
        """SELECT id FROM tickets WHERE customer_id = $1 AND status = ANY($2::text[])
           ORDER BY id LIMIT 200""",
        customer_id,
        list(OPEN),
    )
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
    row = await conn.fetchrow(
        "SELECT lifecycle_stage, stage_source FROM customers WHERE id = $1 FOR UPDATE",
        customer_id,
    )
    if row is None or (row["lifecycle_stage"], row["stage_source"]) == (stage, source):
        return False
    await conn.execute(
        """UPDATE customers SET lifecycle_stage = $2, stage_source = $3, updated_at = now()
           WHERE id = $1""",
        customer_id,
        stage,
        source,
    )
    if row["lifecycle_stage"] != stage:
        await conn.execute(
            """INSERT INTO customer_stage_history (customer_id, from_stage, to_stage, cause,
                                                  actor_agent_id)
               VALUES ($1, $2, $3, $4, $5)""",
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
    row = await conn.fetchrow(
        "SELECT lifecycle_stage, stage_source FROM customers WHERE id = $1", customer_id
    )
    if row["stage_source"] == "manual":
        return str(row["lifecycle_stage"])
    now = now or await conn.fetchval("SELECT clock_timestamp()")
    assert now is not None
    orders = await conn.fetch(
        "SELECT ordered_at, total FROM customer_orders WHERE customer_id = $1", customer_id
    )
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
        await conn.execute(
            "UPDATE customers SET stage_source = 'derived' WHERE id = $1", customer_id
        )
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
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"customer:{data.external_id}"
    )
    existing = await conn.fetchval(
        "SELECT id FROM customers WHERE external_id = $1 FOR UPDATE", data.external_id
    )
    created = existing is None
    if existing is None and data.email:
        # The shop knows this address: a customer we met on a channel with exactly that
        # address (and no other shop id) becomes this one, instead of a duplicate.
        matches = await conn.fetch(
            """SELECT id FROM customers WHERE lower(email) = lower($1) AND external_id IS NULL
               LIMIT 2""",
            data.email,
        )
        if len(matches) == 1:
            existing = matches[0]["id"]
            created = False
    if existing is None:
        existing = await conn.fetchval(
            "INSERT INTO customers (name, external_id) VALUES ($1, $2) RETURNING id",
            data.name or "",
            data.external_id,
        )
    await conn.execute(
        """UPDATE customers SET external_id = $2, name = coalesce($3, name),
               email = coalesce($4, email), phone = coalesce($5, phone),
               language = coalesce($6, language), organization = coalesce($7, organization),
               tags = coalesce($8, tags), notes = coalesce($9, notes), updated_at = now()
           WHERE id = $1""",
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
            """INSERT INTO customer_identities (customer_id, channel, external_id, display_name)
               VALUES ($1, 'email', $2, $3) ON CONFLICT DO NOTHING""",
            existing,
            data.email.strip().lower(),
            data.name or "",
        )
    for order in data.orders:
        await conn.execute(
            """INSERT INTO customer_orders (customer_id, external_id, number, status, total,
                                            currency, ordered_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7)
               ON CONFLICT (external_id) DO UPDATE SET customer_id = EXCLUDED.customer_id,
                   number = EXCLUDED.number, status = EXCLUDED.status,
                   total = EXCLUDED.total, currency = EXCLUDED.currency,
                   ordered_at = EXCLUDED.ordered_at, updated_at = now()""",
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
    rows = await conn.fetch(
        """SELECT c.id FROM customers c
           WHERE c.stage_source = 'derived'
             AND c.lifecycle_stage IN ('first_time', 'repeat', 'loyal')
             AND NOT EXISTS (SELECT 1 FROM customer_orders o WHERE o.customer_id = c.id
                             AND o.ordered_at > now() - make_interval(days => $1))
           LIMIT 1000""",
        settings.customers.inactive_after_days,
    )
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
    inserted = await conn.fetchval(
        """INSERT INTO bad_experiences (customer_id, ticket_id, kind, detail)
           SELECT customer_id, id, $2, $3 FROM tickets WHERE id = $1
           ON CONFLICT (ticket_id, kind) DO NOTHING RETURNING id""",
        ticket_id,
        kind,
        detail[:500],
    )
    return inserted is not None


async def reopened_after_solved(conn: asyncpg.Connection, ticket_id: int, how: str) -> bool:
    """A solved ticket opened again (`how`: by whom) is a bad experience for its
    customer; see `record_bad_experience`."""
    return await record_bad_experience(conn, ticket_id, "reopened", how)


async def evaluate_pending(conn: asyncpg.Connection, settings: Settings) -> int:
    """Evaluate the customers with new bad experiences, and the flagged ones (whose old
    experiences may have left the window); returns how many were evaluated."""
    rows = await conn.fetch(
        """SELECT DISTINCT customer_id FROM bad_experiences WHERE evaluated_at IS NULL
           UNION SELECT id FROM customers WHERE at_risk
           LIMIT 1000"""
    )
    for row in rows:
        async with conn.transaction():
            changed = await evaluate_risk(conn, row["customer_id"], settings, reselect=False)
            await conn.execute(
                """UPDATE bad_experiences SET evaluated_at = clock_timestamp()
                   WHERE customer_id = $1 AND evaluated_at IS NULL""",
                row["customer_id"],
            )
        if changed:  # after the commit, one ticket at a time: no long-held locks
            await reselect_each(conn, row["customer_id"], settings)
    return len(rows)


async def reselect_each(conn: asyncpg.Connection, customer_id: int, settings: Settings) -> None:
    """Re-choose the SLA policy of the customer's open tickets, each in its own transaction."""
    rows = await conn.fetch(
        """SELECT id FROM tickets WHERE customer_id = $1 AND status = ANY($2::text[])
           ORDER BY id LIMIT 200""",
        customer_id,
        list(OPEN),
    )
    for row in rows:
        async with conn.transaction():
            await sla_refresh.refresh(conn, row["id"], settings.sla, reselect=True)


async def evaluate_risk(
    conn: asyncpg.Connection, customer_id: int, settings: Settings, *, reselect: bool = True
) -> bool:
    """Flag or clear the customer from the bad experiences in the window; True when the
    flag changed. With `reselect=False` the caller re-chooses the tickets' policies."""
    customer = await conn.fetchrow(
        "SELECT id, name, at_risk FROM customers WHERE id = $1 FOR UPDATE", customer_id
    )
    window = timedelta(days=settings.customers.risk_window_days)
    count = await conn.fetchval(
        """SELECT count(*) FROM bad_experiences
           WHERE customer_id = $1 AND created_at > clock_timestamp() - $2::interval
             AND kind = ANY($3::text[])""",
        customer_id,
        window,
        list(settings.customers.bad_experience_kinds),
    )
    at_risk = count >= settings.customers.risk_threshold
    if at_risk == customer["at_risk"]:
        return False
    await conn.execute(
        """UPDATE customers SET at_risk = $2,
               at_risk_since = CASE WHEN $2 THEN clock_timestamp() END, updated_at = now()
           WHERE id = $1""",
        customer_id,
        at_risk,
    )
    if at_risk:
        supervisors = await conn.fetch(
            "SELECT id FROM agents WHERE role = 'supervisor' AND active ORDER BY id"
        )
        text = (
            f"Customer {customer['name'] or customer_id} is at risk: {count} bad experiences "
            f"in {settings.customers.risk_window_days} days"
        )
        for supervisor in supervisors:
            await conn.execute(
                """INSERT INTO notifications (agent_id, kind, body)
                   VALUES ($1, 'customer_at_risk', $2)""",
                supervisor["id"],
                text,
            )
    if reselect:
        await _reselect_open_tickets(conn, customer_id, settings)
    return True


async def clear_risk_after_good_rating(
    conn: asyncpg.Connection, customer_id: int, settings: Settings
) -> None:
    """A rating of 4-5 after the flag was raised clears it (a good outcome)."""
    cleared = await conn.fetchval(
        """UPDATE customers SET at_risk = false, at_risk_since = NULL, updated_at = now()
           WHERE id = $1 AND at_risk RETURNING id""",
        customer_id,
    )
    if cleared is not None:
        await _reselect_open_tickets(conn, customer_id, settings)
