"""Classification rules as data: terms, their schema, loading and the shipped defaults."""

from __future__ import annotations

import re
import tomllib
import unicodedata
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

import msgspec

Category = Literal["complaint", "order", "return", "question", "other"]


CATEGORIES: tuple[Category, ...] = ("complaint", "return", "order", "question", "other")
# Package data beside this module: an installed wheel carries it wherever it runs.
DEFAULT_RULES_RESOURCE = "classification.toml"


APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'"})


_LANGUAGE_CODE = r"^[a-z]{2,3}$"
_MIN_STEM = 3


class RulesError(ValueError):
    """Rules that cannot be used; the message is one line naming the problem."""


def fold(text: str) -> str:
    """The form terms and text are compared in: "Reklamácia" -> "reklamacia", typographic
    apostrophes made plain."""
    if text.isascii():
        return text.casefold()
    decomposed = unicodedata.normalize("NFKD", text.translate(APOSTROPHES))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def term_pattern(term: str) -> str:
    """The regular expression of one rule term (whole words, `*` for a word's prefix).

    Raises RulesError for a term that would match too much (empty, or a stem shorter than
    three characters, or `*` inside a word).
    """
    words = fold(term).split()
    if not words:
        raise RulesError(f"empty term {term!r}")
    parts: list[str] = []
    for word in words:
        stem = word.removesuffix("*")
        if "*" in stem:
            raise RulesError(f"term {term!r}: '*' only ends a word")
        if stem != word and len(stem) < _MIN_STEM:
            raise RulesError(f"term {term!r}: a stem needs at least {_MIN_STEM} characters")
        parts.append(re.escape(stem) + (r"\w*" if stem != word else ""))
    pattern = ""
    for index, (word, part) in enumerate(zip(words, parts, strict=True)):
        if index:
            joined = words[index - 1][-1].isalnum() or words[index - 1].endswith("*")
            pattern += r"\W+" if joined and word[0].isalnum() else r"\W*"
        pattern += part
    if words[0][0].isalnum():
        pattern = r"(?<!\w)" + pattern
    if words[-1][-1].isalnum():
        pattern += r"(?!\w)"
    return pattern


class Rule(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Terms that speak for one category. `language` only says whom the terms are written
    for (a Slovak writing "reklamace" still complains): it does not restrict matching."""

    id: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    category: Category
    weight: Annotated[float, msgspec.Meta(gt=0, le=100)]
    terms: tuple[str, ...] = ()
    language: str | None = None
    priority: int = 0
    # Conditions: the message's channel is one of these / the sender address matches one of
    # these shell patterns ("*@heureka.cz"), compared case-insensitively. Empty: any.
    channels: tuple[str, ...] = ()
    senders: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.terms and not self.channels and not self.senders:
            raise RulesError(f"rule {self.id}: needs terms or a channel or sender condition")
        for term in self.terms:
            term_pattern(term)


class LanguageProfile(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """What gives a language away: its own words, its own letters, its sender domains."""

    code: Annotated[str, msgspec.Meta(pattern=_LANGUAGE_CODE)]
    stopwords: tuple[str, ...] = ()
    stopword_weight: Annotated[float, msgspec.Meta(ge=0)] = 1.0
    letters: str = ""
    letter_weight: Annotated[float, msgspec.Meta(ge=0)] = 1.0
    # Endings of words (longer than two letters) that count like stopwords: Slovak
    # infinitives end in "ť" (poslať), Czech ones in "t".
    word_endings: tuple[str, ...] = ()
    sender_tlds: tuple[str, ...] = ()
    sender_weight: Annotated[float, msgspec.Meta(ge=0)] = 2.0


class ClassificationRules(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """All of the classifier's data. Frozen and hashable, so compiled matchers are cached per
    distinct rules (equal rules loaded twice share one compilation)."""

    languages: tuple[LanguageProfile, ...]
    rules: tuple[Rule, ...]
    default_language: str = "cs"
    fallback_category: Category = "other"
    fallback_confidence: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.3
    min_score: Annotated[float, msgspec.Meta(ge=0)] = 1.0
    subject_factor: Annotated[float, msgspec.Meta(ge=1)] = 1.5
    extra_hit_factor: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.5
    max_hits: Annotated[int, msgspec.Meta(ge=1)] = 4
    confidence_scale: Annotated[float, msgspec.Meta(gt=0)] = 3.0
    max_text_chars: Annotated[int, msgspec.Meta(ge=100)] = 10_000
    tie_order: tuple[Category, ...] = CATEGORIES
    # A word found only by rules written for one language speaks for that language.
    rule_word_weight: Annotated[float, msgspec.Meta(ge=0)] = 1.0

    def __post_init__(self) -> None:
        codes = [profile.code for profile in self.languages]
        if not codes:
            raise RulesError("at least one language is needed")
        if len(set(codes)) != len(codes):
            raise RulesError("a language is listed twice")
        if self.default_language not in codes:
            raise RulesError(f"default_language {self.default_language!r} is not a language")
        ids = [rule.id for rule in self.rules]
        if len(set(ids)) != len(ids):
            twice = sorted({i for i in ids if ids.count(i) > 1})
            raise RulesError(f"rule ids must be unique: {', '.join(twice)}")
        for rule in self.rules:
            if rule.language is not None and rule.language not in codes:
                raise RulesError(f"rule {rule.id}: unknown language {rule.language!r}")


def load_rules(path: str | Path) -> ClassificationRules:
    """Rules from a TOML file; RulesError (one line) when unreadable or invalid."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise RulesError(f"cannot read classification rules {path}: {exc.strerror}") from None
    return parse_rules(data, str(path))


def parse_rules(data: bytes, source: str) -> ClassificationRules:
    """Rules from TOML text; RulesError (one line, naming `source`) when invalid."""
    try:
        raw = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise RulesError(f"classification rules {source} are not UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise RulesError(f"classification rules {source} are not valid TOML: {exc}") from None
    try:
        return msgspec.convert(raw, ClassificationRules)
    except msgspec.ValidationError as exc:
        raise RulesError(f"classification rules {source}: {exc}") from None


def default_rules_toml() -> bytes:
    """The text of the shipped default rules (package data)."""
    return resources.files("helpdesk.routing").joinpath(DEFAULT_RULES_RESOURCE).read_bytes()


@lru_cache(maxsize=1)
def default_rules() -> ClassificationRules:
    """The shipped defaults of `helpdesk/routing/classification.toml` (read once)."""
    return parse_rules(default_rules_toml(), DEFAULT_RULES_RESOURCE)
