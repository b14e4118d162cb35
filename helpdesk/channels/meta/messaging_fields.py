"""The Messenger and Instagram webhook fields we read, as msgspec Structs."""

from __future__ import annotations

from typing import Any

import msgspec


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
