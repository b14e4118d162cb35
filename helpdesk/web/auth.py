"""Bearer-token authentication and role guards."""

from __future__ import annotations

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware.authentication import (
    AbstractAuthenticationMiddleware,
    AuthenticationResult,
)

from helpdesk.agents import service as agents
from helpdesk.agents.models import Principal, Role
from helpdesk.errors import Forbidden, TooManyRequests, Unauthenticated
from helpdesk.web.context import AppContext


class BearerTokenMiddleware(AbstractAuthenticationMiddleware):
    async def authenticate_request(self, connection: ASGIConnection) -> AuthenticationResult:  # type: ignore[type-arg]
        header = connection.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("Missing bearer token")
        ctx: AppContext = connection.app.state.ctx
        principal = await agents.authenticate(ctx.pool, token.strip())
        if principal is None:
            raise Unauthenticated("Invalid or expired token")
        await _check_not_found_budget(ctx, principal)
        return AuthenticationResult(user=principal, auth=token)


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
