"""Bearer-token authentication and role guards."""

from __future__ import annotations

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware.authentication import (
    AbstractAuthenticationMiddleware,
    AuthenticationResult,
)
from litestar.types import Receive, Scope, Send

from helpdesk.agents import service as agents
from helpdesk.agents.models import Principal, Role
from helpdesk.errors import Forbidden, TooManyRequests, Unauthenticated
from helpdesk.web.context import AppContext, RequestConnection


class BearerTokenMiddleware(AbstractAuthenticationMiddleware):
    """Authenticates on the connection the request will use (`RequestConnection`)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:  # the handler never took the connection (e.g. 401, 403, 422)
            lease = scope.pop(RequestConnection.SCOPE_KEY, None)  # type: ignore[misc]
            if lease is not None:
                await lease.release()

    async def authenticate_request(self, connection: ASGIConnection) -> AuthenticationResult:  # type: ignore[type-arg]
        header = connection.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("Missing bearer token")
        ctx: AppContext = connection.app.state.ctx
        lease = RequestConnection(ctx)
        connection.scope[RequestConnection.SCOPE_KEY] = lease  # type: ignore[literal-required]
        principal = await agents.authenticate(await lease.acquire(), token.strip())
        if not _takes_db(connection.scope["route_handler"]):
            # e.g. an event stream, which must not hold a pooled connection for hours
            await lease.release()
        if principal is None:
            raise Unauthenticated("Invalid or expired token")
        await _check_not_found_budget(ctx, principal)
        return AuthenticationResult(user=principal, auth=token)


def _takes_db(handler: BaseRouteHandler) -> bool:
    """Whether the handler asks for the `db` dependency, which then gets the connection
    authentication used."""
    return "db" in handler.parsed_fn_signature.parameters


def not_found_key(agent_id: int) -> str:
    return f"helpdesk:not-found:{agent_id}"


async def _check_not_found_budget(ctx: AppContext, principal: Principal) -> None:
    """Slow down id walking: after too many 404s in a window, answer 429 for a while."""
    retry_after = ctx.over_budget.retry_after(principal.agent_id)
    if retry_after is not None:
        raise TooManyRequests(
            "Too many requests for objects that do not exist", retry_after=retry_after
        )


def require_roles(*roles: Role):  # type: ignore[no-untyped-def]
    """Guard: the caller's role must be one of `roles`."""

    async def guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:  # type: ignore[type-arg]
        principal = connection.scope.get("user")
        if not isinstance(principal, Principal):  # e.g. OPTIONS, which skips authentication
            raise Unauthenticated("Missing bearer token")
        if principal.role not in roles:
            raise Forbidden("Your role does not allow this")

    return guard


STAFF = require_roles("agent", "supervisor", "admin")
ADMIN = require_roles("admin")
SUPERVISION = require_roles("supervisor", "admin")
