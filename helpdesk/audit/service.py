from __future__ import annotations

from typing import Any

import asyncpg

from helpdesk.agents.models import Principal
from helpdesk.audit import queries
from helpdesk.observability import request_id_var


async def record(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    action: str,
    outcome: str,
    actor: Principal | None = None,
    object_type: str | None = None,
    object_id: str | int | None = None,
    detail: dict[str, Any] | None = None,
    ip: str | None = None,
    actor_agent_id: int | None = None,
) -> None:
    """Append one audit row. `detail` must hold ids and field names, never secrets or bodies."""
    await conn.execute(
        queries.INSERT_ENTRY,
        actor.agent_id if actor else actor_agent_id,
        actor.role if actor else None,
        action,
        object_type,
        None if object_id is None else str(object_id),
        outcome,
        detail or {},
        request_id_var.get(),
        ip,
    )


async def list_entries(
    conn: asyncpg.Connection, *, before_id: int | None, limit: int
) -> list[asyncpg.Record]:
    return list(await conn.fetch(queries.ENTRIES, before_id, limit))
