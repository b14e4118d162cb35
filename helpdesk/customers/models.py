from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from helpdesk.db.sql import Id
from helpdesk.tickets.models import Reason, TicketOut


class IdentityOut(msgspec.Struct):
    id: int
    channel: str
    channel_account: str
    external_id: str
    display_name: str


class CustomerOut(msgspec.Struct, kw_only=True):
    id: int
    name: str
    email: str | None
    phone: str | None
    external_id: str | None
    language: str | None
    created_at: datetime
    organization: str | None = None
    tags: list[str] = []
    notes: str = ""  # never sent to partner agents
    lifecycle_stage: str = "prospect"
    stage_source: str = "derived"
    at_risk: bool = False
    at_risk_since: datetime | None = None
    csat_average: float | None = None
    csat_count: int = 0


class CustomerPage(msgspec.Struct):
    items: list[CustomerOut]
    next_cursor: str | None


class HistoryEntry(msgspec.Struct):
    """One message of the customer's conversation on any channel (a phone call on an
    e-mail ticket shows here as `phone`)."""

    message_id: int
    ticket_id: int
    ticket_number: int
    channel: str
    direction: str
    kind: str
    excerpt: str  # the first 200 characters of the text
    created_at: datetime


class OrderOut(msgspec.Struct):
    external_id: str
    number: str | None
    status: str | None
    total: float
    currency: str
    ordered_at: datetime


class StageChange(msgspec.Struct):
    from_stage: str | None
    to_stage: str
    cause: str
    actor_agent_id: int | None
    created_at: datetime


class BadExperience(msgspec.Struct):
    ticket_id: int
    kind: str
    detail: str
    created_at: datetime


class CsatAnswer(msgspec.Struct):
    """A satisfaction rating the customer gave on one ticket, with what they wrote."""

    ticket_id: int
    ticket_number: int
    rating: int
    comment: str | None
    answered_at: datetime


class CustomerDetail(msgspec.Struct):
    """The customer view: every identity, and tickets and messages across channels,
    newest first (the latest 100 of each, within the caller's ticket scope)."""

    customer: CustomerOut
    identities: list[IdentityOut]
    tickets: list[TicketOut]
    history: list[HistoryEntry] = []
    orders: list[OrderOut] = []
    stage_history: list[StageChange] = []
    # Why the customer is (or was nearly) at risk: bad experiences in the window.
    bad_experiences: list[BadExperience] = []
    # Ratings and comments, newest first, on the tickets within the caller's scope.
    csat: list[CsatAnswer] = []


class CustomerMerge(msgspec.Struct, forbid_unknown_fields=True):
    """Merge the customer in the path into `into_customer_id` (the one that stays)."""

    into_customer_id: Id
    reason: Reason | None = None


Stage = Literal[
    "prospect",
    "first_time",
    "repeat",
    "loyal",
    "advocate",
    "partner",
    "inactive",
    "lost",
    "disqualified",
]
ExternalId = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"^[^\s]+$")]
Text200 = Annotated[str, msgspec.Meta(max_length=200)]
CustomerTag = Annotated[str, msgspec.Meta(min_length=1, max_length=50, pattern=r"^[^\s,]+$")]


class OrderIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    external_id: ExternalId
    ordered_at: Annotated[datetime, msgspec.Meta(tz=True)]
    number: Annotated[str, msgspec.Meta(max_length=100)] | None = None
    status: Annotated[str, msgspec.Meta(max_length=50)] | None = None
    total: Annotated[float, msgspec.Meta(ge=0, le=1e11)] = 0.0
    currency: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$")] = "CZK"


class CustomerUpsert(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One customer from an e-shop or CRM, keyed by its `external_id` there. Omitted
    fields keep their value; `orders` are added or updated by their own external id."""

    external_id: ExternalId
    name: Text200 | None = None
    email: Annotated[str, msgspec.Meta(max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")] | None = None
    phone: Annotated[str, msgspec.Meta(max_length=50)] | None = None
    language: Annotated[str, msgspec.Meta(pattern=r"^[a-z]{2}$")] | None = None
    organization: Text200 | None = None
    tags: list[CustomerTag] | None = None
    notes: Annotated[str, msgspec.Meta(max_length=10000)] | None = None
    stage: Stage | None = None  # an integration may set the stage (kept as manual)
    orders: list[OrderIn] = []


class CustomerBatch(msgspec.Struct, forbid_unknown_fields=True):
    customers: Annotated[list[CustomerUpsert], msgspec.Meta(min_length=1, max_length=1000)]


class UpsertResult(msgspec.Struct):
    external_id: str
    customer_id: int
    created: bool
    stage: str


class StageUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """Set a stage by hand, or `derived` to hand it back to the rules."""

    stage: Stage | Literal["derived"]
    reason: Reason | None = None


class AtRiskCustomer(msgspec.Struct):
    customer: CustomerOut
    reasons: list[BadExperience]
