"""The MIME tree of a mail walked into body text, HTML and attachments, leniently."""

from __future__ import annotations

import binascii
import re
from email.message import Message
from email.parser import BytesParser
from email.policy import compat32
from functools import partial

import msgspec

from helpdesk.channels.email.decode import codec_name, decode_bytes, normalize_newlines, salvage
from helpdesk.channels.email.headers import (
    decode_header_words,
    first_header,
    header_text,
    parse_message_ids,
)

DEFAULT_MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_ATTACHMENTS = 100
# Far deeper than any real mail; beyond it parts are skipped (with a warning), not recursed.
MAX_MIME_DEPTH = 128


class EmailAttachment(msgspec.Struct, kw_only=True):
    """A non-body MIME part. `content` is empty when the part was dropped (see reason)."""

    filename: str | None
    content_type: str
    size: int
    inline: bool
    content_id: str | None = None
    content: bytes = b""
    dropped_reason: str | None = None


class Collected:
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
        disposition = salvage(part.get_content_disposition, None, self.warnings, "disposition")
        content_id = parse_message_ids(first_header(part, "content-id"), bare_token_allowed=True)
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
        value = first_header(part, name)
        if value:
            probe[name] = value
    raw = probe.get_filename()
    if raw is None:
        return None
    name = decode_header_words(header_text(raw)).strip()
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
    encoding = first_header(part, "content-transfer-encoding").lower()
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


def _part_text(part: Message, collected: Collected, content_type: str) -> str:
    data = salvage(
        partial(_decoded_payload, part, collected.warnings), b"", collected.warnings, "payload"
    )
    charset = salvage(part.get_content_charset, None, collected.warnings, "charset")
    text, used = decode_bytes(data, charset)
    if charset and used != codec_name(charset):
        collected.warnings.append(f"{content_type} declared {charset}, decoded as {used}")
    return normalize_newlines(text)


def _message_bytes(inner: Message) -> bytes:
    """A forwarded mail as bytes; re-serialised, since the parser keeps no raw slices."""
    try:
        return inner.as_bytes()
    except UnicodeError:  # decoded text that the generator cannot write back as ASCII
        return inner.as_string().encode("utf-8", "surrogateescape")


def walk_mime(root: Message, collected: Collected) -> None:
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
        content_type = salvage(
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
    part: Message, content_type: str, children: list[Message], collected: Collected
) -> None:
    """A forwarded mail is kept whole, as `forwarded.eml`, rather than read as body."""
    data = b""
    if children:
        data = salvage(partial(_message_bytes, children[0]), b"", collected.warnings, "forward")
    filename = salvage(partial(_filename, part), None, collected.warnings, "file name")
    if filename is None and content_type == "message/rfc822":
        filename = "forwarded.eml"
    collected.add_attachment(part, content_type, filename, data)


def _parts_after_close_delimiter(
    part: Message, content_type: str, collected: Collected
) -> list[Message]:
    """Parts a broken mailer put after the closing boundary (the stdlib calls it epilogue).

    Seen when a nested multipart reuses its parent's boundary: the inner close delimiter
    ends the outer multipart too, and the attachments that follow would be lost.
    """
    no_parts: list[Message] = []
    found = salvage(partial(_parse_epilogue, part), no_parts, collected.warnings, "epilogue")
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
    return "\n".join(f"{k}: {header_text(v)}" for k, v in block.raw_items())


def _attach_bytes(part: Message, collected: Collected, content_type: str, data: bytes) -> None:
    filename = salvage(partial(_filename, part), None, collected.warnings, "file name")
    collected.add_attachment(part, content_type, filename, data)


def _visit_leaf(part: Message, content_type: str, collected: Collected) -> None:
    filename = salvage(partial(_filename, part), None, collected.warnings, "file name")
    disposition = salvage(part.get_content_disposition, None, collected.warnings, "disposition")
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
    data = salvage(
        partial(_decoded_payload, part, collected.warnings), b"", collected.warnings, "payload"
    )
    collected.add_attachment(part, content_type, filename, data)
