"""What the CSAT endpoints return."""

from __future__ import annotations

from datetime import datetime

import msgspec


class CsatResponse(msgspec.Struct, kw_only=True):
    """One answered survey: the rating, what the customer wrote, and whom it was about."""

    survey_id: int
    ticket_id: int
    ticket_number: int
    customer_id: int
    rating: int
    comment: str | None
    answered_at: datetime
    channel: str
    agent_id: int | None
    group_id: int | None
    category: str | None
