"""Loop and noise protection: which inbound mail may get an automatic reply.

Pure decisions, no I/O. An automatic reply (acknowledgement, survey) to an
auto-responder, a mailing list, a bounce or our own mail starts a mail loop, so none
is ever sent to those (RFC 3834, and what Zammad and RT learned the hard way).
"""

from __future__ import annotations

from helpdesk.channels.email.parse import ParsedEmail

OUR_MESSAGE_ID_PREFIX = "helpdesk."


def reply_address(parsed: ParsedEmail) -> str | None:
    """Where a reply to `parsed` goes: its Reply-To, else its sender."""
    for candidate in [*parsed.reply_to, parsed.from_email]:
        if candidate and "@" in candidate:
            return candidate.strip().lower()
    return None


def is_own_message_id(message_id: str | None, own_domains: set[str]) -> bool:
    """A Message-ID we generated (our prefix, on one of our domains): our mail came back."""
    if not message_id:
        return False
    local, _, domain = message_id.rpartition("@")
    return local.startswith(OUR_MESSAGE_ID_PREFIX) and domain.lower() in own_domains


def auto_reply_blocker(parsed: ParsedEmail, own_addresses: set[str]) -> str | None:
    """Why `parsed` must not get an automatic reply, or None when one is allowed."""
    if parsed.bounce:
        return "the mail is a delivery status notification (bounce)"
    if parsed.auto_submitted:
        return "the mail is automatic (Auto-Submitted, Precedence, list or auto-reply headers)"
    recipient = reply_address(parsed)
    if recipient is None:
        return "the mail has no usable sender address"
    own_domains = {address.rpartition("@")[2] for address in own_addresses}
    if recipient in own_addresses or (parsed.from_email or "").lower() in own_addresses:
        return "the mail comes from one of our own addresses"
    if is_own_message_id(parsed.message_id, own_domains):
        return "the mail is one of our own (its Message-ID is ours)"
    return None


def acknowledgement_text(template: str, number: int, first_response_minutes: int) -> str:
    """Fill the configured template; plain replacement, so stray braces are harmless."""
    return template.replace("{number}", str(number)).replace(
        "{first_response_minutes}", str(first_response_minutes)
    )
