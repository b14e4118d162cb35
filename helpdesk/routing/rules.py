"""Routing rules as data, and which one a ticket matches: pure, no I/O.

Rules are ordered; the first active one whose conditions all hold decides the group (and
optionally a priority and tags). Conditions list accepted values of the ticket's
category, language and channel, of customer attributes, and keywords looked for in the
subject and text (without regard to case or diacritics, whole words; `reklam*` is a
prefix). A rule with no conditions is a catch-all.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache
from typing import Any

import msgspec


class RuleConditions(msgspec.Struct, forbid_unknown_fields=True, frozen=True, omit_defaults=True):
    category: list[str] | None = None
    language: list[str] | None = None
    channel: list[str] | None = None
    keywords: list[str] | None = None
    customer: dict[str, list[Any]] | None = None


class RoutingRule(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    name: str
    position: int
    conditions: RuleConditions
    group_id: int
    priority: str | None = None
    tags: tuple[str, ...] = ()


class RoutingFacts(msgspec.Struct, frozen=True, kw_only=True):
    category: str | None
    language: str | None
    channel: str
    subject: str
    text: str
    customer: dict[str, Any]


def fold(text: str) -> str:
    """Lower case without diacritics: "Reklamácia" -> "reklamacia"."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


@cache
def _keyword_pattern(keyword: str) -> re.Pattern[str]:
    word = fold(keyword.strip())
    prefix = word.endswith("*")
    body = re.escape(word.rstrip("*")).replace(r"\ ", r"\s+")
    end = "" if prefix else r"(?!\w)"
    return re.compile(r"(?<!\w)" + body + end)


def _holds(accepted: list[Any] | None, value: Any) -> bool:
    if accepted is None:
        return True
    if isinstance(value, list | tuple | set):
        return any(item in accepted for item in value)
    return value in accepted


def matches(conditions: RuleConditions, facts: RoutingFacts) -> str | None:
    """Why the rule matches (a short description), or None."""
    if not (
        _holds(conditions.category, facts.category)
        and _holds(conditions.language, facts.language)
        and _holds(conditions.channel, facts.channel)
    ):
        return None
    for attribute, accepted in (conditions.customer or {}).items():
        if attribute not in facts.customer or not _holds(accepted, facts.customer[attribute]):
            return None
    found = ""
    if conditions.keywords:
        haystack = fold(f"{facts.subject}\n{facts.text}")
        hit = next((k for k in conditions.keywords if _keyword_pattern(k).search(haystack)), None)
        if hit is None:
            return None
        found = f"keyword '{hit}'"
    parts = [
        f"{name} {getattr(facts, name)}"
        for name in ("category", "language", "channel")
        if getattr(conditions, name) is not None
    ]
    parts += [f"customer.{name}" for name in conditions.customer or {}]
    if found:
        parts.append(found)
    return ", ".join(parts) or "catch-all"


def choose(rules: list[RoutingRule], facts: RoutingFacts) -> tuple[RoutingRule, str] | None:
    for rule in sorted(rules, key=lambda r: (r.position, r.id)):
        why = matches(rule.conditions, facts)
        if why is not None:
            return rule, f"rule '{rule.name}': {why}"
    return None
