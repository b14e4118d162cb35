"""Delivery status notifications (bounces): detection, failed recipients, bounced ids."""

from __future__ import annotations

import email.utils
import re
from email.message import Message

from helpdesk.channels.email.autoreply import system_sender
from helpdesk.channels.email.headers import usable_address
from helpdesk.channels.email.mime import Collected

_DSN_SUBJECT = re.compile(
    r"undeliver|returned mail|delivery (?:status notification|failure|has failed|failed)"
    r"|mail delivery failed|failure notice|non[- ]?delivery|could not be delivered",
    re.IGNORECASE,
)


def _report_type(message: Message) -> str:
    value = message.get_param("report-type")
    if isinstance(value, tuple):
        value = email.utils.collapse_rfc2231_value(value)
    return str(value or "").strip().lower()


def is_bounce(message: Message, collected: Collected, from_email: str | None, subject: str) -> bool:
    """A delivery status notification (RFC 3464), or an MTA's failure notice in prose."""
    if collected.delivery_status:
        return True
    system = system_sender(message, from_email)
    if message.get_content_type() == "multipart/report":
        report_type = _report_type(message)
        if report_type == "delivery-status" or (not report_type and system):
            return True
    return system and bool(_DSN_SUBJECT.search(subject))


_FINAL_RECIPIENT = re.compile(r"^(?:final|original)-recipient:[^;\n]*;\s*(\S+)", re.I | re.M)
_DIAGNOSTIC = re.compile(r"^diagnostic-code:[^;\n]*;\s*(.+)", re.I | re.M)
_STATUS = re.compile(r"^status:\s*(\S+)", re.I | re.M)


def bounce_details(reports: list[str]) -> tuple[list[str], str | None]:
    """Failed recipients and the first diagnostic found in message/delivery-status parts."""
    recipients: list[str] = []
    diagnostic: str | None = None
    for report in reports:
        for found in _FINAL_RECIPIENT.findall(report):
            address = usable_address(found.strip("<>"))
            if address and address not in recipients:
                recipients.append(address)
        if diagnostic is None:
            match = _DIAGNOSTIC.search(report) or _STATUS.search(report)
            diagnostic = " ".join(match.group(1).split()) if match else None
    return recipients, diagnostic


_RETURNED_TYPES = {"message/rfc822", "text/rfc822-headers", "message/rfc822-headers"}
_MESSAGE_ID_LINE = re.compile(r"^message-id:[ \t]*<([^<>\s]{1,900})>", re.I | re.M)


def bounced_message_ids(collected: Collected, text: str) -> list[str]:
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
