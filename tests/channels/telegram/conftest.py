"""A fake Bot API on loopback and a telegram account pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from helpdesk.channels.accounts import ChannelAccountCreate, create_account
from tests.channels.replies import run_worker
from tests.channels.telegram import payloads
from tests.channels.telegram.fake_bot_api import FakeBotApi

TOKEN = "123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11"
SECRET = "s3cret_Token-1"
ACCOUNT = "shopbot"
WEBHOOK = f"/channels/telegram/{ACCOUNT}/webhook"


@pytest.fixture
async def bot_api() -> AsyncIterator[FakeBotApi]:
    server = FakeBotApi(TOKEN)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def add_account(
    db: asyncpg.Connection, base_url: str, secrets: dict[str, str] | None = None
) -> None:
    await create_account(
        db,
        ChannelAccountCreate(
            kind="telegram",
            name=ACCOUNT,
            settings={"base_url": base_url},
            secrets={"bot_token": TOKEN, "webhook_secret": SECRET} if secrets is None else secrets,
        ),
    )


@pytest.fixture
async def bot_account(db: asyncpg.Connection, bot_api: FakeBotApi) -> str:
    await add_account(db, bot_api.base_url)
    return ACCOUNT


async def deliver(
    client: httpx.AsyncClient, update: dict[str, Any] | bytes, secret: str | None = SECRET
) -> httpx.Response:
    """POST an update as Telegram does, with `secret` in its secret-token header (none
    when None)."""
    body = update if isinstance(update, bytes) else payloads.encode(update)
    headers = {"content-type": "application/json"}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    return await client.post(WEBHOOK, content=body, headers=headers)


async def customer_ticket(
    client: httpx.AsyncClient, db: asyncpg.Connection, settings: Any, text: str = "Kde je zásilka?"
) -> int:
    """The customer's message 1365 (update 10000), stored by the worker; its ticket id."""
    response = await deliver(client, payloads.message(10000, 1365, text))
    assert response.status_code == 200, response.text
    await run_worker(settings)
    ticket_id: int = await db.fetchval("SELECT id FROM tickets")
    return ticket_id
