"""Telegram updates as the normalized channel shapes: pure functions, no I/O.

A customer's message becomes its text (or caption) and files, with a readable note for
everything else it carries (a poll, a venue, a payment, a member joining, a field of a
future Bot API version: see `kinds`), so nothing a person sends is dropped. A service
message (a member joined, a message was pinned) is flagged `notice`: nobody wrote it. An update
that is no customer's message (another update type, a bot's message, a malformed body)
normalizes to nothing: it stays stored in `inbound_events` for audit and is answered
200, so Telegram does not redeliver it forever.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

from helpdesk.channels.adapter import (
    ButtonPress,
    InboundAttachment,
    InboundMessage,
    SenderIdentity,
)
from helpdesk.channels.catalogue import inbound_max_bytes
from helpdesk.channels.telegram import kinds

# getFile downloads at most 20 MB (Bot API docs, declared in the channel catalogue); a
# larger file cannot be fetched at all.
BOT_API_DOWNLOAD_LIMIT = inbound_max_bytes("telegram")
# The update types we turn into messages (also what setWebhook/getUpdates ask for).
ALLOWED_UPDATES = ("message", "edited_message", "callback_query")


class User(msgspec.Struct):
    id: int
    is_bot: bool = False
    first_name: str = ""
    last_name: str | None = None
    username: str | None = None


class Chat(msgspec.Struct):
    id: int
    type: str = "private"


class RepliedMessage(msgspec.Struct):
    message_id: int


class Message(msgspec.Struct):
    """What identifies a message; its content is read from the raw object (`kinds`)."""

    message_id: int
    date: int
    chat: Chat
    sender: User | None = msgspec.field(default=None, name="from")
    edit_date: int | None = None
    reply_to_message: RepliedMessage | None = None


class CallbackQuery(msgspec.Struct):
    """A press of an inline keyboard button under one of our messages."""

    id: str
    sender: User = msgspec.field(name="from")
    data: str | None = None


class Update(msgspec.Struct):
    update_id: int
    # Undecoded: a message's content is read field by field (see `kinds`).
    message: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)
    edited_message: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)
    callback_query: CallbackQuery | None = None


class _UpdateId(msgspec.Struct):
    update_id: int


_decode_update = msgspec.json.Decoder(Update).decode
_decode_message = msgspec.json.Decoder(Message).decode
_decode_object = msgspec.json.Decoder(dict[str, Any]).decode
_decode_update_id = msgspec.json.Decoder(_UpdateId).decode


def update_id(body: bytes) -> str | None:
    """The delivery id Telegram redelivers an update with; None if the body has none."""
    try:
        return str(_decode_update_id(body).update_id)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def message_external_id(chat_id: int | str, message_id: int) -> str:
    """Message ids are unique only within a chat, so the chat is part of ours."""
    return f"{chat_id}:{message_id}"


def display_name(user: User) -> str:
    full = " ".join(part for part in (user.first_name, user.last_name) if part).strip()
    if full:
        return full
    return f"@{user.username}" if user.username else str(user.id)


def _timestamp(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _file(value: object, default_name: str, default_type: str) -> InboundAttachment | None:
    """One Telegram file object (Document, Video, Sticker, ...) to fetch with getFile."""
    if not isinstance(value, dict) or not isinstance(value.get("file_id"), str):
        return None
    name = value.get("file_name")
    kind = value.get("mime_type")
    size = value.get("file_size")
    return InboundAttachment(
        filename=name if isinstance(name, str) and name.strip() else default_name,
        content_type=kind if isinstance(kind, str) and kind else default_type,
        fetch_ref=value["file_id"],
        size=size if isinstance(size, int) and not isinstance(size, bool) else None,
    )


def _largest_photo(sizes: object, message_id: int) -> InboundAttachment | None:
    """Telegram sends every size it made of a photo; the largest is kept."""
    found = [p for p in sizes if isinstance(p, dict)] if isinstance(sizes, list) else []
    if not found:
        return None

    def area(size: dict[str, Any]) -> tuple[int, int]:
        width, height, bytes_ = (size.get(k) for k in ("width", "height", "file_size"))
        pixels = width * height if isinstance(width, int) and isinstance(height, int) else 0
        return pixels, bytes_ if isinstance(bytes_, int) else 0

    largest = max(found, key=area)
    unique = largest.get("file_unique_id") or message_id
    return _file({**largest, "file_name": f"photo_{unique}.jpg"}, "", "image/jpeg")


_FILE_DEFAULTS = {
    "document": ("document", "application/octet-stream"),
    "audio": ("audio.mp3", "audio/mpeg"),
    "video": ("video.mp4", "video/mp4"),
    "voice": ("voice.ogg", "audio/ogg"),
    "animation": ("animation.mp4", "video/mp4"),
    "video_note": ("video_note.mp4", "video/mp4"),
    "live_photo": ("live_photo.mp4", "video/mp4"),
}


def _sticker_file(value: object) -> InboundAttachment | None:
    sticker = value if isinstance(value, dict) else {}
    if sticker.get("is_animated"):
        name, kind = "sticker.tgs", "application/x-tgsticker"
    elif sticker.get("is_video"):
        name, kind = "sticker.webm", "video/webm"
    else:
        name, kind = "sticker.webp", "image/webp"
    return _file(sticker, name, kind)


def _attachments(message: dict[str, Any], message_id: int) -> list[InboundAttachment]:
    """Files to fetch through getFile (those Telegram will not hand out say why)."""
    found: list[InboundAttachment | None] = [_largest_photo(message.get("photo"), message_id)]
    for field, (default_name, default_type) in _FILE_DEFAULTS.items():
        found.append(_file(message.get(field), default_name, default_type))
    found.append(_sticker_file(message.get("sticker")))
    paid = message.get("paid_media")
    items = paid.get("paid_media") if isinstance(paid, dict) else None
    for item in items if isinstance(items, list) else ():
        if isinstance(item, dict) and item.get("type") == "photo":
            found.append(_largest_photo(item.get("photo"), message_id))
        elif isinstance(item, dict) and item.get("type") == "video":
            found.append(_file(item.get("video"), "video.mp4", "video/mp4"))
    return [
        a
        if a.size is None or a.size <= BOT_API_DOWNLOAD_LIMIT
        else msgspec.structs.replace(
            a, unavailable="Telegram lets bots download files of at most 20 MB"
        )
        for a in found
        if a is not None
    ]


def _text(message: dict[str, Any]) -> str:
    """The words, with "Forwarded from …" before them and a note for each other thing
    the message carries."""
    words = next((message[k] for k in ("text", "caption") if isinstance(message.get(k), str)), "")
    forwarded = kinds.forwarded_from(message)
    parts = [forwarded] if forwarded else []
    parts += [words, *kinds.notes(message)]
    return "\n".join(p for p in parts if p.strip()).strip()


def normalize_message(
    account: str, raw: bytes | dict[str, Any], *, edited: bool
) -> InboundMessage | None:
    """One customer message, or None for what is not one (bots, channel posts)."""
    body = raw if isinstance(raw, dict) else _decode_object(raw)
    message = msgspec.convert(body, Message)
    user = message.sender
    if user is None or user.is_bot:
        return None  # channel posts, anonymous admins, other bots: no customer behind them
    attachments = _attachments(body, message.message_id)
    text = _text(body)
    if not text and not attachments:
        return None  # nothing at all (a message object with only metadata)
    name = display_name(user)
    chat_id = message.chat.id
    subject = None
    if text.split(maxsplit=1)[:1] == ["/start"]:
        subject = f"New Telegram conversation with {name}"
    sent_at = message.edit_date if edited and message.edit_date else message.date
    reply_to = message.reply_to_message
    return InboundMessage(
        channel="telegram",
        channel_account=account,
        external_id=message_external_id(chat_id, message.message_id),
        conversation_id=str(chat_id),
        sender=SenderIdentity(external_id=str(user.id), display_name=name),
        text=text,
        sent_at=_timestamp(sent_at),
        attachments=tuple(attachments),
        reply_to_external_id=(
            None if reply_to is None else message_external_id(chat_id, reply_to.message_id)
        ),
        edited=edited,
        subject=subject,
        notice=kinds.is_service(body),
    )


def normalize_update(account: str, body: bytes) -> list[InboundMessage | ButtonPress]:
    """The messages in one webhook body (zero or one: an update carries one object)."""
    try:
        update = _decode_update(body)
        press = update.callback_query
        if press is not None:
            if not press.data or press.sender.is_bot:
                return []
            return [ButtonPress(value=press.data, sender_id=str(press.sender.id), ack_ref=press.id)]
        if len(update.message):
            found = normalize_message(account, bytes(update.message), edited=False)
        elif len(update.edited_message):
            found = normalize_message(account, bytes(update.edited_message), edited=True)
        else:
            return []  # member updates and types we do not know
    except (msgspec.DecodeError, msgspec.ValidationError):
        return []
    return [] if found is None else [found]


def reply_to_message_id(chat_id: str, reply_to_external_id: str | None) -> int | None:
    """The Telegram message id to quote, from our `chat:message` id in the same chat."""
    if not reply_to_external_id:
        return None
    chat, _, message = reply_to_external_id.rpartition(":")
    if chat != chat_id or not message.isdigit():
        return None
    return int(message)


def chat_id_param(conversation_id: str) -> int | str:
    """Numeric chat ids go as numbers; `@channelname` as it is."""
    try:
        return int(conversation_id)
    except ValueError:
        return conversation_id


def webhook_url(public_base_url: str, account: str) -> str:
    return f"{public_base_url.rstrip('/')}/channels/telegram/{account}/webhook"
