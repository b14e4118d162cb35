"""Email accounts: the mailboxes we receive on and reply from.

Secrets (IMAP/SMTP passwords, the intake secret, the mail providers' webhook keys)
are write-only: responses say only whether one is set. The intake secret and Postmark's
webhook credentials are kept as their SHA-256 and compared in constant time; the Mailgun
signing key is kept as given (it keys an HMAC). Each provider's webhook is closed while
its secret is unset.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from typing import Annotated, Any, Literal

import asyncpg
import msgspec

from helpdesk.agents.models import Principal
from helpdesk.audit import service as audit
from helpdesk.channels.email import queries
from helpdesk.channels.email.providers import credentials_digest, sendgrid_public_key
from helpdesk.errors import Conflict, InvalidInput, NotFound

AccountName = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$(?!\n)")]
Address = Annotated[
    str,
    msgspec.Meta(
        min_length=3,
        max_length=320,
        pattern=r"^[^@\s<>()\[\],;:\"\\]+@[^@\s<>()\[\],;:\"\\]+$(?!\n)",
    ),
]
Host = Annotated[
    str, msgspec.Meta(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9.:_-]+$(?!\n)")
]
Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]
Secret = Annotated[str, msgspec.Meta(min_length=16, max_length=256)]
Password = Annotated[str, msgspec.Meta(max_length=1024)]
# Base64 DER (as SendGrid shows it) or PEM; parsed as a P-256 key when set.
PublicKey = Annotated[str, msgspec.Meta(min_length=64, max_length=4096)]
# `user:password` of Postmark's webhook URL. URL-safe characters only, so what the admin
# types in the URL is byte for byte what Postmark sends as Basic auth.
BasicCredentials = Annotated[
    str, msgspec.Meta(pattern=r"^[A-Za-z0-9._~-]{1,128}:[A-Za-z0-9._~-]{16,256}$(?!\n)")
]
Folder = Annotated[
    str, msgspec.Meta(min_length=1, max_length=200, pattern=r"^[^\r\n\x00\"]+$(?!\n)")
]
DisplayName = Annotated[str, msgspec.Meta(max_length=200, pattern=r"^[^\r\n\x00]*$(?!\n)")]
Security = Literal["none", "starttls", "tls"]
Processed = Literal["seen", "move", "keep"]


class EmailAccount(msgspec.Struct, kw_only=True):
    """Everything the service needs to receive and send; never sent to a client."""

    id: int
    name: str
    address: str
    display_name: str
    reply_to: str | None
    inbound_secret_sha256: bytes | None
    smtp_host: str | None
    smtp_port: int | None
    smtp_security: Security
    smtp_username: str | None
    smtp_password: str | None
    imap_host: str | None
    imap_port: int | None
    imap_security: Security
    imap_username: str | None
    imap_password: str | None
    imap_folder: str
    imap_processed: Processed
    imap_move_to: str | None
    auto_acknowledge: bool
    active: bool
    mailgun_signing_key: str | None = None
    sendgrid_public_key: str | None = None
    postmark_credentials_sha256: bytes | None = None

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2].lower()


class EmailAccountOut(msgspec.Struct):
    id: int
    name: str
    address: str
    display_name: str
    reply_to: str | None
    inbound_secret_set: bool
    mailgun_signing_key_set: bool
    sendgrid_public_key_set: bool
    postmark_credentials_set: bool
    smtp_host: str | None
    smtp_port: int | None
    smtp_security: str
    smtp_username: str | None
    smtp_password_set: bool
    imap_host: str | None
    imap_port: int | None
    imap_security: str
    imap_username: str | None
    imap_password_set: bool
    imap_folder: str
    imap_processed: str
    imap_move_to: str | None
    auto_acknowledge: bool
    active: bool
    created_at: datetime
    updated_at: datetime


class EmailAccountCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: AccountName
    address: Address
    display_name: DisplayName = ""
    reply_to: Address | None = None
    inbound_secret: Secret | None = None
    mailgun_signing_key: Secret | None = None
    sendgrid_public_key: PublicKey | None = None
    postmark_credentials: BasicCredentials | None = None
    smtp_host: Host | None = None
    smtp_port: Port | None = None
    smtp_security: Security = "starttls"
    smtp_username: Password | None = None
    smtp_password: Password | None = None
    imap_host: Host | None = None
    imap_port: Port | None = None
    imap_security: Security = "tls"
    imap_username: Password | None = None
    imap_password: Password | None = None
    imap_folder: Folder = "INBOX"
    imap_processed: Processed = "seen"
    imap_move_to: Folder | None = None
    auto_acknowledge: bool = True
    active: bool = True


class EmailAccountUpdate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Partial change; a field left out keeps its value, `null` clears an optional one."""

    address: Address | msgspec.UnsetType = msgspec.UNSET
    display_name: DisplayName | msgspec.UnsetType = msgspec.UNSET
    reply_to: Address | msgspec.UnsetType | None = msgspec.UNSET
    inbound_secret: Secret | msgspec.UnsetType | None = msgspec.UNSET
    mailgun_signing_key: Secret | msgspec.UnsetType | None = msgspec.UNSET
    sendgrid_public_key: PublicKey | msgspec.UnsetType | None = msgspec.UNSET
    postmark_credentials: BasicCredentials | msgspec.UnsetType | None = msgspec.UNSET
    smtp_host: Host | msgspec.UnsetType | None = msgspec.UNSET
    smtp_port: Port | msgspec.UnsetType | None = msgspec.UNSET
    smtp_security: Security | msgspec.UnsetType = msgspec.UNSET
    smtp_username: Password | msgspec.UnsetType | None = msgspec.UNSET
    smtp_password: Password | msgspec.UnsetType | None = msgspec.UNSET
    imap_host: Host | msgspec.UnsetType | None = msgspec.UNSET
    imap_port: Port | msgspec.UnsetType | None = msgspec.UNSET
    imap_security: Security | msgspec.UnsetType = msgspec.UNSET
    imap_username: Password | msgspec.UnsetType | None = msgspec.UNSET
    imap_password: Password | msgspec.UnsetType | None = msgspec.UNSET
    imap_folder: Folder | msgspec.UnsetType = msgspec.UNSET
    imap_processed: Processed | msgspec.UnsetType = msgspec.UNSET
    imap_move_to: Folder | msgspec.UnsetType | None = msgspec.UNSET
    auto_acknowledge: bool | msgspec.UnsetType = msgspec.UNSET
    active: bool | msgspec.UnsetType = msgspec.UNSET


def secret_digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def secret_matches(account: EmailAccount, presented: str) -> bool:
    """Constant-time check of an intake secret; an account without one accepts nothing."""
    if account.inbound_secret_sha256 is None or not presented:
        return False
    return hmac.compare_digest(account.inbound_secret_sha256, secret_digest(presented))


_FIELDS = [f for f in EmailAccount.__struct_fields__ if f != "id"]


def _account(row: asyncpg.Record) -> EmailAccount:
    return EmailAccount(**{k: row[k] for k in EmailAccount.__struct_fields__})


# What a response says of each secret: only whether its column is set.
_SET_FLAGS = {
    "inbound_secret_set": "inbound_secret_sha256",
    "mailgun_signing_key_set": "mailgun_signing_key",
    "sendgrid_public_key_set": "sendgrid_public_key",
    "postmark_credentials_set": "postmark_credentials_sha256",
    "smtp_password_set": "smtp_password",
    "imap_password_set": "imap_password",
}


def _out(row: asyncpg.Record) -> EmailAccountOut:
    values: dict[str, Any] = {
        k: row[_SET_FLAGS[k]] is not None if k in _SET_FLAGS else row[k]
        for k in EmailAccountOut.__struct_fields__
    }
    return EmailAccountOut(**values)


def _columns(values: dict[str, Any]) -> dict[str, Any]:
    """API field names to column values (hashed secrets are stored as their digest)."""
    if "inbound_secret" in values:
        secret = values.pop("inbound_secret")
        values["inbound_secret_sha256"] = None if secret is None else secret_digest(secret)
    if "postmark_credentials" in values:
        credentials = values.pop("postmark_credentials")
        values["postmark_credentials_sha256"] = (
            None if credentials is None else credentials_digest(credentials)
        )
    if values.get("sendgrid_public_key") is not None:
        try:
            sendgrid_public_key(values["sendgrid_public_key"])
        except ValueError:
            raise InvalidInput(
                "Not an ECDSA P-256 public key (base64 DER as SendGrid shows it, or PEM)",
                field="sendgrid_public_key",
            ) from None
        values["sendgrid_public_key"] = values["sendgrid_public_key"].strip()
    return values


async def get_account(conn: asyncpg.Connection, name: str) -> EmailAccount | None:
    row = await conn.fetchrow(queries.ACCOUNT, name)
    return None if row is None else _account(row)


async def active_imap_accounts(conn: asyncpg.Connection) -> list[EmailAccount]:
    rows = await conn.fetch(queries.ACTIVE_IMAP_ACCOUNTS)
    return [_account(r) for r in rows]


async def own_addresses(conn: asyncpg.Connection) -> set[str]:
    """Every address we send from: mail from one of them is our own and never answered."""
    rows = await conn.fetch(queries.OWN_ADDRESSES)
    found = {r["address"].lower() for r in rows}
    found.update(r["reply_to"].lower() for r in rows if r["reply_to"])
    return found


async def list_accounts(conn: asyncpg.Connection) -> list[EmailAccountOut]:
    return [_out(r) for r in await conn.fetch(queries.ALL_ACCOUNTS)]


async def read_account(conn: asyncpg.Connection, name: str) -> EmailAccountOut:
    row = await conn.fetchrow(queries.ACCOUNT, name)
    if row is None:
        raise NotFound("No such email account")
    return _out(row)


async def create_account(
    conn: asyncpg.Connection, data: EmailAccountCreate, actor: Principal | None = None
) -> EmailAccountOut:
    values = _columns(msgspec.structs.asdict(data))
    try:
        row = await conn.fetchrow(queries.insert_account(list(values)), *values.values())
    except asyncpg.UniqueViolationError:
        raise Conflict("An email account with this name already exists") from None
    except asyncpg.CheckViolationError:
        raise Conflict("imap_processed 'move' needs imap_move_to") from None
    await audit.record(
        conn,
        action="email_account.create",
        outcome="allowed",
        actor=actor,
        object_type="email_account",
        object_id=row["id"],
        detail={"fields": sorted(k for k in values if k in _FIELDS)},
    )
    return _out(row)


async def update_account(
    conn: asyncpg.Connection, name: str, data: EmailAccountUpdate, actor: Principal | None = None
) -> EmailAccountOut:
    values = _columns(
        {
            k: getattr(data, k)
            for k in data.__struct_fields__
            if getattr(data, k) is not msgspec.UNSET
        }
    )
    if not values:
        return await read_account(conn, name)
    try:
        row = await conn.fetchrow(queries.update_account(list(values)), name, *values.values())
    except asyncpg.CheckViolationError:
        raise Conflict("imap_processed 'move' needs imap_move_to") from None
    if row is None:
        raise NotFound("No such email account")
    await audit.record(
        conn,
        action="email_account.update",
        outcome="allowed",
        actor=actor,
        object_type="email_account",
        object_id=row["id"],
        detail={"fields": sorted(values)},  # names only: values may be secrets
    )
    return _out(row)
