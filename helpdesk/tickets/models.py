from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from helpdesk.channels.catalogue import TicketChannel, TicketOrigin
from helpdesk.db.sql import Id

Status = Literal["new", "open", "pending", "on_hold", "solved", "closed"]
Priority = Literal["low", "normal", "high", "urgent"]
Category = Literal["complaint", "order", "return", "question", "other"]
Channel = TicketChannel  # every kind in the channel catalogue
Sort = Literal["created_at", "-created_at"]

# Text that may end up in a mail header (docs/reliability.md B7): one line, no CR, LF or
# NUL. `(?!\n)` because a regex `$` also matches before a final newline.
_ONE_LINE = r"^[^\r\n\x00]*$(?!\n)"
# An addr-spec with nothing that could end it on an SMTP command line or in a header.
_ADDRESS = r'^[^@\s<>()\[\],;:"\\\x00-\x1f\x7f]+@[^@\s<>()\[\],;:"\\\x00-\x1f\x7f]+$(?!\n)'

Subject = Annotated[str, msgspec.Meta(min_length=1, max_length=998, pattern=_ONE_LINE)]
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
    next_sla_due_at: datetime | None = None
    # When the soonest running SLA clock turns "at risk" (its warning level).
    next_sla_warn_at: datetime | None = None
    language: str | None = None


class TicketPage(msgspec.Struct):
    items: list[TicketOut]
    next_cursor: str | None


class AttachmentOut(msgspec.Struct):
    id: int
    filename: str
    content_type: str
    size_bytes: int  # of the stored content: 0 until a file that arrived late is fetched
    # 'pending': the provider would not hand the file over yet and it is tried again;
    # 'failed': given up (fetch_error says why); only 'stored' ones download.
    state: Literal["stored", "pending", "failed"] = "stored"
    fetch_error: str | None = None


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
    internal_only: bool = False


class EventOut(msgspec.Struct):
    id: int
    actor_agent_id: int | None
    action: str
    changes: dict[str, Any]
    reason: str | None
    created_at: datetime


class CustomerSummary(msgspec.Struct, kw_only=True):
    id: int
    name: str
    email: str | None
    phone: str | None
    language: str | None = None
    lifecycle_stage: str = "prospect"
    # Shown on every ticket of the customer, with why (the recent bad experiences).
    at_risk: bool = False
    at_risk_reasons: list[str] = []
    csat_average: float | None = None


class TicketCsat(msgspec.Struct, kw_only=True):
    """The ticket's satisfaction survey: asked or not (and why), the rating and what the
    customer wrote. Seen by whoever may see the ticket."""

    status: Literal["scheduled", "sent", "answered", "cancelled", "failed"]
    channel: str
    reason: str | None = None  # why it was not asked (cancelled) or not delivered
    sent_at: datetime | None = None
    rating: int | None = None
    comment: str | None = None
    answered_at: datetime | None = None


class TicketDetail(msgspec.Struct):
    ticket: TicketOut
    customer: CustomerSummary
    messages: list[MessageOut]
    events: list[EventOut]
    csat: TicketCsat | None = None  # None: no survey (yet)


class CustomerRef(msgspec.Struct, forbid_unknown_fields=True):
    """Who the ticket is from: an existing customer id, or contact data to find or create one."""

    id: Id | None = None
    email: Annotated[str, msgspec.Meta(max_length=320, pattern=_ADDRESS)] | None = None
    name: Annotated[str, msgspec.Meta(max_length=200, pattern=_ONE_LINE)] = ""
    phone: (
        Annotated[str, msgspec.Meta(max_length=50, pattern=r"^\+?[0-9 ()./-]{3,50}$(?!\n)")] | None
    ) = None


class AttachmentIn(msgspec.Struct, forbid_unknown_fields=True):
    filename: Annotated[str, msgspec.Meta(min_length=1, max_length=255, pattern=_ONE_LINE)]
    content_type: Annotated[str, msgspec.Meta(max_length=255, pattern=r"^[\w.+-]+/[\w.+-]+$(?!\n)")]
    content: bytes  # base64 in JSON


class TicketCreate(msgspec.Struct, forbid_unknown_fields=True):
    subject: Subject
    text: Body
    customer: CustomerRef
    channel: TicketOrigin = "api"
    priority: Priority = "normal"
    category: Category | None = None
    group_id: Id | None = None
    assignee_id: Id | None = None
    tags: list[Tag] = []


CallDirection = Literal["inbound", "outbound"]
# Free-form as typed ("+420 601 234 567"); the service normalizes it or answers 400.
PhoneNumber = Annotated[str, msgspec.Meta(min_length=1, max_length=50)]
CallStart = Annotated[datetime, msgspec.Meta(tz=True)]
CallDuration = Annotated[int, msgspec.Meta(ge=0, le=86_400)]


class CallCreate(msgspec.Struct, forbid_unknown_fields=True):
    """A phone call an agent logs on a ticket; `summary` becomes the message text.

    `public=False` keeps the summary internal (a note). An outbound public call counts
    as the ticket's first response; an inbound call is the customer speaking.
    """

    direction: CallDirection
    phone: PhoneNumber
    started_at: CallStart
    duration_seconds: CallDuration
    summary: Body
    public: bool = True


class CallTicketCreate(msgspec.Struct, forbid_unknown_fields=True):
    """A new ticket opened from a phone call: the call is its first message."""

    subject: Subject
    direction: CallDirection
    phone: PhoneNumber
    started_at: CallStart
    duration_seconds: CallDuration
    summary: Body
    public: bool = True
    name: Annotated[str, msgspec.Meta(max_length=200, pattern=_ONE_LINE)] = ""
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
    # Never shown to partner agents (the outsourced first line).
    internal_only: bool = False


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
    number: int | None = None  # the ticket number customers quote ("#10042")
    tags: tuple[str, ...] = ()
    created_after: datetime | None = None
    created_before: datetime | None = None
    q: str | None = None
    # "breached": a running SLA clock is overdue; "at_risk": one is due within 30 minutes.
    sla: Literal["breached", "at_risk"] | None = None
