"""Satisfaction surveys in tests: the rating link in what we sent, and a token to rate with."""

from __future__ import annotations

import re

import asyncpg

from helpdesk.config import Settings
from helpdesk.csat import service
from tests.channels.email.builders import add_account, customer_mail, receive_mail
from tests.channels.email.smtp_server import SmtpTestServer

# The rating link in a survey message; group 1 is the token.
LINK = re.compile(r"/csat/([0-9]+\.[0-9]+\.[A-Za-z0-9_-]{22})")


async def survey_token(
    db: asyncpg.Connection, settings: Settings, smtp: SmtpTestServer, language: str | None
) -> str:
    """An email ticket in `language`, solved long enough ago to be asked; its rating token."""
    await add_account(db, smtp)
    ticket_id, _ = await receive_mail(db, customer_mail())
    await db.execute(
        """UPDATE tickets SET language = $2, status = 'solved',
               solved_at = now() - interval '2 hours' WHERE id = $1""",
        ticket_id,
        language,
    )
    await db.execute("UPDATE customers SET language = NULL")
    assert len(await service.ask_due(db, settings)) == 1
    question = await db.fetchval(
        "SELECT body_text FROM messages WHERE ticket_id = $1 AND kind = 'system' "
        "AND body_text LIKE '%/csat/%'",
        ticket_id,
    )
    found = LINK.search(question)
    assert found is not None
    return found.group(1)
