"""Admin endpoints of chat and social channel accounts (secrets are write-only)."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get, patch, post
from litestar.params import JSONBody, PathParameter
from litestar.status_codes import HTTP_201_CREATED

from helpdesk.channels import accounts
from helpdesk.channels.accounts import (
    ChannelAccountCreate,
    ChannelAccountOut,
    ChannelAccountUpdate,
)
from helpdesk.web.auth import ADMIN
from helpdesk.web.context import Caller, Db

KindPath = Annotated[str, PathParameter(pattern=r"^[a-z]{1,20}$(?!\n)")]
NamePath = Annotated[str, PathParameter(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$(?!\n)")]


class ChannelAccountController(Controller):
    path = "/channels/accounts"
    tags = ["channels"]
    guards = [ADMIN]

    @get("/", operation_id="listChannelAccounts")
    async def list_accounts(self, db: Db) -> list[ChannelAccountOut]:
        """Every chat/social account; secrets show only as names in `secrets_set`."""
        return await accounts.list_accounts(db)

    @post("/", status_code=HTTP_201_CREATED, operation_id="createChannelAccount")
    async def create_account(
        self, principal: Caller, db: Db, data: JSONBody[ChannelAccountCreate]
    ) -> ChannelAccountOut:
        async with db.transaction():
            return await accounts.create_account(db, data, principal)

    @get("/{kind:str}/{name:str}", operation_id="getChannelAccount")
    async def read_account(self, db: Db, kind: KindPath, name: NamePath) -> ChannelAccountOut:
        return await accounts.read_account(db, kind, name)

    @patch("/{kind:str}/{name:str}", operation_id="updateChannelAccount")
    async def update_account(
        self,
        principal: Caller,
        db: Db,
        kind: KindPath,
        name: NamePath,
        data: JSONBody[ChannelAccountUpdate],
    ) -> ChannelAccountOut:
        async with db.transaction():
            return await accounts.update_account(db, kind, name, data, principal)
