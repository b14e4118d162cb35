"""Agents, groups and tokens. Functions take a connection and never commit on their own."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

import asyncpg
from redis.asyncio import Redis

from helpdesk.agents import queries, throttle
from helpdesk.agents.models import (
    AgentCreate,
    AgentOut,
    AgentUpdate,
    GroupCreate,
    GroupOut,
    Principal,
)
from helpdesk.agents.passwords import Passwords
from helpdesk.audit import service as audit
from helpdesk.config import AuthSettings
from helpdesk.db.signing_keys import signing_key
from helpdesk.errors import Conflict, InvalidInput, NotFound, Unauthenticated
from helpdesk.redis_outage import RedisOutage

TOKEN_PREFIX = "hd_"  # noqa: S105 - a public marker, not a secret


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _agent_out(row: asyncpg.Record) -> AgentOut:
    return AgentOut(
        id=row["id"],
        email=row["email"],
        name=row["name"],
        role=row["role"],
        active=row["active"],
        group_ids=list(row["group_ids"]),
        created_at=row["created_at"],
        availability=row["availability"],
    )


async def issue_token(
    conn: asyncpg.Connection, agent_id: int, ttl_hours: int
) -> tuple[str, datetime]:
    """Create a bearer token; only its hash is stored, the token itself is shown once."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    expires_at = datetime.now(UTC) + timedelta(hours=ttl_hours)
    await conn.execute(queries.INSERT_TOKEN, hash_token(token), agent_id, expires_at)
    return token, expires_at


async def revoke_all_tokens(conn: asyncpg.Connection, agent_id: int) -> int:
    result: str = await conn.execute(queries.DELETE_TOKENS_OF_AGENT, agent_id)
    return int(result.split()[-1])


async def revoke_token(conn: asyncpg.Connection, token_hash: bytes) -> None:
    await conn.execute(queries.DELETE_TOKEN, token_hash)


async def authenticate(conn: asyncpg.Connection | asyncpg.Pool, token: str) -> Principal | None:
    """The principal a bearer token stands for, or None if unknown, expired or deactivated."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    token_hash = hash_token(token)
    row = await conn.fetchrow(queries.TOKEN_PRINCIPAL, token_hash)
    if row is None:
        return None
    return Principal(
        agent_id=row["id"],
        role=row["role"],
        group_ids=tuple(row["group_ids"]),
        token_hash=token_hash,
    )


async def login(
    conn: asyncpg.Connection,
    redis: Redis,
    outage: RedisOutage,
    passwords: Passwords,
    settings: AuthSettings,
    email: str,
    password: str,
    ip: str | None,
    device_token: str = "",
) -> tuple[str, datetime, AgentOut, str]:
    """Check e-mail and password, then issue a token and the device token to keep.

    Failures are audited by the API's error handler (after the rollback), not here.

    Throttled per client address, and per account unless the request comes from a device
    the account logged in from before (`helpdesk.agents.throttle`): every counter is
    taken *before* the password is checked, atomically in Redis, so N concurrent guesses
    never get more verifications than the limits allow. While Redis is down, 503 with
    Retry-After at once: no password is checked unthrottled.
    """
    if ip:
        await throttle.take(
            redis,
            outage,
            throttle.address_key(ip),
            settings.login_max_failures_per_address,
            settings.login_window_seconds,
            "Too many failed logins from your address; try again later",
        )
    row = await conn.fetchrow(queries.LOGIN_CANDIDATE, email.strip())
    key = await signing_key(conn, throttle.KEY_NAME)
    device_id = throttle.Device(device_token).id_for(key, row["id"]) if row else None
    counter = throttle.device_key(device_id) if device_id else throttle.account_key(email)
    await throttle.take(
        redis,
        outage,
        counter,
        settings.login_max_failures,
        settings.login_window_seconds,
        "Too many failed logins; try again later",
    )
    if not await passwords.verify(row["password_hash"] if row else None, password):
        raise Unauthenticated("Wrong e-mail or password")
    assert row is not None
    await throttle.clear(redis, outage, counter)
    if ip:
        await throttle.give_back(redis, outage, throttle.address_key(ip))
    if passwords.needs_rehash(row["password_hash"]):
        await conn.execute(queries.SET_PASSWORD_HASH, row["id"], await passwords.hash(password))
    token, expires_at = await issue_token(conn, row["id"], settings.token_ttl_hours)
    await audit.record(
        conn,
        action="auth.login",
        outcome="allowed",
        object_type="agent",
        object_id=row["id"],
        actor_agent_id=row["id"],
        ip=ip,
        detail={"known_device": device_id is not None},
    )
    device = throttle.sign_device(
        key, row["id"], device_id or throttle.new_device_id(), throttle.device_expiry(settings)
    )
    return token, expires_at, await get_agent(conn, row["id"]), device


async def get_agent(conn: asyncpg.Connection, agent_id: int) -> AgentOut:
    row = await conn.fetchrow(queries.AGENT, agent_id)
    if row is None:
        raise NotFound(f"Agent {agent_id} not found")
    return _agent_out(row)


async def list_agents(conn: asyncpg.Connection, principal: Principal) -> list[AgentOut]:
    """Partners see only the agents of their own groups."""
    if principal.is_partner:
        rows = await conn.fetch(queries.AGENTS_IN_GROUPS, list(principal.group_ids))
    else:
        rows = await conn.fetch(queries.ALL_AGENTS)
    return [_agent_out(row) for row in rows]


async def _set_groups(conn: asyncpg.Connection, agent_id: int, group_ids: list[int]) -> None:
    unique = sorted(set(group_ids))
    found = await conn.fetchval(queries.COUNT_GROUPS, unique)
    if found != len(unique):
        raise InvalidInput("Unknown group id", field="group_ids")
    await conn.execute(queries.REMOVE_FROM_GROUPS, agent_id)
    await conn.execute(queries.ADD_TO_GROUPS, agent_id, unique)


async def create_agent(
    conn: asyncpg.Connection,
    passwords: Passwords,
    data: AgentCreate,
    actor: Principal | None = None,
) -> AgentOut:
    password_hash = await passwords.hash(data.password) if data.password else None
    try:
        agent_id = await conn.fetchval(
            queries.INSERT_AGENT,
            data.email.strip(),
            data.name,
            data.role,
            password_hash,
        )
    except asyncpg.UniqueViolationError:
        raise Conflict("An agent with this e-mail already exists") from None
    await _set_groups(conn, agent_id, data.group_ids)
    await audit.record(
        conn,
        action="agent.create",
        outcome="allowed",
        actor=actor,
        object_type="agent",
        object_id=agent_id,
        detail={"role": data.role, "group_ids": sorted(set(data.group_ids))},
    )
    return await get_agent(conn, agent_id)


async def update_agent(
    conn: asyncpg.Connection,
    passwords: Passwords,
    agent_id: int,
    data: AgentUpdate,
    actor: Principal,
) -> AgentOut:
    """Apply an admin change; role, group, activity or password changes revoke all tokens."""
    current = await get_agent(conn, agent_id)
    changed: dict[str, object] = {}
    if data.name is not None and data.name != current.name:
        changed["name"] = True
    if data.role is not None and data.role != current.role:
        changed["role"] = {"from": current.role, "to": data.role}
    if data.active is not None and data.active != current.active:
        changed["active"] = {"from": current.active, "to": data.active}
    if data.group_ids is not None and sorted(set(data.group_ids)) != current.group_ids:
        changed["group_ids"] = {"from": current.group_ids, "to": sorted(set(data.group_ids))}
        await _set_groups(conn, agent_id, data.group_ids)
    if data.password is not None:
        changed["password"] = True
        await conn.execute(queries.SET_PASSWORD_HASH, agent_id, await passwords.hash(data.password))
    await conn.execute(queries.UPDATE_AGENT, agent_id, data.name, data.role, data.active)
    if changed.keys() & {"role", "active", "group_ids", "password"}:
        await revoke_all_tokens(conn, agent_id)
    if changed:
        await audit.record(
            conn,
            action="agent.update",
            outcome="allowed",
            actor=actor,
            object_type="agent",
            object_id=agent_id,
            detail={"changed": changed},
        )
    return await get_agent(conn, agent_id)


async def change_own_password(
    conn: asyncpg.Connection,
    redis: Redis,
    outage: RedisOutage,
    passwords: Passwords,
    settings: AuthSettings,
    principal: Principal,
    current_password: str,
    new_password: str,
) -> tuple[str, datetime]:
    """Change the caller's password; every token of the agent is revoked, a new one issued.

    Wrong current passwords are throttled per agent like logins (`login_max_failures`
    in `login_window_seconds`), so a stolen token cannot guess the password; 503 while
    Redis is down."""
    await throttle.take(
        redis,
        outage,
        throttle.password_change_key(principal.agent_id),
        settings.login_max_failures,
        settings.login_window_seconds,
        "Too many wrong current passwords; try again later",
    )
    password_hash = await conn.fetchval(queries.PASSWORD_HASH, principal.agent_id)
    if not await passwords.verify(password_hash, current_password):
        raise Unauthenticated("Current password is wrong")
    await conn.execute(
        queries.CHANGE_OWN_PASSWORD_HASH, principal.agent_id, await passwords.hash(new_password)
    )
    await revoke_all_tokens(conn, principal.agent_id)
    await throttle.clear(redis, outage, throttle.password_change_key(principal.agent_id))
    await audit.record(
        conn,
        action="agent.password_change",
        outcome="allowed",
        actor=principal,
        object_type="agent",
        object_id=principal.agent_id,
    )
    return await issue_token(conn, principal.agent_id, settings.token_ttl_hours)


def _group_out(row: asyncpg.Record) -> GroupOut:
    return GroupOut(
        id=row["id"],
        name=row["name"],
        description=row["description"],
        created_at=row["created_at"],
    )


async def list_groups(conn: asyncpg.Connection, principal: Principal) -> list[GroupOut]:
    if principal.is_partner:
        rows = await conn.fetch(queries.GROUPS, list(principal.group_ids))
    else:
        rows = await conn.fetch(queries.ALL_GROUPS)
    return [_group_out(row) for row in rows]


async def create_group(
    conn: asyncpg.Connection, data: GroupCreate, actor: Principal | None = None
) -> GroupOut:
    try:
        row = await conn.fetchrow(queries.INSERT_GROUP, data.name, data.description)
    except asyncpg.UniqueViolationError:
        raise Conflict("A group with this name already exists") from None
    await audit.record(
        conn,
        action="group.create",
        outcome="allowed",
        actor=actor,
        object_type="group",
        object_id=row["id"],
    )
    return _group_out(row)
