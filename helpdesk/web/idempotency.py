"""Idempotency-Key for POSTs that create things (Stripe's contract, kept in PostgreSQL).

The key row is inserted in the same transaction as the effect and its response, so
a key is recorded exactly when the effect committed. A concurrent request with the
same key waits on the unique index until the first commits, then replays its
response; a rolled-back first attempt leaves no trace and the retry runs afresh.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import msgspec
from litestar import Request, Response

from helpdesk.agents.models import Principal
from helpdesk.errors import InvalidInput, UnprocessableIdempotencyKey
from helpdesk.web import queries

MAX_KEY_LENGTH = 255


def idempotency_key(request: Request[Any, Any, Any]) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_KEY_LENGTH:
        raise InvalidInput("Idempotency-Key must be 1 to 255 characters", field="Idempotency-Key")
    return key


async def run_idempotent(
    conn: asyncpg.Connection,
    request: Request[Any, Any, Any],
    principal: Principal,
    payload: msgspec.Struct | None,
    status_code: int,
    action: Callable[[], Awaitable[Any]],
    after_commit: Callable[[Any], Awaitable[None]] | None = None,
) -> Response[bytes]:
    """Run `action` in a transaction, at most once per Idempotency-Key of the caller."""
    key = idempotency_key(request)
    fingerprint = hashlib.sha256(
        request.method.encode()
        + b" "
        + request.url.path.encode()
        + b"\n"
        + msgspec.json.encode(payload)
    ).digest()
    result: Any = None
    async with conn.transaction():
        if key is not None:
            claimed = await conn.fetchval(
                queries.CLAIM_IDEMPOTENCY_KEY,
                principal.agent_id,
                key,
                request.method,
                request.url.path,
                fingerprint,
            )
            if not claimed:
                stored = await conn.fetchrow(queries.IDEMPOTENT_RESPONSE, principal.agent_id, key)
                if stored["request_hash"] != fingerprint:
                    raise UnprocessableIdempotencyKey(
                        "This Idempotency-Key was used with a different request"
                    )
                return Response(
                    stored["response_body"],
                    status_code=stored["response_status"],
                    media_type="application/json",
                    headers={"Idempotent-Replayed": "true"},
                )
        result = await action()
        body = msgspec.json.encode(result)
        if key is not None:
            await conn.execute(
                queries.STORE_IDEMPOTENT_RESPONSE,
                principal.agent_id,
                key,
                status_code,
                body,
            )
    if after_commit is not None:
        await after_commit(result)
    return Response(body, status_code=status_code, media_type="application/json")
