"""Slack Events API bodies as the normalized channel shapes: pure functions, no I/O.

Only the fields we use are declared; Slack adds fields often and unknown ones are
ignored. What we cannot use (other event types, bots, our own messages, channels we do
not support, a malformed body) normalizes to nothing: the body stays stored in
`inbound_events` for audit and Slack got its 200, so it does not retry.

Ids: a Slack message is `ts`, unique within its channel, so ours is `channel:ts`; a
thread (its root's ts) is a conversation, so a ticket is `channel:thread_ts`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qs

import msgspec

from helpdesk.channels.adapter import (
    ButtonPress,
    InboundAttachment,
    InboundMessage,
    SenderIdentity,
)
from helpdesk.channels.slack import mrkdwn
from helpdesk.channels.slack.mrkdwn import escape

# Subtypes that are a person writing (a file with its text, a thread reply also sent to
# the channel, /me). Everything else (joins, topic changes, bot posts, deletions) is not.
_PERSON_SUBTYPES = frozenset({None, "file_share", "thread_broadcast", "me_message"})
# Files Slack will not hand out, and what the agent is told instead.
_NOT_DOWNLOADABLE = {
    "tombstone": "the file was deleted in Slack",
    "hidden_by_limit": "Slack hides this file (the workspace's file history limit)",
    "external": "a link to a file stored outside Slack",
}
_NO_NAMES: Mapping[str, str] = {}


class UserProfile(msgspec.Struct):
    display_name: str = ""
    real_name: str = ""
    name: str = ""


class SlackFile(msgspec.Struct):
    id: str = ""
    name: str | None = None
    title: str | None = None
    mimetype: str | None = None
    size: int | None = None
    mode: str | None = None
    # "check_file_info": a Slack Connect file; its URLs come from files.info only.
    file_access: str | None = None
    url_private: str | None = None
    url_private_download: str | None = None
    external_url: str | None = None


class SharedMessage(msgspec.Struct):
    """An entry of a message's `attachments`: a forwarded (shared) message, a message
    link unfurl, a link preview, or an app's legacy attachment."""

    text: str = ""
    fallback: str = ""
    pretext: str = ""
    title: str = ""
    author_name: str = ""
    author_subname: str = ""
    is_share: bool = False
    is_msg_unfurl: bool = False
    from_url: str | None = None
    original_url: str | None = None
    message_blocks: list[dict[str, Any]] | None = None


class Edited(msgspec.Struct):
    ts: str | None = None


class PreviousMessage(msgspec.Struct):
    text: str = ""


class Message(msgspec.Struct):
    """A `message` event, or the `message` inside a `message_changed` one."""

    type: str = "message"
    subtype: str | None = None
    channel: str | None = None
    channel_type: str | None = None
    user: str | None = None
    bot_id: str | None = None
    text: str = ""
    ts: str | None = None
    thread_ts: str | None = None
    files: list[SlackFile] | None = None
    # Undecoded: one malformed entry must not lose the message (each is decoded apart).
    attachments: list[msgspec.Raw] | None = None
    user_profile: UserProfile | None = None
    edited: Edited | None = None
    message: Message | None = None
    previous_message: PreviousMessage | None = None


class Envelope(msgspec.Struct):
    """The envelope with its event undecoded: other event types' fields have other shapes
    (`user` is an object in `user_change`), which must not fail the message path."""

    type: str = ""
    team_id: str | None = None
    event: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)


class _EventType(msgspec.Struct):
    type: str = ""


class _Head(msgspec.Struct):
    """What verification reads: no event body (its shape varies by event type)."""

    type: str = ""
    event_id: str | None = None
    challenge: str | None = None


class Settings(msgspec.Struct, frozen=True):
    """The account settings normalizing depends on."""

    support_channels: frozenset[str] = frozenset()
    bot_user_id: str | None = None
    team_id: str | None = None


_decode_head = msgspec.json.Decoder(_Head).decode
_decode_envelope = msgspec.json.Decoder(Envelope).decode
_decode_message = msgspec.json.Decoder(Message).decode
_decode_event_type = msgspec.json.Decoder(_EventType).decode
_decode_shared = msgspec.json.Decoder(SharedMessage).decode


def head(body: bytes) -> tuple[str, str | None, str | None]:
    """(envelope type, event_id, challenge); ('', None, None) when not an envelope."""
    try:
        found = _decode_head(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return "", None, None
    return found.type, found.event_id or None, found.challenge


def channel_ids(value: object) -> frozenset[str]:
    """The `support_channels` setting: a list of ids, or one string of them."""
    if isinstance(value, str):
        value = value.replace(",", " ").split()
    if not isinstance(value, list):
        return frozenset()
    return frozenset(item.strip() for item in value if isinstance(item, str) and item.strip())


def timestamp(ts: str) -> datetime:
    """A Slack `ts` ("1355517523.000005": seconds.micro-ish) as an aware datetime."""
    seconds = Decimal(ts)
    whole = int(seconds)
    micro = int((seconds - whole) * 1_000_000)
    return datetime.fromtimestamp(whole, UTC).replace(microsecond=micro)


def message_external_id(channel: str, ts: str) -> str:
    return f"{channel}:{ts}"


def conversation_of(conversation_id: str) -> tuple[str, str | None]:
    """(channel, thread ts) of our conversation id; a bare channel id has no thread."""
    channel, _, thread_ts = conversation_id.partition(":")
    return channel, thread_ts or None


def display_name(
    user: str, profile: UserProfile | None, names: Mapping[str, str] = _NO_NAMES
) -> str:
    """The profile's name, else one looked up (users.info), else the user id."""
    if profile is not None:
        for name in (profile.display_name, profile.real_name, profile.name):
            if name.strip():
                return name.strip()
    return names.get(user) or user


def raw_text(message: Message) -> str:
    """The message's mrkdwn with what it forwards or quotes (its `attachments`: a shared
    message, a message unfurl, an app's attachment) appended as a quote. Link previews
    are left out: the link is in the text already."""
    parts = [message.text] if message.text.strip() else []
    for entry in message.attachments or ():
        try:
            shared = _decode_shared(entry)
        except (msgspec.DecodeError, msgspec.ValidationError):
            continue  # an app's attachment of another shape: nothing to quote
        forwarded = shared.is_share or shared.is_msg_unfurl or bool(shared.message_blocks)
        if shared.from_url and not forwarded:
            continue
        body = shared.text
        if not body.strip() and shared.message_blocks:
            body = "\n".join(
                mrkdwn.rich_text((item.get("message") or {}).get("blocks") or ())
                for item in shared.message_blocks
                if isinstance(item, dict)
            )
        if not body.strip():
            body = escape(shared.fallback)
        if not body.strip():
            continue
        who = shared.author_name or shared.author_subname
        if forwarded:
            head = f"Forwarded message from {escape(who)}:" if who else "Forwarded message:"
        else:
            head = escape(shared.pretext or shared.title)
        quoted = "\n".join(f"> {line}" for line in body.splitlines())
        parts.append(f"{head}\n{quoted}" if head else body)
    return "\n\n".join(parts)


def _names_wanted(message: Message) -> set[str]:
    wanted = mrkdwn.mentioned_users(raw_text(message))
    if message.user and display_name(message.user, message.user_profile) == message.user:
        wanted.add(message.user)
    return wanted


def _attachments(files: Iterable[SlackFile]) -> list[InboundAttachment]:
    """Files to download with the bot token: by URL, or by id through files.info for
    Slack Connect files (which arrive without URLs); those Slack will not hand out say
    why."""
    found: list[InboundAttachment] = []
    for item in files:
        name = item.name or item.title or item.id or "file"
        url = item.url_private_download or item.url_private
        kind = item.mimetype or "application/octet-stream"
        reason = _NOT_DOWNLOADABLE.get(item.mode or "")
        if reason is not None:
            if item.mode == "external" and item.external_url:
                reason = f"{reason}: {item.external_url}"
            found.append(InboundAttachment(name, kind, size=item.size, unavailable=reason))
        elif url:
            found.append(InboundAttachment(name, kind, fetch_ref=url, size=item.size))
        elif item.id:  # file_access "check_file_info": files.info gives the URL
            found.append(InboundAttachment(name, kind, fetch_ref=item.id, size=item.size))
        else:
            found.append(
                InboundAttachment(name, kind, unavailable="Slack sent no way to download it")
            )
    return found


def _is_person(message: Message, settings: Settings) -> bool:
    if message.subtype not in _PERSON_SUBTYPES or message.bot_id or not message.user:
        return False
    return message.user != settings.bot_user_id


def normalize_message(
    account: str, event: Message, settings: Settings, names: Mapping[str, str] = _NO_NAMES
) -> InboundMessage | None:
    """One customer message, or None for what is not one (see the module docstring)."""
    channel = event.channel
    if event.type != "message" or not channel or not event.ts:
        return None
    if channel not in settings.support_channels and event.channel_type != "im":
        return None
    if event.subtype == "message_changed":
        return _edit(account, channel, event, settings, names)
    if not _is_person(event, settings):
        return None
    assert event.user is not None
    attachments = _attachments(event.files or ())
    text = mrkdwn.to_text(raw_text(event), names).strip()
    if not text and not attachments:
        return None
    thread = event.thread_ts or event.ts
    return InboundMessage(
        channel="slack",
        channel_account=account,
        external_id=message_external_id(channel, event.ts),
        conversation_id=f"{channel}:{thread}",
        sender=SenderIdentity(event.user, display_name(event.user, event.user_profile, names)),
        text=text,
        sent_at=timestamp(event.ts),
        attachments=tuple(attachments),
        reply_to_external_id=(None if thread == event.ts else message_external_id(channel, thread)),
    )


def _edit(
    account: str, channel: str, event: Message, settings: Settings, names: Mapping[str, str]
) -> InboundMessage | None:
    """`message_changed`: the original message's newer text, dated by the edit."""
    original = event.message
    if original is None or not original.ts or not _is_person(original, settings):
        return None
    previous = event.previous_message
    if previous is not None and previous.text == original.text:
        return None  # an unfurl or a reaction summary changed, not the words
    assert original.user is not None
    edited_ts = (original.edited.ts if original.edited else None) or event.ts
    assert edited_ts is not None
    thread = original.thread_ts or original.ts
    return InboundMessage(
        channel="slack",
        channel_account=account,
        external_id=message_external_id(channel, original.ts),
        conversation_id=f"{channel}:{thread}",
        sender=SenderIdentity(
            original.user, display_name(original.user, original.user_profile, names)
        ),
        text=mrkdwn.to_text(raw_text(original), names).strip(),
        sent_at=timestamp(edited_ts),
        reply_to_external_id=(
            None if thread == original.ts else message_external_id(channel, thread)
        ),
        edited=True,
    )


class _Who(msgspec.Struct):
    id: str = ""


class _Action(msgspec.Struct):
    value: str = ""
    action_ts: str = ""


class _Interaction(msgspec.Struct):
    """An interactivity payload (a button press in one of our messages)."""

    type: str = ""
    trigger_id: str = ""
    user: _Who = msgspec.field(default_factory=_Who)
    team: _Who = msgspec.field(default_factory=_Who)
    actions: list[_Action] = []


_decode_interaction = msgspec.json.Decoder(_Interaction).decode


def interaction(body: bytes) -> _Interaction | None:
    """The payload of an interactivity request (`payload=<json>`, form-encoded)."""
    if not body.startswith(b"payload="):
        return None
    try:
        raw = parse_qs(body.decode("utf-8"), max_num_fields=5).get("payload", [""])[0]
        return _decode_interaction(raw.encode())
    except (UnicodeDecodeError, ValueError, msgspec.DecodeError, msgspec.ValidationError):
        return None


def interaction_key(body: bytes) -> str | None:
    """Slack retries an interaction with the same trigger id: stored once."""
    found = interaction(body)
    return f"interaction:{found.trigger_id}" if found and found.trigger_id else None


def _message_event(body: bytes, settings: Settings) -> Message | None:
    """The `message` event of an Events API body for this account's workspace."""
    try:
        envelope = _decode_envelope(body)
        if envelope.type != "event_callback" or not len(envelope.event):
            return None
        if settings.team_id and envelope.team_id and envelope.team_id != settings.team_id:
            return None  # the app is installed in another workspace too: not this account's
        if _decode_event_type(envelope.event).type != "message":
            return None  # reactions, app_mention (the message event carries the text), others
        return _decode_message(envelope.event)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def users_to_look_up(body: bytes, settings: Settings) -> set[str]:
    """Users whose names the body lacks: a sender without a profile, mentions without a
    label. The adapter looks them up (users.info) and passes them to `normalize_body`."""
    event = _message_event(body, settings)
    if event is None:
        return set()
    if event.subtype == "message_changed" and event.message is not None:
        return _names_wanted(event.message)
    return _names_wanted(event)


def normalize_body(
    account: str, body: bytes, settings: Settings, names: Mapping[str, str] = _NO_NAMES
) -> list[InboundMessage | ButtonPress]:
    """The customer messages in one Events API body (zero or one), or the button press
    of an interactivity request. `names`: display names by user id, looked up by the
    adapter (users.info) for users the body does not name."""
    pressed = interaction(body)
    if pressed is not None:
        if pressed.type != "block_actions" or not pressed.actions or not pressed.user.id:
            return []
        if settings.team_id and pressed.team.id and pressed.team.id != settings.team_id:
            return []
        return [ButtonPress(value=pressed.actions[0].value, sender_id=pressed.user.id)]
    event = _message_event(body, settings)
    if event is None:
        return []
    try:
        found = normalize_message(account, event, settings, names)
    except (InvalidOperation, ValueError, OverflowError):
        return []  # a ts that is not a number
    return [] if found is None else [found]
