from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, patch, post
from litestar.datastructures import Cookie
from litestar.params import JSONBody
from litestar.status_codes import HTTP_204_NO_CONTENT

from helpdesk.agents import service, throttle
from helpdesk.agents.models import (
    AgentCreate,
    AgentOut,
    AgentUpdate,
    GroupCreate,
    GroupOut,
    LoginRequest,
    PasswordChange,
    TokenOut,
)
from helpdesk.audit import service as audit
from helpdesk.web.auth import ADMIN
from helpdesk.web.context import Caller, Ctx, Db, client_ip
from helpdesk.web.query import PathId


class AuthController(Controller):
    path = "/auth"
    tags = ["auth"]

    @post("/login", exclude_from_auth=True, status_code=200, operation_id="login")
    async def login(
        self,
        request: Request[Any, Any, Any],
        db: Db,
        ctx: Ctx,
        data: JSONBody[LoginRequest],
    ) -> Response[TokenOut]:
        """Exchange e-mail and password for a bearer token (shown once).

        Failed logins are throttled per client address and per account (429 with
        Retry-After); a device the agent logged in from before (the `helpdesk_device`
        cookie or `X-Helpdesk-Device` header) is not held back by the account's limit."""
        device = request.headers.get(throttle.DEVICE_HEADER) or request.cookies.get(
            throttle.DEVICE_COOKIE, ""
        )
        async with db.transaction():
            token, expires_at, agent, device_token = await service.login(
                db,
                ctx.redis,
                ctx.redis_outage,
                ctx.passwords,
                ctx.settings.auth,
                data.email,
                data.password,
                client_ip(request),
                device[:200],
            )
        return Response(
            TokenOut(token=token, expires_at=expires_at, agent=agent, device_token=device_token),
            cookies=[
                Cookie(
                    key=throttle.DEVICE_COOKIE,
                    value=device_token,
                    path="/auth",
                    max_age=ctx.settings.auth.known_device_days * 86400,
                    httponly=True,
                    samesite="strict",
                    secure=request.url.scheme == "https",
                )
            ],
        )

    @post("/logout", status_code=HTTP_204_NO_CONTENT, operation_id="logout")
    async def logout(self, principal: Caller, db: Db) -> None:
        """Revoke the token of this request."""
        await service.revoke_token(db, principal.token_hash)

    @post("/logout-all", status_code=HTTP_204_NO_CONTENT, operation_id="logoutEverywhere")
    async def logout_all(self, principal: Caller, db: Db) -> None:
        """Revoke every token of the caller (all devices)."""
        async with db.transaction():
            await service.revoke_all_tokens(db, principal.agent_id)
            await audit.record(
                db,
                action="auth.logout_all",
                outcome="allowed",
                actor=principal,
                object_type="agent",
                object_id=principal.agent_id,
            )

    @get("/me", operation_id="getCurrentAgent")
    async def me(self, principal: Caller, db: Db) -> AgentOut:
        return await service.get_agent(db, principal.agent_id)

    @post("/password", status_code=200, operation_id="changePassword")
    async def change_password(
        self,
        principal: Caller,
        db: Db,
        ctx: Ctx,
        data: JSONBody[PasswordChange],
    ) -> TokenOut:
        """Change the own password; every existing token is revoked and a new one returned."""
        async with db.transaction():
            token, expires_at = await service.change_own_password(
                db,
                ctx.redis,
                ctx.redis_outage,
                ctx.passwords,
                ctx.settings.auth,
                principal,
                data.current_password,
                data.new_password,
            )
            agent = await service.get_agent(db, principal.agent_id)
        return TokenOut(token=token, expires_at=expires_at, agent=agent)


class AgentController(Controller):
    path = "/agents"
    tags = ["agents"]

    @get("/", operation_id="listAgents")
    async def list_agents(self, principal: Caller, db: Db) -> list[AgentOut]:
        return await service.list_agents(db, principal)

    @post("/", guards=[ADMIN], status_code=201, operation_id="createAgent")
    async def create_agent(
        self, principal: Caller, db: Db, ctx: Ctx, data: JSONBody[AgentCreate]
    ) -> AgentOut:
        async with db.transaction():
            return await service.create_agent(db, ctx.passwords, data, principal)

    @patch("/{agent_id:int}", guards=[ADMIN], operation_id="updateAgent")
    async def update_agent(
        self,
        principal: Caller,
        db: Db,
        ctx: Ctx,
        agent_id: PathId,
        data: JSONBody[AgentUpdate],
    ) -> AgentOut:
        """Change role, groups, activity or password; the agent's tokens are revoked."""
        async with db.transaction():
            return await service.update_agent(db, ctx.passwords, agent_id, data, principal)


class GroupController(Controller):
    path = "/groups"
    tags = ["agents"]

    @get("/", operation_id="listGroups")
    async def list_groups(self, principal: Caller, db: Db) -> list[GroupOut]:
        return await service.list_groups(db, principal)

    @post("/", guards=[ADMIN], status_code=201, operation_id="createGroup")
    async def create_group(
        self, principal: Caller, db: Db, data: JSONBody[GroupCreate]
    ) -> GroupOut:
        async with db.transaction():
            return await service.create_group(db, data, principal)
