"""A web chat account for a shop whose widget runs on https://shop.example."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx
import pytest

from helpdesk.channels.accounts import ChannelAccountCreate, create_account

ACCOUNT = "shop"
ORIGIN = "https://shop.example"


@pytest.fixture
async def chat(db: asyncpg.Connection) -> str:
    await create_account(
        db,
        ChannelAccountCreate(
            kind="webchat",
            name=ACCOUNT,
            settings={"allowed_origins": [ORIGIN], "welcome_text": "Hi! How can we help?"},
        ),
    )
    return ACCOUNT


class Visitor:
    """One browser tab with the widget: its token, its conversation."""

    def __init__(self, client: httpx.AsyncClient, token: str, conversation_id: str) -> None:
        self.client = client
        self.token = token
        self.conversation_id = conversation_id

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "Origin": ORIGIN}

    async def say(self, text: str, client_message_id: str) -> httpx.Response:
        return await self.client.post(
            f"/webchat/{ACCOUNT}/messages",
            json={"text": text, "client_message_id": client_message_id},
            headers=self.headers,
        )

    async def read(self, after: int = 0) -> list[dict[str, Any]]:
        response = await self.client.get(
            f"/webchat/{ACCOUNT}/messages", params={"after": after}, headers=self.headers
        )
        assert response.status_code == 200, response.text
        messages: list[dict[str, Any]] = response.json()["messages"]
        return messages


async def start(client: httpx.AsyncClient, **fields: str) -> Visitor:
    response = await client.post(
        f"/webchat/{ACCOUNT}/conversations", json=fields, headers={"Origin": ORIGIN}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    return Visitor(client, body["visitor_token"], body["conversation_id"])
