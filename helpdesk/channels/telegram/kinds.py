"""Every kind of Telegram message as text an agent reads: pure functions, no I/O.

The Bot API's `Message` object (core.telegram.org/bots/api#message) carries what a person
sent in one of many optional fields. Each field is one of:

- metadata about the message (`ABOUT_FIELDS`: ids, dates, reply and thread markers):
  nothing to show by itself;
- text (`text`, `caption`) or files (`FILE_FIELDS`, fetched with getFile);
- anything else (a poll, a venue, a payment, a service message such as a member joining):
  rendered by `NOTES` as a readable note, e.g. "Customer sent a poll: Which size?".

A field this module does not know (a future Bot API version) still becomes a note that
names it, so nothing a customer sends is dropped without a trace.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

# Fields that describe a message instead of carrying content.
ABOUT_FIELDS = frozenset(
    {
        "message_id",
        "message_thread_id",
        "direct_messages_topic",
        "from",
        "sender_chat",
        "sender_boost_count",
        "sender_business_bot",
        "sender_tag",
        "date",
        "business_connection_id",
        "chat",
        "forward_origin",  # shown as "Forwarded from …" before the text
        "is_topic_message",
        "is_automatic_forward",
        "reply_to_message",
        "external_reply",
        "quote",
        "reply_to_story",
        "reply_to_checklist_task_id",
        "reply_to_poll_option_id",
        "via_bot",
        "edit_date",
        "has_protected_content",
        "is_from_offline",
        "is_paid_post",
        "media_group_id",
        "author_signature",
        "paid_star_count",
        "entities",
        "caption_entities",
        "link_preview_options",
        "suggested_post_info",
        "effect_id",
        "show_caption_above_media",
        "has_media_spoiler",
        "reply_markup",
        "guest_bot_caller_user",
        "guest_bot_caller_chat",
        "guest_query_id",
        # Fields of Bot API versions before 7.0 that some servers still send.
        "forward_from",
        "forward_from_chat",
        "forward_from_message_id",
        "forward_signature",
        "forward_sender_name",
        "forward_date",
    }
)
TEXT_FIELDS = frozenset({"text", "caption"})
FILE_FIELDS = frozenset(
    {
        "photo",
        "live_photo",
        "document",
        "audio",
        "video",
        "voice",
        "animation",
        "video_note",
        "sticker",
        "paid_media",
    }
)


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _str(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def person(user: object) -> str:
    """A Telegram User (or Chat) as a name: first and last name, @username, title, id."""
    found = _dict(user)
    full = " ".join(p for p in (_str(found.get("first_name")), _str(found.get("last_name"))) if p)
    if full:
        return full
    if _str(found.get("title")):
        return _str(found.get("title"))
    if _str(found.get("username")):
        return "@" + _str(found.get("username"))
    return str(found.get("id", "someone"))


def _people(users: object) -> str:
    return ", ".join(person(u) for u in _list(users)) or "someone"


def _when(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**37:
        return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M UTC")
    return "an unknown time"


def _number(value: object) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:g}" if isinstance(value, float) else str(value)
    return "?"


# ISO 4217 currencies without minor units (Telegram's amounts are in minor units).
_NO_MINOR_UNITS = frozenset(
    {"BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "VND",
     "VUV", "XAF", "XOF", "XPF"}
)  # fmt: skip


def money(amount: object, currency: object) -> str:
    """Telegram's `total_amount` in the smallest units, as "12.50 EUR" ("250 XTR")."""
    code = _str(currency).upper() or "?"
    if not isinstance(amount, int) or isinstance(amount, bool):
        return f"? {code}"
    if code in _NO_MINOR_UNITS or code == "XTR":  # XTR: Telegram Stars, whole units
        return f"{amount} {code}"
    return f"{amount / 100:.2f} {code}"


def _maps(latitude: object, longitude: object) -> str:
    lat, lon = _number(latitude), _number(longitude)
    return f"{lat}, {lon} (https://www.openstreetmap.org/?mlat={lat}&mlon={lon})"


def _location(value: dict[str, Any]) -> str:
    where = _maps(value.get("latitude"), value.get("longitude"))
    if value.get("live_period"):
        return f"Customer shared a live location: {where}"
    return f"Customer shared a location: {where}"


def _venue(value: dict[str, Any]) -> str:
    place = _dict(value.get("location"))
    title = _str(value.get("title")) or "a place"
    address = _str(value.get("address"))
    where = _maps(place.get("latitude"), place.get("longitude"))
    return f"Customer shared a place: {title}" + (f", {address}" if address else "") + f" ({where})"


def _contact(value: dict[str, Any]) -> str:
    name = " ".join(p for p in (_str(value.get("first_name")), _str(value.get("last_name"))) if p)
    phone = _str(value.get("phone_number"))
    return "Customer shared a contact: " + (", ".join(p for p in (name, phone) if p) or "?")


def _poll(value: dict[str, Any]) -> str:
    kind = "quiz" if value.get("type") == "quiz" else "poll"
    options = [_str(_dict(o).get("text")) for o in _list(value.get("options"))]
    lines = [f"Customer sent a {kind}: {_str(value.get('question')) or '(no question)'}"]
    lines += [f"• {option}" for option in options if option]
    return "\n".join(lines)


def _dice(value: dict[str, Any]) -> str:
    emoji = _str(value.get("emoji")) or "🎲"
    return f"Customer sent {emoji} (value {_number(value.get('value'))})"


def _checklist(value: dict[str, Any]) -> str:
    lines = [f"Customer sent a checklist: {_str(value.get('title')) or '(untitled)'}"]
    for task in _list(value.get("tasks")):
        found = _dict(task)
        mark = "☑" if found.get("completed_by_user") or found.get("completion_date") else "☐"
        lines.append(f"{mark} {_str(found.get('text'))}")
    return "\n".join(lines)


def _invoice(value: dict[str, Any]) -> str:
    title = _str(value.get("title")) or "an invoice"
    description = _str(value.get("description"))
    amount = money(value.get("total_amount"), value.get("currency"))
    return (
        f"Customer sent an invoice: {title}"
        + (f" ({description})" if description else "")
        + (f", {amount}")
    )


def _payment(value: dict[str, Any]) -> str:
    amount = money(value.get("total_amount"), value.get("currency"))
    charge = _str(value.get("telegram_payment_charge_id"))
    return f"Customer paid {amount}" + (f" (Telegram charge {charge})" if charge else "")


def _refund(value: dict[str, Any]) -> str:
    amount = money(value.get("total_amount"), value.get("currency"))
    return f"A payment of {amount} was refunded to the customer"


def _giveaway(value: dict[str, Any]) -> str:
    count = _number(value.get("winner_count"))
    ends = _when(value.get("winners_selection_date"))
    return f"Customer shared a giveaway: {count} winners, chosen at {ends}"


def _giveaway_winners(value: dict[str, Any]) -> str:
    count = _number(value.get("winner_count"))
    winners = _people(value.get("winners"))
    return f"Customer shared giveaway results: {count} winners ({winners})"


def _story(value: dict[str, Any]) -> str:
    return f"Customer shared a story of {person(value.get('chat'))}; open Telegram to see it"


def _game(value: dict[str, Any]) -> str:
    return f"Customer shared the game {_str(value.get('title')) or '(untitled)'}"


def _web_app_data(value: dict[str, Any]) -> str:
    button = _str(value.get("button_text"))
    data = value.get("data") if isinstance(value.get("data"), str) else ""
    return f"Customer sent data from the web app{f' ({button})' if button else ''}: {data}"


def _users_shared(value: dict[str, Any]) -> str:
    users = [person(u) for u in _list(value.get("users"))]
    users += [str(i) for i in _list(value.get("user_ids"))]  # before Bot API 7.2
    return "Customer shared users: " + (", ".join(users) or "none")


def _chat_shared(value: dict[str, Any]) -> str:
    title = _str(value.get("title")) or _str(value.get("username")) or str(value.get("chat_id"))
    return f"Customer shared a chat: {title}"


def _pinned(value: dict[str, Any]) -> str:
    text = _str(value.get("text")) or _str(value.get("caption"))
    return "Customer pinned a message" + (f": {text[:200]}" if text else "")


def _constant(text: str) -> Callable[[Any], str]:
    return lambda _value: text


def _named(template: str, key: str) -> Callable[[Any], str]:
    return lambda value: template.format(_str(_dict(value).get(key)) or "?")


# What each non-text, non-file field says. Service messages included: an agent reading
# the conversation should see that the customer joined, pinned or paid.
NOTES: dict[str, Callable[[Any], str]] = {
    "contact": _contact,
    "location": _location,
    "venue": _venue,
    "poll": _poll,
    "dice": _dice,
    "game": _game,
    "story": _story,
    "checklist": _checklist,
    "invoice": _invoice,
    "successful_payment": _payment,
    "refunded_payment": _refund,
    "giveaway": _giveaway,
    "giveaway_winners": _giveaway_winners,
    "giveaway_created": _constant("Customer started a giveaway"),
    "giveaway_completed": _constant("A giveaway of the customer's has ended"),
    "web_app_data": _web_app_data,
    "users_shared": _users_shared,
    "chat_shared": _chat_shared,
    "write_access_allowed": _constant("Customer allowed the bot to write to them"),
    "connected_website": lambda site: f"Customer logged in on {_str(site) or '?'} with Telegram",
    "passport_data": _constant("Customer shared Telegram Passport data; open Telegram"),
    "proximity_alert_triggered": _constant("Customer's live location came near another"),
    "new_chat_members": lambda users: f"{_people(users)} joined the chat",
    "left_chat_member": lambda user: f"{person(user)} left the chat",
    "new_chat_title": lambda title: f"The chat was renamed to {_str(title) or '?'}",
    "new_chat_photo": _constant("The chat photo was changed"),
    "delete_chat_photo": _constant("The chat photo was removed"),
    "group_chat_created": _constant("The group was created"),
    "supergroup_chat_created": _constant("The supergroup was created"),
    "channel_chat_created": _constant("The channel was created"),
    "message_auto_delete_timer_changed": lambda value: (
        "Messages in this chat are now deleted automatically after "
        f"{_number(_dict(value).get('message_auto_delete_time'))} seconds"
    ),
    "migrate_to_chat_id": lambda chat: f"The group became the supergroup {chat}; replies go there",
    "migrate_from_chat_id": lambda chat: f"The supergroup was the group {chat} before",
    "pinned_message": _pinned,
    "boost_added": lambda value: (
        f"Customer boosted the chat ({_number(_dict(value).get('boost_count'))} boosts)"
    ),
    "chat_background_set": _constant("The chat background was changed"),
    "checklist_tasks_done": _constant("Customer marked checklist tasks done"),
    "checklist_tasks_added": _constant("Customer added tasks to a checklist"),
    "direct_message_price_changed": _constant("The price of direct messages changed"),
    "paid_message_price_changed": _constant("The price of paid messages changed"),
    "forum_topic_created": _named("Topic created: {}", "name"),
    "forum_topic_edited": _named("Topic renamed: {}", "name"),
    "forum_topic_closed": _constant("The topic was closed"),
    "forum_topic_reopened": _constant("The topic was reopened"),
    "general_forum_topic_hidden": _constant("The General topic was hidden"),
    "general_forum_topic_unhidden": _constant("The General topic was shown again"),
    "video_chat_scheduled": lambda value: (
        f"A video chat was scheduled for {_when(_dict(value).get('start_date'))}"
    ),
    "video_chat_started": _constant("A video chat started"),
    "video_chat_ended": lambda value: (
        f"The video chat ended after {_number(_dict(value).get('duration'))} seconds"
    ),
    "video_chat_participants_invited": lambda value: (
        f"{_people(_dict(value).get('users'))} were invited to the video chat"
    ),
    "gift": lambda value: (
        "Customer sent a gift"
        + (f": {_str(_dict(value).get('text'))}" if _str(_dict(value).get("text")) else "")
    ),
    "unique_gift": _constant("Customer sent a unique gift"),
    "gift_upgrade_sent": _constant("Customer upgraded a gift"),
    "suggested_post_approved": _constant("A suggested post was approved"),
    "suggested_post_approval_failed": _constant("A suggested post could not be approved"),
    "suggested_post_declined": _constant("A suggested post was declined"),
    "suggested_post_paid": _constant("A suggested post was paid for"),
    "suggested_post_refunded": _constant("A suggested post was refunded"),
    "chat_owner_changed": lambda value: (
        f"{person(_dict(value).get('new_owner'))} now owns the chat"
    ),
    "chat_owner_left": _constant("The chat's owner left"),
    "poll_option_added": _named("A poll option was added: {}", "option_text"),
    "poll_option_deleted": _constant("A poll option was removed"),
    "managed_bot_created": lambda value: (
        f"Customer created the bot {person(_dict(value).get('bot'))}"
    ),
}


# Service messages: Telegram tells of something that happened in the chat (a member
# joined, a message was pinned, a video chat started), nobody wrote to us. A message
# that carries only these is a notice (`InboundMessage.notice`): kept in the thread, it
# reopens nothing and moves no SLA clock. Payments, gifts, shared users and chats, web
# app data and the like are things the customer sent: they stay customer messages.
SERVICE_FIELDS = frozenset(
    {
        "new_chat_members",
        "left_chat_member",
        "new_chat_title",
        "new_chat_photo",
        "delete_chat_photo",
        "group_chat_created",
        "supergroup_chat_created",
        "channel_chat_created",
        "message_auto_delete_timer_changed",
        "migrate_to_chat_id",
        "migrate_from_chat_id",
        "pinned_message",
        "boost_added",
        "chat_background_set",
        "checklist_tasks_done",
        "checklist_tasks_added",
        "direct_message_price_changed",
        "paid_message_price_changed",
        "forum_topic_created",
        "forum_topic_edited",
        "forum_topic_closed",
        "forum_topic_reopened",
        "general_forum_topic_hidden",
        "general_forum_topic_unhidden",
        "video_chat_scheduled",
        "video_chat_started",
        "video_chat_ended",
        "video_chat_participants_invited",
        "write_access_allowed",
        "connected_website",
        "proximity_alert_triggered",
        "giveaway_created",
        "giveaway_completed",
        "suggested_post_approved",
        "suggested_post_approval_failed",
        "suggested_post_declined",
        "suggested_post_paid",
        "suggested_post_refunded",
        "chat_owner_changed",
        "chat_owner_left",
        "poll_option_added",
        "poll_option_deleted",
        "managed_bot_created",
    }
)


def is_service(message: dict[str, Any]) -> bool:
    """The message carries only service fields: no text, no file, nothing a person sent."""
    content = {
        field
        for field, value in message.items()
        if field not in ABOUT_FIELDS
        and not (value is None or value is False or value in ("", [], {}))
    }
    return bool(content) and content <= SERVICE_FIELDS


def forwarded_from(message: dict[str, Any]) -> str | None:
    """ "Forwarded from …" for a forwarded message (`forward_origin`, Bot API 7.0+, or the
    older `forward_*` fields), None otherwise."""
    origin = _dict(message.get("forward_origin"))
    if origin:
        kind = origin.get("type")
        if kind == "user":
            who = person(origin.get("sender_user"))
        elif kind == "hidden_user":
            who = _str(origin.get("sender_user_name")) or "a hidden user"
        elif kind in ("chat", "channel"):
            key = "sender_chat" if kind == "chat" else "chat"
            who = person(origin.get(key))
            signature = _str(origin.get("author_signature"))
            who += f" ({signature})" if signature else ""
        else:
            who = "someone"
        return f"Forwarded from {who}:"
    for key in ("forward_from", "forward_from_chat"):
        if key in message:
            return f"Forwarded from {person(message[key])}:"
    if _str(message.get("forward_sender_name")):
        return f"Forwarded from {_str(message['forward_sender_name'])}:"
    return None


def notes(message: dict[str, Any]) -> list[str]:
    """A readable note for each field that is neither metadata, text nor a file; an
    unknown field gets one that names it. Sticker and paid-media notes come with files."""
    found: list[str] = []
    for field, value in message.items():
        if field in ABOUT_FIELDS or field in TEXT_FIELDS:
            continue
        if value is None or value is False or value in ("", [], {}):
            continue  # an absent flag, as some clients serialize it (`delete_chat_photo: false`)
        if field == "location" and "venue" in message:
            continue  # a venue carries its location too
        if field == "sticker":
            emoji = _str(_dict(value).get("emoji"))
            found.append(f"Customer sent a sticker {emoji}".rstrip())
        elif field == "paid_media":
            stars = _number(_dict(value).get("star_count"))
            found.append(f"Customer sent paid media ({stars} Telegram Stars)")
        elif field in FILE_FIELDS:
            continue
        elif field in NOTES:
            try:
                found.append(NOTES[field](value))
            except (TypeError, AttributeError, ValueError):
                found.append(f"Customer sent a Telegram {field.replace('_', ' ')}")
        else:
            found.append(
                f"Customer sent a Telegram message of a kind this helpdesk cannot show yet "
                f"({field}); open Telegram to see it"
            )
    return found
