"""WhatsApp Cloud API changes (`entry[].changes[].value`) as normalized items: pure, no I/O."""

from __future__ import annotations

import json
import mimetypes
from typing import Any, Literal

import msgspec

from helpdesk.channels.adapter import (
    InboundAttachment,
    InboundMessage,
    SenderIdentity,
    StatusUpdate,
)
from helpdesk.channels.meta.items import (
    DECODE_ERRORS,
    Item,
    from_seconds,
    joined,
    note,
    placeholder_name,
)
from helpdesk.channels.meta.whatsapp_fields import (
    Contact,
    ContactCard,
    ContactName,
    EditedMessage,
    Interactive,
    Media,
    Order,
    Profile,
    Status,
    Value,
    WhatsAppHead,
    WhatsAppMessage,
)

_decode_contact = msgspec.json.Decoder(Contact).decode
_decode_whatsapp = msgspec.json.Decoder(WhatsAppMessage).decode
_decode_whatsapp_head = msgspec.json.Decoder(WhatsAppHead).decode
_decode_status = msgspec.json.Decoder(Status).decode


_WHATSAPP_MEDIA = {
    "image": ("image", "image/jpeg"),
    "document": ("document", "application/octet-stream"),
    "audio": ("audio", "audio/ogg"),
    "video": ("video", "video/mp4"),
    "sticker": ("sticker", "image/webp"),
}
# What WhatsApp reports as `unsupported.type` (or a type we have no rendering for),
# as a person would name it.
_WHATSAPP_KINDS = {
    "poll_creation": "a poll",
    "poll_update": "a vote in a poll",
    "edit": "an edit of a message",
    "pin": "a pinned message",
    "group_invite": "a group invitation",
    "gif": "a GIF",
    "keep_in_chat": "a kept message",
    "link_preview": "a link preview",
    "product": "a product",
    "order": "an order",
    "reaction": "a reaction",
    "button": "a button reply",
    "list": "a list reply",
    "interactive": "an interactive reply",
    "image": "an image",
    "location": "a location",
    "media_placeholder": "a file",
    "hsm": "a template message",
    "errors": "a message WhatsApp could not process",
    "event": "an event invitation",
    "view_once": "a view-once photo or video",
    "call": "a call",
}


def _whatsapp_caption(message: WhatsAppMessage | EditedMessage) -> str:
    for field in ("image", "video", "document"):
        media: Media | None = getattr(message, field, None)
        if media is not None and media.caption:
            return media.caption
    return ""


def _flow_fields(response: str | dict[str, Any]) -> list[str]:
    """A Flow's answers as `field: value` lines (its `flow_token` is ours, not theirs)."""
    data: Any = response
    if isinstance(response, str):
        try:
            data = json.loads(response) if response else {}
        except ValueError:
            return [response]
    if not isinstance(data, dict):
        return [str(data)]
    lines = []
    for key, value in data.items():
        if key == "flow_token":
            continue
        shown = ", ".join(map(str, value)) if isinstance(value, list) else value
        lines.append(f"{key}: {shown}")
    return lines


def _contact_card(card: ContactCard) -> str:
    name = card.name or ContactName()
    full = name.formatted_name or " ".join(p for p in (name.first_name, name.last_name) if p)
    details = [p.phone or p.wa_id for p in card.phones or () if p.phone or p.wa_id]
    details += [e.email for e in card.emails or () if e.email]
    if card.org is not None and card.org.company:
        details.append(card.org.company)
    return ", ".join(p for p in (full or "a contact", *details) if p)


def _order(order: Order) -> str:
    lines = [f"The customer sent an order from catalog {order.catalog_id}".rstrip()]
    total: float = 0.0
    currency = ""
    priced = True
    for item in order.product_items or ():
        price = item.item_price
        line = f"- {item.quantity} x {item.product_retailer_id}"
        if price is not None:
            line += f" at {price} {item.currency}".rstrip()
            try:
                total += float(price) * float(item.quantity)
                currency = currency or item.currency
            except ValueError:
                priced = False
        else:
            priced = False
        lines.append(line)
    if priced and order.product_items:
        lines.append(f"Total: {round(total, 2)} {currency}".rstrip())
    return "[" + "\n".join(lines) + "]"


def _unsupported_note(kind: str) -> str:
    what = _WHATSAPP_KINDS.get(kind) if kind else None
    if what is None:
        what = f"a message of type '{kind}'" if kind else "a message"
    return note(f"The customer sent {what}; open WhatsApp to see it")


def _whatsapp_text(message: WhatsAppMessage) -> str:
    """What the person wrote, or a readable note for what cannot be shown here."""
    kind = message.type
    if message.text is not None:
        text = message.text.body
    elif message.location is not None:
        place = message.location
        where = ", ".join(p for p in (place.name, place.address, place.url) if p)
        suffix = f" {where}" if where else ""
        text = f"[location {place.latitude}, {place.longitude}{suffix}]"
    elif message.contacts is not None:
        cards = [_contact_card(card) for card in message.contacts]
        text = "\n".join(note(f"Shared contact: {card}") for card in cards)
    elif message.button is not None:
        text = message.button.text or message.button.payload
    elif message.interactive is not None:
        text = _interactive_text(message.interactive)
    elif message.order is not None:
        text = joined(message.order.text, _order(message.order))
    elif message.reaction is not None:
        emoji = message.reaction.emoji
        text = note(f"Reacted {emoji} to a message" if emoji else "Removed a reaction")
    elif message.system is not None:
        text = note(f"WhatsApp: {message.system.body or message.system.type}")
    elif kind == "request_welcome":
        text = note("The customer opened a chat with you and has not written yet")
    elif kind in _WHATSAPP_MEDIA:
        text = _whatsapp_caption(message)
        media: Media | None = getattr(message, kind)
        if media is not None and media.voice:
            text = joined(note("Voice message"), text)
        elif kind == "sticker":
            text = joined(note("Sticker"), text)
    elif kind in {"unsupported", "unknown"} or message.errors:
        inner = message.unsupported.type if message.unsupported else ""
        text = _unsupported_note(inner or ("" if kind in {"unsupported", "unknown"} else kind))
    else:
        text = _unsupported_note(kind)
    notes = []
    context = message.context
    if context is not None and context.referred_product is not None:
        product = context.referred_product
        notes.append(
            note(f"About product {product.product_retailer_id} of catalog {product.catalog_id}")
        )
    if context is not None and (context.forwarded or context.frequently_forwarded):
        notes.append(note("Forwarded" + (" many times" if context.frequently_forwarded else "")))
    if message.referral is not None:
        ad = message.referral
        label = ad.headline or ad.body or ad.source_type or "an ad"
        notes.append(
            note(f"The customer came from {label}" + (f" {ad.source_url}" if ad.source_url else ""))
        )
    return joined(text, *notes)


def _interactive_text(interactive: Interactive) -> str:
    choice = interactive.button_reply or interactive.list_reply
    if choice is not None:
        return joined(choice.title or choice.id, choice.description)
    if interactive.nfm_reply is not None:
        flow = interactive.nfm_reply
        heading = note(f"Form reply{': ' + flow.name if flow.name and flow.name != 'flow' else ''}")
        return joined(
            heading, flow.body if flow.body != "Sent" else "", *_flow_fields(flow.response_json)
        )
    return _unsupported_note(f"interactive {interactive.type}".strip())


def _whatsapp_files(message: WhatsAppMessage) -> list[InboundAttachment]:
    files = []
    for field, (stem, default_type) in _WHATSAPP_MEDIA.items():
        media: Media | None = getattr(message, field)
        if media is None or not media.id:
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


def _senders(value: Value) -> dict[str, SenderIdentity]:
    """The senders of this change by every id Meta gives them (phone and BSUID)."""
    found: dict[str, SenderIdentity] = {}
    for raw in value.contacts or ():
        try:
            contact = _decode_contact(raw)
        except DECODE_ERRORS:
            continue
        key = contact.wa_id or contact.user_id
        if not key:
            continue
        profile = contact.profile or Profile()
        name = profile.name or (f"@{profile.username.lstrip('@')}" if profile.username else "")
        sender = SenderIdentity(
            external_id=key,
            display_name=name or placeholder_name("whatsapp", key),
            phone=f"+{contact.wa_id}" if contact.wa_id.isdigit() else None,
        )
        for known in (contact.wa_id, contact.user_id):
            if known:
                found[known] = sender
    return found


def _sender_of(
    head: WhatsAppMessage | WhatsAppHead, senders: dict[str, SenderIdentity]
) -> SenderIdentity | None:
    """Who sent a message: by phone number when Meta shares it (what earlier messages
    were keyed by), else by the business-scoped user id of a user with a username."""
    for key in (head.from_, head.from_user_id):
        if key and key in senders:
            return senders[key]
    key = head.from_ or head.from_user_id
    if not key:
        return None
    return SenderIdentity(
        external_id=key,
        display_name=placeholder_name("whatsapp", key),
        phone=f"+{key}" if key.isdigit() else None,
    )


def _whatsapp_message(
    account: str, raw: msgspec.Raw, senders: dict[str, SenderIdentity]
) -> InboundMessage | None:
    try:
        message = _decode_whatsapp(raw)
    except DECODE_ERRORS:
        return _unreadable_whatsapp(account, raw, senders)
    sender = _sender_of(message, senders)
    if sender is None or not message.id:
        return None
    at = from_seconds(message.timestamp)
    base: dict[str, Any] = {
        "channel": "whatsapp",
        "channel_account": account,
        "conversation_id": sender.external_id,
        "sender": sender,
        "sent_at": at,
    }
    if message.edit is not None and message.edit.original_message_id:
        edited = message.edit.message or EditedMessage()
        text = edited.text.body if edited.text is not None else _whatsapp_caption(edited)
        return InboundMessage(
            external_id=message.edit.original_message_id, text=text, edited=True, **base
        )
    if message.revoke is not None and message.revoke.original_message_id:
        return InboundMessage(
            external_id=message.revoke.original_message_id,
            text=note("The customer deleted this message in WhatsApp"),
            edited=True,
            notice=True,
            **base,
        )
    reply_to = message.context.id if message.context else None
    if message.reaction is not None and message.reaction.message_id:
        reply_to = message.reaction.message_id
    return InboundMessage(
        external_id=message.id,
        text=_whatsapp_text(message),
        attachments=tuple(_whatsapp_files(message)),
        reply_to_external_id=reply_to,
        notice=_whatsapp_notice(message),
        **base,
    )


def _whatsapp_notice(message: WhatsAppMessage) -> bool:
    """Nobody wrote it: a reaction (or its removal), a system notice (the customer's
    number changed), a welcome request (the chat was opened, nothing written yet)."""
    if message.text is not None:
        return False
    return (
        message.reaction is not None
        or message.system is not None
        or message.type in {"reaction", "system", "request_welcome"}
    )


def _unreadable_whatsapp(
    account: str, raw: msgspec.Raw, senders: dict[str, SenderIdentity]
) -> InboundMessage | None:
    try:
        head = _decode_whatsapp_head(raw)
    except DECODE_ERRORS:
        return None
    sender = _sender_of(head, senders)
    if sender is None or not head.id:
        return None
    return InboundMessage(
        channel="whatsapp",
        channel_account=account,
        external_id=head.id,
        conversation_id=sender.external_id,
        sender=sender,
        text=_unsupported_note(str(head.type or "")),
        sent_at=from_seconds(str(head.timestamp)),
    )


def whatsapp_items(account: str, phone_number_id: str | None, value: Value) -> list[Item]:
    if phone_number_id and value.metadata and value.metadata.phone_number_id != phone_number_id:
        return []  # another number of the same business account: not ours
    senders = _senders(value)
    items: list[Item] = []
    for raw in value.messages or ():
        found = _whatsapp_message(account, raw, senders)
        if found is not None:
            items.append(found)
    for raw in value.statuses or ():
        try:
            status = _decode_status(raw)
        except DECODE_ERRORS:
            continue
        mapped = _STATUS_MAP.get(status.status)
        if mapped is None:
            continue  # "sent": the API call already told us
        items.append(
            StatusUpdate(
                external_id=status.id,
                status=mapped,
                at=from_seconds(status.timestamp),
                reason=_status_reason(status) if mapped == "failed" else None,
            )
        )
    return items
