"""A fake Bot API on loopback and a telegram account pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from helpdesk.channels.accounts import ChannelAccountCreate, create_account
from tests.channels.telegram.fake_bot_api import FakeBotApi

TOKEN = "123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11"
SECRET = "s3cret_Token-1"
ACCOUNT = "shopbot"


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
