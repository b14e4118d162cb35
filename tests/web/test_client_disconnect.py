"""A client that disconnects before sending its whole body leaves no ERROR and no
traceback in the log, and the server keeps serving (issue 19). Login, webhooks and the
web chat take bodies without authentication, so anyone can do this."""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import urlsplit

import pytest

from tests.conftest import Client


async def send_half_a_body(client: Client, path: str, content_type: str) -> None:
    """Headers announcing 1,000 bytes, 10 bytes of body, then the connection closes."""
    url = urlsplit(str(client.base_url))
    _, writer = await asyncio.open_connection(url.hostname, url.port)
    writer.write(
        (
            f"POST {path} HTTP/1.1\r\nHost: {url.netloc}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: 1000\r\n\r\n"
        ).encode()
        + b'{"email": '
    )
    await writer.drain()
    writer.close()
    await writer.wait_closed()


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/auth/login", "application/json"),  # buffered by the input sanitizer
        ("/auth/login", "text/plain"),  # read by the framework itself
        ("/webchat/site/conversations", "application/json"),
    ],
)
async def test_a_client_gone_mid_body_is_no_error(
    client: Client, caplog: pytest.LogCaptureFixture, path: str, content_type: str
) -> None:
    caplog.set_level(logging.INFO)
    await send_half_a_body(client, path, content_type)
    # Wait (bounded) until the server has dealt with the request: it logs one line.
    for _ in range(500):
        if any("disconnect" in r.getMessage() for r in caplog.records) or any(
            r.levelno >= logging.ERROR for r in caplog.records
        ):
            break
        await asyncio.sleep(0.01)
    problems = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert problems == [], [r.getMessage() for r in problems]
    noted = [r for r in caplog.records if "disconnect" in r.getMessage()]
    assert len(noted) == 1 and noted[0].levelno <= logging.WARNING
    assert (await client.get("/healthz")).status_code == 200
    login = await client.post("/auth/login", json={"email": "a@example.test", "password": "x"})
    assert login.status_code == 401
