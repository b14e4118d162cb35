"""Meta webhook bodies to normalized messages and statuses: pure, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from helpdesk.channels.adapter import InboundMessage, StatusUpdate, StatusWatermark
from helpdesk.channels.meta.graph import split_text
from helpdesk.channels.meta.items import MalformedDelivery
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


def test_a_body_that_is_no_delivery_fails_loudly_not_as_nothing() -> None:
    """A signed body that is not a webhook delivery must not pass as processed."""
    for body in (b"{not json", b'{"object": "page", "entry": 5}'):
        with pytest.raises(MalformedDelivery):
            normalize_body("messenger", "shop", body)


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


def test_whatsapp_other_number_and_sent_status_yield_nothing() -> None:
    body = payloads.whatsapp_text("wamid.1", "Ahoj")
    assert normalize("whatsapp", body, recipient="111") == []
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
    from helpdesk.channels.meta.graph import cdn_url

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


# --- WhatsApp: every documented `messages[].type` ------------------------------------------


def one_message(kind: str, body: dict[str, object]) -> InboundMessage:
    (message,) = normalize(kind, body)
    assert isinstance(message, InboundMessage)
    return message


def test_a_username_without_phone_is_identified_by_the_bsuid() -> None:
    """Before: `wa_id` was required, so the whole delivery decoded to nothing."""
    body = payloads.whatsapp_username_message(
        {"id": "wamid.U1", "type": "text", "text": {"body": "Dobrý den"}}
    )
    message = one_message("whatsapp", body)
    assert message.text == "Dobrý den"
    assert message.sender.external_id == payloads.BSUID
    assert message.conversation_id == payloads.BSUID
    assert message.sender.phone is None
    assert message.sender.display_name == "@jana.shop"


def test_a_phone_and_a_bsuid_keep_the_phone_as_the_key() -> None:
    body = payloads.whatsapp_text("wamid.1", "Ahoj")
    contact = body["entry"][0]["changes"][0]["value"]["contacts"][0]
    contact["user_id"] = payloads.BSUID
    body["entry"][0]["changes"][0]["value"]["messages"][0]["from_user_id"] = payloads.BSUID
    message = one_message("whatsapp", body)
    assert message.sender.external_id == payloads.CUSTOMER_WA_ID
    assert message.sender.phone == "+420601234567"


def test_shared_contact_card_is_readable() -> None:
    message = one_message("whatsapp", payloads.whatsapp_contacts("wamid.C1"))
    assert message.text == (
        "[Shared contact: Petr Svoboda, +420 777 123 456, petr@svoboda.cz, Svoboda s.r.o.]"
    )


def test_catalog_order_lists_items_and_total() -> None:
    message = one_message("whatsapp", payloads.whatsapp_order("wamid.O1"))
    assert message.text.splitlines() == [
        "Pošlete to prosím do Brna",
        "[The customer sent an order from catalog 194836987003835",
        "- 2 x di9ozbzfi4 at 30 CZK",
        "- 1 x nlfz2qz8n0 at 12.5 CZK",
        "Total: 72.5 CZK]",
    ]


def test_flow_reply_shows_the_answers_without_the_token() -> None:
    message = one_message("whatsapp", payloads.whatsapp_flow_reply("wamid.F1", "wamid.OUT1"))
    assert message.text.splitlines() == [
        "[Form reply]",
        "delivery_date: 2026-12-10",
        "address: Veveří 12, Brno",
        "items: hrnek, talíř",
    ]
    assert "flow_token" not in message.text
    assert message.reply_to_external_id == "wamid.OUT1"


def test_reaction_to_our_message_and_its_removal_are_notes() -> None:
    message = one_message("whatsapp", payloads.whatsapp_reaction("wamid.R1", "wamid.OUT1", "👍"))
    assert message.text == "[Reacted 👍 to a message]"
    assert message.reply_to_external_id == "wamid.OUT1"
    removed = one_message("whatsapp", payloads.whatsapp_reaction("wamid.R2", "wamid.OUT1", None))
    assert removed.text == "[Removed a reaction]"


def test_unsupported_poll_and_future_types_become_readable_notes() -> None:
    poll = one_message("whatsapp", payloads.whatsapp_unsupported("wamid.P1", "poll_creation"))
    assert poll.text == "[The customer sent a poll; open WhatsApp to see it]"
    odd = one_message("whatsapp", payloads.whatsapp_unsupported("wamid.P2", "hologram"))
    assert odd.text == "[The customer sent a message of type 'hologram'; open WhatsApp to see it]"
    future = one_message(
        "whatsapp",
        payloads.whatsapp_message({"id": "wamid.P3", "type": "teleport", "teleport": {"x": 1}}),
    )
    assert future.text == (
        "[The customer sent a message of type 'teleport'; open WhatsApp to see it]"
    )
    # A message whose body does not fit the documented shape is a note, not a lost delivery.
    broken = one_message(
        "whatsapp", payloads.whatsapp_message({"id": "wamid.P4", "type": "text", "text": "hi"})
    )
    assert broken.text == "[The customer sent a message of type 'text'; open WhatsApp to see it]"
    odd = payloads.whatsapp_message({"id": "wamid.P5", "type": ["x"], "timestamp": 1700000000})
    assert one_message("whatsapp", odd).text == (
        "[The customer sent a message of type '['x']'; open WhatsApp to see it]"
    )


def test_edit_replaces_the_original_and_revoke_says_it_was_deleted() -> None:
    edit = one_message("whatsapp", payloads.whatsapp_edit("wamid.E2", "wamid.E1", "3 kusy"))
    assert (edit.external_id, edit.text, edit.edited) == ("wamid.E1", "3 kusy", True)
    revoke = one_message("whatsapp", payloads.whatsapp_revoke("wamid.E3", "wamid.E1"))
    assert revoke.external_id == "wamid.E1" and revoke.edited
    assert revoke.text == "[The customer deleted this message in WhatsApp]"


def test_system_welcome_voice_sticker_and_ad_referral() -> None:
    system = payloads.whatsapp_message(
        {
            "id": "wamid.S1",
            "type": "system",
            "system": {
                "body": "User A changed from +420601234567 to +420601234999",
                "wa_id": "420601234999",
                "type": "user_changed_number",
            },
        }
    )
    assert one_message("whatsapp", system).text == (
        "[WhatsApp: User A changed from +420601234567 to +420601234999]"
    )
    welcome = payloads.whatsapp_message({"id": "wamid.W1", "type": "request_welcome"})
    assert "opened a chat" in one_message("whatsapp", welcome).text
    voice = payloads.whatsapp_message(
        {
            "id": "wamid.V1",
            "type": "audio",
            "audio": {"mime_type": "audio/ogg; codecs=opus", "id": "1111", "voice": True},
        }
    )
    message = one_message("whatsapp", voice)
    assert message.text == "[Voice message]"
    assert [(a.content_type, a.fetch_ref) for a in message.attachments] == [("audio/ogg", "1111")]
    sticker = payloads.whatsapp_message(
        {"id": "wamid.ST", "type": "sticker", "sticker": {"mime_type": "image/webp", "id": "22"}}
    )
    assert one_message("whatsapp", sticker).text == "[Sticker]"
    ad = payloads.whatsapp_message(
        {
            "id": "wamid.AD",
            "type": "text",
            "text": {"body": "Mám zájem"},
            "referral": {
                "source_url": "https://fb.me/3cr4Wqqkv",
                "source_id": "120226305854810726",
                "source_type": "ad",
                "headline": "Zimní výprodej",
                "media_type": "image",
            },
        }
    )
    assert one_message("whatsapp", ad).text == (
        "Mám zájem\n[The customer came from Zimní výprodej https://fb.me/3cr4Wqqkv]"
    )


def test_document_keeps_text_and_file_reference_apart() -> None:
    """The caption is the message's text and the media id its file reference: a failed
    download never takes the text with it."""
    body = payloads.whatsapp_message(
        {
            "id": "wamid.D1",
            "type": "document",
            "document": {
                "caption": "Faktura",
                "filename": "faktura_č.pdf",
                "mime_type": "application/pdf",
                "id": "3333",
            },
        }
    )
    message = one_message("whatsapp", body)
    assert message.text == "Faktura"
    (file,) = message.attachments
    assert (file.filename, file.content_type, file.fetch_ref, file.content) == (
        "faktura_č.pdf",
        "application/pdf",
        "3333",
        None,
    )


# --- Messenger and Instagram: every documented `messaging[]` kind --------------------------


@pytest.mark.parametrize(
    ("kind", "event", "text"),
    [
        (
            "messenger",
            {
                "reaction": {
                    "reaction": "love",
                    "emoji": "❤️",
                    "action": "react",
                    "mid": "m_out1",
                }
            },
            "[Reacted ❤️ to a message]",
        ),
        (
            "instagram",
            {"reaction": {"mid": "aWdf_out", "action": "unreact"}},
            "[Removed a reaction]",
        ),
        (
            "messenger",
            {"postback": {"title": "Mluvit s člověkem", "payload": "HUMAN", "mid": "m_pb1"}},
            "Mluvit s člověkem",
        ),
        (
            "messenger",
            {"referral": {"ref": "zima2026", "source": "SHORTLINK", "type": "OPEN_THREAD"}},
            "[The customer came through shortlink (ref zima2026)]",
        ),
        (
            "messenger",
            {
                "optin": {
                    "type": "notification_messages",
                    "title": "Novinky",
                    "payload": "NEWS",
                    "notification_messages_token": "8123",
                }
            },
            "[The customer opted in: Novinky]",
        ),
        (
            "messenger",
            {"game_play": {"game_id": "123", "player_id": "456"}},
            "[Messenger sent an event of type 'game_play' this helpdesk cannot show; "
            "open Messenger to see it]",
        ),
        (
            "messenger",
            {
                "message": {
                    "mid": "m_q",
                    "text": "Ano",
                    "quick_reply": {"payload": "YES"},
                }
            },
            "Ano",
        ),
        (
            "messenger",
            {"message": {"mid": "m_u", "is_unsupported": True}},
            "[The customer sent a message Messenger cannot pass on; open Messenger to see it]",
        ),
        (
            "messenger",
            {
                "message": {
                    "mid": "m_fb",
                    "attachments": [
                        {
                            "type": "fallback",
                            "payload": {
                                "url": "https://www.example.cz/akce",
                                "title": "Akce týdne",
                            },
                        }
                    ],
                }
            },
            "[The customer shared a link: Akce týdne https://www.example.cz/akce]",
        ),
        (
            "messenger",
            {
                "message": {
                    "mid": "m_st",
                    "attachments": [
                        {
                            "type": "image",
                            "payload": {
                                "url": "https://scontent.xx.fbcdn.net/v/like.png",
                                "sticker_id": 369239263222822,
                            },
                        }
                    ],
                }
            },
            "👍",
        ),
        (
            "instagram",
            {
                "message": {
                    "mid": "aWdf_post",
                    "attachments": [
                        {
                            "type": "ig_post",
                            "payload": {
                                "ig_post_media_id": "18139494541428835",
                                "title": "Nová kolekce",
                                "url": "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=1",
                            },
                        }
                    ],
                }
            },
            "[The customer shared an Instagram post: Nová kolekce "
            "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=1]",
        ),
        (
            "instagram",
            {
                "message": {
                    "mid": "aWdf_story",
                    "text": "Krásné!",
                    "reply_to": {
                        "story": {"url": "https://lookaside.fbsbx.com/story/1", "id": "1798"}
                    },
                }
            },
            "Krásné!\n[Reply to your story https://lookaside.fbsbx.com/story/1]",
        ),
        (
            "instagram",
            {
                "message": {
                    "mid": "aWdf_ref",
                    "text": "Je skladem?",
                    "referral": {"product": {"id": "5522"}},
                }
            },
            "Je skladem?\n[The customer asked about product 5522]",
        ),
    ],
)
def test_every_messaging_kind_is_a_message_or_a_readable_note(
    kind: str, event: dict[str, object], text: str
) -> None:
    message = one_message(kind, payloads.messaging_event(kind, event))
    assert message.text == text
    assert message.external_id


def test_reaction_points_at_the_message_it_is_about() -> None:
    body = payloads.messaging_event(
        "messenger", {"reaction": {"emoji": "👍", "action": "react", "mid": "m_out1"}}
    )
    message = one_message("messenger", body)
    assert message.reply_to_external_id == "m_out1"
    assert normalize("messenger", body) == normalize("messenger", body)  # a stable id


def test_unsend_replaces_the_text_and_story_mention_keeps_the_file() -> None:
    unsent = one_message(
        "instagram",
        payloads.messaging_event("instagram", {"message": {"mid": "aWdf_1", "is_deleted": True}}),
    )
    assert (unsent.external_id, unsent.edited) == ("aWdf_1", True)
    assert unsent.text == "[The customer unsent this message in Instagram]"
    mention = one_message(
        "instagram",
        payloads.messaging_event(
            "instagram",
            {
                "message": {
                    "mid": "aWdf_2",
                    "attachments": [
                        {
                            "type": "story_mention",
                            "payload": {"url": "https://lookaside.fbsbx.com/ig_messaging_cdn/?a=1"},
                        }
                    ],
                }
            },
        ),
    )
    assert mention.text == "[The customer mentioned you in their story]"
    assert [a.fetch_ref for a in mention.attachments] == [
        "https://lookaside.fbsbx.com/ig_messaging_cdn/?a=1"
    ]


def test_handover_and_policy_notices_are_not_customer_messages() -> None:
    for event in (
        {"pass_thread_control": {"new_owner_app_id": "123", "metadata": ""}},
        {"policy_enforcement": {"action": "block", "reason": "spam"}},
    ):
        assert normalize("messenger", payloads.messaging_event("messenger", event)) == []


def test_one_odd_event_does_not_take_its_delivery_down() -> None:
    body = payloads.messenger_text("m_ok", "Dobrý den")
    odd = {"sender": {"id": payloads.PSID}, "timestamp": "soon", "message": {"mid": 5}}
    body["entry"][0]["messaging"].insert(0, odd)
    items = normalize("messenger", body)
    assert [i.text for i in items if isinstance(i, InboundMessage)] == [
        "[Messenger sent something this helpdesk could not read; open Messenger to see it]",
        "Dobrý den",
    ]
    assert normalize("messenger", body) == items  # the same ids on a redelivery


def test_instagram_file_types() -> None:
    from helpdesk.channels.meta.adapter import instagram_file_type

    assert instagram_file_type("a.jpg", "image/jpeg") == "image"
    assert instagram_file_type("a.webp", "image/webp") is None
    assert instagram_file_type("a.mp3", "audio/mpeg") is None
    assert instagram_file_type("a.wav", "audio/wav; codecs=1") == "audio"
    assert instagram_file_type("a.webm", "video/webm") == "video"
    assert instagram_file_type("a.pdf", "application/octet-stream") == "file"
    assert instagram_file_type("a.zip", "application/zip") is None


def test_what_nobody_wrote_is_a_notice_what_the_customer_sent_is_not() -> None:
    """docs/sla.md 1.4: reactions, unsends, system notices, welcome requests, opt-ins,
    referrals and account links reopen nothing; contact cards, orders, forms, polls,
    postbacks and edits are the customer's."""
    whatsapp = {
        "wamid.N1": (payloads.whatsapp_reaction("wamid.N1", "wamid.OUT1", "👍"), True),
        "wamid.N2": (payloads.whatsapp_reaction("wamid.N2", "wamid.OUT1", None), True),
        "wamid.N3": (
            payloads.whatsapp_message(
                {"id": "wamid.N3", "type": "system", "system": {"body": "changed number"}}
            ),
            True,
        ),
        "wamid.N4": (
            payloads.whatsapp_message({"id": "wamid.N4", "type": "request_welcome"}),
            True,
        ),
        "wamid.N5": (payloads.whatsapp_revoke("wamid.N5", "wamid.E1"), True),
        "wamid.N6": (payloads.whatsapp_contacts("wamid.N6"), False),
        "wamid.N7": (payloads.whatsapp_order("wamid.N7"), False),
        "wamid.N8": (payloads.whatsapp_flow_reply("wamid.N8", "wamid.OUT1"), False),
        "wamid.N9": (payloads.whatsapp_unsupported("wamid.N9", "poll_creation"), False),
        "wamid.NA": (payloads.whatsapp_edit("wamid.NA", "wamid.E1", "3 kusy"), False),
        "wamid.NB": (payloads.whatsapp_text("wamid.NB", "Dobrý den"), False),
    }
    for name, (body, notice) in whatsapp.items():
        assert one_message("whatsapp", body).notice == notice, name
    messaging = [
        ({"reaction": {"mid": "m_out1", "action": "react", "emoji": "❤️"}}, True),
        ({"reaction": {"mid": "m_out1", "action": "unreact"}}, True),
        ({"message": {"mid": "m_d", "is_deleted": True}}, True),
        ({"referral": {"ref": "zima2026", "source": "SHORTLINK", "type": "OPEN_THREAD"}}, True),
        ({"optin": {"type": "notification_messages", "title": "Novinky"}}, True),
        ({"account_linking": {"status": "linked", "authorization_code": "x"}}, True),
        ({"game_play": {"game_id": "123"}}, True),
        ({"postback": {"title": "Mluvit s člověkem", "payload": "HUMAN", "mid": "m_pb"}}, False),
        ({"message": {"mid": "m_t", "text": "Ahoj"}}, False),
        ({"message": {"mid": "m_u", "is_unsupported": True}}, False),
        ({"message_edit": {"mid": "m_t", "text": "Ahoj!", "num_edit": 1}}, False),
    ]
    for event, notice in messaging:
        for kind in ("messenger", "instagram"):
            body = payloads.messaging_event(kind, event)
            assert one_message(kind, body).notice == notice, (kind, event)
