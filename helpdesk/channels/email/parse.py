"""Pure parsing of raw RFC 5322 mail into what the helpdesk needs.

No I/O, no database, no clock: `parse_email` takes the bytes exactly as received and
returns a `ParsedEmail`. It never raises: whatever it had to repair or drop is listed in
`warnings`, and the caller keeps the raw bytes, so a bad parse never loses mail.

The stdlib parser runs with the `compat32` policy because the modern policy raises on
some malformed headers; every header we use is then decoded defensively (`headers`).
"""

from __future__ import annotations

from datetime import datetime
from email.message import Message
from email.parser import BytesParser
from email.policy import compat32
from typing import Any, cast

import msgspec

from helpdesk.channels.email.autoreply import is_auto_submitted
from helpdesk.channels.email.bounces import bounce_details, bounced_message_ids, is_bounce
from helpdesk.channels.email.decode import clean_text, decode_bytes, normalize_newlines, salvage
from helpdesk.channels.email.headers import (
    address_list,
    decode_header_words,
    first_header,
    header_date,
    header_sender,
    header_values,
    parse_message_ids,
)
from helpdesk.channels.email.markup import html_to_text, sanitize_html
from helpdesk.channels.email.mime import (
    DEFAULT_MAX_ATTACHMENT_BYTES,
    DEFAULT_MAX_ATTACHMENTS,
    Collected,
    EmailAttachment,
    walk_mime,
)

__all__ = ["ParsedEmail", "parse_email", "preview_json"]


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


def _parse_structure(raw: bytes, warnings: list[str]) -> Message:
    """The stdlib MIME tree; headers only plus raw body when the full parse fails."""
    try:
        return BytesParser(policy=compat32).parsebytes(raw)
    except RecursionError:
        warnings.append("MIME structure too deep for the parser; body kept as raw text")
    except Exception as error:  # the parser's promise: see salvage
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
    except Exception as error:  # the parser's promise: see salvage
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
    collected = Collected(max_attachment_bytes, max_attachments)
    walk_mime(message, collected)
    from_email, from_name = header_sender(message, warnings)
    subject = decode_header_words(first_header(message, "subject"))
    plain = "\n".join(collected.plain)
    html_body = clean_text("\n".join(collected.html)) if collected.html else None
    text, text_type = plain, "text/plain" if collected.plain else None
    if not plain.strip() and html_body is not None:
        text, text_type = html_to_text(html_body), "text/html"
    sanitized = None
    if html_body is not None:
        sanitized = salvage(
            lambda: sanitize_html(html_body, allow_remote_images=allow_remote_images),
            None,
            warnings,
            "HTML sanitizer",
        )
    bounce = is_bounce(message, collected, from_email, subject)
    recipients, diagnostic = bounce_details(collected.delivery_status)
    in_reply_to = parse_message_ids(first_header(message, "in-reply-to"))
    references = parse_message_ids(" ".join(header_values(message, "references")))
    message_ids = parse_message_ids(first_header(message, "message-id"), bare_token_allowed=True)
    warnings.extend(collected.warnings)
    return ParsedEmail(
        from_email=from_email,
        from_name=clean_text(from_name),
        to=[clean_text(a) for a in address_list(message, "to", warnings)],
        cc=[clean_text(a) for a in address_list(message, "cc", warnings)],
        reply_to=[clean_text(a) for a in address_list(message, "reply-to", warnings)],
        subject=clean_text(subject),
        message_id=clean_text(message_ids[0]) if message_ids else None,
        in_reply_to=clean_text(in_reply_to[0]) if in_reply_to else None,
        references=[clean_text(r) for r in references],
        date=header_date(first_header(message, "date"), warnings),
        text=clean_text(text),
        text_content_type=text_type,
        html=clean_text(sanitized) if sanitized is not None else None,
        attachments=[_clean_attachment(a) for a in collected.attachments],
        auto_submitted=is_auto_submitted(message, from_email),
        bounce=bounce,
        bounce_recipients=recipients if bounce else [],
        bounce_diagnostic=clean_text(diagnostic) if bounce and diagnostic else None,
        bounce_message_ids=(
            [clean_text(i) for i in bounced_message_ids(collected, plain)] if bounce else []
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
