"""Due dates of SLA targets.

For now every ticket gets the calendar-time first-response target from the settings
(60 minutes: the promise). Policies and business calendars build on this.
"""

from __future__ import annotations

from datetime import datetime, timedelta


def first_response_due(created_at: datetime, target_minutes: int) -> datetime:
    """When the first public reply is due; `created_at` must be timezone-aware."""
    if created_at.tzinfo is None:
        raise ValueError("created_at must be timezone-aware")
    return created_at + timedelta(minutes=target_minutes)
