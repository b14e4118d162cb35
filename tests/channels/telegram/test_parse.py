"""The pure half of the Telegram adapter: webhook verification and update normalizing."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime
from typing import Any

import pytest
import telegram
from hypothesis import example, given, settings
from hypothesis import strategies as st

from helpdesk.channels.accounts import ChannelAccount
from helpdesk.channels.adapter import ButtonPress, InboundMessage, WebhookRequest
from helpdesk.channels.telegram import kinds
from helpdesk.channels.telegram.adapter import TelegramAdapter
from helpdesk.channels.telegram.parse import (
    BOT_API_DOWNLOAD_LIMIT,
    chat_id_param,
    normalize_update,
    reply_to_message_id,
    update_id,
    webhook_url,
)
from helpdesk.config import load_settings
from tests.channels.telegram import payloads

SECRET = "s3cret_Token-1"


def account(**secrets: str) -> ChannelAccount:
    return ChannelAccount(
        id=1, kind="telegram", name="shopbot", active=True, settings={}, secrets=secrets
    )


def request(body: bytes, secret: str | None = SECRET, method: str = "POST") -> WebhookRequest:
    headers = {"content-type": "application/json"}
    if secret is not None:
        headers["x-telegram-bot-api-secret-token"] = secret
    return WebhookRequest(method=method, headers=headers, query={}, body=body)


def only(body: bytes) -> InboundMessage:
    found = normalize_update("shopbot", body)
    assert len(found) == 1
    return found[0]


def test_verify_accepts_only_the_accounts_secret_and_dedupes_on_update_id() -> None:
    adapter = TelegramAdapter(load_settings({}))
    body = payloads.encode(payloads.message(update_id=10000))
    ok = adapter.verify(account(webhook_secret=SECRET), request(body), 0)
    assert ok.accept and ok.dedupe_key == "10000"
    for presented in (None, "", "wrong", SECRET + "x", SECRET.upper()):
        verdict = adapter.verify(account(webhook_secret=SECRET), request(body, presented), 0)
        assert not verdict.accept and verdict.status == 403
    # An account without a secret is never open, whatever is presented.
    for presented in (None, "", "anything"):
        verdict = adapter.verify(account(bot_token="1:x"), request(body, presented), 0)
        assert not verdict.accept and verdict.status == 403
    assert (
        adapter.verify(account(webhook_secret=SECRET), request(b"", method="GET"), 0).status == 405
    )


def test_authentic_but_unparseable_bodies_are_accepted_without_a_delivery_id() -> None:
    adapter = TelegramAdapter(load_settings({}))
    for body in (b"not json", b"[]", b'{"update_id": "1"}', b'{"update_id": true}', b""):
        verdict = adapter.verify(account(webhook_secret=SECRET), request(body), 0)
        assert verdict.accept and verdict.dedupe_key is None
        assert normalize_update("shopbot", body) == []
    assert update_id(b'{"update_id": 5, "message": {"oops": 1}}') == "5"
    assert normalize_update("shopbot", b'{"update_id": 5, "message": {"oops": 1}}') == []


def test_text_message_becomes_a_message_of_the_user_in_the_chat() -> None:
    found = only(payloads.encode(payloads.message(10001, 1366, "Dobrý den, kde je zásilka?")))
    assert found.channel == "telegram" and found.channel_account == "shopbot"
    assert found.external_id == f"{payloads.CHAT_ID}:1366"
    assert found.conversation_id == str(payloads.CHAT_ID)
    assert found.sender.external_id == str(payloads.USER["id"])
    assert found.sender.display_name == "Test Lastname"
    assert found.text == "Dobrý den, kde je zásilka?"
    assert found.sent_at == datetime.fromtimestamp(payloads.DATE, UTC)
    assert not found.edited and found.subject is None and found.attachments == ()


def test_start_is_kept_and_names_the_new_conversation() -> None:
    found = only(payloads.encode(payloads.message(text="/start")))
    assert found.text == "/start"
    assert found.subject == "New Telegram conversation with Test Lastname"


def test_edited_message_carries_the_edit_date_and_the_same_id() -> None:
    found = only(payloads.encode(payloads.edited(10002, 1365, "Opraveno", edit_date=1441646000)))
    assert found.edited and found.text == "Opraveno"
    assert found.external_id == f"{payloads.CHAT_ID}:1365"
    assert found.sent_at == datetime.fromtimestamp(1441646000, UTC)


def test_photo_takes_the_largest_size_and_the_caption_as_text() -> None:
    found = only(payloads.encode(payloads.photo(10003, 1367, "Rozbité balení")))
    assert found.text == "Rozbité balení"
    (photo,) = found.attachments
    assert photo.fetch_ref == "AgACAgQAAx0large" and photo.size == 40960
    assert photo.filename == "photo_AQADlarge.jpg" and photo.content_type == "image/jpeg"


def test_document_keeps_its_name_and_type_and_too_big_files_say_why() -> None:
    found = only(payloads.encode(payloads.document(10004, 1368)))
    (doc,) = found.attachments
    assert (doc.filename, doc.content_type, doc.size) == (
        "Testfile.pdf",
        "application/pdf",
        536392,
    )
    assert doc.fetch_ref == "AwADBAADbXXXXXXXXXXXGBdhD2l6_XX"
    huge = only(payloads.encode(payloads.document(10005, 1369, size=BOT_API_DOWNLOAD_LIMIT + 1)))
    (too_big,) = huge.attachments
    assert too_big.filename == "Testfile.pdf"
    assert too_big.unavailable == "Telegram lets bots download files of at most 20 MB"


def test_reply_to_a_message_references_it_in_the_same_chat() -> None:
    body = payloads.message(10006, 1370, "Ještě tohle", reply_to_message={"message_id": 1365})
    found = only(payloads.encode(body))
    assert found.reply_to_external_id == f"{payloads.CHAT_ID}:1365"


def test_bots_and_other_update_types_give_nothing() -> None:
    bot = {"id": 42, "is_bot": True, "first_name": "Other bot"}
    ignored = [
        payloads.message(1, 1, "hi", sender=bot),
        payloads.my_chat_member(4),
        {"update_id": 5, "some_future_update": {"x": 1}},
        {"update_id": 6, "channel_post": {"message_id": 1, "chat": {"id": -100}, "date": 1}},
    ]
    for update in ignored:
        assert normalize_update("shopbot", payloads.encode(update)) == []


def test_a_button_press_is_a_button_press_of_its_user() -> None:
    (press,) = normalize_update("shopbot", payloads.encode(payloads.callback_query(3)))
    assert isinstance(press, ButtonPress)
    assert press.value == "Data from button callback"
    assert press.sender_id == str(payloads.USER["id"])
    assert press.ack_ref == "4382bfdwdsb323b2d9"


def test_reply_target_and_chat_id_helpers() -> None:
    assert reply_to_message_id("1111111", "1111111:1365") == 1365
    assert reply_to_message_id("1111111", "2222222:1365") is None  # another chat
    assert reply_to_message_id("-100123", "-100123:7") == 7
    assert reply_to_message_id("1111111", None) is None
    assert chat_id_param("-100123") == -100123 and chat_id_param("@shop") == "@shop"
    assert (
        webhook_url("https://help.example.com/", "shopbot")
        == "https://help.example.com/channels/telegram/shopbot/webhook"
    )


@pytest.mark.parametrize("kind", sorted(payloads.KINDS))
def test_every_kind_of_message_becomes_text_files_or_a_readable_note(kind: str) -> None:
    fields, expected = payloads.KINDS[kind]
    text = fields.get("text")
    others = {k: v for k, v in fields.items() if k != "text"}
    update = payloads.message(10100, 1500, text, **others)
    # The payload is what the Bot API sends: python-telegram-bot knows every field of it.
    parsed = telegram.Update.de_json(update, None)
    assert parsed is not None and parsed.message is not None
    assert dict(parsed.message.api_kwargs) == {}
    found = only(payloads.encode(update))
    assert found.text == expected
    assert found.text or found.attachments  # never an empty message


@pytest.mark.parametrize(
    ("kind", "filename", "content_type", "file_id"),
    [
        ("video_note", "video_note.mp4", "video/mp4", "DQvn"),
        ("animation", "cat.mp4", "video/mp4", "CgAnim"),
        ("voice", "voice.ogg", "audio/ogg", "AwVoice"),
        ("audio", "song.mp3", "audio/mpeg", "CQAudio"),
        ("video", "video.mp4", "video/mp4", "BAVideo"),
        ("sticker", "sticker.webp", "image/webp", "CAStick"),
        ("paid_media", "photo_AQlarge.jpg", "image/jpeg", "AgAClarge"),
    ],
)
def test_media_kinds_are_files_fetched_with_getfile(
    kind: str, filename: str, content_type: str, file_id: str
) -> None:
    fields, _ = payloads.KINDS[kind]
    found = only(payloads.encode(payloads.message(10101, 1501, None, **fields)))
    (attachment,) = found.attachments
    assert (attachment.filename, attachment.content_type, attachment.fetch_ref) == (
        filename,
        content_type,
        file_id,
    )


def test_a_field_of_a_future_bot_api_becomes_a_note_naming_it() -> None:
    update = payloads.message(10102, 1502, "Koukej", hologram={"id": "h1", "depth": 3})
    found = only(payloads.encode(update))
    assert found.text == (
        "Koukej\nCustomer sent a Telegram message of a kind this helpdesk cannot show yet "
        "(hologram); open Telegram to see it"
    )


def test_a_known_kind_with_an_unexpected_shape_still_leaves_a_note() -> None:
    found = only(payloads.encode(payloads.message(10103, 1503, None, poll="not an object")))
    assert found.text == "Customer sent a Telegram poll"
    found = only(payloads.encode(payloads.message(10104, 1504, None, dice=[1, 2])))
    assert found.text == "Customer sent a Telegram dice"


def test_every_field_python_telegram_bot_knows_is_classified() -> None:
    """A Bot API field the parser has no rule for would only show as "a kind this
    helpdesk cannot show yet": each one PTB knows has its rule."""
    known = kinds.ABOUT_FIELDS | kinds.TEXT_FIELDS | kinds.FILE_FIELDS | set(kinds.NOTES)
    fields = {
        "from" if name == "from_user" else name
        for name in inspect.signature(telegram.Message.__init__).parameters
        if name not in ("self", "api_kwargs")
    }
    assert fields - known == set()


def test_absent_flags_serialized_as_false_add_no_note() -> None:
    update = payloads.message(
        10105, 1505, "Ahoj", delete_chat_photo=False, group_chat_created=False, photo=[]
    )
    assert only(payloads.encode(update)).text == "Ahoj"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(["file_id", "text", "title", "type", "photo", "video", "emoji", "id"])
            | st.text(max_size=8),
            children,
            max_size=4,
        )
    ),
    max_leaves=10,
)
field_names = st.sampled_from(
    sorted(kinds.FILE_FIELDS | set(kinds.NOTES) | {"forward_origin", "caption", "zz_future"})
)


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(field_names, json_values, max_size=4))
@example({"paid_media": {"paid_media": 5}})
@example({"photo": [{"file_id": "a", "width": "wide", "height": 2}], "poll": [1]})
def test_any_shape_of_any_field_normalizes_without_failing(fields: dict[str, Any]) -> None:
    """A malformed field must not fail the delivery (a failing event is retried, then
    given up: the customer's message would be lost)."""
    update = payloads.message(10300, 1700, "text", **fields)
    found = normalize_update("shopbot", payloads.encode(update))
    assert len(found) <= 1


def test_service_messages_are_notices_what_the_customer_sent_is_not() -> None:
    """docs/sla.md 1.4: a member joining or a pinned message is nobody writing to us; a
    poll, a venue, a contact, a payment or a gift is something the customer sent."""
    for index, kind in enumerate(sorted(payloads.KINDS)):
        fields, _ = payloads.KINDS[kind]
        update = payloads.message(30000 + index, 3000 + index, None)
        update["message"].update(fields)
        assert only(payloads.encode(update)).notice == (kind in kinds.SERVICE_FIELDS), kind
    for kind in ("new_chat_members", "left_chat_member", "pinned_message"):
        assert kind in payloads.KINDS  # the payloads cover service messages
    written = payloads.message(30100, 3100, "Dobrý den", pinned_message={"message_id": 1})
    assert not only(payloads.encode(written)).notice  # words always count
    future = payloads.message(30101, 3101, None, hologram={"id": "h1"})
    assert not only(payloads.encode(future)).notice  # an unknown kind may be a message
    assert not only(payloads.encode(payloads.message(30102, 3102, "/start"))).notice
