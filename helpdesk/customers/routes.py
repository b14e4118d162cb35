from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.params import JSONBody, QueryParameter

from helpdesk.agents.models import Principal
from helpdesk.customers import merge, relationship, service
from helpdesk.customers.models import (
    AtRiskCustomer,
    CustomerBatch,
    CustomerDetail,
    CustomerMerge,
    CustomerPage,
    CustomerUpsert,
    HistoryEntry,
    StageUpdate,
    UpsertResult,
)
from helpdesk.errors import InvalidInput
from helpdesk.web.auth import ADMIN, STAFF, SUPERVISION
from helpdesk.web.context import Caller, Ctx, Db
from helpdesk.web.idempotency import run_idempotent
from helpdesk.web.query import PathId, reject_unknown_params

LIST_PARAMS = frozenset({"q", "limit", "cursor"})


class CustomerController(Controller):
    path = "/customers"
    tags = ["customers"]

    @get("/", operation_id="searchCustomers")
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

    @get("/{customer_id:int}", operation_id="getCustomer")
    async def detail(self, principal: Caller, db: Db, customer_id: PathId) -> CustomerDetail:
        return await service.get_customer(db, principal, customer_id)

    @post("/{customer_id:int}/merge", guards=[STAFF], status_code=200, operation_id="mergeCustomer")
    async def merge(
        self,
        request: Request[Principal, Any, Any],
        principal: Caller,
        db: Db,
        ctx: Ctx,
        customer_id: PathId,
        data: JSONBody[CustomerMerge],
    ) -> Response[bytes]:
        """Merge this customer into another: identities, tickets, orders and all history
        move to it, this customer is deleted. Answers the merged customer's detail."""

        async def action() -> CustomerDetail:
            return await merge.merge_customers(
                db, principal, customer_id, data.into_customer_id, data.reason, ctx.settings
            )

        return await run_idempotent(db, request, principal, data, 200, action)

    @post("/upsert", guards=[ADMIN], status_code=200, operation_id="upsertCustomer")
    async def upsert(
        self, principal: Caller, db: Db, ctx: Ctx, data: JSONBody[CustomerUpsert]
    ) -> UpsertResult:
        """Create or update one customer (and orders) by the shop's or CRM's external id."""
        async with db.transaction():
            return await relationship.upsert(db, data, principal, ctx.settings)

    @post("/batch", guards=[ADMIN], status_code=200, operation_id="upsertCustomers")
    async def batch(
        self, principal: Caller, db: Db, ctx: Ctx, data: JSONBody[CustomerBatch]
    ) -> list[UpsertResult]:
        """Up to 1,000 upserts in one transaction: all of them or none."""
        async with db.transaction():
            return [
                await relationship.upsert(db, item, principal, ctx.settings)
                for item in data.customers
            ]

    @post(
        "/{customer_id:int}/stage", guards=[STAFF], status_code=200, operation_id="setCustomerStage"
    )
    async def set_stage(
        self, principal: Caller, db: Db, ctx: Ctx, customer_id: PathId, data: JSONBody[StageUpdate]
    ) -> CustomerDetail:
        """Set the lifecycle stage by hand (kept), or `derived` to let the rules decide."""
        async with db.transaction():
            await service.get_customer(db, principal, customer_id)  # 404 outside scope
            await relationship.set_stage(
                db, customer_id, data.stage, data.reason, principal, ctx.settings
            )
        return await service.get_customer(db, principal, customer_id)

    @get("/{customer_id:int}/timeline", operation_id="getCustomerTimeline")
    async def timeline(
        self,
        request: Request[Principal, Any, Any],
        principal: Caller,
        db: Db,
        customer_id: PathId,
        before: Annotated[int | None, QueryParameter(ge=1)] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
    ) -> dict[str, Any]:
        """Every message of the customer across channels, newest first, by pages
        (`before` = the `next_before` of the previous page)."""
        reject_unknown_params(request, frozenset({"before", "limit"}))
        entries = await service.timeline(db, principal, customer_id, before, limit)
        more = len(entries) > limit
        page: list[HistoryEntry] = entries[:limit]
        return {
            "items": page,
            "next_before": page[-1].message_id if more and page else None,
        }

    @get("/at-risk", guards=[SUPERVISION], operation_id="listCustomersAtRisk")
    async def at_risk(self, principal: Caller, db: Db) -> list[AtRiskCustomer]:
        """Customers flagged at risk, longest first, with the bad experiences behind it."""
        return await service.customers_at_risk(db, principal)
