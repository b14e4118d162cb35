"""`GET /meta`: the enumerations a client shows and sends, read from the Python types
that validate them, so the console (or any other client) never keeps a copy.

Each list is read from the `Literal` (or the validated parameter) the
API itself checks against: a value added there shows up here with no second edit. The
answer is the same for every caller and holds nothing about tickets or people, but it is
served to authenticated agents only (any role, partners too): only the console needs it,
after logging in, and the channel kinds say which adapters this build installed.
"""

from __future__ import annotations

from typing import Any, get_args, get_type_hints

import msgspec
from litestar import get

from helpdesk.agents.models import Role
from helpdesk.channels import catalogue
from helpdesk.channels.registry import chat_kinds
from helpdesk.csat.routes import CsatPageController
from helpdesk.customers.models import Stage
from helpdesk.routing.models import Availability
from helpdesk.tickets.events import TICKET_EVENTS
from helpdesk.tickets.models import CallDirection, Category, MessageOut, Priority, Sort, Status


class RatingRange(msgspec.Struct):
    """The CSAT ratings a customer can give: whole numbers from `min` to `max`."""

    min: int
    max: int


class MetaOut(msgspec.Struct):
    """Every value a ticket, message, customer or agent field can take, in the API's order."""

    ticket_statuses: list[str]
    ticket_priorities: list[str]
    ticket_categories: list[str]
    ticket_sorts: list[str]
    ticket_events: list[str]
    message_kinds: list[str]
    message_directions: list[str]
    call_directions: list[str]
    channel_kinds: list[str]
    lifecycle_stages: list[str]
    agent_roles: list[str]
    agent_availability: list[str]
    csat_rating: RatingRange


def literal_values(literal: Any) -> list[str]:
    """The values of a `Literal[...]` type, in the order written."""
    return [str(value) for value in get_args(literal)]


def channel_kinds() -> list[str]:
    """Every channel a ticket can come from, in the catalogue's order: e-mail, the chat
    kinds this build supports, then tickets made through the API and logged phone calls
    (as `tickets.channel` holds them). The one place the console's channel list comes from."""
    supported = set(chat_kinds())
    return [
        kind for kind in catalogue.kinds() if not catalogue.entry(kind).chat or kind in supported
    ]


def _message_field(name: str) -> list[str]:
    field = next(f for f in msgspec.structs.fields(MessageOut) if f.name == name)
    return literal_values(field.type)


def csat_rating_range() -> RatingRange:
    """The bounds the rating page validates `rating` against."""
    hints = get_type_hints(CsatPageController.rate.fn, include_extras=True)
    (bounds,) = hints["rating"].__metadata__
    return RatingRange(min=int(bounds.ge), max=int(bounds.le))


def build_meta() -> MetaOut:
    return MetaOut(
        ticket_statuses=literal_values(Status),
        ticket_priorities=literal_values(Priority),
        ticket_categories=literal_values(Category),
        ticket_sorts=literal_values(Sort),
        ticket_events=list(TICKET_EVENTS),
        message_kinds=_message_field("kind"),
        message_directions=_message_field("direction"),
        call_directions=literal_values(CallDirection),
        channel_kinds=channel_kinds(),
        lifecycle_stages=literal_values(Stage),
        agent_roles=literal_values(Role),
        agent_availability=literal_values(Availability),
        csat_rating=csat_rating_range(),
    )


@get("/meta", tags=["meta"], operation_id="getMeta")
async def meta() -> MetaOut:
    """The enumerations of the API: ticket statuses, priorities, categories, sort keys and
    event names, message kinds, channel kinds, lifecycle stages, agent roles and
    availability, and the CSAT rating range. Derived from the types the API validates
    with; the same for every caller."""
    return build_meta()
