"""Canned replies. Agents list the ones for a ticket's customer (their language and stage)
and render one; admins manage them. Placeholders: {customer_name}, {ticket_number},
{agent_name}; nothing else is substituted (a template is text, not code)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import asyncpg
import msgspec
from litestar import Controller, delete, get, patch, post
from litestar.params import JSONBody, QueryParameter
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from helpdesk.errors import Conflict, NotFound
from helpdesk.templates import queries
from helpdesk.tickets.queries import get_in_scope
from helpdesk.web.auth import ADMIN
from helpdesk.web.context import Caller, Db
from helpdesk.web.query import PathId

Language = Annotated[str, msgspec.Meta(pattern=r"^[a-z]{2}$")]
PLACEHOLDERS = ("customer_name", "ticket_number", "agent_name")


class TemplateIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    language: Language
    body: Annotated[str, msgspec.Meta(min_length=1, max_length=10000)]
    stages: list[str] = []
    active: bool = True


class TemplateUpdate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    body: Annotated[str, msgspec.Meta(min_length=1, max_length=10000)] | None = None
    stages: list[str] | None = None
    active: bool | None = None


class TemplateOut(msgspec.Struct):
    id: int
    name: str
    language: str
    body: str
    stages: list[str]
    active: bool
    created_at: datetime


def render(body: str, values: dict[str, str]) -> str:
    """Substitute only the known placeholders; any other brace stays as written."""
    for name in PLACEHOLDERS:
        body = body.replace("{" + name + "}", values.get(name, ""))
    return body


def _out(row: asyncpg.Record) -> TemplateOut:
    return TemplateOut(
        id=row["id"],
        name=row["name"],
        language=row["language"],
        body=row["body"],
        stages=list(row["stages"]),
        active=row["active"],
        created_at=row["created_at"],
    )


class TemplateController(Controller):
    path = "/templates"
    tags = ["templates"]

    @get("/", operation_id="listTemplates")
    async def list_templates(
        self,
        db: Db,
        language: Annotated[str | None, QueryParameter(pattern=r"^[a-z]{2}$")] = None,
    ) -> list[TemplateOut]:
        rows = await db.fetch(queries.ACTIVE_TEMPLATES, language)
        return [_out(r) for r in rows]

    @get("/for-ticket/{ticket_id:int}", operation_id="listTemplatesForTicket")
    async def for_ticket(
        self, principal: Caller, db: Db, ticket_id: PathId
    ) -> list[dict[str, Any]]:
        """The templates for this ticket's customer (language, then English; stage),
        rendered for them."""
        ticket = await get_in_scope(db, principal, ticket_id)
        customer = await db.fetchrow(queries.TICKET_CUSTOMER, ticket.id)
        agent = await db.fetchval(queries.AGENT_NAME, principal.agent_id)
        rows = await db.fetch(
            queries.TEMPLATES_FOR,
            customer["language"],
            customer["lifecycle_stage"],
        )
        values = {
            "customer_name": customer["name"] or "",
            "ticket_number": str(ticket.number),
            "agent_name": agent or "",
        }
        return [{"id": r["id"], "name": r["name"], "text": render(r["body"], values)} for r in rows]

    @post("/", guards=[ADMIN], status_code=HTTP_201_CREATED, operation_id="createTemplate")
    async def create(self, db: Db, data: JSONBody[TemplateIn]) -> TemplateOut:
        row = await db.fetchrow(
            queries.INSERT_TEMPLATE,
            data.name,
            data.language,
            data.body,
            data.stages,
            data.active,
        )
        if row is None:
            raise Conflict(f"A template '{data.name}' in {data.language} exists")
        return _out(row)

    @patch("/{template_id:int}", guards=[ADMIN], operation_id="updateTemplate")
    async def update(
        self, db: Db, template_id: PathId, data: JSONBody[TemplateUpdate]
    ) -> TemplateOut:
        row = await db.fetchrow(
            queries.UPDATE_TEMPLATE, template_id, data.body, data.stages, data.active
        )
        if row is None:
            raise NotFound(f"Template {template_id} not found")
        return _out(row)

    @delete(
        "/{template_id:int}",
        guards=[ADMIN],
        status_code=HTTP_204_NO_CONTENT,
        operation_id="deleteTemplate",
    )
    async def remove(self, db: Db, template_id: PathId) -> None:
        await db.execute(queries.DELETE_TEMPLATE, template_id)
