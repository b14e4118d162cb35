"""The pure half of the Slack adapter: request verification and event normalizing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from helpdesk.channels.accounts import ChannelAccount
from helpdesk.channels.adapter import InboundMessage, WebhookRequest
from helpdesk.channels.slack import parse
from helpdesk.channels.slack.adapter import SlackAdapter, download_url
from helpdesk.channels.slack.parse import conversation_of, escape, timestamp
from helpdesk.config import load_settings
from tests.channels.slack import payloads
from tests.channels.test_signatures import SLACK_BODY, SLACK_SECRET, SLACK_SIGNATURE, SLACK_TS

ADAPTER = SlackAdapter(load_settings({}))
ROOT = "1355517523.000005"


def account(**settings: Any) -> ChannelAccount:
    return ChannelAccount(
        id=1,
        kind="slack",
        name="workspace",
        active=True,
        settings={
            "team_id": payloads.TEAM_ID,
            "bot_user_id": payloads.BOT_USER_ID,
            "support_channels": [payloads.SUPPORT_CHANNEL],
            **settings,
        },
        secrets={"signing_secret": SLACK_SECRET, "bot_token": "xoxb-1"},
    )


def request(body: bytes, headers: dict[str, str], method: str = "POST") -> WebhookRequest:
    return WebhookRequest(method=method, headers=headers, query={}, body=body)


def normalize(body: dict[str, Any], **settings: Any) -> list[InboundMessage]:
    found = ADAPTER.normalize(account(**settings), payloads.encode(body))
    assert all(isinstance(item, InboundMessage) for item in found)
    return [item for item in found if isinstance(item, InboundMessage)]


def test_slacks_documented_vector_passes_the_adapter() -> None:
    headers = {"x-slack-request-timestamp": SLACK_TS, "x-slack-signature": SLACK_SIGNATURE}
    verdict = ADAPTER.verify(account(), request(SLACK_BODY, headers), float(SLACK_TS))
    assert verdict.accept and verdict.dedupe_key is None  # a slash command: no event_id


def test_event_callback_is_accepted_with_the_event_id_as_delivery_id() -> None:
    body = payloads.encode(payloads.message("Ev0PV52K25"))
    headers = payloads.signed_headers(SLACK_SECRET, body, ts=1_700_000_000)
    verdict = ADAPTER.verify(account(), request(body, headers), 1_700_000_100)
    assert verdict.accept and verdict.dedupe_key == "Ev0PV52K25"


def test_url_verification_is_answered_with_the_challenge_only_when_signed() -> None:
    challenge = "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    body = payloads.encode(payloads.url_verification(challenge))
    headers = payloads.signed_headers(SLACK_SECRET, body, ts=1_700_000_000)
    verdict = ADAPTER.verify(account(), request(body, headers), 1_700_000_000)
    assert (verdict.accept, verdict.status, verdict.body) == (False, 200, challenge.encode())
    forged = payloads.signed_headers("another secret", body, ts=1_700_000_000)
    assert ADAPTER.verify(account(), request(body, forged), 1_700_000_000).status == 401


def test_get_is_not_a_slack_handshake() -> None:
    assert ADAPTER.verify(account(), request(b"", {}, "GET"), 0).status == 405


def test_plain_message_in_a_support_channel() -> None:
    (found,) = normalize(payloads.message(text="Faktura &amp; dodací list &lt;prosím&gt;"))
    assert found.channel == "slack" and found.channel_account == "workspace"
    assert found.external_id == "C123ABC456:1355517523.000005"
    assert found.conversation_id == "C123ABC456:1355517523.000005"  # a new thread
    assert found.sender.external_id == payloads.CUSTOMER
    assert found.sender.display_name == "jana"
    assert found.text == "Faktura & dodací list <prosím>"
    assert found.sent_at == datetime(2012, 12, 14, 20, 38, 43, 5, tzinfo=UTC)
    assert found.reply_to_external_id is None and not found.edited


def test_thread_reply_joins_its_threads_conversation() -> None:
    body = payloads.message(ts="1355517600.000100", thread_ts="1355517523.000005", profile=False)
    (found,) = normalize(body)
    assert found.conversation_id == "C123ABC456:1355517523.000005"
    assert found.external_id == "C123ABC456:1355517600.000100"
    assert found.reply_to_external_id == "C123ABC456:1355517523.000005"
    assert found.sender.display_name == payloads.CUSTOMER  # no profile: the user id


def test_direct_message_to_the_app_is_taken_from_any_dm_channel() -> None:
    body = payloads.message(channel=payloads.DM_CHANNEL, channel_type="im")
    (found,) = normalize(body)
    assert found.conversation_id.startswith(payloads.DM_CHANNEL + ":")


@pytest.mark.parametrize(
    "body",
    [
        payloads.message(channel=payloads.OTHER_CHANNEL),  # not a support channel
        payloads.message(channel="G0PRIVATE", channel_type="mpim"),
        payloads.bot_message("Ev2", "1355517523.000006"),
        payloads.message(user=payloads.BOT_USER_ID),  # our own reply, echoed back
        payloads.message(bot_id="B0OTHER"),  # another app posting as a user
        payloads.message(subtype="channel_join", text="<@U061F7AUR> has joined"),
        payloads.message(subtype="message_deleted", hidden=True),
        payloads.app_mention("Ev3", "1355517523.000005"),  # the message event carries it
        payloads.reaction_added("Ev4"),
        payloads.user_change("Ev5"),
        payloads.edited("Ev6", "1355517523.000005", "same", "1355517999.000001", previous="same"),
        {**payloads.message(), "team_id": "T0SOMEONEELSE"},
        {"type": "app_rate_limited", "team_id": payloads.TEAM_ID, "minute_rate_limited": 1},
        payloads.message(ts="not-a-number"),
        payloads.message(ts="NaN"),
    ],
)
def test_what_is_not_a_customer_message_normalizes_to_nothing(body: dict[str, Any]) -> None:
    assert normalize(body) == []


def test_malformed_bodies_normalize_to_nothing() -> None:
    for raw in (b"", b"not json", b"[]", b'{"type": "event_callback", "event": 3}'):
        assert ADAPTER.normalize(account(), raw) == []


def test_support_channels_may_be_one_comma_separated_string() -> None:
    body = payloads.message(channel=payloads.OTHER_CHANNEL)
    assert len(normalize(body, support_channels=f"{payloads.SUPPORT_CHANNEL}, C0OTHER01")) == 1


def test_file_share_becomes_an_attachment_fetched_by_url() -> None:
    (found,) = normalize(payloads.file_share("Ev8", "1355517524.000001", "Rozbité", 1234))
    assert found.text == "Rozbité"
    (attachment,) = found.attachments
    assert attachment.filename == "tedair.gif" and attachment.content_type == "image/gif"
    assert attachment.size == 1234
    assert attachment.fetch_ref is not None and attachment.fetch_ref.endswith(
        "/download/tedair.gif"
    )


def test_a_file_slack_will_not_hand_out_is_an_attachment_saying_why() -> None:
    body = payloads.file_share("Ev9", "1355517524.000001", "", 10)
    body["event"]["files"][0]["mode"] = "hidden_by_limit"
    (found,) = normalize(body)
    (attachment,) = found.attachments
    assert attachment.filename == "tedair.gif" and attachment.fetch_ref is None
    assert attachment.unavailable == "Slack hides this file (the workspace's file history limit)"
    assert found.text == ""


def test_message_changed_is_an_edit_of_the_original_dated_by_the_edit() -> None:
    body = payloads.edited(
        "Ev10", "1355517523.000005", "Hello, world!", "1358878755.000001", thread_ts="1355517000.1"
    )
    (found,) = normalize(body)
    assert found.edited
    assert found.external_id == "C123ABC456:1355517523.000005"
    assert found.conversation_id == "C123ABC456:1355517000.1"
    assert found.text == "Hello, world!"
    assert found.sent_at == timestamp("1358878755.000001")


def test_outbound_helpers() -> None:
    assert conversation_of("C123ABC456:1355517523.000005") == ("C123ABC456", "1355517523.000005")
    assert conversation_of("D024BE91L") == ("D024BE91L", None)
    assert escape("a < b & c > d") == "a &lt; b &amp; c &gt; d"


def test_the_bot_token_only_goes_to_slack_hosts() -> None:
    url = "https://files.slack.com/files-pri/T1-F1/download/a.pdf"
    assert download_url(account(), url) == url
    moved = download_url(account(base_url="http://127.0.0.1:9/api/"), url)
    assert moved == "http://127.0.0.1:9/files-pri/T1-F1/download/a.pdf"
    for bad in (
        "https://evil.example/files-pri/x",
        "http://files.slack.com/x",
        "https://slack.com.evil.io/",
    ):
        with pytest.raises(ValueError):
            download_url(account(), bad)


def test_a_forwarded_message_brings_its_text_quoted_with_its_author() -> None:
    (found,) = normalize(payloads.forwarded("Ev20", "1355517600.000001"))
    assert found.text == (
        "@U0HELPBOT what about this?\n\n"
        "Forwarded message from Petr Svoboda:\n"
        "> Order 1234 arrived broken, @U0PETR001 knows more & <fast>"
    )


def test_a_forwarded_message_without_text_uses_its_blocks_then_its_fallback() -> None:
    body = payloads.forwarded("Ev21", "1355517600.000002", text="")
    body["event"]["attachments"][0]["text"] = ""
    (found,) = normalize(body)
    assert found.text == (
        "Forwarded message from Petr Svoboda:\n> Order 1234 arrived broken, @U0PETR001 knows more"
    )
    body["event"]["attachments"][0]["message_blocks"] = []
    (found,) = normalize(body)
    assert found.text.endswith("> [November 14th, 2023 10:13 PM] petr: Order 1234 arrived broken")


def test_a_link_preview_adds_nothing_to_the_text() -> None:
    body = payloads.message("Ev22", "1355517600.000003", "See <https://shop.example/o/1>")
    body["event"]["attachments"] = [
        {
            "from_url": "https://shop.example/o/1",
            "title": "Order 1",
            "text": "A long page description",
            "fallback": "Order 1",
        }
    ]
    (found,) = normalize(body)
    assert found.text == "See https://shop.example/o/1"


def test_names_looked_up_replace_ids_in_text_and_sender() -> None:
    body = payloads.forwarded("Ev23", "1355517600.000004")
    del body["event"]["user_profile"]
    raw = payloads.encode(body)
    settings = parse.Settings(
        support_channels=frozenset({payloads.SUPPORT_CHANNEL}), bot_user_id=payloads.BOT_USER_ID
    )
    assert parse.users_to_look_up(raw, settings) == {"U0HELPBOT", "U0PETR001", payloads.CUSTOMER}
    names = {"U0HELPBOT": "Shop Help", "U0PETR001": "Petr", payloads.CUSTOMER: "Jana"}
    (found,) = parse.normalize_body("workspace", raw, settings, names)
    assert isinstance(found, InboundMessage)
    assert found.sender.display_name == "Jana"
    assert found.text.startswith("@Shop Help what about this?")
    assert "@Petr knows more" in found.text
    # Without the lookups the ids stay readable as ids.
    (plain,) = parse.normalize_body("workspace", raw, settings)
    assert isinstance(plain, InboundMessage) and plain.sender.display_name == payloads.CUSTOMER


def test_mrkdwn_in_a_plain_message_and_in_an_edit_is_readable() -> None:
    (found,) = normalize(
        payloads.message("Ev24", text="<!here> Ask in <#C0OTHER01|general>: a &lt; b &amp;&amp; c")
    )
    assert found.text == "@here Ask in #general: a < b && c"
    body = payloads.edited("Ev25", ROOT, "Now <https://x.example|with a link>", "1358878755.1")
    (edit,) = normalize(body)
    assert edit.text == "Now with a link (https://x.example)"


def test_a_slack_connect_file_is_fetched_by_its_id() -> None:
    (found,) = normalize(payloads.connect_file_share("Ev26", "1355517600.000005", "Faktura"))
    (attachment,) = found.attachments
    assert (attachment.filename, attachment.fetch_ref, attachment.unavailable) == (
        "F0CONNECT1",
        "F0CONNECT1",
        None,
    )


def test_a_malformed_attachment_entry_loses_only_itself() -> None:
    body = payloads.forwarded("Ev27", "1355517600.000006")
    body["event"]["attachments"].insert(0, {"text": 42, "is_share": "yes"})
    (found,) = normalize(body)
    assert "Forwarded message from Petr Svoboda:" in found.text
