"""Channel accounts of chat and social channels (a bot, a workspace, a page, a number).

Secrets (bot tokens, signing secrets, app secrets, verify tokens) are write-only: the
API shows only which ones are set, and they never go to logs or audit rows. Each kind
declares which settings and secrets it takes, so a typo is an error, not a silently
unused value (`helpdesk.channels.catalogue` declares them).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any

import asyncpg
import msgspec

from helpdesk.agents.models import Principal
from helpdesk.audit import service as audit
from helpdesk.channels import queries
from helpdesk.channels.catalogue import CATALOGUE, ChatKind
from helpdesk.errors import Conflict, InvalidInput, NotFound

Kind = ChatKind  # the catalogue's chat kinds
AccountName = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$(?!\n)")]
Value = Annotated[str, msgspec.Meta(max_length=4096, pattern=r"^[^\r\n\x00]*$(?!\n)")]
SettingValue = Value | list[Value] | bool | int

# What each kind takes (declared in the catalogue). Settings are shown to admins;
# secrets never are.
SETTINGS: Mapping[str, frozenset[str]] = {e.name: e.settings for e in CATALOGUE.values() if e.chat}
SECRETS: Mapping[str, frozenset[str]] = {e.name: e.secrets for e in CATALOGUE.values() if e.chat}


class ChannelAccount(msgspec.Struct, kw_only=True, frozen=True):
    """An account as the service uses it (secrets included); never sent to a client."""

    id: int
    kind: Kind
    name: str
    active: bool
    settings: dict[str, Any]
    secrets: dict[str, str]

    def setting(self, name: str, default: Any = None) -> Any:
        return self.settings.get(name, default)

    def secret(self, name: str) -> str:
        """The secret, or '' when unset (every check treats '' as 'refuse')."""
        value = self.secrets.get(name)
        return value if isinstance(value, str) else ""


class ChannelAccountOut(msgspec.Struct):
    id: int
    kind: str
    name: str
    active: bool
    settings: dict[str, Any]
    secrets_set: list[str]
    created_at: datetime
    updated_at: datetime


class ChannelAccountCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    kind: Kind
    name: AccountName
    active: bool = True
    settings: dict[str, SettingValue] = msgspec.field(default_factory=dict)
    secrets: dict[str, Value] = msgspec.field(default_factory=dict)


class ChannelAccountUpdate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Partial change: given settings/secrets are merged in; a `null` secret removes it."""

    active: bool | None = None
    settings: dict[str, SettingValue | None] | None = None
    secrets: dict[str, Value | None] | None = None


def _check_names(kind: str, settings: dict[str, Any], secrets: dict[str, Any]) -> None:
    for name in settings:
        if name not in SETTINGS[kind]:
            allowed = ", ".join(sorted(SETTINGS[kind])) or "none"
            raise InvalidInput(
                f"Unknown setting '{name}' for {kind} (allowed: {allowed})", field="settings"
            )
    for name in secrets:
        if name not in SECRETS[kind]:
            allowed = ", ".join(sorted(SECRETS[kind])) or "none"
            raise InvalidInput(
                f"Unknown secret '{name}' for {kind} (allowed: {allowed})", field="secrets"
            )


def account_from_row(row: asyncpg.Record) -> ChannelAccount:
    """A ChannelAccount from a row holding the account's columns (a join may add more)."""
    return ChannelAccount(
        id=row["id"],
        kind=row["kind"],
        name=row["name"],
        active=row["active"],
        settings=dict(row["settings"]),
        secrets=dict(row["secrets"]),
    )


def _out(row: asyncpg.Record) -> ChannelAccountOut:
    return ChannelAccountOut(
        id=row["id"],
        kind=row["kind"],
        name=row["name"],
        active=row["active"],
        settings=dict(row["settings"]),
        secrets_set=sorted(row["secrets"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


async def get_account(conn: asyncpg.Connection, kind: str, name: str) -> ChannelAccount | None:
    row = await conn.fetchrow(queries.ACCOUNT, kind, name)
    return None if row is None else account_from_row(row)


async def get_account_by_id(conn: asyncpg.Connection, account_id: int) -> ChannelAccount | None:
    row = await conn.fetchrow(queries.ACCOUNT_BY_ID, account_id)
    return None if row is None else account_from_row(row)


async def list_accounts(conn: asyncpg.Connection) -> list[ChannelAccountOut]:
    return [_out(r) for r in await conn.fetch(queries.ALL_ACCOUNTS)]


async def read_account(conn: asyncpg.Connection, kind: str, name: str) -> ChannelAccountOut:
    row = await conn.fetchrow(queries.ACCOUNT, kind, name)
    if row is None:
        raise NotFound("No such channel account")
    return _out(row)


async def create_account(
    conn: asyncpg.Connection, data: ChannelAccountCreate, actor: Principal | None = None
) -> ChannelAccountOut:
    _check_names(data.kind, data.settings, data.secrets)
    try:
        row = await conn.fetchrow(
            queries.INSERT_ACCOUNT,
            data.kind,
            data.name,
            data.active,
            data.settings,
            data.secrets,
        )
    except asyncpg.UniqueViolationError:
        raise Conflict(f"A {data.kind} account with this name already exists") from None
    await audit.record(
        conn,
        action="channel_account.create",
        outcome="allowed",
        actor=actor,
        object_type="channel_account",
        object_id=row["id"],
        detail={
            "kind": data.kind,
            "settings": sorted(data.settings),
            "secrets": sorted(data.secrets),
        },
    )
    return _out(row)


async def update_account(
    conn: asyncpg.Connection,
    kind: str,
    name: str,
    data: ChannelAccountUpdate,
    actor: Principal | None = None,
) -> ChannelAccountOut:
    row = await conn.fetchrow(queries.LOCK_ACCOUNT, kind, name)
    if row is None:
        raise NotFound("No such channel account")
    settings = dict(row["settings"])
    secrets = dict(row["secrets"])
    _check_names(kind, data.settings or {}, data.secrets or {})
    for key, value in (data.settings or {}).items():
        if value is None:
            settings.pop(key, None)
        else:
            settings[key] = value
    for key, secret in (data.secrets or {}).items():
        if secret is None:
            secrets.pop(key, None)
        else:
            secrets[key] = secret
    active = row["active"] if data.active is None else data.active
    updated = await conn.fetchrow(
        queries.UPDATE_ACCOUNT,
        row["id"],
        active,
        settings,
        secrets,
    )
    await audit.record(
        conn,
        action="channel_account.update",
        outcome="allowed",
        actor=actor,
        object_type="channel_account",
        object_id=row["id"],
        detail={
            "active": data.active,
            "settings": sorted(data.settings or {}),
            "secrets": sorted(data.secrets or {}),  # names only, never values
        },
    )
    return _out(updated)
