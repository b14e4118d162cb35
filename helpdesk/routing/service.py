"""Routing a ticket: classify it, choose its group (the first-line team first for the
categories it takes), assign it, and acknowledge it to the customer. Once per ticket.

`route(conn, ticket_id)` runs in the worker inside one transaction with the ticket row
locked; `routed_at` marks it done, so a second run (a redelivered job, the sweep after a
killed worker) changes nothing. What a ticket already has is kept: a category set by an
agent or the API is not re-classified, a group chosen at creation is not replaced.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import msgspec

from helpdesk.agents.models import Principal
from helpdesk.channels import catalogue, outbox
from helpdesk.config import Settings
from helpdesk.errors import Conflict, Forbidden, InvalidInput, NotConfigured
from helpdesk.routing import assign, classify, queries
from helpdesk.routing.classification_rules import ClassificationRules, default_rules
from helpdesk.routing.models import Availability
from helpdesk.routing.rules import RoutingFacts, RoutingRule, choose
from helpdesk.sla import refresh as sla_refresh
from helpdesk.tickets import writer
from helpdesk.tickets.queries import get_in_scope

log = logging.getLogger(__name__)

# Channels an automatic acknowledgement goes out on here (email acknowledges on receipt;
# API and phone tickets have no written channel to the customer).
ACK_CHANNELS = catalogue.kinds_with(lambda c: c.acknowledgement == "when_routed")


@dataclass
class Routed:
    ticket_id: int
    group_id: int | None
    assignee_id: int | None
    outbox_ids: list[int]
    # What the rule counters get (`count_hits`, after the routing transaction).
    classification_hits: list[str] = field(default_factory=list)
    rule_id: int | None = None


async def classification_rules(conn: asyncpg.Connection) -> ClassificationRules:
    """The admin-edited rules, else the shipped defaults."""
    stored = await conn.fetchval(queries.CLASSIFICATION_RULES)
    return _classification_rules(stored)


def _classification_rules(stored: Any) -> ClassificationRules:
    if stored is None:
        return default_rules()
    return msgspec.convert(stored, ClassificationRules)


@dataclass(frozen=True)
class _RoutingConfig:
    classification: ClassificationRules
    rules: list[RoutingRule]
    first_line: list[tuple[int, list[str]]]  # (group id, categories), lowest id first

    def first_line_group(self, category: str | None) -> int | None:
        return next((g for g, categories in self.first_line if category in categories), None)


async def _config(conn: asyncpg.Connection) -> _RoutingConfig:
    row = await conn.fetchrow(queries.CONFIG)
    return _RoutingConfig(
        classification=_classification_rules(row["classification"]),
        rules=[msgspec.convert(r, RoutingRule) for r in row["rules"]],
        first_line=[(int(g), list(categories)) for g, categories in row["first_line"]],
    )


async def route(conn: asyncpg.Connection, ticket_id: int, settings: Settings) -> Routed | None:
    """Route one ticket (in the caller's transaction); None if it was routed already."""
    ticket = await conn.fetchrow(queries.TICKET_TO_ROUTE, ticket_id)
    if ticket is None:
        return None
    text = ticket["first_text"] or ""
    sender = ticket["first_sender"]
    customer = ticket["customer"]
    config = await _config(conn)
    result = classify.classify(
        config.classification, ticket["subject"], text, ticket["channel"], sender
    )
    category = ticket["category"]
    updates: dict[str, Any] = {}
    classification_hits: list[str] = []  # counted when the classifier chose the category
    if category is None:
        category = result.category
        updates |= {
            "category": category,
            "category_confidence": result.confidence,
            "category_reason": result.reason,
            "category_source": "classifier",
        }
        classification_hits = sorted(set(result.matched_rules))
    language = _language(ticket["language"], customer, result.language)
    updates["language"] = language
    facts = RoutingFacts(
        category=category,
        language=language,
        channel=ticket["channel"],
        subject=ticket["subject"],
        text=text,
        customer={k: v for k, v in dict(customer or {}).items() if k != "id"},
    )
    chosen = choose(config.rules, facts)
    reason = "no routing rule matched"
    group_id = ticket["group_id"]
    internal_group = None
    if chosen is not None:
        rule, reason = chosen
        internal_group = rule.group_id
        if rule.priority is not None and ticket["priority"] == "normal":
            updates["priority"] = rule.priority
        if rule.tags:
            updates["tags"] = sorted(set(ticket["tags"]) | set(rule.tags))
    if group_id is None:
        first_line = config.first_line_group(category)
        if first_line is not None:
            group_id = first_line
            reason += f"; first line for {category}"
            updates["escalation_group_id"] = internal_group
        else:
            group_id = internal_group
        updates["group_id"] = group_id
    else:
        reason = f"group chosen at creation; {reason}"
    updates |= {"routing_reason": reason}
    now: datetime = ticket["routing_at"]
    # The policy may depend on what routing sets (category, priority, group). Its clocks
    # are computed before the ticket is written, and the acknowledgement (which quotes
    # the first-response due time) is queued, so that one UPDATE writes routing, clocks
    # and acknowledgement: each row version of a ticket costs an entry in every index.
    routed = {**dict(ticket), **updates}
    sla_plan = await sla_refresh.plan_refresh(
        conn, routed, settings.sla, now=now, reselect=True, customer=customer
    )
    routed |= sla_plan.columns
    written = updates | sla_plan.columns
    outbox_ids = []
    acknowledgement = await _acknowledge(conn, routed, settings, now)
    if acknowledgement is not None:
        outbox_ids.append(acknowledgement)
        written["acknowledged_at"] = routed["acknowledged_at"] = now
    changes: dict[str, Any] = {
        "category": category,
        "language": language,
        "confidence": result.confidence if ticket["category"] is None else None,
        "classification": result.reason if ticket["category"] is None else None,
        "group_id": group_id,
    }
    changes |= {k: updates[k] for k in ("priority", "tags") if k in updates}
    await writer.update(
        conn, ticket_id, written | {"routed_at": now}, "routed", changes, reason=reason
    )
    await sla_refresh.apply_refresh(conn, routed, sla_plan, write_ticket=False)
    assignee = await assign.assign(conn, ticket_id) if group_id is not None else None
    return Routed(
        ticket_id,
        group_id,
        assignee,
        outbox_ids,
        classification_hits,
        chosen[0].id if chosen is not None else None,
    )


def _language(
    ticket_language: str | None, customer: Mapping[str, Any] | None, detected: str
) -> str:
    """Whose word decides a ticket's language: the ticket's own (set by an agent), then the
    customer's profile, then what the classifier detected in the first message."""
    return ticket_language or (customer["language"] if customer else None) or detected


async def customer_language(conn: asyncpg.Connection, ticket_id: int) -> str | None:
    """The language the ticket's customer is answered in, decided as routing decides it
    (`_language`), before routing has run: what an acknowledgement on receipt speaks.
    None for an unknown ticket."""
    row = await conn.fetchrow(queries.LANGUAGE_FACTS, ticket_id)
    if row is None:
        return None
    if row["language"]:
        return str(row["language"])
    rules = await classification_rules(conn)
    result = classify.classify(
        rules, row["subject"], row["first_text"] or "", row["channel"], row["first_sender"]
    )
    return _language(None, row["customer"], result.language)


async def count_hits(conn: asyncpg.Connection, routed: Routed) -> None:
    """Count one routing on its classification and routing rules: one statement on its
    own, after the routing transaction committed. Every routing bumps the same few
    counter rows; inside the routing transactions they serialised them all (waits of
    200-370 ms in the ingestion benchmark). A crash between the two loses one count."""
    if not routed.classification_hits and routed.rule_id is None:
        return
    await conn.execute(queries.COUNT_HITS, routed.classification_hits, routed.rule_id)


def acknowledgement_text(template: str, number: int, due: datetime | None, zone: str) -> str:
    when = "" if due is None else due.astimezone(ZoneInfo(zone)).strftime("%d.%m.%Y %H:%M")
    return template.replace("{number}", str(number)).replace("{due}", when)


async def _acknowledge(
    conn: asyncpg.Connection, ticket: Mapping[str, Any], settings: Settings, now: datetime
) -> int | None:
    """The customer's confirmation, once per ticket, on the chat channel they used, in
    their language, with the ticket number and the first-response due time; queued at
    `now` (the caller sets `acknowledged_at`). Returns the outbox id. A ticket a channel
    notice opened (a reaction, a service message: nobody wrote) is not acknowledged."""
    if (
        not settings.routing.acknowledge
        or ticket.get("opened_by_notice")
        or ticket["channel"] not in ACK_CHANNELS
        or ticket["acknowledged_at"] is not None
    ):
        return None
    templates = settings.routing.acknowledgement
    language = ticket["language"] if ticket["language"] in templates else "en"
    template = templates.get(language)
    if not template:
        return None
    due = ticket["first_response_due_at"]
    text = acknowledgement_text(template, ticket["number"], due, settings.sla.timezone)
    # The message and its SLA event (an automatic message meets no clock) at once.
    message_id = await conn.fetchval(
        queries.INSERT_ACKNOWLEDGEMENT,
        ticket["id"],
        ticket["channel"],
        ticket["channel_account"],
        text,
        now,
    )
    return await outbox.add(conn, message_id, ticket["id"], ticket["channel"])


async def unrouted(conn: asyncpg.Connection, limit: int = 500) -> list[int]:
    """Tickets that should have been routed and were not (lost job, killed worker)."""
    rows = await conn.fetch(queries.UNROUTED, limit)
    return [r["id"] for r in rows]


async def set_availability(
    conn: asyncpg.Connection, agent_id: int, availability: Availability
) -> list[int]:
    """The agent's availability; going offline returns their untouched new tickets to the
    group queues where the group says so. Returns those tickets (in the caller's
    transaction; the caller queues the assignment of waiting tickets after it commits)."""
    await conn.execute(queries.SET_AVAILABILITY, agent_id, availability)
    if availability == "offline":
        return await writer.unassign_on_offline(conn, agent_id)
    return []


async def record_category_change(
    conn: asyncpg.Connection, ticket_id: int, old: str | None, new: str | None
) -> None:
    """An agent corrected the category: counted against the classifier when it chose it."""
    source = await conn.fetchval(queries.CATEGORY_SOURCE, ticket_id)
    if source == "classifier" and old is not None and new is not None and old != new:
        await conn.execute(queries.COUNT_CORRECTION, old, new)
    await writer.mark_category_by_agent(conn, ticket_id)


async def _default_escalation_group(conn: asyncpg.Connection, settings: Settings) -> int:
    """The deployment's internal group for escalations that name none (partners cannot
    list internal groups); 422 saying what an admin must configure when there is none."""
    name = settings.routing.default_escalation_group
    how = (
        "an admin must set routing.default_escalation_group to an internal group's name, "
        "or add a routing rule that names the internal group for such tickets"
    )
    if not name:
        raise NotConfigured(f"No internal group to escalate this ticket to: {how}")
    row = await conn.fetchrow(queries.GROUP_BY_NAME, name)
    if row is None or row["first_line_categories"]:
        raise NotConfigured(
            "routing.default_escalation_group does not name an internal group "
            f"(one without first_line_categories): {how}"
        )
    return int(row["id"])


async def escalate(
    conn: asyncpg.Connection,
    principal: Principal,
    ticket_id: int,
    group_id: int | None,
    reason: str,
    settings: Settings,
) -> int:
    """Hand a first-line ticket to an internal group with a reason. The SLA clocks keep
    running from the ticket's start (the customer's wait does not restart).

    Without `group_id`: the group routing named for the ticket, else the deployment's
    `routing.default_escalation_group`."""
    ticket = await get_in_scope(conn, principal, ticket_id, for_update=True)
    if ticket.status == "closed":
        raise Conflict("The ticket is closed")
    row = await conn.fetchrow(queries.TICKET_GROUPS, ticket_id)
    target = group_id or row["escalation_group_id"]
    if target is None:
        target = await _default_escalation_group(conn, settings)
    group = await conn.fetchrow(queries.GROUP, target)
    if group is None:
        raise InvalidInput("Unknown group", field="group_id")
    if group["first_line_categories"]:
        raise Forbidden("Escalate to an internal group, not to a first-line team")
    if target == row["group_id"]:
        raise Conflict("The ticket is in that group already")
    # The row is locked (get_in_scope above): its status is the one the UPDATE would see.
    # A waiting ticket wakes up in its new group.
    status = "open" if ticket.status in ("pending", "on_hold") else ticket.status
    await writer.update(
        conn,
        ticket_id,
        {"group_id": target, "assignee_id": None, "status": status},
        "escalated",
        {"group_id": {"from": row["group_id"], "to": target}},
        actor_agent_id=principal.agent_id,
        reason=reason,
    )
    await sla_refresh.refresh(conn, ticket_id, settings.sla, reselect=True)
    await assign.assign(conn, ticket_id)
    return int(target)
