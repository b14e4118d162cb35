"""Operating the service: health, readiness, metrics, request ids and what the logs hold."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from litestar.testing import AsyncTestClient
from msgspec import structs
from prometheus_client.parser import text_string_to_metric_families

from helpdesk.agents.passwords import Passwords
from helpdesk.app import create_app
from helpdesk.config import Settings
from helpdesk.observability import JsonFormatter
from tests.conftest import TEST_PASSWORD, Client, Factory


def metric_samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Parse Prometheus text (fails on a malformed exposition) into samples by name."""
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return samples


async def test_healthz_answers_ok(client: Client) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_reports_postgres_and_redis_ok(client: Client) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "status": "ok",
        "checks": {"postgres": "ok", "redis": "ok"},
        "mailboxes": [],  # no IMAP account configured
    }


async def test_readyz_lists_imap_mailboxes_without_failing_on_them(
    client: Client, db: asyncpg.Connection
) -> None:
    """A failing mailbox is reported, but the API stays ready (it still takes HTTP mail)."""
    for name, host in (("sales", "imap.example.test"), ("support", "imap.example.test")):
        await db.execute(
            """INSERT INTO email_accounts (name, address, imap_host, imap_password)
               VALUES ($1, $2, $3, 'imap-secret-4471')""",
            name,
            f"{name}@shop.example",
            host,
        )
    await db.execute(
        "INSERT INTO email_accounts (name, address, imap_host, active)"
        " VALUES ('old', 'old@shop.example', 'imap.example.test', false)"
    )
    await db.execute(
        """INSERT INTO imap_cursors (account_id, folder, status, last_error, failures)
           SELECT id, 'INBOX', 'failing', 'connection refused (connect)', 3
           FROM email_accounts WHERE name = 'support'"""
    )

    response = await client.get("/readyz")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ok"
    assert body["mailboxes"] == [
        {
            "account": "sales",
            "folder": "INBOX",
            "status": "starting",  # no poller has reached it yet
            "last_error": None,
            "failures": 0,
            "last_ok_at": None,
        },
        {
            "account": "support",
            "folder": "INBOX",
            "status": "failing",
            "last_error": "connection refused (connect)",
            "failures": 3,
            "last_ok_at": None,
        },
    ]
    assert "imap-secret-4471" not in response.text
    assert "imap.example.test" not in response.text


async def test_readyz_is_503_with_details_when_redis_is_unreachable(
    db: asyncpg.Connection,
    settings: Settings,
    passwords: Passwords,
    tmp_path: Path,
    factory: Factory,
) -> None:
    missing_socket = tmp_path / "no-redis-here.sock"
    assert not missing_socket.exists()
    app = create_app(structs.replace(settings, redis_url=f"unix://{missing_socket}"), passwords)
    agent = await factory.agent("agent")

    # The API must start without Redis (it is only the job queue) and say it is not ready.
    async with AsyncTestClient(app=app, raise_server_exceptions=False) as no_redis:
        response = await no_redis.get("/readyz")
        assert response.status_code == 503, response.text
        body = response.json()
        assert body["status"] == "unavailable"
        assert body["checks"]["postgres"] == "ok"
        assert body["checks"]["redis"].startswith("unavailable")
        assert str(missing_socket) not in response.text  # no infrastructure details leak

        assert (await no_redis.get("/healthz")).status_code == 200
        tickets = await no_redis.get("/tickets", headers=agent.headers)
        assert tickets.status_code == 200, tickets.text


async def test_metrics_count_requests_by_route_template_and_show_queue_depth(
    client: Client, factory: Factory
) -> None:
    agent = await factory.agent("agent")
    ticket = await factory.ticket(client, agent)
    assert (await client.get("/healthz")).status_code == 200
    missing = await client.get("/tickets/987654321", headers=agent.headers)
    assert missing.status_code == 404
    reply = await client.post(
        f"/tickets/{ticket['id']}/replies", json={"text": "On its way."}, headers=agent.headers
    )
    assert reply.status_code == 201, reply.text  # its delivery job now waits in the queue

    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = metric_samples(response.text)

    requests = {
        (labels["method"], labels["route"], labels["status"]): value
        for labels, value in samples["helpdesk_http_requests_total"]
    }
    assert requests[("GET", "/healthz", "200")] == 1
    assert requests[("POST", "/tickets", "201")] == 1
    # Routes are labelled by template, never by the concrete id (bounded cardinality).
    assert not any("987654321" in route for _, route, _ in requests)
    assert any(
        method == "GET" and status == "404" and "{" in route for method, route, status in requests
    ), requests
    # The reply's delivery job and the new ticket's routing job.
    assert [value for _, value in samples["helpdesk_queue_depth"]] == [2]


def assert_request_ids(responses: list[httpx.Response]) -> None:
    """Each response has its own request id; a problem body names the same id."""
    seen = set()
    for response in responses:
        where = f"{response.request.method} {response.request.url.path} ({response.status_code})"
        request_id = response.headers.get("x-request-id")
        assert request_id, f"{where} has no X-Request-ID"
        seen.add(request_id)
        if response.headers.get("content-type", "").startswith("application/problem+json"):
            assert response.json().get("request_id") == request_id, where
    assert len(seen) == len(responses)


async def test_every_handled_response_carries_its_own_request_id(
    client: Client, factory: Factory
) -> None:
    agent = await factory.agent("agent")
    assert_request_ids(
        [
            await client.get("/healthz"),
            await client.get("/readyz"),
            await client.get("/metrics"),
            await client.get("/tickets", headers=agent.headers),
            await client.get("/tickets/424242", headers=agent.headers),  # 404 problem
            await client.post("/tickets", json={"subject": ""}, headers=agent.headers),  # 400
        ]
    )


async def test_a_sane_incoming_request_id_is_echoed_and_an_insane_one_replaced(
    client: Client,
) -> None:
    echoed = await client.get("/healthz", headers={"X-Request-ID": "lb-7f3a.2_x"})
    assert echoed.headers["x-request-id"] == "lb-7f3a.2_x"

    for insane in ("has spaces in it", "x" * 65, "<script>", "a;b=c"):
        response = await client.get("/healthz", headers={"X-Request-ID": insane})
        generated = response.headers["x-request-id"]
        assert generated and generated != insane


async def test_requests_refused_by_authentication_carry_the_request_id(client: Client) -> None:
    # The 401 is raised by the bearer-token middleware, before any handler runs.
    assert_request_ids(
        [
            await client.get("/tickets"),
            await client.get("/tickets", headers={"Authorization": "Bearer hd_nope"}),
        ]
    )
    echoed = await client.get("/tickets", headers={"X-Request-ID": "lb-7f3a.3_x"})
    assert echoed.status_code == 401
    assert echoed.headers.get("x-request-id") == "lb-7f3a.3_x"
    assert echoed.json().get("request_id") == "lb-7f3a.3_x"


async def test_requests_no_route_matches_carry_a_request_id(client: Client) -> None:
    unknown_path = await client.get("/no/such/route")
    wrong_method = await client.delete("/healthz")
    assert unknown_path.status_code == 404
    assert wrong_method.status_code == 405
    assert_request_ids([unknown_path, wrong_method])


async def test_metrics_count_refused_requests_with_their_real_status(client: Client) -> None:
    assert (await client.get("/tickets")).status_code == 401
    samples = metric_samples((await client.get("/metrics")).text)
    statuses = {
        labels["status"]
        for labels, _ in samples["helpdesk_http_requests_total"]
        if labels["route"] == "/tickets"
    }
    assert statuses == {"401"}


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """Everything logged at INFO and above while the test runs, as the service writes it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(previous_level)


def log_entries(stream: io.StringIO) -> list[dict[str, Any]]:
    lines = [line for line in stream.getvalue().splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all(isinstance(entry, dict) for entry in entries)
    return entries


async def test_logs_are_json_with_request_ids_and_never_hold_secrets_or_bodies(
    client: Client, factory: Factory, json_log: io.StringIO
) -> None:
    agent = await factory.agent("admin")
    secret_text = "Moje heslo do e-shopu je Zebra-Kun-4471, prosím smažte účet"
    wrong_password = "definitely-not-the-password-9931"

    failed = await client.post(
        "/auth/login", json={"email": agent.email, "password": wrong_password}
    )
    assert failed.status_code == 401
    login = await client.post("/auth/login", json={"email": agent.email, "password": TEST_PASSWORD})
    assert login.status_code == 200, login.text
    token = login.json()["token"]
    headers = {"Authorization": f"Bearer {token}"}

    created = await client.post(
        "/tickets",
        json={
            "subject": "Account deletion",
            "text": secret_text,
            "customer": {"email": "zebra@example.test", "name": "Zebra"},
        },
        headers=headers,
    )
    assert created.status_code == 201, created.text
    ticket_id = created.json()["id"]
    reply = await client.post(
        f"/tickets/{ticket_id}/replies", json={"text": secret_text + " (reply)"}, headers=headers
    )
    assert reply.status_code == 201, reply.text
    invalid = await client.post(
        "/tickets", json={"subject": "", "text": secret_text, "customer": {}}, headers=headers
    )
    assert invalid.status_code == 400
    bad_token = await client.get("/tickets", headers={"Authorization": f"Bearer {token}x"})
    assert bad_token.status_code == 401

    entries = log_entries(json_log)
    access = [
        e
        for e in entries
        if e.get("logger") == "helpdesk.access"
        and e.get("route") == "/auth/login"
        and e.get("status") == 200
    ]
    assert len(access) == 1, entries
    line = access[0]
    assert line["request_id"] == login.headers["x-request-id"]
    assert line["method"] == "POST"
    assert line["level"] == "INFO"
    assert all("request_id" in e for e in entries if e.get("logger") == "helpdesk.access")

    output = json_log.getvalue()
    for secret in (
        TEST_PASSWORD,
        wrong_password,
        token,
        agent.token,
        "Zebra-Kun-4471",
        json.dumps(secret_text)[1:-1],
    ):
        assert secret not in output, f"{secret!r} leaked into the logs"
