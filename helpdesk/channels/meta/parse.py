"""Meta webhooks (Messenger, Instagram messaging, WhatsApp Cloud API) as the normalized
channel shapes: pure functions, no I/O.

Messenger and Instagram share one envelope (`entry[].messaging[]` with `sender`,
`recipient`, `timestamp` in milliseconds); WhatsApp nests `entry[].changes[].value` with
`messages`, `contacts` and `statuses` (timestamps in seconds, as strings). Only the fields
we use are declared; Meta adds fields often and unknown ones are ignored. What we cannot
use (echoes of our own messages, reactions, system notices, a malformed body) normalizes
to nothing: the delivery stays stored for audit and is answered 200, or Meta would retry
it and finally unsubscribe the app.
"""

from __future__ import annotations

import hashlib
import mimetypes
import posixpath
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import urlsplit

import msgspec

from helpdesk.channels.adapter import (
    InboundAttachment,
    InboundMessage,
    SenderIdentity,
    StatusUpdate,
    StatusWatermark,
)

MetaKind = Literal["messenger", "instagram", "whatsapp"]
Item = InboundMessage | StatusUpdate | StatusWatermark

# --- Messenger and Instagram ------------------------------------------------------------


class Party(msgspec.Struct):
    id: str


class AttachmentPayload(msgspec.Struct):
    url: str | None = None
    title: str | None = None
    sticker_id: int | None = None


class MessagingAttachment(msgspec.Struct):
    type: str
    payload: AttachmentPayload | None = None


class ReplyTo(msgspec.Struct):
    mid: str | None = None


class MessagingMessage(msgspec.Struct):
    mid: str
    text: str | None = None
    attachments: list[MessagingAttachment] | None = None
    reply_to: ReplyTo | None = None
    is_echo: bool = False
    is_deleted: bool = False
    is_unsupported: bool = False


class MessageEdit(msgspec.Struct):
    mid: str
    text: str = ""
    num_edit: int = 0


class Postback(msgspec.Struct):
    title: str = ""
    payload: str = ""
    mid: str | None = None


class Delivery(msgspec.Struct):
    mids: list[str] | None = None
    watermark: int | None = None


class Read(msgspec.Struct):
    watermark: int | None = None
    mid: str | None = None  # Instagram names the message read


class Messaging(msgspec.Struct):
    sender: Party
    recipient: Party
    timestamp: int = 0
    message: MessagingMessage | None = None
    message_edit: MessageEdit | None = None
    postback: Postback | None = None
    delivery: Delivery | None = None
    read: Read | None = None


# --- WhatsApp Cloud API ------------------------------------------------------------------


class Profile(msgspec.Struct):
    name: str = ""


class Contact(msgspec.Struct):
    wa_id: str
    profile: Profile | None = None


class Metadata(msgspec.Struct):
    phone_number_id: str = ""
    display_phone_number: str = ""


class Media(msgspec.Struct):
    id: str
    mime_type: str | None = None
    caption: str | None = None
    filename: str | None = None


class Text(msgspec.Struct):
    body: str = ""


class Location(msgspec.Struct):
    latitude: float = 0.0
    longitude: float = 0.0
    name: str | None = None
    address: str | None = None


class Button(msgspec.Struct):
    text: str = ""


class Choice(msgspec.Struct):
    title: str = ""


class Interactive(msgspec.Struct):
    button_reply: Choice | None = None
    list_reply: Choice | None = None


class Context(msgspec.Struct):
    id: str | None = None


class WhatsAppMessage(msgspec.Struct):
    id: str
    type: str
    timestamp: str = "0"
    from_: str = msgspec.field(default="", name="from")
    text: Text | None = None
    image: Media | None = None
    document: Media | None = None
    audio: Media | None = None
    video: Media | None = None
    sticker: Media | None = None
    location: Location | None = None
    button: Button | None = None
    interactive: Interactive | None = None
    context: Context | None = None


class StatusError(msgspec.Struct):
    code: int = 0
    title: str = ""
    message: str = ""


class Status(msgspec.Struct):
    id: str
    status: str
    timestamp: str = "0"
    errors: list[StatusError] | None = None


class Value(msgspec.Struct):
    metadata: Metadata | None = None
    contacts: list[Contact] | None = None
    messages: list[WhatsAppMessage] | None = None
    statuses: list[Status] | None = None


class Change(msgspec.Struct):
    field: str = ""
    value: Value | None = None


class Entry(msgspec.Struct):
    id: str = ""
    messaging: list[Messaging] | None = None
    changes: list[Change] | None = None


class Envelope(msgspec.Struct):
    object: str = ""
    entry: list[Entry] = []


_decode = msgspec.json.Decoder(Envelope).decode

# What each kind's webhook `object` is.
OBJECTS: dict[MetaKind, str] = {
    "messenger": "page",
    "instagram": "instagram",
    "whatsapp": "whatsapp_business_account",
}
# Messenger/Instagram attachment types and what they are when the URL tells nothing.
_DEFAULT_TYPES = {
    "image": ("image.jpg", "image/jpeg"),
    "video": ("video.mp4", "video/mp4"),
    "audio": ("audio.mp4", "audio/mp4"),
    "file": ("file", "application/octet-stream"),
    "ig_reel": ("reel.mp4", "video/mp4"),
    "reel": ("reel.mp4", "video/mp4"),
    "story_mention": ("story.jpg", "image/jpeg"),
}
_WHATSAPP_MEDIA = {
    "image": ("image", "image/jpeg"),
    "document": ("document", "application/octet-stream"),
    "audio": ("audio", "audio/ogg"),
    "video": ("video", "video/mp4"),
    "sticker": ("sticker", "image/webp"),
}


def delivery_key(body: bytes) -> str:
    """Meta gives a delivery no id; a redelivery repeats the same bytes (messages are
    deduplicated by their own id anyway)."""
    return "sha256:" + hashlib.sha256(body).hexdigest()


def _millis(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, UTC)


def _seconds(value: str) -> datetime:
    try:
        return datetime.fromtimestamp(int(value), UTC)
    except (ValueError, OverflowError, OSError):
        return datetime.fromtimestamp(0, UTC)


def _name_and_type(url: str | None, kind: str, index: int) -> tuple[str, str]:
    default_name, default_type = _DEFAULT_TYPES.get(
        kind, ("attachment", "application/octet-stream")
    )
    path = urlsplit(url).path if url else ""
    name = posixpath.basename(path)
    guessed, _ = mimetypes.guess_type(name) if name else (None, None)
    if not name or guessed is None:
        stem, dot, extension = default_name.partition(".")
        return f"{stem}_{index}{dot}{extension}", default_type
    return name[:200], guessed


def messaging_attachments(message: MessagingMessage) -> tuple[list[InboundAttachment], list[str]]:
    """Files to fetch from Meta's CDN, and text for what has no file (links, stickers)."""
    files: list[InboundAttachment] = []
    notes: list[str] = []
    for index, attachment in enumerate(message.attachments or (), start=1):
        payload = attachment.payload or AttachmentPayload()
        if attachment.type in {"fallback", "share", "template", "location"} or not payload.url:
            label = payload.title or attachment.type
            notes.append(f"[{label}: {payload.url}]" if payload.url else f"[{label}]")
            continue
        if payload.sticker_id is not None:
            notes.append("[sticker]")
            continue
        filename, content_type = _name_and_type(payload.url, attachment.type, index)
        files.append(InboundAttachment(filename, content_type, fetch_ref=payload.url))
    return files, notes


def _messaging_item(kind: MetaKind, account: str, event: Messaging) -> list[Item]:
    customer = event.sender.id
    at = _millis(event.timestamp)
    sender = SenderIdentity(external_id=customer, display_name=_placeholder_name(kind, customer))
    if event.message is not None:
        message = event.message
        if message.is_echo or message.is_deleted:
            return []  # our own (or the page's) messages; unsent messages stay as they were
        files, notes = messaging_attachments(message)
        if message.is_unsupported:
            notes.append(f"[a message {kind} cannot show here]")
        text = "\n".join(part for part in (message.text or "", *notes) if part).strip()
        if not text and not files:
            return []
        reply_to = message.reply_to.mid if message.reply_to else None
        return [
            InboundMessage(
                channel=kind,
                channel_account=account,
                external_id=message.mid,
                conversation_id=customer,
                sender=sender,
                text=text,
                sent_at=at,
                attachments=tuple(files),
                reply_to_external_id=reply_to,
            )
        ]
    if event.message_edit is not None:
        edit = event.message_edit
        return [
            InboundMessage(
                channel=kind,
                channel_account=account,
                external_id=edit.mid,
                conversation_id=customer,
                sender=sender,
                text=edit.text,
                sent_at=at,
                edited=True,
            )
        ]
    if event.postback is not None:
        postback = event.postback
        text = postback.title or postback.payload
        if not text:
            return []
        return [
            InboundMessage(
                channel=kind,
                channel_account=account,
                external_id=postback.mid or f"postback:{customer}:{event.timestamp}",
                conversation_id=customer,
                sender=sender,
                text=text,
                sent_at=at,
            )
        ]
    items: list[Item] = []
    if event.delivery is not None:
        delivery = event.delivery
        items.extend(
            StatusUpdate(external_id=mid, status="delivered", at=at) for mid in delivery.mids or ()
        )
        if delivery.watermark:
            items.append(
                StatusWatermark(
                    conversation_id=customer, status="delivered", up_to=_millis(delivery.watermark)
                )
            )
    if event.read is not None:
        read = event.read
        if read.mid:
            items.append(StatusUpdate(external_id=read.mid, status="read", at=at))
        if read.watermark:
            items.append(
                StatusWatermark(
                    conversation_id=customer, status="read", up_to=_millis(read.watermark)
                )
            )
    return items


def _placeholder_name(kind: MetaKind, customer: str) -> str:
    """Messenger and Instagram send no names; the agent can rename the customer."""
    label = {"messenger": "Messenger", "instagram": "Instagram", "whatsapp": "WhatsApp"}[kind]
    return f"{label} user …{customer[-6:]}"


def _whatsapp_text(message: WhatsAppMessage) -> str:
    if message.text is not None:
        return message.text.body
    for field in _WHATSAPP_MEDIA:
        media: Media | None = getattr(message, field)
        if media is not None and media.caption:
            return media.caption
    if message.location is not None:
        place = message.location
        where = ", ".join(p for p in (place.name, place.address) if p)
        suffix = f" {where}" if where else ""
        return f"[location {place.latitude}, {place.longitude}{suffix}]"
    if message.button is not None:
        return message.button.text
    if message.interactive is not None:
        choice = message.interactive.button_reply or message.interactive.list_reply
        return choice.title if choice else ""
    return ""


def _whatsapp_files(message: WhatsAppMessage) -> list[InboundAttachment]:
    files = []
    for field, (stem, default_type) in _WHATSAPP_MEDIA.items():
        media: Media | None = getattr(message, field)
        if media is None:
            continue
        content_type = (media.mime_type or default_type).split(";")[0].strip() or default_type
        name = media.filename
        if not name:
            extension = mimetypes.guess_extension(content_type) or ""
            name = f"{stem}_{media.id[-8:]}{extension}"
        files.append(InboundAttachment(name[:200], content_type, fetch_ref=media.id))
    return files


_STATUS_MAP: dict[str, Literal["delivered", "read", "failed"]] = {
    "delivered": "delivered",
    "read": "read",
    "failed": "failed",
}


def _status_reason(status: Status) -> str:
    parts = []
    for error in status.errors or ():
        detail = error.message or error.title
        parts.append(f"{detail} (WhatsApp error {error.code})" if error.code else detail)
        if error.code == 131047:
            parts.append(
                "more than 24 hours passed since the customer's last message: "
                "only a template message can reach them now"
            )
    return "; ".join(p for p in parts if p) or "WhatsApp reported the message as not delivered"


def _whatsapp_items(account: str, phone_number_id: str | None, value: Value) -> list[Item]:
    if phone_number_id and value.metadata and value.metadata.phone_number_id != phone_number_id:
        return []  # another number of the same business account: not ours
    names = {c.wa_id: c.profile.name if c.profile else "" for c in value.contacts or ()}
    items: list[Item] = []
    for message in value.messages or ():
        if message.type in {"reaction", "system", "unsupported", "ephemeral"}:
            continue  # nothing an agent answers; kept in the stored delivery
        files = _whatsapp_files(message)
        text = _whatsapp_text(message)
        if not text and not files:
            continue
        wa_id = message.from_
        items.append(
            InboundMessage(
                channel="whatsapp",
                channel_account=account,
                external_id=message.id,
                conversation_id=wa_id,
                sender=SenderIdentity(
                    external_id=wa_id,
                    display_name=names.get(wa_id) or _placeholder_name("whatsapp", wa_id),
                    phone=f"+{wa_id}" if wa_id.isdigit() else None,
                ),
                text=text,
                sent_at=_seconds(message.timestamp),
                attachments=tuple(files),
                reply_to_external_id=message.context.id if message.context else None,
            )
        )
    for status in value.statuses or ():
        mapped = _STATUS_MAP.get(status.status)
        if mapped is None:
            continue  # "sent": the API call already told us
        items.append(
            StatusUpdate(
                external_id=status.id,
                status=mapped,
                at=_seconds(status.timestamp),
                reason=_status_reason(status) if mapped == "failed" else None,
            )
        )
    return items


def normalize_body(
    kind: MetaKind, account: str, body: bytes, *, recipient_id: str | None = None
) -> list[Item]:
    """Everything usable in one delivery. `recipient_id` (the page, Instagram account or
    phone number id the account is for) filters out what belongs to another one."""
    try:
        envelope = _decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return []
    if envelope.object != OBJECTS[kind]:
        return []
    items: list[Item] = []
    for entry in envelope.entry:
        if kind == "whatsapp":
            for change in entry.changes or ():
                if change.field == "messages" and change.value is not None:
                    items.extend(_whatsapp_items(account, recipient_id, change.value))
            continue
        if recipient_id and entry.id and entry.id != recipient_id:
            continue
        for event in entry.messaging or ():
            items.extend(_messaging_item(kind, account, event))
    return items
