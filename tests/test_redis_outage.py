"""Requests during a Redis outage: web chat and the CSAT page fail open, login and
password change fail closed (503 + Retry-After), and none of them waits for Redis again
once it failed (`helpdesk.redis_outage`).

Against a redis-server of the test's own (paused with SIGSTOP: connections accepted,
nothing answered; or killed), never the session's Redis.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest
from litestar import Litestar
from msgspec import structs

from helpdesk.agents.passwords import Passwords
from helpdesk.app import create_app
from helpdesk.channels.accounts import ChannelAccountCreate, create_account
from helpdesk.config import Settings
from helpdesk.observability import Metrics
from helpdesk.redis_outage import RedisDown, RedisOutage
from tests.channels.email.smtp_server import SmtpTestServer
from tests.channels.webchat.conftest import ACCOUNT, ORIGIN, start
from tests.conftest import TEST_PASSWORD, Client, Factory, serve
from tests.csat.surveys import survey_token
from tests.faults import KillableRedis

# Long enough that the test's requests all fall inside one skip window however slow
# the machine is (the production window is BACKOFF_SECONDS).
TEST_BACKOFF = 600.0


@asynccontextmanager
async def api(
    settings: Settings, passwords: Passwords, redis: KillableRedis, metrics: Metrics
) -> AsyncIterator[Client]:
    app: Litestar = create_app(structs.replace(settings, redis_url=redis.url), passwords, metrics)
    async with serve(app) as http:
        app.state.ctx.redis_outage = RedisOutage(metrics.redis_skipped, backoff=TEST_BACKOFF)
        yield http


def skipped(metrics: Metrics, use: str) -> float:
    value = metrics.registry.get_sample_value("helpdesk_redis_skipped_total", {"use": use})
    return value or 0.0


async def test_web_chat_fails_open_and_tries_a_frozen_redis_once(
    db: asyncpg.Connection,
    settings: Settings,
    passwords: Passwords,
    own_redis: KillableRedis,
) -> None:
    await create_account(
        db,
        ChannelAccountCreate(kind="webchat", name=ACCOUNT, settings={"allowed_origins": [ORIGIN]}),
    )
    metrics = Metrics()
    async with api(settings, passwords, own_redis, metrics) as http:
        visitor = await start(http, email="jana@example.cz")  # Redis up

        own_redis.pause()
        try:
            answers = [
                await visitor.say(f"Dotaz {n}", f"{n:08d}-0000-4000-8000-000000000000")
                for n in range(5)
            ]
            again = await visitor.say("Dotaz 0", "00000000-0000-4000-8000-000000000000")
            newcomer = await http.post(
                f"/webchat/{ACCOUNT}/conversations", json={}, headers={"Origin": ORIGIN}
            )
        finally:
            own_redis.resume()

    assert [a.status_code for a in answers] == [200] * 5, answers[0].text
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert newcomer.status_code == 201, newcomer.text
    texts = await db.fetch("SELECT body_text FROM messages WHERE direction = 'inbound' ORDER BY id")
    assert [r["body_text"] for r in texts] == [f"Dotaz {n}" for n in range(5)]  # once each
    # Two limits per message and one per new conversation: only the very first call
    # waited for the frozen Redis (and timed out); the other 12 did not try it.
    assert skipped(metrics, "rate_limit") == 2 * 6 + 1 - 1
    assert skipped(metrics, "webchat_email") == 1  # the first message's ticket


async def test_csat_page_fails_open_while_redis_is_down(
    db: asyncpg.Connection,
    settings: Settings,
    passwords: Passwords,
    own_redis: KillableRedis,
    smtp: SmtpTestServer,
) -> None:
    token = await survey_token(db, settings, smtp, "en")
    metrics = Metrics()
    async with api(settings, passwords, own_redis, metrics) as http:
        own_redis.kill()
        shown = await http.get(f"/csat/{token}")
        rated = await http.get(f"/csat/{token}", params={"rating": 4})

    assert shown.status_code == 200, shown.text
    assert rated.status_code == 200, rated.text
    assert await db.fetchval("SELECT rating FROM csat_surveys") == 4
    assert skipped(metrics, "rate_limit") == 1  # the second request did not try Redis


@pytest.mark.parametrize("fault", ["pause", "kill"])
async def test_login_and_password_change_fail_closed_with_503_while_redis_is_down(
    db: asyncpg.Connection,
    settings: Settings,
    passwords: Passwords,
    own_redis: KillableRedis,
    factory: Factory,
    fault: str,
) -> None:
    agent = await factory.agent("agent")
    metrics = Metrics()
    async with api(settings, passwords, own_redis, metrics) as http:
        before = await http.post(
            "/auth/login", json={"email": agent.email, "password": TEST_PASSWORD}
        )
        assert before.status_code == 200, before.text
        tokens = await db.fetchval("SELECT count(*) FROM agent_tokens")

        if fault == "pause":
            own_redis.pause()
        else:
            own_redis.kill()
        try:
            logins = [
                await http.post(
                    "/auth/login", json={"email": agent.email, "password": TEST_PASSWORD}
                )
                for _ in range(3)
            ]
            change = await http.post(
                "/auth/password",
                json={"current_password": TEST_PASSWORD, "new_password": "another long secret"},
                headers=agent.headers,
            )
            me = await http.get("/auth/me", headers=agent.headers)
        finally:
            if fault == "pause":
                own_redis.resume()

    for answer in [*logins, change]:
        assert answer.status_code == 503, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert int(answer.headers["retry-after"]) > 0
    assert me.status_code == 200  # tokens already issued are checked in PostgreSQL
    # No password was checked unthrottled: no token issued, the password unchanged.
    assert await db.fetchval("SELECT count(*) FROM agent_tokens") == tokens
    assert await passwords.verify(
        await db.fetchval("SELECT password_hash FROM agents WHERE id = $1", agent.id),
        TEST_PASSWORD,
    )
    # Only the first login tried Redis; the others and the change did not wait for it.
    assert skipped(metrics, "login_throttle") == 3


async def test_the_skip_window_starts_at_a_failure_and_ends_after_the_backoff() -> None:
    now = [100.0]
    outage = RedisOutage(backoff=5.0, clock=lambda: now[0])
    calls: list[str] = []

    async def fails() -> str:
        calls.append("tried")
        raise ConnectionError("refused")

    async def works() -> str:
        calls.append("tried")
        return "ok"

    assert await outage.call("use", works) == "ok"
    with pytest.raises(RedisDown) as failed:
        await outage.call("use", fails)
    assert failed.value.retry_after == 5
    now[0] = 103.5
    with pytest.raises(RedisDown) as skipped_:
        await outage.call("use", works)  # not tried
    assert skipped_.value.retry_after == 2
    assert calls == ["tried", "tried"]
    now[0] = 105.0
    assert await outage.call("use", works) == "ok"  # tried again
    assert calls == ["tried", "tried", "tried"]
