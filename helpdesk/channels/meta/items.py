"""What the Meta parsers share: the kinds, the items they yield, names, notes and times."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal, get_args

import msgspec

from helpdesk.channels.adapter import (
    InboundMessage,
    StatusUpdate,
    StatusWatermark,
)
from helpdesk.channels.catalogue import display_name

MetaKind = Literal["messenger", "instagram", "whatsapp"]
Item = InboundMessage | StatusUpdate | StatusWatermark


APP_NAMES: dict[MetaKind, str] = {kind: display_name(kind) for kind in get_args(MetaKind)}


class MalformedDelivery(ValueError):
    """A signed body that is not a Meta webhook delivery (not JSON, no `entry` list)."""


DECODE_ERRORS = (msgspec.DecodeError, msgspec.ValidationError)


# What each kind's webhook `object` is.
OBJECTS: dict[MetaKind, str] = {
    "messenger": "page",
    "instagram": "instagram",
    "whatsapp": "whatsapp_business_account",
}


def from_millis(value: int) -> datetime:
    try:
        return datetime.fromtimestamp(value / 1000, UTC)
    except (ValueError, OverflowError, OSError):
        return datetime.fromtimestamp(0, UTC)


def from_seconds(value: str) -> datetime:
    try:
        return datetime.fromtimestamp(int(value), UTC)
    except (ValueError, OverflowError, OSError):
        return datetime.fromtimestamp(0, UTC)


def placeholder_name(kind: MetaKind, customer: str) -> str:
    """The name of a sender Meta told us no name of; the agent can rename the customer
    (Messenger and Instagram names are looked up through the Graph API by the adapter)."""
    return f"{APP_NAMES[kind]} user …{customer[-6:]}"


def is_placeholder_name(kind: MetaKind, customer: str, name: str | None) -> bool:
    return not name or name == placeholder_name(kind, customer)


def note(text: str) -> str:
    return f"[{text}]"


def joined(*parts: str | None) -> str:
    return "\n".join(p for p in parts if p).strip()
