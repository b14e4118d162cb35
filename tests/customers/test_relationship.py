"""Customer relationships on the real database and worker: imports with orders, lifecycle
stages and their history, bad experiences and the at-risk flag, satisfaction surveys over
real channel test servers, and the rating page's defences (docs/reliability.md rows A4, A5, B6)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from helpdesk.config import CustomerSettings, Settings
from helpdesk.csat import tokens
from helpdesk.customers.lifecycle import derive
from tests.channels.email.builders import (
    CUSTOMER,
    add_account,
    customer_mail,
    receive_mail,
)
from tests.channels.email.smtp_server import SmtpTestServer
from tests.channels.replies import run_worker
from tests.channels.telegram.conftest import bot_account, bot_api  # noqa: F401 (fixtures)
from tests.conftest import AgentHandle, Client, Factory, solve_through_api

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
RULES = CustomerSettings()


def test_stages_follow_orders_and_inactivity() -> None:
    def days_ago(n: int, total: float = 1000.0) -> tuple[datetime, float]:
        return NOW - timedelta(days=n), total

    assert derive([], NOW, RULES)[0] == "prospect"
    assert derive([days_ago(3)], NOW, RULES) == ("first_time", "first order")
    assert derive([days_ago(30), days_ago(3)], NOW, RULES)[0] == "repeat"
    assert derive([days_ago(n) for n in (1, 50, 100, 200, 300)], NOW, RULES)[0] == "loyal"
    big = derive([days_ago(10, 15000.0), days_ago(20, 6000.0)], NOW, RULES)
    assert big == ("loyal", "revenue 21000.00 in 365 days")
    old = [days_ago(n) for n in (400, 500, 600, 700, 800)]  # loyal once, silent for a year
    assert derive(old, NOW, RULES) == ("inactive", "no order for 365 days")


async def upsert(client: Client, admin: AgentHandle, **body: Any) -> dict[str, Any]:
    response = await client.post("/customers/upsert", json=body, headers=admin.headers)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def order(external_id: str, days_ago: int, total: float = 990.0) -> dict[str, Any]:
    return {
        "external_id": external_id,
        "ordered_at": (datetime.now(UTC) - timedelta(days=days_ago)).isoformat(),
        "total": total,
        "number": external_id.upper(),
    }


async def test_import_orders_moves_the_stage_and_records_why(
    client: Client, db: asyncpg.Connection, factory: Factory
) -> None:
    admin = await factory.agent("admin")
    first = await upsert(
        client,
        admin,
        external_id="shop-17",
        name="Jana Nováková",
        email="jana@example.cz",
        orders=[order("o-1", 40)],
    )
    assert (first["created"], first["stage"]) == (True, "first_time")
    again = await upsert(client, admin, external_id="shop-17", orders=[order("o-2", 2)])
    assert (again["created"], again["customer_id"], again["stage"]) == (
        False,
        first["customer_id"],
        "repeat",
    )
    # The same order sent again is an update, not a third order.
    await upsert(client, admin, external_id="shop-17", orders=[order("o-2", 2, 1200.0)])
    detail = (await client.get(f"/customers/{first['customer_id']}", headers=admin.headers)).json()
    assert [o["external_id"] for o in detail["orders"]] == ["o-2", "o-1"]
    assert detail["orders"][0]["total"] == 1200.0
    assert [(h["from_stage"], h["to_stage"], h["cause"]) for h in detail["stage_history"]] == [
        ("first_time", "repeat", "2 orders"),
        ("prospect", "first_time", "first order"),
    ]
    agent = await factory.agent("agent")
    response = await client.post(
        f"/customers/{first['customer_id']}/stage",
        json={"stage": "advocate", "reason": "recommends us on Instagram"},
        headers=agent.headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["customer"]["lifecycle_stage"] == "advocate"
    kept = await upsert(client, admin, external_id="shop-17", orders=[order("o-3", 1)])
    assert kept["stage"] == "advocate"  # set by hand: the rules leave it
    assert (
        await client.post("/customers/upsert", json={"external_id": "x"}, headers=agent.headers)
    ).status_code == 403


async def test_a_batch_links_a_known_email_instead_of_duplicating(
    client: Client, db: asyncpg.Connection, factory: Factory
) -> None:
    admin = await factory.agent("admin")
    known = await db.fetchval(
        "INSERT INTO customers (name, email) VALUES ('Jana', 'jana@example.cz') RETURNING id"
    )
    response = await client.post(
        "/customers/batch",
        json={
            "customers": [
                {"external_id": "c-1", "email": "Jana@Example.cz", "orders": [order("b-1", 5)]},
                {"external_id": "c-2", "name": "Petr", "organization": "Petr s.r.o."},
            ]
        },
        headers=admin.headers,
    )
    assert response.status_code == 200, response.text
    first, second = response.json()
    assert first["customer_id"] == known and not first["created"]
    assert second["created"] and second["stage"] == "prospect"
    bad = await client.post(
        "/customers/batch",
        json={"customers": [{"external_id": "c-3"}, {"external_id": "c 4"}]},
        headers=admin.headers,
    )
    assert bad.status_code == 400
    assert await db.fetchval("SELECT count(*) FROM customers WHERE external_id = 'c-3'") == 0


async def test_stage_and_risk_choose_a_tighter_sla_policy(
    client: Client, db: asyncpg.Connection, factory: Factory, settings: Settings
) -> None:
    admin = await factory.agent("admin")
    for name, conditions, minutes, position in (
        ("At risk", {"customer": {"at_risk": [True]}}, 15, 1),
        ("Loyal", {"customer": {"lifecycle_stage": ["loyal"]}}, 30, 2),
        ("Default", {}, 60, 3),
    ):
        response = await client.post(
            "/sla/policies",
            json={
                "name": name,
                "conditions": conditions,
                "first_response_minutes": minutes,
                "position": position,
            },
            headers=admin.headers,
        )
        assert response.status_code == 201, response.text
    loyal = await upsert(
        client,
        admin,
        external_id="vip",
        email="vip@example.cz",
        orders=[order(f"v-{i}", i * 10) for i in range(1, 6)],
    )
    assert loyal["stage"] == "loyal"
    agent = await factory.agent("agent")
    ticket = await factory.ticket(client, agent, customer={"email": "vip@example.cz"})
    assert (
        await db.fetchval("SELECT sla_policy_name FROM tickets WHERE id = $1", ticket["id"])
        == "Loyal"
    )
    # Three bad experiences: flagged at risk by the worker, and the open ticket follows.
    for _ in range(3):
        other = await factory.ticket(client, agent, customer={"email": "vip@example.cz"})
        await db.execute(
            """INSERT INTO bad_experiences (customer_id, ticket_id, kind)
               VALUES ($1, $2, 'reopened')""",
            loyal["customer_id"],
            other["id"],
        )
    supervisor = await factory.agent("supervisor")
    await run_worker(settings)
    assert await db.fetchval("SELECT at_risk FROM customers WHERE id = $1", loyal["customer_id"])
    assert (
        await db.fetchval("SELECT sla_policy_name FROM tickets WHERE id = $1", ticket["id"])
        == "At risk"
    )
    shown = (await client.get(f"/tickets/{ticket['id']}", headers=agent.headers)).json()
    assert shown["customer"]["at_risk"] is True
    assert shown["customer"]["lifecycle_stage"] == "loyal"
    assert len(shown["customer"]["at_risk_reasons"]) == 3
    listed = (await client.get("/customers/at-risk", headers=supervisor.headers)).json()
    assert [c["customer"]["id"] for c in listed] == [loyal["customer_id"]]
    assert [r["kind"] for r in listed[0]["reasons"]] == ["reopened"] * 3
    assert (
        await db.fetchval(
            "SELECT count(*) FROM notifications WHERE agent_id = $1 AND kind = 'customer_at_risk'",
            supervisor.id,
        )
        == 1
    )
    assert (await client.get("/customers/at-risk", headers=agent.headers)).status_code == 403


async def test_bad_experiences_outside_the_window_do_not_flag(
    client: Client, db: asyncpg.Connection, factory: Factory, settings: Settings
) -> None:
    agent = await factory.agent("agent")
    tickets = [
        await factory.ticket(client, agent, customer={"email": "petr@example.cz"}) for _ in range(3)
    ]
    customer = await db.fetchval("SELECT customer_id FROM tickets WHERE id = $1", tickets[0]["id"])
    for ticket, age in zip(tickets, (100, 10, 1), strict=True):  # one is 100 days old
        await db.execute(
            """INSERT INTO bad_experiences (customer_id, ticket_id, kind, created_at)
               VALUES ($1, $2, 'low_rating', now() - make_interval(days => $3))""",
            customer,
            ticket["id"],
            age,
        )
    await run_worker(settings)
    assert not await db.fetchval("SELECT at_risk FROM customers WHERE id = $1", customer)


async def test_reopening_a_solved_ticket_is_a_bad_experience(
    client: Client, db: asyncpg.Connection, factory: Factory
) -> None:
    agent = await factory.agent("agent")
    ticket = await factory.ticket(client, agent)
    version = ticket["version"]
    for status in ("solved", "open"):
        response = await client.patch(
            f"/tickets/{ticket['id']}",
            json={"status": status},
            headers={**agent.headers, "If-Match": f'"{version}"'},
        )
        assert response.status_code == 200, response.text
        version = response.json()["version"]
    kinds = await db.fetch("SELECT kind FROM bad_experiences WHERE ticket_id = $1", ticket["id"])
    assert [k["kind"] for k in kinds] == ["reopened"]
    detail = await db.fetchval(
        "SELECT detail FROM bad_experiences WHERE ticket_id = $1", ticket["id"]
    )
    assert detail == "reopened by an agent"


# --- CSAT ---------------------------------------------------------------------------------


async def solve(client: Client, db: asyncpg.Connection, agent: AgentHandle, ticket_id: int) -> None:
    await solve_through_api(client, db, agent, ticket_id)
    # The survey waits `csat.delay_minutes`: move the solve into the past.
    await db.execute(
        "UPDATE tickets SET solved_at = solved_at - interval '61 minutes' WHERE id = $1",
        ticket_id,
    )


LINK = re.compile(r"/csat/([0-9]+\.[0-9]+\.[A-Za-z0-9_-]{22})")


async def test_email_survey_link_rates_once_per_ticket_and_a_low_rating_alerts(
    client: Client,
    db: asyncpg.Connection,
    factory: Factory,
    settings: Settings,
    smtp: SmtpTestServer,
) -> None:
    await add_account(db, smtp)
    group = await factory.group()
    supervisor = await factory.agent("supervisor", group_ids=[group])
    agent = await factory.agent("agent", group_ids=[group])
    ticket_id, _ = await receive_mail(db, customer_mail())
    await db.execute("UPDATE tickets SET group_id = $2 WHERE id = $1", ticket_id, group)
    await solve(client, db, agent, ticket_id)
    await run_worker(settings)
    await run_worker(settings)  # a second sweep asks nobody twice

    surveys = [m for m in smtp.received if "/csat/" in m.data.decode(errors="replace")]
    assert len(surveys) == 1
    mail = surveys[0].message
    assert surveys[0].rcpt_tos == [CUSTOMER]
    assert mail["Auto-Submitted"] == "auto-replied"  # no auto-responder answers it
    token = LINK.search(mail.get_body(("plain",)).get_content()).group(1)  # type: ignore[union-attr]

    page = await client.get(f"/csat/{token}", params={"rating": 2})
    assert page.status_code == 200
    assert "Vaše hodnocení: 2 z 5" in page.text  # Jana writes Czech: the page speaks it
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    assert await db.fetchval("SELECT csat_rating FROM tickets WHERE id = $1", ticket_id) == 2
    customer = await db.fetchrow(
        "SELECT csat_average, csat_count FROM customers c JOIN tickets t ON t.customer_id = c.id "
        "WHERE t.id = $1",
        ticket_id,
    )
    assert (customer["csat_average"], customer["csat_count"]) == (2.0, 1)
    assert (
        await db.fetchval(
            "SELECT count(*) FROM notifications WHERE agent_id = $1 AND kind = 'csat_low'",
            supervisor.id,
        )
        == 1
    )
    assert (
        await db.fetchval("SELECT kind FROM bad_experiences WHERE ticket_id = $1", ticket_id)
        == "low_rating"
    )

    # A comment comes back escaped (B6); the customer may change nothing else (A5).
    comment = await client.post(
        f"/csat/{token}", data={"comment": "<script>alert(1)</script> pomalé"}
    )
    assert comment.status_code == 200
    assert "<script>" not in comment.text
    stored = await db.fetchval("SELECT comment FROM csat_surveys")
    assert stored == "<script>alert(1)</script> pomalé"
    sneaky = await client.post(
        f"/csat/{token}", json={"rating": 5, "assignee_id": agent.id, "customer_id": 1}
    )
    assert sneaky.status_code == 400
    assert await db.fetchval("SELECT rating FROM csat_surveys") == 2

    metrics = await client.get(
        "/csat/metrics", params={"by": "channel"}, headers=supervisor.headers
    )
    assert metrics.status_code == 200, metrics.text
    (row,) = metrics.json()
    assert (row["key"], row["sent"], row["answered"], row["average"]) == ("email", 1, 1, 2.0)


async def test_forged_expired_and_foreign_links_get_the_same_404_then_429(
    client: Client,
    db: asyncpg.Connection,
    factory: Factory,
    settings: Settings,
    smtp: SmtpTestServer,
) -> None:
    await add_account(db, smtp)
    agent = await factory.agent("agent")
    first, _ = await receive_mail(db, customer_mail())
    second, _ = await receive_mail(
        db, customer_mail(message_id="<m2@customer.example>", subject="Jiný dotaz")
    )
    for ticket_id in (first, second):
        await solve(client, db, agent, ticket_id)
    await run_worker(settings)
    surveys = {
        r["ticket_id"]: r["id"] for r in await db.fetch("SELECT id, ticket_id FROM csat_surveys")
    }
    key = await db.fetchval("SELECT key FROM signing_keys WHERE name = 'csat'")
    later = datetime.now(UTC) + timedelta(days=1)
    good = tokens.sign(key, surveys[first], first, later)
    other_ticket = tokens.sign(key, surveys[first], second, later)  # survey 1, ticket 2
    forged = tokens.sign("not-the-key", surveys[first], first, later)
    expired = tokens.sign(key, surveys[first], first, datetime.now(UTC) - timedelta(seconds=1))
    walked = f"{surveys[first] + 100}.{int(later.timestamp())}.{'A' * 22}"
    bodies = set()
    for token in (other_ticket, forged, expired, walked, "garbage"):
        response = await client.get(f"/csat/{token}", params={"rating": 5})
        assert response.status_code == 404, token
        bodies.add(response.text)
    assert len(bodies) == 1  # nothing tells which check failed
    assert await db.fetchval("SELECT count(*) FROM csat_surveys WHERE rating IS NOT NULL") == 0
    assert (await client.get(f"/csat/{good}", params={"rating": 5})).status_code == 200

    statuses = [
        (await client.get(f"/csat/{surveys[first]}.1.{'B' * 22}")).status_code for _ in range(40)
    ]
    assert 429 in statuses and set(statuses) <= {404, 429}


async def test_no_survey_after_a_reopen_or_for_auto_submitted_mail(
    client: Client,
    db: asyncpg.Connection,
    factory: Factory,
    settings: Settings,
    smtp: SmtpTestServer,
) -> None:
    await add_account(db, smtp)
    agent = await factory.agent("agent")
    reopened, _ = await receive_mail(db, customer_mail())
    await solve(client, db, agent, reopened)
    await receive_mail(
        db,
        customer_mail(
            message_id="<m3@customer.example>",
            in_reply_to="<m1@customer.example>",
            body="Ještě jedna věc.",
        ),
    )  # the customer writes again before the survey: reopened, not asked
    auto_raw = customer_mail(message_id="<ooo@customer.example>", subject="Out of office")
    auto_raw = auto_raw.replace(b"Subject:", b"Auto-Submitted: auto-replied\r\nSubject:", 1)
    automatic, _ = await receive_mail(db, auto_raw)
    await solve(client, db, agent, automatic)
    await run_worker(settings)

    rows = {r["ticket_id"]: r for r in await db.fetch("SELECT * FROM csat_surveys")}
    assert reopened not in rows
    assert rows[automatic]["status"] == "cancelled"
    assert "auto-submitted" in rows[automatic]["reason"]
    assert not [m for m in smtp.received if "/csat/" in m.data.decode(errors="replace")]


async def test_telegram_survey_has_rating_buttons_only_the_customer_can_press(
    client: Client,
    db: asyncpg.Connection,
    factory: Factory,
    settings: Settings,
    bot_api: Any,  # noqa: F811 (the fixture)
    bot_account: str,  # noqa: F811
) -> None:
    from tests.channels.telegram import payloads as tg
    from tests.channels.telegram.conftest import customer_ticket, deliver

    ticket_id = await customer_ticket(client, db, settings, "Dobrý den, kde je zásilka?")
    agent = await factory.agent("agent")
    await solve(client, db, agent, ticket_id)
    await run_worker(settings)

    (call,) = bot_api.calls_of("sendMessage")
    assert "/csat/" in call.params["text"]  # the link works too
    keyboard = json.loads(call.params["reply_markup"])["inline_keyboard"]
    assert [b["text"] for b in keyboard[0]] == ["1", "2", "3", "4", "5"]
    five = keyboard[0][4]["callback_data"]
    assert len(five.encode()) <= 64  # Telegram's limit for callback data

    def press(update_id: int, user: dict[str, Any]) -> dict[str, Any]:
        return {
            "update_id": update_id,
            "callback_query": {
                "id": f"4382bfdwdsb323b2d{update_id}",
                "from": user,
                "chat_instance": "-1234",
                "data": five,
                "message": {"message_id": 7, "date": tg.DATE, "chat": tg.CHAT, "text": "?"},
            },
        }

    stranger = {**tg.USER, "id": 2222222, "first_name": "Cizí"}
    assert (await deliver(client, press(20001, stranger))).status_code == 200
    await run_worker(settings)
    assert await db.fetchval("SELECT rating FROM csat_surveys") is None
    assert (await deliver(client, press(20002, tg.USER))).status_code == 200
    assert (await deliver(client, press(20002, tg.USER))).status_code == 200  # redelivered
    await run_worker(settings)
    assert await db.fetchval("SELECT rating FROM csat_surveys") == 5
    answers = [c.params.get("text", "") for c in bot_api.calls_of("answerCallbackQuery")]
    assert answers == ["Only the customer who was asked can rate", "Thank you! Your rating: 5 of 5"]


async def test_slack_survey_buttons_come_back_signed_to_the_interactivity_endpoint(
    client: Client,
    db: asyncpg.Connection,
    factory: Factory,
    settings: Settings,
) -> None:
    from urllib.parse import urlencode

    from tests.channels.slack import payloads as sp
    from tests.channels.slack.conftest import ROOT_TS, SIGNING_SECRET, TOKEN, deliver
    from tests.channels.slack.conftest import add_account as add_slack_account
    from tests.channels.slack.fake_slack_api import FakeSlackApi

    slack = FakeSlackApi(TOKEN)
    await slack.start()
    try:
        await add_slack_account(db, slack.base_url)
        assert (await deliver(client, sp.message("Ev0001", ROOT_TS, "Dotaz"))).status_code == 200
        await run_worker(settings)
        ticket_id = await db.fetchval("SELECT id FROM tickets")
        agent = await factory.agent("agent")
        await solve(client, db, agent, ticket_id)
        await run_worker(settings)

        (post,) = slack.calls_of("chat.postMessage")
        blocks = post.params["blocks"]
        blocks = json.loads(blocks) if isinstance(blocks, str) else blocks
        buttons = blocks[1]["elements"]
        assert [b["text"]["text"] for b in buttons] == ["1", "2", "3", "4", "5"]
        payload = {
            "type": "block_actions",
            "trigger_id": "13345224609.738474920.8088930838d88f008e0",
            "user": {"id": sp.CUSTOMER},
            "team": {"id": sp.TEAM_ID},
            "actions": [
                {
                    "action_id": "button_3",
                    "value": buttons[3]["value"],
                    "action_ts": "1548426417.840180",
                }
            ],
        }
        body = urlencode({"payload": json.dumps(payload)}).encode()
        url = "/channels/slack/workspace/interactivity"
        forged = await client.post(
            url, content=body, headers=sp.signed_headers("wrong-secret", body)
        )
        assert forged.status_code == 401
        headers = sp.signed_headers(SIGNING_SECRET, body)
        headers["content-type"] = "application/x-www-form-urlencoded"
        response = await client.post(url, content=body, headers=headers)
        assert response.status_code == 200, response.text
        await run_worker(settings)
        assert await db.fetchval("SELECT rating FROM csat_surveys") == 4
    finally:
        await slack.stop()


async def test_partner_agents_see_only_what_their_tickets_need(
    client: Client, db: asyncpg.Connection, factory: Factory
) -> None:
    admin = await factory.agent("admin")
    queue = await factory.group("Outsourcing")
    partner = await factory.agent("partner", group_ids=[queue])
    staff = await factory.agent("agent")
    mine = await upsert(
        client, admin, external_id="p-1", email="mine@example.cz", notes="VIP, sleva 20 %"
    )
    other = await upsert(client, admin, external_id="p-2", email="other@example.cz")
    ticket = await factory.ticket(client, staff, customer={"email": "mine@example.cz"})
    await db.execute("UPDATE tickets SET group_id = $2 WHERE id = $1", ticket["id"], queue)
    await db.execute(
        "INSERT INTO bad_experiences (customer_id, ticket_id, kind) VALUES ($1, $2, 'reopened')",
        mine["customer_id"],
        ticket["id"],
    )

    seen = await client.get(f"/customers/{mine['customer_id']}", headers=partner.headers)
    assert seen.status_code == 200
    body = seen.json()
    assert body["customer"]["notes"] == ""
    assert body["bad_experiences"] == [] and body["stage_history"] == []
    assert "sleva" not in seen.text
    full = await client.get(f"/customers/{mine['customer_id']}", headers=staff.headers)
    assert full.json()["customer"]["notes"] == "VIP, sleva 20 %"
    for path in (
        f"/customers/{other['customer_id']}",
        f"/customers/{other['customer_id']}/timeline",
    ):
        assert (await client.get(path, headers=partner.headers)).status_code == 404
