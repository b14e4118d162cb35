from __future__ import annotations

from datetime import datetime

import msgspec

from helpdesk.tickets.models import TicketOut


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


class CustomerDetail(msgspec.Struct):
    customer: CustomerOut
    identities: list[IdentityOut]
    tickets: list[TicketOut]
