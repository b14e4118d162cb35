"""`GET /meta` lists the API's enumerations as the Python types that validate them hold
them, and the console reads them from there: it keeps no copy of its own."""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_args

import msgspec

from helpdesk.agents.models import Role
from helpdesk.channels.registry import chat_kinds
from helpdesk.customers.models import Stage
from helpdesk.routing.models import Availability
from helpdesk.tickets.events import TicketEvent
from helpdesk.tickets.models import (
    CallDirection,
    Category,
    Channel,
    MessageOut,
    Priority,
    Sort,
    Status,
)
from tests.conftest import Client, Factory

STATIC = Path(__file__).resolve().parents[2] / "helpdesk" / "console" / "static"


def _message_field(name: str) -> list[str]:
    (field,) = [f for f in msgspec.structs.fields(MessageOut) if f.name == name]
    return list(get_args(field.type))


def _enumerations() -> dict[str, list[str]]:
    """Each list of `GET /meta`, straight from the Literal it is derived from."""
    return {
        "ticket_statuses": list(get_args(Status)),
        "ticket_priorities": list(get_args(Priority)),
        "ticket_categories": list(get_args(Category)),
        "ticket_sorts": list(get_args(Sort)),
        "ticket_events": list(get_args(TicketEvent)),
        "message_kinds": _message_field("kind"),
        "message_directions": _message_field("direction"),
        "call_directions": list(get_args(CallDirection)),
        "channel_kinds": ["email", *chat_kinds(), "api", "phone"],
        "lifecycle_stages": list(get_args(Stage)),
        "agent_roles": list(get_args(Role)),
        "agent_availability": list(get_args(Availability)),
    }


async def test_meta_lists_each_enumeration_as_python_declares_it(
    client: Client, factory: Factory
) -> None:
    agent = await factory.agent()
    response = await client.get("/meta", headers=agent.headers)
    assert response.status_code == 200
    meta = response.json()
    expected = _enumerations()
    for name, values in expected.items():
        assert meta[name] == values, name
    assert set(meta) == {*expected, "csat_rating"}
    # The rating page takes whole ratings 1 to 5 (its own query parameter's bounds).
    assert meta["csat_rating"] == {"min": 1, "max": 5}
    # Every channel a ticket is listed with is one `tickets.channel` may hold.
    assert set(meta["channel_kinds"]) <= set(get_args(Channel))
    assert "email" in meta["channel_kinds"] and "phone" in meta["channel_kinds"]


async def test_meta_needs_a_token_and_serves_every_role(client: Client, factory: Factory) -> None:
    assert (await client.get("/meta")).status_code == 401
    partner = await factory.agent(role="partner")
    response = await client.get("/meta", headers=partner.headers)
    assert response.status_code == 200
    assert response.json()["ticket_statuses"] == list(get_args(Status))


_ARRAY = re.compile(r"\[([^\[\]]*)\]")
_STRING = re.compile(r"""["']([^"'\\]*)["']""")


def _string_arrays(source: str) -> list[list[str]]:
    """Array literals made only of string literals (with commas and spaces between)."""
    found = []
    for match in _ARRAY.finditer(source):
        inside = match.group(1)
        strings = _STRING.findall(inside)
        if len(strings) >= 2 and not _STRING.sub("", inside).replace(",", "").strip():
            found.append(strings)
    return found


def test_the_console_keeps_no_copy_of_an_enumeration() -> None:
    """A hard-coded list would go stale when Python gains a value: the console reads
    statuses, priorities, categories, ... from GET /meta. Naming a few values to filter by
    ("new" and "open" for the open queue) is a choice, not a copy; three values of one
    enumeration, or all of one, is a copy."""
    enumerations = {name: set(values) for name, values in _enumerations().items()}
    scripts = sorted(STATIC.glob("*.js"))
    assert {p.name for p in scripts} >= {"app.js", "api.js", "i18n.js", "queue.js", "ticket.js"}
    for script in scripts:
        for array in _string_arrays(script.read_text()):
            for name, values in enumerations.items():
                shared = values & set(array)
                assert len(shared) < 3 and shared != values, (script.name, name, array)
    page = (STATIC / "index.html").read_text()
    offered = set(re.findall(r'<option value="([^"]*)"', page))
    for name, values in enumerations.items():
        assert not offered & values, (name, offered & values)


def test_the_scan_finds_a_copied_list() -> None:
    copied = 'const status = select("status", ["new", "open", "pending", "on_hold"], x);'
    assert _string_arrays(copied) == [["new", "open", "pending", "on_hold"]]
    assert _string_arrays("const v = { status: ['low', 'normal'] };") == [["low", "normal"]]
    assert _string_arrays("[a, b].map((x) => x)") == []
