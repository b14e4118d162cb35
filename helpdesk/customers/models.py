from __future__ import annotations

from datetime import datetime

import msgspec

from helpdesk.db.sql import Id
from helpdesk.tickets.models import Reason, TicketOut


class IdentityOut(msgspec.Struct):
    id: int
    channel: str
    channel_account: str
    external_id: str
    display_name: str


class CustomerOut(msgspec.Struct):
    id: int
    name: str
    email: str | None
    phone: str | None
    external_id: str | None
    language: str | None
    created_at: datetime


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


class CustomerDetail(msgspec.Struct):
    """The customer view: every identity, and tickets and messages across channels,
    newest first (the latest 100 of each, within the caller's ticket scope)."""

    customer: CustomerOut
    identities: list[IdentityOut]
    tickets: list[TicketOut]
    history: list[HistoryEntry] = []


class CustomerMerge(msgspec.Struct, forbid_unknown_fields=True):
    """Merge the customer in the path into `into_customer_id` (the one that stays)."""

    into_customer_id: Id
    reason: Reason | None = None
