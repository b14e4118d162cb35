"""Every operation of the OpenAPI document, fuzzed by schemathesis against the real
server (uvicorn on loopback, real PostgreSQL and Redis), as an admin and as a partner.

The answer to every generated request, valid or not, must be documented: no status
>= 500, no status, media type or body the document does not describe. The data is
seeded so that ids hit real objects (a ticket with `faktura_č.pdf`, a customer with
orders, a received mail), and generation is derandomized so CI runs are repeatable.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import hypothesis
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import strategies as st
from msgspec import structs
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from helpdesk.agents import service as agents
from helpdesk.agents.passwords import Passwords
from helpdesk.app import create_app
from helpdesk.config import Settings
from tests.conftest import Factory, serve

# Examples per operation, per role and generation mode: the whole run stays within a
# few minutes on two slow CPUs.
EXAMPLES = 8
# Stateful scenarios (create -> read -> update along the links) per role.
CHAINS = 20
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# A raw mail is bytes on the wire, like any binary body.
schemathesis.serializer.alias("message/rfc822", "application/octet-stream")
STREAMS = ("streamTickets", "streamSla", "streamChatEvents")
# Operations that end the caller's session run last, so they cost the others nothing.
LAST = ("/auth/logout", "/auth/password", "/agents/{agent_id}")

MAIL = (
    b"From: Jana Novakova <jana@example.test>\r\nTo: support@example.test\r\n"
    b"Subject: Faktura\r\nMessage-ID: <fuzz-1@example.test>\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n\r\nDobry den, posilam fakturu.\r\n"
)


@dataclass
class Known:
    """Ids of real objects, by parameter name, for the fuzzer to draw from."""

    ids: dict[str, list[Any]] = field(default_factory=dict)

    def add(self, name: str, value: Any) -> None:
        self.ids.setdefault(name, []).append(value)


@dataclass
class Failure:
    operation: str
    role: str
    status: int
    message: str


async def _seed(client: Any, factory: Factory, db: asyncpg.Connection) -> tuple[Known, int, int]:
    known = Known()
    group = await factory.group("Partners")
    known.add("group_id", group)
    admin = await factory.agent("admin")
    partner = await factory.agent("partner", group_ids=[group])
    known.add("agent_id", admin.id)
    known.add("agent_id", partner.id)
    for who in (admin, partner):
        ticket = await factory.ticket(client, who, group_id=group)
        known.add("ticket_id", ticket["id"])
        known.add("customer_id", ticket["customer_id"])
        reply = await client.post(
            f"/tickets/{ticket['id']}/notes",
            json={
                "text": "Invoice attached",
                "attachments": [
                    {
                        "filename": "faktura_č.pdf",
                        "content_type": "application/pdf",
                        "content": base64.b64encode(b"%PDF-1.4 fuzz").decode(),
                    }
                ],
            },
            headers=who.headers,
        )
        assert reply.status_code == 201, reply.text
    upsert = await client.post(
        "/customers/upsert",
        json={
            "external_id": "shop-1",
            "name": "Jana Nováková",
            "email": "jana@example.test",
            "orders": [{"external_id": "o-1", "ordered_at": "2026-11-02T10:00:00+01:00"}],
        },
        headers=admin.headers,
    )
    assert upsert.status_code == 200, upsert.text
    known.add("customer_id", upsert.json()["customer_id"])
    account = await client.post(
        "/channels/email/accounts",
        json={"name": "support", "address": "support@example.test", "inbound_secret": "s" * 32},
        headers=admin.headers,
    )
    assert account.status_code == 201, account.text
    known.add("name", "support")
    known.add("account", "support")
    mail = await client.post(
        "/channels/email/support/inbound",
        content=MAIL,
        headers={"Authorization": "Bearer " + "s" * 32, "Content-Type": "message/rfc822"},
    )
    assert mail.status_code == 200, mail.text
    # One account of every chat kind, so webhooks and web chat reach real adapters.
    for kind in ("telegram", "slack", "whatsapp", "messenger", "instagram", "webchat"):
        made = await client.post(
            "/channels/accounts",
            json={"kind": kind, "name": "shop", "secrets": {}},
            headers=admin.headers,
        )
        if made.status_code == 201:
            known.add("kind", kind)
    known.add("account", "shop")
    for row in await db.fetch("SELECT id FROM messages"):
        known.add("message_id", row["id"])
    for row in await db.fetch("SELECT id FROM attachments"):
        known.add("attachment_id", row["id"])
    for row in await db.fetch("SELECT id FROM email_quarantine"):
        known.add("entry_id", row["id"])
    for table, name in (
        ("sla_calendars", "calendar_id"),
        ("sla_policies", "policy_id"),
        ("routing_rules", "rule_id"),
        ("reply_templates", "template_id"),
    ):
        for row in await db.fetch(f"SELECT id FROM {table}"):
            known.add(name, row["id"])
    return known, admin.id, partner.id


def document_operations(document: dict[str, Any]) -> list[str]:
    methods = ("get", "put", "post", "patch", "delete")
    return [
        f"{method.upper()} {path}"
        for path, item in document["paths"].items()
        for method in item
        if method in methods
    ]


def _with_known_ids(value: Any, known: Known, draw: Callable[[Any], Any]) -> Any:
    """Replace some `*_id` values of a JSON body with ids of real objects."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key in known.ids and isinstance(item, int) and not isinstance(item, bool):
                item = draw(st.sampled_from([item, *known.ids[key]]))
            else:
                item = _with_known_ids(item, known, draw)
            out[key] = item
        return out
    if isinstance(value, list):
        return [_with_known_ids(item, known, draw) for item in value]
    return value


@dataclass
class Run:
    base_url: str
    known: Known
    session: requests.Session = field(default_factory=requests.Session)
    failures: list[Failure] = field(default_factory=list)
    calls: int = 0
    chain_calls: int = 0
    seconds: dict[str, float] = field(default_factory=dict)

    def operation(self, operation: Any, role: str, token: str, mode: GenerationMode) -> None:
        """Up to EXAMPLES generated requests; every undocumented answer is recorded."""
        headers = {"Authorization": f"Bearer {token}"}
        label = f"{operation.method.upper()} {operation.path}"
        # An event stream never ends: read what comes within a moment, from fewer cases.
        stream = operation.definition.raw.get("operationId") in STREAMS
        call_options: dict[str, Any] = {"timeout": 2} if stream else {}

        @hypothesis.settings(
            max_examples=2 if stream else EXAMPLES,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode), data=st.data())
        def run(case: Any, data: st.DataObject) -> None:
            for name, value in list((case.path_parameters or {}).items()):
                if name in self.known.ids:
                    case.path_parameters[name] = data.draw(
                        st.sampled_from([*self.known.ids[name], value])
                    )
            if isinstance(case.body, dict | list):
                case.body = _with_known_ids(case.body, self.known, data.draw)
            response = case.call(
                base_url=self.base_url, session=self.session, headers=headers, **call_options
            )
            self.calls += 1
            try:
                case.validate_response(response, checks=CHECKS, headers=headers)
            except FailureGroup as group:
                for failure in group.exceptions:
                    self.failures.append(
                        Failure(
                            label,
                            role,
                            response.status_code,
                            f"{failure.title}: {failure.message}"[:600]
                            + f"\n  body: {response.text[:300]!r}",
                        )
                    )

        started = time.monotonic()
        try:
            run()
        except hypothesis.errors.Unsatisfiable:
            # Nothing to make invalid (no parameters, no body): positive data only.
            assert mode is GenerationMode.NEGATIVE
        self.seconds[label] = self.seconds.get(label, 0.0) + time.monotonic() - started

    def chains(self, schema: Any, role: str, token: str) -> None:
        """Stateful: create, then follow the document's links to read and update."""
        headers = {"Authorization": f"Bearer {token}"}
        run = self

        class Chain(schema.as_state_machine()):  # type: ignore[misc]
            def get_call_kwargs(self, case: Any) -> dict[str, Any]:
                stream = case.operation.definition.raw.get("operationId") in STREAMS
                options = {"timeout": 2} if stream else {}
                return {"base_url": run.base_url, "headers": headers, **options}

            def validate_response(self, response: Any, case: Any, *args: Any, **kw: Any) -> None:
                run.calls += 1
                run.chain_calls += 1
                try:
                    case.validate_response(response, checks=CHECKS, headers=headers)
                except FailureGroup as group:
                    for failure in group.exceptions:
                        run.failures.append(
                            Failure(
                                f"chain {case.method.upper()} {case.operation.path}",
                                role,
                                response.status_code,
                                f"{failure.title}: {failure.message}"[:600]
                                + f"\n  body: {response.text[:300]!r}",
                            )
                        )

        started = time.monotonic()
        Chain.run(
            settings=hypothesis.settings(
                max_examples=CHAINS,
                stateful_step_count=6,
                derandomize=True,
                database=None,
                deadline=None,
                phases=[Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
        )
        self.seconds[f"chains as {role}"] = time.monotonic() - started


def _fuzz(document: dict[str, Any], run: Run, login: Callable[[str], str]) -> None:
    # One event of a stream is enough to check its status and media type.
    config = schemathesis.Config.from_dict({"max-stream-events": 1, "request-timeout": 60})
    schema = schemathesis.openapi.from_dict(document, config=config)
    operations = [result.ok() for result in schema.get_all_operations()]
    operations.sort(key=lambda op: (op.path in LAST, op.path, op.method))
    for operation in operations:
        for role in ("admin", "partner"):
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                run.operation(operation, role, login(role), mode)
    for role in ("admin", "partner"):
        run.chains(schema, role, login(role))


async def test_every_operation_answers_as_documented(
    db: asyncpg.Connection, settings: Settings, passwords: Passwords, factory: Factory
) -> None:
    # The id-walking budget would turn most of the run into 429s.
    fuzz_settings = structs.replace(
        settings, auth=structs.replace(settings.auth, not_found_limit=1_000_000)
    )
    async with serve(create_app(fuzz_settings, passwords)) as client:
        known, admin_id, partner_id = await _seed(client, factory, db)
        document = (await client.get("/schema/openapi.json")).json()
        loop = asyncio.get_running_loop()

        async def fresh_token(role: str) -> str:
            agent_id = admin_id if role == "admin" else partner_id
            await db.execute(
                "UPDATE agents SET active = true, role = $2 WHERE id = $1", agent_id, role
            )
            token, _ = await agents.issue_token(db, agent_id, 1)
            return token

        def login(role: str) -> str:
            coro: Coroutine[Any, Any, str] = fresh_token(role)
            return asyncio.run_coroutine_threadsafe(coro, loop).result()

        run = Run(str(client.base_url), known)
        await asyncio.to_thread(_fuzz, document, run, login)
    slowest = sorted(run.seconds.items(), key=lambda item: -item[1])[:5]
    print("slowest operations:", ", ".join(f"{label} {s:.1f}s" for label, s in slowest))
    report = "\n".join(
        f"{f.operation} as {f.role} -> {f.status}: {f.message}" for f in run.failures
    )
    print(f"{run.calls} requests, {run.chain_calls} of them in chains")
    assert len(run.seconds) == len(document_operations(document)) + 2
    assert run.chain_calls > 0
    assert not run.failures, f"{len(run.failures)} undocumented answers of {run.calls}:\n{report}"
