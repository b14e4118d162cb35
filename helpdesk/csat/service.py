"""Satisfaction surveys: who is asked, when, on which channel, and what a rating does.

The worker's sweep asks about every ticket solved at least `csat.delay_minutes` ago that
has no survey yet: a ticket reopened meanwhile is not solved, so it is not asked (it is
when solved again); the survey row is unique per ticket, so nobody is asked twice. The
question goes out on the ticket's channel through the outbox (email as an automatic
message, so no auto-responder answers it), with a signed link to a one-click rating page.
Tickets opened by auto-submitted mail, and API or phone tickets (no written channel), get
a `cancelled` survey with the reason instead.

A rating (1-5, optional comment) is stored on the survey, the ticket and the customer
(average and count). A rating of 1 or 2 is a bad experience and, per
`csat.low_rating_action`, alerts the group's supervisors and/or reopens the ticket. A
rating of 4 or 5 clears the customer's at-risk flag.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from helpdesk.agents.models import Principal
from helpdesk.channels import catalogue, outbox
from helpdesk.channels.adapter import ButtonPress
from helpdesk.config import Settings
from helpdesk.csat import queries, tokens
from helpdesk.csat.models import CsatResponse
from helpdesk.csat.queries import Dimension
from helpdesk.customers import relationship
from helpdesk.db.signing_keys import signing_key
from helpdesk.errors import Conflict, NotFound
from helpdesk.sla import recording as sla_recording
from helpdesk.sla import refresh as sla_refresh
from helpdesk.tickets import events, writer

KEY_NAME = "csat"
# Channels where the question carries 1-5 buttons (Telegram inline keyboard, Slack blocks).
BUTTON_CHANNELS = catalogue.kinds_with(lambda c: c.csat_buttons)
_PRESS = re.compile(r"^c([1-5]):(.{1,80})$")
ASKABLE = catalogue.kinds_with(lambda c: c.csat_askable)  # every written channel


def link(settings: Settings, token: str) -> str:
    return f"{settings.public_base_url()}/csat/{token}"


async def _skip_reason(conn: asyncpg.Connection, ticket: asyncpg.Record) -> str | None:
    if ticket["channel"] not in ASKABLE:
        return f"no written channel to ask on ({ticket['channel']})"
    auto = await conn.fetchval(queries.OPENED_AUTO_SUBMITTED, ticket["id"])
    if auto:
        return "the ticket was opened by auto-submitted mail"
    return None


async def ask_due(conn: asyncpg.Connection, settings: Settings, limit: int = 200) -> list[int]:
    """Create and queue the surveys that are due; returns the outbox ids to enqueue."""
    if not settings.csat.enabled:
        return []
    rows = await conn.fetch(queries.DUE_TICKETS, settings.csat.delay_minutes, limit)
    queued: list[int] = []
    for row in rows:
        async with conn.transaction():
            outbox_id = await _ask(conn, row["id"], settings)
            if outbox_id is not None:
                queued.append(outbox_id)
    return queued


async def _ask(conn: asyncpg.Connection, ticket_id: int, settings: Settings) -> int | None:
    ticket = await conn.fetchrow(queries.SOLVED_TICKET, ticket_id)
    if ticket is None:
        return None
    stage = await conn.fetchval(queries.CUSTOMER_STAGE, ticket["customer_id"])
    reason = await _skip_reason(conn, ticket)
    now: datetime = await conn.fetchval(queries.NOW)
    expires = now + timedelta(days=settings.csat.link_valid_days)
    survey_id = await conn.fetchval(
        queries.INSERT_SURVEY,
        ticket_id,
        ticket["customer_id"],
        ticket["channel"],
        "cancelled" if reason else "sent",
        reason,
        ticket["solved_at"],
        None if reason else now,
        expires,
        ticket["assignee_id"],
        ticket["group_id"],
        ticket["category"],
        stage,
    )
    if survey_id is None or reason is not None:
        return None
    token = tokens.sign(await signing_key(conn, KEY_NAME), survey_id, ticket_id, expires)
    language = await survey_language(conn, ticket_id)
    templates = settings.csat.question
    template = (
        templates.get(language or "") or templates.get("en") or next(iter(templates.values()))
    )
    text = template.replace("{number}", str(ticket["number"])).replace(
        "{link}", link(settings, token)
    )
    # Email: an automatic message (Auto-Submitted, empty envelope sender).
    kind = "system" if ticket["channel"] == "email" else "public"
    buttons = (
        [[str(n), f"c{n}:{token}"] for n in range(1, 6)]
        if ticket["channel"] in BUTTON_CHANNELS
        else None
    )
    message_id = await conn.fetchval(
        queries.INSERT_QUESTION,
        ticket_id,
        kind,
        ticket["channel"],
        "" if ticket["channel"] == "email" else ticket["channel_account"],
        text,
        buttons,
    )
    await events.record(
        conn, ticket_id, "csat_asked", {"survey_id": survey_id, "message_id": message_id}
    )
    outbox_id: int = await outbox.add(conn, message_id, ticket_id, ticket["channel"])
    return outbox_id


async def for_ticket(conn: asyncpg.Connection, ticket_id: int) -> asyncpg.Record | None:
    """The ticket's survey as the ticket view shows it (the caller checked the scope)."""
    row: asyncpg.Record | None = await conn.fetchrow(queries.SURVEY_OF_TICKET, ticket_id)
    return row


async def survey_language(conn: asyncpg.Connection, ticket_id: int) -> str | None:
    """What the survey speaks: the ticket's language, else its customer's."""
    language: str | None = await conn.fetchval(queries.SURVEY_LANGUAGE, ticket_id)
    return language


async def survey_for_token(conn: asyncpg.Connection, token: str, now: datetime) -> asyncpg.Record:
    """The survey the token may rate; the same 404 for a forged, unknown or expired one."""
    survey_id = tokens.survey_of(token)
    row = None
    if survey_id is not None:
        row = await conn.fetchrow(queries.SURVEY, survey_id)
    key = await signing_key(conn, KEY_NAME)
    if row is None or not tokens.verify(key, token, row["ticket_id"], now):
        raise NotFound("This rating link is not valid")
    return row


async def answer(
    conn: asyncpg.Connection,
    token: str,
    rating: int | None,
    comment: str | None,
    settings: Settings,
) -> dict[str, Any]:
    """Record a rating (a click) and/or a comment; a later click changes the rating while
    the link is valid. Returns what the thank-you page shows."""
    now: datetime = await conn.fetchval(queries.NOW)
    survey = await survey_for_token(conn, token, now)
    if survey["status"] not in ("sent", "answered"):
        raise Conflict("This survey is closed")
    new_rating = rating if rating is not None else survey["rating"]
    if new_rating is None:
        raise Conflict("Choose a rating from 1 to 5 first")
    await conn.execute(
        queries.ANSWER,
        survey["id"],
        new_rating,
        comment,
        now,
    )
    ticket_id = survey["ticket_id"]
    await writer.set_csat_rating(conn, ticket_id, new_rating)
    await conn.execute(queries.CUSTOMER_RATING, survey["customer_id"])
    if rating is not None and rating != survey["rating"]:
        await events.record(
            conn, ticket_id, "csat_rated", {"rating": rating, "previous": survey["rating"]}
        )
        if rating <= 2:
            await _low_rating(conn, survey, rating, settings)
        elif rating >= 4:
            await relationship.clear_risk_after_good_rating(conn, survey["customer_id"], settings)
    return {"ticket_id": ticket_id, "rating": new_rating}


async def answer_press(
    conn: asyncpg.Connection, kind: str, account: str, press: ButtonPress, settings: Settings
) -> str:
    """A rating button pressed in a chat: counted only from the customer the survey asked.
    Returns the text the customer's app shows (never an error: a stale or foreign press
    is answered, not retried)."""
    match = _PRESS.fullmatch(press.value)
    if match is None:
        return "This button is not ours"
    rating, token = int(match.group(1)), match.group(2)
    now: datetime = await conn.fetchval(queries.NOW)
    try:
        survey = await survey_for_token(conn, token, now)
    except NotFound:
        return "This rating has expired"
    presser = await conn.fetchval(
        queries.CUSTOMER_OF_IDENTITY,
        kind,
        account,
        press.sender_id,
    )
    if presser != survey["customer_id"]:
        return "Only the customer who was asked can rate"
    try:
        await answer(conn, token, rating, None, settings)
    except Conflict as error:
        return str(error)
    return f"Thank you! Your rating: {rating} of 5"


async def _low_rating(
    conn: asyncpg.Connection, survey: asyncpg.Record, rating: int, settings: Settings
) -> None:
    ticket_id = survey["ticket_id"]
    await relationship.record_bad_experience(conn, ticket_id, "low_rating", f"rated {rating}")
    action = settings.csat.low_rating_action
    ticket = await conn.fetchrow(queries.TICKET, ticket_id)
    if action in ("alert", "both"):
        if ticket["group_id"] is None:
            supervisors = await conn.fetch(queries.SUPERVISORS)
        else:
            supervisors = await conn.fetch(queries.GROUP_SUPERVISORS, ticket["group_id"])
        for supervisor in supervisors:
            await conn.execute(
                queries.INSERT_LOW_RATING_NOTIFICATION,
                supervisor["id"],
                ticket_id,
                f"Ticket #{ticket['number']} was rated {rating} of 5",
            )
    if action in ("reopen", "both") and ticket["status"] == "solved":
        await writer.update(
            conn,
            ticket_id,
            {"status": "open", "solved_at": None},
            "updated",
            {"status": {"from": "solved", "to": "open"}},
            reason="low satisfaction rating",
        )
        now = await conn.fetchval(queries.NOW)
        await sla_recording.record(conn, ticket_id, "reopened", now)
        await sla_refresh.refresh(conn, ticket_id, settings.sla, now=now)


async def responses(
    conn: asyncpg.Connection,
    principal: Principal,
    since: datetime,
    until: datetime,
    *,
    rating: int | None,
    with_comment: bool,
    limit: int,
) -> list[CsatResponse]:
    """Answered surveys in [since, until), newest first, on tickets the caller may see."""
    sql, params = queries.responses(
        principal, since, until, rating=rating, with_comment=with_comment, limit=limit
    )
    rows = await conn.fetch(sql, *params)
    return [CsatResponse(**dict(r)) for r in rows]


async def metrics(
    conn: asyncpg.Connection,
    since: datetime,
    until: datetime,
    period: str,
    by: Dimension | None,
    timezone: str,
) -> list[dict[str, Any]]:
    """Per period (and dimension): surveys sent, answered, response rate, average score
    and the share of satisfied answers (4 or 5)."""
    rows = await conn.fetch(queries.metrics(by), since, until, period, timezone)
    return [
        {
            "period": r["period"].isoformat(),
            "key": r["key"],
            "sent": r["sent"],
            "answered": r["answered"],
            "response_rate": r["answered"] / r["sent"] if r["sent"] else None,
            "average": r["average"],
            "satisfied_share": r["satisfied"] / r["answered"] if r["answered"] else None,
        }
        for r in rows
    ]
