"""What the API process knows about a Redis outage, so that requests do not wait for it.

The API uses Redis only for bounded, short work: the after-commit enqueue
(`helpdesk.web.context.AppContext.enqueue`), rate limits (web chat, the CSAT page,
login and password change) and a few best-effort notes. Its client times out after
1 s (`helpdesk.app.connect_redis`); after one failure (or one enqueue that was too
slow) every request of the process skips Redis for `BACKOFF_SECONDS` instead of each
paying that timeout, and the first request after that tries again.

What a caller does while Redis is skipped is its own decision, documented where it
is made: web chat and the CSAT page fail open, login and password change fail closed
with 503 and Retry-After, the enqueue leaves the job to the worker's relay/sweeps.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError

BACKOFF_SECONDS = 5.0

T = TypeVar("T")


class RedisDown(Exception):
    """Redis failed just now, or is skipped because it failed less than
    `BACKOFF_SECONDS` ago; `retry_after` is the rest of the skip, in whole seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"Redis unavailable; retried in {retry_after} s")
        self.retry_after = retry_after


class RedisOutage:
    """The one skip window of a process, shared by every use of its Redis client."""

    def __init__(
        self,
        skipped: Counter | None = None,
        backoff: float = BACKOFF_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._skipped = skipped  # labelled by use: what did not even try Redis
        self._backoff = backoff
        self._clock = clock
        self._retry_at = 0.0

    def known_down(self) -> bool:
        return self._clock() < self._retry_at

    def retry_after(self) -> int:
        """Whole seconds left of the skip window (at least 1)."""
        return max(1, math.ceil(self._retry_at - self._clock()))

    def failed(self) -> None:
        """Redis failed or was too slow: skip it for the next `BACKOFF_SECONDS`."""
        self._retry_at = self._clock() + self._backoff

    def skip(self, use: str) -> None:
        """Count one use of Redis not tried because it is known down."""
        if self._skipped is not None:
            self._skipped.labels(use).inc()

    async def call(self, use: str, operation: Callable[[], Awaitable[T]]) -> T:
        """Run `operation` against Redis unless it is known down; RedisDown if skipped or
        if it fails now (which starts the skip window)."""
        if self.known_down():
            self.skip(use)
            raise RedisDown(self.retry_after())
        try:
            return await operation()
        except (RedisError, OSError, TimeoutError) as error:
            self.failed()
            raise RedisDown(self.retry_after()) from error


async def fixed_window_hit(redis: Redis, key: str, window_seconds: int) -> tuple[int, int]:
    """Count one hit on `key` in a fixed window: (hits so far, seconds left of the window).

    SET NX EX + INCR in one MULTI (Redis 6.2 has no EXPIRE NX), so concurrent hits are
    all counted. Run it through `RedisOutage.call`, which decides what an outage means.
    """
    async with redis.pipeline(transaction=True) as pipe:
        pipe.set(key, 0, ex=window_seconds, nx=True)
        pipe.incr(key)
        pipe.ttl(key)
        _, hits, left = await pipe.execute()
    return int(hits), int(left)
