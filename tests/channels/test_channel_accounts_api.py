"""Chat/social channel accounts: admins only, secrets write-only, names checked per kind;
an unconfigured or inactive account's webhook is never open."""

from __future__ import annotations

import logging

import asyncpg
import pytest

from tests.conftest import Client, Factory

TOKEN = "123456:AAE-secret-bot-token-value"
WEBHOOK_SECRET = "webhook_secret-value-123"


async def test_admin_manages_accounts_and_never_sees_secrets(
    client: Client, factory: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    admin = await factory.agent("admin")
    body = {
        "kind": "telegram",
        "name": "eshop-bot",
        "settings": {"base_url": "https://api.telegram.org", "bot_username": "eshop_bot"},
        "secrets": {"bot_token": TOKEN, "webhook_secret": WEBHOOK_SECRET},
    }
    with caplog.at_level(logging.DEBUG):
        created = await client.post("/channels/accounts", json=body, headers=admin.headers)
        listed = await client.get("/channels/accounts", headers=admin.headers)
        read = await client.get("/channels/accounts/telegram/eshop-bot", headers=admin.headers)
        patched = await client.patch(
            "/channels/accounts/telegram/eshop-bot",
            json={"secrets": {"webhook_secret": None}, "settings": {"bot_username": "shop_bot"}},
            headers=admin.headers,
        )
        audit = await client.get("/audit", headers=admin.headers)
    assert created.status_code == 201, created.text
    assert created.json()["secrets_set"] == ["bot_token", "webhook_secret"]
    assert patched.json()["secrets_set"] == ["bot_token"]
    assert patched.json()["settings"]["bot_username"] == "shop_bot"
    for response in (created, listed, read, patched, audit):
        assert response.status_code == 200 or response is created
        assert TOKEN not in response.text and WEBHOOK_SECRET not in response.text
    assert TOKEN not in caplog.text and WEBHOOK_SECRET not in caplog.text

    again = await client.post("/channels/accounts", json=body, headers=admin.headers)
    assert again.status_code == 409


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"settings": {"webhook_url": "x"}}, "settings"),
        ({"secrets": {"signing_secret": "x"}}, "secrets"),
        ({"kind": "fax"}, "kind"),
        ({"name": "Bad Name"}, "name"),
        ({"secrets": {"bot_token": "a\r\nb"}}, "secrets"),
    ],
)
async def test_unknown_or_malformed_settings_are_refused(
    client: Client, factory: Factory, change: dict[str, object], field: str
) -> None:
    admin = await factory.agent("admin")
    body: dict[str, object] = {"kind": "telegram", "name": "bot"}
    body.update(change)
    response = await client.post("/channels/accounts", json=body, headers=admin.headers)
    assert response.status_code == 400, response.text
    assert field in response.text


async def test_only_admins_touch_channel_accounts(client: Client, factory: Factory) -> None:
    for role in ("agent", "supervisor", "partner"):
        other = await factory.agent(role)
        for response in (
            await client.get("/channels/accounts", headers=other.headers),
            await client.post(
                "/channels/accounts",
                json={"kind": "slack", "name": "ws"},
                headers=other.headers,
            ),
        ):
            assert response.status_code == 403, role


async def test_webhooks_of_unknown_or_inactive_accounts_are_closed(
    client: Client, factory: Factory, db: asyncpg.Connection
) -> None:
    admin = await factory.agent("admin")
    await client.post(
        "/channels/accounts",
        json={
            "kind": "telegram",
            "name": "off",
            "active": False,
            "secrets": {"webhook_secret": "s"},
        },
        headers=admin.headers,
    )
    secret = {"X-Telegram-Bot-Api-Secret-Token": "s"}
    unknown = await client.post("/channels/telegram/nobody/webhook", content=b"{}", headers=secret)
    inactive = await client.post("/channels/telegram/off/webhook", content=b"{}", headers=secret)
    assert unknown.status_code == inactive.status_code == 401
    assert unknown.json()["detail"] == inactive.json()["detail"]
    no_kind = await client.post("/channels/fax/x/webhook", content=b"{}")
    assert no_kind.status_code == 404
    assert await db.fetchval("SELECT count(*) FROM inbound_events") == 0
