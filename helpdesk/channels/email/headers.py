"""Mail headers decoded defensively: encoded words, addresses, message ids and dates."""

from __future__ import annotations

import binascii
import email.utils
import re
from datetime import UTC, datetime
from email.message import Message

from helpdesk.channels.email.decode import decode_bytes

_FOLD = re.compile(r"\r?\n(?=[ \t])")
# The encoded text may hold spaces (`=?UTF-8?Q? Personaländerung?=` from real mailers):
# RFC 2047 forbids them, but the stdlib's modern parser and mail clients decode such words,
# so they are read up to the first `?=` too. It cannot hold `?`, so it never spans words.
_ENCODED_WORD = re.compile(r"=\?([^?\s*]+)(?:\*[^?\s]*)?\?([bBqQ])\?([^?]*?)\?=")


def header_text(value: object) -> str:
    """A raw header value as text: 8-bit bytes (kept as surrogates) decoded with fallbacks."""
    raw = str(value).encode("utf-8", "surrogateescape")
    text, _ = decode_bytes(raw, None)
    return _FOLD.sub("", text).replace("\r", "").replace("\n", "")


def header_values(message: Message, name: str) -> list[str]:
    """Every value of header `name`, unfolded, not yet RFC 2047 decoded."""
    wanted = name.lower()
    return [header_text(v) for k, v in message.raw_items() if str(k).lower() == wanted]


def first_header(message: Message, name: str) -> str:
    values = header_values(message, name)
    return values[0].strip() if values else ""


def _encoded_word_bytes(encoding: str, payload: str) -> bytes | None:
    """The bytes an encoded-word carries, or None when its encoding is broken."""
    data = payload.encode("utf-8", "surrogateescape")
    try:
        if encoding in "bB":
            data = b"".join(data.split())  # spaces are no base64 letters: skipped, as stdlib
            return binascii.a2b_base64(data + b"=" * (-len(data) % 4), strict_mode=True)
        return binascii.a2b_qp(data, header=True)
    except (binascii.Error, ValueError):
        return None


def decode_header_words(value: str) -> str:
    """Decode RFC 2047 encoded-words, leniently.

    Whitespace between adjacent encoded-words is dropped (RFC 2047 §6.2); consecutive words
    in one charset are joined before decoding, so a character split across words survives.
    A word that cannot be decoded is kept as written rather than lost. A word with spaces
    in its encoded text is decoded as the stdlib's modern parser does: unless it is glued
    to the text before it.
    """
    pieces: list[str] = []
    pending = bytearray()
    pending_charset: str | None = None
    position = 0
    after_word = False

    def flush() -> None:
        nonlocal pending, pending_charset
        if pending_charset is not None:
            pieces.append(decode_bytes(bytes(pending), pending_charset)[0])
        pending = bytearray()
        pending_charset = None

    for match in _ENCODED_WORD.finditer(value):
        gap = value[position : match.start()]
        if gap and not (after_word and gap.isspace()):
            flush()
            pieces.append(gap)
        charset, encoding, payload = match.groups()
        data = _encoded_word_bytes(encoding, payload)
        glued = match.start() > 0 and not value[match.start() - 1].isspace()
        if glued and any(char.isspace() for char in payload):
            data = None  # `x=?UTF-8?Q?a b?=` is text to the stdlib too, not a word
        if data is None:
            flush()
            pieces.append(match.group(0))
            after_word = False
        else:
            if charset.lower() != pending_charset:
                flush()
                pending_charset = charset.lower()
            pending.extend(data)
            after_word = True
        position = match.end()
    flush()
    pieces.append(value[position:])
    return "".join(pieces)


_ADDRESS = re.compile(r"[^\s\x00-\x1f\x7f@<>()\[\],;:\"\\]+@[^\s\x00-\x1f\x7f@<>()\[\],;:\"\\]+")
_NAME_THAT_LOOKS_LIKE_ADDRESS = re.compile(r"\s*([^<>\"]*@[^<>\"]*?)\s*<([^<>]*)>\s*")


def _without_quoted_strings(value: str) -> str:
    """`value` with "quoted strings" removed, honouring backslash escapes."""
    return re.sub(r'"(?:[^"\\]|\\.)*"', "", value)


def _parentheses_balanced(value: str) -> bool:
    depth = 0
    for char in re.sub(r"\\.", "", _without_quoted_strings(value)):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                return False
    return depth == 0


def _quote_address_like_names(value: str) -> str:
    """`alice@x <bob@y>` → `"alice@x" <bob@y>`, so the angle address is the mailbox.

    Without quotes the stdlib reads two mailboxes and the strict count check rejects the
    header; the address in angle brackets is what the sender's client will reply to.
    """
    if any(char in value for char in '"(\\'):
        return value
    items = value.split(",")
    for index, item in enumerate(items):
        match = _NAME_THAT_LOOKS_LIKE_ADDRESS.fullmatch(item)
        if match:
            items[index] = f'"{match.group(1)}" <{match.group(2)}>'
    return ",".join(items)


def parse_mailboxes(values: list[str]) -> list[tuple[str, str]] | None:
    """(display name, address) pairs, or None when the header is ambiguous.

    Python 3.11.7's `getaddresses` has no `strict` mode: for
    `alice@example.org)<bob@example.org>` it yields alice (CVE-2023-27043). This applies
    the checks of the later strict mode: balanced parentheses, one mailbox per comma,
    no leftover `[`; and each address must be written as such in the header. A sender
    must never be linked to a customer from a lenient parse.
    """
    prepared: list[str] = []
    for value in values:
        if not _parentheses_balanced(value):
            return None
        prepared.append(_quote_address_like_names(value))
    pairs = email.utils.getaddresses(prepared)
    expected = sum(1 + _without_quoted_strings(v).count(",") for v in prepared)
    if len(pairs) != expected or any("[" in address for _, address in pairs):
        return None
    written = " ".join(prepared)
    if any(address not in written for _, address in pairs):
        return None  # `a@b.c www.example` is read as one glued address that nobody wrote
    return pairs


def usable_address(address: str) -> str | None:
    address = address.strip()
    return address.lower() if _ADDRESS.fullmatch(address) else None


def address_list(message: Message, name: str, warnings: list[str]) -> list[str]:
    values = header_values(message, name)
    if not values:
        return []
    pairs = parse_mailboxes(values)
    if pairs is None:
        warnings.append(f"{name} header is ambiguous; its addresses were ignored")
        return []
    addresses: list[str] = []
    for _, address in pairs:
        usable = usable_address(address)
        if usable and usable not in addresses:
            addresses.append(usable)
        elif address and not usable:
            warnings.append(f"{name}: unusable address ignored")
    return addresses


def header_sender(message: Message, warnings: list[str]) -> tuple[str | None, str]:
    """(address, display name) from the first From header; address None when unusable."""
    values = header_values(message, "from")
    if not values:
        warnings.append("no From header")
        return None, ""
    pairs = parse_mailboxes(values[:1])
    if pairs is None:
        warnings.append("From header is ambiguous; sender left unknown")
        return None, ""
    if not pairs or (len(pairs) == 1 and not usable_address(pairs[0][1])):
        # A From written wholly as encoded-words: decode, then parse strictly again.
        decoded = decode_header_words(values[0])
        retry = parse_mailboxes([decoded]) if decoded != values[0] else None
        if retry and usable_address(retry[0][1]):
            pairs = retry
    if not pairs:
        return None, ""
    if len(pairs) > 1:
        warnings.append("From lists several mailboxes; the first is the sender")
    name, address = pairs[0]
    usable = usable_address(address)
    if usable is None:
        warnings.append("From has no usable address; sender left unknown")
    # `MAILER-DAEMON@host (Mail Delivery System)`: with no phrase, the stdlib gives the
    # RFC 5322 comment as the name; it is the only name the sender wrote, and clients show it.
    display = decode_header_words(name).strip()
    if usable and display.lower() == usable:
        display = ""
    return usable, display


_BRACKETED_ID = re.compile(r"<([^<>]*)>")


def parse_message_ids(value: str, *, bare_token_allowed: bool = False) -> list[str]:
    """Ids in a Message-ID/In-Reply-To/References value, without brackets, in order."""
    ids = ["".join(found.split()) for found in _BRACKETED_ID.findall(value)]
    ids = [found for found in ids if found]
    if not ids:
        tokens = [t.strip("<>") for t in re.split(r"[\s,]+", value) if t.strip("<>")]
        if bare_token_allowed and len(tokens) == 1:
            ids = tokens
        else:
            ids = [token for token in tokens if "@" in token]
    return list(dict.fromkeys(ids))


def header_date(value: str, warnings: list[str]) -> datetime | None:
    """The Date header as aware UTC; a missing zone (`-0000`) is read as UTC."""
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except (TypeError, ValueError, OverflowError, IndexError):
        warnings.append("Date header unreadable")
        return None
