"""The channel catalogue is the one place channel kinds are declared: every list and
capability set elsewhere is derived from it, and nothing else spells them out."""

from __future__ import annotations

import ast
import importlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import get_args

import asyncpg
import msgspec

from helpdesk.channels import accounts, adapter, catalogue, registry, windows
from helpdesk.channels.catalogue import CATALOGUE, Entry, kinds, kinds_with
from helpdesk.channels.meta import adapter as meta_adapter
from helpdesk.channels.meta import graph as meta_graph
from helpdesk.channels.meta import items as meta_items
from helpdesk.channels.telegram import parse as telegram_parse
from helpdesk.csat import service as csat
from helpdesk.routing import service as routing
from helpdesk.tickets import models as ticket_models

ROOT = Path(__file__).resolve().parents[2]
MB = 1024 * 1024


def _chat(e: Entry) -> bool:
    return e.chat


# --- what the catalogue declares -------------------------------------------------------


def test_every_ticket_channel_is_declared_once_in_order() -> None:
    assert kinds() == (
        "email",
        "telegram",
        "slack",
        "messenger",
        "instagram",
        "whatsapp",
        "webchat",
        "api",
        "phone",
    )
    assert all(name == e.name for name, e in CATALOGUE.items())
    names = [e.display_name for e in CATALOGUE.values()]
    assert len(set(names)) == len(names)


def test_chat_kinds_are_exactly_those_with_an_adapter() -> None:
    for e in CATALOGUE.values():
        assert e.chat == (e.adapter is not None), e.name
        if not e.chat:  # no channel accounts, so nothing to configure
            assert not e.settings and not e.secrets, e.name
        assert not e.settings & e.secrets, e.name  # a value is either shown or never


def test_capabilities_are_consistent() -> None:
    for e in CATALOGUE.values():
        assert not e.csat_buttons or e.csat_askable, e.name  # buttons come with a question
        if e.family == "ticket_origin":  # nobody to write to
            assert not e.csat_askable and e.acknowledgement == "never", e.name
            assert e.reply_window is None, e.name
        if e.reply_window is not None:
            assert e.reply_window.hours > 0
            tagged = e.reply_window.human_agent_tag_hours
            assert tagged is None or tagged > e.reply_window.hours
            assert "human_agent_tag" in e.settings or tagged is None, e.name


def test_capabilities_are_the_ones_the_code_had() -> None:
    """The values the scattered sets held before the catalogue (behaviour unchanged)."""
    chats = {"telegram", "slack", "messenger", "instagram", "whatsapp", "webchat"}
    assert set(kinds(_chat)) == chats
    assert chats == routing.ACK_CHANNELS
    assert {"telegram", "slack"} == csat.BUTTON_CHANNELS
    assert chats | {"email"} == csat.ASKABLE
    assert {"messenger", "instagram", "whatsapp"} == windows.WINDOWED_CHANNELS
    assert telegram_parse.BOT_API_DOWNLOAD_LIMIT == 20 * MB
    assert dict(meta_adapter._INSTAGRAM_LIMITS) == {
        "image": 8 * MB,
        "video": 25 * MB,
        "audio": 25 * MB,
        "file": 25 * MB,
    }
    assert meta_items.APP_NAMES == {
        "messenger": "Messenger",
        "instagram": "Instagram",
        "whatsapp": "WhatsApp",
    }
    assert meta_graph._APP == meta_items.APP_NAMES
    assert kinds(lambda e: e.edits) == ("telegram", "slack", "messenger", "instagram", "whatsapp")


# --- every set and list elsewhere is the catalogue's ------------------------------------


def test_capability_sets_equal_the_catalogue() -> None:
    assert kinds_with(lambda e: e.acknowledgement == "when_routed") == routing.ACK_CHANNELS
    assert kinds_with(lambda e: e.csat_buttons) == csat.BUTTON_CHANNELS
    assert kinds_with(lambda e: e.csat_askable) == csat.ASKABLE
    assert kinds_with(lambda e: e.reply_window is not None) == windows.WINDOWED_CHANNELS
    assert dict(registry.ADAPTER_PATHS) == {
        e.name: e.adapter for e in CATALOGUE.values() if e.adapter is not None
    }
    assert tuple(registry.ADAPTER_PATHS) == kinds(_chat)
    assert dict(accounts.SETTINGS) == {e.name: e.settings for e in CATALOGUE.values() if e.chat}
    assert dict(accounts.SECRETS) == {e.name: e.secrets for e in CATALOGUE.values() if e.chat}
    assert CATALOGUE["telegram"].inbound_max_bytes == telegram_parse.BOT_API_DOWNLOAD_LIMIT


def test_reply_windows_follow_the_catalogue() -> None:
    now = datetime(2026, 1, 10, 12, tzinfo=UTC)
    for e in CATALOGUE.values():
        for tagged in (False, True):
            found = windows.window_for(e.name, human_agent_tag=tagged)
            if e.reply_window is None:
                assert found is None
                assert windows.reply_refusal(e.name, None, now, human_agent_tag=tagged) is None
                continue
            hours = e.reply_window.hours
            if tagged and e.reply_window.human_agent_tag_hours is not None:
                hours = e.reply_window.human_agent_tag_hours
            assert found == timedelta(hours=hours), (e.name, tagged)
            late = windows.reply_refusal(
                e.name, now - timedelta(hours=hours, minutes=1), now, human_agent_tag=tagged
            )
            assert late is not None and late.startswith(e.display_name)
            assert ("template" in late) == e.reply_window.template_after
            on_time = now - timedelta(hours=hours)
            assert windows.reply_refusal(e.name, on_time, now, human_agent_tag=tagged) is None


def test_literals_name_exactly_the_catalogue_kinds() -> None:
    assert get_args(catalogue.TicketChannel) == kinds()
    assert get_args(catalogue.ChatKind) == kinds(_chat)
    assert get_args(catalogue.TicketOrigin) == kinds(lambda e: e.family == "ticket_origin")
    assert get_args(ticket_models.Channel) == kinds()
    assert get_args(accounts.Kind) == kinds(_chat)
    assert get_args(adapter.ChannelKind) == kinds(_chat)
    in_meta = kinds(lambda e: (e.adapter or "").startswith("helpdesk.channels.meta."))
    assert get_args(meta_items.MetaKind) == in_meta
    assert set(meta_items.OBJECTS) == set(in_meta)


def test_models_offer_the_catalogue_kinds() -> None:
    """What the OpenAPI document says a client may send comes from the same Literals."""
    _, defs = msgspec.json.schema_components([ticket_models.TicketCreate])
    origin = defs["TicketCreate"]["properties"]["channel"]
    assert sorted(origin["enum"]) == sorted(kinds(lambda e: e.family == "ticket_origin"))
    _, defs = msgspec.json.schema_components([accounts.ChannelAccountCreate])
    kind = defs["ChannelAccountCreate"]["properties"]["kind"]
    assert sorted(kind["enum"]) == sorted(kinds(_chat))


def test_every_adapter_path_imports_its_kind() -> None:
    for e in CATALOGUE.values():
        if e.adapter is None:
            continue
        module_name, _, class_name = e.adapter.partition(":")
        cls = getattr(importlib.import_module(module_name), class_name)
        assert cls.kind == e.name
    assert registry.chat_kinds() == list(kinds(_chat))


def test_display_names() -> None:
    assert catalogue.display_name("whatsapp") == "WhatsApp"
    assert catalogue.display_name("unknown-kind") == "unknown-kind"
    assert catalogue.inbound_max_bytes("slack") > 1 << 40  # no limit of Slack's own


async def test_the_database_leaves_the_list_of_kinds_to_the_catalogue(
    db: asyncpg.Connection,
) -> None:
    """Adding a chat kind needs no migration: no CHECK on the account's kind repeats the
    catalogue (the API refuses a kind the catalogue does not declare, see
    test_channel_accounts_api)."""
    definitions = await db.fetch(
        """SELECT pg_get_constraintdef(c.oid) AS definition FROM pg_constraint c
           WHERE c.conrelid = 'channel_accounts'::regclass AND c.contype = 'c'"""
    )
    assert not [r for r in definitions if "kind" in r["definition"]]


# --- nothing outside the catalogue spells the kinds out --------------------------------

# (module, the assignment or function holding the collection) -> why it may.
ALLOWED: dict[tuple[str, str], str] = {
    ("helpdesk/channels/meta/items.py", "MetaKind"): (
        "the Meta package's own kinds (one parser serves three); tested against the catalogue"
    ),
    ("helpdesk/channels/meta/items.py", "OBJECTS"): (
        "Meta's webhook `object` per kind: the provider's payload vocabulary"
    ),
    ("helpdesk/channels/meta/graph.py", "_TEXT_LIMITS"): (
        "the Meta Send API's text length per kind, used by its own splitter"
    ),
    ("helpdesk/channels/outbox.py", "senders"): (
        "the two senders that are no chat adapter, each built its own way; the chat kinds "
        "come from the registry"
    ),
    ("helpdesk/customers/merge.py", "merge_customers"): (
        "customer fields 'email' and 'phone', not channels"
    ),
}


class _Collections(ast.NodeVisitor):
    """Literal collections (set, list, tuple, dict keys; `Literal[...]` is a tuple) of
    string constants naming two or more channel kinds, with the name holding them."""

    def __init__(self, names: frozenset[str]) -> None:
        self.names = names
        self.scope: list[str] = []
        self.found: list[tuple[int, str, list[str]]] = []

    def _named(self, node: ast.AST, name: str) -> None:
        self.scope.append(name)
        self.generic_visit(node)
        self.scope.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._named(node, node.name)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._named(node, node.name)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._named(node, node.name)

    def visit_Assign(self, node: ast.Assign) -> None:
        target = node.targets[0]
        self._named(node, target.id if isinstance(target, ast.Name) else "?")

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        target = node.target
        self._named(node, target.id if isinstance(target, ast.Name) else "?")

    def _check(self, node: ast.AST, elements: list[ast.expr | None]) -> None:
        hits = [
            e.value
            for e in elements
            if isinstance(e, ast.Constant) and isinstance(e.value, str) and e.value in self.names
        ]
        if len(hits) >= 2:
            self.found.append((getattr(node, "lineno", 0), ".".join(self.scope), hits))
        self.generic_visit(node)

    def visit_Set(self, node: ast.Set) -> None:
        self._check(node, list(node.elts))

    def visit_List(self, node: ast.List) -> None:
        self._check(node, list(node.elts))

    def visit_Tuple(self, node: ast.Tuple) -> None:
        self._check(node, list(node.elts))

    def visit_Dict(self, node: ast.Dict) -> None:
        self._check(node, list(node.keys))


def hard_coded_kind_collections(paths: list[Path]) -> list[str]:
    """Every collection of two or more kind names outside the catalogue and ALLOWED."""
    names = frozenset(CATALOGUE)
    found = []
    for path in paths:
        relative = path.relative_to(ROOT).as_posix()
        if relative == "helpdesk/channels/catalogue.py":
            continue
        visitor = _Collections(names)
        visitor.visit(ast.parse(path.read_text(), filename=relative))
        for line, scope, hits in visitor.found:
            outermost = scope.split(".")[0] if scope else ""
            if (relative, outermost) not in ALLOWED and (relative, scope) not in ALLOWED:
                found.append(f"{relative}:{line} ({scope or 'module'}): {hits}")
    return found


def _sources() -> list[Path]:
    return sorted(
        [*ROOT.joinpath("helpdesk").rglob("*.py"), *ROOT.joinpath("workers").rglob("*.py")]
    )


def test_no_module_outside_the_catalogue_lists_channel_kinds() -> None:
    found = hard_coded_kind_collections(_sources())
    assert not found, (
        "Channel kinds spelled out outside helpdesk/channels/catalogue.py; derive them "
        "from the catalogue (catalogue.kinds(...), an Entry's capability) instead:\n"
        + "\n".join(found)
    )


def test_every_allowance_is_still_needed() -> None:
    visitors = {}
    for path in _sources():
        visitor = _Collections(frozenset(CATALOGUE))
        visitor.visit(ast.parse(path.read_text()))
        visitors[path.relative_to(ROOT).as_posix()] = {
            scope.split(".")[0] for _, scope, _ in visitor.found
        }
    for module, scope in ALLOWED:
        assert scope in visitors.get(module, set()), f"{module}: {scope} no longer needs it"


def test_the_guard_catches_a_hard_coded_set() -> None:
    visitor = _Collections(frozenset(CATALOGUE))
    visitor.visit(
        ast.parse(
            "BUTTONS = frozenset({'telegram', 'slack'})\n"
            "def f(c):\n    return c in ('email', 'api')\n"
            "NAMES = {'messenger': 'Messenger', 'whatsapp': 'WhatsApp'}\n"
            "ONE = {'telegram'}\n"
        )
    )
    assert [(scope, hits) for _, scope, hits in visitor.found] == [
        ("BUTTONS", ["telegram", "slack"]),
        ("f", ["email", "api"]),
        ("NAMES", ["messenger", "whatsapp"]),
    ]
