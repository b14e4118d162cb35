"""`helpdesk agent create`: the first agents, from the command line."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys

from helpdesk.cli.servers import embedded_servers, run_migrations
from helpdesk.config import ConfigError, Settings
from helpdesk.db.pool import connect


async def _create_agent(settings: Settings, args: argparse.Namespace, password: str | None) -> str:
    from helpdesk.agents import queries, service
    from helpdesk.agents.models import AgentCreate
    from helpdesk.agents.passwords import Passwords

    conn = await connect(settings.database_url)
    try:
        async with conn.transaction():
            group_ids = []
            for name in args.group or []:
                group_id = await conn.fetchval(queries.GROUP_ID_BY_NAME, name)
                if group_id is None:
                    raise ConfigError(f"no group named {name!r}")
                group_ids.append(group_id)
            agent = await service.create_agent(
                conn,
                Passwords(settings.auth),
                AgentCreate(
                    email=args.email,
                    name=args.name or args.email,
                    role=args.role,
                    password=password,
                    group_ids=group_ids,
                ),
            )
            token, _ = await service.issue_token(conn, agent.id, settings.auth.token_ttl_hours)
        return token
    finally:
        await conn.close()


def cmd_agent_create(settings: Settings, args: argparse.Namespace) -> int:
    import msgspec

    from helpdesk.errors import HelpdeskError

    password = None
    if args.password_stdin:
        password = (
            sys.stdin.readline().rstrip("\n") if not sys.stdin.isatty() else getpass.getpass()
        )
    with embedded_servers(settings, redis=False) as resolved:
        asyncio.run(run_migrations(resolved))
        try:
            token = asyncio.run(_create_agent(resolved, args, password))
        except (HelpdeskError, msgspec.ValidationError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    print(token)
    print("(the token is shown only once)", file=sys.stderr)
    return 0
