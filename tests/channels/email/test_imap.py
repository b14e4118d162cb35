"""The IMAP poller against a real Dovecot: every mail becomes a ticket message exactly
once, whatever crashes, drops, rescans or backlogs happen (reliability F8, zammad#1662)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import asyncpg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from msgspec import structs

from helpdesk.channels.email import accounts
from helpdesk.channels.email.accounts import EmailAccount, EmailAccountCreate, EmailAccountUpdate
from helpdesk.channels.email.imap.poller import MailPoller, PollResult, poll_once
from helpdesk.channels.email.imap.protocol import (
    MAX_REASON_LENGTH,
    MailboxError,
    backoff_seconds,
    encode_mailbox_name,
    new_uids,
    parse_fetched_body,
    parse_search,
    parse_uidvalidity,
    scrub,
    search_range,
)
from helpdesk.config import Settings
from tests.channels.email.dovecot import CuttingProxy, Dovecot, Mailbox
from tests.conftest import Client
from workers.settings import build_worker

# --- helpers ------------------------------------------------------------------------


def mail(subject: str, *, message_id: str | None = None, body: str = "Dobrý den.") -> bytes:
    message_id = message_id or f"{secrets.token_hex(6)}@customer.example"
    return (
        "From: Jana Novakova <jana@customer.example>\r\n"
        "To: podpora@shop.example\r\n"
        f"Subject: {subject}\r\n"
        "Date: Mon, 23 Nov 2026 09:00:00 +0100\r\n"
        f"Message-ID: <{message_id}>\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "\r\n"
        f"{body}\r\n"
    ).encode()


def imap_settings(settings: Settings, **email: Any) -> Settings:
    """Test settings: short timeouts and backoff unless a test says otherwise."""
    values: dict[str, Any] = {
        "imap_timeout_seconds": 5.0,
        "imap_backoff_max_seconds": 0.5,
        "imap_poll_seconds": 600.0,
        "imap_idle_seconds": 600.0,
    }
    values.update(email)
    return structs.replace(settings, email=structs.replace(settings.email, **values))


async def imap_account(
    db: asyncpg.Connection, mailbox: Mailbox, name: str = "support", **fields: Any
) -> EmailAccount:
    """An active account reading `mailbox` in clear text (tests override the rest)."""
    values: dict[str, Any] = {
        "name": name,
        "address": f"{name}@shop.example",
        "imap_host": "127.0.0.1",
        "imap_port": mailbox.server.port,
        "imap_security": "none",
        "imap_username": mailbox.user,
        "imap_password": mailbox.password,
        "auto_acknowledge": False,
    }
    values.update(fields)
    await accounts.create_account(db, EmailAccountCreate(**values))
    return await reload(db, name)


async def reload(db: asyncpg.Connection, name: str) -> EmailAccount:
    account = await accounts.get_account(db, name)
    assert account is not None
    return account


async def stored_ids(db: asyncpg.Connection) -> list[str]:
    """Message-IDs of the stored messages, one entry per stored row."""
    rows = await db.fetch("SELECT external_id FROM messages ORDER BY id")
    return [r["external_id"] for r in rows]


async def cursor(db: asyncpg.Connection, account: EmailAccount) -> asyncpg.Record:
    row = await db.fetchrow(
        "SELECT * FROM imap_cursors WHERE account_id = $1 AND folder = $2",
        account.id,
        account.imap_folder,
    )
    assert row is not None
    return row


async def eventually(check: Callable[[], Awaitable[bool]], what: str, seconds: float = 20) -> None:
    """Wait until `check()` holds (bounded; the bound is no assertion about speed)."""
    deadline = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < deadline, f"gave up waiting: {what}"
        await asyncio.sleep(0.05)


@pytest.fixture
async def poller_factory(
    pool: asyncpg.Pool,
) -> AsyncIterator[Callable[..., Awaitable[MailPoller]]]:
    """Started MailPollers, stopped at the end of the test."""
    started: list[MailPoller] = []

    async def start(settings: Settings, **options: Any) -> MailPoller:
        poller = MailPoller(pool, settings, refresh_seconds=0.1, **options)
        await poller.start()
        started.append(poller)
        return poller

    yield start
    for poller in started:
        await poller.stop()


@pytest.fixture
def dead_port() -> Iterator[int]:
    """A loopback port where nothing listens (bound, so nobody else takes it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


# --- pure helpers ---------------------------------------------------------------------


def test_the_search_range_starts_after_the_cursor() -> None:
    assert search_range(0) == "1:*"
    assert search_range(41) == "42:*"


def test_the_highest_uid_that_imap_always_returns_for_n_star_is_not_new() -> None:
    # `UID SEARCH UID 8:*` on a folder whose highest UID is 7 answers "7".
    assert new_uids(parse_search([b"7", b"Search completed."]), 7) == []
    assert new_uids(parse_search([b"", b"Search completed."]), 0) == []
    assert new_uids([9, 8, 7, 9], 7) == [8, 9]


@given(found=st.lists(st.integers(min_value=1, max_value=10_000)), last=st.integers(0, 10_000))
def test_new_uids_are_above_the_cursor_ascending_and_unique(found: list[int], last: int) -> None:
    uids = new_uids(found, last)
    assert uids == sorted(set(uids))
    assert all(uid > last for uid in uids)
    assert set(uids) == {uid for uid in found if uid > last}


def test_uidvalidity_and_fetched_bodies_are_read_from_aioimaplib_responses() -> None:
    select = [b"3 EXISTS", b"OK [UIDVALIDITY 1795435575] UIDs valid", b"Select completed."]
    assert parse_uidvalidity(select) == 1795435575
    assert parse_uidvalidity([b"Select completed."]) is None
    raw = b"Subject: (unbalanced\r\n\r\nbody ) (\r\n"
    lines = [b"1 FETCH (UID 7 FLAGS (\\Seen) BODY[] {%d}" % len(raw), bytearray(raw), b")", b"OK"]
    assert parse_fetched_body(lines, 7) == raw
    assert parse_fetched_body(lines, 8) is None
    uid_after = [b"1 FETCH (BODY[] {%d}" % len(raw), bytearray(raw), b" UID 7)", b"OK"]
    assert parse_fetched_body(uid_after, 7) == raw
    assert parse_fetched_body([b"Fetch completed."], 7) is None  # expunged meanwhile


def test_backoff_doubles_up_to_the_cap() -> None:
    delays = [backoff_seconds(n, cap=900) for n in range(1, 15)]
    assert delays[:4] == [1, 2, 4, 8]
    assert delays == sorted(delays)
    assert max(delays) == 900
    assert backoff_seconds(10_000, cap=30) == 30
    assert backoff_seconds(0, cap=30) == 0


def test_folder_names_are_sent_in_modified_utf7() -> None:
    assert encode_mailbox_name("INBOX") == "INBOX"
    assert encode_mailbox_name("Zpracováno") == "Zpracov&AOE-no"
    assert encode_mailbox_name("R&D") == "R&-D"
    assert encode_mailbox_name("日本語") == "&ZeVnLIqe-"


def test_failure_reasons_never_hold_the_password_and_stay_short() -> None:
    assert scrub("login refused for hunter2-password", ["hunter2-password"]) == (
        "login refused for ***"
    )
    assert len(scrub("x" * 5000, [None])) == MAX_REASON_LENGTH
    assert scrub("two\r\nlines", []) == "two lines"


# --- a round against Dovecot ------------------------------------------------------------


async def test_mails_in_the_mailbox_become_tickets_with_their_message_ids(
    db: asyncpg.Connection, pool: asyncpg.Pool, settings: Settings, mailbox: Mailbox
) -> None:
    await mailbox.append(
        mail("Reklamace hrnku", message_id="hrnek-1@customer.example"),
        mail("Dotaz na dopravu", message_id="doprava-2@customer.example"),
    )
    account = await imap_account(db, mailbox)

    result = await poll_once(pool, imap_settings(settings), account)

    assert (result.imported, result.duplicates, result.more) == (2, 0, False)
    rows = await db.fetch(
        """SELECT m.external_id, m.channel, m.channel_account, t.subject
           FROM messages m JOIN tickets t ON t.id = m.ticket_id ORDER BY m.id"""
    )
    assert [tuple(r) for r in rows] == [
        ("hrnek-1@customer.example", "email", "support", "Reklamace hrnku"),
        ("doprava-2@customer.example", "email", "support", "Dotaz na dopravu"),
    ]
    state = await cursor(db, account)
    assert (state["status"], state["failures"], state["last_error"]) == ("ok", 0, None)
    assert state["last_ok_at"] is not None
    assert state["last_uid"] == result.last_uid == 2


async def test_imported_mail_is_flagged_seen_on_the_server(
    db: asyncpg.Connection, pool: asyncpg.Pool, settings: Settings, mailbox: Mailbox
) -> None:
    uids = await mailbox.append(mail("První"), mail("Druhý"))
    account = await imap_account(db, mailbox)
    assert all("\\Seen" not in flags for flags in (await mailbox.flags()).values())

    await poll_once(pool, imap_settings(settings), account)

    flags = await mailbox.flags()
    assert set(flags) == set(uids)
    assert all("\\Seen" in flags[uid] for uid in uids)


async def test_move_mode_moves_imported_mail_to_the_configured_folder(
    db: asyncpg.Connection, pool: asyncpg.Pool, settings: Settings, mailbox: Mailbox
) -> None:
    await mailbox.append(mail("Přesunout 1"), mail("Přesunout 2"))
    # The target folder does not exist yet: the poller creates it when the server asks.
    account = await imap_account(db, mailbox, imap_processed="move", imap_move_to="Zpracováno")

    result = await poll_once(pool, imap_settings(settings), account)

    assert result.imported == 2
    assert await mailbox.flags() == {}
    moved = await mailbox.flags(encode_mailbox_name("Zpracováno"))
    assert len(moved) == 2
    assert all("\\Seen" in flags for flags in moved.values())


async def test_a_second_poll_and_a_restarted_poller_import_nothing_twice(
    db: asyncpg.Connection,
    pool: asyncpg.Pool,
    settings: Settings,
    mailbox: Mailbox,
    poller_factory: Callable[..., Awaitable[MailPoller]],
) -> None:
    await mailbox.append(mail("Jednou"), mail("Podruhé"))
    account = await imap_account(db, mailbox, imap_processed="keep")
    config = imap_settings(settings)

    first = await poll_once(pool, config, account)
    again = await poll_once(pool, config, account)

    assert first.imported == 2
    assert (again.imported, again.duplicates, again.last_uid) == (0, 0, first.last_uid)
    before = await stored_ids(db)
    last_ok = (await cursor(db, account))["last_ok_at"]

    # A brand-new poller (a restarted worker) starts from the stored cursor.
    poller = await poller_factory(config)

    async def polled_again() -> bool:
        return bool((await cursor(db, account))["last_ok_at"] > last_ok)

    await eventually(polled_again, "the restarted poller's first round")
    await poller.stop()
    assert await stored_ids(db) == before
    assert len(before) == 2


async def test_a_crash_after_the_commit_but_before_seen_imports_nothing_twice(
    db: asyncpg.Connection,
    pool: asyncpg.Pool,
    settings: Settings,
    mailbox: Mailbox,
    dovecot: Dovecot,
) -> None:
    """zammad#1662: the mail is stored, then the connection dies before `UID STORE`."""
    uids = await mailbox.append(mail("Padá to"), mail("Druhá"))
    config = imap_settings(settings)
    async with CuttingProxy(dovecot.port, cut_from_client=b"UID STORE") as proxy:
        account = await imap_account(db, mailbox, imap_port=proxy.port)
        with pytest.raises(MailboxError, match="STORE"):
            await poll_once(pool, config, account)
        assert proxy.cuts == 1

    # The first mail is stored and the cursor is past it, but it never got its \Seen.
    assert len(await stored_ids(db)) == 1
    assert (await cursor(db, account))["last_uid"] == uids[0]
    assert "\\Seen" not in (await mailbox.flags())[uids[0]]

    await db.execute("UPDATE email_accounts SET imap_port = $1", dovecot.port)
    account = await reload(db, "support")
    result = await poll_once(pool, config, account)
    assert (result.imported, result.duplicates) == (1, 0)  # only the second mail

    # Even with the cursor lost altogether, Message-ID dedupe keeps it at one copy each.
    await db.execute("UPDATE imap_cursors SET last_uid = 0")
    result = await poll_once(pool, config, account)
    assert (result.imported, result.duplicates) == (0, 2)
    assert len(await stored_ids(db)) == 2
    assert all("\\Seen" in flags for flags in (await mailbox.flags()).values())


async def test_a_new_uidvalidity_rescans_the_folder_without_duplicates(
    db: asyncpg.Connection, pool: asyncpg.Pool, settings: Settings, mailbox: Mailbox
) -> None:
    old_mails = [mail("Stará 1"), mail("Stará 2")]
    await mailbox.create("Support")
    await mailbox.append(*old_mails, folder="Support")
    account = await imap_account(db, mailbox, imap_folder="Support")
    config = imap_settings(settings)
    first = await poll_once(pool, config, account)
    assert first.imported == 2

    # The folder is recreated (new UIDVALIDITY): its old mails come back under new UIDs.
    await mailbox.delete("Support")
    await mailbox.create("Support")
    new_validity = await mailbox.uidvalidity("Support")
    assert new_validity != first.uidvalidity
    await mailbox.append(*old_mails, mail("Nová"), folder="Support")

    result = await poll_once(pool, config, account)

    assert result.rescanned
    assert (result.imported, result.duplicates) == (1, 2)
    assert (result.uidvalidity, result.last_uid) == (new_validity, 3)
    ids = await stored_ids(db)
    assert len(ids) == len(set(ids)) == 3
    state = await cursor(db, account)
    assert (state["uidvalidity"], state["last_uid"]) == (new_validity, 3)


async def test_a_backlog_is_imported_in_bounded_batches_and_completely(
    db: asyncpg.Connection, pool: asyncpg.Pool, settings: Settings, mailbox: Mailbox
) -> None:
    await mailbox.append(*(mail(f"Backlog {n}") for n in range(25)))
    account = await imap_account(db, mailbox)
    config = imap_settings(settings, imap_batch_size=10)

    rounds: list[PollResult] = []
    while not rounds or rounds[-1].more:
        rounds.append(await poll_once(pool, config, account))
        assert len(rounds) <= 3

    assert [(r.imported, r.more) for r in rounds] == [(10, True), (10, True), (5, False)]
    ids = await stored_ids(db)
    assert len(ids) == len(set(ids)) == 25
    assert all("\\Seen" in flags for flags in (await mailbox.flags()).values())


async def test_the_poller_drains_a_backlog_batch_after_batch_without_waiting(
    db: asyncpg.Connection,
    settings: Settings,
    mailbox: Mailbox,
    poller_factory: Callable[..., Awaitable[MailPoller]],
) -> None:
    await mailbox.append(*(mail(f"Fronta {n}") for n in range(25)))
    await imap_account(db, mailbox)
    # Poll and IDLE intervals far beyond the wait: only batch-after-batch gets all 25.
    await poller_factory(imap_settings(settings, imap_batch_size=10))

    async def all_stored() -> bool:
        return len(await stored_ids(db)) == 25

    await eventually(all_stored, "25 mails stored")
    ids = await stored_ids(db)
    assert len(set(ids)) == 25


async def test_a_connection_dropped_mid_fetch_leaves_the_mail_for_the_next_round(
    db: asyncpg.Connection,
    pool: asyncpg.Pool,
    settings: Settings,
    mailbox: Mailbox,
    dovecot: Dovecot,
) -> None:
    marker = "CUT-HERE-" + secrets.token_hex(4)
    uids = await mailbox.append(
        mail("Jedna"), mail("Dva"), mail("Tři", body=f"Začátek {marker} konec"), mail("Čtyři")
    )
    config = imap_settings(settings)
    async with CuttingProxy(dovecot.port, cut_from_server=marker.encode()) as proxy:
        account = await imap_account(db, mailbox, imap_port=proxy.port)
        with pytest.raises(MailboxError, match=f"FETCH {uids[2]}"):
            await poll_once(pool, config, account)
        assert proxy.cuts == 1

    state = await cursor(db, account)
    assert state["last_uid"] == uids[1]  # before the mail whose download broke
    assert state["status"] == "failing"
    assert "closed the connection" in state["last_error"]
    assert len(await stored_ids(db)) == 2
    assert "\\Seen" not in (await mailbox.flags())[uids[2]]  # BODY.PEEK flagged nothing

    await db.execute("UPDATE email_accounts SET imap_port = $1", dovecot.port)
    result = await poll_once(pool, config, await reload(db, "support"))

    assert (result.imported, result.last_uid) == (2, uids[3])
    ids = await stored_ids(db)
    assert len(ids) == len(set(ids)) == 4
    assert (await cursor(db, account))["status"] == "ok"


async def test_a_wrong_password_marks_the_mailbox_failing_without_revealing_it(
    db: asyncpg.Connection,
    pool: asyncpg.Pool,
    settings: Settings,
    private_dovecot: Dovecot,
    caplog: pytest.LogCaptureFixture,
) -> None:
    mailbox = private_dovecot.new_mailbox()
    await mailbox.append(mail("Nepřečte se"))
    wrong = "Wrong-Pa55word-" + secrets.token_hex(4)
    account = await imap_account(db, mailbox, imap_password=wrong)
    caplog.set_level(logging.DEBUG)

    with pytest.raises(MailboxError) as raised:
        await poll_once(pool, imap_settings(settings), account)

    state = await cursor(db, account)
    assert (state["status"], state["failures"], state["last_ok_at"]) == ("failing", 1, None)
    assert "login" in state["last_error"]
    assert "AUTHENTICATIONFAILED" in state["last_error"]
    for text in (state["last_error"], str(raised.value), caplog.text):
        assert wrong not in text
    assert await stored_ids(db) == []


async def test_tls_and_starttls_mailboxes_are_read_over_an_encrypted_connection(
    db: asyncpg.Connection,
    pool: asyncpg.Pool,
    settings: Settings,
    dovecot: Dovecot,
) -> None:
    config = imap_settings(settings)
    for security, port in (("tls", dovecot.tls_port), ("starttls", dovecot.port)):
        box = dovecot.new_mailbox()
        await box.append(mail(f"Přes {security}"))
        account = await imap_account(db, box, name=security, imap_security=security, imap_port=port)
        result = await poll_once(pool, config, account, tls_context=dovecot.tls_context())
        assert result.imported == 1, security

    # Without trusting the test CA the certificate is refused, and nothing is read.
    box = dovecot.new_mailbox()
    await box.append(mail("Nedůvěryhodný"))
    account = await imap_account(
        db, box, name="untrusted", imap_security="tls", imap_port=dovecot.tls_port
    )
    with pytest.raises(MailboxError, match="TLS certificate"):
        await poll_once(pool, config, account)
    assert len(await stored_ids(db)) == 2


async def test_a_dead_mailbox_fails_visibly_while_a_healthy_one_keeps_importing(
    db: asyncpg.Connection,
    settings: Settings,
    dovecot: Dovecot,
    client: Client,
    dead_port: int,
    poller_factory: Callable[..., Awaitable[MailPoller]],
) -> None:
    healthy_box, dead_box = dovecot.new_mailbox(), dovecot.new_mailbox()
    healthy = await imap_account(db, healthy_box, name="healthy")
    dead = await imap_account(db, dead_box, name="dead", imap_port=dead_port)
    await healthy_box.append(mail("Zdravá 1", message_id="healthy-1@customer.example"))
    await dead_box.append(mail("Mrtvá 1", message_id="dead-1@customer.example"))
    await poller_factory(imap_settings(settings))

    async def dead_failed_twice() -> bool:
        row = await db.fetchrow("SELECT * FROM imap_cursors WHERE account_id = $1", dead.id)
        return row is not None and row["failures"] >= 2

    async def stored(message_id: str) -> bool:
        return message_id in await stored_ids(db)

    await eventually(dead_failed_twice, "the dead mailbox retried")
    await eventually(lambda: stored("healthy-1@customer.example"), "healthy mail 1")
    # The healthy mailbox keeps going while the dead one keeps failing.
    await healthy_box.append(mail("Zdravá 2", message_id="healthy-2@customer.example"))
    await eventually(lambda: stored("healthy-2@customer.example"), "healthy mail 2")

    response = await client.get("/readyz")
    assert response.status_code == 200, response.text  # HTTP intake still works
    body = response.json()
    assert body["status"] == "ok"
    boxes = {box["account"]: box for box in body["mailboxes"]}
    assert boxes["healthy"]["status"] == "ok"
    assert boxes["healthy"]["last_ok_at"] is not None
    assert boxes["dead"]["status"] == "failing"
    assert boxes["dead"]["failures"] >= 2
    assert boxes["dead"]["folder"] == "INBOX"
    assert "connection refused" in boxes["dead"]["last_error"]
    assert dead_box.password not in response.text
    assert str(dead_port) not in response.text  # no infrastructure details on a public page
    assert (await cursor(db, healthy))["status"] == "ok"

    # Pointed at the real server (through the admin API's service), it recovers.
    await accounts.update_account(db, "dead", EmailAccountUpdate(imap_port=dovecot.port))
    await eventually(lambda: stored("dead-1@customer.example"), "the recovered mailbox's mail")

    async def recovered() -> bool:
        row = await cursor(db, dead)
        return bool(row["status"] == "ok" and row["failures"] == 0)

    await eventually(recovered, "the recovered mailbox marked ok")
    ids = await stored_ids(db)
    assert len(ids) == len(set(ids)) == 3


async def test_idle_picks_up_new_mail_without_waiting_for_the_poll_interval(
    db: asyncpg.Connection,
    settings: Settings,
    mailbox: Mailbox,
    dovecot: Dovecot,
    poller_factory: Callable[..., Awaitable[MailPoller]],
) -> None:
    account = await imap_account(db, mailbox)
    poller = await poller_factory(imap_settings(settings, imap_poll_seconds=600))

    async def first_round_done() -> bool:
        row = await db.fetchrow("SELECT status FROM imap_cursors WHERE account_id = $1", account.id)
        return row is not None and row["status"] == "ok"

    await eventually(first_round_done, "the poller's first round")
    await mailbox.append(mail("Právě dorazila", message_id="idle-1@customer.example"))

    async def stored() -> bool:
        return await stored_ids(db) == ["idle-1@customer.example"]

    await eventually(stored, "the mail announced during IDLE")

    # Stopping logs out of the server (Dovecot says so in its log).
    await poller.stop()

    async def logged_out() -> bool:
        return any(
            f"imap({mailbox.user})" in line and "Logged out" in line
            for line in dovecot.log().splitlines()
        )

    await eventually(logged_out, "Dovecot logging the logout", seconds=10)


async def test_a_deactivated_account_is_no_longer_polled(
    db: asyncpg.Connection,
    settings: Settings,
    mailbox: Mailbox,
    poller_factory: Callable[..., Awaitable[MailPoller]],
) -> None:
    account = await imap_account(db, mailbox)
    poller = await poller_factory(imap_settings(settings))

    async def polling() -> bool:
        return account.id in poller.polled_accounts()

    await eventually(polling, "the account being polled")
    await accounts.update_account(db, "support", EmailAccountUpdate(active=False))

    async def not_polling() -> bool:
        return account.id not in poller.polled_accounts()

    await eventually(not_polling, "the deactivated account dropped")
    await mailbox.append(mail("Po deaktivaci"))
    await asyncio.sleep(0.3)  # several refreshes: nothing may be imported meanwhile
    assert await stored_ids(db) == []


async def test_the_worker_polls_imap_mailboxes_from_start_up_to_shutdown(
    db: asyncpg.Connection, settings: Settings, mailbox: Mailbox, dovecot: Dovecot
) -> None:
    await mailbox.append(mail("Přes workera", message_id="worker-1@customer.example"))
    await imap_account(db, mailbox)
    # The outbox relay (a cron job) rarely runs then: arq's close() skips the shutdown
    # hook when it has to cancel a job in flight, which is not what this test is about.
    config = imap_settings(settings)
    config = structs.replace(
        config, worker=structs.replace(config.worker, outbox_relay_interval_seconds=30)
    )
    worker = build_worker(config, handle_signals=False)
    running = asyncio.create_task(worker.async_run())
    try:

        async def stored() -> bool:
            return await stored_ids(db) == ["worker-1@customer.example"]

        async def no_job_in_flight() -> bool:
            return worker.jobs_complete > 0 and all(t.done() for t in worker.tasks.values())

        await eventually(stored, "the worker importing the mail")
        poller: MailPoller = worker.ctx["mail_poller"]
        assert poller.polled_accounts()
        await eventually(no_job_in_flight, "the relay run at start-up finishing")
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        await worker.close()
    assert poller.polled_accounts() == set()

    async def logged_out() -> bool:
        return any(
            f"imap({mailbox.user})" in line and "Logged out" in line
            for line in dovecot.log().splitlines()
        )

    await eventually(logged_out, "Dovecot logging the worker's logout", seconds=10)
