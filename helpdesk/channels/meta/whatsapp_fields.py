"""The WhatsApp Cloud API webhook fields we read, as msgspec Structs."""

from __future__ import annotations

from typing import Any

import msgspec


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
