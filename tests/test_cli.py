"""The commands a newcomer and an operator type: `helpdesk run`, `helpdesk agent create`."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.conftest import Servers
from tests.faults import free_port


def _request(url: str, body: dict[str, Any] | None = None, token: str | None = None) -> Any:
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers)  # noqa: S310 - loopback
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback
        return json.loads(response.read())


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELPDESK_")}
    env.update(extra)
    return env


def _start_run(env: dict[str, str], base: str) -> subprocess.Popen[str]:
    """`helpdesk run`, ready to serve."""
    process = subprocess.Popen(
        [sys.executable, "-m", "helpdesk", "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while True:
        try:
            if _request(f"{base}/readyz")["status"] == "ok":
                return process
        except (urllib.error.URLError, ConnectionError):
            pass
        if process.poll() is not None:
            raise AssertionError(process.communicate()[1][-2000:])
        assert time.monotonic() < deadline, "helpdesk run did not become ready"
        time.sleep(0.3)


def _stop_run(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr[-2000:]
    assert "Traceback" not in stderr
    return stderr


DEMO_MAIL = (
    b"From: Petr Novak <petr@example.test>\r\nTo: support@demo.helpdesk.test\r\n"
    b"Subject: Kabel nefunguje\r\nMessage-ID: <cli-run-1@example.test>\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n\r\nDobry den, kabel nefunguje.\r\n"
)


def test_run_starts_embedded_servers_seeds_a_demo_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    env = _clean_env(HELPDESK_DATA_DIR=str(tmp_path / "var"), HELPDESK_PORT=str(port))
    base = f"http://127.0.0.1:{port}"
    process = _start_run(env, base)
    try:
        login = _request(
            f"{base}/auth/login", {"email": "agent@demo.helpdesk.test", "password": "helpdesk-demo"}
        )
        tickets = _request(f"{base}/tickets", token=login["token"])
        assert len(tickets["items"]) >= 3
        # The demo mailbox sends for real, into the local SMTP sink: a new mail's
        # acknowledgement arrives as a file under var/demo-mail/.
        request = urllib.request.Request(  # noqa: S310 - loopback
            f"{base}/channels/email/support/inbound",
            data=DEMO_MAIL,
            headers={"authorization": "Bearer helpdesk-demo-inbound-secret"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback
            assert json.loads(response.read())["created_ticket"]
        deadline = time.monotonic() + 30
        while not list((tmp_path / "var" / "demo-mail").glob("*.eml")):
            assert time.monotonic() < deadline, "no acknowledgement reached the demo mail sink"
            time.sleep(0.2)
        (kept,) = (tmp_path / "var" / "demo-mail").glob("*.eml")
        assert b"To: Petr Novak <petr@example.test>" in kept.read_bytes()
    finally:
        stderr = _stop_run(process)
    assert "agent@demo.helpdesk.test" in stderr and "helpdesk-demo" in stderr
    assert f"console: {base}/console/" in stderr
    assert "demo-mail" in stderr
    # The data stays for the next start; the embedded PostgreSQL was stopped.
    assert (tmp_path / "var" / "postgres" / "PG_VERSION").exists()
    assert not (tmp_path / "var" / "postgres" / "postmaster.pid").exists()

    # Every start says where the console is and how to sign in, not only the first.
    stderr = _stop_run(_start_run(env, base))
    assert "Demo data seeded" not in stderr
    assert f"console: {base}/console/" in stderr
    assert "agent@demo.helpdesk.test" in stderr and "helpdesk-demo" in stderr


async def test_agent_create_prints_a_working_token_once(servers: Servers, tmp_path: Path) -> None:
    dsn = await servers.create_database("helpdesk_cli")
    try:
        env = _clean_env(
            HELPDESK_DATABASE_URL=dsn,
            HELPDESK_REDIS_URL=servers.redis_url,
            HELPDESK_AUTH__ARGON2_MEMORY_KIB="256",
            HELPDESK_AUTH__ARGON2_TIME_COST="1",
            HELPDESK_AUTH__ARGON2_PARALLELISM="1",
        )
        result = await asyncio.to_thread(
            subprocess.run,
            [
                sys.executable,
                "-m",
                "helpdesk",
                "agent",
                "create",
                "--email",
                "ops@example.test",
                "--role",
                "admin",
                "--password-stdin",
            ],
            input="a long admin password\n",
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        token = result.stdout.strip()
        assert token.startswith("hd_") and "\n" not in token
        assert token not in result.stderr
        again = await asyncio.to_thread(
            subprocess.run,
            [
                sys.executable,
                "-m",
                "helpdesk",
                "agent",
                "create",
                "--email",
                "ops@example.test",
                "--role",
                "admin",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert again.returncode == 1
        assert "already exists" in again.stderr and "Traceback" not in again.stderr
        import asyncpg

        conn = await asyncpg.connect(dsn)
        try:
            role = await conn.fetchval("SELECT role FROM agents WHERE email = 'ops@example.test'")
            assert role == "admin"
        finally:
            await conn.close()
    finally:
        await servers.drop_database(dsn)


def test_mail_parse_prints_the_parser_preview_without_a_database(tmp_path: Path) -> None:
    from helpdesk.channels.email.parse import parse_email

    corpus = Path(__file__).parent / "channels" / "email" / "corpus"
    sample = corpus / "chatwoot_only_text.eml"
    # No URLs and a data dir that must stay empty: parsing never starts a server.
    env = _clean_env(HELPDESK_DATA_DIR=str(tmp_path / "var"))
    result = subprocess.run(  # noqa: S603 - our own interpreter and a corpus file
        [sys.executable, "-m", "helpdesk", "mail", "parse", str(sample)],
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    preview = json.loads(result.stdout)
    expected = parse_email(sample.read_bytes())
    assert preview["from_email"] == expected.from_email == "text@example.com"
    assert preview["subject"] == expected.subject
    assert set(preview) >= {
        "from_email",
        "from_name",
        "to",
        "cc",
        "subject",
        "message_id",
        "in_reply_to",
        "references",
        "date",
        "text",
        "html",
        "attachments",
        "auto_submitted",
        "bounce",
    }
    assert not (tmp_path / "var").exists()


def test_service_commands_run_on_uvloop() -> None:
    """`run`, `serve` and `worker` put their event loops on uvloop (a dependency on
    Linux): the CPU per database round trip is what ingestion throughput is made of."""
    import uvloop

    from helpdesk.cli.servers import use_uvloop

    before = asyncio.get_event_loop_policy()
    try:
        assert use_uvloop()
        loop = asyncio.new_event_loop()
        try:
            assert isinstance(loop, uvloop.Loop)
        finally:
            loop.close()
    finally:
        asyncio.set_event_loop_policy(before)
