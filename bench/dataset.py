# ruff: noqa: S311 - seeded generators for reproducible synthetic data, not secrets
"""Synthetic but plausible data: Czech customer messages, and fast loading with COPY.

Word frequencies are fixed so that search queries have known selectivity: "děkuji"
appears in most messages (a common term), "reklamace" and "vrácení" in a few percent
(typical queries; customers often write them without diacritics), "kompresor" in about
one message in a thousand (a rare term).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

GREETINGS = ["Dobrý den,", "Dobrý den", "Zdravím,", "Ahoj,", "Dobrý večer,"]
TOPICS = [
    "objednávka {n} stále nedorazila, kdy ji můžu čekat?",
    "chtěla bych změnit adresu doručení u objednávky {n}.",
    "jak dlouho trvá doručení na Slovensko?",
    "platba kartou u objednávky {n} neprošla, můžete to prosím zkontrolovat?",
    "mám dotaz k faktuře {n}, chybí na ní IČO.",
    "zboží přišlo poškozené, krabice byla promáčknutá.",
    "kdy bude znovu skladem pračka, kterou jsem si vybral?",
    "potřebuji poradit s nastavením aplikace v telefonu.",
    "můžete mi poslat návod k obsluze v češtině?",
    "dostal jsem jinou barvu, než jsem objednal.",
]
COMPLAINTS = [
    "chci podat reklamaci, výrobek po týdnu přestal fungovat.",
    "reklamace objednávky {n}: displej je prasklý.",
    "reklamace - nefunguje nabíjení, prosím o výměnu.",
    "reklamace zboží, které přišlo rozbité",
]
RETURNS = [
    "prosím o vrácení peněz za objednávku {n}.",
    "chci zboží vrátit, jak probíhá vrácení?",
    "vraceni zbozi do 14 dnu - kam mam balik poslat?",
    "zadam o vraceni penez, zbozi jsem uz odeslal zpet.",
]
RARE = ["kompresor v lednici hlučí a cvaká."]
CLOSINGS = ["Děkuji.", "Děkuji za odpověď.", "Dekuji, Jana", "S pozdravem a díky", "Děkuji moc!"]
NAMES = ["Jana Nováková", "Petr Svoboda", "Eva Dvořáková", "Tomáš Černý", "Lucie Procházková"]


def customer_text(rng: random.Random) -> str:
    """One customer message; a fixed mix of topics (see the module docstring)."""
    n = rng.randint(100000, 999999)
    roll = rng.random()
    if roll < 0.001:
        topic = rng.choice(RARE)
    elif roll < 0.05:
        topic = rng.choice(COMPLAINTS)
    elif roll < 0.10:
        topic = rng.choice(RETURNS)
    else:
        topic = rng.choice(TOPICS)
    closing = rng.choice(CLOSINGS) if rng.random() < 0.8 else "S pozdravem"
    return f"{rng.choice(GREETINGS)} {topic.format(n=n)} {closing}"


def agent_text(rng: random.Random) -> str:
    return rng.choice(
        [
            "Dobrý den, děkujeme za zprávu, podíváme se na to a ozveme se.",
            "Dobrý den, objednávka je na cestě, doručení očekáváme zítra.",
            "Dobrý den, reklamaci jsme přijali, výsledek vám pošleme e-mailem.",
            "Dobrý den, peníze vám vrátíme do 14 dnů.",
        ]
    )


async def copy(
    conn: asyncpg.Connection, table: str, columns: list[str], rows: Iterator[tuple[Any, ...]]
) -> int:
    """COPY `rows` into `table` in batches; returns how many were written."""
    written = 0
    batch: list[tuple[Any, ...]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= 50_000:
            await conn.copy_records_to_table(table, records=batch, columns=columns)
            written += len(batch)
            batch = []
    if batch:
        await conn.copy_records_to_table(table, records=batch, columns=columns)
        written += len(batch)
    return written


async def next_id(conn: asyncpg.Connection, table: str) -> int:
    """The id the next row of `table` will get (identity columns, no concurrent writers)."""
    value: int = await conn.fetchval(f"SELECT coalesce(max(id), 0) + 1 FROM {table}")
    return value


async def load_customers(conn: asyncpg.Connection, count: int) -> range:
    first = await next_id(conn, "customers")
    rng = random.Random(1)
    rows = (
        (rng.choice(NAMES), f"bench.customer{first + i}@example.cz", "cs") for i in range(count)
    )
    await copy(conn, "customers", ["name", "email", "language"], rows)
    return _contiguous(first, count, await next_id(conn, "customers"))


def _contiguous(first: int, count: int, after: int) -> range:
    if after != first + count:
        raise RuntimeError("COPY did not produce contiguous ids (a concurrent writer?)")
    return range(first, first + count)


async def load_agents(conn: asyncpg.Connection, count: int, group_ids: list[int]) -> list[int]:
    """Agents without passwords (tokens are issued apart), offline, in the given groups."""
    first = await next_id(conn, "agents")
    rows = (
        (f"bench.agent{first + i}@example.cz", f"Agent {first + i}", "agent") for i in range(count)
    )
    await copy(conn, "agents", ["email", "name", "role"], rows)
    ids = list(_contiguous(first, count, await next_id(conn, "agents")))
    memberships = ((agent_id, group_ids[i % len(group_ids)]) for i, agent_id in enumerate(ids))
    await copy(conn, "agent_groups", ["agent_id", "group_id"], memberships)
    return ids


STATUSES = ["new"] * 10 + ["open"] * 40 + ["pending"] * 20 + ["on_hold"] * 5 + ["closed"] * 25
CHANNELS = ["email"] * 40 + ["telegram"] * 20 + ["webchat"] * 15 + ["api"] * 25


async def load_tickets(
    conn: asyncpg.Connection,
    count: int,
    customers: range,
    group_ids: list[int],
    agent_ids: list[int],
    *,
    days: int = 365,
) -> range:
    """Routed tickets spread over `days` (so neither routing nor the SLA sweep picks
    them up), in a realistic mix of statuses, channels, groups and assignees."""
    first = await next_id(conn, "tickets")
    rng = random.Random(2)
    now = datetime.now(UTC)
    step = timedelta(days=days) / max(count, 1)
    start = now - timedelta(days=days)

    def rows() -> Iterator[tuple]:  # type: ignore[type-arg]
        for i in range(count):
            created = start + step * i
            status = rng.choice(STATUSES)
            assignee = None if status == "new" or rng.random() < 0.2 else rng.choice(agent_ids)
            subject = rng.choice(TOPICS).format(n=rng.randint(100000, 999999))[:120]
            yield (
                subject,
                status,
                rng.choice(CHANNELS),
                customers[i % len(customers)],
                rng.choice(group_ids),
                assignee,
                created,
                created,
                created,
                "cs",
            )

    columns = [
        "subject",
        "status",
        "channel",
        "customer_id",
        "group_id",
        "assignee_id",
        "created_at",
        "updated_at",
        "routed_at",
        "language",
    ]
    await copy(conn, "tickets", columns, rows())
    return _contiguous(first, count, await next_id(conn, "tickets"))


async def load_messages(
    conn: asyncpg.Connection, count: int, tickets: range, customers: range, agent_ids: list[int]
) -> None:
    """`count` messages over `tickets`, alternating customer and agent, in ticket order."""
    rng = random.Random(3)
    per_ticket = max(1, count // len(tickets))
    now = datetime.now(UTC)
    start = now - timedelta(days=365)
    step = timedelta(days=365) / len(tickets)

    def rows() -> Iterator[tuple]:  # type: ignore[type-arg]
        written = 0
        for index, ticket_id in enumerate(tickets):
            n = per_ticket if index < len(tickets) - 1 else count - written
            created = start + step * index
            for k in range(n):
                inbound = k % 2 == 0
                yield (
                    ticket_id,
                    "inbound" if inbound else "outbound",
                    "public",
                    None if inbound else rng.choice(agent_ids),
                    customers[index % len(customers)] if inbound else None,
                    "email",
                    customer_text(rng) if inbound else agent_text(rng),
                    created + timedelta(minutes=k),
                    None if inbound else "sent",
                )
            written += n

    columns = [
        "ticket_id",
        "direction",
        "kind",
        "author_agent_id",
        "author_customer_id",
        "channel",
        "body_text",
        "created_at",
        "delivery_status",
    ]
    await copy(conn, "messages", columns, rows())
