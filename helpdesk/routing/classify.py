"""Ticket classification: a category and a language for a customer message, with a confidence
and the reason. Pure: no I/O except reading a rules file, no clock, no database.

Rules are data (`helpdesk/routing/classification.toml`, shipped inside the package, or an
admin's copy stored in the database):
each rule is a list of terms for one category, with a weight, a priority and optional
channel and sender conditions. How a message is scored:

- Subject and text are folded (NFKD, combining marks stripped, casefolded, typographic
  apostrophes made plain), so "REKLAMÁCIA" and "reklamacia" read the same. Quoted lines of
  the text (starting with ">") are skipped and only the first `max_text_chars` are read.
- A term matches whole words: `return` does not match "returning" or "nonreturnable";
  `reklam*` is a prefix and matches reklamace, reklamácia, reklamovat. A phrase ("kdy
  dorazí", "doesn't work") matches its words in order with any punctuation or spaces between.
  Terms of punctuation only ("?") match anywhere.
- A rule matches when its channel and sender conditions hold and, if it has terms, at least
  one term is found. Its score is its weight for the first distinct term found, plus
  `extra_hit_factor` x weight for each further distinct term (at most `max_hits` terms); a
  term found in the subject counts `subject_factor` times. A word found by two rules of one
  category (Czech and Slovak lists share "nefunguje") counts once, for the stronger rule.
- Only the rules of the highest priority that matched decide (a sender rule at priority 10
  outranks any number of keywords at priority 0). Their scores add up per category; the
  best category wins, ties going to the one listed first in `tie_order`. Below `min_score`
  the message gets `fallback_category` with `fallback_confidence`.
- Confidence is the winner's share of the scores times `1 - exp(-score / confidence_scale)`:
  one strong word alone is not certainty, several agreeing words approach it.

The language is scored separately, from each language's stopwords (words distinctive of it:
a word in two languages' lists tells them apart by nothing, so it is dropped from both),
word endings (Slovak infinitives in "ť"), letters (ř, ů, ě for Czech; ä, ľ, ĺ, ô, ŕ for
Slovak), rule words (a term found only by rules written for one language: "zasielka") and
the sender's top-level domain; with no signal at all it is `default_language`. A word
written without diacritics counts only through an unambiguous bare form: "dakujem" is
Slovak, but "den" may be Czech "den" or Slovak "deň" and counts for neither.
"""

from __future__ import annotations

import fnmatch
import math
import re
import tomllib
import unicodedata
from collections.abc import Sequence
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal, NamedTuple

import msgspec

Category = Literal["complaint", "order", "return", "question", "other"]

CATEGORIES: tuple[Category, ...] = ("complaint", "return", "order", "question", "other")
# Package data beside this module: an installed wheel carries it wherever it runs.
DEFAULT_RULES_RESOURCE = "classification.toml"

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'"})
_WORD = re.compile(r"\w+(?:'\w+)*")
_PLAIN_WORD = re.compile(r"\w+")
_LANGUAGE_CODE = r"^[a-z]{2,3}$"
_MIN_STEM = 3


class RulesError(ValueError):
    """Rules that cannot be used; the message is one line naming the problem."""


def fold(text: str) -> str:
    """The form terms and text are compared in: "Reklamácia" -> "reklamacia", typographic
    apostrophes made plain."""
    if text.isascii():
        return text.casefold()
    decomposed = unicodedata.normalize("NFKD", text.translate(_APOSTROPHES))
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


class Classification(msgspec.Struct, frozen=True, kw_only=True):
    """The classifier's answer. `matched_rules` lists every rule that matched, at any
    priority (for hit counting), the strongest first."""

    category: Category
    language: str
    confidence: float
    language_confidence: float
    reason: str
    matched_rules: list[str]


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


# --- compiled form ------------------------------------------------------------------------


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


_Hit = tuple[int, int]  # (rule position, term index)


class _Phrase(NamedTuple):
    hit: _Hit
    guard: str | None  # the word (or prefix) the match starts with; None: look always
    guard_is_prefix: bool
    regex: re.Pattern[str]


class _TermIndex:
    """All rules' terms, found in one pass: single words and prefixes by looking up the
    text's words in tables, phrases by regex only when the word they start with is there.
    Same answers as one regex per term, without trying every term at every position."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.words: dict[str, list[_Hit]] = {}
        self.prefixes: dict[str, list[_Hit]] = {}
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

    def scan(self, text: str) -> dict[_Hit, str]:
        """Each term found -> the (folded) text it matched first."""
        found: dict[_Hit, str] = {}
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


class _Compiled:
    def __init__(self, rules: ClassificationRules) -> None:
        # Strongest first: a word two rules of one category share counts at the higher weight.
        ordered = sorted(rules.rules, key=lambda r: (-r.priority, -r.weight, r.id))
        self.rules = [_CompiledRule(rule) for rule in ordered]
        self.terms = _TermIndex(ordered)
        words = {
            p.code: {w.casefold().translate(_APOSTROPHES) for w in p.stopwords}
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
def _compile(rules: ClassificationRules) -> _Compiled:
    return _Compiled(rules)


# --- classification -----------------------------------------------------------------------


def _unquoted(text: str, limit: int) -> str:
    text = text[:limit]
    if ">" not in text:
        return text
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith(">"))


def _strength(score: float, scale: float) -> float:
    return 1.0 - math.exp(-score / scale)


def _number(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _detect_language(
    compiled: _Compiled,
    rules: ClassificationRules,
    raw: str,
    sender: str | None,
    vocabulary: dict[str, int],
) -> tuple[str, float, str]:
    raw = unicodedata.normalize("NFC", raw).casefold().translate(_APOSTROPHES)
    tokens = _WORD.findall(raw)
    tld = sender.rsplit("@", 1)[-1].rsplit(".", 1)[-1].casefold() if sender else ""
    best: tuple[float, str, str] | None = None
    total = 0.0
    for language in compiled.languages:
        profile = language.profile
        # A word without diacritics may be one whose diacritics were left out ("den" is
        # Czech "den" or Slovak "deň"): it counts only through an unambiguous bare form.
        words = sum(
            1 for t in tokens if (t in language.folded if t.isascii() else t in language.exact)
        )
        endings = (
            sum(1 for t in tokens if len(t) > 2 and t.endswith(language.endings))
            if language.endings
            else 0
        )
        letters = sum(1 for c in raw if c in language.letters) if language.letters else 0
        domain = bool(tld) and tld in language.tlds
        rule_words = vocabulary.get(language.code, 0)
        score = (
            rule_words * rules.rule_word_weight
            + (words + endings) * profile.stopword_weight
            + letters * profile.letter_weight
            + (profile.sender_weight if domain else 0.0)
        )
        if score <= 0:
            continue
        total += score
        signals: list[str] = []
        if words:
            signals.append(f"{words} stopword{'s' if words > 1 else ''}")
        if endings:
            signals.append(f"{endings} ending{'s' if endings > 1 else ''}")
        if letters:
            signals.append(f"{letters} letter{'s' if letters > 1 else ''}")
        if rule_words:
            signals.append(f"{rule_words} rule word{'s' if rule_words > 1 else ''}")
        if domain:
            signals.append(f"sender .{tld}")
        if best is None or score > best[0]:
            best = (score, language.code, ", ".join(signals))
    if best is None:
        return rules.default_language, rules.fallback_confidence, "default"
    score, code, why = best
    confidence = (score / total) * _strength(score, 3.0)
    return code, round(confidence, 3), why


def classify(
    rules: ClassificationRules,
    subject: str,
    text: str,
    channel: str | None = None,
    sender: str | None = None,
) -> Classification:
    """Category and language of one message, with confidences in [0, 1] and the reason
    (rules and signals that decided). Deterministic: same rules and message, same answer."""
    compiled = _compile(rules)
    body = _unquoted(text or "", rules.max_text_chars)
    subject = (subject or "")[:1000]
    folded_subject, folded_body = fold(subject), fold(body)

    matched: list[tuple[float, int, Rule, list[str]]] = []  # score, priority, rule, terms
    counted: dict[Category, set[str]] = {}  # a word found by two rules of a category counts once
    term_languages: dict[str, set[str]] = {}  # words found -> languages of the rules finding them
    subject_hits = _by_rule(compiled.terms.scan(folded_subject))
    body_hits = _by_rule(compiled.terms.scan(folded_body))
    for position, item in enumerate(compiled.rules):
        if not item.applies(channel, sender):
            continue
        in_subject = subject_hits.get(position, {})
        in_body = body_hits.get(position, {})
        if item.rule.terms and not in_subject and not in_body:
            continue
        if item.rule.language is not None:
            for found in (*in_body.values(), *in_subject.values()):
                term_languages.setdefault(found, set()).add(item.rule.language)
        seen = counted.setdefault(item.rule.category, set())
        factors: list[tuple[float, str]] = []
        for index, found in ({**in_body, **in_subject}).items():
            if found not in seen:
                seen.add(found)
                factors.append((rules.subject_factor if index in in_subject else 1.0, found))
        factors.sort(key=lambda f: -f[0])
        factors = factors[: rules.max_hits]
        weight = item.rule.weight
        if not item.rule.terms:
            score = weight  # a condition-only rule
        elif factors:
            extra = rules.extra_hit_factor * sum(f for f, _ in factors[1:])
            score = weight * (factors[0][0] + extra)
        else:
            score = 0.0  # matched, but only words another rule of its category counted
        matched.append((score, item.rule.priority, item.rule, [found for _, found in factors]))
    matched.sort(key=lambda m: (-m[1], -m[0], m[2].id))

    vocabulary: dict[str, int] = {}  # rule words of one language only ("zasielky": sk)
    for languages in term_languages.values():
        if len(languages) == 1:
            (only,) = languages
            vocabulary[only] = vocabulary.get(only, 0) + 1
    language, language_confidence, language_signals = _detect_language(
        compiled, rules, f"{subject}\n{body}", sender, vocabulary
    )
    category, confidence, decided = _decide(rules, matched)
    reason = f"{decided}; language: {language} ({language_signals})"
    return Classification(
        category=category,
        language=language,
        confidence=confidence,
        language_confidence=language_confidence,
        reason=reason,
        matched_rules=[rule.id for _, _, rule, _ in matched],
    )


def _by_rule(hits: dict[_Hit, str]) -> dict[int, dict[int, str]]:
    grouped: dict[int, dict[int, str]] = {}
    for (position, index), found in hits.items():
        grouped.setdefault(position, {})[index] = found
    return grouped


def _describe(score: float, rule: Rule, found: Sequence[str]) -> str:
    terms = ", ".join(f"'{term}'" for term in found)
    return (
        f"rule {rule.id} {terms} (+{_number(score)})"
        if terms
        else (f"rule {rule.id} (+{_number(score)})")
    )


def _decide(
    rules: ClassificationRules, matched: list[tuple[float, int, Rule, list[str]]]
) -> tuple[Category, float, str]:
    if not matched:
        return rules.fallback_category, rules.fallback_confidence, "no rule matched"
    top_priority = matched[0][1]
    deciding = [m for m in matched if m[1] == top_priority]
    scores: dict[Category, float] = {}
    for score, _, rule, _ in deciding:
        scores[rule.category] = scores.get(rule.category, 0.0) + score
    rank = {category: index for index, category in enumerate(rules.tie_order)}
    ordered = sorted(scores.items(), key=lambda s: (-s[1], rank.get(s[0], len(rank))))
    category, best = ordered[0]
    if best < rules.min_score:
        strongest = deciding[0]
        return (
            rules.fallback_category,
            rules.fallback_confidence,
            f"below min_score {_number(rules.min_score)}: "
            + _describe(strongest[0], strongest[2], strongest[3]),
        )
    confidence = (best / sum(scores.values())) * _strength(best, rules.confidence_scale)
    why = "; ".join(
        _describe(s, r, f) for s, _, r, f in deciding if r.category == category and s > 0
    )
    if len(ordered) > 1:
        runner_up, second = ordered[1]
        why += f"; runner-up {runner_up} {_number(second)}"
    return category, round(confidence, 3), why
