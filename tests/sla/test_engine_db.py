"""The SLA engine on the real database and the real worker: policies chosen and recorded,
clocks stored and recomputed, breaches detected and escalated exactly once, the sweep's
index, and the supervisor endpoints (docs/reliability.md rows F1 and F10 for escalation jobs)."""

from __future__ import annotations

import asyncio
import json
import signal
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from helpdesk.config import Settings
from helpdesk.sla import admin, escalation, jobs
from tests.channels.replies import reply, run_worker
from tests.conftest import Client, Factory
from tests.sla.history import check, shift


async def clock(
    db: asyncpg.Connection, ticket_id: int, name: str, cycle: int = 0
) -> asyncpg.Record:
    row = await db.fetchrow(
        "SELECT * FROM ticket_sla_clocks WHERE ticket_id = $1 AND clock = $2 AND cycle = $3",
        ticket_id,
        name,
        cycle,
    )
    assert row is not None, f"no {name} clock"
    return row


async def seed(db: asyncpg.Connection, settings: Settings) -> dict[str, int]:
    assert await admin.seed_defaults(db, settings.sla)
    return {r["name"]: r["id"] for r in await db.fetch("SELECT id, name FROM sla_policies")}


async def test_first_response_clock_starts_with_the_ticket_and_the_reply_meets_it(
    client: Client, db: asyncpg.Connection, factory: Factory
) -> None:
    agent = await factory.agent("agent")
    ticket = await factory.ticket(client, agent)
    created = datetime.fromisoformat(ticket["created_at"])

    first = await clock(db, ticket["id"], "first_response")
    assert first["due_at"] == created + timedelta(minutes=60)
    assert first["warn_at"] == created + timedelta(minutes=45)
    assert first["met_at"] is None and not first["breached"]
    row = await db.fetchrow("SELECT * FROM tickets WHERE id = $1", ticket["id"])
    assert row["next_sla_due_at"] == first["due_at"]
    assert row["first_response_due_at"] == first["due_at"]
    assert row["sla_policy_name"] == "built-in"

    await reply(client, agent, ticket["id"])
    first = await clock(db, ticket["id"], "first_response")
    assert first["met_at"] is not None and not first["breached"]
    met = await db.fetch(
        "SELECT changes FROM ticket_events WHERE ticket_id = $1 AND action = 'sla_met'",
        ticket["id"],
    )
    assert [(m["changes"]["clock"], m["changes"]["breached"]) for m in met] == [
        ("first_response", False)
    ]
    row = await db.fetchrow("SELECT * FROM tickets WHERE id = $1", ticket["id"])
    assert row["next_sla_due_at"] is None and row["next_sla_check_at"] is None

    view = await client.get(f"/tickets/{ticket['id']}/sla", headers=agent.headers)
    assert view.status_code == 200
    assert [c["clock"] for c in view.json()["clocks"]] == ["first_response"]
    assert view.json()["clocks"][0]["met_at"] is not None


async def test_seeded_policies_are_chosen_by_condition_and_the_reason_recorded(
    client: Client, db: asyncpg.Connection, factory: Factory, settings: Settings
) -> None:
    await seed(db, settings)
    agent = await factory.agent("agent")
    plain = await factory.ticket(client, agent)
    urgent = await factory.ticket(client, agent, priority="urgent")

    rows = {
        r["id"]: r
        for r in await db.fetch("SELECT id, sla_policy_name, sla_policy_reason FROM tickets")
    }
    assert rows[plain["id"]]["sla_policy_name"] == "Default"
    assert rows[plain["id"]]["sla_policy_reason"] == "policy 'Default': catch-all"
    assert rows[urgent["id"]]["sla_policy_name"] == "Urgent"
    assert rows[urgent["id"]]["sla_policy_reason"] == "policy 'Urgent': priority in ['urgent']"
    created = datetime.fromisoformat(urgent["created_at"])
    assert (await clock(db, urgent["id"], "first_response"))["due_at"] == created + timedelta(
        minutes=30
    )
    # Resolution counts business time on the Czech calendar: never due in closed time.
    resolution = await clock(db, plain["id"], "resolution")
    assert resolution["business_time"] is True


async def test_priority_change_rechooses_the_policy_from_the_ticket_start(
    client: Client, db: asyncpg.Connection, factory: Factory, settings: Settings
) -> None:
    await seed(db, settings)
    agent = await factory.agent("agent")
    ticket = await factory.ticket(client, agent)
    created = datetime.fromisoformat(ticket["created_at"])

    response = await client.patch(
        f"/tickets/{ticket['id']}",
        json={"priority": "urgent"},
        headers={**agent.headers, "If-Match": f'"{ticket["version"]}"'},
    )
    assert response.status_code == 200, response.text
    shown = datetime.fromisoformat(response.json()["first_response_due_at"])
    assert shown == created + timedelta(minutes=30)  # what the console shows
    first = await clock(db, ticket["id"], "first_response")
    assert first["due_at"] == created + timedelta(minutes=30)  # from the start, not now
    event = await db.fetchrow(
        "SELECT changes FROM ticket_events WHERE ticket_id = $1 AND action = 'sla_policy_changed'",
        ticket["id"],
    )
    assert event["changes"]["from"] == "Default" and event["changes"]["to"] == "Urgent"


async def test_a_stricter_policy_already_overdue_breaches_at_the_change_not_back_dated(
    client: Client, db: asyncpg.Connection, factory: Factory, settings: Settings
) -> None:
    await seed(db, settings)
    agent = await factory.agent("agent")
    ticket = await factory.ticket(client, agent)
    await shift(db, ticket["id"], 45)  # waited 45 minutes: fine for 60, late for 30
    version = await db.fetchval("SELECT version FROM tickets WHERE id = $1", ticket["id"])

    before = await db.fetchval("SELECT clock_timestamp()")
    response = await client.patch(
        f"/tickets/{ticket['id']}",
        json={"priority": "urgent"},
        headers={**agent.headers, "If-Match": f'"{version}"'},
    )
    assert response.status_code == 200, response.text
    first = await clock(db, ticket["id"], "first_response")
    assert first["breached"] is True
    assert first["breached_at"] >= before  # the change instant, not created + 30 min
    assert first["due_at"] < before

    # Lowering the priority again never withdraws the breach.
    response = await client.patch(
        f"/tickets/{ticket['id']}",
        json={"priority": "normal"},
        headers={**agent.headers, "If-Match": f'"{response.json()["version"]}"'},
    )
    assert response.status_code == 200
    again = await clock(db, ticket["id"], "first_response")
    assert again["breached"] is True and again["breached_at"] == first["breached_at"]


async def test_setting_pending_does_not_hide_an_unanswered_customer(
    client: Client, db: asyncpg.Connection, factory: Factory, settings: Settings
) -> None:
    await seed(db, settings)
    agent = await factory.agent("agent")
    ticket = await factory.ticket(client, agent)
    response = await client.patch(
        f"/tickets/{ticket['id']}",
        json={"status": "pending"},
        headers={**agent.headers, "If-Match": f'"{ticket["version"]}"'},
    )
    assert response.status_code == 200, response.text
    first = await clock(db, ticket["id"], "first_response")
    resolution = await clock(db, ticket["id"], "resolution")
    assert first["paused"] is False and first["due_at"] is not None
    assert resolution["paused"] is True and resolution["due_at"] is None


async def test_breach_escalates_once_with_two_workers_running(
    client: Client, db: asyncpg.Connection, factory: Factory, settings: Settings
) -> None:
    ids = await seed(db, settings)
    group = await factory.group("Reklamace")
    supervisor = await factory.agent("supervisor", group_ids=[group])
    other_supervisor = await factory.agent("supervisor", group_ids=[group])
    agent = await factory.agent("agent", group_ids=[group])
    ticket = await factory.ticket(
        client, agent, category="complaint", group_id=group, assignee_id=agent.id
    )
    assert (
        await db.fetchval("SELECT sla_policy_id FROM tickets WHERE id = $1", ticket["id"])
        == ids["Complaints"]
    )
    await shift(db, ticket["id"], 61)
    async with db.transaction():
        from helpdesk.sla import refresh as sla_refresh

        await sla_refresh.refresh(db, ticket["id"], settings.sla)

    await asyncio.gather(run_worker(settings), run_worker(settings))
    await asyncio.gather(run_worker(settings), run_worker(settings))

    fired = await db.fetch(
        "SELECT clock, level, actions FROM sla_escalations WHERE ticket_id = $1 ORDER BY level",
        ticket["id"],
    )
    assert [(f["clock"], f["level"]) for f in fired] == [
        ("first_response", "breach"),
        ("first_response", "warn"),
    ]
    notes = await db.fetch(
        "SELECT agent_id, kind FROM notifications WHERE ticket_id = $1 ORDER BY agent_id, kind",
        ticket["id"],
    )
    assert sorted((n["agent_id"], n["kind"]) for n in notes) == sorted(
        [
            (agent.id, "sla_warning"),
            (supervisor.id, "sla_breached"),
            (other_supervisor.id, "sla_breached"),
        ]
    )
    row = await db.fetchrow("SELECT priority, version FROM tickets WHERE id = $1", ticket["id"])
    assert row["priority"] == "high"  # raised once, not twice
    breaches = await db.fetchval(
        "SELECT count(*) FROM ticket_events WHERE ticket_id = $1 AND action = 'sla_breached'",
        ticket["id"],
    )
    assert breaches == 1


async def test_a_level_whose_transaction_dies_fires_again_later_exactly_once(
    client: Client, db: asyncpg.Connection, factory: Factory, settings: Settings
) -> None:
    """A worker killed mid-escalation: its transaction rolls back with the level's row, so
    the next check fires the level (once)."""
    agent = await factory.agent("agent")
    ticket = await factory.ticket(client, agent, assignee_id=agent.id)
    await shift(db, ticket["id"], 50)
    with pytest.raises(RuntimeError):
        async with db.transaction():
            fired = await escalation.check(db, ticket["id"], settings.sla)
            assert [f.level for f in fired] == ["warn"]
            raise RuntimeError("worker killed")
    assert await db.fetchval("SELECT count(*) FROM sla_escalations") == 0

    assert [f.level for f in await check(db, settings, ticket["id"])] == ["warn"]
    assert await check(db, settings, ticket["id"]) == []
    assert await db.fetchval("SELECT count(*) FROM sla_escalations") == 1


async def test_a_reply_that_fails_for_good_is_no_response(
    client: Client, db: asyncpg.Connection, factory: Factory, settings: Settings
) -> None:
    agent = await factory.agent("agent")
    ticket = await factory.ticket(client, agent)
    await db.execute("UPDATE tickets SET channel = 'telegram' WHERE id = $1", ticket["id"])
    await reply(client, agent, ticket["id"])  # no telegram account: delivery fails
    assert (await clock(db, ticket["id"], "first_response"))["met_at"] is not None

    await run_worker(settings)  # the delivery fails: withdrawn at once, no sweep needed

    first = await clock(db, ticket["id"], "first_response")
    assert first["met_at"] is None
    created = datetime.fromisoformat(ticket["created_at"])
    assert first["due_at"] == created + timedelta(minutes=60)  # open again from its start


async def test_the_sweep_reads_only_due_tickets_through_its_index(
    db: asyncpg.Connection, factory: Factory
) -> None:
    customer = await db.fetchval("INSERT INTO customers (name) VALUES ('x') RETURNING id")
    await db.execute(
        """INSERT INTO tickets (subject, channel, customer_id, next_sla_check_at)
           SELECT 'open ' || i, 'api', $1, now() + (i || ' minutes')::interval
           FROM generate_series(1, 20000) AS i""",
        customer,
    )
    await db.execute("ANALYZE tickets")
    plan = await db.fetchval(
        """EXPLAIN (FORMAT JSON) SELECT id, next_sla_check_at FROM tickets
           WHERE next_sla_check_at <= now() + '60 seconds'::interval
           ORDER BY next_sla_check_at LIMIT 5000"""
    )
    text = json.dumps(plan)
    assert "tickets_next_sla_check_idx" in text
    assert "Seq Scan" not in text
    rows = await jobs.coming_due(db, timedelta(seconds=60))
    assert len(rows) == 1  # only the ticket due within the minute


async def test_board_shows_breached_and_at_risk_and_metrics_count_breaches(
    client: Client, db: asyncpg.Connection, factory: Factory, settings: Settings
) -> None:
    group = await factory.group()
    supervisor = await factory.agent("supervisor", group_ids=[group])
    agent = await factory.agent("agent", group_ids=[group])
    late = await factory.ticket(client, agent, group_id=group)
    soon = await factory.ticket(client, agent, group_id=group)
    fine = await factory.ticket(client, agent, group_id=group)
    await shift(db, late["id"], 70)
    await shift(db, soon["id"], 40)
    for ticket in (late, soon):
        await check(db, settings, ticket["id"])

    response = await client.get(
        "/sla/board", params={"window_minutes": 30}, headers=supervisor.headers
    )
    assert response.status_code == 200, response.text
    board = response.json()
    assert [i["ticket_id"] for i in board["breached"]] == [late["id"]]
    assert [i["ticket_id"] for i in board["at_risk"]] == [soon["id"]]
    assert board["by_group"] == [{"key": str(group), "breached": 1, "at_risk": 1}]
    assert fine["id"] not in [i["ticket_id"] for i in board["at_risk"]]
    assert (await client.get("/sla/board", headers=agent.headers)).status_code == 403

    await reply(client, agent, late["id"])
    await reply(client, agent, fine["id"])
    response = await client.get("/sla/metrics", headers=supervisor.headers)
    assert response.status_code == 200, response.text
    (row,) = response.json()["rows"]
    assert (row["clock"], row["ended"], row["breached"], row["breach_rate"]) == (
        "first_response",
        2,
        1,
        0.5,
    )
    assert row["p90_seconds"] > 60 * 60 > row["p50_seconds"]


async def test_live_stream_sends_sla_events_and_resumes_after_the_last_id(
    client: Client, db: asyncpg.Connection, factory: Factory, settings: Settings
) -> None:
    supervisor = await factory.agent("supervisor")
    agent = await factory.agent("agent")
    ticket = await factory.ticket(client, agent)
    await shift(db, ticket["id"], 61)
    await check(db, settings, ticket["id"])

    async def first_events(after: str | None) -> list[dict[str, Any]]:
        headers = dict(supervisor.headers)
        if after:
            headers["Last-Event-ID"] = after
        found: list[dict[str, Any]] = []
        async with client.stream("GET", "/sla/stream", headers=headers) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            event: dict[str, Any] = {}
            async for line in response.aiter_lines():
                if line.startswith("event: "):
                    event["event"] = line[7:]
                elif line.startswith("id: "):
                    event["id"] = line[4:]
                elif line.startswith("data: "):
                    event["data"] = json.loads(line[6:])
                elif not line and event:
                    found.append(event)
                    event = {}
                    if len(found) == 2:
                        break
        return found

    events = await asyncio.wait_for(first_events(None), timeout=30)
    assert [e["event"] for e in events] == ["sla_warning", "sla_breached"]
    assert events[1]["data"]["ticket_id"] == ticket["id"]
    assert events[1]["data"]["detail"]["clock"] == "first_response"
    with pytest.raises(TimeoutError):  # nothing after the last id: the stream waits
        await asyncio.wait_for(first_events(events[1]["id"]), timeout=3)


async def test_calendar_and_policy_admin_validate_and_retarget(
    client: Client, db: asyncpg.Connection, factory: Factory, settings: Settings
) -> None:
    admin_agent = await factory.agent("admin")
    bad = {"name": "x", "spec": {"timezone": "Europe/Prag"}}
    response = await client.post("/sla/calendars", json=bad, headers=admin_agent.headers)
    assert response.status_code == 400
    assert "Europe/Prag" in response.json()["detail"]
    overlapping = {
        "name": "y",
        "spec": {
            "timezone": "Europe/Prague",
            "hours": {"mon": [["08:00", "12:00"], ["11:00", "13:00"]]},
        },
    }
    response = await client.post("/sla/calendars", json=overlapping, headers=admin_agent.headers)
    assert response.status_code == 400

    policy = {"name": "Everyone", "first_response_minutes": 60}
    response = await client.post("/sla/policies", json=policy, headers=admin_agent.headers)
    assert response.status_code == 201, response.text
    policy_id = response.json()["id"]
    agent = await factory.agent("agent")
    ticket = await factory.ticket(client, agent)
    created = datetime.fromisoformat(ticket["created_at"])
    assert (await clock(db, ticket["id"], "first_response"))["due_at"] == created + timedelta(
        minutes=60
    )

    response = await client.patch(
        f"/sla/policies/{policy_id}",
        json={"first_response_minutes": 20},
        headers=admin_agent.headers,
    )
    assert response.status_code == 200, response.text
    await check(db, settings, ticket["id"])  # what the sweep does next
    assert (await clock(db, ticket["id"], "first_response"))["due_at"] == created + timedelta(
        minutes=20
    )
    response = await client.post(
        "/sla/policies",
        json={"name": "B", "business_time": ["resolution"], "resolution_minutes": 60},
        headers=admin_agent.headers,
    )
    assert response.status_code == 400  # business time without a calendar
    assert (await client.get("/sla/policies", headers=agent.headers)).status_code == 403


async def test_breach_notices_go_to_supervisors_by_email_and_to_a_slack_channel(
    client: Client, db: asyncpg.Connection, factory: Factory, settings: Settings
) -> None:
    from tests.channels.email.builders import add_account as add_mail_account
    from tests.channels.email.smtp_server import SmtpTestServer
    from tests.channels.slack.conftest import TOKEN
    from tests.channels.slack.conftest import add_account as add_slack_account
    from tests.channels.slack.fake_slack_api import FakeSlackApi

    smtp = SmtpTestServer()
    await smtp.start()
    slack = FakeSlackApi(TOKEN)
    await slack.start()
    try:
        await add_mail_account(db, smtp)
        await add_slack_account(db, slack.base_url)
        admin_agent = await factory.agent("admin")
        level = {
            "clock": "first_response",
            "level": "breach",
            "actions": [
                {
                    "action": "notify_supervisors",
                    "email": True,
                    "slack_account": "workspace",
                    "slack_channel": "C0SUPERVISE",
                }
            ],
        }
        response = await client.post(
            "/sla/policies",
            json={"name": "All", "first_response_minutes": 60, "escalations": [level]},
            headers=admin_agent.headers,
        )
        assert response.status_code == 201, response.text
        supervisor = await factory.agent("supervisor", email="sefka@shop.example")
        agent = await factory.agent("agent")
        ticket = await factory.ticket(client, agent, subject="Rozbitý hrnek")
        await shift(db, ticket["id"], 61)
        await check(db, settings, ticket["id"])
        await run_worker(settings)  # the sweep delivers the queued notices

        (mail,) = smtp.received
        assert mail.rcpt_tos == [supervisor.email]
        assert mail.mail_from == "<>"  # an automatic message: nothing answers it
        assert mail.message["Auto-Submitted"] == "auto-replied"
        assert f"[#{ticket['number']}]" in mail.message["Subject"]
        assert "first response target was missed" in mail.message.get_body(("plain",)).get_content()
        (post,) = slack.calls_of("chat.postMessage")
        assert post.params["channel"] == "C0SUPERVISE"
        assert f"#{ticket['number']}" in post.params["text"]

        view = await client.get(f"/tickets/{ticket['id']}/sla", headers=supervisor.headers)
        assert sorted((n["channel"], n["status"]) for n in view.json()["notices"]) == [
            ("email", "sent"),
            ("slack", "sent"),
        ]
    finally:
        await slack.stop()
        await smtp.stop()


async def test_a_notice_that_cannot_be_sent_fails_visibly_with_the_reason(
    client: Client, db: asyncpg.Connection, factory: Factory, settings: Settings
) -> None:
    admin_agent = await factory.agent("admin")
    level = {
        "clock": "first_response",
        "level": "warn",
        "actions": [{"action": "notify_assignee", "email": True}],
    }
    response = await client.post(
        "/sla/policies",
        json={"name": "All", "first_response_minutes": 60, "escalations": [level]},
        headers=admin_agent.headers,
    )
    assert response.status_code == 201, response.text
    agent = await factory.agent("agent")
    ticket = await factory.ticket(client, agent, assignee_id=agent.id)
    await shift(db, ticket["id"], 50)
    await check(db, settings, ticket["id"])
    await run_worker(settings)  # no email account with SMTP exists

    row = await db.fetchrow("SELECT status, last_error FROM sla_notices")
    assert row["status"] == "failed"
    assert "no email account with SMTP" in row["last_error"]


async def test_levels_lost_with_redis_are_scheduled_again_by_the_sweep(
    client: Client, db: asyncpg.Connection, factory: Factory, settings: Settings
) -> None:
    """F3: the queued check jobs vanish with Redis; PostgreSQL still knows what is due."""
    from arq import create_pool as create_arq_pool

    from helpdesk.app import redis_settings
    from helpdesk.db.pool import create_pool
    from helpdesk.sla import refresh as sla_refresh

    agent = await factory.agent("agent")
    ticket = await factory.ticket(client, agent)
    await shift(db, ticket["id"], 61)
    async with db.transaction():
        await sla_refresh.refresh(db, ticket["id"], settings.sla)
    pool = await create_pool(settings.database_url, 1, 2)
    queue = await create_arq_pool(redis_settings(settings.redis_url))
    try:
        await jobs.sweep({"pool": pool, "settings": settings, "redis": queue})
        queued = [j.decode() for j in await queue.zrange("arq:queue", 0, -1)]
        assert [j for j in queued if j.startswith("sla:")] == [  # the precise check
            jobs.check_job_id(
                ticket["id"],
                await db.fetchval(
                    "SELECT next_sla_check_at FROM tickets WHERE id = $1", ticket["id"]
                ),
            )
        ]
        await queue.flushdb()  # Redis restarted empty: the job is gone
    finally:
        await queue.aclose()
        await pool.close()
    assert await db.fetchval("SELECT count(*) FROM sla_escalations") == 0

    await run_worker(settings)  # the next sweep schedules it again
    levels = await db.fetch("SELECT level FROM sla_escalations ORDER BY level")
    assert [r["level"] for r in levels] == ["breach", "warn"]


async def test_real_workers_one_stopped_mid_way_fire_each_level_once(
    client: Client,
    db: asyncpg.Connection,
    factory: Factory,
    settings: Settings,
    tmp_path: Path,
) -> None:
    """F1/F10 with real `helpdesk worker` processes: two run at once, one is stopped with
    SIGTERM while they work; every level still fires exactly once."""
    from tests.faults import start_worker, wait_until

    group = await factory.group()
    await factory.agent("supervisor", group_ids=[group])
    agent = await factory.agent("agent", group_ids=[group])
    tickets = [
        await factory.ticket(client, agent, group_id=group, assignee_id=agent.id) for _ in range(5)
    ]
    for ticket in tickets:
        await shift(db, ticket["id"], 61)
        async with db.transaction():
            from helpdesk.sla import refresh as sla_refresh

            await sla_refresh.refresh(db, ticket["id"], settings.sla)

    first = start_worker(settings.database_url, settings.redis_url, tmp_path / "a.log")
    second = start_worker(settings.database_url, settings.redis_url, tmp_path / "b.log")
    try:
        first.send_signal(signal.SIGTERM)  # stopped while starting or checking
        await asyncio.to_thread(first.wait, 60)

        async def all_fired() -> bool:
            count: int = await db.fetchval("SELECT count(*) FROM sla_escalations")
            return count == 2 * len(tickets)

        await wait_until(all_fired, "every warn and breach level to fire", seconds=90)
    finally:
        for process in (first, second):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                await asyncio.to_thread(process.wait, 60)
    rows = await db.fetch(
        """SELECT ticket_id, action, count(*) AS n FROM ticket_events
           WHERE action IN ('sla_warning', 'sla_breached') GROUP BY 1, 2"""
    )
    assert len(rows) == 2 * len(tickets)
    assert all(r["n"] == 1 for r in rows)


async def test_a_notice_whose_smtp_connection_drops_after_data_is_not_sent_twice(
    client: Client, db: asyncpg.Connection, factory: Factory, settings: Settings
) -> None:
    """The server took the notice, then the connection dropped before its answer: the
    notice is possibly_sent and no later sweep mails it again (it was mailed twice)."""
    from tests.channels.email.builders import add_account as add_mail_account
    from tests.channels.email.smtp_server import SmtpTestServer

    smtp = SmtpTestServer()
    await smtp.start()
    try:
        await add_mail_account(db, smtp)
        admin_agent = await factory.agent("admin")
        level = {
            "clock": "first_response",
            "level": "breach",
            "actions": [{"action": "notify_supervisors", "email": True}],
        }
        response = await client.post(
            "/sla/policies",
            json={"name": "All", "first_response_minutes": 60, "escalations": [level]},
            headers=admin_agent.headers,
        )
        assert response.status_code == 201, response.text
        await factory.agent("supervisor", email="sefka@shop.example")
        agent = await factory.agent("agent")
        ticket = await factory.ticket(client, agent)
        await shift(db, ticket["id"], 61)
        await check(db, settings, ticket["id"])
        smtp.drop_after_data()

        await run_worker(settings)
        await db.execute("UPDATE sla_notices SET next_attempt_at = now()")  # any retry due
        await run_worker(settings)

        (mail,) = smtp.received
        assert mail.message["Message-ID"].startswith("<sla-notice.")
        row = await db.fetchrow("SELECT status, attempts, last_error FROM sla_notices")
        assert (row["status"], row["attempts"]) == ("possibly_sent", 1)
        assert "may have been accepted" in row["last_error"]
    finally:
        await smtp.stop()


async def test_a_notice_abandoned_by_a_dead_worker_is_resent_only_before_its_handoff(
    db: asyncpg.Connection, factory: Factory, client: Client, settings: Settings
) -> None:
    from helpdesk.db.pool import create_pool
    from helpdesk.sla import notices

    agent = await factory.agent("agent")
    ticket = await factory.ticket(client, agent)
    for recipient in ("before@shop.example", "after@shop.example"):
        await notices.queue(db, ticket["id"], "email", recipient, "late")
    # Two attempts whose worker died: one before its hand-off, one after it.
    await db.execute(
        """UPDATE sla_notices SET status = 'sending', attempts = 1,
               locked_until = now() - interval '1 second',
               handed_off_at = CASE WHEN recipient LIKE 'after@%' THEN now() END"""
    )
    pool = await create_pool(settings.database_url)
    try:
        async with pool.acquire() as conn:
            assert await notices.expire_abandoned(conn) == 2
    finally:
        await pool.close()
    rows = {
        r["recipient"]: (r["status"], r["last_error"])
        for r in await db.fetch("SELECT recipient, status, last_error FROM sla_notices")
    }
    assert rows == {
        "before@shop.example": ("pending", notices.NOT_HANDED_OFF),
        "after@shop.example": ("possibly_sent", notices.POSSIBLY_SENT),
    }
