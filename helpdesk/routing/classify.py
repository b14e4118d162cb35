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

import math
import unicodedata
from collections.abc import Sequence

import msgspec

from helpdesk.routing.classification_rules import (
    APOSTROPHES,
    Category,
    ClassificationRules,
    Rule,
    fold,
)
from helpdesk.routing.matching import WORD, CompiledRules, Hit, compile_rules


class Classification(msgspec.Struct, frozen=True, kw_only=True):
    """The classifier's answer. `matched_rules` lists every rule that matched, at any
    priority (for hit counting), the strongest first."""

    category: Category
    language: str
    confidence: float
    language_confidence: float
    reason: str
    matched_rules: list[str]


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
    compiled: CompiledRules,
    rules: ClassificationRules,
    raw: str,
    sender: str | None,
    vocabulary: dict[str, int],
) -> tuple[str, float, str]:
    raw = unicodedata.normalize("NFC", raw).casefold().translate(APOSTROPHES)
    tokens = WORD.findall(raw)
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
    compiled = compile_rules(rules)
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


def _by_rule(hits: dict[Hit, str]) -> dict[int, dict[int, str]]:
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
