"""The console in a real headless Chromium (Debian's, driven by Selenium) against the real
service on loopback: an agent sees an emailed ticket appear live, replies, the mail reaches
the SMTP server and the SLA clock stops; a partner cannot open another group's ticket; a
supervisor sees a breach on the board. Screenshots go to `test-artifacts/console/`."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from helpdesk.config import Settings
from tests.channels.email.smtp_server import SmtpTestServer
from tests.channels.email.test_smtp_outbound import (
    CUSTOMER,
    add_account,
    customer_mail,
    receive_mail,
)
from tests.channels.test_outbox import run_worker
from tests.conftest import TEST_PASSWORD, AgentHandle, Client, Factory

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def _ensure_chromium() -> None:
    """Debian's chromium and chromedriver; installed here when missing and root (as CI)."""
    if os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER):
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-q"], check=True, env=env)  # noqa: S607
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "chromium", "chromium-driver"],  # noqa: S607
            check=True,
            env=env,
        )
        return
    raise RuntimeError("install Debian's chromium and chromium-driver to run the console tests")


@pytest.fixture
def browser() -> Iterator[Any]:
    """A fresh Chromium per test: quitting it closes every connection it held, so the
    test server never waits for a live stream at shutdown."""
    _ensure_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_script_timeout(20)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def page(browser: Any) -> Any:
    return browser


async def wait_until(page: Any, condition: Any, what: str, seconds: float = 20) -> Any:
    """Poll the browser (without blocking the service's loop) until `condition(page)`."""
    import asyncio

    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        found = await asyncio.to_thread(condition, page)
        if found:
            return found
        if asyncio.get_running_loop().time() > deadline:
            await asyncio.to_thread(page.save_screenshot, str(ARTIFACTS / "timeout.png"))
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


def _css(page: Any, selector: str) -> Any:
    from selenium.webdriver.common.by import By

    found = page.find_elements(By.CSS_SELECTOR, selector)
    return found[0] if found else None


async def log_in(page: Any, client: Client, agent: AgentHandle) -> None:
    import asyncio

    await asyncio.to_thread(page.get, f"{client.base_url}/")
    await asyncio.to_thread(page.execute_script, "localStorage.setItem('helpdesk.lang', 'en');")
    await asyncio.to_thread(page.refresh)
    form = await wait_until(page, lambda p: _css(p, "#login:not([hidden])"), "the login form")
    assert form is not None
    await asyncio.to_thread(_css(page, "#email").send_keys, agent.email)
    await asyncio.to_thread(_css(page, "#password").send_keys, TEST_PASSWORD)
    await asyncio.to_thread(_css(page, "#login button[type=submit]").click)
    await wait_until(page, lambda p: _css(p, "#top:not([hidden])"), "the console after login")


async def click(page: Any, selector: str) -> None:
    import asyncio

    target = await wait_until(page, lambda p: _css(p, selector), selector)
    await asyncio.to_thread(target.click)


async def shot(page: Any, name: str) -> None:
    import asyncio

    await asyncio.to_thread(page.save_screenshot, str(ARTIFACTS / f"{name}.png"))


@pytest.fixture
async def smtp() -> Any:
    server = SmtpTestServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def test_agent_sees_mail_arrive_live_replies_and_the_sla_clock_stops(
    client: Client,
    db: asyncpg.Connection,
    factory: Factory,
    settings: Settings,
    smtp: SmtpTestServer,
    page: Any,
) -> None:
    import asyncio

    await add_account(db, smtp)
    agent = await factory.agent("agent")
    await log_in(page, client, agent)
    await click(page, 'a[href="#open"]')
    await wait_until(page, lambda p: _css(p, "#queue"), "the queue")
    await shot(page, "queue-empty")

    ticket_id, _ = await receive_mail(db, customer_mail(subject="Rozbitý hrnek, reklamace"))
    row = await wait_until(
        page, lambda p: _css(p, f'#queue tr[data-ticket="{ticket_id}"]'), "the new ticket, live"
    )
    assert "Rozbitý hrnek" in row.text
    await shot(page, "queue-live")

    await asyncio.to_thread(row.click)
    await wait_until(page, lambda p: _css(p, "#reply-text"), "the ticket view")
    clock = _css(page, 'li[data-clock="first_response"]')
    assert clock is not None and clock.get_attribute("data-met") == "no"
    await shot(page, "ticket")
    await asyncio.to_thread(_css(page, "#reply-text").send_keys, "Dobrý den, pošleme nový hrnek.")
    await click(page, "#send-reply")
    await wait_until(
        page,
        lambda p: (
            (c := _css(p, 'li[data-clock="first_response"]')) is not None
            and c.get_attribute("data-met") == "yes"
        ),
        "the first-response clock to stop",
    )
    await run_worker(settings)
    replies = [
        m
        for m in smtp.received
        if "pošleme nový hrnek" in m.message.get_body(("plain",)).get_content()
    ]
    assert [m.rcpt_tos for m in replies] == [[CUSTOMER]]
    await shot(page, "ticket-replied")


async def test_a_partner_cannot_open_another_groups_ticket(
    client: Client, db: asyncpg.Connection, factory: Factory, page: Any
) -> None:
    import asyncio

    ours = await factory.group("Outsourcing")
    theirs = await factory.group("Interní")
    partner = await factory.agent("partner", group_ids=[ours])
    staff = await factory.agent("agent")
    visible = await factory.ticket(client, staff, subject="Dotaz na dopravu", group_id=ours)
    hidden = await factory.ticket(client, staff, subject="Tajná reklamace", group_id=theirs)

    await log_in(page, client, partner)
    await click(page, 'a[href="#open"]')
    await wait_until(
        page, lambda p: _css(p, f'#queue tr[data-ticket="{visible["id"]}"]'), "the partner's ticket"
    )
    assert _css(page, f'#queue tr[data-ticket="{hidden["id"]}"]') is None
    assert "Tajná reklamace" not in page.page_source
    status = await asyncio.to_thread(
        page.execute_async_script,
        """const done = arguments[arguments.length - 1];
           fetch('/tickets/' + arguments[0], {headers: {Authorization:
             'Bearer ' + sessionStorage.getItem('helpdesk.token')}})
             .then(r => done(r.status));""",
        hidden["id"],
    )
    assert status == 404
    await shot(page, "partner-queue")


async def test_a_supervisor_sees_a_breach_on_the_board(
    client: Client, db: asyncpg.Connection, factory: Factory, settings: Settings, page: Any
) -> None:
    from helpdesk.sla import escalation

    supervisor = await factory.agent("supervisor")
    agent = await factory.agent("agent")
    ticket = await factory.ticket(client, agent, subject="Čeká příliš dlouho")
    await db.execute(
        "UPDATE tickets SET created_at = created_at - interval '61 minutes' WHERE id = $1",
        ticket["id"],
    )
    await db.execute(
        "UPDATE sla_events SET at = at - interval '61 minutes' WHERE ticket_id = $1",
        ticket["id"],
    )
    async with db.transaction():
        await escalation.check(db, ticket["id"], settings.sla)

    await log_in(page, client, supervisor)
    await click(page, 'a[href="#board"]')
    item = await wait_until(
        page,
        lambda p: _css(p, f'#board-breached li[data-ticket="{ticket["id"]}"]'),
        "the breach on the board",
    )
    assert "Čeká příliš dlouho" in item.text
    await shot(page, "board")
