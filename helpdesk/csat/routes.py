"""The customer's rating page (public, reached by a signed link) and CSAT metrics.

`GET /csat/{token}?rating=N` is the one-click rating from the message; the page thanks
the customer and offers a comment box (`POST /csat/{token}`, form or JSON). Everything
the customer typed is shown back escaped; the page loads nothing from elsewhere. Unknown,
forged and expired links get the same 404 page, and requests are limited per address
(429), so walking survey ids gets nowhere.
"""

from __future__ import annotations

import hashlib
import html
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from litestar import Controller, Request, Response, get, post
from litestar.params import FromQuery, PathParameter, QueryParameter

from helpdesk.channels.webchat.service import hit_limit
from helpdesk.csat import service
from helpdesk.errors import HelpdeskError, InvalidInput
from helpdesk.web.auth import SUPERVISION
from helpdesk.web.context import Ctx, Db, client_ip
from helpdesk.web.query import reject_unknown_params

Token = Annotated[str, PathParameter(max_length=100)]
REQUESTS_PER_MINUTE = 30
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_LABELS = {1: "1 (very bad)", 2: "2", 3: "3", 4: "4", 5: "5 (excellent)"}


def _page(title: str, body: str, status: int = 200) -> Response[str]:
    document = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: sans-serif; max-width: 32rem; margin: 2rem auto">
<h1>{html.escape(title)}</h1>{body}</body></html>"""
    return Response(document, status_code=status, media_type="text/html", headers=_HEADERS)


def _rating_form(token: str, rating: int | None) -> str:
    action = f"/csat/{html.escape(token, quote=True)}"
    stars = " ".join(
        f'<a href="{action}?rating={n}">{html.escape(_LABELS[n])}</a>' for n in range(1, 6)
    )
    chosen = f"<p>Your rating: {rating} of 5. Thank you!</p>" if rating else ""
    return f"""{chosen}<p>Rate us: {stars}</p>
<form method="post" action="{action}">
<label for="comment">Anything to add? (optional)</label><br>
<textarea id="comment" name="comment" rows="5" cols="40" maxlength="5000"></textarea><br>
<button type="submit">Send</button></form>"""


async def _limit(request: Request[Any, Any, Any], ctx: Ctx) -> None:
    who = hashlib.sha256((client_ip(request) or "?").encode()).hexdigest()[:32]
    await hit_limit(ctx.redis, f"helpdesk:csat:ip:{who}", REQUESTS_PER_MINUTE, "rating requests")


def _not_valid() -> Response[str]:
    return _page(
        "This link is not valid",
        "<p>The rating link is unknown or has expired.</p>",
        status=404,
    )


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
    ) -> Response[str]:
        reject_unknown_params(request, frozenset({"rating"}))
        await _limit(request, ctx)
        try:
            async with db.transaction():
                if rating is None:
                    now = datetime.now(UTC)
                    survey = await service.survey_for_token(db, token, now)
                    current = survey["rating"]
                else:
                    current = (await service.answer(db, token, rating, None, ctx.settings))[
                        "rating"
                    ]
        except HelpdeskError as error:
            if error.status_code == 404:
                return _not_valid()
            return _page("Rating closed", f"<p>{html.escape(str(error))}</p>", status=409)
        return _page("How did we do?", _rating_form(token, current))

    @post("/{token:str}", exclude_from_auth=True, status_code=200, operation_id="commentCsat")
    async def comment(
        self, request: Request[Any, Any, Any], db: Db, ctx: Ctx, token: Token
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
        if unknown:  # a customer can rate and comment, nothing else (A5)
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
            if error.status_code == 404:
                return _not_valid()
            return _page("Rating closed", f"<p>{html.escape(str(error))}</p>", status=409)
        return _page("Thank you!", f"<p>Your rating: {result['rating']} of 5.</p>")


class CsatMetricsController(Controller):
    path = "/csat"
    tags = ["csat"]
    guards = [SUPERVISION]

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
