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


OTHER_USER = {"id": 2222222, "is_bot": False, "first_name": "Petr", "last_name": "Svoboda"}
SIZES = [
    {"file_id": "AgACsmall", "file_unique_id": "AQsmall", "width": 90, "height": 90},
    {"file_id": "AgAClarge", "file_unique_id": "AQlarge", "width": 800, "height": 800},
]


def file_object(file_id: str, **fields: Any) -> dict[str, Any]:
    return {"file_id": file_id, "file_unique_id": f"u-{file_id}", **fields}


# One message of each kind the Bot API's Message object documents, as content fields,
# with the text a customer's message of that kind is stored with.
KINDS: dict[str, tuple[dict[str, Any], str]] = {
    "video_note": (
        {"video_note": file_object("DQvn", length=240, duration=5, file_size=1024)},
        "",
    ),
    "animation": (
        {
            "animation": file_object(
                "CgAnim", width=320, height=240, duration=3, file_name="cat.mp4",
                mime_type="video/mp4",
            )
        },
        "",
    ),
    "voice": ({"voice": file_object("AwVoice", duration=4, mime_type="audio/ogg")}, ""),
    "audio": ({"audio": file_object("CQAudio", duration=200, file_name="song.mp3")}, ""),
    "video": ({"video": file_object("BAVideo", width=640, height=480, duration=9)}, ""),
    "sticker": (
        {
            "sticker": file_object(
                "CAStick", type="regular", width=512, height=512, is_animated=False,
                is_video=False, emoji="😀",
            )
        },
        "Customer sent a sticker 😀",
    ),
    "paid_media": (
        {"paid_media": {"star_count": 50, "paid_media": [{"type": "photo", "photo": SIZES}]}},
        "Customer sent paid media (50 Telegram Stars)",
    ),
    "contact": (
        {
            "contact": {
                "phone_number": "+420777123456",
                "first_name": "Petr",
                "last_name": "Svoboda",
                "user_id": 2222222,
            }
        },
        "Customer shared a contact: Petr Svoboda, +420777123456",
    ),
    "location": (
        {"location": {"latitude": 50.0875, "longitude": 14.4213}},
        "Customer shared a location: 50.0875, 14.4213 "
        "(https://www.openstreetmap.org/?mlat=50.0875&mlon=14.4213)",
    ),
    "live location": (
        {"location": {"latitude": 50.0875, "longitude": 14.4213, "live_period": 900}},
        "Customer shared a live location: 50.0875, 14.4213 "
        "(https://www.openstreetmap.org/?mlat=50.0875&mlon=14.4213)",
    ),
    "venue": (
        {
            "location": {"latitude": 50.08, "longitude": 14.42},
            "venue": {
                "location": {"latitude": 50.08, "longitude": 14.42},
                "title": "Prodejna Praha",
                "address": "Václavské náměstí 1",
            },
        },
        "Customer shared a place: Prodejna Praha, Václavské náměstí 1 "
        "(50.08, 14.42 (https://www.openstreetmap.org/?mlat=50.08&mlon=14.42))",
    ),
    "poll": (
        {
            "poll": {
                "id": "5",
                "question": "Která barva?",
                "options": [
                    {"persistent_id": "o1", "text": "červená", "voter_count": 0},
                    {"persistent_id": "o2", "text": "modrá", "voter_count": 0},
                ],
                "total_voter_count": 0,
                "is_closed": False,
                "is_anonymous": True,
                "type": "regular",
                "allows_multiple_answers": False,
                "allows_revoting": True,
                "members_only": False,
            }
        },
        "Customer sent a poll: Která barva?\n• červená\n• modrá",
    ),
    "dice": ({"dice": {"emoji": "🎲", "value": 4}}, "Customer sent 🎲 (value 4)"),
    "game": (
        {"game": {"title": "Tetris", "description": "Blocks", "photo": SIZES}},
        "Customer shared the game Tetris",
    ),
    "story": (
        {"story": {"chat": {"id": -1001, "type": "channel", "title": "Shop news"}, "id": 7}},
        "Customer shared a story of Shop news; open Telegram to see it",
    ),
    "giveaway": (
        {
            "giveaway": {
                "chats": [{"id": -1001, "type": "channel", "title": "Shop news"}],
                "winners_selection_date": 1700000000,
                "winner_count": 3,
            }
        },
        "Customer shared a giveaway: 3 winners, chosen at 2023-11-14 22:13 UTC",
    ),
    "giveaway_winners": (
        {
            "giveaway_winners": {
                "chat": {"id": -1001, "type": "channel", "title": "Shop news"},
                "giveaway_message_id": 5,
                "winners_selection_date": 1700000000,
                "winner_count": 1,
                "winners": [OTHER_USER],
            }
        },
        "Customer shared giveaway results: 1 winners (Petr Svoboda)",
    ),
    "invoice": (
        {
            "invoice": {
                "title": "Objednávka 1234",
                "description": "Boty",
                "start_parameter": "o1234",
                "currency": "EUR",
                "total_amount": 1250,
            }
        },
        "Customer sent an invoice: Objednávka 1234 (Boty), 12.50 EUR",
    ),
    "successful_payment": (
        {
            "successful_payment": {
                "currency": "CZK",
                "total_amount": 49900,
                "invoice_payload": "order-1234",
                "telegram_payment_charge_id": "tg_ch_1",
                "provider_payment_charge_id": "pr_ch_1",
            }
        },
        "Customer paid 499.00 CZK (Telegram charge tg_ch_1)",
    ),
    "checklist": (
        {
            "checklist": {
                "title": "Reklamace",
                "tasks": [
                    {"id": 1, "text": "Fotka"},
                    {"id": 2, "text": "Účtenka", "completed_by_user": OTHER_USER,
                     "completion_date": 1700000000},
                ],
            }
        },
        "Customer sent a checklist: Reklamace\n☐ Fotka\n☑ Účtenka",
    ),
    "forwarded": (
        {
            "text": "Tohle mi přišlo",
            "forward_origin": {"type": "user", "sender_user": OTHER_USER, "date": 1700000000},
        },
        "Forwarded from Petr Svoboda:\nTohle mi přišlo",
    ),
    "forwarded from a channel": (
        {
            "text": "Sleva 20 %",
            "forward_origin": {
                "type": "channel",
                "chat": {"id": -1001, "type": "channel", "title": "Shop news"},
                "message_id": 9,
                "date": 1700000000,
            },
        },
        "Forwarded from Shop news:\nSleva 20 %",
    ),
    "web_app_data": (
        {"web_app_data": {"data": '{"size": 42}', "button_text": "Vybrat velikost"}},
        'Customer sent data from the web app (Vybrat velikost): {"size": 42}',
    ),
    "users_shared": (
        {"users_shared": {"request_id": 1, "users": [{"user_id": 5, "first_name": "Eva"}]}},
        "Customer shared users: Eva",
    ),
    "chat_shared": (
        {"chat_shared": {"request_id": 2, "chat_id": -100555, "title": "Skupina"}},
        "Customer shared a chat: Skupina",
    ),
    "new_chat_members": ({"new_chat_members": [OTHER_USER]}, "Petr Svoboda joined the chat"),
    "left_chat_member": ({"left_chat_member": OTHER_USER}, "Petr Svoboda left the chat"),
    "pinned_message": (
        {
            "pinned_message": {
                "message_id": 1,
                "chat": CHAT,
                "date": DATE,
                "text": "Číslo objednávky 1234",
            }
        },
        "Customer pinned a message: Číslo objednávky 1234",
    ),
    "write_access_allowed": (
        {"write_access_allowed": {"from_request": True}},
        "Customer allowed the bot to write to them",
    ),
}  # fmt: skip
