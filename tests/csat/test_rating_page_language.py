"""The rating page speaks the customer's language (Czech, Slovak, English), or the one
chosen with `?lang=`; so does the page for a link that is not valid."""

from __future__ import annotations

import asyncpg
import pytest

from helpdesk.config import Settings
from helpdesk.csat import page
from tests.channels.email.smtp_server import SmtpTestServer
from tests.conftest import Client

# tests/console imports LINK from here.
from tests.csat.surveys import LINK as LINK
from tests.csat.surveys import survey_token


@pytest.mark.parametrize(
    ("language", "title", "rated", "thanks"),
    [
        ("cs", "Jak jsme si vedli?", "Vaše hodnocení: 4 z 5. Děkujeme!", "Děkujeme!"),
        ("sk", "Ako sme si viedli?", "Vaše hodnotenie: 4 z 5. Ďakujeme!", "Ďakujeme!"),
        ("en", "How did we do?", "Your rating: 4 of 5. Thank you!", "Thank you!"),
    ],
)
async def test_rating_page_speaks_the_tickets_language(
    client: Client,
    db: asyncpg.Connection,
    settings: Settings,
    smtp: SmtpTestServer,
    language: str,
    title: str,
    rated: str,
    thanks: str,
) -> None:
    token = await survey_token(db, settings, smtp, language)

    shown = await client.get(f"/csat/{token}")
    assert shown.status_code == 200
    assert f'<html lang="{language}">' in shown.text
    assert f"<h1>{title}</h1>" in shown.text
    clicked = await client.get(f"/csat/{token}", params={"rating": 4})
    assert rated in clicked.text
    commented = await client.post(f"/csat/{token}", data={"comment": "ok"})
    assert commented.status_code == 200
    assert f"<h1>{thanks}</h1>" in commented.text


async def test_lang_parameter_wins_and_stays_on_the_links(
    client: Client, db: asyncpg.Connection, settings: Settings, smtp: SmtpTestServer
) -> None:
    token = await survey_token(db, settings, smtp, "cs")

    shown = await client.get(f"/csat/{token}", params={"lang": "en"})

    assert "<h1>How did we do?</h1>" in shown.text
    assert f'href="/csat/{token}?rating=5&amp;lang=en">5 (excellent)</a>' in shown.text
    assert f'action="/csat/{token}?lang=en"' in shown.text
    posted = await client.post(f"/csat/{token}", params={"lang": "sk"}, data={"rating": "5"})
    assert "<h1>Ďakujeme!</h1>" in posted.text
    unknown = await client.get(f"/csat/{token}", params={"lang": "de"})
    assert "<h1>Jak jsme si vedli?</h1>" in unknown.text  # not offered: the ticket's


async def test_a_ticket_without_a_language_gets_english(
    client: Client, db: asyncpg.Connection, settings: Settings, smtp: SmtpTestServer
) -> None:
    token = await survey_token(db, settings, smtp, None)
    assert "<h1>How did we do?</h1>" in (await client.get(f"/csat/{token}")).text


async def test_invalid_link_page_follows_lang_then_the_browser(client: Client) -> None:
    forged = "1.1." + "A" * 22
    slovak = await client.get(f"/csat/{forged}", headers={"accept-language": "de, sk;q=0.8"})
    assert slovak.status_code == 404
    assert "<h1>Tento odkaz nie je platný</h1>" in slovak.text
    czech = await client.get(
        f"/csat/{forged}", params={"lang": "cs"}, headers={"accept-language": "sk"}
    )
    assert "<h1>Tento odkaz není platný</h1>" in czech.text
    english = await client.get(f"/csat/{forged}")
    assert "<h1>This link is not valid</h1>" in english.text


def test_accept_language_is_read_by_its_quality_order() -> None:
    assert page.from_accept_language("en;q=0.5, cs-CZ;q=0.9, de") == "cs"
    assert page.from_accept_language("de, fr") is None
    assert page.from_accept_language("sk;q=0") is None
    assert page.choose("SK", "cs", "en") == "sk"
