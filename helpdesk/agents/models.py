from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from helpdesk.db.sql import Id

Role = Literal["agent", "supervisor", "admin", "partner"]
ROLES: tuple[Role, ...] = ("agent", "supervisor", "admin", "partner")

Email = Annotated[str, msgspec.Meta(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")]
Password = Annotated[str, msgspec.Meta(min_length=10, max_length=1024)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class Principal(msgspec.Struct, frozen=True):
    """The authenticated caller of a request."""

    agent_id: int
    role: Role
    group_ids: tuple[int, ...]
    token_hash: bytes

    @property
    def is_partner(self) -> bool:
        return self.role == "partner"


class LoginRequest(msgspec.Struct, forbid_unknown_fields=True):
    email: Annotated[str, msgspec.Meta(max_length=320)]
    password: Annotated[str, msgspec.Meta(max_length=1024)]


class TokenOut(msgspec.Struct):
    token: str
    expires_at: datetime
    agent: AgentOut
    # Login only: marks this client as a known device of the agent; send it back on later
    # logins (browsers get it as the `helpdesk_device` cookie, others as the
    # `X-Helpdesk-Device` header) so the agent can log in while the account is throttled.
    device_token: str | None = None


class AgentOut(msgspec.Struct):
    id: int
    email: str
    name: str
    role: Role
    active: bool
    group_ids: list[int]
    created_at: datetime
    # online / away / offline: what routing assigns by (set with PUT /agents/me/availability).
    availability: str = "offline"


class AgentCreate(msgspec.Struct, forbid_unknown_fields=True):
    email: Email
    name: Name
    role: Role
    password: Password | None = None
    group_ids: list[Id] = []


class AgentUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """Admin change of an agent. Any change of role, groups or activity revokes tokens."""

    name: Name | None = None
    role: Role | None = None
    active: bool | None = None
    group_ids: list[Id] | None = None
    password: Password | None = None


class PasswordChange(msgspec.Struct, forbid_unknown_fields=True):
    current_password: Annotated[str, msgspec.Meta(max_length=1024)]
    new_password: Password


class GroupOut(msgspec.Struct):
    id: int
    name: str
    description: str
    created_at: datetime


class GroupCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    description: Annotated[str, msgspec.Meta(max_length=2000)] = ""
