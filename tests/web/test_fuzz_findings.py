"""What the OpenAPI fuzzer found, each pinned by a test of its own (issue 19)."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from tests.conftest import Client, Factory


@pytest.mark.parametrize("content_type", ["text/plain", None, "application/x-anything"])
async def test_nul_in_a_json_body_under_any_content_type_is_stored_replaced(
    client: Client, factory: Factory, db: asyncpg.Connection, content_type: str | None
) -> None:
    """litestar decodes a JSON body whatever Content-Type says; the NUL must be made
    storable under every one of them, as it is under application/json."""
    agent = await factory.agent("agent")
    headers = dict(agent.headers)
    if content_type:
        headers["Content-Type"] = content_type
    raw = (
        b'{"subject": "Faktura", "text": "nul \\u0000 here",'
        b' "customer": {"email": "jana@example.test"}}'
    )
    response = await client.post("/tickets", content=raw, headers=headers)
    assert response.status_code == 201, response.text
    assert await db.fetchval("SELECT body_text FROM messages") == "nul \ufffd here"


@pytest.mark.parametrize("body", [b"not json", b"{", b"\x00"])
async def test_a_malformed_json_body_a_handler_reads_itself_is_a_400(
    client: Client, body: bytes
) -> None:
    response = await client.post(
        "/csat/not-a-token", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


async def _create(client: Client, headers: dict[str, str], path: str, body: Any) -> int:
    response = await client.post(path, json=body, headers=headers)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


@pytest.mark.parametrize(
    ("path", "first", "second", "field"),
    [
        (
            "/sla/policies",
            {"name": "Gold", "first_response_minutes": 60},
            {"name": "Silver", "first_response_minutes": 60},
            "name",
        ),
        (
            "/sla/calendars",
            {"name": "Prague", "spec": {"timezone": "Europe/Prague"}},
            {"name": "Bratislava", "spec": {"timezone": "Europe/Bratislava"}},
            "name",
        ),
        (
            "/routing/rules",
            {"name": "VIP", "group_id": "GROUP"},
            {"name": "Other", "group_id": "GROUP"},
            "name",
        ),
    ],
)
async def test_renaming_to_a_taken_name_is_a_409_naming_the_field(
    client: Client,
    factory: Factory,
    path: str,
    first: dict[str, Any],
    second: dict[str, Any],
    field: str,
) -> None:
    admin = await factory.agent("admin")
    group = await factory.group()
    first, second = (
        {k: group if v == "GROUP" else v for k, v in body.items()} for body in (first, second)
    )
    await _create(client, admin.headers, path, first)
    other = await _create(client, admin.headers, path, second)

    response = await client.patch(
        f"{path}/{other}", json={field: first[field]}, headers=admin.headers
    )

    assert response.status_code == 409, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["type"] == "urn:helpdesk:problem:conflict"
    assert problem["errors"] == [{"field": field, "message": "already taken"}]
    assert first[field] not in problem["detail"]  # the value is not echoed


@pytest.mark.parametrize(
    ("kind", "method", "suffix", "status"),
    [
        ("telegram", "GET", "webhook", 405),  # Telegram makes no handshake
        ("slack", "GET", "webhook", 405),
        ("webchat", "POST", "webhook", 404),  # web chat takes no webhooks
    ],
)
async def test_webhook_refusals_are_problem_json(
    client: Client, factory: Factory, kind: str, method: str, suffix: str, status: int
) -> None:
    """They were empty text/plain answers, which the document does not describe."""
    admin = await factory.agent("admin")
    created = await client.post(
        "/channels/accounts", json={"kind": kind, "name": "shop"}, headers=admin.headers
    )
    assert created.status_code == 201, created.text
    response = await client.request(method, f"/channels/{kind}/shop/{suffix}", content=b"{}")
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["status"] == status
