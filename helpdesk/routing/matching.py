"""Classification rules compiled for matching: the term index, phrases and stopwords."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import NamedTuple

from helpdesk.routing.classification_rules import (
    APOSTROPHES,
    ClassificationRules,
    LanguageProfile,
    Rule,
    fold,
    term_pattern,
)

WORD = re.compile(r"\w+(?:'\w+)*")
_PLAIN_WORD = re.compile(r"\w+")


class _CompiledRule:
    __slots__ = ("channels", "rule", "senders")

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.channels = frozenset(c.casefold() for c in rule.channels)
        self.senders = tuple(s.casefold() for s in rule.senders)

    def applies(self, channel: str | None, sender: str | None) -> bool:
        if self.channels and (channel is None or channel.casefold() not in self.channels):
            return False
        if self.senders:
            address = (sender or "").casefold()
            if not address or not any(fnmatch.fnmatchcase(address, s) for s in self.senders):
                return False
        return True


Hit = tuple[int, int]  # (rule position, term index)


class _Phrase(NamedTuple):
    hit: Hit
    guard: str | None  # the word (or prefix) the match starts with; None: look always
    guard_is_prefix: bool
    regex: re.Pattern[str]


class _TermIndex:
    """All rules' terms, found in one pass: single words and prefixes by looking up the
    text's words in tables, phrases by regex only when the word they start with is there.
    Same answers as one regex per term, without trying every term at every position."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.words: dict[str, list[Hit]] = {}
        self.prefixes: dict[str, list[Hit]] = {}
        self.phrases: list[_Phrase] = []
        for position, rule in enumerate(rules):
            for index, term in enumerate(rule.terms):
                hit = (position, index)
                words = fold(term).split()
                first = words[0]
                stem = first.removesuffix("*")
                if len(words) == 1 and _PLAIN_WORD.fullmatch(stem):
                    table = self.prefixes if stem != first else self.words
                    table.setdefault(stem, []).append(hit)
                    continue
                leading = _PLAIN_WORD.match(first)
                guard = leading.group() if leading else None
                prefix = guard is not None and stem != first and guard == stem
                self.phrases.append(_Phrase(hit, guard, prefix, re.compile(term_pattern(term))))
        self.prefix_lengths = sorted({len(p) for p in self.prefixes})

    def scan(self, text: str) -> dict[Hit, str]:
        """Each term found -> the (folded) text it matched first."""
        found: dict[Hit, str] = {}
        tokens = _PLAIN_WORD.findall(text)
        for token in tokens:
            for hit in self.words.get(token, ()):
                found.setdefault(hit, token)
            for length in self.prefix_lengths:
                if length > len(token):
                    break
                for hit in self.prefixes.get(token[:length], ()):
                    found.setdefault(hit, token)
        present = set(tokens)
        for phrase in self.phrases:
            if phrase.guard is not None and (
                not any(t.startswith(phrase.guard) for t in present)
                if phrase.guard_is_prefix
                else phrase.guard not in present
            ):
                continue
            match = phrase.regex.search(text)
            if match is not None:
                found.setdefault(phrase.hit, match.group())
        return found


class _CompiledLanguage:
    __slots__ = ("code", "endings", "exact", "folded", "letters", "profile", "tlds")

    def __init__(self, profile: LanguageProfile, exact: frozenset[str], folded: frozenset[str]):
        self.profile = profile
        self.code = profile.code
        self.exact = exact
        self.folded = folded
        self.letters = frozenset(profile.letters.casefold())
        self.tlds = frozenset(t.casefold().lstrip(".") for t in profile.sender_tlds)
        self.endings = tuple(e.casefold() for e in profile.word_endings)


class CompiledRules:
    def __init__(self, rules: ClassificationRules) -> None:
        # Strongest first: a word two rules of one category share counts at the higher weight.
        ordered = sorted(rules.rules, key=lambda r: (-r.priority, -r.weight, r.id))
        self.rules = [_CompiledRule(rule) for rule in ordered]
        self.terms = _TermIndex(ordered)
        words = {
            p.code: {w.casefold().translate(APOSTROPHES) for w in p.stopwords}
            for p in rules.languages
        }
        folds = {code: {fold(w) for w in ws} for code, ws in words.items()}
        self.languages = []
        for profile in rules.languages:
            others = [c for c in words if c != profile.code]
            exact = words[profile.code].difference(*(words[c] for c in others))
            folded = folds[profile.code].difference(*(folds[c] for c in others))
            self.languages.append(_CompiledLanguage(profile, frozenset(exact), frozenset(folded)))


@lru_cache(maxsize=16)
def compile_rules(rules: ClassificationRules) -> CompiledRules:
    return CompiledRules(rules)
