"""The console in a real headless Chromium (Debian's, driven by Selenium) against the real
service on loopback: an agent sees an emailed ticket appear live, replies, the mail reaches
the SMTP server and the SLA clock stops; a partner cannot open another group's ticket; a
supervisor sees a breach on the board and the first-response and breach-rate charts; an agent
writes an internal note with the keyboard only, logs a phone call and merges a duplicate; a
queue of thousands loads page by page; a ticket shows its CSAT comment and a failed reply is
sent again. Screenshots go to `test-artifacts/console/`."""

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
from helpdesk.csat import service as csat_service
from tests.channels.email.smtp_server import SmtpTestServer
from tests.channels.email.test_smtp_outbound import (
    CUSTOMER,
    add_account,
    customer_mail,
    receive_mail,
)
from tests.channels.test_outbox import run_worker
from tests.conftest import TEST_PASSWORD, AgentHandle, Client, Factory
from tests.csat.test_rating_page_language import LINK

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
    """Click `selector` once it is there; the console re-renders a ticket when it changes
    live, so an element found a moment ago may have been replaced: then find it again."""
    from selenium.common.exceptions import StaleElementReferenceException

    def found_and_clicked(p: Any) -> bool:
        target = _css(p, selector)
        if target is None:
            return False
        try:
            target.click()
        except StaleElementReferenceException:
            return False
        return True

    await wait_until(page, found_and_clicked, selector)


async def shot(page: Any, name: str) -> None:
    import asyncio

    await asyncio.to_thread(page.save_screenshot, str(ARTIFACTS / f"{name}.png"))


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


# --- keyboard and accessibility ------------------------------------------------------------


async def press(page: Any, key: str, times: int = 1) -> None:
    """Keys go to whatever has the focus, as a keyboard-only user's would."""
    import asyncio

    from selenium.webdriver.common.action_chains import ActionChains

    def send() -> None:
        chain = ActionChains(page)
        for _ in range(times):
            chain.send_keys(key)
        chain.perform()

    await asyncio.to_thread(send)


def _focused_matches(page: Any, selector: str) -> bool:
    return bool(
        page.execute_script(
            "return !!document.activeElement && document.activeElement.matches(arguments[0]);",
            selector,
        )
    )


async def tab_to(page: Any, selector: str, limit: int) -> None:
    """Press Tab until the focus is on `selector`; fails when it takes more than `limit`
    presses (the focus order is part of what is tested)."""
    import asyncio

    from selenium.webdriver.common.keys import Keys

    for _ in range(limit):
        await press(page, Keys.TAB)
        if await asyncio.to_thread(_focused_matches, page, selector):
            return
    described = await asyncio.to_thread(
        page.execute_script,
        "const a = document.activeElement; return a.tagName + '#' + a.id + ' ' + a.textContent;",
    )
    await shot(page, "tab-order-failed")
    raise AssertionError(f"{selector} not reached in {limit} Tab presses; focus on {described}")


UNLABELLED_CONTROLS = """
return [...document.querySelectorAll('#app input, #app select, #app textarea, header select')]
  .filter((c) => c.type !== 'hidden')
  .filter((c) => !(c.labels && [...c.labels].some((l) => l.textContent.trim()))
                 && !c.getAttribute('aria-label') && !c.getAttribute('aria-labelledby'))
  .map((c) => c.outerHTML);
"""


async def test_an_agent_writes_an_internal_note_with_the_keyboard_only(
    client: Client, db: asyncpg.Connection, factory: Factory, page: Any
) -> None:
    import asyncio

    from selenium.webdriver.common.keys import Keys

    agent = await factory.agent("agent")
    ticket = await factory.ticket(client, agent, subject="Nefunguje přihlášení")
    await log_in(page, client, agent)
    await wait_until(page, lambda p: _css(p, "#queue"), "the first queue")
    # After logging in the keyboard goes on at the content, not at a hidden form.
    await wait_until(page, lambda p: _focused_matches(p, "#main"), "the focus on the content")

    # A fresh page, from the top: the skip link comes first, then the views.
    await asyncio.to_thread(page.refresh)
    await wait_until(page, lambda p: _css(p, "#queue"), "the queue after reload")
    await tab_to(page, "a.skip", 1)
    await tab_to(page, 'nav a[href="#open"]', 8)
    await press(page, Keys.ENTER)
    link = f'#queue a.open-ticket[data-open="{ticket["id"]}"]'
    await wait_until(page, lambda p: _css(p, link), "the ticket in All open")
    # Choosing a view keeps the focus on it, so Tab goes on into the queue.
    assert await asyncio.to_thread(_focused_matches, page, 'nav a[href="#open"]')
    await tab_to(page, link, 12)
    outline = await asyncio.to_thread(
        page.execute_script, "return getComputedStyle(document.activeElement).outlineStyle;"
    )
    assert outline not in ("", "none"), "the focused ticket shows no focus outline"
    await shot(page, "keyboard-queue-focus")
    await press(page, Keys.ENTER)

    # The ticket opens and the focus moves to its heading; Tab leads on to the reply box.
    await wait_until(
        page, lambda p: _focused_matches(p, "#ticket-heading"), "the focus on the opened ticket"
    )
    heading = _css(page, "#ticket-heading")
    assert "Nefunguje přihlášení" in heading.text
    unlabelled = await asyncio.to_thread(page.execute_script, UNLABELLED_CONTROLS)
    assert unlabelled == []
    await tab_to(page, "#reply-text", 8)
    await press(page, "Zákazník volal, heslo resetováno.")
    await tab_to(page, "#send-note", 3)
    await press(page, Keys.ENTER)

    note = await wait_until(
        page,
        lambda p: next(
            (
                m
                for m in p.find_elements("css selector", "#conversation article.message")
                if "heslo resetováno" in m.text
            ),
            None,
        ),
        "the note in the conversation",
    )
    assert note.get_attribute("data-kind") == "note"
    assert "Internal note" in note.text  # said in words, not only by colour
    assert "note" in (note.get_attribute("class") or "").split()
    # The ticket was re-rendered; the keyboard focus is where the agent left it.
    assert await asyncio.to_thread(_focused_matches, page, "#send-note")
    assert _css(page, "#reply-text").get_attribute("value") == ""
    stored = await db.fetch(
        "SELECT kind, direction FROM messages WHERE ticket_id = $1 AND body_text LIKE $2",
        ticket["id"],
        "%resetováno%",
    )
    assert [(m["kind"], m["direction"]) for m in stored] == [("note", "outbound")]
    await shot(page, "keyboard-note")


async def test_sla_state_is_said_in_words_not_only_by_colour(
    client: Client, db: asyncpg.Connection, factory: Factory, page: Any
) -> None:
    agent = await factory.agent("agent")
    late = await factory.ticket(client, agent, subject="Po termínu")
    soon = await factory.ticket(client, agent, subject="Skoro po termínu")
    # "soon" is due in 40 minutes but its clock's warning time has passed: at risk by the
    # ticket's own warning instant, not by a fixed margin.
    await db.execute(
        """UPDATE tickets SET next_sla_due_at = CASE id WHEN $1 THEN now() - interval '5 minutes'
                                                     ELSE now() + interval '40 minutes' END,
                              next_sla_warn_at = now() - interval '5 minutes'
           WHERE id IN ($1, $2)""",
        late["id"],
        soon["id"],
    )
    response = await client.put(
        "/agents/me/availability", json={"availability": "away"}, headers=agent.headers
    )
    assert response.status_code == 200, response.text
    await log_in(page, client, agent)
    availability = await wait_until(
        page, lambda p: _css(p, "#availability option:checked"), "the availability"
    )
    assert availability.get_attribute("value") == "away"  # as the server knows it
    await click(page, 'a[href="#open"]')
    late_row = await wait_until(
        page, lambda p: _css(p, f'#queue tr[data-ticket="{late["id"]}"]'), "the late ticket"
    )
    soon_row = _css(page, f'#queue tr[data-ticket="{soon["id"]}"]')
    assert "Breached" in late_row.find_element("css selector", "td.clock").text
    assert "At risk" in soon_row.find_element("css selector", "td.clock").text
    await shot(page, "queue-sla-words")


# --- phone calls and merging ---------------------------------------------------------------


async def fill(page: Any, selector: str, text: str) -> None:
    import asyncio

    target = await wait_until(page, lambda p: _css(p, selector), selector)
    await asyncio.to_thread(target.clear)
    await asyncio.to_thread(target.send_keys, text)


async def test_an_agent_logs_a_phone_call_and_merges_a_duplicate(
    client: Client, db: asyncpg.Connection, factory: Factory, page: Any
) -> None:
    import asyncio

    agent = await factory.agent("agent")
    customer = {"email": "petr@example.cz", "name": "Petr Novák"}
    keep = await factory.ticket(client, agent, subject="Vrácení zboží", customer=customer)
    duplicate = await factory.ticket(
        client, agent, subject="Vrácení zboží znovu", customer=customer
    )

    await log_in(page, client, agent)
    await click(page, 'a[href="#open"]')
    await click(page, f'#queue a.open-ticket[data-open="{duplicate["id"]}"]')
    await wait_until(page, lambda p: _css(p, "#reply-text"), "the duplicate ticket")
    await click(page, "#more-actions summary")
    await fill(page, "#call-phone", "+420 601 123 456")
    await fill(page, "#call-minutes", "4")
    await fill(page, "#call-summary", "Volal kvůli štítku na vrácení.")
    await click(page, "#log-call")
    call = await wait_until(
        page,
        lambda p: next(
            (
                m
                for m in p.find_elements("css selector", "#conversation article.message")
                if "štítku na vrácení" in m.text
            ),
            None,
        ),
        "the call in the conversation",
    )
    assert "phone" in call.find_element("css selector", ".badge").text
    stored = await db.fetchrow(
        "SELECT channel, kind FROM messages WHERE ticket_id = $1 AND body_text LIKE $2",
        duplicate["id"],
        "%štítku%",
    )
    assert stored is not None and (stored["channel"], stored["kind"]) == ("phone", "public")
    await shot(page, "ticket-call")

    # The customer's other ticket is offered by its number, not by an internal id.
    # Read in one script: a live refresh may re-render the form between two WebDriver calls.
    expected = [f"#{keep['number']} Vrácení zboží ({keep['status']})"]
    read_options = (
        "return Array.from(document.querySelectorAll('#merge-into option'), o => o.textContent);"
    )
    await wait_until(
        page, lambda p: p.execute_script(read_options) == expected, "the merge form's options"
    )
    options = await asyncio.to_thread(page.execute_script, read_options)
    assert options == expected
    await click(page, "#merge")
    await wait_until(
        page,
        lambda p: (h := _css(p, "#ticket-heading")) is not None and f"#{keep['number']} " in h.text,
        "the kept ticket after merging",
    )
    await wait_until(
        page,
        lambda p: "štítku na vrácení" in (_css(p, "#conversation").text or ""),
        "the call moved into the kept ticket",
    )
    merged = await db.fetchrow(
        "SELECT status, merged_into_id FROM tickets WHERE id = $1", duplicate["id"]
    )
    assert merged is not None and merged["merged_into_id"] == keep["id"]
    await shot(page, "ticket-merged")


async def test_an_agent_merges_into_another_customers_ticket_by_its_number(
    client: Client, db: asyncpg.Connection, factory: Factory, page: Any
) -> None:
    """The same person wrote from two addresses: the agent types the number the customer
    quoted; a number that does not exist is refused with the reason and nothing merges."""
    agent = await factory.agent("agent")
    keep = await factory.ticket(
        client, agent, subject="Reklamace bot", customer={"email": "jana@example.cz"}
    )
    duplicate = await factory.ticket(
        client, agent, subject="Re: reklamace", customer={"email": "jana.novakova@firma.cz"}
    )

    await log_in(page, client, agent)
    await click(page, 'a[href="#open"]')
    await click(page, f'#queue a.open-ticket[data-open="{duplicate["id"]}"]')
    await wait_until(page, lambda p: _css(p, "#reply-text"), "the duplicate ticket")
    await click(page, "#more-actions summary")
    await fill(page, "#merge-number", "99999999")
    await click(page, "#merge")
    await wait_until(
        page,
        lambda p: "No other ticket with that number" in (_css(p, "#toast").text or ""),
        "the refusal",
    )
    assert (
        await db.fetchval("SELECT merged_into_id FROM tickets WHERE id = $1", duplicate["id"])
        is None
    )

    await fill(page, "#merge-number", f"#{keep['number']}")
    await click(page, "#merge")
    await wait_until(
        page,
        lambda p: (h := _css(p, "#ticket-heading")) is not None and f"#{keep['number']} " in h.text,
        "the kept ticket after merging",
    )
    merged = await db.fetchval("SELECT merged_into_id FROM tickets WHERE id = $1", duplicate["id"])
    assert merged == keep["id"]


# --- the supervisors' charts ---------------------------------------------------------------


async def test_a_supervisor_sees_first_response_and_breach_rate_charts(
    client: Client, db: asyncpg.Connection, factory: Factory, page: Any
) -> None:
    import asyncio

    supervisor = await factory.agent("supervisor")
    agent = await factory.agent("agent")
    # Two days of ended first-response clocks: two days ago 10 and 90 minutes (one breach),
    # yesterday 20 minutes.
    ended = [(2, 600.0, False), (2, 5400.0, True), (1, 1200.0, False)]
    for days_ago, seconds, breached in ended:
        ticket = await factory.ticket(client, agent)
        await db.execute(
            """UPDATE ticket_sla_clocks
               SET started_at = now() - make_interval(days => $2) - make_interval(secs => $3),
                   met_at = now() - make_interval(days => $2), counted_seconds = $3,
                   breached = $4, breached_at = CASE WHEN $4 THEN now() END
               WHERE ticket_id = $1 AND clock = 'first_response'""",
            ticket["id"],
            days_ago,
            seconds,
            breached,
        )

    await log_in(page, client, supervisor)
    await click(page, 'a[href="#board"]')
    first = await wait_until(
        page, lambda p: _css(p, "#chart-first-response svg[role=img]"), "the first-response chart"
    )
    rate = await wait_until(
        page, lambda p: _css(p, "#chart-breach-rate svg[role=img]"), "the breach-rate chart"
    )

    def named(svg: Any) -> str:
        """The chart's accessible name and description, as a screen reader reads them."""
        return " ".join(
            page.execute_script("return document.getElementById(arguments[0]).textContent;", ref)
            for ref in svg.get_attribute("aria-labelledby").split()
        )

    first_text = await asyncio.to_thread(named, first)
    assert "First response time per day" in first_text
    assert "2 days" in first_text and "p50 20 min, p90 20 min" in first_text
    rate_text = await asyncio.to_thread(named, rate)
    assert "Breach rate per day" in rate_text
    assert "0 % of 1 SLA clocks breached" in rate_text and "Highest 50 %" in rate_text

    def bars(selector: str) -> list[float]:
        return [
            float(b.get_attribute("height")) for b in page.find_elements("css selector", selector)
        ]

    p50 = await asyncio.to_thread(bars, "#chart-first-response rect.bar.p50")
    p90 = await asyncio.to_thread(bars, "#chart-first-response rect.bar.p90")
    rates = await asyncio.to_thread(bars, "#chart-breach-rate rect.bar.rate")
    assert len(p50) == len(p90) == len(rates) == 2
    assert p90[0] > p50[0] > p50[1]  # 82 > 50 > 20 minutes
    assert rates[0] > rates[1]  # 50 % against 0 %
    table = await asyncio.to_thread(
        lambda: _css(page, "#chart-breach-rate table").get_attribute("textContent")
    )
    assert "50 %" in table and "0 %" in table
    await shot(page, "board-charts")


# --- thousands of tickets ------------------------------------------------------------------


async def test_a_queue_of_thousands_loads_page_by_page_and_keeps_pages_when_live(
    client: Client, db: asyncpg.Connection, factory: Factory, page: Any
) -> None:
    import asyncio

    from selenium.webdriver.common.keys import Keys

    agent = await factory.agent("agent")
    first = await factory.ticket(client, agent, subject="Hromadný 0")
    await db.execute(
        """INSERT INTO tickets (subject, channel, customer_id, status, created_at)
           SELECT 'Hromadný ' || g, channel, customer_id, 'open', created_at - g * interval '1 s'
           FROM tickets, generate_series(1, 2999) AS g WHERE id = $1""",
        first["id"],
    )

    def shown(p: Any) -> list[str]:
        """The queue's ticket ids, read at once (live updates re-render the rows)."""
        ids: list[str] = p.execute_script(
            "return [...document.querySelectorAll('#queue tr')].map((r) => r.dataset.ticket);"
        )
        return ids

    await log_in(page, client, agent)
    await click(page, 'a[href="#open"]')
    await wait_until(page, lambda p: len(shown(p)) == 50, "the first page of 50")
    assert "Tickets shown: 50" in _css(page, "#queue-count").text
    # "Load more" with the keyboard: the focus lands on the first ticket of the new page.
    more = _css(page, "#more")
    assert more.is_displayed()
    await asyncio.to_thread(page.execute_script, "arguments[0].focus();", more)
    await press(page, Keys.ENTER)
    await wait_until(page, lambda p: len(shown(p)) == 100, "the second page")
    rows = await asyncio.to_thread(shown, page)
    assert len(set(rows)) == 100
    assert await asyncio.to_thread(
        _focused_matches, page, f'#queue a.open-ticket[data-open="{rows[50]}"]'
    )

    # A new ticket arrives live: it shows on top, the loaded pages stay, none repeats.
    new = await factory.ticket(client, agent, subject="Nový mezi tisíci")
    await wait_until(
        page, lambda p: (shown(p) or [None])[0] == str(new["id"]), "the new ticket on top"
    )
    rows = await asyncio.to_thread(shown, page)
    assert len(rows) == len(set(rows)) >= 100
    await wait_until(
        page,
        lambda p: "Nový mezi tisíci" in _css(p, "#announce").get_attribute("textContent"),
        "the new ticket said to screen readers",
    )
    await click(page, "#more")
    await wait_until(page, lambda p: len(shown(p)) >= 150, "the third page")
    rows = await asyncio.to_thread(shown, page)
    assert len(rows) == len(set(rows))
    await shot(page, "queue-thousands")


# --- CSAT comment and retrying a failed reply -------------------------------------------

COMMENT = "<b>Pomalé</b> a drahé"


async def test_ticket_view_shows_the_csat_comment_and_retries_a_failed_reply(
    client: Client,
    db: asyncpg.Connection,
    factory: Factory,
    settings: Settings,
    smtp: SmtpTestServer,
    page: Any,
) -> None:
    await add_account(db, smtp)
    agent = await factory.agent("agent")
    ticket_id, _ = await receive_mail(db, customer_mail(subject="Pomalé vyřízení"))
    smtp.answer("RCPT", "550 5.1.1 mailbox unavailable")
    sent = await client.post(
        f"/tickets/{ticket_id}/replies", json={"text": "Omlouváme se."}, headers=agent.headers
    )
    assert sent.status_code == 201, sent.text
    reply_id = sent.json()["id"]
    await run_worker(settings)
    # The ticket was solved and rated low with a comment; the agent took it up again.
    await db.execute("UPDATE tickets SET status = 'solved', solved_at = now() - interval '2 hours'")
    await csat_service.ask_due(db, settings)
    question = await db.fetchval("SELECT body_text FROM messages WHERE body_text LIKE '%/csat/%'")
    token = LINK.search(question).group(1)  # type: ignore[union-attr]
    rated = await client.post(f"/csat/{token}", data={"rating": "2", "comment": COMMENT})
    assert rated.status_code == 200, rated.text
    await db.execute("UPDATE tickets SET status = 'open', solved_at = NULL")

    await log_in(page, client, agent)
    await click(page, 'a[href="#open"]')
    await click(page, f'#queue tr[data-ticket="{ticket_id}"] a[data-open]')
    rating = await wait_until(page, lambda p: _css(p, "#csat-rating"), "the CSAT panel")
    assert rating.text == "Rating: 2/5"
    comment = _css(page, "#csat-comment")
    assert comment.text == COMMENT  # shown as text, never as markup
    assert _css(page, "#csat-comment b") is None
    await shot(page, "ticket-csat-comment")

    smtp.answer("RCPT", None)  # the mailbox works again
    await click(page, f'button[data-retry="{reply_id}"]')
    await wait_until(
        page, lambda p: _css(p, f'button[data-retry="{reply_id}"]') is None, "the retry"
    )
    status = await db.fetchval("SELECT delivery_status FROM messages WHERE id = $1", reply_id)
    assert status == "pending"
    await run_worker(settings)
    assert await db.fetchval("SELECT delivery_status FROM messages WHERE id = $1", reply_id) == (
        "sent"
    )
    replies = [
        m for m in smtp.received if "Omlouváme" in m.message.get_body(("plain",)).get_content()
    ]
    assert [m.rcpt_tos for m in replies] == [[CUSTOMER]]
