"""A merge moves every row that references the merged customer, whatever the table.

The list of tables comes from the database's own foreign keys, so a table added later
that references customers fails here until the merge handles it.
"""

from __future__ import annotations

import asyncpg

from helpdesk.channels.adapter import SenderIdentity
from helpdesk.customers.merge import MOVED_BY_THEMSELVES, MOVED_WITH_THE_CUSTOMER
from tests.conftest import Client, Factory
from tests.customers.test_customer_merge import T0, chat_message, merge

FOREIGN_KEYS = """
    SELECT c.conrelid::regclass::text AS table_name, a.attname AS column_name
    FROM pg_constraint c
    JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)
    WHERE c.contype = 'f' AND c.confrelid = 'customers'::regclass
"""


async def references(db: asyncpg.Connection) -> list[tuple[str, str]]:
    return sorted((r["table_name"], r["column_name"]) for r in await db.fetch(FOREIGN_KEYS))


async def test_merge_handles_every_foreign_key_to_customers(db: asyncpg.Connection) -> None:
    found = await references(db)
    assert found, "no foreign keys found: the query is wrong"
    handled = sorted(MOVED_BY_THEMSELVES + MOVED_WITH_THE_CUSTOMER)
    assert found == handled, (
        "Tables referencing customers and the merge's list differ; add the new table to "
        "helpdesk.customers.merge.MOVED_WITH_THE_CUSTOMER (or move it explicitly)"
    )


async def test_merging_a_customer_with_orders_moves_every_referencing_row(
    client: Client, factory: Factory, db: asyncpg.Connection
) -> None:
    agent = await factory.agent("agent")
    target = (await factory.ticket(client, agent))["customer_id"]
    # The source: a Telegram customer (identity, ticket, message, conversation) with
    # orders from the shop, a stage history, a bad experience and an answered survey.
    stored = await chat_message(
        db, "telegram", SenderIdentity(external_id="tg-7", display_name="Jana")
    )
    source = await db.fetchval("SELECT customer_id FROM tickets WHERE id = $1", stored.ticket_id)
    await db.execute(
        """INSERT INTO customer_orders (customer_id, external_id, ordered_at, total)
           VALUES ($1, 'o-1', $2, 100), ($1, 'o-2', $2, 200)""",
        source,
        T0,
    )
    await db.execute(
        """INSERT INTO customer_stage_history (customer_id, from_stage, to_stage, cause)
           VALUES ($1, 'prospect', 'repeat', 'orders')""",
        source,
    )
    await db.execute(
        "INSERT INTO bad_experiences (customer_id, ticket_id, kind) VALUES ($1, $2, 'reopened')",
        source,
        stored.ticket_id,
    )
    await db.execute(
        """INSERT INTO csat_surveys (ticket_id, customer_id, channel, status, send_after,
                                     rating, answered_at)
           VALUES ($1, $2, 'telegram', 'answered', $3, 2, $3)""",
        stored.ticket_id,
        source,
        T0,
    )
    tables = await references(db)
    before = {}
    for table, column in tables:
        count = await db.fetchval(f"SELECT count(*) FROM {table} WHERE {column} = $1", source)
        assert count > 0, f"the test gives the source no {table} row: add one"
        before[(table, column)] = count + await db.fetchval(
            f"SELECT count(*) FROM {table} WHERE {column} = $1", target
        )

    response = await merge(client, agent, source, target)

    assert response.status_code == 200, response.text
    assert await db.fetchval("SELECT count(*) FROM customers WHERE id = $1", source) == 0
    for table, column in tables:
        after = await db.fetchval(f"SELECT count(*) FROM {table} WHERE {column} = $1", target)
        if table == "customer_stage_history":  # plus the stage the orders now give it
            assert after == before[(table, column)] + 1, table
        else:
            assert after == before[(table, column)], table
    merged = response.json()["customer"]
    assert merged["csat_count"] == 1
    assert merged["csat_average"] == 2.0
    # Two orders now belong to the target: its derived stage says so.
    assert merged["lifecycle_stage"] != "prospect"
