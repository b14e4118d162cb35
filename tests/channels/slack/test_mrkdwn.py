"""Slack mrkdwn as readable text: the pure converter, by example and by property."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from helpdesk.channels.slack.mrkdwn import escape, mentioned_users, rich_text, to_text

USERS = {"U061F7AUR": "Jana Nováková", "W0ENTERPRISE": "Petr"}


def test_users_channels_broadcasts_and_links_read_as_text() -> None:
    raw = (
        "Hi <@U061F7AUR>, see <#C123ABC456|general> and <#C0NOLABEL>, <!here> <!channel> "
        "<!everyone> <!subteam^S0TEAM|@support> <!subteam^S0OTHER>: "
        "<https://shop.example/o/1234|order 1234>, <https://shop.example/faq>, "
        "<mailto:jana@example.com|jana@example.com> "
        "<!date^1392734382^{date} at {time}|February 18th, 2014 at 6:39 AM> "
        "&lt;3 &amp; &gt; <@W0ENTERPRISE|petr.s> <@U0UNKNOWN>"
    )
    assert to_text(raw, USERS) == (
        "Hi @Jana Nováková, see #general and #C0NOLABEL, @here @channel "
        "@everyone @support @S0OTHER: "
        "order 1234 (https://shop.example/o/1234), https://shop.example/faq, "
        "jana@example.com "
        "February 18th, 2014 at 6:39 AM "
        "<3 & > @petr.s @U0UNKNOWN"
    )


def test_channel_names_come_from_the_map_when_the_label_is_missing() -> None:
    assert to_text("<#C1>, <#C2|>", channels={"C1": "general", "C2": "random"}) == (
        "#general, #random"
    )


def test_escapes_inside_labels_and_urls_are_undone_once() -> None:
    assert to_text("<https://x.example/?a=1&amp;b=2|Tom &amp; Jerry &amp;lt;>") == (
        "Tom & Jerry &lt; (https://x.example/?a=1&b=2)"
    )


def test_mentions_without_a_label_are_the_ones_to_look_up() -> None:
    raw = "<@U061F7AUR> <@U0LABELLED|jana> <@W0ENTERPRISE> <#C123ABC456> <mailto:a@b>"
    assert mentioned_users(raw) == {"U061F7AUR", "W0ENTERPRISE"}


def test_rich_text_blocks_render_to_the_same_text() -> None:
    blocks = [
        {
            "type": "rich_text",
            "elements": [
                {
                    "type": "rich_text_section",
                    "elements": [
                        {"type": "text", "text": "Order <1234> arrived broken "},
                        {"type": "user", "user_id": "U061F7AUR"},
                        {"type": "text", "text": " see "},
                        {"type": "link", "url": "https://shop.example/o", "text": "order"},
                        {"type": "emoji", "name": "cry", "unicode": "1f622"},
                        {"type": "broadcast", "range": "here"},
                    ],
                },
                {
                    "type": "rich_text_list",
                    "style": "bullet",
                    "elements": [
                        {
                            "type": "rich_text_section",
                            "elements": [{"type": "text", "text": "box"}],
                        },
                        {
                            "type": "rich_text_section",
                            "elements": [{"type": "text", "text": "lid"}],
                        },
                    ],
                },
                {
                    "type": "rich_text_quote",
                    "elements": [{"type": "text", "text": "quoted"}],
                },
            ],
        }
    ]
    assert to_text(rich_text(blocks), USERS) == (
        "Order <1234> arrived broken @Jana Nováková see order (https://shop.example/o)😢@here\n"
        "• box\n• lid\n> quoted"
    )


# Text as a person types it: anything, including Slack's control characters.
plain = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=200)


@given(plain)
def test_plain_text_escaped_as_slack_does_comes_back_unchanged(text: str) -> None:
    assert to_text(escape(text)) == text


@given(plain, st.from_regex(r"U[A-Z0-9]{8}", fullmatch=True), plain)
def test_a_mention_reads_as_the_users_name_and_nothing_else_changes(
    before: str, user: str, after: str
) -> None:
    raw = f"{escape(before)}<@{user}>{escape(after)}"
    assert mentioned_users(raw) == {user}
    assert to_text(raw, {user: "Jana"}) == f"{before}@Jana{after}"
    assert to_text(raw) == f"{before}@{user}{after}"


@given(plain, plain, plain)
def test_a_labelled_link_keeps_its_label_and_url(before: str, label: str, after: str) -> None:
    url = "https://shop.example/o?a=1&b=2"
    raw = f"{escape(before)}<{escape(url)}|{escape(label)}>{escape(after)}"
    shown = to_text(raw)
    assert shown.startswith(before) and shown.endswith(after)
    middle = shown[len(before) : len(shown) - len(after)]
    assert middle == (url if label in ("", url) else f"{label} ({url})")
    assert "<" not in middle.replace(label, "") and "&amp;" not in middle.replace(label, "")
