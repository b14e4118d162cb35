"""Messenger and Instagram events (`entry[].messaging[]`) as normalized items: pure, no I/O."""

from __future__ import annotations

import hashlib
import mimetypes
import posixpath
from typing import Any
from urllib.parse import urlsplit

import msgspec

from helpdesk.channels.adapter import (
    InboundAttachment,
    InboundMessage,
    SenderIdentity,
    StatusUpdate,
    StatusWatermark,
)
from helpdesk.channels.meta.items import (
    APP_NAMES,
    DECODE_ERRORS,
    Item,
    MetaKind,
    from_millis,
    joined,
    note,
    placeholder_name,
)
from helpdesk.channels.meta.messaging_fields import (
    AttachmentPayload,
    Messaging,
    MessagingHead,
    MessagingMessage,
    ProductList,
    Referral,
)

# Kinds that are Meta's or another app's business, not the customer's words: thread
# handovers between apps and Meta's policy notices to the page.
_NOT_THE_CUSTOMERS = frozenset(
    {
        "pass_thread_control",
        "take_thread_control",
        "request_thread_control",
        "app_roles",
        "policy_enforcement",
    }
)


_decode_messaging = msgspec.json.Decoder(Messaging).decode
_decode_messaging_head = msgspec.json.Decoder(MessagingHead).decode
_decode_keys = msgspec.json.Decoder(dict[str, Any]).decode


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
# Attachments that are a link to something on Meta (a post, a shared page), not a file.
_LINK_ATTACHMENTS = {
    "fallback": "a link",
    "share": "a post",
    "ig_post": "an Instagram post",
    "template": "a card",
    "location": "a location",
}
_LIKE_STICKERS = frozenset({369239263222822, 369239343222814, 369239383222810})


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


def _link_note(kind: str, payload: AttachmentPayload) -> str:
    what = _LINK_ATTACHMENTS.get(kind, f"an attachment of type '{kind}'")
    if payload.coordinates is not None and payload.coordinates.lat is not None:
        where = f"{payload.coordinates.lat}, {payload.coordinates.long}"
        return note(f"location {where}" + (f" {payload.title}" if payload.title else ""))
    titles = [payload.title or ""]
    titles += [
        e.title or e.retailer_id or "" for e in (payload.product or ProductList()).elements or ()
    ]
    titles += [e.title or "" for e in payload.elements or ()]
    label = "; ".join(t for t in titles if t)
    parts = [f"The customer shared {what}"]
    if label:
        parts.append(f": {label}")
    if payload.url:
        parts.append(f" {payload.url}")
    return note("".join(parts))


def messaging_attachments(
    message: MessagingMessage, app: str = "Messenger"
) -> tuple[list[InboundAttachment], list[str]]:
    """Files to fetch from Meta's CDN, and readable notes for what has no file (links,
    stickers, shared posts, story mentions). Text and file references stay apart: a file
    that cannot be fetched never takes the notes or the text with it."""
    files: list[InboundAttachment] = []
    notes: list[str] = []
    for index, attachment in enumerate(message.attachments or (), start=1):
        payload = attachment.payload or AttachmentPayload()
        kind = attachment.type
        if payload.sticker_id is not None:
            liked = payload.sticker_id in _LIKE_STICKERS
            notes.append("👍" if liked else note("The customer sent a sticker"))
            continue
        if kind in _LINK_ATTACHMENTS or (not payload.url and kind not in _DEFAULT_TYPES):
            notes.append(_link_note(kind, payload))
            continue
        if not payload.url:
            notes.append(note(f"The customer sent {kind} that {app} did not pass on"))
            continue
        if kind == "story_mention":
            notes.append(note("The customer mentioned you in their story"))
        elif kind in {"reel", "ig_reel"} and payload.title:
            notes.append(note(f"The customer shared a reel: {payload.title}"))
        filename, content_type = _name_and_type(payload.url, kind, index)
        files.append(InboundAttachment(filename, content_type, fetch_ref=payload.url))
    return files, notes


def _referral_note(referral: Referral) -> str:
    """Where the customer came from (an ad, an m.me or ig.me link, a shop product)."""
    if referral.product is not None and referral.product.id:
        return note(f"The customer asked about product {referral.product.id}")
    parts = ["The customer came"]
    if referral.ads_context_data is not None and referral.ads_context_data.ad_title:
        parts.append(f" from the ad '{referral.ads_context_data.ad_title}'")
    elif referral.ad_id:
        parts.append(f" from ad {referral.ad_id}")
    elif referral.source:
        parts.append(f" through {referral.source.lower().replace('_', ' ')}")
    if referral.ref:
        parts.append(f" (ref {referral.ref})")
    return note("".join(parts))


def messaging_item(kind: MetaKind, account: str, raw: msgspec.Raw) -> list[Item]:
    app = APP_NAMES[kind]
    try:
        event = _decode_messaging(raw)
    except DECODE_ERRORS:
        return _unreadable_event(kind, account, raw)
    customer = event.sender.id
    if not customer:
        return []  # a plugin opt-in names no person (`user_ref`): no conversation to feed
    at = from_millis(event.timestamp)
    sender = SenderIdentity(external_id=customer, display_name=placeholder_name(kind, customer))

    def message(external_id: str, text: str, **extra: Any) -> list[Item]:
        return [
            InboundMessage(
                channel=kind,
                channel_account=account,
                external_id=external_id,
                conversation_id=customer,
                sender=sender,
                text=text,
                sent_at=at,
                **extra,
            )
        ]

    if event.message is not None:
        body = event.message
        if body.is_echo:
            return []  # our own (or the page's) message coming back
        if body.is_deleted:
            # The customer unsent it: its text gives way to a note saying so.
            return message(
                body.mid,
                note(f"The customer unsent this message in {app}"),
                edited=True,
                notice=True,
            )
        files, notes = messaging_attachments(body, app)
        story = body.reply_to.story if body.reply_to else None
        if story is not None:
            notes.insert(0, note(f"Reply to your story {story.url or story.id or ''}".strip()))
        if body.referral is not None:
            notes.append(_referral_note(body.referral))
        if body.is_unsupported:
            notes.append(
                note(f"The customer sent a message {app} cannot pass on; open {app} to see it")
            )
        text = joined(body.text, *notes)
        if not text and not files:
            text = note(f"The customer sent an empty message in {app}")
        reply_to = body.reply_to.mid if body.reply_to else None
        return message(
            body.mid or f"message:{customer}:{event.timestamp}",
            text,
            attachments=tuple(files),
            reply_to_external_id=reply_to,
        )
    if event.message_edit is not None:
        edit = event.message_edit
        return message(edit.mid, edit.text, edited=True)
    if event.postback is not None:
        postback = event.postback
        text = joined(
            postback.title or postback.payload or note("The customer pressed a button"),
            _referral_note(postback.referral) if postback.referral else None,
        )
        return message(postback.mid or f"postback:{customer}:{event.timestamp}", text)
    if event.reaction is not None:
        reaction = event.reaction
        emoji = reaction.emoji or reaction.reaction
        if reaction.action == "unreact":
            text = note(f"Removed the reaction {emoji}" if emoji else "Removed a reaction")
        else:
            text = note(f"Reacted {emoji or ''} to a message".replace("  ", " "))
        return message(
            f"reaction:{customer}:{reaction.mid}:{reaction.action}:{event.timestamp}",
            text,
            reply_to_external_id=reaction.mid,
            notice=True,
        )
    if event.referral is not None:
        return message(
            f"referral:{customer}:{event.timestamp}", _referral_note(event.referral), notice=True
        )
    if event.optin is not None:
        optin = event.optin
        if optin.notification_messages_status == "STOP_NOTIFICATIONS":
            text = note("The customer stopped notifications")
        else:
            topic = optin.title or optin.payload or optin.ref
            text = note("The customer opted in" + (f": {topic}" if topic else ""))
        return message(f"optin:{customer}:{event.timestamp}", text, notice=True)
    if event.account_linking is not None:
        state = event.account_linking.status or "changed"
        return message(
            f"account_linking:{customer}:{event.timestamp}",
            note(f"The customer's account link: {state}"),
            notice=True,
        )
    items: list[Item] = []
    if event.delivery is not None:
        delivery = event.delivery
        items.extend(
            StatusUpdate(external_id=mid, status="delivered", at=at) for mid in delivery.mids or ()
        )
        if delivery.watermark:
            items.append(
                StatusWatermark(
                    conversation_id=customer,
                    status="delivered",
                    up_to=from_millis(delivery.watermark),
                )
            )
    if event.read is not None:
        read = event.read
        if read.mid:
            items.append(StatusUpdate(external_id=read.mid, status="read", at=at))
        if read.watermark:
            items.append(
                StatusWatermark(
                    conversation_id=customer, status="read", up_to=from_millis(read.watermark)
                )
            )
    if event.delivery is not None or event.read is not None:
        return items
    return _unknown_event(kind, account, raw, customer, event.timestamp)


def _unknown_event(
    kind: MetaKind, account: str, raw: msgspec.Raw, customer: str, timestamp: int
) -> list[Item]:
    """An event of a kind we have no rendering for: a note naming it, unless it is Meta's
    or another app's business (handovers, policy notices), or has no sender."""
    try:
        keys = set(_decode_keys(raw)) - {"sender", "recipient", "timestamp"}
    except DECODE_ERRORS:
        keys = set()
    if not customer or not keys or keys & _NOT_THE_CUSTOMERS:
        return []
    app = APP_NAMES[kind]
    name = sorted(keys)[0]
    return [
        InboundMessage(
            channel=kind,
            channel_account=account,
            external_id=f"{name}:{customer}:{timestamp}",
            conversation_id=customer,
            sender=SenderIdentity(customer, placeholder_name(kind, customer)),
            text=note(
                f"{app} sent an event of type '{name}' this helpdesk cannot show; "
                f"open {app} to see it"
            ),
            sent_at=from_millis(timestamp),
            notice=True,  # an event, not a message: nothing the customer wrote
        )
    ]


def _unreadable_event(kind: MetaKind, account: str, raw: msgspec.Raw) -> list[Item]:
    """An event whose fields do not have the documented types: a note, keyed by the
    event's bytes (a redelivery repeats them), so the agent knows to look in the app."""
    try:
        head = _decode_messaging_head(raw)
    except DECODE_ERRORS:
        return []  # not even a sender: nothing to attach a note to
    customer = head.sender.id
    if not customer:
        return []
    try:
        millis = int(head.timestamp)
    except (TypeError, ValueError, OverflowError):
        millis = 0
    app = APP_NAMES[kind]
    digest = hashlib.sha256(bytes(raw)).hexdigest()[:32]
    return [
        InboundMessage(
            channel=kind,
            channel_account=account,
            external_id=f"unreadable:{customer}:{digest}",
            conversation_id=customer,
            sender=SenderIdentity(customer, placeholder_name(kind, customer)),
            text=note(f"{app} sent something this helpdesk could not read; open {app} to see it"),
            sent_at=from_millis(millis),
        )
    ]
