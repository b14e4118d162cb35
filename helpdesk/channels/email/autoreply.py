"""Mail that no person wrote: auto-responders and system senders (RFC 3834)."""

from __future__ import annotations

import re
from email.message import Message

from helpdesk.channels.email.headers import first_header, header_values

_SYSTEM_SENDER = re.compile(r"mailer[- ]daemon|postmaster", re.IGNORECASE)


_DISABLED_VALUES = frozenset({"", "no", "false", "0", "none"})


def _null_return_path(message: Message) -> bool:
    return any(re.fullmatch(r"<\s*>", v.strip()) for v in header_values(message, "return-path"))


def system_sender(message: Message, from_email: str | None) -> bool:
    """Mail sent by an MTA itself: mailer-daemon/postmaster, or with a null Return-Path."""
    if from_email and _SYSTEM_SENDER.fullmatch(from_email.split("@", 1)[0]):
        return True
    if from_email is None and _SYSTEM_SENDER.search(first_header(message, "from")):
        return True
    return _null_return_path(message)


def is_auto_submitted(message: Message, from_email: str | None) -> bool:
    """RFC 3834 and the de-facto markers: nothing automatic may be sent back to this mail."""
    auto = first_header(message, "auto-submitted").split(";")[0].split("(")[0].strip().lower()
    if auto and auto != "no":
        return True
    if first_header(message, "precedence").lower() in {"bulk", "junk", "list"}:
        return True
    for name in ("x-autoreply", "x-autorespond", "x-auto-response-suppress", "x-loop"):
        if any(v.strip().lower() not in _DISABLED_VALUES for v in header_values(message, name)):
            return True
    if header_values(message, "list-id") or header_values(message, "list-unsubscribe"):
        return True
    return system_sender(message, from_email)
