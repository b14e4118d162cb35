"""Baselines served over HTTP: a minimal litestar app.

Served by uvicorn like `helpdesk serve`, with the API's asyncpg pool (same settings, same
size), on the same PostgreSQL: what any litestar + asyncpg endpoint costs on this machine
before any helpdesk work. `GET /ping` does one trivial query (the console's baseline);
`POST /ingest` runs the raw SQL ingest transaction (`bench.raw_ingest`) for one message,
which shows what HTTP alone costs the ingestion baseline.

    python -m bench.baseline_app --dsn DSN --port PORT --pool N
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager

import msgspec
import uvicorn
from litestar import Litestar, get, post
from litestar.datastructures import State

from bench.raw_ingest import ingest_one
from helpdesk.db.pool import create_pool


class RawMessage(msgspec.Struct):
    account_id: int
    number: int
    chat: int
    text: str


@get("/ping")
async def ping(state: State) -> dict[str, int]:
    async with state.pool.acquire() as conn:
        value: int = await conn.fetchval("SELECT 1")
    return {"value": value}


@post("/ingest", status_code=200)
async def ingest(state: State, data: RawMessage) -> dict[str, bool]:
    async with state.pool.acquire() as conn:
        await ingest_one(conn, data.account_id, data.number, data.chat, data.text)
    return {"stored": True}


@get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


def create_app(dsn: str, pool_size: int) -> Litestar:
    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncGenerator[None, None]:
        app.state.pool = await create_pool(dsn, min_size=1, max_size=pool_size)
        try:
            yield
        finally:
            await app.state.pool.close()

    return Litestar(route_handlers=[ping, ingest, healthz], lifespan=[lifespan], debug=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pool", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        create_app(args.dsn, args.pool),
        host="127.0.0.1",
        port=args.port,
        log_config=None,
        access_log=False,
        server_header=False,
    )


if __name__ == "__main__":
    main()
