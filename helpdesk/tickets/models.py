from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from helpdesk.db.sql import Id

Status = Literal["new", "open", "pending", "on_hold", "solved", "closed"]
Priority = Literal["low", "normal", "high", "urgent"]
Category = Literal["complaint", "order", "return", "question", "other"]
Channel = Literal[
    "email", "telegram", "slack", "messenger", "instagram", "whatsapp", "webchat", "api", "phone"
]
Sort = Literal["created_at", "-created_at"]

Subject = Annotated[str, msgspec.Meta(min_length=1, max_length=998)]
Body = Annotated[str, msgspec.Meta(min_length=1, max_length=200_000)]
Tag = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[^\s,]+$")]
Reason = Annotated[str, msgspec.Meta(max_length=2000)]


class TicketOut(msgspec.Struct):
    id: int
    number: int
    subject: str
    status: Status
    priority: Priority
    category: Category | None
    channel: str
    customer_id: int
    group_id: int | None
    assignee_id: int | None
    tags: list[str]
    merged_into_id: int | None
    first_response_due_at: datetime | None
    first_responded_at: datetime | None
    solved_at: datetime | None
    closed_at: datetime | None
    created_at: datetime
    updated_at: datetime
    version: int


class TicketPage(msgspec.Struct):
    items: list[TicketOut]
    next_cursor: str | None


class AttachmentOut(msgspec.Struct):
    id: int
    filename: str
    content_type: str
    size_bytes: int


class MessageOut(msgspec.Struct):
    id: int
    ticket_id: int
    direction: Literal["inbound", "outbound"]
    kind: Literal["public", "note", "system"]
    author_agent_id: int | None
    author_customer_id: int | None
    channel: str
    body_text: str
    body_html: str | None
    delivery_status: str | None
    delivery_error: str | None
    created_at: datetime
    attachments: list[AttachmentOut] = []


class EventOut(msgspec.Struct):
    id: int
    actor_agent_id: int | None
    action: str
    changes: dict[str, Any]
    reason: str | None
    created_at: datetime


class CustomerSummary(msgspec.Struct):
    id: int
    name: str
    email: str | None
    phone: str | None


class TicketDetail(msgspec.Struct):
    ticket: TicketOut
    customer: CustomerSummary
    messages: list[MessageOut]
    events: list[EventOut]


class CustomerRef(msgspec.Struct, forbid_unknown_fields=True):
    """Who the ticket is from: an existing customer id, or contact data to find or create one."""

    id: Id | None = None
    email: Annotated[str, msgspec.Meta(max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")] | None = None
    name: Annotated[str, msgspec.Meta(max_length=200)] = ""
    phone: Annotated[str, msgspec.Meta(max_length=50, pattern=r"^\+?[0-9 ()./-]{3,50}$")] | None = (
        None
    )


class AttachmentIn(msgspec.Struct, forbid_unknown_fields=True):
    filename: Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
    content_type: Annotated[str, msgspec.Meta(max_length=255, pattern=r"^[\w.+-]+/[\w.+-]+$")]
    content: bytes  # base64 in JSON


class TicketCreate(msgspec.Struct, forbid_unknown_fields=True):
    subject: Subject
    text: Body
    customer: CustomerRef
    channel: Literal["api", "phone"] = "api"
    priority: Priority = "normal"
    category: Category | None = None
    group_id: Id | None = None
    assignee_id: Id | None = None
    tags: list[Tag] = []


class ReplyCreate(msgspec.Struct, forbid_unknown_fields=True):
    text: Body
    attachments: list[AttachmentIn] = []


class NoteCreate(msgspec.Struct, forbid_unknown_fields=True):
    text: Body
    attachments: list[AttachmentIn] = []


class TicketUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """A change of a ticket's fields. Omitted fields stay; `null` unsets group or assignee."""

    status: Status | msgspec.UnsetType = msgspec.UNSET
    priority: Priority | msgspec.UnsetType = msgspec.UNSET
    category: Category | msgspec.UnsetType | None = msgspec.UNSET
    group_id: int | msgspec.UnsetType | None = msgspec.UNSET
    assignee_id: int | msgspec.UnsetType | None = msgspec.UNSET
    tags: list[Tag] | msgspec.UnsetType = msgspec.UNSET
    reason: Reason | None = None


class MergeRequest(msgspec.Struct, forbid_unknown_fields=True):
    into_ticket_id: Id
    reason: Reason | None = None


class TicketFilters(msgspec.Struct, frozen=True):
    status: tuple[Status, ...] = ()
    priority: tuple[Priority, ...] = ()
    category: tuple[Category, ...] = ()
    channel: tuple[Channel, ...] = ()
    group_id: tuple[int, ...] = ()
    assignee: str | None = None  # "me", "unassigned" or an agent id
    customer_id: int | None = None
    tags: tuple[str, ...] = ()
    created_after: datetime | None = None
    created_before: datetime | None = None
    q: str | None = None
