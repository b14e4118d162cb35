"""The parser keeps its promises on hostile and broken mail (docs/reliability.md rows
B1-B3, B6-B9)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpdesk.channels.email.parse import ParsedEmail, parse_email, preview_json


def mail(headers: str, body: bytes = b"body\r\n") -> bytes:
    """A raw mail from header lines (LF or CRLF both fine) and a body."""
    head = "\r\n".join(line for line in headers.strip().splitlines())
    return head.encode("utf-8") + b"\r\n\r\n" + body


def all_strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in all_strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in all_strings(item)]
    return []


def assert_storable(parsed: ParsedEmail) -> None:
    """Every text field can go into PostgreSQL text: no NUL, valid UTF-8."""
    for text in all_strings(parsed.preview()):
        assert "\x00" not in text
        text.encode("utf-8")  # raises on lone surrogates


# --- never raises -----------------------------------------------------------------------

HEADER_NAMES = [
    "From", "To", "Cc", "Reply-To", "Subject", "Date", "Message-ID", "In-Reply-To",
    "References", "Content-Type", "Content-Transfer-Encoding", "Content-Disposition",
    "Auto-Submitted", "Return-Path", "MIME-Version",
]  # fmt: skip
HEADER_VALUES = st.one_of(
    st.binary(max_size=60),
    st.sampled_from(
        [
            b"multipart/mixed; boundary=b",
            b"multipart/mixed",
            b"message/rfc822",
            b"text/plain; charset=x-unknown",
            b"text/html; charset=gb2312",
            b"base64",
            b"quoted-printable",
            b"=?utf-8?B?w6k=?= =?utf-8?Q?=E9?=",
            b"alice@example.org)<bob@example.org>",
            b"a@b.c (Comment, with comma)",
            b'"x" <>',
            b"Mon, 32 Foo 99999 25:61:00 +9999",
        ]
    ),
)
MAIL_SHAPED = st.builds(
    lambda headers, body: (
        b"".join(name.encode() + b": " + value + b"\r\n" for name, value in headers)
        + b"\r\n"
        + body
    ),
    st.lists(st.tuples(st.sampled_from(HEADER_NAMES), HEADER_VALUES), max_size=8),
    st.one_of(
        st.binary(max_size=300),
        st.just(b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b\r\n\r\n\x00\xff--b--"),
    ),
)


@settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(st.binary(max_size=2000))
def test_any_bytes_parse_to_storable_text(raw: bytes) -> None:
    assert_storable(parse_email(raw))
    json.loads(preview_json(raw))


@settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(MAIL_SHAPED)
def test_mail_shaped_garbage_parses_to_storable_text(raw: bytes) -> None:
    parsed = parse_email(raw)
    assert_storable(parsed)
    json.loads(preview_json(raw))


# --- broken MIME (B1) ---------------------------------------------------------------------


def test_multipart_without_boundary_keeps_the_text() -> None:
    raw = mail(
        "From: a@example.com\nContent-Type: multipart/mixed",
        b"--x\r\nContent-Type: text/plain\r\n\r\nhello there\r\n--x--\r\n",
    )
    parsed = parse_email(raw)
    assert "hello there" in parsed.text
    assert any("NoBoundaryInMultipart" in warning for warning in parsed.warnings)


def test_truncated_base64_is_decoded_as_far_as_it_goes() -> None:
    encoded = base64.b64encode(b"The printer on floor 3 is on fire again").decode()
    raw = mail(
        "From: a@example.com\nContent-Type: text/plain\nContent-Transfer-Encoding: base64",
        encoded[:-7].encode(),
    )
    assert parse_email(raw).text.startswith("The printer on floor 3 is on fire")


def nested_multiparts(levels: int) -> bytes:
    parts = [b'From: a@example.com\r\nContent-Type: multipart/mixed; boundary="b0"\r\n\r\n']
    for level in range(1, levels):
        parts.append(
            b'--b%d\r\nContent-Type: multipart/mixed; boundary="b%d"\r\n\r\n' % (level - 1, level)
        )
    parts.append(b"--b%d\r\nContent-Type: text/plain\r\n\r\ninnermost words\r\n" % (levels - 1))
    parts.extend(b"--b%d--\r\n" % level for level in reversed(range(levels)))
    return b"".join(parts)


def test_nesting_100_deep_reads_the_innermost_text() -> None:
    parsed = parse_email(nested_multiparts(100))
    assert parsed.text.strip() == "innermost words"
    assert parsed.from_email == "a@example.com"


def test_nesting_5000_deep_keeps_the_raw_body_instead_of_recursing() -> None:
    parsed = parse_email(nested_multiparts(5000))
    assert "innermost words" in parsed.text
    assert parsed.from_email == "a@example.com"
    assert parsed.warnings


def test_unknown_charset_falls_back_without_losing_the_body() -> None:
    raw = mail(
        "From: a@example.com\nContent-Type: text/plain; charset=x-klingon",
        "Grüße aus Köln".encode(),
    )
    parsed = parse_email(raw)
    assert parsed.text == "Grüße aus Köln"
    assert any("x-klingon" in warning for warning in parsed.warnings)


def test_charset_lie_falls_back_to_utf8_then_cp1250() -> None:
    lied = mail("From: a@example.com\nContent-Type: text/plain; charset=gb2312", "čaj ☕".encode())
    assert parse_email(lied).text == "čaj ☕"
    undeclared_cp1250 = mail("From: a@example.com", "Dobrý den, Žofie".encode("cp1250"))
    assert parse_email(undeclared_cp1250).text == "Dobrý den, Žofie"


def test_bad_rfc2047_subject_is_kept_readable() -> None:
    raw = mail(
        "From: a@example.com\n"
        "Subject: =?utf-8?B?!!!?= and =?x-bogus?Q?caf=E9?= =?utf-8?Q?unterminated"
    )
    subject = parse_email(raw).subject
    assert subject.startswith("=?utf-8?B?!!!?= and caf")
    assert subject.endswith("=?utf-8?Q?unterminated")


def test_encoded_words_split_inside_a_character_are_joined() -> None:
    encoded = "Grüße".encode()
    first = base64.b64encode(encoded[:3]).decode()
    second = base64.b64encode(encoded[3:]).decode()
    raw = mail(f"From: a@example.com\nSubject: =?utf-8?B?{first}?=\n =?utf-8?B?{second}?=")
    assert parse_email(raw).subject == "Grüße"


# --- invalid UTF-8 and NUL (B3) ---------------------------------------------------------


def test_nul_bytes_are_removed_from_every_field() -> None:
    raw = mail(
        'From: "Ev\x00e" <eve@example.com>\nSubject: pay\x00ment\n'
        'Content-Type: multipart/mixed; boundary="z"',
        b"--z\r\nContent-Type: text/plain\r\n\r\nline\x00one\r\n"
        b'--z\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename="a\x00.txt"'
        b"\r\n\r\nfile\x00content\r\n--z--\r\n",
    )
    parsed = parse_email(raw)
    assert_storable(parsed)
    assert (parsed.from_name, parsed.subject) == ("Eve", "payment")
    assert parsed.text.strip() == "lineone"
    assert parsed.attachments[0].filename == "a.txt"
    assert parsed.attachments[0].content == b"file\x00content"  # bytes stay exact


def test_a_few_invalid_utf8_bytes_become_replacement_characters() -> None:
    raw = mail(
        "From: a@example.com\nContent-Type: text/plain; charset=utf-8",
        "Привет, мир! ".encode() * 20 + b"\xd1" + " конец".encode(),
    )
    text = parse_email(raw).text
    assert text.startswith("Привет, мир!")
    assert text.endswith("\ufffd конец")


# --- attachments (B2) --------------------------------------------------------------------


def mail_with_attachments(*sizes: int) -> bytes:
    parts = [b"--z\r\nContent-Type: text/plain\r\n\r\nPlease see attached.\r\n"]
    for number, size in enumerate(sizes):
        content = base64.b64encode(bytes(size))
        parts.append(
            b"--z\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n"
            b'Content-Disposition: attachment; filename="file%d.pdf"\r\n\r\n%s\r\n'
            % (number, content)
        )
    body = b"".join(parts) + b"--z--\r\n"
    return mail('From: a@example.com\nContent-Type: multipart/mixed; boundary="z"', body)


def test_attachment_over_the_limit_is_recorded_as_dropped_and_the_mail_kept() -> None:
    parsed = parse_email(mail_with_attachments(50, 5000), max_attachment_bytes=1000)
    assert parsed.text.strip() == "Please see attached."
    small, big = parsed.attachments
    assert (small.size, len(small.content), small.dropped_reason) == (50, 50, None)
    assert (big.filename, big.size, big.content) == ("file1.pdf", 5000, b"")
    assert big.dropped_reason == "larger than 1000 bytes"
    assert any("file1.pdf" in warning for warning in parsed.warnings)


def test_attachments_beyond_the_count_limit_are_recorded_without_content() -> None:
    parsed = parse_email(mail_with_attachments(10, 10, 10, 10), max_attachments=2)
    assert [a.size for a in parsed.attachments] == [10, 10, 10, 10]
    assert [a.dropped_reason is None for a in parsed.attachments] == [True, True, False, False]
    assert parsed.attachments[3].content == b""


def test_tnef_is_kept_as_an_attachment() -> None:
    body = (
        b"--z\r\nContent-Type: text/plain\r\n\r\nSee winmail.\r\n"
        b'--z\r\nContent-Type: application/ms-tnef; name="winmail.dat"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\neJ8+IgAAAA==\r\n--z--\r\n"
    )
    parsed = parse_email(
        mail('From: a@example.com\nContent-Type: multipart/mixed; boundary="z"', body)
    )
    (tnef,) = parsed.attachments
    assert (tnef.filename, tnef.content_type) == ("winmail.dat", "application/ms-tnef")
    assert tnef.content == base64.b64decode("eJ8+IgAAAA==")


def test_forwarded_message_becomes_an_eml_attachment() -> None:
    inner = b"From: boss@example.com\r\nSubject: inner\r\n\r\nThe original text.\r\n"
    body = (
        b"--z\r\nContent-Type: text/plain\r\n\r\nFYI, see below.\r\n"
        b"--z\r\nContent-Type: message/rfc822\r\n\r\n" + inner + b"--z--\r\n"
    )
    parsed = parse_email(
        mail('From: a@example.com\nContent-Type: multipart/mixed; boundary="z"', body)
    )
    assert parsed.text.strip() == "FYI, see below."
    (forwarded,) = parsed.attachments
    assert (forwarded.filename, forwarded.content_type) == ("forwarded.eml", "message/rfc822")
    assert b"The original text." in forwarded.content


def test_preview_lists_attachments_without_their_content() -> None:
    preview = parse_email(mail_with_attachments(20)).preview()
    assert preview["attachments"] == [
        {
            "filename": "file0.pdf",
            "content_type": "application/pdf",
            "size": 20,
            "inline": False,
            "content_id": None,
            "dropped_reason": None,
        }
    ]
    decoded = msgspec.json.decode(preview_json(mail_with_attachments(20)))
    assert decoded["attachments"] == preview["attachments"]


# --- HTML (B6) ---------------------------------------------------------------------------

HOSTILE_HTML = (
    b"<html><head><title>Hidden title</title><style>p{color:red}</style></head><body>"
    b'<p onclick="steal()">Hello &amp; welcome</p><script>alert(1)</script>'
    b'<img src="cid:logo@example.com" onerror="alert(2)">'
    b'<img src="https://tracker.example/pixel.gif" width="1" height="1">'
    b'<a href="javascript:alert(3)">click</a><br>second line'
    b"<svg><script>alert(4)</script></svg>"
    b'<base href="https://evil.example/">'
    b'<meta http-equiv="refresh" content="0;url=https://evil.example/">'
    b"</body></html>"
)


def html_mail(markup: bytes) -> bytes:
    return mail("From: a@example.com\nContent-Type: text/html; charset=utf-8", markup)


def test_html_is_sanitized_but_inline_images_stay() -> None:
    sanitized = parse_email(html_mail(HOSTILE_HTML)).html
    assert sanitized is not None
    lowered = sanitized.lower()
    for forbidden in (
        "<script", "alert(", "onerror", "onclick", "javascript:", "tracker.example",
        "<svg", "<base", "<meta", "<style", "color:red",
    ):  # fmt: skip
        assert forbidden not in lowered
    assert 'src="cid:logo@example.com"' in sanitized


def test_remote_images_can_be_allowed_explicitly() -> None:
    sanitized = parse_email(html_mail(HOSTILE_HTML), allow_remote_images=True).html
    assert sanitized is not None
    assert "https://tracker.example/pixel.gif" in sanitized
    assert "javascript:" not in sanitized


def test_html_only_mail_is_rendered_to_readable_text() -> None:
    parsed = parse_email(html_mail(HOSTILE_HTML))
    assert parsed.text == "Hello & welcome\n\nclick\nsecond line"
    assert parsed.text_content_type == "text/html"


def test_plain_text_is_preferred_over_html() -> None:
    body = (
        b"--a\r\nContent-Type: text/plain\r\n\r\nplain words\r\n"
        b"--a\r\nContent-Type: text/html\r\n\r\n<p>html words</p>\r\n--a--\r\n"
    )
    raw = mail('From: a@example.com\nContent-Type: multipart/alternative; boundary="a"', body)
    parsed = parse_email(raw)
    assert (parsed.text.strip(), parsed.text_content_type) == ("plain words", "text/plain")
    assert parsed.html == "<p>html words</p>"


# --- loops and bounces (B8) ----------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        "Auto-Submitted: auto-replied",
        "Auto-Submitted: auto-generated (failure)",
        "Precedence: bulk",
        "Precedence: junk",
        "Precedence: list",
        "X-Autoreply: yes",
        "X-Autorespond: Out of office",
        "X-Auto-Response-Suppress: All",
        "List-Id: <support.lists.example.com>",
        "List-Unsubscribe: <mailto:leave@lists.example.com>",
        "Return-Path: <>",
        "X-Loop: helpdesk@example.com",
    ],
)
def test_auto_submitted_mail_is_flagged(header: str) -> None:
    parsed = parse_email(mail(f"From: someone@example.com\nSubject: Re: hi\n{header}"))
    assert parsed.auto_submitted
    assert not parsed.bounce


@pytest.mark.parametrize("sender", ["MAILER-DAEMON@mx.example.com", "postmaster@example.com"])
def test_mail_from_the_mail_system_is_auto_submitted(sender: str) -> None:
    assert parse_email(mail(f"From: {sender}\nSubject: Notice")).auto_submitted


@pytest.mark.parametrize("header", ["Auto-Submitted: no", "Precedence: first-class", ""])
def test_a_person_writing_is_not_auto_submitted(header: str) -> None:
    assert not parse_email(
        mail(f"From: person@example.com\nSubject: Help\n{header}")
    ).auto_submitted


DSN = (
    b"--r\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
    b"--r\r\nContent-Type: message/delivery-status\r\n\r\n"
    b"Reporting-MTA: dns; mx.example.com\r\n\r\n"
    b"Final-Recipient: rfc822; Gone@Customer.example\r\nAction: failed\r\nStatus: 5.1.1\r\n"
    b"Diagnostic-Code: smtp; 550 5.1.1 user unknown\r\n"
    b"--r\r\nContent-Type: message/rfc822\r\n\r\n"
    b"From: support@helpdesk.example\r\nMessage-ID: <reply-1@helpdesk.example>\r\n\r\nHi\r\n"
    b"--r--\r\n"
)


def test_delivery_status_notification_is_a_bounce_with_its_reason() -> None:
    raw = mail(
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.com>\n"
        "Subject: Undelivered Mail Returned to Sender\nAuto-Submitted: auto-replied\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="r"',
        DSN,
    )
    parsed = parse_email(raw)
    assert parsed.bounce and parsed.auto_submitted
    assert parsed.bounce_recipients == ["gone@customer.example"]
    assert parsed.bounce_diagnostic == "550 5.1.1 user unknown"
    assert "could not be delivered" in parsed.text
    assert any(a.filename == "forwarded.eml" for a in parsed.attachments)


def test_prose_failure_notice_from_mailer_daemon_is_a_bounce() -> None:
    raw = mail("From: MAILER-DAEMON@mx.example.com\nSubject: failure notice")
    assert parse_email(raw).bounce


def test_read_receipt_is_not_a_bounce() -> None:
    raw = mail(
        "From: person@example.com\nSubject: Read: hi\n"
        'Content-Type: multipart/report; report-type=disposition-notification; boundary="r"',
        b"--r\r\nContent-Type: text/plain\r\n\r\nYour message was read.\r\n--r--\r\n",
    )
    assert not parse_email(raw).bounce


def test_out_of_office_reply_is_not_a_bounce() -> None:
    raw = mail("From: person@example.com\nReturn-Path: <>\nSubject: Out of office")
    parsed = parse_email(raw)
    assert parsed.auto_submitted and not parsed.bounce


# --- senders and headers (B7, B9) --------------------------------------------------------


def test_cve_2023_27043_address_gives_an_unknown_sender() -> None:
    parsed = parse_email(mail("From: alice@example.org)<bob@example.org>\nSubject: hi"))
    assert parsed.from_email is None
    assert any("ambiguous" in warning for warning in parsed.warnings)


def test_ambiguous_recipient_list_is_not_read_leniently() -> None:
    parsed = parse_email(mail("From: a@example.com\nTo: alice@example.org)<bob@example.org>"))
    assert parsed.to == []


def test_address_used_as_display_name_yields_the_angle_address() -> None:
    parsed = parse_email(mail("From: alice@example.com <Bob@Example.com>"))
    assert (parsed.from_email, parsed.from_name) == ("bob@example.com", "alice@example.com")


def test_missing_from_gives_an_unknown_sender() -> None:
    parsed = parse_email(mail("Subject: anonymous"))
    assert (parsed.from_email, parsed.from_name) == (None, "")


def test_addresses_and_threading_headers_are_normalised() -> None:
    raw = mail(
        "From: =?utf-8?Q?Ren=C3=A9e?= <Renee@Example.COM>\n"
        'To: "Support, EU" <Support@helpdesk.example>, other@example.com\n'
        "Cc: one@example.com\nCc: two@example.com\n"
        "Message-ID: <abc@example.com>\n"
        "In-Reply-To: <first@helpdesk.example> <second@helpdesk.example>\n"
        "References: <root@helpdesk.example>\n <first@helpdesk.example> <root@helpdesk.example>\n"
        "Date: Tue, 05 Mar 2024 09:30:00 +0100"
    )
    parsed = parse_email(raw)
    assert (parsed.from_email, parsed.from_name) == ("renee@example.com", "Renée")
    assert parsed.to == ["support@helpdesk.example", "other@example.com"]
    assert parsed.cc == ["one@example.com", "two@example.com"]
    assert parsed.message_id == "abc@example.com"
    assert parsed.in_reply_to == "first@helpdesk.example"
    assert parsed.references == ["root@helpdesk.example", "first@helpdesk.example"]
    assert parsed.date == datetime(2024, 3, 5, 8, 30, tzinfo=UTC)


def test_unreadable_date_is_none_with_a_warning() -> None:
    parsed = parse_email(mail("From: a@example.com\nDate: the day after tomorrow"))
    assert parsed.date is None
    assert any("Date" in warning for warning in parsed.warnings)


def test_helpdesk_control_headers_in_customer_mail_change_nothing() -> None:
    plain = mail("From: customer@example.com\nSubject: Help")
    with_controls = mail(
        "From: customer@example.com\nSubject: Help\n"
        "X-Helpdesk-Ticket: 1042\nX-Helpdesk-Agent: admin@helpdesk.example\nX-Helpdesk-Loop: yes"
    )
    assert parse_email(with_controls) == parse_email(plain)


def test_recipients_glued_together_are_not_invented() -> None:
    parsed = parse_email(mail("From: a@example.com\nTo: vishnu@example.com www.example.com"))
    assert parsed.to == []
    assert any("to header is ambiguous" in warning for warning in parsed.warnings)


@pytest.mark.parametrize(
    "content_type",
    [
        'text/plain; charset="utf\x00-8"',
        "text/plain; charset*=utf-8''%FF%00",
        "text/plain; charset=",
    ],
)
def test_hostile_charset_parameters_still_give_the_body(content_type: str) -> None:
    raw = mail(
        f"From: a@example.com\nContent-Type: {content_type}",
        "Grüße \udcff".encode("utf-8", "surrogateescape"),
    )
    parsed = parse_email(raw)
    assert parsed.text.startswith("Grüße")
    assert_storable(parsed)
