"""Webhook bodies shaped as Meta documents them (Messenger Platform webhook events,
Instagram messaging webhooks, WhatsApp Cloud API notification payloads), with ids and
times filled in by the tests. The shapes follow the examples in Meta's reference pages:
`entry[].messaging[]` for Messenger/Instagram, `entry[].changes[].value` for WhatsApp."""

from __future__ import annotations

import json
import time
from typing import Any

from helpdesk.channels.signatures import meta_signature

PAGE_ID = "106540352242922"
INSTAGRAM_ID = "17841405822304914"
PSID = "6783241948360713"
IGSID = "5924183716239512"
WABA_ID = "102290129340398"
PHONE_NUMBER_ID = "106540352242922"
CUSTOMER_WA_ID = "420601234567"


def now_ms() -> int:
    return int(time.time() * 1000)


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode()


def signed_headers(app_secret: str, body: bytes) -> dict[str, str]:
    return {
        "X-Hub-Signature-256": meta_signature(app_secret, body),
        "Content-Type": "application/json",
    }


def _messaging(kind: str, recipient: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "object": "page" if kind == "messenger" else "instagram",
        "entry": [{"id": recipient, "time": now_ms(), "messaging": events}],
    }


def messenger_text(
    mid: str, text: str, *, psid: str = PSID, at: int | None = None
) -> dict[str, Any]:
    stamp = at or now_ms()
    return _messaging(
        "messenger",
        PAGE_ID,
        [
            {
                "sender": {"id": psid},
                "recipient": {"id": PAGE_ID},
                "timestamp": stamp,
                "message": {"mid": mid, "text": text},
            }
        ],
    )


def messenger_image(mid: str, url: str) -> dict[str, Any]:
    return _messaging(
        "messenger",
        PAGE_ID,
        [
            {
                "sender": {"id": PSID},
                "recipient": {"id": PAGE_ID},
                "timestamp": now_ms(),
                "message": {
                    "mid": mid,
                    "attachments": [{"type": "image", "payload": {"url": url}}],
                },
            }
        ],
    )


def messenger_echo(mid: str, text: str) -> dict[str, Any]:
    """What Meta sends when the page itself sent a message (our replies included)."""
    return _messaging(
        "messenger",
        PAGE_ID,
        [
            {
                "sender": {"id": PAGE_ID},
                "recipient": {"id": PSID},
                "timestamp": now_ms(),
                "message": {"mid": mid, "text": text, "is_echo": True, "app_id": 1517776481860111},
            }
        ],
    )


def messenger_delivery(mids: list[str], watermark: int) -> dict[str, Any]:
    return _messaging(
        "messenger",
        PAGE_ID,
        [
            {
                "sender": {"id": PSID},
                "recipient": {"id": PAGE_ID},
                "timestamp": watermark,
                "delivery": {"mids": mids, "watermark": watermark},
            }
        ],
    )


def messenger_read(watermark: int) -> dict[str, Any]:
    return _messaging(
        "messenger",
        PAGE_ID,
        [
            {
                "sender": {"id": PSID},
                "recipient": {"id": PAGE_ID},
                "timestamp": watermark,
                "read": {"watermark": watermark},
            }
        ],
    )


def messenger_edit(mid: str, text: str) -> dict[str, Any]:
    return _messaging(
        "messenger",
        PAGE_ID,
        [
            {
                "sender": {"id": PSID},
                "recipient": {"id": PAGE_ID},
                "timestamp": now_ms(),
                "message_edit": {"mid": mid, "text": text, "num_edit": 1},
            }
        ],
    )


def instagram_text(mid: str, text: str) -> dict[str, Any]:
    return _messaging(
        "instagram",
        INSTAGRAM_ID,
        [
            {
                "sender": {"id": IGSID},
                "recipient": {"id": INSTAGRAM_ID},
                "timestamp": now_ms(),
                "message": {"mid": mid, "text": text},
            }
        ],
    )


def _whatsapp(value: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": WABA_ID,
                "changes": [
                    {
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": "15550783881",
                                "phone_number_id": PHONE_NUMBER_ID,
                            },
                            **value,
                        },
                        "field": "messages",
                    }
                ],
            }
        ],
    }


def whatsapp_message(message: dict[str, Any], *, name: str = "Jana Nováková") -> dict[str, Any]:
    body = {"from": CUSTOMER_WA_ID, "timestamp": str(int(time.time())), **message}
    return _whatsapp(
        {"contacts": [{"profile": {"name": name}, "wa_id": CUSTOMER_WA_ID}], "messages": [body]}
    )


def whatsapp_text(wamid: str, text: str) -> dict[str, Any]:
    return whatsapp_message({"id": wamid, "type": "text", "text": {"body": text}})


def whatsapp_image(wamid: str, media_id: str, caption: str) -> dict[str, Any]:
    return whatsapp_message(
        {
            "id": wamid,
            "type": "image",
            "image": {
                "caption": caption,
                "mime_type": "image/jpeg",
                "sha256": "HgsoZlVt3ttpyVH2S9yp3UjtfJuaTafMuSBlFdB+dEA=",
                "id": media_id,
            },
        }
    )


def whatsapp_status(
    wamid: str, status: str, *, errors: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": wamid,
        "status": status,
        "timestamp": str(int(time.time())),
        "recipient_id": CUSTOMER_WA_ID,
    }
    if errors is not None:
        entry["errors"] = errors
    return _whatsapp({"statuses": [entry]})


# --- every documented kind, shaped after Meta's webhook reference examples ----------------

BSUID = "CZ.1502576394655843"


def whatsapp_username_message(message: dict[str, Any]) -> dict[str, Any]:
    """A user who adopted a WhatsApp username and whose number Meta does not share: the
    contact has no `wa_id`, the message no `from`, both carry the BSUID."""
    body = {"from_user_id": BSUID, "timestamp": str(int(time.time())), **message}
    contact = {"profile": {"name": "", "username": "@jana.shop"}, "user_id": BSUID}
    return _whatsapp({"contacts": [contact], "messages": [body]})


def whatsapp_contacts(wamid: str) -> dict[str, Any]:
    return whatsapp_message(
        {
            "id": wamid,
            "type": "contacts",
            "contacts": [
                {
                    "name": {
                        "first_name": "Petr",
                        "last_name": "Svoboda",
                        "formatted_name": "Petr Svoboda",
                    },
                    "org": {"company": "Svoboda s.r.o."},
                    "phones": [
                        {"phone": "+420 777 123 456", "wa_id": "420777123456", "type": "CELL"}
                    ],
                    "emails": [{"email": "petr@svoboda.cz", "type": "WORK"}],
                }
            ],
        }
    )


def whatsapp_order(wamid: str) -> dict[str, Any]:
    return whatsapp_message(
        {
            "id": wamid,
            "type": "order",
            "order": {
                "catalog_id": "194836987003835",
                "text": "Pošlete to prosím do Brna",
                "product_items": [
                    {
                        "product_retailer_id": "di9ozbzfi4",
                        "quantity": 2,
                        "item_price": 30,
                        "currency": "CZK",
                    },
                    {
                        "product_retailer_id": "nlfz2qz8n0",
                        "quantity": 1,
                        "item_price": 12.5,
                        "currency": "CZK",
                    },
                ],
            },
        }
    )


def whatsapp_flow_reply(wamid: str, context_id: str) -> dict[str, Any]:
    response = {
        "flow_token": "AQAAAAACS5FpgQ_cAAAAAD0QI3s.",
        "delivery_date": "2026-12-10",
        "address": "Veveří 12, Brno",
        "items": ["hrnek", "talíř"],
    }
    return whatsapp_message(
        {
            "id": wamid,
            "type": "interactive",
            "context": {"from": "15550783881", "id": context_id},
            "interactive": {
                "type": "nfm_reply",
                "nfm_reply": {
                    "name": "flow",
                    "body": "Sent",
                    "response_json": json.dumps(response, ensure_ascii=False),
                },
            },
        }
    )


def whatsapp_reaction(wamid: str, to: str, emoji: str | None) -> dict[str, Any]:
    reaction: dict[str, Any] = {"message_id": to}
    if emoji is not None:
        reaction["emoji"] = emoji
    return whatsapp_message({"id": wamid, "type": "reaction", "reaction": reaction})


def whatsapp_unsupported(wamid: str, kind: str) -> dict[str, Any]:
    return whatsapp_message(
        {
            "id": wamid,
            "type": "unsupported",
            "errors": [
                {
                    "code": 131051,
                    "title": "Message type unknown",
                    "message": "Message type unknown",
                    "error_data": {"details": "Message type is currently not supported."},
                }
            ],
            "unsupported": {"type": kind},
        }
    )


def whatsapp_edit(wamid: str, original: str, text: str) -> dict[str, Any]:
    return whatsapp_message(
        {
            "id": wamid,
            "type": "edit",
            "edit": {
                "original_message_id": original,
                "message": {"type": "text", "text": {"body": text}},
            },
        }
    )


def whatsapp_revoke(wamid: str, original: str) -> dict[str, Any]:
    return whatsapp_message(
        {"id": wamid, "type": "revoke", "revoke": {"original_message_id": original}}
    )


def _messaging_event(kind: str, event: dict[str, Any], sender: str | None = None) -> dict[str, Any]:
    page = PAGE_ID if kind == "messenger" else INSTAGRAM_ID
    customer = sender or (PSID if kind == "messenger" else IGSID)
    return _messaging(
        kind,
        page,
        [
            {
                "sender": {"id": customer},
                "recipient": {"id": page},
                "timestamp": now_ms(),
                **event,
            }
        ],
    )


def messaging_event(kind: str, event: dict[str, Any]) -> dict[str, Any]:
    """One `messaging[]` event of Messenger or Instagram with the usual envelope."""
    return _messaging_event(kind, event)
