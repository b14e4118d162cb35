"""Header words, transfer encodings, sender comments and line endings as real mailers send them.

Found by outside testers with real mail (issue 19): each case below was shown raw, stored
undecoded or lost before.
"""

from __future__ import annotations

import email
from email import policy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpdesk.channels.email.parse import parse_email


def mail(headers: str, body: bytes = b"body\r\n", *, newline: bytes = b"\r\n") -> bytes:
    head = newline.join(line.encode("utf-8") for line in headers.strip().splitlines())
    return head + newline + newline + body


# --- RFC 2047 encoded words with a space in the encoded text ----------------------------

SPACED_WORDS = [
    "=?UTF-8?Q? Personal=C3=A4nderung?=",
    "Re: =?UTF-8?Q? Personal=C3=A4nderung?= morgen",
    "=?utf-8?B?IFBlcnNvbmFs w6RuZGVydW5n?=",
    "=?UTF-8?Q?Dotaz na?= =?UTF-8?Q? objedn=C3=A1vku?=",
    "=?iso-8859-2?Q?Reklamace =E8.?= 42",
]


@pytest.mark.parametrize("subject", SPACED_WORDS)
def test_subject_with_a_space_inside_an_encoded_word_reads_as_the_stdlib_reads_it(
    subject: str,
) -> None:
    raw = mail(f"From: a@example.com\nSubject: {subject}")
    stdlib = str(email.message_from_bytes(raw, policy=policy.default)["subject"])
    assert "=?" not in stdlib  # the reference really decodes it
    assert parse_email(raw).subject == stdlib


def _q_word(text: str) -> str:
    """`text` as a Q encoded word that keeps its spaces unencoded, as some mailers write."""
    safe = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,-!()")
    encoded = "".join(c if c in safe else "".join(f"={b:02X}" for b in c.encode()) for c in text)
    return f"=?UTF-8?Q?{encoded}?="


@settings(max_examples=300, deadline=None)
@given(
    words=st.lists(st.text(alphabet="abc XYZ äöüčřž_=.,-!()", min_size=1), min_size=1, max_size=3),
    before=st.sampled_from(["", "Re: ", "x"]),
    after=st.sampled_from(["", " konec", "y"]),
)
def test_spaced_encoded_words_read_exactly_as_the_stdlib_reads_them(
    words: list[str], before: str, after: str
) -> None:
    subject = before + " ".join(_q_word(w) for w in words) + after
    raw = mail(f"From: a@example.com\nSubject: {subject}")
    stdlib = str(email.message_from_bytes(raw, policy=policy.default)["subject"])
    assert parse_email(raw).subject == stdlib


def test_personalanderung_subject_is_decoded_with_its_leading_space() -> None:
    raw = mail("From: a@example.com\nSubject: =?UTF-8?Q? Personal=C3=A4nderung?=")
    assert parse_email(raw).subject == " Personaländerung"


def test_display_name_with_a_space_inside_an_encoded_word_is_decoded() -> None:
    raw = mail("From: =?UTF-8?Q?Jan Nov=C3=A1k?= <jan@example.cz>\nSubject: x")
    parsed = parse_email(raw)
    assert (parsed.from_email, parsed.from_name) == ("jan@example.cz", "Jan Novák")


def test_attachment_name_with_a_space_inside_an_encoded_word_is_decoded() -> None:
    raw = mail(
        'From: a@example.com\nSubject: x\nContent-Type: multipart/mixed; boundary="b"',
        b"--b\r\nContent-Type: text/plain\r\n\r\nsee file\r\n"
        b'--b\r\nContent-Type: application/pdf; name="=?UTF-8?Q?faktura =C4=8D.pdf?="\r\n'
        b"Content-Disposition: attachment;\r\n"
        b' filename="=?UTF-8?Q?faktura =C4=8D.pdf?="\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--b--\r\n",
    )
    [attachment] = parse_email(raw).attachments
    assert (attachment.filename, attachment.content) == ("faktura č.pdf", b"%PDF-")


def test_a_question_mark_still_ends_an_encoded_word() -> None:
    raw = mail("From: a@example.com\nSubject: =?UTF-8?Q?Hi?= how? =?UTF-8?Q?ok?=")
    assert parse_email(raw).subject == "Hi how? ok"


# --- uuencoded parts --------------------------------------------------------------------

FILE = b"Faktura 2024"  # the 12-byte file
# `uuencode` output for it, line by line (binascii.b2a_uu gives the same line).
UU_LINE = b",1F%K='5R82 R,#(T"


def uuencoded_mail(encoding: str, payload: bytes, content_type: str = "text/plain") -> bytes:
    return mail(
        'From: a@example.com\nSubject: file\nContent-Type: multipart/mixed; boundary="b"',
        b"--b\r\nContent-Type: text/plain\r\n\r\nthe file\r\n"
        b"--b\r\nContent-Type: " + content_type.encode() + b'; name="f.txt"\r\n'
        b'Content-Disposition: attachment; filename="f.txt"\r\n'
        b"Content-Transfer-Encoding: " + encoding.encode() + b"\r\n\r\n" + payload + b"--b--\r\n",
    )


@pytest.mark.parametrize("encoding", ["x-uuencode", "uuencode", "x-uue", "X-UUEncode"])
def test_uuencoded_attachment_without_begin_line_is_decoded(encoding: str) -> None:
    payload = UU_LINE + b"\n`\n"
    assert len(payload) == 20  # what was stored before instead of the file
    [attachment] = parse_email(uuencoded_mail(encoding, payload)).attachments
    assert (attachment.content, attachment.size) == (FILE, 12)


def test_uuencoded_attachment_with_crlf_lines_is_decoded() -> None:
    [attachment] = parse_email(uuencoded_mail("x-uuencode", UU_LINE + b"\r\n`\r\n")).attachments
    assert attachment.content == FILE


def test_uuencoded_attachment_with_begin_and_end_is_decoded() -> None:
    payload = b"begin 644 f.txt\r\n" + UU_LINE + b"\r\n`\r\nend\r\n"
    [attachment] = parse_email(uuencoded_mail("x-uuencode", payload)).attachments
    assert attachment.content == FILE


def test_uuencoded_attachment_without_end_line_is_decoded() -> None:
    payload = b"begin 644 f.txt\n" + UU_LINE + b"\n"
    [attachment] = parse_email(uuencoded_mail("x-uuencode", payload, "application/pdf")).attachments
    assert attachment.content == FILE


def test_uuencoded_text_body_is_decoded() -> None:
    raw = mail(
        "From: a@example.com\nSubject: x\nContent-Type: text/plain\n"
        "Content-Transfer-Encoding: x-uuencode",
        b"begin 644 body\r\n" + UU_LINE + b"\r\n`\r\nend\r\n",
    )
    assert parse_email(raw).text == FILE.decode()


# --- the sender's comment as display name -----------------------------------------------


def test_mailer_daemon_comment_is_the_display_name() -> None:
    raw = mail("From: MAILER-DAEMON@mx.example.com (Mail Delivery System)\nSubject: Undelivered")
    parsed = parse_email(raw)
    assert (parsed.from_email, parsed.from_name) == (
        "mailer-daemon@mx.example.com",
        "Mail Delivery System",
    )


def test_encoded_comment_is_decoded_as_display_name() -> None:
    raw = mail("From: jan@example.cz (=?UTF-8?Q?Jan_Nov=C3=A1k?=)\nSubject: x")
    assert parse_email(raw).from_name == "Jan Novák"


def test_a_phrase_wins_over_a_comment() -> None:
    raw = mail("From: Jan Novak <jan@example.cz> (work)\nSubject: x")
    assert parse_email(raw).from_name == "Jan Novak"


def test_an_address_without_name_or_comment_has_no_display_name() -> None:
    raw = mail("From: jan@example.cz\nSubject: x")
    assert parse_email(raw).from_name == ""


# --- line endings -----------------------------------------------------------------------

BODY = b"Dobry den,\nmam dotaz.\n\n> puvodni zprava\n"


@pytest.mark.parametrize("newline", [b"\r\n", b"\n", b"\r"])
def test_plain_text_lines_end_in_lf_whatever_the_mail_used(newline: bytes) -> None:
    raw = mail("From: a@example.com\nSubject: x", BODY.replace(b"\n", newline), newline=newline)
    assert parse_email(raw).text == BODY.decode()


def test_quoted_printable_soft_breaks_and_crlf_give_lf_text() -> None:
    raw = mail(
        "From: a@example.com\nSubject: x\nContent-Transfer-Encoding: quoted-printable",
        b"first line that goes=\r\n on\r\nsecond=0D=0Athird\r\n",
    )
    assert parse_email(raw).text == "first line that goes on\nsecond\nthird\n"


def test_html_part_lines_end_in_lf() -> None:
    raw = mail(
        "From: a@example.com\nSubject: x\nContent-Type: text/html",
        b"<p>one</p>\r\n<p>two<br>\r\nthree</p>\r\n",
    )
    parsed = parse_email(raw)
    assert parsed.html == "<p>one</p>\n<p>two<br>\nthree</p>\n"
    assert parsed.text == "one\n\ntwo\nthree"


def test_multipart_crlf_mail_gives_lf_text_in_every_text_part() -> None:
    raw = mail(
        'From: a@example.com\nSubject: x\nContent-Type: multipart/alternative; boundary="b"',
        b"--b\r\nContent-Type: text/plain\r\n\r\nline one\r\nline two\r\n"
        b"--b\r\nContent-Type: text/html\r\n\r\n<div>line one<br>\r\nline two</div>\r\n--b--\r\n",
    )
    parsed = parse_email(raw)
    assert parsed.text == "line one\nline two"
    assert parsed.html is not None and "\r" not in parsed.html
