"""IMAP responses, UID ranges, mailbox names, backoff and safe failure reasons: pure, no I/O."""

from __future__ import annotations

import base64
import errno
import re
import socket
import ssl
from collections.abc import Iterable, Sequence

from aioimaplib import aioimaplib  # type: ignore[import-untyped]

MAX_REASON_LENGTH = 300


class MailboxError(Exception):
    """A mailbox could not be read. The message is short and safe to store and show:
    it never holds the password, and names no host or port (/readyz is public)."""


def search_range(last_uid: int) -> str:
    """The UID set after the cursor, for `UID SEARCH UID <set>`."""
    return f"{last_uid + 1}:*"


def new_uids(found: Iterable[int], last_uid: int) -> list[int]:
    """UIDs above the cursor, ascending and unique.

    `n:*` always matches the highest UID, even when it is below n (RFC 3501 6.4.8), so
    the server's answer is filtered rather than trusted.
    """
    return sorted({uid for uid in found if uid > last_uid})


def parse_search(lines: Sequence[bytes]) -> list[int]:
    """The UIDs of a SEARCH answer as aioimaplib returns it (the last line is the
    completion text; other untagged data never consists of numbers only)."""
    uids: list[int] = []
    for line in lines[:-1]:
        tokens = bytes(line).split()
        if tokens and all(token.isdigit() for token in tokens):
            uids.extend(int(token) for token in tokens)
    return uids


_UIDVALIDITY = re.compile(rb"\[UIDVALIDITY (\d+)\]")


_FETCH = re.compile(rb"^\d+ FETCH \(")


_FETCH_UID = re.compile(rb"\bUID (\d+)")


_LITERAL = re.compile(rb"\{(\d+)\}$")


def parse_uidvalidity(lines: Sequence[bytes]) -> int | None:
    """UIDVALIDITY from the answer to SELECT."""
    for line in lines:
        match = _UIDVALIDITY.search(bytes(line))
        if match:
            return int(match.group(1))
    return None


def parse_fetched_body(lines: Sequence[bytes], uid: int) -> bytes | None:
    """The raw mail of `uid` in the answer to `UID FETCH uid (UID BODY.PEEK[])`.

    aioimaplib returns a literal as the element after the line that announces it
    (`* 1 FETCH (UID 7 BODY[] {1234}`). None when the answer holds no such mail, e.g.
    because it was expunged in the meantime.
    """
    for index, raw_line in enumerate(lines):
        line = bytes(raw_line)
        if not _FETCH.match(line):
            continue
        # UID usually precedes the body; a server may also send it after the literal.
        after = bytes(lines[index + 2]) if index + 2 < len(lines) else b""
        found = _FETCH_UID.search(line) or _FETCH_UID.search(after)
        if found is None or int(found.group(1)) != uid:
            continue
        literal = _LITERAL.search(line)
        if literal and index + 1 < len(lines):
            body = bytes(lines[index + 1])
            if len(body) == int(literal.group(1)):
                return body
        if b"BODY[] NIL" in line:
            return b""
    return None


def backoff_seconds(failures: int, cap: float, base: float = 1.0) -> float:
    """Wait before the next attempt after `failures` failures in a row: 1, 2, 4 ... s,
    never more than `cap`."""
    if failures <= 0:
        return 0.0
    return float(min(cap, base * 2 ** min(failures - 1, 40)))


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """`text` without any of `secrets`, one line, at most MAX_REASON_LENGTH characters."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = " ".join(text.split())
    if len(text) > MAX_REASON_LENGTH:
        text = text[: MAX_REASON_LENGTH - 1] + "…"
    return text


def failure_reason(error: BaseException, step: str) -> str:
    """A short operator-facing reason for an exception raised during `step`.

    Deliberately without the exception's own text where that names the host or port.
    """
    if isinstance(error, ConnectionRefusedError) or (
        isinstance(error, OSError) and error.errno == errno.ECONNREFUSED
    ):
        return f"connection refused ({step})"
    if isinstance(error, (TimeoutError, aioimaplib.CommandTimeout)):
        return f"no answer within the timeout ({step})"
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"TLS certificate not accepted ({step}): {error.verify_message}"
    if isinstance(error, ssl.SSLError):
        return f"TLS failed ({step}): {error.reason or type(error).__name__}"
    if isinstance(error, socket.gaierror):
        return f"host name not found ({step})"
    if isinstance(error, OSError):
        return f"network error ({step}): {error.strerror or type(error).__name__}"
    if isinstance(error, aioimaplib.AioImapException):
        return f"IMAP protocol error ({step}): {error}"
    if isinstance(error, ValueError):  # e.g. a CR or LF in a configured name or password
        return f"invalid IMAP argument ({step})"
    return f"{type(error).__name__} ({step})"


def encode_mailbox_name(name: str) -> str:
    """IMAP's modified UTF-7 (RFC 3501 5.1.3), so folders such as `Zpracováno` work."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            encoded = base64.b64encode("".join(pending).encode("utf-16-be")).rstrip(b"=")
            out.append("&" + encoded.replace(b"/", b",").decode("ascii") + "-")
            pending.clear()

    for char in name:
        if 0x20 <= ord(char) <= 0x7E:
            flush()
            out.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    flush()
    return "".join(out)


def mailbox_argument(name: str) -> str:
    """A folder name as a quoted IMAP string."""
    return str(aioimaplib.quoted(encode_mailbox_name(name)))


def response_text(lines: Sequence[bytes]) -> str:
    """The server's completion text (the last line), e.g. `[TRYCREATE] No such mailbox`."""
    return bytes(lines[-1]).decode("utf-8", "replace") if lines else ""
