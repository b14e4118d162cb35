"""The raw SQL ingest transaction: the baseline of the ingestion scenario.

What storing one inbound message costs when issued directly through asyncpg, with no
HTTP, parsing, queue or worker: dedupe insert, identity lookup (and creation),
conversation (thread) match, ticket insert or update, message, event and a router
outbox row, in one transaction. Used in-process (`raw_ingest_run`) and behind a
minimal HTTP endpoint (`bench.baseline_app`, what HTTP alone adds).
"""

from __future__ import annotations

import asyncpg

ACCOUNT = "bench"  # the Telegram account of the ingestion scenario

RAW_CHANNEL = "bench-raw"


async def ingest_one(
    conn: asyncpg.Connection, account_id: int, number: int, chat: int, text: str
) -> None:
    """One inbound message stored the way the service stores it, in plain SQL."""
    external_id = f"{chat}:{number}"
    async with conn.transaction():
        fresh = await conn.fetchval(
            """INSERT INTO inbound_events (account_id, dedupe_key, payload, status)
               VALUES ($1, $2, $3, 'processed')
               ON CONFLICT (account_id, dedupe_key) DO NOTHING RETURNING id""",
            account_id,
            f"raw:{number}",
            text.encode(),
        )
        if fresh is None:
            return
        customer_id = await conn.fetchval(
            """SELECT customer_id FROM customer_identities
               WHERE channel = $1 AND channel_account = $2 AND external_id = $3""",
            RAW_CHANNEL,
            ACCOUNT,
            str(chat),
        )
        if customer_id is None:
            customer_id = await conn.fetchval(
                "INSERT INTO customers (name) VALUES ($1) RETURNING id", f"Zákazník {chat}"
            )
            await conn.execute(
                """INSERT INTO customer_identities
                       (customer_id, channel, channel_account, external_id, display_name)
                   VALUES ($1, $2, $3, $4, $5)""",
                customer_id,
                RAW_CHANNEL,
                ACCOUNT,
                str(chat),
                f"Zákazník {chat}",
            )
        conversation = await conn.fetchrow(
            """INSERT INTO conversations (channel, channel_account, external_id, customer_id)
               VALUES ($1, $2, $3, $4)
               ON CONFLICT (channel, channel_account, external_id)
               DO UPDATE SET external_id = EXCLUDED.external_id
               RETURNING id, ticket_id""",
            RAW_CHANNEL,
            ACCOUNT,
            str(chat),
            customer_id,
        )
        ticket_id = conversation["ticket_id"]
        if ticket_id is None:
            ticket_id = await conn.fetchval(
                # routed_at set: the routing sweep must leave the baseline's tickets alone.
                """INSERT INTO tickets (subject, channel, channel_account, customer_id,
                                       conversation_id, first_response_due_at, routed_at)
                   VALUES ($1, $2, $3, $4, $5, now() + interval '60 minutes', now())
                   RETURNING id""",
                text[:80],
                RAW_CHANNEL,
                ACCOUNT,
                customer_id,
                conversation["id"],
            )
            await conn.execute(
                "UPDATE conversations SET ticket_id = $2 WHERE id = $1",
                conversation["id"],
                ticket_id,
            )
        else:
            await conn.execute(
                "UPDATE tickets SET updated_at = now(), version = version + 1 WHERE id = $1",
                ticket_id,
            )
        message_id = await conn.fetchval(
            """INSERT INTO messages (ticket_id, direction, kind, author_customer_id, channel,
                                     channel_account, external_id, body_text)
               VALUES ($1, 'inbound', 'public', $2, $3, $4, $5, $6) RETURNING id""",
            ticket_id,
            customer_id,
            RAW_CHANNEL,
            ACCOUNT,
            external_id,
            text,
        )
        await conn.execute(
            "INSERT INTO ticket_events (ticket_id, action, changes) VALUES ($1, $2, $3)",
            ticket_id,
            "customer_message",
            {"message_id": message_id},
        )
        await conn.execute("INSERT INTO bench_router_outbox (ticket_id) VALUES ($1)", ticket_id)
