"""Positional parameters for queries whose WHERE clause depends on the request.

Values are always bound (`$n`), never formatted into the SQL text; only fixed
fragments written in our own code are joined.
"""

from __future__ import annotations

from typing import Any


class Params:
    def __init__(self) -> None:
        self.values: list[Any] = []

    def add(self, value: Any) -> str:
        """Bind `value` and return its placeholder."""
        self.values.append(value)
        return f"${len(self.values)}"
