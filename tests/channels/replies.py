"""Agents' replies through the real API, and the real worker that delivers them.

Shared by every channel's end-to-end tests: post a reply, run one burst of the worker,
read the message as agents see it and its outbox row.
"""

from __future__ import annotations

import base64
from typing import Any

import asyncpg
from arq import Worker

from helpdesk.config import Settings
from tests.conftest import AgentHandle, Client
from workers.settings import build_worker


async def run_worker(settings: Settings, *, failed: int = 0) -> Worker:
    """One burst of the real worker: relay at start-up, then every queued job, then stop;
    `failed` jobs (none unless said) raised."""
    worker = build_worker(settings, handle_signals=False, burst=True)
    try:
        await worker.async_run()
    finally:
        await worker.close()
    assert worker.jobs_failed == failed
    return worker


async def reply(
    client: Client, agent: AgentHandle, ticket_id: int, text: str = "Thanks, on its way."
) -> dict[str, Any]:
    """A public reply posted by `agent` (201); the stored message as the API returns it."""
    response = await client.post(
        f"/tickets/{ticket_id}/replies", json={"text": text}, headers=agent.headers
    )
    assert response.status_code == 201, response.text
    message: dict[str, Any] = response.json()
    return message


def file_attachment(filename: str, content_type: str, content: bytes) -> dict[str, str]:
    """One attachment of a reply's JSON body (content base64-encoded)."""
    return {
        "filename": filename,
        "content_type": content_type,
        "content": base64.b64encode(content).decode(),
    }


async def message_view(
    client: Client, agent: AgentHandle, ticket_id: int, message_id: int
) -> dict[str, Any]:
    """The message as GET /tickets/{id} shows it to agents."""
    response = await client.get(f"/tickets/{ticket_id}", headers=agent.headers)
    assert response.status_code == 200, response.text
    found = [m for m in response.json()["messages"] if m["id"] == message_id]
    assert len(found) == 1
    message: dict[str, Any] = found[0]
    return message


async def outbox_row(db: asyncpg.Connection, message_id: int) -> asyncpg.Record:
    """The outbox row of a public reply (every public reply has one)."""
    row = await db.fetchrow("SELECT * FROM outbox WHERE message_id = $1", message_id)
    assert row is not None, "a public reply must have an outbox row"
    return row
