"""Every download carries its file name whatever the letters (RFC 6266 `filename*`)."""

from __future__ import annotations

import base64
from email.message import Message

import pytest

from helpdesk.web.downloads import ascii_filename, attachment_disposition
from tests.conftest import Client, Factory


def filename_star(header: str) -> str:
    """The name a client that follows RFC 6266 reads: `filename*` when present, read
    by the standard library's RFC 2231 decoder, else `filename`."""
    star = [p.strip() for p in header.split(";") if p.strip().startswith("filename*=")]
    message = Message()
    message["Content-Disposition"] = "attachment; " + (star[0] if star else header.split("; ")[1])
    name = message.get_filename()
    assert name is not None, header
    return name


@pytest.mark.parametrize(
    "name",
    ["faktura_č.pdf", "Příloha - smlouva.docx", "отчёт.xlsx", "报告.pdf", 'a"b\\c;d.txt', "x.pdf"],
)
def test_disposition_keeps_the_name_and_stays_latin_1(name: str) -> None:
    header = attachment_disposition(name)
    header.encode("ascii")  # what every client can read, whatever the name
    assert filename_star(header) == name
    assert ascii_filename(name) in header


def test_ascii_fallback_drops_accents_only() -> None:
    assert ascii_filename("faktura_č.pdf") == "faktura_c.pdf"
    assert ascii_filename("报告.pdf") == "__.pdf"
    assert ascii_filename("...") == "download"


async def test_attachment_with_czech_name_downloads(client: Client, factory: Factory) -> None:
    agent = await factory.agent("agent")
    ticket = await factory.ticket(client, agent)
    note = await client.post(
        f"/tickets/{ticket['id']}/notes",
        json={
            "text": "faktura",
            "attachments": [
                {
                    "filename": "faktura_č.pdf",
                    "content_type": "application/pdf",
                    "content": base64.b64encode(b"%PDF-1.4").decode(),
                }
            ],
        },
        headers=agent.headers,
    )
    assert note.status_code == 201, note.text
    attachment = note.json()["attachments"][0]
    download = await client.get(f"/attachments/{attachment['id']}", headers=agent.headers)
    assert download.status_code == 200, download.text
    assert download.content == b"%PDF-1.4"
    header = download.headers["content-disposition"]
    assert header.startswith('attachment; filename="faktura_c.pdf"; ')
    assert filename_star(header) == "faktura_č.pdf"
