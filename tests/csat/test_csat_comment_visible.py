"""What the customer wrote with their rating reaches the agents who may see the ticket."""

from __future__ import annotations

import asyncpg

from helpdesk.config import Settings
from helpdesk.csat import service
from tests.channels.email.builders import add_account, customer_mail, receive_mail
from tests.channels.email.smtp_server import SmtpTestServer
from tests.conftest import Client, Factory
from tests.csat.surveys import LINK


async def rated_ticket(
    client: Client,
    db: asyncpg.Connection,
    settings: Settings,
    message_id: str,
    rating: int,
    comment: str,
) -> int:
    """An email ticket of Jana, solved, asked, rated with a comment; its id."""
    ticket_id, _ = await receive_mail(db, customer_mail(message_id=message_id))
    await db.execute(
        """UPDATE tickets SET status = 'solved', solved_at = now() - interval '2 hours'
           WHERE id = $1""",
        ticket_id,
    )
    await service.ask_due(db, settings)
    question = await db.fetchval(
        "SELECT body_text FROM messages WHERE ticket_id = $1 AND body_text LIKE '%/csat/%'",
        ticket_id,
    )
    token = LINK.search(question).group(1)  # type: ignore[union-attr]
    answered = await client.post(f"/csat/{token}", data={"rating": str(rating), "comment": comment})
    assert answered.status_code == 200, answered.text
    return ticket_id


async def test_ticket_and_customer_show_the_rating_comment_within_the_agents_scope(
    client: Client,
    db: asyncpg.Connection,
    factory: Factory,
    settings: Settings,
    smtp: SmtpTestServer,
) -> None:
    await add_account(db, smtp)
    ours = await factory.group()
    theirs = await factory.group()
    agent = await factory.agent("agent")
    partner = await factory.agent("partner", group_ids=[ours])
    first = await rated_ticket(client, db, settings, "<a@customer.example>", 2, "Trvalo to týden.")
    second = await rated_ticket(client, db, settings, "<b@customer.example>", 5, "Díky!")
    await db.execute("UPDATE tickets SET group_id = $2 WHERE id = $1", first, ours)
    await db.execute("UPDATE tickets SET group_id = $2 WHERE id = $1", second, theirs)

    detail = await client.get(f"/tickets/{first}", headers=agent.headers)
    assert detail.status_code == 200, detail.text
    csat = detail.json()["csat"]
    assert (csat["status"], csat["rating"], csat["comment"]) == ("answered", 2, "Trvalo to týden.")
    assert csat["channel"] == "email" and csat["answered_at"] is not None
    seen = await client.get(f"/tickets/{first}", headers=partner.headers)
    assert seen.json()["csat"]["comment"] == "Trvalo to týden."
    assert (await client.get(f"/tickets/{second}", headers=partner.headers)).status_code == 404

    customer_id = await db.fetchval("SELECT customer_id FROM tickets WHERE id = $1", first)
    profile = await client.get(f"/customers/{customer_id}", headers=agent.headers)
    assert profile.status_code == 200, profile.text
    assert [(r["ticket_id"], r["rating"], r["comment"]) for r in profile.json()["csat"]] == [
        (second, 5, "Díky!"),
        (first, 2, "Trvalo to týden."),
    ]
    narrow = await client.get(f"/customers/{customer_id}", headers=partner.headers)
    assert [r["ticket_id"] for r in narrow.json()["csat"]] == [first]
    assert "Díky!" not in narrow.text


async def test_a_ticket_without_survey_has_no_csat_and_an_unanswered_one_no_rating(
    client: Client,
    db: asyncpg.Connection,
    factory: Factory,
    settings: Settings,
    smtp: SmtpTestServer,
) -> None:
    await add_account(db, smtp)
    agent = await factory.agent("agent")
    ticket_id, _ = await receive_mail(db, customer_mail())
    assert (await client.get(f"/tickets/{ticket_id}", headers=agent.headers)).json()["csat"] is None
    await db.execute("UPDATE tickets SET status = 'solved', solved_at = now() - interval '2 hours'")
    await service.ask_due(db, settings)
    csat = (await client.get(f"/tickets/{ticket_id}", headers=agent.headers)).json()["csat"]
    assert (csat["status"], csat["rating"], csat["comment"]) == ("sent", None, None)


async def test_supervisors_read_the_comments_in_the_csat_responses_report(
    client: Client,
    db: asyncpg.Connection,
    factory: Factory,
    settings: Settings,
    smtp: SmtpTestServer,
) -> None:
    await add_account(db, smtp)
    supervisor = await factory.agent("supervisor")
    agent = await factory.agent("agent")
    low = await rated_ticket(client, db, settings, "<a@customer.example>", 2, "Trvalo to týden.")
    high = await rated_ticket(client, db, settings, "<b@customer.example>", 5, "Díky!")
    await db.execute("UPDATE csat_surveys SET comment = NULL WHERE ticket_id = $1", high)

    report = await client.get("/csat/responses", headers=supervisor.headers)
    assert report.status_code == 200, report.text
    assert [(r["ticket_id"], r["rating"], r["comment"]) for r in report.json()] == [
        (high, 5, None),
        (low, 2, "Trvalo to týden."),
    ]
    low_only = await client.get("/csat/responses", params={"rating": 2}, headers=supervisor.headers)
    assert [r["ticket_id"] for r in low_only.json()] == [low]
    commented = await client.get(
        "/csat/responses", params={"with_comment": "true"}, headers=supervisor.headers
    )
    assert [r["comment"] for r in commented.json()] == ["Trvalo to týden."]
    assert (await client.get("/csat/responses", headers=agent.headers)).status_code == 403
    bad = await client.get("/csat/responses", params={"rating": 9}, headers=supervisor.headers)
    assert bad.status_code == 400
    assert bad.headers["content-type"].startswith("application/problem+json")
