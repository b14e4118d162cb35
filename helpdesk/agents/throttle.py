"""Throttling of password guesses (login and password change), shared in Redis.

Three counters, each taken (incremented) *before* the password is checked, atomically,
so N concurrent guesses never get more checks than the limit:

- per client address: `login_max_failures_per_address` logins in the window, whatever
  the e-mails tried (spraying many accounts from one address);
- per account: `login_max_failures` logins in the window for one e-mail, from devices
  the account has not logged in from;
- per known device: a browser or client that logged in to the account before carries a
  signed device token (cookie `helpdesk_device`, or header `X-Helpdesk-Device`) and has
  its own `login_max_failures`. So an attacker who guesses an agent's password from
  elsewhere locks out only unknown devices: the agent's own browser still logs in.

A successful login clears its account or device counter and gives back its address
attempt. Password changes (`/auth/password`) have their own counter per agent.

While Redis is down the throttle fails closed: login and password change answer 503
with Retry-After at once (after the first failure the process does not wait for Redis
for a few seconds, `helpdesk.redis_outage`). Failing open would let anyone guess
passwords without limit for as long as the outage lasts; failing closed only stops new
sessions for that time, as bearer tokens already issued are checked in PostgreSQL.

The device token is `<agent id>.<expiry>.<device id>.<HMAC>` under a server-side key
(`signing_keys`); without the key it cannot be made, and it names one agent only.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis

from helpdesk.config import AuthSettings
from helpdesk.errors import ServiceUnavailable, TooManyRequests
from helpdesk.redis_outage import RedisDown, RedisOutage, fixed_window_hit

DEVICE_COOKIE = "helpdesk_device"
DEVICE_HEADER = "x-helpdesk-device"
KEY_NAME = "known-device"

_DEVICE = re.compile(
    r"^([1-9][0-9]{0,18})\.([0-9]{1,12})\.([A-Za-z0-9_-]{22})\.([A-Za-z0-9_-]{22})$"
)


def _signature(key: str, agent_id: int, expires: int, device_id: str) -> str:
    message = f"device:{agent_id}:{expires}:{device_id}".encode()
    digest = hmac.new(key.encode(), message, hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def sign_device(key: str, agent_id: int, device_id: str, expires_at: datetime) -> str:
    expires = int(expires_at.timestamp())
    return f"{agent_id}.{expires}.{device_id}.{_signature(key, agent_id, expires, device_id)}"


def new_device_id() -> str:
    return secrets.token_urlsafe(16)  # 22 characters


def device_of(key: str, token: str, agent_id: int, now: datetime) -> str | None:
    """The device id of an authentic, unexpired token issued to `agent_id`, else None."""
    match = _DEVICE.fullmatch(token)
    if match is None or int(match.group(1)) != agent_id:
        return None
    expires, device_id, signature = int(match.group(2)), match.group(3), match.group(4)
    expected = _signature(key, agent_id, expires, device_id)
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        return None
    return device_id if now.astimezone(UTC).timestamp() <= expires else None


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def address_key(ip: str) -> str:
    return "helpdesk:login-address:" + _digest(ip)


def account_key(email: str) -> str:
    return "helpdesk:login-attempts:" + _digest(email.strip().lower())


def device_key(device_id: str) -> str:
    return "helpdesk:login-device:" + _digest(device_id)


def password_change_key(agent_id: int) -> str:
    return f"helpdesk:password-change:{agent_id}"


async def take(
    redis: Redis, outage: RedisOutage, key: str, limit: int, window: int, detail: str
) -> None:
    """Count one attempt on `key`; 429 with Retry-After when it is over `limit`, 503
    with Retry-After while Redis is down (fails closed: see the module's docstring)."""

    try:
        attempts, ttl = await outage.call(
            "login_throttle", lambda: fixed_window_hit(redis, key, window)
        )
    except RedisDown as error:
        raise ServiceUnavailable(
            "Signing in is unavailable for a moment (a backing service is down); retry shortly"
        ) from error
    if attempts > limit:
        raise TooManyRequests(detail, retry_after=max(int(ttl), 1))


async def give_back(redis: Redis, outage: RedisOutage, key: str) -> None:
    """Undo one counted attempt (it succeeded); never below zero, the expiry stays.
    Best effort: with Redis down the attempt stays counted until the window ends."""

    async def decrement() -> None:
        await redis.eval(  # type: ignore[misc]
            "if tonumber(redis.call('GET', KEYS[1]) or '0') > 0 then "
            "redis.call('DECR', KEYS[1]) end",
            1,
            key,
        )

    with contextlib.suppress(RedisDown):
        await outage.call("login_throttle", decrement)


async def clear(redis: Redis, outage: RedisOutage, key: str) -> None:
    """Forget a counter (a correct password). Best effort, like `give_back`."""
    with contextlib.suppress(RedisDown):
        await outage.call("login_throttle", lambda: redis.delete(key))


@dataclass(frozen=True)
class Device:
    """The device token a login request carried (may be empty or forged)."""

    token: str

    def id_for(self, key: str, agent_id: int) -> str | None:
        return device_of(key, self.token, agent_id, datetime.now(UTC)) if self.token else None


def device_expiry(settings: AuthSettings) -> datetime:
    return datetime.now(UTC) + timedelta(days=settings.known_device_days)
