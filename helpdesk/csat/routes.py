"""The customer's rating page (public, reached by a signed link) and CSAT metrics.

`GET /csat/{token}?rating=N` is the one-click rating from the message; the page thanks
the customer and offers a comment box (`POST /csat/{token}`, form or JSON). Everything
the customer typed is shown back escaped; the page loads nothing from elsewhere. Unknown,
forged and expired links get the same 404 page, and requests are limited per address
(429), so walking survey ids gets nowhere. The page speaks Czech, Slovak or English
(`helpdesk.csat.page`): the ticket's language, or the one chosen with `?lang=`.
"""

from __future__ import annotations

import hashlib
import html
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from litestar import Controller, Request, Response, get, post
from litestar.params import FromQuery, PathParameter, QueryParameter

from helpdesk.channels.webchat.service import hit_limit
from helpdesk.csat import page, service
from helpdesk.csat.models import CsatResponse
from helpdesk.csat.page import Language
from helpdesk.errors import HelpdeskError, InvalidInput
from helpdesk.web.auth import SUPERVISION
from helpdesk.web.context import Caller, Ctx, Db, client_ip
from helpdesk.web.query import reject_unknown_params

Token = Annotated[str, PathParameter(max_length=100)]
Lang = Annotated[str | None, QueryParameter(max_length=16)]
REQUESTS_PER_MINUTE = 30
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _page(title: str, body: str, language: Language, status: int = 200) -> Response[str]:
    document = f"""<!doctype html>
<html lang="{language}"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: sans-serif; max-width: 32rem; margin: 2rem auto">
<h1>{html.escape(title)}</h1>{body}</body></html>"""
    return Response(document, status_code=status, media_type="text/html", headers=_HEADERS)


def _rating_form(token: str, rating: int | None, language: Language, chosen: bool) -> str:
    """The rating links and comment box; a language the customer chose stays chosen."""
    action = f"/csat/{html.escape(token, quote=True)}"
    keep = f"&amp;lang={language}" if chosen else ""
    stars = " ".join(
        f'<a href="{action}?rating={n}{keep}">{html.escape(page.label(n, language))}</a>'
        for n in range(1, 6)
    )
    said = page.text("your_rating", language, rating=rating)
    thanks = f"<p>{html.escape(said)}</p>" if rating else ""
    post_to = f"{action}?lang={language}" if chosen else action
    return f"""{thanks}<p>{html.escape(page.text("rate_us", language))} {stars}</p>
<form method="post" action="{post_to}">
<label for="comment">{html.escape(page.text("comment", language))}</label><br>
<textarea id="comment" name="comment" rows="5" cols="40" maxlength="5000"></textarea><br>
<button type="submit">{html.escape(page.text("send", language))}</button></form>"""


async def _limit(request: Request[Any, Any, Any], ctx: Ctx) -> None:
    """Requests per client address; fails open while Redis is down, like web chat's
    limits (`hit_limit`): the page is public, reached by customers from a mail, each
    link is one survey whose rating is stored once, and an outage should not turn
    customers away."""
    who = hashlib.sha256((client_ip(request) or "?").encode()).hexdigest()[:32]
    await hit_limit(
        ctx.redis,
        ctx.redis_outage,
        f"helpdesk:csat:ip:{who}",
        REQUESTS_PER_MINUTE,
        "rating requests",
    )


def _refused(
    error: HelpdeskError, request: Request[Any, Any, Any], lang: str | None
) -> Response[str]:
    """The same page for every unknown, forged or expired link (404), else why not (409).

    No ticket is known here, so `?lang=` or the browser's language decides."""
    language = page.choose(lang, None, request.headers.get("accept-language"))
    if error.status_code == 404:
        return _page(
            page.text("invalid_title", language),
            f"<p>{html.escape(page.text('invalid', language))}</p>",
            language,
            status=404,
        )
    return _page(
        page.text("closed_title", language),
        f"<p>{html.escape(page.text(str(error), language))}</p>",
        language,
        status=409,
    )


async def _language(db: Db, ticket_id: int, lang: str | None) -> Language:
    return page.choose(lang, await service.survey_language(db, ticket_id), None)


class CsatPageController(Controller):
    path = "/csat"
    tags = ["csat"]

    @get("/{token:str}", exclude_from_auth=True, operation_id="showCsatPage")
    async def rate(
        self,
        request: Request[Any, Any, Any],
        db: Db,
        ctx: Ctx,
        token: Token,
        rating: Annotated[int | None, QueryParameter(ge=1, le=5)] = None,
        lang: Lang = None,
    ) -> Response[str]:
        reject_unknown_params(request, frozenset({"rating", "lang"}))
        await _limit(request, ctx)
        try:
            async with db.transaction():
                if rating is None:
                    now = datetime.now(UTC)
                    survey = await service.survey_for_token(db, token, now)
                    current, ticket_id = survey["rating"], survey["ticket_id"]
                else:
                    answered = await service.answer(db, token, rating, None, ctx.settings)
                    current, ticket_id = answered["rating"], answered["ticket_id"]
        except HelpdeskError as error:
            return _refused(error, request, lang)
        language = await _language(db, ticket_id, lang)
        form = _rating_form(token, current, language, chosen=page.supported(lang) is not None)
        return _page(page.text("title", language), form, language)

    @post("/{token:str}", exclude_from_auth=True, status_code=200, operation_id="commentCsat")
    async def comment(
        self, request: Request[Any, Any, Any], db: Db, ctx: Ctx, token: Token, lang: Lang = None
    ) -> Response[str]:
        await _limit(request, ctx)
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("application/json"):
            body = await request.json()
        else:
            body = dict(await request.form())
        if not isinstance(body, dict):
            raise InvalidInput("Send a form or a JSON object")
        unknown = sorted(set(body) - {"rating", "comment"})
        if unknown:  # a customer can rate and comment, nothing else (docs/reliability.md A5)
            raise InvalidInput(f"Unknown field '{unknown[0]}'", field=unknown[0])
        raw_rating, comment = body.get("rating"), body.get("comment")
        rating = None
        if raw_rating not in (None, ""):
            if str(raw_rating) not in {"1", "2", "3", "4", "5"}:
                raise InvalidInput("rating must be 1 to 5", field="rating")
            rating = int(str(raw_rating))
        if comment is not None and (not isinstance(comment, str) or len(comment) > 5000):
            raise InvalidInput("comment must be text of at most 5000 characters", field="comment")
        try:
            async with db.transaction():
                result = await service.answer(
                    db, token, rating, (comment or "").strip() or None, ctx.settings
                )
        except HelpdeskError as error:
            return _refused(error, request, lang)
        language = await _language(db, result["ticket_id"], lang)
        said = html.escape(page.text("rated", language, rating=result["rating"]))
        return _page(page.text("thanks", language), f"<p>{said}</p>", language)


class CsatMetricsController(Controller):
    path = "/csat"
    tags = ["csat"]
    guards = [SUPERVISION]

    @get("/responses", operation_id="listCsatResponses")
    async def list_responses(
        self,
        request: Request[Any, Any, Any],
        principal: Caller,
        db: Db,
        since: FromQuery[datetime | None] = None,
        until: FromQuery[datetime | None] = None,
        rating: Annotated[int | None, QueryParameter(ge=1, le=5)] = None,
        with_comment: FromQuery[bool] = False,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
    ) -> list[CsatResponse]:
        """Answered surveys with what the customers wrote, newest first (default: the last
        90 days); `rating` and `with_comment` narrow them down."""
        reject_unknown_params(
            request, frozenset({"since", "until", "rating", "with_comment", "limit"})
        )
        end = until or datetime.now(UTC)
        start = since or end - timedelta(days=90)
        if start.tzinfo is None or end.tzinfo is None or start >= end:
            raise InvalidInput("since and until need offsets, since before until", field="since")
        return await service.responses(
            db, principal, start, end, rating=rating, with_comment=with_comment, limit=limit
        )

    @get("/metrics", operation_id="getCsatMetrics")
    async def read_metrics(
        self,
        request: Request[Any, Any, Any],
        db: Db,
        ctx: Ctx,
        since: FromQuery[datetime | None] = None,
        until: FromQuery[datetime | None] = None,
        period: FromQuery[Literal["day", "week", "month"]] = "week",
        by: FromQuery[Literal["agent", "group", "channel", "category", "stage"] | None] = None,
    ) -> list[dict[str, Any]]:
        """CSAT per period (and agent, group, channel, category or customer stage):
        surveys sent and answered, response rate, average, share of 4-5 answers."""
        reject_unknown_params(request, frozenset({"since", "until", "period", "by"}))
        end = until or datetime.now(UTC)
        start = since or end - timedelta(days=90)
        if start.tzinfo is None or end.tzinfo is None or start >= end:
            raise InvalidInput("since and until need offsets, since before until", field="since")
        return await service.metrics(db, start, end, period, by, ctx.settings.sla.timezone)
