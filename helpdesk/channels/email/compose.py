"""Build the mail for one outbound email message. Pure: no database, no network, no clock.

Whatever the database holds, nothing here can add a header: CR, LF, NUL and every
other line-breaking character are removed from subjects, names and file names, and
addresses and Message-IDs are checked before they are written (the email package
refuses line breaks in header values too, so anything that slipped through fails
loudly instead of being sent). Message-IDs in In-Reply-To and References are folded
between ids and never become RFC 2047 encoded words, which would break threading.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from datetime import datetime
from email.header import Header
from email.headerregistry import Address, BaseHeader, HeaderRegistry, UnstructuredHeader
from email.message import EmailMessage
from email.policy import SMTP, Policy

import msgspec

# References keeps the thread's first Message-ID (its root) and the most recent ones.
REFERENCES_KEEP_LAST = 18
_FOLD_AT = 78

# ASCII only: a non-ASCII address would need SMTPUTF8, which we do not speak.
_ADDRESS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9.-]+")
# id-left@id-right as printable ASCII without spaces or angle brackets.
_MESSAGE_ID = re.compile(r"[!-;=?-~]+")
# Everything str.splitlines() breaks on, plus the other control characters.
_LINE_BREAKING = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_SPACES = re.compile(r"\s+")
_REPLY_PREFIX = re.compile(r"re\s*:", re.IGNORECASE)
_CONTENT_TYPE = re.compile(r"([a-z0-9][a-z0-9!#$&^_.+-]*)/([a-z0-9][a-z0-9!#$&^_.+-]*)")


class Attachment(msgspec.Struct, frozen=True):
    filename: str
    content_type: str
    content: bytes


class Recipient(msgspec.Struct, frozen=True):
    address: str
    name: str = ""


class OutgoingEmail(msgspec.Struct, frozen=True, kw_only=True):
    """Everything one outbound mail says; ids carry no angle brackets."""

    message_id: str
    from_address: str
    from_name: str
    reply_to: str | None
    to: list[Recipient]
    subject: str  # the ticket's subject, as stored
    ticket_number: int
    text: str
    date: datetime  # when the message was written: the same on every retry
    in_reply_to: str | None
    references: list[str]
    auto_reply: bool  # an automatic answer (RFC 3834): Auto-Submitted, empty envelope sender
    loop_marker: str  # X-Loop value: recognises our own mail if it comes back
    attachments: list[Attachment] = []


def one_line(value: str) -> str:
    """`value` with every line break and control character turned into one space."""
    return _SPACES.sub(" ", _LINE_BREAKING.sub(" ", value)).strip()


def is_address(value: str) -> bool:
    """A plain ASCII addr-spec that is safe on an SMTP command line and in a header."""
    return len(value) <= 320 and _ADDRESS.fullmatch(value) is not None


def is_message_id(value: str) -> bool:
    return 0 < len(value) <= 250 and _MESSAGE_ID.fullmatch(value) is not None


def message_id_for(ticket_number: int, outbox_id: int, token: str, domain: str) -> str:
    """Our Message-ID (without brackets): names the ticket and the delivery, never reused."""
    return f"helpdesk.{ticket_number}.{outbox_id}.{token}@{domain.lower()}"


def reply_subject(subject: str, ticket_number: int) -> str:
    """`Re: <subject> [#<number>]`, without a second `Re:` or a second tag."""
    clean = one_line(subject)
    tag = f"[#{ticket_number}]"
    if tag not in clean:
        clean = f"{clean} {tag}".strip()
    if not _REPLY_PREFIX.match(clean):
        clean = f"Re: {clean}"
    return clean


def references_chain(message_ids: Iterable[str]) -> list[str]:
    """The ticket's Message-IDs in order, usable ones once each, capped to a sane length.

    Inbound mail without a Message-ID is stored under a `sha256:` id: not a real id.
    """
    seen: set[str] = set()
    chain: list[str] = []
    for message_id in message_ids:
        if message_id.startswith("sha256:") or not is_message_id(message_id):
            continue
        if message_id not in seen:
            seen.add(message_id)
            chain.append(message_id)
    if len(chain) > REFERENCES_KEEP_LAST + 1:
        chain = [chain[0], *chain[-REFERENCES_KEEP_LAST:]]
    return chain


def html_body(text: str) -> str:
    """The text as HTML: escaped, blank lines make paragraphs, line breaks stay."""
    normalized = text.replace("\r\n", "\n").replace("\r", "\n").strip("\n")
    paragraphs = [p for p in re.split(r"\n[ \t]*\n", normalized) if p.strip()]
    rendered = "".join(
        "<p>" + "<br>\n".join(html.escape(line) for line in p.split("\n")) + "</p>\n"
        for p in paragraphs
    )
    head = '<!DOCTYPE html>\n<html><head><meta charset="utf-8"></head><body>\n'
    return f"{head}{rendered}</body></html>\n"


class MessageIdsHeader(UnstructuredHeader, BaseHeader):
    """In-Reply-To / References: folded between ids, never encoded.

    The stock folder turns a token longer than a line (long Message-IDs are common)
    into encoded words, which no mail client would recognise as an id.
    """

    def fold(self, *, policy: Policy) -> str:
        lines: list[str] = []
        line = f"{self.name}:"
        for token in str(self).split():
            if len(line) + 1 + len(token) > _FOLD_AT and line != f"{self.name}:":
                lines.append(line)
                line = ""
            line += " " + token
        lines.append(line)
        return policy.linesep.join(lines) + policy.linesep


class SubjectHeader(UnstructuredHeader, BaseHeader):
    """Subject: non-ASCII text encoded as one run of RFC 2047 words with its spaces inside.

    The stock folder can leave a space between two encoded words, where readers must
    drop it: the customer would see a subject with a word boundary missing.
    """

    def fold(self, *, policy: Policy) -> str:
        value = str(self)
        if value.isascii():
            return super().fold(policy=policy)
        encoded = Header(value, "utf-8", header_name=self.name).encode(
            linesep=policy.linesep, maxlinelen=_FOLD_AT
        )
        return f"{self.name}: {encoded}{policy.linesep}"


def _policy() -> Policy:
    registry = HeaderRegistry()
    registry.map_to_type("subject", SubjectHeader)
    registry.map_to_type("in-reply-to", MessageIdsHeader)
    registry.map_to_type("references", MessageIdsHeader)
    policy: Policy = SMTP.clone(header_factory=registry)
    return policy


POLICY = _policy()


def _mime_type(content_type: str) -> tuple[str, str]:
    """A stored content type as (maintype, subtype); containers become plain bytes.

    multipart/* and message/* parts may not be base64-encoded (RFC 2046), but only
    base64 round-trips an attachment byte for byte.
    """
    match = _CONTENT_TYPE.fullmatch(content_type.strip().lower())
    if match is None or match.group(1) in ("multipart", "message"):
        return "application", "octet-stream"
    return match.group(1), match.group(2)


def _check(mail: OutgoingEmail) -> None:
    addresses = [mail.from_address, *(r.address for r in mail.to)]
    if mail.reply_to:
        addresses.append(mail.reply_to)
    for address in addresses:
        if not is_address(address):
            raise ValueError(f"{address!r} is not a usable email address")
    if not mail.to:
        raise ValueError("the mail has no recipient")
    cited = [mail.in_reply_to] if mail.in_reply_to else []
    for message_id in [mail.message_id, *cited, *mail.references]:
        if not is_message_id(message_id):
            raise ValueError(f"{message_id!r} is not a usable Message-ID")


def compose(mail: OutgoingEmail) -> EmailMessage:
    """The mail, ready to flatten with `render`. Raises ValueError for unusable input."""
    _check(mail)
    message = EmailMessage(policy=POLICY)
    message["From"] = Address(one_line(mail.from_name), addr_spec=mail.from_address)
    message["To"] = [Address(one_line(r.name), addr_spec=r.address) for r in mail.to]
    if mail.reply_to:
        message["Reply-To"] = Address(addr_spec=mail.reply_to)
    message["Subject"] = reply_subject(mail.subject, mail.ticket_number)
    message["Date"] = mail.date
    message["Message-ID"] = f"<{mail.message_id}>"
    if mail.in_reply_to:
        message["In-Reply-To"] = f"<{mail.in_reply_to}>"
    if mail.references:
        message["References"] = " ".join(f"<{r}>" for r in mail.references)
    if mail.auto_reply:
        message["Auto-Submitted"] = "auto-replied"
        # Asks Exchange/Outlook not to answer our automatic answer with theirs.
        message["X-Auto-Response-Suppress"] = "All"
    message["X-Loop"] = one_line(mail.loop_marker)
    message.set_content(mail.text, cte="quoted-printable")
    message.add_alternative(html_body(mail.text), subtype="html", cte="quoted-printable")
    for attachment in mail.attachments:
        maintype, subtype = _mime_type(attachment.content_type)
        message.add_attachment(
            attachment.content,
            maintype=maintype,
            subtype=subtype,
            filename=one_line(attachment.filename) or "attachment",
        )
    return message


def render(message: EmailMessage) -> bytes:
    """The bytes for SMTP DATA: CRLF line ends, 7-bit clean (RFC 2047/2231, QP, base64)."""
    return message.as_bytes(policy=POLICY)


def envelope_sender(mail: OutgoingEmail) -> str:
    """MAIL FROM: empty for automatic answers (RFC 3834), so nothing answers them back."""
    return "" if mail.auto_reply else mail.from_address
