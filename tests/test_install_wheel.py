"""The production install, as the Dockerfile makes it: a wheel in a fresh virtualenv.

The Dockerfile's build stage copies a few paths of the checkout, runs `pip install .`, and
the runtime stage keeps only that virtualenv. Docker does not run here, so this test does
the same by hand: it copies what the build stage copies (read from the Dockerfile itself),
builds the wheel, installs it into a new virtualenv outside the checkout and, from an
unrelated directory, runs the installed `helpdesk migrate`, `mail account add`,
`agent create`, `serve` and `worker` against the test PostgreSQL and Redis. One raw mail
goes in through the email intake and must come out as a classified, routed ticket with
its acknowledgement delivered to a real SMTP server: the path that failed when the
default settings and classification rules were read from the source tree.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helpdesk.db.pool import connect
from tests.channels.email.smtp_server import SmtpTestServer
from tests.conftest import Servers
from tests.faults import free_port

ROOT = Path(__file__).resolve().parent.parent
INTAKE_SECRET = "wheel-install-intake-secret"
MAIL = (
    "From: Jana Nováková <jana@zakaznik.test>\r\n"
    "To: podpora@shop.test\r\n"
    "Subject: =?UTF-8?Q?Reklamace_objedn=C3=A1vky_1234?=\r\n"
    "Date: Thu, 03 Dec 2026 10:00:00 +0100\r\n"
    "Message-ID: <wheel-install-1@zakaznik.test>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: 8bit\r\n"
    "\r\n"
    "Dobrý den,\r\n"
    "přišla mi rozbitá konvice, chci ji reklamovat. Děkuji.\r\n"
).encode()


def _build_stage_copies(dockerfile: str) -> list[tuple[list[str], str]]:
    """The `COPY sources... dest` lines of the Dockerfile's first (build) stage."""
    copies: list[tuple[list[str], str]] = []
    stage = 0
    for line in dockerfile.splitlines():
        words = line.split()
        if words[:1] == ["FROM"]:
            stage += 1
        elif stage == 1 and words[:1] == ["COPY"]:
            assert not words[1].startswith("--"), line
            copies.append((words[1:-1], words[-1]))
    return copies


def _runtime_stage_copies(dockerfile: str) -> list[str]:
    lines = dockerfile.split("\nFROM ")[-1].splitlines()
    return [line for line in lines if line.startswith("COPY ")]


def _copy_like_docker(destination: Path) -> None:
    """What the build stage's COPY lines put into its WORKDIR (with .dockerignore's caches)."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for sources, dest in _build_stage_copies(dockerfile):
        for source in sources:
            src = ROOT / source
            target = destination / dest
            if dest.endswith("/"):
                target = target / src.name
            if src.is_dir():
                shutil.copytree(src, target, ignore=ignore)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, target)


def test_the_runtime_image_takes_nothing_from_the_source_tree() -> None:
    """Every file the service reads at run time is in the installed package; the runtime
    stage copies only the build stage's virtualenv (a `COPY config` would hide a file the
    wheel is missing, as it once hid the classification rules)."""
    copies = _runtime_stage_copies((ROOT / "Dockerfile").read_text())
    assert copies == ["COPY --from=build /opt/helpdesk /opt/helpdesk"]


@dataclass
class Installed:
    bin: Path
    workdir: Path
    env: dict[str, str]

    def run(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        result = subprocess.run(  # noqa: S603 - the installed helpdesk
            [str(self.bin / "helpdesk"), *args],
            input=stdin,
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, (args, result.stdout, result.stderr[-3000:])
        return result

    def start(self, *args: str, log: Path) -> subprocess.Popen[bytes]:
        with log.open("wb") as out:
            return subprocess.Popen(  # noqa: S603 - the installed helpdesk
                [str(self.bin / "helpdesk"), *args],
                cwd=self.workdir,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )


def _install(tmp_path: Path) -> Path:
    """Build the wheel from a Docker-like copy and install it into a new virtualenv."""
    source = tmp_path / "src"
    _copy_like_docker(source)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    subprocess.run(  # noqa: S603 - pip on our own checkout
        [*pip, "wheel", "--quiet", "--no-deps", "-w", str(tmp_path / "dist"), str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = (tmp_path / "dist").glob("helpdesk-*.whl")
    venv = tmp_path / "venv"
    subprocess.run(  # noqa: S603
        [sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=120
    )
    subprocess.run(  # noqa: S603
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheel)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    return venv / "bin"


def _request(
    method: str, url: str, *, body: bytes | None = None, headers: dict[str, str] | None = None
) -> Any:
    request = urllib.request.Request(  # noqa: S310 - loopback
        url, data=body, method=method, headers=headers or {}
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
        return json.loads(response.read())


def _wait_ready(base: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if _request("GET", f"{base}/readyz")["status"] == "ok":
                return
        except (urllib.error.URLError, ConnectionError):
            pass
        assert process.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, "installed `helpdesk serve` did not become ready"
        time.sleep(0.2)


def _stop(process: subprocess.Popen[bytes]) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise


def _intake_to_routed_ticket(
    installed: Installed, smtp_port: int, delivered: Callable[[], bool], tmp_path: Path
) -> Any:
    """Everything the installed commands do, in order; the routed ticket as the API shows it
    once it is routed and `delivered()` says the acknowledgement arrived."""
    where = subprocess.run(  # noqa: S603 - the installed python
        [str(installed.bin / "python"), "-c", "import helpdesk; print(helpdesk.__file__)"],
        cwd=installed.workdir,
        env=installed.env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert Path(where.strip()).is_relative_to(installed.bin.parent), where
    assert not Path(where.strip()).is_relative_to(ROOT), where

    assert installed.run("migrate").stdout.startswith("applied: ")
    installed.run(
        "mail", "account", "add", "podpora", "--address", "podpora@shop.test",
        "--inbound-secret-stdin", stdin=INTAKE_SECRET + "\n",
    )  # fmt: skip
    token = installed.run(
        "agent", "create", "--email", "admin@shop.test", "--role", "admin"
    ).stdout.strip()
    admin = {"authorization": f"Bearer {token}", "content-type": "application/json"}

    port = int(installed.env["HELPDESK_PORT"])
    base = f"http://127.0.0.1:{port}"
    serve_log, worker_log = tmp_path / "serve.log", tmp_path / "worker.log"
    api = installed.start("serve", log=serve_log)
    worker = installed.start("worker", log=worker_log)
    try:
        _wait_ready(base, api, serve_log)
        # The console's files are package data too.
        with urllib.request.urlopen(f"{base}/console/", timeout=10) as page:  # noqa: S310
            assert b'src="/console/app.js"' in page.read()
        _request(
            "PATCH",
            f"{base}/channels/email/accounts/podpora",
            body=json.dumps(
                {"smtp_host": "127.0.0.1", "smtp_port": smtp_port, "smtp_security": "none"}
            ).encode(),
            headers=admin,
        )
        receipt = _request(
            "POST",
            f"{base}/channels/email/podpora/inbound",
            body=MAIL,
            headers={"authorization": f"Bearer {INTAKE_SECRET}", "content-type": "message/rfc822"},
        )
        assert receipt["outcome"] == "stored" and receipt["created_ticket"], receipt
        deadline = time.monotonic() + 60
        while True:
            detail = _request("GET", f"{base}/tickets/{receipt['ticket_id']}", headers=admin)
            ticket = detail["ticket"]
            if ticket["category"] is not None and delivered():
                break
            assert worker.poll() is None, worker_log.read_text()[-3000:]
            assert time.monotonic() < deadline, worker_log.read_text()[-3000:]
            time.sleep(0.2)
    finally:
        worker_status, api_status = _stop(worker), _stop(api)
    logs = serve_log.read_text() + worker_log.read_text()
    assert f"console: {base}/console/" in serve_log.read_text()
    # SIGTERM, as `docker stop` sends it: both shut down cleanly. uvicorn re-raises the
    # signal after its graceful shutdown, so `serve` ends with the signal's status.
    assert (api_status, worker_status) == (-signal.SIGTERM, 0), logs[-3000:]
    assert "Traceback" not in logs, logs[-3000:]
    return ticket


async def test_the_installed_wheel_takes_a_mail_to_a_routed_ticket(
    tmp_path: Path, servers: Servers, db: Any, smtp: SmtpTestServer
) -> None:
    # `db`: the test Redis is flushed, so the installed worker finds no stray jobs.
    bin_dir = await asyncio.to_thread(_install, tmp_path)
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    database_url = await servers.create_database("helpdesk_wheel")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HELPDESK_", "PYTHON")) and k != "VIRTUAL_ENV"
    }
    env |= {
        "HELPDESK_DATABASE_URL": database_url,
        "HELPDESK_REDIS_URL": servers.redis_url,
        "HELPDESK_PORT": str(free_port()),
        "HELPDESK_DEMO": "0",
        "HELPDESK_WORKER__METRICS_PORT": "0",
    }
    try:
        ticket = await asyncio.to_thread(
            _intake_to_routed_ticket,
            Installed(bin_dir, workdir, env),
            smtp.port,
            lambda: bool(smtp.received),
            tmp_path,
        )
        # Classified by the shipped rules, under the shipped SLA policy for complaints.
        assert ticket["category"] == "complaint"
        assert ticket["language"] == "cs"
        assert ticket["first_response_due_at"] is not None
        conn = await connect(database_url)
        try:
            routed = await conn.fetchrow(
                "SELECT routed_at, sla_policy_name FROM tickets WHERE id = $1",
                ticket["id"],
            )
        finally:
            await conn.close()
        assert routed["routed_at"] is not None
        assert routed["sla_policy_name"] == "Complaints"
        # The acknowledgement went out through the account's SMTP server.
        (acknowledgement,) = smtp.received
        assert acknowledgement.rcpt_tos == ["jana@zakaznik.test"]
        assert f"[#{ticket['number']}]" in acknowledgement.message["Subject"]
    finally:
        await servers.drop_database(database_url)
