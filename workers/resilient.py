"""An arq Worker that outlives Redis outages.

arq 0.28's `Worker.main` lets every Redis error escape its poll loop: one lost
connection (a Redis restart, a failover, a network blip) ends the worker process, and
under `helpdesk run` the API then keeps answering with no worker behind it. Redis holds
only the job queue (PostgreSQL is the truth, and the relay/sweep crons re-enqueue what
Redis lost), so the right answer to an outage is to wait for Redis and carry on.

`ResilientWorker` keeps arq's loop but catches connection errors around each poll
iteration, waits with exponential backoff (logged, capped), and polls again; it also
waits for Redis at start-up instead of giving up after a few tries. Jobs that were
running keep running; one whose own Redis bookkeeping failed stays queued and is
picked up again after arq's in-progress timeout, like a job of a killed worker.
"""

from __future__ import annotations

import asyncio
import logging
import random
import signal

from arq import Worker
from arq.connections import ArqRedis, log_redis_info
from arq.utils import poll
from redis.asyncio import ConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, WatchError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger("helpdesk.worker")

# What "Redis is unreachable" looks like from redis-py (BusyLoadingError, raised while a
# restarted Redis loads its data, is a ConnectionError). A connection lost during WATCH
# surfaces as a WatchError ("A ConnectionError occurred on while watching ..."); a real
# WatchError (the key changed) only comes from EXEC, which arq handles itself.
REDIS_DOWN: tuple[type[BaseException], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    WatchError,
    OSError,
    TimeoutError,
)

REDIS_DOWN_OR_REFUSED: tuple[type[BaseException], ...] = (*REDIS_DOWN, RedisError)

BACKOFF_FIRST_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 15.0


def backoff_seconds(failures: int) -> float:
    """0.5 s, 1 s, 2 s ... capped at 15 s, with up to 20 % jitter so that many workers do
    not reconnect in lockstep."""
    base = min(BACKOFF_FIRST_SECONDS * 2 ** max(failures - 1, 0), BACKOFF_MAX_SECONDS)
    return float(base * (1 + random.random() / 5))  # noqa: S311 - jitter, not a secret


def worker_redis(url: str) -> ArqRedis:
    """The worker's Redis client: connects lazily and never waits forever on a stalled
    server (arq's own pool has no read timeout, so a frozen Redis froze the worker)."""
    pool = ConnectionPool.from_url(url, socket_connect_timeout=2, socket_timeout=10)
    return ArqRedis(connection_pool=pool)


def _unless_stopping(error: BaseException) -> None:
    """Re-raise a cancellation that a Redis timeout swallowed. On Python 3.11 a cancel
    (SIGTERM: arq cancels the main task) that meets a redis-py timeout expiring comes
    out as TimeoutError; taken for an outage, the worker would poll on and never stop."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError from error


class ResilientWorker(Worker):
    """arq's Worker, reconnecting with backoff instead of exiting when Redis goes away."""

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        # arq takes a job slot (semaphore and counter) before its Redis round trip and
        # gives it back only on EXEC's WatchError: a connection lost in between (also
        # raised as a WatchError, by WATCH) would leak the slot, and after a few outages
        # the worker would wait for a free slot forever.
        for job_id in job_ids:
            try:
                await super().start_jobs([job_id])
            except REDIS_DOWN:
                self._release_sem_dec_counter_on_complete()
                raise

    async def main(self) -> None:
        failures = 0
        while True:  # Redis may be down when the worker starts, too
            try:
                await log_redis_info(self.pool, log.info)
                break
            except REDIS_DOWN as error:
                _unless_stopping(error)
                failures += 1
                await self._wait_for_redis(error, failures)
        if failures:
            log.info("Redis reachable; worker starting")
        log.info("worker started with %d functions", len(self.functions))
        self.ctx["redis"] = self.pool
        if self.on_startup:
            await self.on_startup(self.ctx)

        failures = 0
        async for _ in poll(self.poll_delay_s):
            # A cancel (shutdown) that landed inside a Redis call can be swallowed by the
            # client's own timeout handling; the task still counts it, so stop here rather
            # than poll on forever (seen as a worker that never stopped in a test run).
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise asyncio.CancelledError
            try:
                await self._poll_iteration()
                if self.burst and await self._burst_done():
                    return
            except REDIS_DOWN as error:
                _unless_stopping(error)
                failures += 1
                await self._wait_for_redis(error, failures)
                continue
            if failures:
                log.info("Redis reachable again; worker polling", extra={"failures": failures})
                failures = 0

    async def _burst_done(self) -> bool:
        """arq's end-of-burst check (tests run the worker in burst mode)."""
        if 0 <= self.max_burst_jobs <= self._jobs_started():
            await asyncio.gather(*self.tasks.values())
            return True
        if await self.pool.zcard(self.queue_name) == 0:
            await asyncio.gather(*self.tasks.values())
            return True
        return False

    async def _wait_for_redis(self, error: BaseException, failures: int) -> None:
        delay = backoff_seconds(failures)
        log.warning(
            "Redis unavailable; worker retrying",
            extra={"error": type(error).__name__, "failures": failures, "retry_in_s": delay},
        )
        await asyncio.sleep(delay)

    async def close(self) -> None:
        """arq's close, except that Redis being down does not skip `on_shutdown` (which
        closes the database pool and stops the IMAP poller)."""
        if not self._handle_signals:
            self.handle_sig(signal.SIGUSR1)
        if not self._pool:
            return
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        try:
            await self.pool.delete(self.health_check_key)
        except REDIS_DOWN_OR_REFUSED:
            log.warning("Redis unavailable at shutdown; health key left to expire")
        if self.on_shutdown:
            await self.on_shutdown(self.ctx)
        await self.pool.close(close_connection_pool=True)
        self._pool = None
