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
