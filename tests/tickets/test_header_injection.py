"""B7: what an agent types can never become a mail header or an SMTP command.

Subjects, customer names and e-mail addresses, and attachment file names end up in
the headers and the envelope of replies; with CR/LF (or `>` and spaces in an address)
they could add a Bcc or a second RCPT TO. The API refuses them with the same
validation problem as any other invalid field, and nothing is stored or queued.
"""

from __future__ import annotations

import base64
from typing import Any

import asyncpg
import pytest

from tests.conftest import Client, Factory

PROBLEM = "urn:helpdesk:problem:invalid-input"


def ticket_body(**changes: Any) -> dict[str, Any]:
    customer = {"email": "jana@example.cz", "name": "Jana"}
    customer.update(changes.pop("customer", {}))
    return {"subject": "Reklamace", "text": "Hrnek je rozbity.", "customer": customer, **changes}


async def counts(db: asyncpg.Connection) -> dict[str, int]:
    return {
        table: await db.fetchval(f"SELECT count(*) FROM {table}")
        for table in ("tickets", "customers", "messages", "outbox", "attachments")
    }


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (ticket_body(subject="Reklamace\r\nBcc: victim@example.org"), "subject"),
        (ticket_body(subject="Reklamace\nBcc: victim@example.org"), "subject"),
        (ticket_body(subject="Reklamace\n"), "subject"),
        (ticket_body(customer={"name": "Jana\r\nBcc: victim@example.org"}), "customer.name"),
        (ticket_body(customer={"name": "Jana\n"}), "customer.name"),
        (ticket_body(customer={"email": "a@b.c>\r\nRCPT TO:<x@y>"}), "customer.email"),
        (ticket_body(customer={"email": "a@b.c>"}), "customer.email"),
        (ticket_body(customer={"email": "<a@b.c>"}), "customer.email"),
        (ticket_body(customer={"email": "a@b.c\n"}), "customer.email"),
        (ticket_body(customer={"email": "a b@c.d"}), "customer.email"),
        (ticket_body(customer={"email": "a@b.c\tx"}), "customer.email"),
        (ticket_body(customer={"email": "a(b)@c.d"}), "customer.email"),
        (ticket_body(customer={"email": "a,b@c.d"}), "customer.email"),
        (ticket_body(customer={"email": "a;b@c.d"}), "customer.email"),
        (ticket_body(customer={"email": "a:b@c.d"}), "customer.email"),
        (ticket_body(customer={"email": 'a"b@c.d'}), "customer.email"),
        (ticket_body(customer={"email": "a\\b@c.d"}), "customer.email"),
        (ticket_body(customer={"email": "a@b@c.d"}), "customer.email"),
    ],
)
async def test_header_breaking_ticket_input_is_refused_and_nothing_is_stored(
    client: Client, factory: Factory, db: asyncpg.Connection, body: dict[str, Any], field: str
) -> None:
    agent = await factory.agent("agent")
    before = await counts(db)

    response = await client.post("/tickets", json=body, headers=agent.headers)

    # Schema validation: 400 like every other invalid field of this API.
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["type"] == PROBLEM
    assert field in [e["field"] for e in problem["errors"]], problem
    assert await counts(db) == before


async def test_ordinary_names_subjects_and_addresses_still_pass(
    client: Client, factory: Factory
) -> None:
    agent = await factory.agent("agent")
    ticket = await factory.ticket(
        client,
        agent,
        subject='Re: "Objednávka" č. 7 (zboží; 2 ks) <urgent>',
        customer={"email": "o'brien+shop@mail.example.ie", "name": 'Jana "J." Nováková, Ph.D.'},
    )
    assert ticket["subject"] == 'Re: "Objednávka" č. 7 (zboží; 2 ks) <urgent>'


# (NUL never gets this far: the API turns it into U+FFFD before validation,
# docs/reliability.md row B3.)
@pytest.mark.parametrize("filename", ["a.pdf\r\nContent-Type: text/html", "a.pdf\n", "a\rb.pdf"])
async def test_reply_with_a_header_breaking_file_name_is_refused_and_not_queued(
    client: Client, factory: Factory, db: asyncpg.Connection, filename: str
) -> None:
    agent = await factory.agent("agent")
    ticket = await factory.ticket(client, agent)
    before = await counts(db)

    response = await client.post(
        f"/tickets/{ticket['id']}/replies",
        json={
            "text": "See attached.",
            "attachments": [
                {
                    "filename": filename,
                    "content_type": "application/pdf",
                    "content": base64.b64encode(b"%PDF").decode(),
                }
            ],
        },
        headers=agent.headers,
    )

    assert response.status_code == 400, response.text
    problem = response.json()
    assert problem["type"] == PROBLEM
    assert "attachments[0].filename" in [e["field"] for e in problem["errors"]], problem
    assert await counts(db) == before
