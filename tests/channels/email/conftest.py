"""Fixtures of the email channel's tests: a real Dovecot (once per session) and a pool."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from helpdesk.config import Settings
from helpdesk.db.pool import create_pool
from tests.channels.email.dovecot import Dovecot, Mailbox, start_dovecot


@pytest.fixture(scope="session")
def dovecot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dovecot]:
    server = start_dovecot(tmp_path_factory.mktemp("dovecot"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def private_dovecot(tmp_path: Path) -> Iterator[Dovecot]:
    """A Dovecot of the test's own, for failed logins: after one, Dovecot delays every
    later login from the same address by seconds (its auth penalty), which would slow
    down every other test on the shared server."""
    server = start_dovecot(tmp_path / "dovecot")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def mailbox(dovecot: Dovecot) -> Mailbox:
    """An IMAP user of its own, with an empty INBOX."""
    return dovecot.new_mailbox()


@pytest.fixture
async def pool(db: asyncpg.Connection, settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the test database (tables already emptied by `db`)."""
    created = await create_pool(settings.database_url, 1, 5)
    try:
        yield created
    finally:
        await created.close()
