"""Providers' reply windows: when a free-form reply may still reach the customer.

Meta lets a business answer freely only within 24 hours of the customer's last message
(the customer-service window). Messenger and Instagram allow a human agent up to 7 days
with the HUMAN_AGENT message tag, which an app must be approved for (the account setting
`human_agent_tag`); WhatsApp needs an approved template after 24 hours. Each kind's
window is declared in `helpdesk.channels.catalogue`. A reply outside its window is
refused before it is queued, with the reason the agent reads, and checked again right
before sending (a reply can wait in the outbox across the boundary).
Pure functions, no I/O.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from helpdesk.channels.catalogue import CATALOGUE, META_WINDOW, ReplyWindow, display_name

STANDARD_WINDOW = timedelta(hours=META_WINDOW.hours)  # Meta's, before the HUMAN_AGENT tag
_WINDOWS: dict[str, ReplyWindow] = {
    e.name: e.reply_window for e in CATALOGUE.values() if e.reply_window is not None
}
WINDOWED_CHANNELS = frozenset(_WINDOWS)


def window_for(channel: str, *, human_agent_tag: bool = False) -> timedelta | None:
    """How long after the customer's last message a free-form reply may go out."""
    window = _WINDOWS.get(channel)
    if window is None:
        return None
    if human_agent_tag and window.human_agent_tag_hours is not None:
        return timedelta(hours=window.human_agent_tag_hours)
    return timedelta(hours=window.hours)


def needs_human_agent_tag(last_inbound_at: datetime, now: datetime) -> bool:
    """Past 24 hours, Messenger/Instagram accept a reply only with the HUMAN_AGENT tag."""
    return now - last_inbound_at > STANDARD_WINDOW


def reply_refusal(
    channel: str,
    last_inbound_at: datetime | None,
    now: datetime,
    *,
    human_agent_tag: bool = False,
) -> str | None:
    """Why a free-form reply cannot be sent now, or None when it can."""
    window = window_for(channel, human_agent_tag=human_agent_tag)
    if window is None:
        return None
    name = display_name(channel)
    if last_inbound_at is None:
        return f"{name} allows replies only after the customer has written; they have not yet"
    if now - last_inbound_at <= window:
        return None
    hours = int(window.total_seconds() // 3600)
    since = (
        f"the customer's last message was at {last_inbound_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    )
    if _WINDOWS[channel].template_after:
        return (
            f"{name} allows free-form replies only within {hours} hours of the customer's "
            f"last message ({since}); a template message is needed to reach them now"
        )
    return (
        f"{name} allows replies only within {hours} hours of the customer's last message "
        f"({since}); ask the customer to write again, or reply on another channel"
    )
