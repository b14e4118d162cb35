"""Meta webhook deliveries as normalized items: the envelope, dispatched per product; pure.

Covers Messenger, Instagram messaging and the WhatsApp Cloud API (`messaging`, `whatsapp`).

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

import msgspec

from helpdesk.channels.meta.items import DECODE_ERRORS, OBJECTS, Item, MalformedDelivery, MetaKind
from helpdesk.channels.meta.messaging import messaging_item
from helpdesk.channels.meta.whatsapp import whatsapp_items
from helpdesk.channels.meta.whatsapp_fields import Value


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


def delivery_key(body: bytes) -> str:
    """Meta gives a delivery no id; a redelivery repeats the same bytes (messages are
    deduplicated by their own id anyway)."""
    return "sha256:" + hashlib.sha256(body).hexdigest()


def normalize_body(
    kind: MetaKind, account: str, body: bytes, *, recipient_id: str | None = None
) -> list[Item]:
    """Everything in one delivery. `recipient_id` (the page, Instagram account or phone
    number id the account is for) filters out what belongs to another one."""
    try:
        envelope = _decode(body)
    except DECODE_ERRORS as error:
        raise MalformedDelivery(f"not a Meta webhook delivery: {error}") from None
    if envelope.object != OBJECTS[kind]:
        return []  # another product's subscription pointed at this account: not ours
    items: list[Item] = []
    for entry in envelope.entry:
        if kind == "whatsapp":
            for change in entry.changes or ():
                if change.field == "messages" and change.value is not None:
                    items.extend(whatsapp_items(account, recipient_id, change.value))
            continue
        if recipient_id and entry.id and entry.id != recipient_id:
            continue
        for event in entry.messaging or ():
            items.extend(messaging_item(kind, account, event))
    return items
