from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, get
from litestar.params import QueryParameter

from helpdesk.audit import service
from helpdesk.web.auth import SUPERVISION
from helpdesk.web.context import Db
from helpdesk.web.query import OptionalQueryId


class AuditEntry(msgspec.Struct):
    id: int
    at: datetime
    actor_agent_id: int | None
    actor_role: str | None
    action: str
    object_type: str | None
    object_id: str | None
    outcome: str
    detail: dict[str, Any]
    request_id: str | None
    ip: str | None


class AuditController(Controller):
    """Read-only: the audit log has no endpoint that could change it."""

    path = "/audit"
    tags = ["audit"]
    guards = [SUPERVISION]

    @get("/", operation_id="listAuditEntries")
    async def list_entries(
        self,
        db: Db,
        before_id: OptionalQueryId = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
    ) -> list[AuditEntry]:
        rows = await service.list_entries(db, before_id=before_id, limit=limit)
        return [AuditEntry(**dict(row)) for row in rows]
