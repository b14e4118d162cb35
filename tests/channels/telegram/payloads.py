"""Telegram updates shaped like the Bot API docs' examples ("Testing your bot with
updates" in core.telegram.org/bots/webhooks, and the Update/Message objects of
core.telegram.org/bots/api), with the ids a test needs."""

from __future__ import annotations

import json
from typing import Any

CHAT_ID = 1111111
USER = {
    "id": 1111111,
    "is_bot": False,
    "first_name": "Test",
    "last_name": "Lastname",
    "username": "Test",
    "language_code": "cs",
}
CHAT = {
    "id": CHAT_ID,
    "first_name": "Test",
    "last_name": "Lastname",
    "username": "Test",
    "type": "private",
}
DATE = 1441645532


def encode(update: dict[str, Any]) -> bytes:
    return json.dumps(update, ensure_ascii=False).encode()


def message(
    update_id: int = 10000,
    message_id: int = 1365,
    text: str | None = "/start",
    *,
    date: int = DATE,
    sender: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "message_id": message_id,
        "from": sender or USER,
        "chat": CHAT,
        "date": date,
        **extra,
    }
    if text is not None:
        body["text"] = text
    return {"update_id": update_id, "message": body}


def edited(
    update_id: int, message_id: int, text: str, *, edit_date: int = DATE + 60
) -> dict[str, Any]:
    return {
        "update_id": update_id,
        "edited_message": {
            "message_id": message_id,
            "from": USER,
            "chat": CHAT,
            "date": DATE,
            "edit_date": edit_date,
            "text": text,
        },
    }


def photo(update_id: int, message_id: int, caption: str) -> dict[str, Any]:
    """Telegram sends every size it made, smallest first."""
    sizes = [
        {
            "file_id": "AgACAgQAAx0small",
            "file_unique_id": "AQADsmall",
            "file_size": 1433,
            "width": 90,
            "height": 67,
        },
        {
            "file_id": "AgACAgQAAx0large",
            "file_unique_id": "AQADlarge",
            "file_size": 40960,
            "width": 1280,
            "height": 960,
        },
        {
            "file_id": "AgACAgQAAx0medium",
            "file_unique_id": "AQADmedium",
            "file_size": 20480,
            "width": 800,
            "height": 600,
        },
    ]
    return message(update_id, message_id, None, photo=sizes, caption=caption)


def document(update_id: int, message_id: int, size: int = 536392) -> dict[str, Any]:
    return message(
        update_id,
        message_id,
        None,
        document={
            "file_id": "AwADBAADbXXXXXXXXXXXGBdhD2l6_XX",
            "file_unique_id": "AgADbXXX",
            "file_name": "Testfile.pdf",
            "mime_type": "application/pdf",
            "file_size": size,
        },
    )


def callback_query(update_id: int) -> dict[str, Any]:
    return {
        "update_id": update_id,
        "callback_query": {
            "id": "4382bfdwdsb323b2d9",
            "from": USER,
            "data": "Data from button callback",
            "inline_message_id": "1234csdbsk4839",
            "chat_instance": "-1234",
        },
    }


def my_chat_member(update_id: int) -> dict[str, Any]:
    return {
        "update_id": update_id,
        "my_chat_member": {
            "chat": CHAT,
            "from": USER,
            "date": DATE,
            "old_chat_member": {
                "status": "member",
                "user": {"id": 7, "is_bot": True, "first_name": "Shop Help"},
            },
            "new_chat_member": {
                "status": "kicked",
                "until_date": 0,
                "user": {"id": 7, "is_bot": True, "first_name": "Shop Help"},
            },
        },
    }
