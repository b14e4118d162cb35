"""Meta media that cannot be fetched no longer loses the message (the shared mechanism of
helpdesk.channels.ingest, through the Meta adapter's download)."""

from __future__ import annotations

import asyncpg

from helpdesk.channels.jobs import retry_attachment_fetches
from helpdesk.config import Settings
from tests.channels.meta import payloads
from tests.channels.meta.conftest import deliver
from tests.channels.meta.fake_graph_api import FakeGraphApi
from tests.channels.replies import run_worker
from tests.conftest import Client, job_context


async def test_an_expired_media_url_keeps_the_message_and_says_why(
    client: Client,
    db: asyncpg.Connection,
    settings: Settings,
    graph_api: FakeGraphApi,
    meta_accounts: str,
) -> None:
    url = "https://scontent.xx.fbcdn.net/v/t1.15752-9/expired_photo.jpg?_nc_cat=1&oh=old"
    body = payloads.messenger_image("m_EXPIRED", url)  # the fake CDN has no such file: 404
    assert (await deliver(client, "messenger", body)).status_code == 200
    await run_worker(settings)

    assert await db.fetchval("SELECT status FROM inbound_events") == "processed"
    assert await db.fetchval("SELECT count(*) FROM messages") == 1
    row = await db.fetchrow("SELECT * FROM attachments")
    assert (row["state"], row["filename"], row["content"]) == ("failed", "expired_photo.jpg", None)
    assert row["fetch_error"] == (
        "Messenger file download failed: HTTP 404 (the link expired or the file was withdrawn)"
    )
    async with job_context(settings) as ctx:
        assert await retry_attachment_fetches(ctx) == 0  # an expired URL is not retried


async def test_whatsapp_media_the_cdn_cannot_serve_yet_is_retried_by_media_id(
    client: Client,
    db: asyncpg.Connection,
    settings: Settings,
    graph_api: FakeGraphApi,
    meta_accounts: str,
) -> None:
    picture = bytes(range(256)) * 16
    graph_api.add_media("1234567890", picture, "image/jpeg")
    graph_api.fail("1234567890", 500, 1, "An unexpected error has occurred.")  # Meta's outage
    body = payloads.whatsapp_image("wamid.LATE", "1234567890", "Faktura")
    assert (await deliver(client, "whatsapp", body)).status_code == 200
    await run_worker(settings)
    row = await db.fetchrow("SELECT * FROM attachments")
    assert (row["state"], row["fetch_attempts"]) == ("pending", 1)
    assert await db.fetchval("SELECT body_text FROM messages") == "Faktura"

    await db.execute("UPDATE attachments SET next_fetch_at = now()")
    async with job_context(settings) as ctx:
        assert await retry_attachment_fetches(ctx) == 1
    row = await db.fetchrow("SELECT * FROM attachments")
    assert (row["state"], bytes(row["content"])) == ("stored", picture)
