"""Query-string rules shared by listing endpoints."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request
from litestar.params import PathParameter, QueryParameter

from helpdesk.errors import InvalidInput


def reject_unknown_params(request: Request[Any, Any, Any], allowed: frozenset[str]) -> None:
    """An unknown filter is an error, not silently ignored (it would widen the result)."""
    unknown = sorted(set(request.query_params.keys()) - allowed)
    if unknown:
        raise InvalidInput(f"Unknown query parameter '{unknown[0]}'", field=unknown[0])


def parse_if_match(value: str | None) -> int | None:
    """The ticket version from an If-Match header: `"7"`, `W/"7"` or `7`."""
    if value is None:
        return None
    text = value.strip()
    if text.startswith("W/"):
        text = text[2:]
    text = text.strip('"')
    if not text.isdigit() or len(text) > 9:
        raise InvalidInput('If-Match must be the ticket\'s ETag, e.g. "3"', field="If-Match")
    return int(text)


MAX_ID = 9_223_372_036_854_775_807  # PostgreSQL bigint
# Ids in paths and query strings: positive and within bigint, else a 400 naming them.
PathId = Annotated[int, PathParameter(ge=1, le=MAX_ID)]
OptionalQueryId = Annotated[int | None, QueryParameter(ge=1, le=MAX_ID)]
