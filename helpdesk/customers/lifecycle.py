"""Lifecycle stages derived from a customer's orders: pure, no I/O.

The derived stages, checked in this order:
- `inactive`: the customer has orders but none within `inactive_after_days`;
- `loyal`: at least `loyal_min_orders` orders, or at least `loyal_min_revenue` spent, within
  the last `loyal_period_days`;
- `repeat`: two orders or more;
- `first_time`: one order;
- `prospect`: no order.
`advocate`, `partner`, `lost` and `disqualified` are never derived: an agent or an
integration sets them. A stage set by hand (`stage_source = manual`) is kept until someone
sets it back to derived; derivation only moves derived stages.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from helpdesk.config import CustomerSettings

STAGES = (
    "prospect",
    "first_time",
    "repeat",
    "loyal",
    "advocate",
    "partner",
    "inactive",
    "lost",
    "disqualified",
)
DERIVED = frozenset({"prospect", "first_time", "repeat", "loyal", "inactive"})


def derive(
    orders: Sequence[tuple[datetime, float]], now: datetime, rules: CustomerSettings
) -> tuple[str, str]:
    """The stage the orders call for, and why (the cause recorded in the history)."""
    if not orders:
        return "prospect", "no orders"
    latest = max(at for at, _ in orders)
    if now - latest > timedelta(days=rules.inactive_after_days):
        return "inactive", f"no order for {rules.inactive_after_days} days"
    since = now - timedelta(days=rules.loyal_period_days)
    recent = [(at, total) for at, total in orders if at >= since]
    revenue = sum(total for _, total in recent)
    if len(recent) >= rules.loyal_min_orders:
        return "loyal", f"{len(recent)} orders in {rules.loyal_period_days} days"
    if revenue >= rules.loyal_min_revenue:
        return "loyal", f"revenue {revenue:.2f} in {rules.loyal_period_days} days"
    if len(orders) >= 2:
        return "repeat", f"{len(orders)} orders"
    return "first_time", "first order"
