"""The load generator: a real HTTP client (aiohttp) in this process, over loopback.

The API and the worker run in their own processes, so nothing here shares an event loop
with what is measured; the CPUs are shared, as with any client on the same machine.
aiohttp rather than httpx: on this 2-CPU machine httpx at 50 connections could not
send more than ~260 requests/s even to an endpoint doing nothing, so it, not the
server, would have been measured.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import aiohttp
import msgspec

from bench.stats import percentile


@dataclass
class Response:
    status_code: int
    content: bytes

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    def json(self) -> Any:
        return msgspec.json.decode(self.content)


class Http:
    """A keep-alive HTTP/1.1 client with at most `connections` connections."""

    def __init__(self, base_url: str, connections: int, headers: dict[str, str] | None = None):
        self.base_url = base_url
        self.connections = connections
        self.headers = headers or {}
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Http:
        self._session = aiohttp.ClientSession(
            base_url=self.base_url,
            connector=aiohttp.TCPConnector(limit=self.connections),
            timeout=aiohttp.ClientTimeout(total=120),
            headers=self.headers,
        )
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()

    async def request(
        self,
        method: str,
        url: str,
        *,
        content: bytes | None = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        assert self._session is not None, "use `async with Http(...)`"
        if json is not None:
            content = msgspec.json.encode(json)
            headers = {"content-type": "application/json", **(headers or {})}
        async with self._session.request(method, url, data=content, headers=headers) as answer:
            return Response(answer.status, await answer.read())

    async def get(self, url: str, *, headers: dict[str, str] | None = None) -> Response:
        return await self.request("GET", url, headers=headers)

    async def post(self, url: str, **kwargs: Any) -> Response:
        return await self.request("POST", url, **kwargs)


# One request: given its index, send it on the client and return the response.
Request = Callable[[Http, int], Awaitable[Response]]


@dataclass
class LoadResult:
    elapsed: float
    latencies: list[float] = field(default_factory=list)  # seconds, successful only
    statuses: dict[int, int] = field(default_factory=dict)
    sent_at: list[float] = field(default_factory=list)  # wall clock, by request index

    @property
    def ok(self) -> int:
        return sum(n for status, n in self.statuses.items() if 200 <= status < 300)

    @property
    def rate(self) -> float:
        return self.ok / self.elapsed if self.elapsed > 0 else 0.0

    def p(self, q: float) -> float:
        """Latency percentile in milliseconds."""
        return percentile(self.latencies, q) * 1000

    def check(self, what: str) -> None:
        bad = {s: n for s, n in self.statuses.items() if not 200 <= s < 300}
        if bad:
            raise RuntimeError(f"{what}: unexpected HTTP statuses {bad}")


async def closed_loop(
    base_url: str, request: Request, total: int, concurrency: int, *, in_order: int = 1
) -> LoadResult:
    """`total` requests by `concurrency` workers, each sending its next as soon as the
    previous one was answered (throughput at a fixed number of clients). A worker takes
    `in_order` consecutive requests at a time and sends them one after the other: the
    messages of one conversation, as one customer sends them."""
    result = LoadResult(elapsed=0.0, sent_at=[0.0] * total)
    counter = iter(range(0, total, in_order))

    async def worker(http: Http) -> None:
        for first in counter:
            for index in range(first, min(first + in_order, total)):
                started = time.perf_counter()
                result.sent_at[index] = time.time()
                response = await request(http, index)
                status = response.status_code
                result.statuses[status] = result.statuses.get(status, 0) + 1
                if response.is_success:
                    result.latencies.append(time.perf_counter() - started)

    async with Http(base_url, concurrency) as http:
        began = time.perf_counter()
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))
        result.elapsed = time.perf_counter() - began
    return result


async def open_loop(base_url: str, request: Request, total: int, rate: float) -> LoadResult:
    """`total` requests started at a steady `rate` per second, whatever the answers do
    (latency at a given arrival rate, without coordinated omission)."""
    result = LoadResult(elapsed=0.0, sent_at=[0.0] * total)

    async def one(http: Http, index: int) -> None:
        started = time.perf_counter()
        result.sent_at[index] = time.time()
        response = await request(http, index)
        result.statuses[response.status_code] = result.statuses.get(response.status_code, 0) + 1
        if response.is_success:
            result.latencies.append(time.perf_counter() - started)

    async with Http(base_url, 256) as http:
        began = time.perf_counter()
        tasks = []
        for index in range(total):
            delay = began + index / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(http, index)))
        await asyncio.gather(*tasks)
        result.elapsed = time.perf_counter() - began
    return result
