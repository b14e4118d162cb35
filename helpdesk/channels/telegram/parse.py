"""Telegram updates as the normalized channel shapes: pure functions, no I/O.

Only the fields we use are declared; Telegram adds fields often and unknown ones are
ignored. An update we cannot use (an unknown type, a bot's message, a malformed body)
normalizes to nothing: it stays stored in `inbound_events` for audit and is answered
200, so Telegram does not redeliver it forever.
"""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

from helpdesk.channels.adapter import (
    ButtonPress,
    InboundAttachment,
    InboundMessage,
    SenderIdentity,
)

# getFile downloads at most 20 MB (Bot API docs); a larger file cannot be fetched at all.
BOT_API_DOWNLOAD_LIMIT = 20 * 1024 * 1024
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


class PhotoSize(msgspec.Struct):
    file_id: str
    file_unique_id: str = ""
    width: int = 0
    height: int = 0
    file_size: int | None = None


class FileObject(msgspec.Struct):
    """Document, audio, video, voice and animation share these fields."""

    file_id: str
    file_unique_id: str = ""
    file_name: str | None = None
    mime_type: str | None = None
    file_size: int | None = None


class RepliedMessage(msgspec.Struct):
    message_id: int


class Sticker(msgspec.Struct):
    emoji: str | None = None


class Location(msgspec.Struct):
    latitude: float
    longitude: float


class Contact(msgspec.Struct):
    phone_number: str
    first_name: str = ""
    last_name: str | None = None


class Message(msgspec.Struct):
    message_id: int
    date: int
    chat: Chat
    sender: User | None = msgspec.field(default=None, name="from")
    edit_date: int | None = None
    text: str | None = None
    caption: str | None = None
    photo: list[PhotoSize] | None = None
    document: FileObject | None = None
    audio: FileObject | None = None
    video: FileObject | None = None
    voice: FileObject | None = None
    sticker: Sticker | None = None
    location: Location | None = None
    contact: Contact | None = None
    reply_to_message: RepliedMessage | None = None


class CallbackQuery(msgspec.Struct):
    """A press of an inline keyboard button under one of our messages."""

    id: str
    sender: User = msgspec.field(name="from")
    data: str | None = None


class Update(msgspec.Struct):
    update_id: int
    message: Message | None = None
    edited_message: Message | None = None
    callback_query: CallbackQuery | None = None


class _UpdateId(msgspec.Struct):
    update_id: int


_decode_update = msgspec.json.Decoder(Update).decode
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


def _attachments(message: Message) -> list[InboundAttachment]:
    """Files to fetch through getFile (those Telegram will not hand out say why)."""
    found: list[InboundAttachment] = []
    if message.photo:
        largest = max(
            message.photo, key=lambda size: (size.width * size.height, size.file_size or 0)
        )
        name = f"photo_{largest.file_unique_id or message.message_id}.jpg"
        found.append(
            InboundAttachment(name, "image/jpeg", fetch_ref=largest.file_id, size=largest.file_size)
        )
    defaults = {
        "document": ("document", "application/octet-stream"),
        "audio": ("audio.mp3", "audio/mpeg"),
        "video": ("video.mp4", "video/mp4"),
        "voice": ("voice.ogg", "audio/ogg"),
    }
    for field, (default_name, default_type) in defaults.items():
        item: FileObject | None = getattr(message, field)
        if item is None:
            continue
        found.append(
            InboundAttachment(
                filename=item.file_name or default_name,
                content_type=item.mime_type or default_type,
                fetch_ref=item.file_id,
                size=item.file_size,
            )
        )
    return [
        a
        if a.size is None or a.size <= BOT_API_DOWNLOAD_LIMIT
        else msgspec.structs.replace(
            a, unavailable="Telegram lets bots download files of at most 20 MB"
        )
        for a in found
    ]


def _text(message: Message) -> str:
    if message.text is not None:
        return message.text
    if message.caption is not None:
        return message.caption
    if message.sticker is not None:
        return message.sticker.emoji or "[sticker]"
    if message.location is not None:
        return f"[location {message.location.latitude}, {message.location.longitude}]"
    if message.contact is not None:
        contact = message.contact
        name = " ".join(p for p in (contact.first_name, contact.last_name) if p)
        return f"[contact {name} {contact.phone_number}]".replace("  ", " ")
    return ""


def normalize_message(account: str, message: Message, *, edited: bool) -> InboundMessage | None:
    """One customer message, or None for what is not one (bots, service messages)."""
    user = message.sender
    if user is None or user.is_bot:
        return None  # channel posts, anonymous admins, other bots: no customer behind them
    attachments = _attachments(message)
    text = _text(message).strip()
    if not text and not attachments:
        return None  # joins, leaves, pins and other service messages
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
    )


def normalize_update(account: str, body: bytes) -> list[InboundMessage | ButtonPress]:
    """The messages in one webhook body (zero or one: an update carries one object)."""
    try:
        update = _decode_update(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return []
    press = update.callback_query
    if press is not None:
        if not press.data or press.sender.is_bot:
            return []
        return [ButtonPress(value=press.data, sender_id=str(press.sender.id), ack_ref=press.id)]
    if update.message is not None:
        found = normalize_message(account, update.message, edited=False)
    elif update.edited_message is not None:
        found = normalize_message(account, update.edited_message, edited=True)
    else:
        return []  # member updates and types we do not know
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
