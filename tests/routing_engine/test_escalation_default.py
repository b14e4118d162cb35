"""A partner escalating without naming a group (it cannot list internal groups) reaches
the group routing named, else the deployment's default internal group, else a 422 that
says what an admin must configure (issue 19)."""

from __future__ import annotations

import asyncpg
from msgspec import structs

from helpdesk.agents.passwords import Passwords
from helpdesk.app import create_app
from helpdesk.config import Settings
from tests.conftest import AgentHandle, Client, Factory, serve


async def partner_ticket(client: Client, factory: Factory) -> tuple[AgentHandle, int, int]:
    """A first-line partner's own ticket, in its group from creation (routing names no
    escalation group for it); returns the partner, the ticket and the internal group."""
    admin = await factory.agent("admin")
    internal = await factory.group("Podpora")
    first_line = await factory.group("Outsourcing")
    response = await client.patch(
        f"/routing/groups/{first_line}",
        json={"first_line_categories": ["question"]},
        headers=admin.headers,
    )
    assert response.status_code == 200, response.text
    partner = await factory.agent("partner", group_ids=[first_line])
    ticket = await factory.ticket(client, partner, group_id=first_line)
    return partner, ticket["id"], internal


async def escalate(client: Client, partner: AgentHandle, ticket_id: int) -> dict[str, object]:
    response = await client.post(
        f"/tickets/{ticket_id}/escalate",
        json={"reason": "Potřebuje interní tým"},
        headers=partner.headers,
    )
    body: dict[str, object] = {"status": response.status_code, **response.json()}
    return body


async def test_without_a_default_the_answer_says_what_to_configure(
    client: Client, factory: Factory, db: asyncpg.Connection
) -> None:
    partner, ticket_id, _ = await partner_ticket(client, factory)
    answer = await escalate(client, partner, ticket_id)
    assert answer["status"] == 422, answer
    assert answer["type"] == "urn:helpdesk:problem:not-configured"
    assert "routing.default_escalation_group" in str(answer["detail"])
    assert await db.fetchval("SELECT count(*) FROM ticket_events WHERE action = 'escalated'") == 0


async def test_the_deployments_default_internal_group_takes_it(
    factory: Factory, db: asyncpg.Connection, settings: Settings, passwords: Passwords
) -> None:
    configured = structs.replace(
        settings, routing=structs.replace(settings.routing, default_escalation_group="Podpora")
    )
    async with serve(create_app(configured, passwords)) as client:
        partner, ticket_id, internal = await partner_ticket(client, factory)
        answer = await escalate(client, partner, ticket_id)
        assert answer["status"] == 200, answer
        assert answer["group_id"] == internal
        assert (
            await db.fetchval("SELECT group_id FROM tickets WHERE id = $1", ticket_id) == internal
        )


async def test_a_default_that_is_no_internal_group_is_a_configuration_error(
    client: Client, factory: Factory, settings: Settings, passwords: Passwords
) -> None:
    partner, ticket_id, _ = await partner_ticket(client, factory)
    for name in ("Neexistuje", "Outsourcing"):  # unknown; a first-line team
        configured = structs.replace(
            settings, routing=structs.replace(settings.routing, default_escalation_group=name)
        )
        async with serve(create_app(configured, passwords)) as other:
            answer = await escalate(other, partner, ticket_id)
        assert answer["status"] == 422, answer
        assert "routing.default_escalation_group" in str(answer["detail"])


async def test_the_group_routing_named_comes_first(
    client: Client, factory: Factory, db: asyncpg.Connection
) -> None:
    partner, ticket_id, internal = await partner_ticket(client, factory)
    await db.execute(
        "UPDATE tickets SET escalation_group_id = $2 WHERE id = $1", ticket_id, internal
    )
    answer = await escalate(client, partner, ticket_id)
    assert answer["status"] == 200, answer
    assert answer["group_id"] == internal
