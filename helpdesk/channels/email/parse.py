"""Pure parsing of raw RFC 5322 mail into what the helpdesk needs.

No I/O, no database, no clock: `parse_email` takes the bytes exactly as received and
returns a `ParsedEmail`. It never raises: whatever it had to repair or drop is listed in
`warnings`, and the caller keeps the raw bytes, so a bad parse never loses mail.

The stdlib parser runs with the `compat32` policy because the modern policy raises on
some malformed headers; every header we use is then decoded here, defensively.
"""

from __future__ import annotations

import binascii
import codecs
import email.utils
import html
import re
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import Message
from email.parser import BytesParser
from email.policy import compat32
from functools import partial
from html.parser import HTMLParser
from typing import Any, TypeVar, cast

import msgspec
import nh3

__all__ = [
    "EmailAttachment",
    "ParsedEmail",
    "decode_bytes",
    "decode_header_words",
    "html_to_text",
    "parse_email",
    "parse_mailboxes",
    "preview_json",
    "sanitize_html",
]

DEFAULT_MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_ATTACHMENTS = 100
# Far deeper than any real mail; beyond it parts are skipped (with a warning), not recursed.
MAX_MIME_DEPTH = 128

_T = TypeVar("_T")


class EmailAttachment(msgspec.Struct, kw_only=True):
    """A non-body MIME part. `content` is empty when the part was dropped (see reason)."""

    filename: str | None
    content_type: str
    size: int
    inline: bool
    content_id: str | None = None
    content: bytes = b""
    dropped_reason: str | None = None


class ParsedEmail(msgspec.Struct, kw_only=True):
    """What the helpdesk reads from one mail. Field names are a contract: tools read them.

    Addresses are lower-cased; message ids carry no angle brackets; `date` is aware UTC.
    Every str is free of NUL and lone surrogates, so it can be stored in PostgreSQL text.
    """

    from_email: str | None = None
    from_name: str = ""
    to: list[str] = msgspec.field(default_factory=list)
    cc: list[str] = msgspec.field(default_factory=list)
    reply_to: list[str] = msgspec.field(default_factory=list)
    subject: str = ""
    message_id: str | None = None
    in_reply_to: str | None = None
    references: list[str] = msgspec.field(default_factory=list)
    date: datetime | None = None
    text: str = ""
    # "text/plain", or "text/html" when `text` was rendered from the HTML body.
    text_content_type: str | None = None
    html: str | None = None
    attachments: list[EmailAttachment] = msgspec.field(default_factory=list)
    auto_submitted: bool = False
    bounce: bool = False
    bounce_recipients: list[str] = msgspec.field(default_factory=list)
    bounce_diagnostic: str | None = None
    # Message-IDs of the mail a bounce reports on (from the returned message or its
    # headers): how a bounce finds the delivery it fails.
    bounce_message_ids: list[str] = msgspec.field(default_factory=list)
    warnings: list[str] = msgspec.field(default_factory=list)

    def preview(self) -> dict[str, Any]:
        """JSON-able view for `helpdesk mail parse`: everything but attachment bytes."""
        light = msgspec.structs.replace(
            self,
            attachments=[msgspec.structs.replace(a, content=b"") for a in self.attachments],
        )
        data = cast(dict[str, Any], msgspec.to_builtins(light))
        for attachment in data["attachments"]:
            attachment.pop("content", None)
        return data


def preview_json(raw: bytes) -> bytes:
    """The parse preview as JSON bytes, as printed by `helpdesk mail parse FILE`."""
    return msgspec.json.encode(parse_email(raw).preview())


# --- text hygiene -------------------------------------------------------------------

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def normalize_newlines(value: str) -> str:
    """Lines end in `\n` only, whether the mail was sent with CRLF, LF or bare CR."""
    return value.replace("\r\n", "\n").replace("\r", "\n")


def clean_text(value: str) -> str:
    """Drop NUL and replace lone surrogates: PostgreSQL text accepts neither."""
    return _LONE_SURROGATE.sub("\ufffd", value.replace("\x00", ""))


def _salvage(action: Callable[[], _T], fallback: _T, warnings: list[str], what: str) -> _T:
    """Run one parsing step; on any error record it and go on with `fallback`.

    This is the parser's promise (never raise on any input), so catching everything is
    deliberate here and only here: one broken part must not cost the rest of the mail.
    """
    try:
        return action()
    except Exception as error:  # the parser's promise, see docstring
        warnings.append(f"{what}: {type(error).__name__}")
        return fallback


# --- charsets -----------------------------------------------------------------------

# Labels whose common real-world meaning is wider than the registered one (as browsers do).
_CHARSET_LABELS = {
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "x-gbk": "gbk",
    "iso-8859-8-i": "iso-8859-8",
    "unknown-8bit": "",
    "x-unknown": "",
    "x-user-defined": "",
}
# Tried after UTF-8 when the declared charset fails: mail says gb2312 but sends GBK bytes.
_CHARSET_SUPERSETS = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "euc_kr": "cp949",
    "big5": "big5hkscs",
    "shift_jis": "cp932",
    "tis-620": "cp874",
    "ascii": "cp1252",
}


def _codec_name(label: str | None) -> str | None:
    """Python codec for a MIME charset label, or None when unknown."""
    if not label:
        return None
    key = label.strip().strip("\"'").lower()
    key = _CHARSET_LABELS.get(key, key)
    if not key:
        return None
    try:
        return codecs.lookup(key).name
    except (LookupError, ValueError, UnicodeError):
        return None


def _replacement_ratio_ok(text: str) -> bool:
    """A few bad bytes in otherwise good text: keep it rather than guess another charset."""
    return text.count("\ufffd") <= max(2, len(text) // 100)


def _looks_like_utf8(text: str) -> bool:
    """More well-formed non-ASCII characters than broken bytes: UTF-8 with a few typos."""
    replaced = text.count("\ufffd")
    return sum(1 for char in text if char > "\x7f") - replaced > replaced


def decode_bytes(data: bytes, declared: str | None) -> tuple[str, str]:
    """Decode text that may lie about its charset; returns (text, codec used).

    Order: declared → UTF-8 → a superset of the declared charset, each strictly; then the
    declared charset (or evident UTF-8) with replacement if only a few bytes are bad;
    then cp1250, and finally latin-1, which decodes anything: the body is never dropped.
    """
    codec = _codec_name(declared)
    strict = [codec, "utf-8", _CHARSET_SUPERSETS.get(codec or "")]
    tried: list[str] = []
    for name in strict:
        if name and name not in tried:
            tried.append(name)
            try:
                return data.decode(name), name
            except (UnicodeDecodeError, LookupError):
                continue
    tolerant = codec or "utf-8"
    text = data.decode(tolerant, "replace")
    if _replacement_ratio_ok(text) and (codec or _looks_like_utf8(text)):
        return text, f"{tolerant} (with replacements)"
    try:
        return data.decode("cp1250"), "cp1250"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "latin-1"


# --- headers ------------------------------------------------------------------------

_FOLD = re.compile(r"\r?\n(?=[ \t])")
# The encoded text may hold spaces (`=?UTF-8?Q? Personaländerung?=` from real mailers):
# RFC 2047 forbids them, but the stdlib's modern parser and mail clients decode such words,
# so they are read up to the first `?=` too. It cannot hold `?`, so it never spans words.
_ENCODED_WORD = re.compile(r"=\?([^?\s*]+)(?:\*[^?\s]*)?\?([bBqQ])\?([^?]*?)\?=")


def _header_text(value: object) -> str:
    """A raw header value as text: 8-bit bytes (kept as surrogates) decoded with fallbacks."""
    raw = str(value).encode("utf-8", "surrogateescape")
    text, _ = decode_bytes(raw, None)
    return _FOLD.sub("", text).replace("\r", "").replace("\n", "")


def _header_values(message: Message, name: str) -> list[str]:
    """Every value of header `name`, unfolded, not yet RFC 2047 decoded."""
    wanted = name.lower()
    return [_header_text(v) for k, v in message.raw_items() if str(k).lower() == wanted]


def _first_header(message: Message, name: str) -> str:
    values = _header_values(message, name)
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


# --- addresses ----------------------------------------------------------------------

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


def _usable_address(address: str) -> str | None:
    address = address.strip()
    return address.lower() if _ADDRESS.fullmatch(address) else None


def _address_list(message: Message, name: str, warnings: list[str]) -> list[str]:
    values = _header_values(message, name)
    if not values:
        return []
    pairs = parse_mailboxes(values)
    if pairs is None:
        warnings.append(f"{name} header is ambiguous; its addresses were ignored")
        return []
    addresses: list[str] = []
    for _, address in pairs:
        usable = _usable_address(address)
        if usable and usable not in addresses:
            addresses.append(usable)
        elif address and not usable:
            warnings.append(f"{name}: unusable address ignored")
    return addresses


def _sender(message: Message, warnings: list[str]) -> tuple[str | None, str]:
    """(address, display name) from the first From header; address None when unusable."""
    values = _header_values(message, "from")
    if not values:
        warnings.append("no From header")
        return None, ""
    pairs = parse_mailboxes(values[:1])
    if pairs is None:
        warnings.append("From header is ambiguous; sender left unknown")
        return None, ""
    if not pairs or (len(pairs) == 1 and not _usable_address(pairs[0][1])):
        # A From written wholly as encoded-words: decode, then parse strictly again.
        decoded = decode_header_words(values[0])
        retry = parse_mailboxes([decoded]) if decoded != values[0] else None
        if retry and _usable_address(retry[0][1]):
            pairs = retry
    if not pairs:
        return None, ""
    if len(pairs) > 1:
        warnings.append("From lists several mailboxes; the first is the sender")
    name, address = pairs[0]
    usable = _usable_address(address)
    if usable is None:
        warnings.append("From has no usable address; sender left unknown")
    # `MAILER-DAEMON@host (Mail Delivery System)`: with no phrase, the stdlib gives the
    # RFC 5322 comment as the name; it is the only name the sender wrote, and clients show it.
    display = decode_header_words(name).strip()
    if usable and display.lower() == usable:
        display = ""
    return usable, display


# --- message ids and dates ----------------------------------------------------------

_BRACKETED_ID = re.compile(r"<([^<>]*)>")


def _message_ids(value: str, *, bare_token_allowed: bool = False) -> list[str]:
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


def _date(value: str, warnings: list[str]) -> datetime | None:
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


# --- HTML ---------------------------------------------------------------------------

_URL_SCHEMES = set(nh3.ALLOWED_URL_SCHEMES) | {"cid"}


def sanitize_html(markup: str, *, allow_remote_images: bool = False) -> str:
    """HTML safe to show an agent: no script/style, on* handlers or javascript: URLs.

    Inline images (`cid:`) stay. Remote images are tracking pixels as often as not, so they
    are removed unless `allow_remote_images` (a proxy may serve them instead).
    """

    def keep_attribute(tag: str, attribute: str, value: str) -> str | None:
        if tag == "img" and attribute == "src":
            source = value.strip().lower()
            if source.startswith("cid:"):
                return value
            if allow_remote_images and source.startswith(("https:", "http:")):
                return value
            return None
        return value

    return str(
        nh3.clean(
            markup,
            url_schemes=_URL_SCHEMES,
            attribute_filter=keep_attribute,
            clean_content_tags={"script", "style", "title"},
        )
    )


class _TextRenderer(HTMLParser):
    """Collects readable text: block elements become line breaks, hidden content is skipped."""

    _HIDDEN = frozenset({"script", "style", "head", "title", "noscript", "template"})
    _BLOCKS = frozenset(
        {
            "address", "article", "blockquote", "dd", "div", "dl", "dt", "footer",
            "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "ol", "p", "pre",
            "section", "table", "tr", "ul",
        }
    )  # fmt: skip

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body":
            self.hidden = 0  # an unclosed <head> must not hide the whole body
        elif tag in self._HIDDEN:
            self.hidden += 1
        elif tag == "br":
            self.parts.append("\n")
        elif tag in self._BLOCKS:
            self.parts.append("\n\n" if tag == "p" else "\n")
            if tag == "li":
                self.parts.append("- ")
        elif tag == "td":
            self.parts.append(" ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in self._HIDDEN:
            self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in self._HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag in self._BLOCKS:
            self.parts.append("\n\n" if tag == "p" else "\n")

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.parts.append(re.sub(r"\s+", " ", data))


def _tidy_lines(text: str) -> str:
    lines = [line.strip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def html_to_text(markup: str) -> str:
    """Readable plain text from HTML: paragraphs and line breaks kept, tags dropped."""
    renderer = _TextRenderer()
    try:
        renderer.feed(markup)
        renderer.close()
        text = "".join(renderer.parts)
    except (AssertionError, ValueError, IndexError):  # HTMLParser on hopeless markup
        text = html.unescape(re.sub(r"<[^>]*>", " ", markup))
    return _tidy_lines(text)


# --- MIME structure -----------------------------------------------------------------


class _Collected:
    """What the walk over the MIME tree gathers."""

    def __init__(self, max_attachment_bytes: int, max_attachments: int) -> None:
        self.max_attachment_bytes = max_attachment_bytes
        self.max_attachments = max_attachments
        self.plain: list[str] = []
        self.html: list[str] = []
        self.attachments: list[EmailAttachment] = []
        self.delivery_status: list[str] = []
        self.warnings: list[str] = []

    def add_attachment(
        self, part: Message, content_type: str, filename: str | None, data: bytes
    ) -> None:
        disposition = _salvage(part.get_content_disposition, None, self.warnings, "disposition")
        content_id = _message_ids(_first_header(part, "content-id"), bare_token_allowed=True)
        attachment = EmailAttachment(
            filename=filename,
            content_type=content_type,
            size=len(data),
            inline=disposition == "inline" or (disposition is None and bool(content_id)),
            content_id=content_id[0] if content_id else None,
            content=data,
        )
        if len(data) > self.max_attachment_bytes:
            attachment.content = b""
            attachment.dropped_reason = f"larger than {self.max_attachment_bytes} bytes"
        elif len(self.attachments) >= self.max_attachments:
            attachment.content = b""
            attachment.dropped_reason = f"more than {self.max_attachments} attachments"
        if attachment.dropped_reason:
            label = filename or content_type
            self.warnings.append(f"attachment {label} dropped: {attachment.dropped_reason}")
        self.attachments.append(attachment)


def _content_type(part: Message) -> str:
    return part.get_content_type().lower()


def _filename(part: Message) -> str | None:
    """The part's file name; raw 8-bit names are decoded with fallbacks, not to U+FFFD."""
    probe = Message()
    for name in ("content-disposition", "content-type"):
        value = _first_header(part, name)
        if value:
            probe[name] = value
    raw = probe.get_filename()
    if raw is None:
        return None
    name = decode_header_words(_header_text(raw)).strip()
    return name or None


_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/]")


def _lenient_base64(data: bytes) -> tuple[bytes, bool]:
    """Decode what is there: truncated or dirty base64 loses only its broken tail.

    Returns (content, whether anything had to be repaired).
    """
    letters = _NOT_BASE64.sub(b"", data)
    repaired = len(letters) % 4 == 1 or bool(re.search(rb"[^A-Za-z0-9+/=\s]", data))
    if len(letters) % 4 == 1:
        letters = letters[:-1]
    return binascii.a2b_base64(letters + b"=" * (-len(letters) % 4)), repaired


def _raw_payload(part: Message) -> bytes:
    """The part's body exactly as transferred.

    Read from the stored payload, because `get_payload()` re-decodes it with the declared
    charset and raises on hostile parameters (a NUL or an RFC 2231 tuple as charset).
    """
    payload = getattr(part, "_payload", b"")
    if isinstance(payload, bytes):
        return payload
    return payload.encode("utf-8", "surrogateescape") if isinstance(payload, str) else b""


def _decoded_payload(part: Message, warnings: list[str]) -> bytes:
    """The part's content with its transfer encoding undone, as far as it can be."""
    encoding = _first_header(part, "content-transfer-encoding").lower()
    raw = _raw_payload(part)
    if encoding == "base64":
        data, repaired = _lenient_base64(raw)
        if repaired:
            warnings.append(f"broken base64 in {_content_type(part)} decoded partly")
        return data
    if encoding == "quoted-printable":
        return binascii.a2b_qp(raw)
    if encoding in _UUENCODE:
        data, repaired = _lenient_uudecode(raw)
        if repaired:
            warnings.append(f"broken uuencode in {_content_type(part)} decoded partly")
        return data
    return raw


_UUENCODE = frozenset({"x-uuencode", "uuencode", "uue", "x-uue"})
_UU_BEGIN = re.compile(rb"begin(?:-base64)?\s+[0-7]{1,4}(?:\s.*)?")


def _lenient_uudecode(data: bytes) -> tuple[bytes, bool]:
    """Undo uuencoding line by line; returns (content, whether anything was repaired).

    The stdlib (`uu.decode`, behind `get_payload(decode=True)`) insists on a `begin` line
    and an `end` line and otherwise hands back the encoded text unchanged; mailers send
    parts without either, CRLF lines, and lines padded or cut by broken encoders.
    """
    lines = data.splitlines()
    if lines and _UU_BEGIN.fullmatch(lines[0].strip()):
        lines = lines[1:]
    decoded = bytearray()
    repaired = False
    for line in lines:
        stripped = line.rstrip(b" \t")
        if stripped.strip() == b"end":
            break
        if not stripped:
            continue
        try:
            decoded += binascii.a2b_uu(stripped)
        except binascii.Error:
            # What uu.decode does for "broken uuencoders": keep the bytes the length says.
            size = ((stripped[0] - 32) & 63) * 4 + 5
            try:
                decoded += binascii.a2b_uu(stripped[: size // 3])
            except binascii.Error:
                repaired = True
    return bytes(decoded), repaired


def _part_text(part: Message, collected: _Collected, content_type: str) -> str:
    data = _salvage(
        partial(_decoded_payload, part, collected.warnings), b"", collected.warnings, "payload"
    )
    charset = _salvage(part.get_content_charset, None, collected.warnings, "charset")
    text, used = decode_bytes(data, charset)
    if charset and used != _codec_name(charset):
        collected.warnings.append(f"{content_type} declared {charset}, decoded as {used}")
    return normalize_newlines(text)


def _message_bytes(inner: Message) -> bytes:
    """A forwarded mail as bytes; re-serialised, since the parser keeps no raw slices."""
    try:
        return inner.as_bytes()
    except UnicodeError:  # decoded text that the generator cannot write back as ASCII
        return inner.as_string().encode("utf-8", "surrogateescape")


def _walk(root: Message, collected: _Collected) -> None:
    """Visit the MIME tree without recursion (a hostile mail may nest without end).

    Text parts without a file name are the body; everything else is an attachment.
    A forwarded message/rfc822 is kept whole as an attachment, except when it *is* the
    mail (top-level) or a digest entry: then its text is the body.
    """
    stack: list[tuple[Message, int, str]] = [(root, 0, "")]
    too_deep = False
    while stack:
        part, depth, parent_type = stack.pop()
        if depth > MAX_MIME_DEPTH:
            too_deep = True
            continue
        content_type = _salvage(
            partial(_content_type, part),
            "application/octet-stream",
            collected.warnings,
            "content type",
        )
        for defect in getattr(part, "defects", []):
            collected.warnings.append(f"{type(defect).__name__} in {content_type}")
        if not part.is_multipart():
            _visit_leaf(part, content_type, collected)
            continue
        children = [child for child in part.get_payload() if isinstance(child, Message)]
        if content_type == "message/delivery-status":
            text = "\n".join(_header_block_text(child) for child in children)
            collected.delivery_status.append(text)
            _attach_bytes(part, collected, content_type, text.encode("utf-8"))
        elif content_type.startswith("message/") and depth > 0 and parent_type != _DIGEST:
            _attach_forwarded(part, content_type, children, collected)
        else:
            children += _parts_after_close_delimiter(part, content_type, collected)
            stack.extend((child, depth + 1, content_type) for child in reversed(children))
    if too_deep:
        collected.warnings.append(f"MIME parts nested deeper than {MAX_MIME_DEPTH} were skipped")


_DIGEST = "multipart/digest"


def _attach_forwarded(
    part: Message, content_type: str, children: list[Message], collected: _Collected
) -> None:
    """A forwarded mail is kept whole, as `forwarded.eml`, rather than read as body."""
    data = b""
    if children:
        data = _salvage(partial(_message_bytes, children[0]), b"", collected.warnings, "forward")
    filename = _salvage(partial(_filename, part), None, collected.warnings, "file name")
    if filename is None and content_type == "message/rfc822":
        filename = "forwarded.eml"
    collected.add_attachment(part, content_type, filename, data)


def _parts_after_close_delimiter(
    part: Message, content_type: str, collected: _Collected
) -> list[Message]:
    """Parts a broken mailer put after the closing boundary (the stdlib calls it epilogue).

    Seen when a nested multipart reuses its parent's boundary: the inner close delimiter
    ends the outer multipart too, and the attachments that follow would be lost.
    """
    no_parts: list[Message] = []
    found = _salvage(partial(_parse_epilogue, part), no_parts, collected.warnings, "epilogue")
    if found:
        collected.warnings.append(f"{content_type}: parts after the closing boundary were read")
    return found


def _parse_epilogue(part: Message) -> list[Message]:
    boundary = part.get_boundary()
    epilogue = part.epilogue or ""
    if not boundary or f"--{boundary}" not in epilogue:
        return []
    wrapper = f'Content-Type: multipart/mixed; boundary="{boundary}"\n\n{epilogue}'
    recovered = BytesParser(policy=compat32).parsebytes(wrapper.encode("utf-8", "surrogateescape"))
    payload = recovered.get_payload()
    if not isinstance(payload, list):
        return []
    return [child for child in payload if isinstance(child, Message)]


def _header_block_text(block: Message) -> str:
    return "\n".join(f"{k}: {_header_text(v)}" for k, v in block.raw_items())


def _attach_bytes(part: Message, collected: _Collected, content_type: str, data: bytes) -> None:
    filename = _salvage(partial(_filename, part), None, collected.warnings, "file name")
    collected.add_attachment(part, content_type, filename, data)


def _visit_leaf(part: Message, content_type: str, collected: _Collected) -> None:
    filename = _salvage(partial(_filename, part), None, collected.warnings, "file name")
    disposition = _salvage(part.get_content_disposition, None, collected.warnings, "disposition")
    if content_type.startswith("multipart/"):
        # Boundary missing or never found: the stdlib leaves the raw text; keep it as body.
        collected.warnings.append(f"{content_type} without usable boundary read as text")
        collected.plain.append(_part_text(part, collected, content_type))
        return
    if content_type == "message/delivery-status":
        collected.delivery_status.append(_part_text(part, collected, content_type))
    is_body = (
        content_type in ("text/plain", "text/html")
        and disposition != "attachment"
        and filename is None
    )
    if is_body:
        text = _part_text(part, collected, content_type)
        (collected.plain if content_type == "text/plain" else collected.html).append(text)
        return
    data = _salvage(
        partial(_decoded_payload, part, collected.warnings), b"", collected.warnings, "payload"
    )
    collected.add_attachment(part, content_type, filename, data)


# --- loops and bounces --------------------------------------------------------------

_SYSTEM_SENDER = re.compile(r"mailer[- ]daemon|postmaster", re.IGNORECASE)
_DSN_SUBJECT = re.compile(
    r"undeliver|returned mail|delivery (?:status notification|failure|has failed|failed)"
    r"|mail delivery failed|failure notice|non[- ]?delivery|could not be delivered",
    re.IGNORECASE,
)
_DISABLED_VALUES = frozenset({"", "no", "false", "0", "none"})


def _null_return_path(message: Message) -> bool:
    return any(re.fullmatch(r"<\s*>", v.strip()) for v in _header_values(message, "return-path"))


def _system_sender(message: Message, from_email: str | None) -> bool:
    """Mail sent by an MTA itself: mailer-daemon/postmaster, or with a null Return-Path."""
    if from_email and _SYSTEM_SENDER.fullmatch(from_email.split("@", 1)[0]):
        return True
    if from_email is None and _SYSTEM_SENDER.search(_first_header(message, "from")):
        return True
    return _null_return_path(message)


def _is_auto_submitted(message: Message, from_email: str | None) -> bool:
    """RFC 3834 and the de-facto markers: nothing automatic may be sent back to this mail."""
    auto = _first_header(message, "auto-submitted").split(";")[0].split("(")[0].strip().lower()
    if auto and auto != "no":
        return True
    if _first_header(message, "precedence").lower() in {"bulk", "junk", "list"}:
        return True
    for name in ("x-autoreply", "x-autorespond", "x-auto-response-suppress", "x-loop"):
        if any(v.strip().lower() not in _DISABLED_VALUES for v in _header_values(message, name)):
            return True
    if _header_values(message, "list-id") or _header_values(message, "list-unsubscribe"):
        return True
    return _system_sender(message, from_email)


def _report_type(message: Message) -> str:
    value = message.get_param("report-type")
    if isinstance(value, tuple):
        value = email.utils.collapse_rfc2231_value(value)
    return str(value or "").strip().lower()


def _is_bounce(
    message: Message, collected: _Collected, from_email: str | None, subject: str
) -> bool:
    """A delivery status notification (RFC 3464), or an MTA's failure notice in prose."""
    if collected.delivery_status:
        return True
    system = _system_sender(message, from_email)
    if message.get_content_type() == "multipart/report":
        report_type = _report_type(message)
        if report_type == "delivery-status" or (not report_type and system):
            return True
    return system and bool(_DSN_SUBJECT.search(subject))


_FINAL_RECIPIENT = re.compile(r"^(?:final|original)-recipient:[^;\n]*;\s*(\S+)", re.I | re.M)
_DIAGNOSTIC = re.compile(r"^diagnostic-code:[^;\n]*;\s*(.+)", re.I | re.M)
_STATUS = re.compile(r"^status:\s*(\S+)", re.I | re.M)


def _bounce_details(reports: list[str]) -> tuple[list[str], str | None]:
    """Failed recipients and the first diagnostic found in message/delivery-status parts."""
    recipients: list[str] = []
    diagnostic: str | None = None
    for report in reports:
        for found in _FINAL_RECIPIENT.findall(report):
            address = _usable_address(found.strip("<>"))
            if address and address not in recipients:
                recipients.append(address)
        if diagnostic is None:
            match = _DIAGNOSTIC.search(report) or _STATUS.search(report)
            diagnostic = " ".join(match.group(1).split()) if match else None
    return recipients, diagnostic


_RETURNED_TYPES = {"message/rfc822", "text/rfc822-headers", "message/rfc822-headers"}
_MESSAGE_ID_LINE = re.compile(r"^message-id:[ \t]*<([^<>\s]{1,900})>", re.I | re.M)


def _bounced_message_ids(collected: _Collected, text: str) -> list[str]:
    """Message-IDs quoted by a bounce: in the returned message, its headers, or the prose."""
    found: list[str] = []
    sources = [
        a.content.decode("utf-8", "replace")
        for a in collected.attachments
        if a.content_type.lower() in _RETURNED_TYPES
    ]
    for source in [*sources, text]:
        for message_id in _MESSAGE_ID_LINE.findall(source):
            if message_id not in found:
                found.append(message_id)
    return found


# --- the whole mail -----------------------------------------------------------------


def _parse_structure(raw: bytes, warnings: list[str]) -> Message:
    """The stdlib MIME tree; headers only plus raw body when the full parse fails."""
    try:
        return BytesParser(policy=compat32).parsebytes(raw)
    except RecursionError:
        warnings.append("MIME structure too deep for the parser; body kept as raw text")
    except Exception as error:  # the parser's promise: see _salvage
        warnings.append(f"MIME structure unreadable ({type(error).__name__}); body kept raw")
    message = BytesParser(policy=compat32).parsebytes(raw, headersonly=True)
    for name in ("content-type", "content-transfer-encoding"):
        del message[name]
    return message


def parse_email(
    raw: bytes,
    *,
    max_attachment_bytes: int = DEFAULT_MAX_ATTACHMENT_BYTES,
    max_attachments: int = DEFAULT_MAX_ATTACHMENTS,
    allow_remote_images: bool = False,
) -> ParsedEmail:
    """Parse one raw mail. Never raises; what was repaired or dropped is in `warnings`."""
    warnings: list[str] = []
    try:
        return _parse(raw, max_attachment_bytes, max_attachments, allow_remote_images, warnings)
    except Exception as error:  # the parser's promise: see _salvage
        warnings.append(f"parse failed ({type(error).__name__}); only the raw text is kept")
        text, _ = decode_bytes(raw, None)
        return ParsedEmail(
            text=clean_text(normalize_newlines(text)),
            text_content_type="text/plain",
            warnings=[clean_text(w) for w in warnings],
        )


def _parse(
    raw: bytes,
    max_attachment_bytes: int,
    max_attachments: int,
    allow_remote_images: bool,
    warnings: list[str],
) -> ParsedEmail:
    message = _parse_structure(raw, warnings)
    collected = _Collected(max_attachment_bytes, max_attachments)
    _walk(message, collected)
    from_email, from_name = _sender(message, warnings)
    subject = decode_header_words(_first_header(message, "subject"))
    plain = "\n".join(collected.plain)
    html_body = clean_text("\n".join(collected.html)) if collected.html else None
    text, text_type = plain, "text/plain" if collected.plain else None
    if not plain.strip() and html_body is not None:
        text, text_type = html_to_text(html_body), "text/html"
    sanitized = None
    if html_body is not None:
        sanitized = _salvage(
            lambda: sanitize_html(html_body, allow_remote_images=allow_remote_images),
            None,
            warnings,
            "HTML sanitizer",
        )
    bounce = _is_bounce(message, collected, from_email, subject)
    recipients, diagnostic = _bounce_details(collected.delivery_status)
    in_reply_to = _message_ids(_first_header(message, "in-reply-to"))
    references = _message_ids(" ".join(_header_values(message, "references")))
    message_ids = _message_ids(_first_header(message, "message-id"), bare_token_allowed=True)
    warnings.extend(collected.warnings)
    return ParsedEmail(
        from_email=from_email,
        from_name=clean_text(from_name),
        to=[clean_text(a) for a in _address_list(message, "to", warnings)],
        cc=[clean_text(a) for a in _address_list(message, "cc", warnings)],
        reply_to=[clean_text(a) for a in _address_list(message, "reply-to", warnings)],
        subject=clean_text(subject),
        message_id=clean_text(message_ids[0]) if message_ids else None,
        in_reply_to=clean_text(in_reply_to[0]) if in_reply_to else None,
        references=[clean_text(r) for r in references],
        date=_date(_first_header(message, "date"), warnings),
        text=clean_text(text),
        text_content_type=text_type,
        html=clean_text(sanitized) if sanitized is not None else None,
        attachments=[_clean_attachment(a) for a in collected.attachments],
        auto_submitted=_is_auto_submitted(message, from_email),
        bounce=bounce,
        bounce_recipients=recipients if bounce else [],
        bounce_diagnostic=clean_text(diagnostic) if bounce and diagnostic else None,
        bounce_message_ids=(
            [clean_text(i) for i in _bounced_message_ids(collected, plain)] if bounce else []
        ),
        warnings=[clean_text(w) for w in dict.fromkeys(warnings)],
    )


def _clean_attachment(attachment: EmailAttachment) -> EmailAttachment:
    if attachment.filename is not None:
        attachment.filename = clean_text(attachment.filename)
    if attachment.content_id is not None:
        attachment.content_id = clean_text(attachment.content_id)
    attachment.content_type = clean_text(attachment.content_type)
    return attachment
