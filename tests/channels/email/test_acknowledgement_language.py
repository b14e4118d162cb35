"""A new email ticket is acknowledged in the language its customer writes, as chat is."""

from __future__ import annotations

import asyncpg
import msgspec
import pytest

from helpdesk.channels.email.accounts import get_account
from helpdesk.channels.email.receive import receive
from helpdesk.config import Settings
from tests.channels.email.builders import mail, support_account

CZECH = "Dobrý den, objednal jsem si hrnek a přišel rozbitý. Prosím o výměnu, děkuji."
SLOVAK = "Dobrý deň, objednal som si hrnček a prišiel rozbitý. Prosím o výmenu, ďakujem."
ENGLISH = "Hello, I ordered a mug and it arrived broken. Could you please replace it?"


async def acknowledgement(db: asyncpg.Connection, settings: Settings, body: str) -> str:
    account = await get_account(db, "support") or await support_account(db)
    receipt = await receive(
        db, settings, account, mail(sender="Jana <jana@mail.example.com>", body=body), source="cli"
    )
    assert receipt.outcome == "stored" and receipt.created_ticket
    text: str = await db.fetchval(
        "SELECT body_text FROM messages WHERE ticket_id = $1 AND kind = 'system'",
        receipt.ticket_id,
    )
    return text


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (CZECH, "Děkujeme za Vaši zprávu. Založili jsme požadavek #"),
        (SLOVAK, "Ďakujeme za Vašu správu. Založili sme požiadavku #"),
        (ENGLISH, "Thank you for your message. We have opened ticket #"),
    ],
)
async def test_acknowledgement_speaks_the_customers_language(
    db: asyncpg.Connection, settings: Settings, body: str, expected: str
) -> None:
    text = await acknowledgement(db, settings, body)
    assert text.startswith(expected)
    assert f"{settings.sla.first_response_minutes} min" in text


async def test_the_customers_profile_language_wins_over_the_detected_one(
    db: asyncpg.Connection, settings: Settings
) -> None:
    settings = msgspec.structs.replace(
        settings, email=msgspec.structs.replace(settings.email, auto_reply_limit_per_hour=5)
    )
    await acknowledgement(db, settings, CZECH)
    await db.execute("UPDATE customers SET language = 'en'")  # an agent set it on the profile
    account = await get_account(db, "support")
    assert account is not None
    again = mail(
        sender="Jana <jana@mail.example.com>",
        message_id="<m2@customer.example>",
        subject="Jina vec",
        body=CZECH,
    )
    receipt = await receive(db, settings, account, again, source="cli")
    assert receipt.created_ticket
    text = await db.fetchval(
        "SELECT body_text FROM messages WHERE ticket_id = $1 AND kind = 'system'",
        receipt.ticket_id,
    )
    assert text.startswith("Thank you for your message.")


async def test_acknowledgement_and_routing_agree_on_the_language(
    db: asyncpg.Connection, settings: Settings
) -> None:
    from helpdesk.routing import service as routing

    text = await acknowledgement(db, settings, SLOVAK)
    ticket_id = await db.fetchval("SELECT id FROM tickets")
    async with db.transaction():
        await routing.route(db, ticket_id, settings)
    assert await db.fetchval("SELECT language FROM tickets WHERE id = $1", ticket_id) == "sk"
    assert text.startswith("Ďakujeme")
