"""Meta webhook bodies to normalized messages and statuses: pure, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from helpdesk.channels.adapter import InboundMessage, StatusUpdate, StatusWatermark
from helpdesk.channels.meta.adapter import split_text
from helpdesk.channels.meta.parse import normalize_body
from tests.channels.meta import payloads


def normalize(kind: str, body: dict[str, object], recipient: str | None = None) -> list[object]:
    return list(normalize_body(kind, "shop", payloads.encode(body), recipient_id=recipient))  # type: ignore[arg-type]


def test_messenger_text_becomes_one_message_of_the_psid_conversation() -> None:
    (message,) = normalize(
        "messenger", payloads.messenger_text("m_1", "Dobrý den", at=1_700_000_000_123)
    )
    assert isinstance(message, InboundMessage)
    assert (message.channel, message.external_id, message.conversation_id) == (
        "messenger",
        "m_1",
        payloads.PSID,
    )
    assert message.sender.external_id == payloads.PSID
    assert message.sent_at == datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC)


def test_another_page_or_another_object_is_not_ours() -> None:
    body = payloads.messenger_text("m_1", "x")
    assert normalize("messenger", body, recipient="999") == []
    assert len(normalize("messenger", body, recipient=payloads.PAGE_ID)) == 1
    assert normalize("instagram", body) == []  # object "page" is Messenger's
    assert normalize_body("messenger", "shop", b"{not json") == []
    assert normalize_body("messenger", "shop", b'{"object": "page", "entry": 5}') == []


def test_echoes_are_not_customer_messages() -> None:
    assert normalize("messenger", payloads.messenger_echo("m_2", "hi")) == []


def test_delivery_and_read_become_statuses_and_watermarks() -> None:
    items = normalize("messenger", payloads.messenger_delivery(["m_a", "m_b"], 1_700_000_000_000))
    assert [type(i) for i in items] == [StatusUpdate, StatusUpdate, StatusWatermark]
    assert [i.external_id for i in items if isinstance(i, StatusUpdate)] == ["m_a", "m_b"]
    (read,) = normalize("messenger", payloads.messenger_read(1_700_000_000_000))
    assert isinstance(read, StatusWatermark)
    assert (read.conversation_id, read.status) == (payloads.PSID, "read")


def test_whatsapp_message_carries_the_verified_phone_and_name() -> None:
    (message,) = normalize("whatsapp", payloads.whatsapp_text("wamid.1", "Ahoj"))
    assert isinstance(message, InboundMessage)
    assert message.sender.phone == "+420601234567"
    assert message.sender.display_name == "Jana Nováková"
    assert message.conversation_id == payloads.CUSTOMER_WA_ID


def test_whatsapp_other_number_reaction_and_sent_status_yield_nothing() -> None:
    body = payloads.whatsapp_text("wamid.1", "Ahoj")
    assert normalize("whatsapp", body, recipient="111") == []
    reaction = payloads.whatsapp_message(
        {"id": "wamid.2", "type": "reaction", "reaction": {"message_id": "wamid.1", "emoji": "👍"}}
    )
    assert normalize("whatsapp", reaction) == []
    assert normalize("whatsapp", payloads.whatsapp_status("wamid.OUT", "sent")) == []


def test_whatsapp_location_and_button_replies_are_readable_text() -> None:
    location = payloads.whatsapp_message(
        {
            "id": "wamid.3",
            "type": "location",
            "location": {"latitude": 50.08, "longitude": 14.42, "name": "Výdejna"},
        }
    )
    (message,) = normalize("whatsapp", location)
    assert isinstance(message, InboundMessage)
    assert message.text == "[location 50.08, 14.42 Výdejna]"
    button = payloads.whatsapp_message(
        {
            "id": "wamid.4",
            "type": "interactive",
            "interactive": {"type": "button_reply", "button_reply": {"id": "y", "title": "Ano"}},
        }
    )
    (message,) = normalize("whatsapp", button)
    assert isinstance(message, InboundMessage) and message.text == "Ano"


def test_failed_status_explains_the_24_hour_rule() -> None:
    error = {"code": 131047, "title": "Re-engagement message"}
    (status,) = normalize("whatsapp", payloads.whatsapp_status("wamid.O", "failed", errors=[error]))
    assert isinstance(status, StatusUpdate)
    assert status.status == "failed"
    assert status.reason is not None and "template" in status.reason


def test_split_text_keeps_short_text_and_cuts_long_text_at_breaks() -> None:
    assert split_text("  ahoj  ", 2000) == ["ahoj"]
    pieces = split_text("a" * 1500 + "\n" + "b" * 1500, 2000)
    assert pieces == ["a" * 1500, "b" * 1500]
    unbroken = split_text("c" * 4500, 2000)
    assert [len(p) for p in unbroken] == [2000, 2000, 500]


def test_attachment_urls_outside_metas_cdn_are_never_fetched() -> None:
    """A9: only https on Meta's CDN hosts; a configured base URL (a test server) only
    replaces the host of such a URL, never admits another one."""
    from helpdesk.channels.accounts import ChannelAccount
    from helpdesk.channels.meta.adapter import cdn_url

    plain = ChannelAccount(id=1, kind="messenger", name="p", active=True, settings={}, secrets={})
    for url in (
        "http://scontent.xx.fbcdn.net/a.jpg",  # not https
        "https://127.0.0.1/a.jpg",
        "https://[::1]/a.jpg",
        "https://169.254.169.254/latest/meta-data/",
        "https://10.0.0.7/a.jpg",
        "https://fbcdn.net.attacker.example/a.jpg",
        "https://attacker.example/fbcdn.net/a.jpg",
    ):
        with pytest.raises(ValueError):
            cdn_url(plain, url)
    assert cdn_url(plain, "https://scontent.xx.fbcdn.net/v/a.jpg?x=1") == (
        "https://scontent.xx.fbcdn.net/v/a.jpg?x=1"
    )
    local = ChannelAccount(
        id=2,
        kind="messenger",
        name="t",
        active=True,
        settings={"base_url": "http://127.0.0.1:9999/v21.0/"},
        secrets={},
    )
    assert (
        cdn_url(local, "https://scontent.xx.fbcdn.net/v/a.jpg") == "http://127.0.0.1:9999/v/a.jpg"
    )
