"""Positional parameters for queries whose WHERE clause depends on the request.

Values are always bound (`$n`), never formatted into the SQL text; only fixed
fragments written in our own code are joined.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec


class Params:
    def __init__(self) -> None:
        self.values: list[Any] = []

    def add(self, value: Any) -> str:
        """Bind `value` and return its placeholder."""
        self.values.append(value)
        return f"${len(self.values)}"


# A bigint primary key as clients may send it: positive and within PostgreSQL's bigint,
# so an out-of-range id is a validation error naming the field, not a database error.
Id = Annotated[int, msgspec.Meta(ge=1, le=9_223_372_036_854_775_807)]
