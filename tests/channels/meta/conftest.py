"""A fake Graph API on loopback and Messenger, Instagram and WhatsApp accounts on it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from helpdesk.channels.accounts import ChannelAccountCreate, create_account
from tests.channels.meta import payloads
from tests.channels.meta.fake_graph_api import FakeGraphApi

TOKEN = "EAAGm0PX4ZCpsBAKUm7zZCZBp3Gq9oZBvZAtoken"
APP_SECRET = "5f3c1e0d9a8b7c6d5e4f3a2b1c0d9e8f"
VERIFY_TOKEN = "verify-me-please"
ACCOUNT = "shop"


@pytest.fixture
async def graph_api() -> AsyncIterator[FakeGraphApi]:
    server = FakeGraphApi(TOKEN)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def webhook(kind: str) -> str:
    """The webhook path of the `kind` account named ACCOUNT."""
    return f"/channels/{kind}/{ACCOUNT}/webhook"


async def deliver(
    client: httpx.AsyncClient,
    kind: str,
    body: dict[str, Any] | bytes,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """POST a webhook body as Meta does: signed with APP_SECRET over the exact bytes,
    unless `headers` are given."""
    raw = body if isinstance(body, bytes) else payloads.encode(body)
    sent = payloads.signed_headers(APP_SECRET, raw) if headers is None else headers
    return await client.post(webhook(kind), content=raw, headers=sent)


@pytest.fixture
async def meta_accounts(db: asyncpg.Connection, graph_api: FakeGraphApi) -> str:
    """One account of each Meta kind, all named ACCOUNT."""
    await add_accounts(db, graph_api.base_url)
    return ACCOUNT


async def add_accounts(db: asyncpg.Connection, base_url: str) -> None:
    """One account of each Meta kind (Messenger, Instagram, WhatsApp), all named ACCOUNT,
    on the fake Graph API at `base_url`."""
    secrets = {"app_secret": APP_SECRET, "verify_token": VERIFY_TOKEN}
    await create_account(
        db,
        ChannelAccountCreate(
            kind="messenger",
            name=ACCOUNT,
            settings={"base_url": base_url, "page_id": payloads.PAGE_ID},
            secrets={**secrets, "page_access_token": TOKEN},
        ),
    )
    await create_account(
        db,
        ChannelAccountCreate(
            kind="instagram",
            name=ACCOUNT,
            settings={
                "base_url": base_url,
                "page_id": payloads.PAGE_ID,
                "instagram_account_id": payloads.INSTAGRAM_ID,
            },
            secrets={**secrets, "page_access_token": TOKEN},
        ),
    )
    await create_account(
        db,
        ChannelAccountCreate(
            kind="whatsapp",
            name=ACCOUNT,
            settings={
                "base_url": base_url,
                "phone_number_id": payloads.PHONE_NUMBER_ID,
                "business_account_id": payloads.WABA_ID,
            },
            secrets={**secrets, "access_token": TOKEN},
        ),
    )
