"""Seed a demo into an empty database: groups, one agent of each role, customers, tickets."""

from __future__ import annotations

import asyncpg

from helpdesk.agents import service as agents
from helpdesk.agents.models import AgentCreate, GroupCreate, Principal, Role
from helpdesk.agents.passwords import Passwords
from helpdesk.channels.email.accounts import EmailAccountCreate, create_account
from helpdesk.config import SlaSettings
from helpdesk.demo import queries
from helpdesk.tickets import opening
from helpdesk.tickets.models import Category, CustomerRef, TicketCreate

DEMO_PASSWORD = "helpdesk-demo"  # noqa: S105 - printed on purpose: local demo only
DEMO_DOMAIN = "demo.helpdesk.test"
# Secret of the demo email account's raw intake endpoint (local demo only).
DEMO_INBOUND_SECRET = "helpdesk-demo-inbound-secret"  # noqa: S105 - printed on purpose

_TICKETS: list[tuple[str, str, str, str, Category, str]] = [
    (
        "Reklamace: rozbitý hrnek",
        "Dobrý den, hrnek dorazil rozbitý. Chci reklamovat zboží.",
        "jana.novakova@example.cz",
        "Jana Nováková",
        "complaint",
        "Complaints",
    ),
    (
        "Kde je moje objednávka 2024-118?",
        "Objednávka stále nedorazila, můžete to prověřit?",
        "petr.svoboda@example.cz",
        "Petr Svoboda",
        "order",
        "Support",
    ),
    (
        "Vrátenie tovaru",
        "Dobrý deň, chcel by som vrátiť topánky, sú malé.",
        "marek.horvath@example.sk",
        "Marek Horváth",
        "return",
        "First line",
    ),
    (
        "Question about delivery to Austria",
        "Do you ship to Vienna and how long does it take?",
        "anna.gruber@example.at",
        "Anna Gruber",
        "question",
        "First line",
    ),
]


async def seed_demo(conn: asyncpg.Connection, passwords: Passwords, sla: SlaSettings) -> bool:
    """Seed once: does nothing (returns False) when any agent exists."""
    async with conn.transaction():
        await conn.execute(queries.LOCK_AGENTS)
        if await conn.fetchval(queries.COUNT_AGENTS):
            return False
        groups = {
            name: (await agents.create_group(conn, GroupCreate(name=name, description=desc))).id
            for name, desc in (
                ("Support", "Orders and general questions"),
                ("Complaints", "Complaints and returns handled in-house"),
                ("First line", "Outsourced first-line team"),
            )
        }
        admin = None
        members: list[tuple[Role, list[str]]] = [
            ("admin", ["Support", "Complaints"]),
            ("supervisor", ["Support", "Complaints", "First line"]),
            ("agent", ["Support", "Complaints"]),
            ("partner", ["First line"]),
        ]
        for role, group_names in members:
            agent = await agents.create_agent(
                conn,
                passwords,
                AgentCreate(
                    email=f"{role}@{DEMO_DOMAIN}",
                    name=f"Demo {role.capitalize()}",
                    role=role,
                    password=DEMO_PASSWORD,
                    group_ids=[groups[g] for g in group_names],
                ),
            )
            if role == "admin":
                admin = Principal(agent.id, "admin", tuple(agent.group_ids), b"")
        assert admin is not None
        await create_account(
            conn,
            EmailAccountCreate(
                name="support",
                address=f"support@{DEMO_DOMAIN}",
                display_name="Demo Support",
                inbound_secret=DEMO_INBOUND_SECRET,
            ),
        )
        for subject, text, email, name, category, group in _TICKETS:
            await opening.create_ticket(
                conn,
                admin,
                TicketCreate(
                    subject=subject,
                    text=text,
                    customer=CustomerRef(email=email, name=name),
                    category=category,
                    group_id=groups[group],
                ),
                sla=sla,
            )
    return True
