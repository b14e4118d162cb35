"""The demo's SMTP sink keeps what a real SMTP client sends it, byte for byte."""

from __future__ import annotations

from pathlib import Path

import aiosmtplib

from helpdesk.demo.mailsink import MailSink


async def test_the_sink_keeps_each_mail_with_its_envelope_and_dots_unstuffed(
    tmp_path: Path,
) -> None:
    sink = MailSink(tmp_path / "demo-mail")
    await sink.start()
    try:
        body = (
            b"From: support@demo.helpdesk.test\r\nTo: petr@example.test\r\n"
            b"Subject: Re: Kabel\r\n\r\nFirst line\r\n.a line that starts with a dot\r\n"
        )
        for _ in range(2):  # as helpdesk.channels.email.smtp sends: null reverse path
            smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=sink.port, start_tls=False)
            await smtp.connect()
            await smtp.ehlo()
            await smtp.mail("")
            await smtp.rcpt("petr@example.test")
            await smtp.rcpt("jana@example.test")
            await smtp.data(body)
            await smtp.quit()
    finally:
        await sink.stop()
    assert [path.parent for path in sink.saved] == [tmp_path / "demo-mail"] * 2
    kept = sink.saved[0].read_bytes()
    assert kept == (b"X-Demo-Envelope: from <> to petr@example.test, jana@example.test\r\n" + body)
