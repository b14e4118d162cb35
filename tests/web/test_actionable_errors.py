"""Errors a user can act on: which characters a name may have, where in a nested body
the bad field is, and one deliberate answer for unknown mailboxes (issue 19)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Client, Factory


async def test_a_bad_account_name_says_which_characters_are_allowed(
    client: Client, factory: Factory
) -> None:
    admin = await factory.agent("admin")
    response = await client.post(
        "/channels/email/accounts",
        json={"name": "Podpora CZ", "address": "podpora@example.test"},
        headers=admin.headers,
    )
    assert response.status_code == 400, response.text
    problem = response.json()
    assert problem["errors"] == [
        {
            "field": "name",
            "message": "Use 1 to 63 characters: lowercase letters a-z, digits, '-' and '_',"
            " starting with a letter or digit",
        }
    ]
    assert "[a-z" not in problem["detail"]  # no regex


async def test_a_bad_account_name_in_the_path_says_the_same(
    client: Client, factory: Factory
) -> None:
    admin = await factory.agent("admin")
    response = await client.get("/channels/email/accounts/Podpora", headers=admin.headers)
    assert response.status_code == 400, response.text
    assert "lowercase letters a-z" in response.json()["detail"]
    assert "[a-z" not in response.text


@pytest.mark.parametrize(
    ("order", "field"),
    [
        ({"external_id": "o-1", "placed_at": "2026-11-02T10:00:00+01:00"}, "orders[0].placed_at"),
        ({"external_id": "o-1", "ordered_at": "yesterday"}, "orders[0].ordered_at"),
        ({"external_id": "o-1"}, "orders[0].ordered_at"),
    ],
)
async def test_nested_validation_errors_give_the_path(
    client: Client, factory: Factory, order: dict[str, Any], field: str
) -> None:
    admin = await factory.agent("admin")
    response = await client.post(
        "/customers/upsert",
        json={"external_id": "shop-1", "orders": [order]},
        headers=admin.headers,
    )
    assert response.status_code == 400, response.text
    problem = response.json()
    assert [e["field"] for e in problem["errors"]] == [field]
    assert problem["detail"].startswith(f"{field}: ")


async def test_an_unknown_mailbox_answers_exactly_like_a_wrong_secret(
    client: Client, factory: Factory
) -> None:
    """On purpose (README, Raw intake): strangers must not learn which accounts exist."""
    admin = await factory.agent("admin")
    created = await client.post(
        "/channels/email/accounts",
        json={"name": "support", "address": "support@example.test", "inbound_secret": "s" * 32},
        headers=admin.headers,
    )
    assert created.status_code == 201, created.text
    mail = b"From: a@example.test\r\nSubject: x\r\n\r\nx\r\n"
    answers = []
    for account in ("support", "nosuchbox"):
        response = await client.post(
            f"/channels/email/{account}/inbound",
            content=mail,
            headers={"Authorization": "Bearer " + "w" * 32, "Content-Type": "message/rfc822"},
        )
        body = response.json()
        answers.append((response.status_code, body["type"], body["title"], body["detail"]))
    assert answers[0] == answers[1]
    assert answers[0][0] == 401
    assert answers[0][3] == "Unknown account or missing or wrong intake secret"
