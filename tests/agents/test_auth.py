"""Login, tokens, revocation, roles and the audit trail (docs/reliability.md rows A6, A7,
A8, A12)."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import httpx
import pytest
from argon2 import PasswordHasher

from helpdesk.agents.passwords import Passwords
from helpdesk.config import load_settings
from tests.conftest import TEST_PASSWORD, Client, Factory


async def login(client: Client, email: str, password: str = TEST_PASSWORD) -> Any:
    return await client.post("/auth/login", json={"email": email, "password": password})


async def test_login_returns_a_token_that_authenticates(client: Client, factory: Factory) -> None:
    agent = await factory.agent("agent")
    response = await login(client, agent.email.upper())
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token"].startswith("hd_")
    assert body["agent"]["email"] == agent.email
    assert "password" not in response.text and "hash" not in response.text
    me = await client.get("/auth/me", headers={"Authorization": f"Bearer {body['token']}"})
    assert me.status_code == 200
    assert me.json()["id"] == agent.id


async def test_tokens_are_stored_hashed(
    client: Client, factory: Factory, db: asyncpg.Connection
) -> None:
    agent = await factory.agent("agent")
    stored = await db.fetch("SELECT token_hash FROM agent_tokens WHERE agent_id = $1", agent.id)
    assert stored and all(agent.token.encode() not in bytes(r["token_hash"]) for r in stored)


@pytest.mark.parametrize(
    "header",
    ["", "Bearer", "Bearer hd_not-a-real-token", "Basic dXNlcjpwYXNz", "Bearer " + "x" * 5000],
)
async def test_requests_without_a_valid_token_get_401_problem(
    client: Client, factory: Factory, header: str
) -> None:
    response = await client.get("/tickets", headers={"Authorization": header} if header else {})
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"] == "urn:helpdesk:problem:unauthenticated"


async def test_wrong_password_and_unknown_email_look_the_same(
    client: Client, factory: Factory
) -> None:
    agent = await factory.agent("agent")
    wrong = await login(client, agent.email, "not the password")
    unknown = await login(client, "nobody@example.test", "not the password")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["detail"] == unknown.json()["detail"]


async def test_expired_token_is_rejected(
    client: Client, factory: Factory, db: asyncpg.Connection
) -> None:
    agent = await factory.agent("agent")
    await db.execute(
        "UPDATE agent_tokens SET expires_at = now() - interval '1 second' WHERE agent_id = $1",
        agent.id,
    )
    assert (await client.get("/auth/me", headers=agent.headers)).status_code == 401


async def test_logout_revokes_only_that_token(client: Client, factory: Factory) -> None:
    agent = await factory.agent("agent")
    other = (await login(client, agent.email)).json()["token"]
    assert (await client.post("/auth/logout", headers=agent.headers)).status_code == 204
    assert (await client.get("/auth/me", headers=agent.headers)).status_code == 401
    other_headers = {"Authorization": f"Bearer {other}"}
    assert (await client.get("/auth/me", headers=other_headers)).status_code == 200


async def test_logout_all_revokes_every_token(client: Client, factory: Factory) -> None:
    agent = await factory.agent("agent")
    other = (await login(client, agent.email)).json()["token"]
    assert (await client.post("/auth/logout-all", headers=agent.headers)).status_code == 204
    for token in (agent.token, other):
        me = await client.get("/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 401


async def test_old_token_dies_with_a_password_change(client: Client, factory: Factory) -> None:
    agent = await factory.agent("agent")
    response = await client.post(
        "/auth/password",
        json={"current_password": TEST_PASSWORD, "new_password": "a brand new passphrase"},
        headers=agent.headers,
    )
    assert response.status_code == 200, response.text
    assert (await client.get("/auth/me", headers=agent.headers)).status_code == 401
    fresh = {"Authorization": f"Bearer {response.json()['token']}"}
    assert (await client.get("/auth/me", headers=fresh)).status_code == 200
    assert (await login(client, agent.email)).status_code == 401
    assert (await login(client, agent.email, "a brand new passphrase")).status_code == 200


async def test_password_change_needs_the_current_password(client: Client, factory: Factory) -> None:
    agent = await factory.agent("agent")
    response = await client.post(
        "/auth/password",
        json={"current_password": "wrong", "new_password": "a brand new passphrase"},
        headers=agent.headers,
    )
    assert response.status_code == 401
    assert (await client.get("/auth/me", headers=agent.headers)).status_code == 200


@pytest.mark.parametrize(
    "change",
    [
        {"role": "supervisor"},
        {"active": False},
        {"password": "set by the admin 123"},
        "groups",
    ],
    ids=["role", "deactivation", "admin-password-reset", "groups"],
)
async def test_old_token_dies_with_an_admin_change(
    client: Client, factory: Factory, change: Any
) -> None:
    admin = await factory.agent("admin")
    group = await factory.group()
    agent = await factory.agent("agent")
    body = {"group_ids": [group]} if change == "groups" else change
    response = await client.patch(f"/agents/{agent.id}", json=body, headers=admin.headers)
    assert response.status_code == 200, response.text
    assert (await client.get("/auth/me", headers=agent.headers)).status_code == 401


async def test_deactivated_agent_cannot_log_in(client: Client, factory: Factory) -> None:
    admin = await factory.agent("admin")
    agent = await factory.agent("agent")
    await client.patch(f"/agents/{agent.id}", json={"active": False}, headers=admin.headers)
    assert (await login(client, agent.email)).status_code == 401


async def test_concurrent_bad_logins_hit_the_limit_exactly(
    client: Client, factory: Factory
) -> None:
    """A8: 50 concurrent guesses; only `login_max_failures` ever reach the password check."""
    agent = await factory.agent("agent")
    limit = load_settings({}).auth.login_max_failures
    responses = await asyncio.gather(*(login(client, agent.email, f"guess {i}") for i in range(50)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(401) == limit
    assert statuses.count(429) == 50 - limit
    limited = next(r for r in responses if r.status_code == 429)
    assert int(limited.headers["retry-after"]) > 0
    # Even the right password is refused until the window passes.
    assert (await login(client, agent.email)).status_code == 429


async def test_guesses_from_elsewhere_do_not_lock_out_the_agents_known_device(
    client: Client, factory: Factory
) -> None:
    """Issue 19: wrong passwords from unknown devices throttle those, not the agent's own
    browser (cookie) or client (header) that logged in before."""
    agent = await factory.agent("agent")
    other = await factory.agent("agent")
    limit = load_settings({}).auth.login_max_failures
    first = await login(client, agent.email)
    assert first.status_code == 200, first.text
    device = first.json()["device_token"]
    cookie = first.headers["set-cookie"]
    assert cookie.startswith(f"helpdesk_device={device};")
    assert "HttpOnly" in cookie and "samesite=strict" in cookie.lower() and "Path=/auth" in cookie
    other_device = (await login(client, other.email)).json()["device_token"]
    assert client.cookies["helpdesk_device"] == other_device
    async with httpx.AsyncClient(base_url=client.base_url) as attacker:
        guesses = [await login(attacker, agent.email, f"guess {i}") for i in range(limit + 3)]
        assert [r.status_code for r in guesses] == [401] * limit + [429] * 3
        assert int(guesses[-1].headers["retry-after"]) > 0
        assert guesses[-1].headers["content-type"].startswith("application/problem+json")
        # The right password from an unknown device waits, as do forged or foreign tokens.
        assert (await login(attacker, agent.email)).status_code == 429
        for token in (other_device, device[:-2] + "AA", "1.99999999999.x.y"):
            forged = await attacker.post(
                "/auth/login",
                json={"email": agent.email, "password": TEST_PASSWORD},
                headers={"X-Helpdesk-Device": token},
            )
            assert forged.status_code == 429, token
        by_header = await attacker.post(
            "/auth/login",
            json={"email": agent.email, "password": TEST_PASSWORD},
            headers={"X-Helpdesk-Device": device},
        )
        assert by_header.status_code == 200, by_header.text
        assert by_header.json()["device_token"].split(".")[2] == device.split(".")[2]
    client.cookies.set("helpdesk_device", device)
    assert (await login(client, agent.email)).status_code == 200


async def test_failures_over_many_emails_from_one_address_are_throttled(
    client: Client, factory: Factory
) -> None:
    """Issue 19: spraying guesses over many accounts from one address hits a limit too."""
    agent = await factory.agent("agent")
    limit = load_settings({}).auth.login_max_failures_per_address
    responses = await asyncio.gather(
        *(login(client, f"nobody{i}@example.test", "guess") for i in range(limit + 5))
    )
    statuses = [r.status_code for r in responses]
    assert statuses.count(401) == limit
    assert statuses.count(429) == 5
    limited = next(r for r in responses if r.status_code == 429)
    assert int(limited.headers["retry-after"]) > 0
    assert "address" in limited.json()["detail"]
    assert (await login(client, agent.email)).status_code == 429


async def test_successful_logins_do_not_use_up_the_address_limit(
    client: Client, factory: Factory
) -> None:
    agent = await factory.agent("agent")
    limit = load_settings({}).auth.login_max_failures_per_address
    for _ in range(limit + 2):
        assert (await login(client, agent.email)).status_code == 200


async def test_password_change_guesses_are_throttled(client: Client, factory: Factory) -> None:
    """Issue 19: a stolen token cannot guess the current password without limit."""
    agent = await factory.agent("agent")
    limit = load_settings({}).auth.login_max_failures

    async def change(current: str) -> Any:
        return await client.post(
            "/auth/password",
            json={"current_password": current, "new_password": "a brand new passphrase"},
            headers=agent.headers,
        )

    responses = await asyncio.gather(*(change(f"guess {i}") for i in range(limit + 10)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [401] * limit + [429] * 10
    limited = next(r for r in responses if r.status_code == 429)
    assert limited.headers["content-type"].startswith("application/problem+json")
    assert int(limited.headers["retry-after"]) > 0
    assert (await change(TEST_PASSWORD)).status_code == 429
    assert (await client.get("/auth/me", headers=agent.headers)).status_code == 200


@pytest.mark.parametrize("role", ["agent", "partner", "supervisor"])
async def test_non_admins_cannot_call_admin_endpoints(
    client: Client, factory: Factory, role: str
) -> None:
    """A6: agent and group management are admin-only; the answer is a 403 problem."""
    group = await factory.group()
    caller = await factory.agent(role, [group])  # type: ignore[arg-type]
    victim = await factory.agent("agent")
    attempts = [
        client.post(
            "/agents",
            json={
                "email": "x@example.test",
                "name": "X",
                "role": "admin",
                "password": "long enough pw",
            },
            headers=caller.headers,
        ),
        client.patch(f"/agents/{victim.id}", json={"role": "admin"}, headers=caller.headers),
        client.post("/groups", json={"name": "Mine"}, headers=caller.headers),
    ]
    for response in await asyncio.gather(*attempts):
        assert response.status_code == 403, response.text
        assert response.json()["type"] == "urn:helpdesk:problem:forbidden"
    me = await client.get("/auth/me", headers=victim.headers)
    assert me.json()["role"] == "agent"


async def test_admin_manages_agents_without_ever_seeing_secrets(
    client: Client, factory: Factory
) -> None:
    admin = await factory.agent("admin")
    group = await factory.group()
    created = await client.post(
        "/agents",
        json={
            "email": "new@example.test",
            "name": "New",
            "role": "partner",
            "password": "long enough pw",
            "group_ids": [group],
        },
        headers=admin.headers,
    )
    assert created.status_code == 201, created.text
    assert created.json()["group_ids"] == [group]
    listing = await client.get("/agents", headers=admin.headers)
    assert "long enough pw" not in listing.text and "argon2" not in listing.text
    duplicate = await client.post(
        "/agents",
        json={"email": "NEW@example.test", "name": "Dup", "role": "agent"},
        headers=admin.headers,
    )
    assert duplicate.status_code == 409


async def test_unknown_fields_in_agent_changes_are_rejected(
    client: Client, factory: Factory
) -> None:
    admin = await factory.agent("admin")
    agent = await factory.agent("agent")
    response = await client.patch(
        f"/agents/{agent.id}", json={"password_hash": "x"}, headers=admin.headers
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "password_hash"


async def test_denials_and_privileged_changes_are_audited(
    client: Client, factory: Factory, db: asyncpg.Connection
) -> None:
    """A12: the audit log gets both, and nothing can alter it afterwards."""
    admin = await factory.agent("admin")
    agent = await factory.agent("agent")
    await client.patch(f"/agents/{agent.id}", json={"role": "supervisor"}, headers=admin.headers)
    await client.post("/groups", json={"name": "Nope"}, headers=agent.headers)  # now 401
    partner = await factory.agent("partner", [await factory.group()])
    await client.post("/groups", json={"name": "Nope"}, headers=partner.headers)  # 403
    await login(client, agent.email, "wrong password")
    await asyncio.sleep(0.2)  # denials are written just after the response
    rows = await db.fetch("SELECT action, outcome, actor_agent_id, detail FROM audit_log")
    actions = {(r["action"], r["outcome"]) for r in rows}
    assert ("agent.update", "allowed") in actions
    assert ("POST /auth/login", "denied") in actions
    assert any(r["outcome"] == "denied" and r["actor_agent_id"] == partner.id for r in rows)
    assert any(r["outcome"] == "denied" and r["detail"].get("status") == 401 for r in rows)
    assert "wrong password" not in str(rows)
    audit = await client.get("/audit", headers=admin.headers)
    assert audit.status_code == 200 and len(audit.json()) == len(rows)
    assert (await client.get("/audit", headers=partner.headers)).status_code == 403
    with pytest.raises(asyncpg.RaiseError):
        await db.execute("UPDATE audit_log SET outcome = 'allowed'")
    with pytest.raises(asyncpg.RaiseError):
        await db.execute("DELETE FROM audit_log")


def test_production_password_hashing_meets_owasp() -> None:
    """The default profile is argon2id at or above OWASP's minimum (m=19 MiB, t=2, p=1)."""
    settings = load_settings({}).auth
    hasher: PasswordHasher = Passwords(settings).hasher
    encoded = hasher.hash("some password")
    assert encoded.startswith("$argon2id$")
    params = dict(part.split("=") for part in encoded.split("$")[3].split(","))
    assert int(params["m"]) >= 19 * 1024
    assert int(params["t"]) >= 2
    assert int(params["p"]) >= 1
    assert (int(params["m"]), int(params["t"]), int(params["p"])) == (65536, 3, 4)


async def test_groups_are_created_by_admins_and_partners_see_only_their_own(
    client: Client, factory: Factory
) -> None:
    admin = await factory.agent("admin")
    created = await client.post(
        "/groups", json={"name": "Reklamace", "description": "Complaints"}, headers=admin.headers
    )
    assert created.status_code == 201, created.text
    duplicate = await client.post("/groups", json={"name": "Reklamace"}, headers=admin.headers)
    assert duplicate.status_code == 409
    invalid = await client.post("/groups", json={"name": ""}, headers=admin.headers)
    assert invalid.status_code == 400 and invalid.json()["errors"][0]["field"] == "name"
    first_line = await factory.group("First line")
    partner = await factory.agent("partner", [first_line])
    colleague = await factory.agent("partner", [first_line])
    await factory.agent("agent", [created.json()["id"]])
    groups = (await client.get("/groups", headers=partner.headers)).json()
    assert [g["id"] for g in groups] == [first_line]
    agents = (await client.get("/agents", headers=partner.headers)).json()
    assert {a["id"] for a in agents} == {partner.id, colleague.id}
    everyone = (await client.get("/agents", headers=admin.headers)).json()
    assert len(everyone) == 4
