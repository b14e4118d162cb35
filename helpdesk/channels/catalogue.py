"""Every channel kind the helpdesk knows, declared once, with what it can do.

One `Entry` per kind: its name and display name, its adapter (a dotted path, imported
lazily by `helpdesk.channels.registry`, so nothing here imports a provider SDK), the
settings and secrets its channel accounts take, and its capabilities (reply window,
satisfaction survey, acknowledgement, attachment limits, edits). Every other list of
channel names or capability set is derived from `CATALOGUE`: the adapter registry, the
accounts' allowed settings and secrets, the reply windows, routing's acknowledgement
channels and the survey channels. `tests/channels/test_catalogue.py` fails when a
module elsewhere spells out two or more channel kinds itself.

The `Literal`s below exist because msgspec and the OpenAPI document need static types;
the same test checks they name exactly the catalogue's kinds, in its order.

Adding a chat channel (say, Viber):
1. its package, `helpdesk/channels/viber/`, with an adapter implementing the contract in
   `helpdesk/channels/adapter.py`;
2. one `Entry` in `CATALOGUE` (and its name in `ChatKind` / `TicketChannel`, beside it).
Nothing else, not even a migration (the API checks an account's kind against this
catalogue): webhooks, accounts, the outbox, routing and surveys pick it up from here.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Literal

import msgspec

# Static types for models. Each must equal the catalogue's names (tested), in its order.
TicketChannel = Literal[
    "email", "telegram", "slack", "messenger", "instagram", "whatsapp", "webchat", "api", "phone"
]
ChatKind = Literal["telegram", "slack", "messenger", "instagram", "whatsapp", "webchat"]
TicketOrigin = Literal["api", "phone"]

Family = Literal["email", "chat", "ticket_origin"]
Acknowledgement = Literal["on_receipt", "when_routed", "never"]

_MB = 1024 * 1024


class ReplyWindow(msgspec.Struct, frozen=True, kw_only=True):
    """How long after the customer's last message a free-form reply may go out."""

    hours: int
    # With the account setting `human_agent_tag` (an app Meta approved for the HUMAN_AGENT
    # tag), a human agent may answer for this long instead; None: no such extension.
    human_agent_tag_hours: int | None = None
    # Past the window only an approved template message reaches the customer (WhatsApp),
    # rather than nothing at all.
    template_after: bool = False


# Meta's customer-service window: 24 hours, 7 days for a human agent with the tag.
META_WINDOW = ReplyWindow(hours=24, human_agent_tag_hours=7 * 24)


class Entry(msgspec.Struct, frozen=True, kw_only=True):
    """One channel kind: what it is called, what serves it, and what it can do."""

    name: str  # as stored in tickets.channel, messages.channel, channel_accounts.kind
    display_name: str  # as agents and customers read it ("WhatsApp")
    # `email`: mailboxes and SMTP (`helpdesk.channels.email`); `chat`: an adapter and
    # channel accounts, webhooks in, the outbox out; `ticket_origin`: how a ticket opened
    # through the API came about (no conversation to carry replies or questions).
    family: Family
    adapter: str | None = None  # "module:Class" of a chat adapter, imported lazily
    settings: frozenset[str] = frozenset()  # an account's settings (shown to admins)
    secrets: frozenset[str] = frozenset()  # an account's secrets (write-only)
    reply_window: ReplyWindow | None = None  # None: a reply may go out any time
    # When the customer gets the automatic acknowledgement of a new ticket: email on
    # receipt (by the mail intake), chats when the ticket is routed, the rest never.
    acknowledgement: Acknowledgement = "never"
    csat_askable: bool = False  # a satisfaction question can reach the customer here
    csat_buttons: bool = False  # ... with 1-5 buttons under it (else the link only)
    # The largest file the provider hands out for download (None: no limit of its own;
    # `attachment_max_bytes` applies to every channel besides).
    inbound_max_bytes: int | None = None
    # The largest file the provider takes in a reply, by the provider's file type
    # (empty: no limit of its own is checked before sending).
    outbound_max_bytes: Mapping[str, int] = msgspec.field(default_factory=dict)
    edits: bool = False  # the provider reports edits of a customer's message

    @property
    def chat(self) -> bool:
        return self.family == "chat"


_META_SECRETS = frozenset({"page_access_token", "app_secret", "verify_token"})

_ENTRIES = (
    Entry(
        name="email",
        display_name="Email",
        family="email",
        acknowledgement="on_receipt",
        csat_askable=True,
    ),
    Entry(
        name="telegram",
        display_name="Telegram",
        family="chat",
        adapter="helpdesk.channels.telegram.adapter:TelegramAdapter",
        settings=frozenset({"base_url", "bot_username"}),
        secrets=frozenset({"bot_token", "webhook_secret"}),
        acknowledgement="when_routed",
        csat_askable=True,
        csat_buttons=True,  # an inline keyboard
        inbound_max_bytes=20 * _MB,  # getFile serves at most 20 MB (Bot API docs)
        edits=True,
    ),
    Entry(
        name="slack",
        display_name="Slack",
        family="chat",
        adapter="helpdesk.channels.slack.adapter:SlackAdapter",
        settings=frozenset({"base_url", "team_id", "bot_user_id", "support_channels"}),
        secrets=frozenset({"bot_token", "signing_secret"}),
        acknowledgement="when_routed",
        csat_askable=True,
        csat_buttons=True,  # blocks
        edits=True,
    ),
    Entry(
        name="messenger",
        display_name="Messenger",
        family="chat",
        adapter="helpdesk.channels.meta.adapter:MessengerAdapter",
        settings=frozenset({"base_url", "page_id", "human_agent_tag"}),
        secrets=_META_SECRETS,
        reply_window=META_WINDOW,
        acknowledgement="when_routed",
        csat_askable=True,
        edits=True,
    ),
    Entry(
        name="instagram",
        display_name="Instagram",
        family="chat",
        adapter="helpdesk.channels.meta.adapter:InstagramAdapter",
        settings=frozenset({"base_url", "page_id", "instagram_account_id", "human_agent_tag"}),
        secrets=_META_SECRETS,
        reply_window=META_WINDOW,
        acknowledgement="when_routed",
        csat_askable=True,
        # Meta's "Upload Media for Instagram Messaging"; other file types it refuses.
        outbound_max_bytes={
            "image": 8 * _MB,
            "video": 25 * _MB,
            "audio": 25 * _MB,
            "file": 25 * _MB,
        },
        edits=True,
    ),
    Entry(
        name="whatsapp",
        display_name="WhatsApp",
        family="chat",
        adapter="helpdesk.channels.meta.adapter:WhatsAppAdapter",
        settings=frozenset({"base_url", "phone_number_id", "business_account_id"}),
        secrets=frozenset({"access_token", "app_secret", "verify_token"}),
        reply_window=ReplyWindow(hours=24, template_after=True),
        acknowledgement="when_routed",
        csat_askable=True,
        edits=True,
    ),
    Entry(
        name="webchat",
        display_name="Web chat",
        family="chat",
        adapter="helpdesk.channels.webchat.adapter:WebChatAdapter",
        settings=frozenset({"allowed_origins", "welcome_text"}),
        secrets=frozenset({"visitor_token_key"}),  # created on first use; set to rotate
        acknowledgement="when_routed",
        csat_askable=True,
    ),
    # Tickets opened through the API (read back through it) and logged phone calls.
    Entry(name="api", display_name="API", family="ticket_origin"),
    Entry(name="phone", display_name="Phone", family="ticket_origin"),
)

CATALOGUE: Mapping[str, Entry] = MappingProxyType({e.name: e for e in _ENTRIES})


def entry(kind: str) -> Entry:
    """The declaration of `kind`; KeyError for a kind the helpdesk does not know."""
    return CATALOGUE[kind]


def kinds(where: Callable[[Entry], bool] | None = None) -> tuple[str, ...]:
    """The kinds' names in catalogue order, or those of the entries `where` accepts."""
    return tuple(e.name for e in _ENTRIES if where is None or where(e))


def kinds_with(where: Callable[[Entry], bool]) -> frozenset[str]:
    """The kinds with a capability, as a set for `in` tests."""
    return frozenset(kinds(where))


def display_name(kind: str) -> str:
    """How agents read `kind` ("WhatsApp"); the name itself for a kind not declared."""
    found = CATALOGUE.get(kind)
    return kind if found is None else found.display_name


def inbound_max_bytes(kind: str) -> int:
    """The largest file the provider of `kind` hands out, in bytes (`sys.maxsize` when
    it sets no limit of its own)."""
    limit = entry(kind).inbound_max_bytes
    return sys.maxsize if limit is None else limit
