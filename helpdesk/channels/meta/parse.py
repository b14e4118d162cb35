"""Meta webhooks (Messenger, Instagram messaging, WhatsApp Cloud API) as the normalized
channel shapes: pure functions, no I/O.

Messenger and Instagram share one envelope (`entry[].messaging[]` with `sender`,
`recipient`, `timestamp` in milliseconds); WhatsApp nests `entry[].changes[].value` with
`messages`, `contacts` and `statuses` (timestamps in seconds, as strings). Only the fields
we use are declared; Meta adds fields often and unknown ones are ignored.

Nothing a person sends is dropped: what has text or files becomes a message, what cannot
be shown here (a poll, an unsupported type, a kind Meta adds tomorrow) becomes a message
with a readable note naming it, an edit or an unsend updates the message it names, and
receipts move our replies' status. What nobody wrote (a reaction, an unsend, a WhatsApp
system notice or welcome request, an opt-in, a referral, account linking, an event kind
we cannot show) is flagged `notice`: kept in the thread, it reopens nothing and moves no
SLA clock. Each event is decoded on its own, so one event of an
unexpected shape becomes a note instead of taking its whole delivery down. Only what is
not the customer's (echoes of our own messages, another page's events, handover and
policy notices) yields nothing; a body that is not a Meta delivery at all raises
`MalformedDelivery`, so the stored event fails visibly instead of passing as processed.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import posixpath
from datetime import UTC, datetime
from typing import Any, Literal, get_args
from urllib.parse import urlsplit

import msgspec

from helpdesk.channels.adapter import (
    InboundAttachment,
    InboundMessage,
    SenderIdentity,
    StatusUpdate,
    StatusWatermark,
)
from helpdesk.channels.catalogue import display_name

MetaKind = Literal["messenger", "instagram", "whatsapp"]
Item = InboundMessage | StatusUpdate | StatusWatermark

_APP_NAMES: dict[MetaKind, str] = {k: display_name(k) for k in get_args(MetaKind)}


class MalformedDelivery(ValueError):
    """A signed body that is not a Meta webhook delivery (not JSON, no `entry` list)."""


# --- Messenger and Instagram ------------------------------------------------------------


class Party(msgspec.Struct):
    id: str = ""


class Coordinates(msgspec.Struct):
    lat: float | None = None
    long: float | None = None


class ProductElement(msgspec.Struct):
    id: str | None = None
    retailer_id: str | None = None
    title: str | None = None
    subtitle: str | None = None


class ProductList(msgspec.Struct):
    elements: list[ProductElement] | None = None


class TemplateElement(msgspec.Struct):
    title: str | None = None
    subtitle: str | None = None


class AttachmentPayload(msgspec.Struct):
    url: str | None = None
    title: str | None = None
    sticker_id: int | None = None
    coordinates: Coordinates | None = None
    product: ProductList | None = None
    elements: list[TemplateElement] | None = None  # a shared generic template


class MessagingAttachment(msgspec.Struct):
    type: str = ""
    payload: AttachmentPayload | None = None


class Story(msgspec.Struct):
    url: str | None = None
    id: str | None = None


class ReplyTo(msgspec.Struct):
    mid: str | None = None
    story: Story | None = None  # Instagram: a reply to the business's story


class QuickReply(msgspec.Struct):
    payload: str = ""


class AdsContext(msgspec.Struct):
    ad_title: str | None = None


class ReferralProduct(msgspec.Struct):
    id: str | None = None


class Referral(msgspec.Struct):
    ref: str | None = None
    source: str | None = None
    type: str | None = None
    ad_id: str | None = None
    ads_context_data: AdsContext | None = None
    product: ReferralProduct | None = None


class MessagingMessage(msgspec.Struct):
    mid: str = ""
    text: str | None = None
    attachments: list[MessagingAttachment] | None = None
    reply_to: ReplyTo | None = None
    quick_reply: QuickReply | None = None
    referral: Referral | None = None
    is_echo: bool = False
    is_deleted: bool = False
    is_unsupported: bool = False


class MessageEdit(msgspec.Struct):
    mid: str
    text: str = ""
    num_edit: int | str = 0


class Postback(msgspec.Struct):
    title: str = ""
    payload: str = ""
    mid: str | None = None
    referral: Referral | None = None


class Reaction(msgspec.Struct):
    mid: str | None = None
    action: str = "react"
    emoji: str | None = None
    reaction: str | None = None


class Optin(msgspec.Struct):
    ref: str | None = None
    type: str | None = None
    title: str | None = None
    payload: str | None = None
    notification_messages_status: str | None = None


class AccountLinking(msgspec.Struct):
    status: str = ""


class Delivery(msgspec.Struct):
    mids: list[str] | None = None
    watermark: int | None = None


class Read(msgspec.Struct):
    watermark: int | None = None
    mid: str | None = None  # Instagram names the message read


class Messaging(msgspec.Struct):
    sender: Party = msgspec.field(default_factory=Party)
    recipient: Party = msgspec.field(default_factory=Party)
    timestamp: int = 0
    message: MessagingMessage | None = None
    message_edit: MessageEdit | None = None
    postback: Postback | None = None
    reaction: Reaction | None = None
    referral: Referral | None = None
    optin: Optin | None = None
    account_linking: AccountLinking | None = None
    delivery: Delivery | None = None
    read: Read | None = None


class MessagingHead(msgspec.Struct):
    """What is read of an event whose body does not fit `Messaging`."""

    sender: Party = msgspec.field(default_factory=Party)
    timestamp: Any = 0


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

# --- WhatsApp Cloud API ------------------------------------------------------------------


class Profile(msgspec.Struct):
    name: str = ""
    username: str = ""  # users who adopted a WhatsApp username


class Contact(msgspec.Struct):
    """The sender. `wa_id` (the phone number) is omitted for a user with a username whose
    number Meta does not share; `user_id` (the business-scoped user id, BSUID) is always
    given since 2026."""

    wa_id: str = ""
    user_id: str = ""
    profile: Profile | None = None


class Metadata(msgspec.Struct):
    phone_number_id: str = ""
    display_phone_number: str = ""


class Media(msgspec.Struct):
    id: str = ""
    mime_type: str | None = None
    caption: str | None = None
    filename: str | None = None
    voice: bool = False
    animated: bool = False


class Text(msgspec.Struct):
    body: str = ""


class Location(msgspec.Struct):
    latitude: float = 0.0
    longitude: float = 0.0
    name: str | None = None
    address: str | None = None
    url: str | None = None


class Button(msgspec.Struct):
    text: str = ""
    payload: str = ""


class Choice(msgspec.Struct):
    id: str = ""
    title: str = ""
    description: str | None = None


class FlowReply(msgspec.Struct):
    name: str = ""
    body: str = ""
    response_json: str | dict[str, Any] = ""


class Interactive(msgspec.Struct):
    type: str = ""
    button_reply: Choice | None = None
    list_reply: Choice | None = None
    nfm_reply: FlowReply | None = None


class ReferredProduct(msgspec.Struct):
    catalog_id: str = ""
    product_retailer_id: str = ""


class Context(msgspec.Struct):
    id: str | None = None
    forwarded: bool = False
    frequently_forwarded: bool = False
    referred_product: ReferredProduct | None = None


class ContactName(msgspec.Struct):
    formatted_name: str = ""
    first_name: str = ""
    last_name: str = ""


class ContactPhone(msgspec.Struct):
    phone: str = ""
    wa_id: str = ""
    type: str = ""


class ContactEmail(msgspec.Struct):
    email: str = ""


class ContactOrg(msgspec.Struct):
    company: str = ""


class ContactCard(msgspec.Struct):
    name: ContactName | None = None
    phones: list[ContactPhone] | None = None
    emails: list[ContactEmail] | None = None
    org: ContactOrg | None = None


class OrderItem(msgspec.Struct):
    product_retailer_id: str = ""
    quantity: int | str = 1
    item_price: int | float | str | None = None
    currency: str = ""


class Order(msgspec.Struct):
    catalog_id: str = ""
    text: str | None = None
    product_items: list[OrderItem] | None = None


class WhatsAppReaction(msgspec.Struct):
    message_id: str = ""
    emoji: str | None = None  # absent or empty: the reaction was removed


class System(msgspec.Struct):
    body: str = ""
    type: str = ""


class AdReferral(msgspec.Struct):
    source_url: str | None = None
    source_type: str | None = None
    headline: str | None = None
    body: str | None = None


class Unsupported(msgspec.Struct):
    type: str = ""


class MessageError(msgspec.Struct):
    code: int = 0
    title: str = ""
    message: str = ""


class EditedMessage(msgspec.Struct):
    type: str = ""
    text: Text | None = None
    image: Media | None = None
    video: Media | None = None
    document: Media | None = None


class Edit(msgspec.Struct):
    original_message_id: str = ""
    message: EditedMessage | None = None


class Revoke(msgspec.Struct):
    original_message_id: str = ""


class WhatsAppMessage(msgspec.Struct):
    id: str
    type: str = ""
    timestamp: str = "0"
    from_: str = msgspec.field(default="", name="from")
    from_user_id: str = ""
    text: Text | None = None
    image: Media | None = None
    document: Media | None = None
    audio: Media | None = None
    video: Media | None = None
    sticker: Media | None = None
    location: Location | None = None
    contacts: list[ContactCard] | None = None
    button: Button | None = None
    interactive: Interactive | None = None
    order: Order | None = None
    reaction: WhatsAppReaction | None = None
    system: System | None = None
    referral: AdReferral | None = None
    unsupported: Unsupported | None = None
    edit: Edit | None = None
    revoke: Revoke | None = None
    errors: list[MessageError] | None = None
    context: Context | None = None


class WhatsAppHead(msgspec.Struct):
    """What is read of a message whose body does not fit `WhatsAppMessage`."""

    id: str = ""
    type: Any = ""
    timestamp: Any = "0"
    from_: str = msgspec.field(default="", name="from")
    from_user_id: str = ""


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
    contacts: list[msgspec.Raw] | None = None
    messages: list[msgspec.Raw] | None = None
    statuses: list[msgspec.Raw] | None = None


class Change(msgspec.Struct):
    field: str = ""
    value: Value | None = None


class Entry(msgspec.Struct):
    id: str = ""
    messaging: list[msgspec.Raw] | None = None
    changes: list[Change] | None = None


class Envelope(msgspec.Struct):
    object: str = ""
    entry: list[Entry] = []


_decode = msgspec.json.Decoder(Envelope).decode
_decode_messaging = msgspec.json.Decoder(Messaging).decode
_decode_messaging_head = msgspec.json.Decoder(MessagingHead).decode
_decode_keys = msgspec.json.Decoder(dict[str, Any]).decode
_decode_contact = msgspec.json.Decoder(Contact).decode
_decode_whatsapp = msgspec.json.Decoder(WhatsAppMessage).decode
_decode_whatsapp_head = msgspec.json.Decoder(WhatsAppHead).decode
_decode_status = msgspec.json.Decoder(Status).decode
_DECODE_ERRORS = (msgspec.DecodeError, msgspec.ValidationError)

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
# Attachments that are a link to something on Meta (a post, a shared page), not a file.
_LINK_ATTACHMENTS = {
    "fallback": "a link",
    "share": "a post",
    "ig_post": "an Instagram post",
    "template": "a card",
    "location": "a location",
}
_LIKE_STICKERS = frozenset({369239263222822, 369239343222814, 369239383222810})
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


def delivery_key(body: bytes) -> str:
    """Meta gives a delivery no id; a redelivery repeats the same bytes (messages are
    deduplicated by their own id anyway)."""
    return "sha256:" + hashlib.sha256(body).hexdigest()


def _millis(value: int) -> datetime:
    try:
        return datetime.fromtimestamp(value / 1000, UTC)
    except (ValueError, OverflowError, OSError):
        return datetime.fromtimestamp(0, UTC)


def _seconds(value: str) -> datetime:
    try:
        return datetime.fromtimestamp(int(value), UTC)
    except (ValueError, OverflowError, OSError):
        return datetime.fromtimestamp(0, UTC)


def placeholder_name(kind: MetaKind, customer: str) -> str:
    """The name of a sender Meta told us no name of; the agent can rename the customer
    (Messenger and Instagram names are looked up through the Graph API by the adapter)."""
    return f"{_APP_NAMES[kind]} user …{customer[-6:]}"


def is_placeholder_name(kind: MetaKind, customer: str, name: str | None) -> bool:
    return not name or name == placeholder_name(kind, customer)


def _note(text: str) -> str:
    return f"[{text}]"


# --- Messenger and Instagram ------------------------------------------------------------


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
        return _note(f"location {where}" + (f" {payload.title}" if payload.title else ""))
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
    return _note("".join(parts))


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
            notes.append("👍" if liked else _note("The customer sent a sticker"))
            continue
        if kind in _LINK_ATTACHMENTS or (not payload.url and kind not in _DEFAULT_TYPES):
            notes.append(_link_note(kind, payload))
            continue
        if not payload.url:
            notes.append(_note(f"The customer sent {kind} that {app} did not pass on"))
            continue
        if kind == "story_mention":
            notes.append(_note("The customer mentioned you in their story"))
        elif kind in {"reel", "ig_reel"} and payload.title:
            notes.append(_note(f"The customer shared a reel: {payload.title}"))
        filename, content_type = _name_and_type(payload.url, kind, index)
        files.append(InboundAttachment(filename, content_type, fetch_ref=payload.url))
    return files, notes


def _referral_note(referral: Referral) -> str:
    """Where the customer came from (an ad, an m.me or ig.me link, a shop product)."""
    if referral.product is not None and referral.product.id:
        return _note(f"The customer asked about product {referral.product.id}")
    parts = ["The customer came"]
    if referral.ads_context_data is not None and referral.ads_context_data.ad_title:
        parts.append(f" from the ad '{referral.ads_context_data.ad_title}'")
    elif referral.ad_id:
        parts.append(f" from ad {referral.ad_id}")
    elif referral.source:
        parts.append(f" through {referral.source.lower().replace('_', ' ')}")
    if referral.ref:
        parts.append(f" (ref {referral.ref})")
    return _note("".join(parts))


def _joined(*parts: str | None) -> str:
    return "\n".join(p for p in parts if p).strip()


def _messaging_item(kind: MetaKind, account: str, raw: msgspec.Raw) -> list[Item]:
    app = _APP_NAMES[kind]
    try:
        event = _decode_messaging(raw)
    except _DECODE_ERRORS:
        return _unreadable_event(kind, account, raw)
    customer = event.sender.id
    if not customer:
        return []  # a plugin opt-in names no person (`user_ref`): no conversation to feed
    at = _millis(event.timestamp)
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
                _note(f"The customer unsent this message in {app}"),
                edited=True,
                notice=True,
            )
        files, notes = messaging_attachments(body, app)
        story = body.reply_to.story if body.reply_to else None
        if story is not None:
            notes.insert(0, _note(f"Reply to your story {story.url or story.id or ''}".strip()))
        if body.referral is not None:
            notes.append(_referral_note(body.referral))
        if body.is_unsupported:
            notes.append(
                _note(f"The customer sent a message {app} cannot pass on; open {app} to see it")
            )
        text = _joined(body.text, *notes)
        if not text and not files:
            text = _note(f"The customer sent an empty message in {app}")
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
        text = _joined(
            postback.title or postback.payload or _note("The customer pressed a button"),
            _referral_note(postback.referral) if postback.referral else None,
        )
        return message(postback.mid or f"postback:{customer}:{event.timestamp}", text)
    if event.reaction is not None:
        reaction = event.reaction
        emoji = reaction.emoji or reaction.reaction
        if reaction.action == "unreact":
            text = _note(f"Removed the reaction {emoji}" if emoji else "Removed a reaction")
        else:
            text = _note(f"Reacted {emoji or ''} to a message".replace("  ", " "))
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
            text = _note("The customer stopped notifications")
        else:
            topic = optin.title or optin.payload or optin.ref
            text = _note("The customer opted in" + (f": {topic}" if topic else ""))
        return message(f"optin:{customer}:{event.timestamp}", text, notice=True)
    if event.account_linking is not None:
        state = event.account_linking.status or "changed"
        return message(
            f"account_linking:{customer}:{event.timestamp}",
            _note(f"The customer's account link: {state}"),
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
    except _DECODE_ERRORS:
        keys = set()
    if not customer or not keys or keys & _NOT_THE_CUSTOMERS:
        return []
    app = _APP_NAMES[kind]
    name = sorted(keys)[0]
    return [
        InboundMessage(
            channel=kind,
            channel_account=account,
            external_id=f"{name}:{customer}:{timestamp}",
            conversation_id=customer,
            sender=SenderIdentity(customer, placeholder_name(kind, customer)),
            text=_note(
                f"{app} sent an event of type '{name}' this helpdesk cannot show; "
                f"open {app} to see it"
            ),
            sent_at=_millis(timestamp),
            notice=True,  # an event, not a message: nothing the customer wrote
        )
    ]


def _unreadable_event(kind: MetaKind, account: str, raw: msgspec.Raw) -> list[Item]:
    """An event whose fields do not have the documented types: a note, keyed by the
    event's bytes (a redelivery repeats them), so the agent knows to look in the app."""
    try:
        head = _decode_messaging_head(raw)
    except _DECODE_ERRORS:
        return []  # not even a sender: nothing to attach a note to
    customer = head.sender.id
    if not customer:
        return []
    try:
        millis = int(head.timestamp)
    except (TypeError, ValueError, OverflowError):
        millis = 0
    app = _APP_NAMES[kind]
    digest = hashlib.sha256(bytes(raw)).hexdigest()[:32]
    return [
        InboundMessage(
            channel=kind,
            channel_account=account,
            external_id=f"unreadable:{customer}:{digest}",
            conversation_id=customer,
            sender=SenderIdentity(customer, placeholder_name(kind, customer)),
            text=_note(f"{app} sent something this helpdesk could not read; open {app} to see it"),
            sent_at=_millis(millis),
        )
    ]


# --- WhatsApp -----------------------------------------------------------------------------


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
    return _note(f"The customer sent {what}; open WhatsApp to see it")


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
        text = "\n".join(_note(f"Shared contact: {card}") for card in cards)
    elif message.button is not None:
        text = message.button.text or message.button.payload
    elif message.interactive is not None:
        text = _interactive_text(message.interactive)
    elif message.order is not None:
        text = _joined(message.order.text, _order(message.order))
    elif message.reaction is not None:
        emoji = message.reaction.emoji
        text = _note(f"Reacted {emoji} to a message" if emoji else "Removed a reaction")
    elif message.system is not None:
        text = _note(f"WhatsApp: {message.system.body or message.system.type}")
    elif kind == "request_welcome":
        text = _note("The customer opened a chat with you and has not written yet")
    elif kind in _WHATSAPP_MEDIA:
        text = _whatsapp_caption(message)
        media: Media | None = getattr(message, kind)
        if media is not None and media.voice:
            text = _joined(_note("Voice message"), text)
        elif kind == "sticker":
            text = _joined(_note("Sticker"), text)
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
            _note(f"About product {product.product_retailer_id} of catalog {product.catalog_id}")
        )
    if context is not None and (context.forwarded or context.frequently_forwarded):
        notes.append(_note("Forwarded" + (" many times" if context.frequently_forwarded else "")))
    if message.referral is not None:
        ad = message.referral
        label = ad.headline or ad.body or ad.source_type or "an ad"
        notes.append(
            _note(
                f"The customer came from {label}" + (f" {ad.source_url}" if ad.source_url else "")
            )
        )
    return _joined(text, *notes)


def _interactive_text(interactive: Interactive) -> str:
    choice = interactive.button_reply or interactive.list_reply
    if choice is not None:
        return _joined(choice.title or choice.id, choice.description)
    if interactive.nfm_reply is not None:
        flow = interactive.nfm_reply
        heading = _note(
            f"Form reply{': ' + flow.name if flow.name and flow.name != 'flow' else ''}"
        )
        return _joined(
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
        except _DECODE_ERRORS:
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
    except _DECODE_ERRORS:
        return _unreadable_whatsapp(account, raw, senders)
    sender = _sender_of(message, senders)
    if sender is None or not message.id:
        return None
    at = _seconds(message.timestamp)
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
            text=_note("The customer deleted this message in WhatsApp"),
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
    except _DECODE_ERRORS:
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
        sent_at=_seconds(str(head.timestamp)),
    )


def _whatsapp_items(account: str, phone_number_id: str | None, value: Value) -> list[Item]:
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
        except _DECODE_ERRORS:
            continue
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
    """Everything in one delivery. `recipient_id` (the page, Instagram account or phone
    number id the account is for) filters out what belongs to another one."""
    try:
        envelope = _decode(body)
    except _DECODE_ERRORS as error:
        raise MalformedDelivery(f"not a Meta webhook delivery: {error}") from None
    if envelope.object != OBJECTS[kind]:
        return []  # another product's subscription pointed at this account: not ours
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
