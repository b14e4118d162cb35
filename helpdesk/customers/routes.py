from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.params import JSONBody, QueryParameter

from helpdesk.agents.models import Principal
from helpdesk.customers import service
from helpdesk.customers.models import CustomerDetail, CustomerMerge, CustomerPage
from helpdesk.errors import InvalidInput
from helpdesk.web.auth import STAFF
from helpdesk.web.context import Caller, Db
from helpdesk.web.idempotency import run_idempotent
from helpdesk.web.query import PathId, reject_unknown_params

LIST_PARAMS = frozenset({"q", "limit", "cursor"})


class CustomerController(Controller):
    path = "/customers"
    tags = ["customers"]

    @get("/")
    async def search(
        self,
        request: Request[Principal, Any, Any],
        principal: Caller,
        db: Db,
        q: Annotated[str | None, QueryParameter(max_length=200)] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=100)] = 25,
        cursor: Annotated[str | None, QueryParameter(max_length=20)] = None,
    ) -> CustomerPage:
        """Search by name, e-mail, phone or external id; newest first."""
        reject_unknown_params(request, LIST_PARAMS)
        if cursor is not None and not cursor.isdigit():
            raise InvalidInput("Malformed cursor", field="cursor")
        return await service.search_customers(
            db,
            principal,
            q.strip() or None if q else None,
            int(cursor) if cursor else None,
            limit,
        )

    @get("/{customer_id:int}")
    async def detail(self, principal: Caller, db: Db, customer_id: PathId) -> CustomerDetail:
        return await service.get_customer(db, principal, customer_id)

    @post("/{customer_id:int}/merge", guards=[STAFF], status_code=200)
    async def merge(
        self,
        request: Request[Principal, Any, Any],
        principal: Caller,
        db: Db,
        customer_id: PathId,
        data: JSONBody[CustomerMerge],
    ) -> Response[bytes]:
        """Merge this customer into another: identities, tickets and history move to it,
        this customer is deleted. Answers the merged customer's detail."""

        async def action() -> CustomerDetail:
            return await service.merge_customers(
                db, principal, customer_id, data.into_customer_id, data.reason
            )

        return await run_idempotent(db, request, principal, data, 200, action)
