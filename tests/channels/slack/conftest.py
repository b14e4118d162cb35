"""A fake Slack Web API on loopback and a slack account pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from helpdesk.channels.accounts import ChannelAccountCreate, create_account
from helpdesk.channels.slack.adapter import forget_cached_names
from tests.channels.replies import run_worker
from tests.channels.slack import payloads
from tests.channels.slack.fake_slack_api import FakeSlackApi

TOKEN = "xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy"
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
ACCOUNT = "workspace"
WEBHOOK = f"/channels/slack/{ACCOUNT}/webhook"
ROOT_TS = "1355517523.000005"


@pytest.fixture(autouse=True)
def forget_names() -> None:
    """users.info answers are cached per process by account id, which tests reuse."""
    forget_cached_names()


@pytest.fixture
async def slack_api() -> AsyncIterator[FakeSlackApi]:
    server = FakeSlackApi(TOKEN)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def add_account(
    db: asyncpg.Connection, base_url: str, secrets: dict[str, str] | None = None
) -> None:
    settings: dict[str, Any] = {
        "base_url": base_url,
        "team_id": payloads.TEAM_ID,
        "bot_user_id": payloads.BOT_USER_ID,
        "support_channels": [payloads.SUPPORT_CHANNEL],
    }
    await create_account(
        db,
        ChannelAccountCreate(
            kind="slack",
            name=ACCOUNT,
            settings=settings,
            secrets=(
                {"bot_token": TOKEN, "signing_secret": SIGNING_SECRET}
                if secrets is None
                else secrets
            ),
        ),
    )


@pytest.fixture
async def slack_account(db: asyncpg.Connection, slack_api: FakeSlackApi) -> str:
    await add_account(db, slack_api.base_url)
    return ACCOUNT


async def deliver(
    client: httpx.AsyncClient,
    body: dict[str, Any] | bytes,
    headers: dict[str, str] | None = None,
    extra: dict[str, str] | None = None,
) -> httpx.Response:
    """POST an Events API body as Slack does: signed with SIGNING_SECRET now, unless
    `headers` are given; `extra` headers (retries) go on top."""
    raw = body if isinstance(body, bytes) else payloads.encode(body)
    sent = payloads.signed_headers(SIGNING_SECRET, raw) if headers is None else headers
    return await client.post(WEBHOOK, content=raw, headers={**sent, **(extra or {})})


async def customer_ticket(client: httpx.AsyncClient, db: asyncpg.Connection, settings: Any) -> int:
    """The customer's top-level message at ROOT_TS, stored by the worker; its ticket id."""
    response = await deliver(client, payloads.message("Ev0001", ROOT_TS, "Kde je zásilka?"))
    assert response.status_code == 200, response.text
    await run_worker(settings)
    ticket_id: int = await db.fetchval("SELECT id FROM tickets")
    return ticket_id
