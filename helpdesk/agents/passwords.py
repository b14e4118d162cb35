"""Argon2id password hashing, run in a thread so the event loop keeps serving."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from helpdesk.config import AuthSettings

# Verified against when the e-mail is unknown, so a miss costs as much as a wrong password.
_DUMMY_PASSWORD = "not-a-real-password-just-for-timing"  # noqa: S105


class Passwords:
    def __init__(self, settings: AuthSettings) -> None:
        self.hasher = PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
        )
        self._dummy_hash = self.hasher.hash(_DUMMY_PASSWORD)

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self.hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """True when `password` matches; an agent without a password never matches."""
        target = password_hash or self._dummy_hash

        def check() -> bool:
            try:
                return self.hasher.verify(target, password) and password_hash is not None
            except (VerificationError, InvalidHashError):
                return False

        return await asyncio.to_thread(check)

    def needs_rehash(self, password_hash: str) -> bool:
        return self.hasher.check_needs_rehash(password_hash)
