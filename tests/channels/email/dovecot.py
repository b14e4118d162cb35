"""A real Dovecot IMAP server on loopback for the poller's tests, and a cutting TCP relay.

`start_dovecot` runs Dovecot in the foreground from a throwaway configuration in a
temporary directory (its own base_dir, state, users and mail), with a plaintext/STARTTLS
listener and an implicit-TLS one on free ports and a certificate made for the session.
Each test gets its own IMAP user (`Dovecot.new_mailbox`), so tests never see each
other's mail. When the `dovecot` binary is missing it is installed from Debian's
`dovecot-imapd` if we are root with apt-get, otherwise the test fails saying so.

As root, Dovecot refuses to run mail processes as uid 0 and its login processes as
root, so mail belongs to `nobody` and lives in a chroot (the path to the temporary
directory need not be readable by `nobody`), and logins run as `dovenull` (or `nobody`).
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import imaplib
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.faults import free_port

INSTALL_HINT = (
    "the IMAP tests need Dovecot: install Debian's dovecot-imapd "
    "(apt-get install dovecot-imapd) or run the tests as root with apt-get available"
)


USERS = 500  # IMAP users of one session; each test takes fresh ones


def dovecot_binary() -> str:
    """The dovecot binary, installing dovecot-imapd when root and apt-get allow it."""
    found = shutil.which("dovecot") or shutil.which("dovecot", path="/usr/sbin:/usr/local/sbin")
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.fail(INSTALL_HINT, pytrace=False)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", "dovecot-imapd"]):
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)  # noqa: S603
        if done.returncode != 0:
            pytest.fail(
                f"{' '.join(command)} failed ({INSTALL_HINT}):\n{done.stdout}\n{done.stderr}",
                pytrace=False,
            )
    found = shutil.which("dovecot", path="/usr/sbin:/usr/local/sbin:/usr/bin")
    if not found:
        pytest.fail(f"dovecot-imapd installed but no dovecot binary found; {INSTALL_HINT}")
    return found


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1/localhost (also the tests' CA)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("the IMAP tests need the openssl command (Debian: openssl)", pytrace=False)
    done = subprocess.run(  # noqa: S603
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return cert, key


@dataclass
class Mailbox:
    """One IMAP user on the test server; the helpers talk to Dovecot directly."""

    server: Dovecot
    user: str
    password: str

    @contextlib.contextmanager
    def _client(self) -> Iterator[imaplib.IMAP4]:
        client = imaplib.IMAP4("127.0.0.1", self.server.port, timeout=10)
        try:
            client.login(self.user, self.password)
            yield client
        finally:
            with contextlib.suppress(Exception):
                client.logout()

    def _append(self, raws: list[bytes], folder: str) -> list[int]:
        uids = []
        with self._client() as client:
            for raw in raws:
                status, data = client.append(folder, "", None, raw)
                assert status == "OK", data
                found = re.search(rb"APPENDUID \d+ (\d+)", data[0] or b"")
                assert found, data
                uids.append(int(found.group(1)))
        return uids

    async def append(self, *raws: bytes, folder: str = "INBOX") -> list[int]:
        """Deliver mails (APPEND) and return their UIDs."""
        return await asyncio.to_thread(self._append, list(raws), folder)

    def _flags(self, folder: str) -> dict[int, set[str]]:
        with self._client() as client:
            status, data = client.select(folder, readonly=True)
            assert status == "OK", data
            status, data = client.uid("FETCH", "1:*", "(UID FLAGS)")
            assert status == "OK", data
        flags = {}
        for item in data:
            if not isinstance(item, bytes):
                continue
            uid = re.search(rb"UID (\d+)", item)
            names = re.search(rb"FLAGS \(([^)]*)\)", item)
            if uid and names:
                flags[int(uid.group(1))] = set(names.group(1).decode().split())
        return flags

    async def flags(self, folder: str = "INBOX") -> dict[int, set[str]]:
        """Flags by UID of every mail in `folder`."""
        return await asyncio.to_thread(self._flags, folder)

    def _command(self, name: str, *args: str) -> None:
        with self._client() as client:
            status, data = getattr(client, name)(*args)
            assert status == "OK", (name, args, data)

    async def create(self, folder: str) -> None:
        await asyncio.to_thread(self._command, "create", folder)

    async def delete(self, folder: str) -> None:
        await asyncio.to_thread(self._command, "delete", folder)

    def _store(self, folder: str, uid: int, action: str, flags: str) -> None:
        with self._client() as client:
            status, data = client.select(folder)
            assert status == "OK", data
            status, data = client.uid("STORE", str(uid), action, flags)
            assert status == "OK", data

    async def store(self, uid: int, action: str, flags: str, folder: str = "INBOX") -> None:
        await asyncio.to_thread(self._store, folder, uid, action, flags)

    def _uidvalidity(self, folder: str) -> int:
        with self._client() as client:
            status, data = client.status(folder, "(UIDVALIDITY)")
            assert status == "OK", data
        found = re.search(rb"UIDVALIDITY (\d+)", data[0] or b"")
        assert found, data
        return int(found.group(1))

    async def uidvalidity(self, folder: str = "INBOX") -> int:
        return await asyncio.to_thread(self._uidvalidity, folder)


@dataclass
class Dovecot:
    root: Path
    port: int  # plaintext, offers STARTTLS
    tls_port: int  # implicit TLS
    cert: Path
    process: subprocess.Popen[bytes]
    mail_dir: Path
    mail_owner: tuple[int, int] | None  # who owns the homes when we are root
    users: list[tuple[str, str]]
    _users: Iterator[tuple[str, str]] = field(init=False)

    def __post_init__(self) -> None:
        self._users = iter(self.users)

    def log(self) -> str:
        parts = []
        for name in ("dovecot.log", "stderr.log"):
            path = self.root / name
            if path.exists():
                parts.append(f"--- {name}\n{path.read_text(errors='replace')[-8000:]}")
        return "\n".join(parts)

    def tls_context(self) -> ssl.SSLContext:
        """A client context that trusts this server's certificate."""
        return ssl.create_default_context(cafile=str(self.cert))

    def new_mailbox(self) -> Mailbox:
        """A fresh IMAP user with an empty INBOX.

        The users are written before Dovecot starts: it re-reads a changed passwd-file
        only when its mtime (whole seconds) changes, so users added on the fly may be
        refused for up to a second.
        """
        try:
            user, password = next(self._users)
        except StopIteration:
            pytest.fail(f"all {USERS} test IMAP users are taken; raise USERS")
        home = self.mail_dir / user
        home.mkdir()
        if self.mail_owner is not None:
            os.chown(home, *self.mail_owner)
        return Mailbox(self, user, password)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def _config(root: Path, port: int, tls_port: int, cert: Path, key: Path) -> tuple[str, Path]:
    """Dovecot's configuration and the directory holding the users' homes."""
    if os.geteuid() == 0:
        login_user = "dovenull" if _user_exists("dovenull") else "nobody"
        mail_dir = root / "mail"
        nobody = pwd.getpwnam("nobody")
        users = f"""
default_internal_user = root
default_internal_group = root
default_login_user = {login_user}
valid_chroot_dirs = {mail_dir}
userdb {{
  driver = static
  args = uid={nobody.pw_uid} gid={nobody.pw_gid} home={mail_dir}/./%u
}}
"""
    else:  # everything as ourselves; a non-root process cannot chroot
        me = pwd.getpwuid(os.geteuid()).pw_name
        mail_dir = root / "mail"
        users = f"""
default_internal_user = {me}
default_internal_group = {grp.getgrgid(os.getegid()).gr_name}
default_login_user = {me}
userdb {{
  driver = static
  args = uid={os.geteuid()} gid={os.getegid()} home={mail_dir}/%u
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
}}
"""
    config = f"""
base_dir = {root}/run
state_dir = {root}/state
instance_name = helpdesk-test-{os.getpid()}
listen = 127.0.0.1
protocols = imap
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
first_valid_uid = 1
mail_location = maildir:~/Maildir
mail_fsync = never
passdb {{
  driver = passwd-file
  args = {root}/users
}}
service imap-login {{
  inet_listener imap {{
    port = {port}
  }}
  inet_listener imaps {{
    port = {tls_port}
  }}
}}
{users}
"""
    return config, mail_dir


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _accepts(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def start_dovecot(root: Path) -> Dovecot:
    """Start Dovecot and wait until both listeners accept connections."""
    binary = dovecot_binary()
    root.mkdir(parents=True, exist_ok=True)
    for name in ("run", "state"):
        (root / name).mkdir()
    users = [(f"box{n}", "imap-" + secrets.token_urlsafe(12)) for n in range(1, USERS + 1)]
    (root / "users").write_text("".join(f"{u}:{{PLAIN}}{p}\n" for u, p in users))
    cert, key = make_certificate(root)
    port, tls_port = free_port(), free_port()
    config, mail_dir = _config(root, port, tls_port, cert, key)
    mail_dir.mkdir()
    mail_owner = None
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        mail_owner = (nobody.pw_uid, nobody.pw_gid)
        os.chown(mail_dir, *mail_owner)
        mail_dir.chmod(0o700)
    (root / "dovecot.conf").write_text(config)
    with (root / "stderr.log").open("wb") as stderr:
        process = subprocess.Popen(  # noqa: S603
            [binary, "-F", "-c", str(root / "dovecot.conf")],
            stdin=subprocess.DEVNULL,
            stdout=stderr,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Dovecot(root, port, tls_port, cert, process, mail_dir, mail_owner, users)
    deadline = time.monotonic() + 20
    while not (_accepts(port) and _accepts(tls_port)):
        if process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            pytest.fail(f"Dovecot did not start:\n{server.log()}", pytrace=False)
        time.sleep(0.05)
    return server


class CuttingProxy:
    """A TCP relay to a server that drops the connection at a chosen moment, as a broken
    network would: the first time the server's bytes contain `cut_from_server` (or the
    client's contain `cut_from_client`), it forwards only what came before and aborts both
    sides. Later connections pass through untouched."""

    def __init__(
        self,
        target_port: int,
        *,
        cut_from_server: bytes | None = None,
        cut_from_client: bytes | None = None,
    ) -> None:
        self.target_port = target_port
        self.cut_from_server = cut_from_server
        self.cut_from_client = cut_from_client
        self.cuts = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> CuttingProxy:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.transport.abort()
        await self._server.wait_closed()

    async def _relay(
        self, client_reader: asyncio.StreamReader, client: asyncio.StreamWriter
    ) -> None:
        server_reader, server = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers.update((client, server))
        armed = self.cuts == 0

        def cut() -> None:
            self.cuts += 1
            client.transport.abort()
            server.transport.abort()

        async def pump(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter, marker: bytes | None
        ) -> None:
            seen = b""
            while data := await reader.read(65536):
                if armed and marker and self.cuts == 0:
                    window = seen + data
                    at = window.find(marker)
                    if at >= 0:
                        keep = at - len(seen)
                        if keep > 0:
                            writer.write(data[:keep])
                            await writer.drain()
                        cut()
                        return
                    seen = window[-len(marker) :]
                writer.write(data)
                await writer.drain()
            writer.close()

        with contextlib.suppress(ConnectionError, OSError):
            await asyncio.gather(
                pump(server_reader, client, self.cut_from_server),
                pump(client_reader, server, self.cut_from_client),
            )
        self._writers.difference_update((client, server))
