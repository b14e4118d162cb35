"""Events API bodies shaped like Slack's documented examples (docs.slack.dev: "Events API"
callback envelope, the `message` event and its subtypes `file_share`, `message_changed`
and `bot_message`, `url_verification`, `app_mention`, `reaction_added`), with the ids a
test needs."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

TEAM_ID = "T123ABC456"
SUPPORT_CHANNEL = "C123ABC456"
OTHER_CHANNEL = "C0OTHER01"
DM_CHANNEL = "D024BE91L"
CUSTOMER = "U061F7AUR"
BOT_USER_ID = "U0HELPBOT"
PROFILE = {
    "avatar_hash": "ge3b51ca72de",
    "first_name": "Jana",
    "real_name": "Jana Nováková",
    "display_name": "jana",
    "team": TEAM_ID,
    "name": "jana.novakova",
    "is_restricted": False,
    "is_ultra_restricted": False,
}


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode()


def signed_headers(secret: str, body: bytes, ts: int | None = None) -> dict[str, str]:
    """Headers as Slack sends them: computed here independently of our own code."""
    stamp = str(int(time.time()) if ts is None else ts)
    base = b"v0:" + stamp.encode() + b":" + body
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {
        "content-type": "application/json",
        "x-slack-request-timestamp": stamp,
        "x-slack-signature": f"v0={digest}",
    }


def envelope(event: dict[str, Any], event_id: str = "Ev123ABC456") -> dict[str, Any]:
    """The `event_callback` wrapper around every event."""
    return {
        "token": "XXYYZZ",
        "team_id": TEAM_ID,
        "api_app_id": "A123ABC456",
        "event": event,
        "type": "event_callback",
        "authed_users": [BOT_USER_ID],
        "event_id": event_id,
        "event_time": 1355517523,
    }


def message(
    event_id: str = "Ev123ABC456",
    ts: str = "1355517523.000005",
    text: str = "Live long and prospect.",
    *,
    channel: str = SUPPORT_CHANNEL,
    channel_type: str = "channel",
    user: str = CUSTOMER,
    thread_ts: str | None = None,
    profile: bool = True,
    **extra: Any,
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "message",
        "channel": channel,
        "user": user,
        "text": text,
        "ts": ts,
        "event_ts": ts,
        "channel_type": channel_type,
    }
    if profile:
        event["user_profile"] = PROFILE
    if thread_ts is not None:
        event["thread_ts"] = thread_ts
        event["parent_user_id"] = CUSTOMER
    event.update(extra)
    return envelope(event, event_id)


def file_share(
    event_id: str, ts: str, text: str, size: int, *, channel: str = SUPPORT_CHANNEL
) -> dict[str, Any]:
    file = {
        "id": "F0S43PZDF",
        "created": 1531763342,
        "timestamp": 1531763342,
        "name": "tedair.gif",
        "title": "tedair.gif",
        "mimetype": "image/gif",
        "filetype": "gif",
        "pretty_type": "GIF",
        "user": CUSTOMER,
        "mode": "hosted",
        "editable": False,
        "is_external": False,
        "external_type": "",
        "size": size,
        "url_private": "https://files.slack.com/files-pri/T123ABC456-F0S43PZDF/tedair.gif",
        "url_private_download": (
            "https://files.slack.com/files-pri/T123ABC456-F0S43PZDF/download/tedair.gif"
        ),
    }
    return message(event_id, ts, text, channel=channel, subtype="file_share", files=[file])


def edited(
    event_id: str,
    original_ts: str,
    text: str,
    edit_ts: str,
    *,
    previous: str = "Live long and prospect.",
    channel: str = SUPPORT_CHANNEL,
    thread_ts: str | None = None,
) -> dict[str, Any]:
    inner: dict[str, Any] = {
        "type": "message",
        "user": CUSTOMER,
        "text": text,
        "ts": original_ts,
        "edited": {"user": CUSTOMER, "ts": edit_ts},
    }
    if thread_ts is not None:
        inner["thread_ts"] = thread_ts
    event = {
        "type": "message",
        "subtype": "message_changed",
        "hidden": True,
        "channel": channel,
        "ts": edit_ts,
        "event_ts": edit_ts,
        "channel_type": "channel",
        "message": inner,
        "previous_message": {
            "type": "message",
            "user": CUSTOMER,
            "text": previous,
            "ts": original_ts,
        },
    }
    return envelope(event, event_id)


def bot_message(event_id: str, ts: str) -> dict[str, Any]:
    event = {
        "type": "message",
        "subtype": "bot_message",
        "ts": ts,
        "text": "Pushing is the answer",
        "bot_id": "BB12033",
        "username": "github",
        "icons": {},
        "channel": SUPPORT_CHANNEL,
        "channel_type": "channel",
    }
    return envelope(event, event_id)


def app_mention(event_id: str, ts: str) -> dict[str, Any]:
    event = {
        "type": "app_mention",
        "user": CUSTOMER,
        "text": f"<@{BOT_USER_ID}> is it everything a river should be?",
        "ts": ts,
        "channel": SUPPORT_CHANNEL,
        "event_ts": ts,
    }
    return envelope(event, event_id)


def reaction_added(event_id: str) -> dict[str, Any]:
    event = {
        "type": "reaction_added",
        "user": CUSTOMER,
        "reaction": "thumbsup",
        "item_user": BOT_USER_ID,
        "item": {"type": "message", "channel": SUPPORT_CHANNEL, "ts": "1360782400.498405"},
        "event_ts": "1360782804.083113",
    }
    return envelope(event, event_id)


def user_change(event_id: str) -> dict[str, Any]:
    """`user` is an object here, unlike in message events."""
    event = {"type": "user_change", "user": {"id": CUSTOMER, "name": "jana"}, "event_ts": "1.2"}
    return envelope(event, event_id)


def url_verification(challenge: str) -> dict[str, Any]:
    return {"token": "Jhj5dZrVaK7ZwHHjRyZWjbDl", "challenge": challenge, "type": "url_verification"}


FORWARDED_TS = "1700000000.000100"


def forwarded(
    event_id: str, ts: str, text: str = "<@U0HELPBOT> what about this?"
) -> dict[str, Any]:
    """A message forwarded from another channel with a comment (Slack's "share message"):
    the original comes as an `attachments` entry with `is_share` and `message_blocks`."""
    shared = {
        "ts": FORWARDED_TS,
        "channel_id": OTHER_CHANNEL,
        "channel_team": TEAM_ID,
        "is_msg_unfurl": True,
        "is_share": True,
        "message_blocks": [
            {
                "team": TEAM_ID,
                "channel": OTHER_CHANNEL,
                "ts": FORWARDED_TS,
                "message": {
                    "blocks": [
                        {
                            "type": "rich_text",
                            "block_id": "Zq1",
                            "elements": [
                                {
                                    "type": "rich_text_section",
                                    "elements": [
                                        {"type": "text", "text": "Order 1234 arrived broken, "},
                                        {"type": "user", "user_id": "U0PETR001"},
                                        {"type": "text", "text": " knows more"},
                                    ],
                                }
                            ],
                        }
                    ]
                },
            }
        ],
        "id": 1,
        "original_url": "https://example.slack.com/archives/C0OTHER01/p1700000000000100",
        "fallback": "[November 14th, 2023 10:13 PM] petr: Order 1234 arrived broken",
        "text": "Order 1234 arrived broken, <@U0PETR001> knows more &amp; &lt;fast&gt;",
        "author_id": "U0PETR001",
        "author_subname": "petr",
        "author_name": "Petr Svoboda",
        "from_url": "https://example.slack.com/archives/C0OTHER01/p1700000000000100",
        "mrkdwn_in": ["text"],
        "footer": "Posted in #general",
    }
    return message(event_id, ts, text, attachments=[shared])


def connect_file_share(event_id: str, ts: str, text: str) -> dict[str, Any]:
    """A file shared in a Slack Connect channel: no name, no URLs, only its id and
    `file_access: check_file_info` (files.info gives the rest)."""
    file = {
        "id": "F0CONNECT1",
        "mode": "file_access",
        "file_access": "check_file_info",
        "created": 0,
        "timestamp": 0,
        "user": "",
    }
    return message(event_id, ts, text, subtype="file_share", files=[file], profile=False)


CONNECT_FILE_OBJECT = {
    "id": "F0CONNECT1",
    "created": 1700000000,
    "name": "faktura_2023.pdf",
    "title": "faktura_2023.pdf",
    "mimetype": "application/pdf",
    "filetype": "pdf",
    "user": CUSTOMER,
    "mode": "hosted",
    "size": 0,  # set by the test
    "url_private": "https://files.slack.com/files-pri/T0EXT-F0CONNECT1/faktura_2023.pdf",
    "url_private_download": (
        "https://files.slack.com/files-pri/T0EXT-F0CONNECT1/download/faktura_2023.pdf"
    ),
}

USER_OBJECT = {
    "id": CUSTOMER,
    "team_id": "T0EXTERNAL",
    "name": "jana.novakova",
    "real_name": "Jana Nováková",
    "profile": {"display_name": "", "real_name": "Jana Nováková"},
    "is_bot": False,
}
