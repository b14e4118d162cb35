"""Bad input never costs a 500 or data (docs/reliability.md rows B3, B4)."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import pytest

from helpdesk.web.middleware import sanitize_json_body
from tests.conftest import Client, Factory


async def test_invalid_utf8_and_nul_are_stored_with_replacement(
    client: Client, factory: Factory, db: asyncpg.Connection
) -> None:
    """B3: the customer's words are kept; only the unstorable bytes become U+FFFD."""
    agent = await factory.agent("agent")
    raw = (
        b'{"subject": "Vr\xe1cen\xed zbo\xbe\xed", "text": "nul \\u0000 here and raw \x00 too",'
        b' "customer": {"name": "Ji\xf8\xed"}}'
    )
    response = await client.post(
        "/tickets",
        content=raw,
        headers={**agent.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 201, response.text
    row = await db.fetchrow(
        "SELECT t.subject, m.body_text FROM tickets t JOIN messages m ON m.ticket_id = t.id"
    )
    assert row["subject"] == "Vr\ufffdcen\ufffd zbo\ufffd\ufffd"
    assert row["body_text"] == "nul \ufffd here and raw \ufffd too"


def test_escaped_backslash_before_u0000_is_not_a_nul() -> None:
    body = json.dumps({"t": "path C:\\u0000dir"}).encode()
    assert json.loads(sanitize_json_body(body)) == {"t": "path C:\\u0000dir"}
    assert json.loads(sanitize_json_body(b'{"t": "a\\\\\\u0000"}')) == {"t": "a\\\ufffd"}


async def test_body_over_the_limit_is_413(client: Client, factory: Factory) -> None:
    """B4: more than 10 MB of JSON gets a 413 problem, not a 500 or a hang."""
    agent = await factory.agent("agent")
    big = b'{"subject": "s", "text": "' + b"x" * (10 * 1024 * 1024 + 10) + b'"}'
    response = await client.post(
        "/tickets", content=big, headers={**agent.headers, "Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert response.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"subject": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        b"{not json",
        b"",
        b"null",
        b'"a string"',
        b'{"subject": "s", "text": "t", "customer": {"name": "n"}, "subject": 1}',
    ],
    ids=["deep-array", "deep-field", "broken", "empty", "null", "string", "dup-key-wrong-type"],
)
async def test_malformed_json_is_a_400_problem(
    client: Client, factory: Factory, body: bytes, db: asyncpg.Connection
) -> None:
    agent = await factory.agent("agent")
    response = await client.post(
        "/tickets", content=body, headers={**agent.headers, "Content-Type": "application/json"}
    )
    assert response.status_code == 400, response.text
    problem = response.json()
    assert problem["status"] == 400 and problem["type"].startswith("urn:helpdesk:problem:")
    assert "Traceback" not in response.text
    assert await db.fetchval("SELECT count(*) FROM tickets") == 0


async def test_wrong_content_type_is_not_a_500(client: Client, factory: Factory) -> None:
    agent = await factory.agent("agent")
    response = await client.post(
        "/tickets", content=b"subject=x", headers={**agent.headers, "Content-Type": "text/plain"}
    )
    assert 400 <= response.status_code < 500


async def test_unknown_route_and_method_are_problems(client: Client, factory: Factory) -> None:
    agent = await factory.agent("agent")
    missing = await client.get("/nope", headers=agent.headers)
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    wrong = await client.delete("/tickets", headers=agent.headers)
    assert wrong.status_code == 405
    assert wrong.headers["content-type"].startswith("application/problem+json")


async def test_options_on_a_guarded_route_is_not_a_500(client: Client, factory: Factory) -> None:
    for path in ("/audit", "/agents", "/tickets"):
        response = await client.options(path)
        assert response.status_code < 500, (path, response.text)


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("GET", "/tickets/99999999999999999999999", None, "ticket_id"),
        ("GET", "/attachments/0", None, "attachment_id"),
        ("GET", "/tickets?group_id=99999999999999999999", None, "group_id"),
        ("GET", "/tickets?customer_id=-5", None, "customer_id"),
        ("POST", "/tickets/1/merge", {"into_ticket_id": 2**70}, "into_ticket_id"),
        (
            "POST",
            "/tickets",
            {"subject": "s", "text": "t", "customer": {"id": 2**64}},
            "customer.id",
        ),
    ],
)
async def test_ids_out_of_range_are_400_naming_the_field(
    client: Client, factory: Factory, method: str, path: str, body: Any, field: str
) -> None:
    agent = await factory.agent("agent")
    response = await client.request(method, path, json=body, headers=agent.headers)
    assert response.status_code == 400, response.text
    assert any(field in e["field"] for e in response.json()["errors"]), response.json()


async def test_nul_in_a_query_string_is_not_a_500(client: Client, factory: Factory) -> None:
    agent = await factory.agent("agent")
    await factory.ticket(client, agent)
    for path in ("/customers?q=a%00b", "/tickets?q=%00", "/tickets?tag=x%00"):
        response = await client.get(path, headers=agent.headers)
        assert response.status_code == 200, (path, response.text)
        assert response.json()["items"] == []
