"""Per-purpose secret keys kept in PostgreSQL (`signing_keys`), so that every replica
signs and verifies with the same key without configuration (CSAT links, known-device
tokens)."""

from __future__ import annotations

import secrets

import asyncpg


async def signing_key(conn: asyncpg.Connection, name: str) -> str:
    """The key named `name`, created on first use (concurrent first uses agree on one)."""
    await conn.execute(
        "INSERT INTO signing_keys (name, key) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        name,
        secrets.token_urlsafe(32),
    )
    key: str = await conn.fetchval("SELECT key FROM signing_keys WHERE name = $1", name)
    return key
