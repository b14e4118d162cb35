"""How well the default rules classify the labelled messages of `data/` (written for this
project, see data/SOURCES.md): accuracy per category and per language, held to floors.

Measured when the rules were written (304 messages): overall category accuracy 0.967;
complaint 0.905, order 0.986, return 1.000, question 0.984, other 0.975; by language cs
0.952, sk 0.967, en 0.989. Language detection: cs 1.000, sk 0.944, en 0.978. Honesty note:
the rules were adjusted while looking at the misclassified messages of three quarters of
the set (lines 2-4 of every 4); on the quarter never looked at (lines 1, 5, 9, ...) the
category accuracy was 0.908, which is the better guess for new messages. The floors sit a
few points under the measured values: they catch a rules change that makes things worse.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from helpdesk.routing.classification_rules import default_rules
from helpdesk.routing.classify import classify

DATASET = Path(__file__).parent / "data" / "labelled_messages.jsonl"
CATEGORIES = ("complaint", "order", "return", "question", "other")
LANGUAGES = ("cs", "sk", "en")
CHANNELS = {"email", "telegram", "whatsapp", "messenger", "webchat", "slack"}

OVERALL_FLOOR = 0.93
CATEGORY_FLOOR = 0.85
LANGUAGE_FLOOR = 0.90  # category accuracy among the messages of one language
DETECTION_FLOOR = 0.90  # language detection, per language


def load() -> list[dict[str, Any]]:
    with DATASET.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


@pytest.fixture(scope="module")
def messages() -> list[dict[str, Any]]:
    return load()


@pytest.fixture(scope="module")
def answers(messages: list[dict[str, Any]]) -> list[tuple[str, str]]:
    rules = default_rules()
    results = [classify(rules, m["subject"], m["text"], m["channel"]) for m in messages]
    return [(r.category, r.language) for r in results]


def table(rows: dict[str, tuple[int, int]]) -> str:
    lines = [f"{'':<10} {'right':>5} / {'all':>4}  accuracy"]
    for name, (right, total) in rows.items():
        lines.append(f"{name:<10} {right:>5} / {total:>4}  {right / total:.3f}")
    return "\n".join(lines)


def accuracy_by(
    messages: list[dict[str, Any]], answers: list[tuple[str, str]], key: str, names: tuple[str, ...]
) -> dict[str, tuple[int, int]]:
    right: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for message, (category, _) in zip(messages, answers, strict=True):
        total[message[key]] += 1
        right[message[key]] += category == message["category"]
    return {name: (right[name], total[name]) for name in names}


def test_the_dataset_is_large_varied_and_well_formed(messages: list[dict[str, Any]]) -> None:
    assert len(messages) >= 300
    assert all(set(m) == {"subject", "text", "channel", "category", "language"} for m in messages)
    assert {m["category"] for m in messages} == set(CATEGORIES)
    assert {m["channel"] for m in messages} == CHANNELS
    shares = Counter(m["language"] for m in messages)
    assert set(shares) == set(LANGUAGES)
    assert 0.35 <= shares["cs"] / len(messages) <= 0.45
    assert 0.25 <= shares["sk"] / len(messages) <= 0.35
    assert 0.25 <= shares["en"] / len(messages) <= 0.35
    assert len({(m["subject"], m["text"]) for m in messages}) == len(messages)


def test_category_accuracy_stays_above_the_floors(
    messages: list[dict[str, Any]], answers: list[tuple[str, str]]
) -> None:
    by_category = accuracy_by(messages, answers, "category", CATEGORIES)
    by_language = accuracy_by(messages, answers, "language", LANGUAGES)
    right = sum(r for r, _ in by_category.values())
    overall = right / len(messages)
    report = (
        f"\noverall {right} / {len(messages)} = {overall:.3f}\n"
        f"{table(by_category)}\n{table(by_language)}"
    )
    print(report)  # shown with -s, and in the benchmark report
    assert overall >= OVERALL_FLOOR, report
    assert all(r / t >= CATEGORY_FLOOR for r, t in by_category.values()), report
    assert all(r / t >= LANGUAGE_FLOOR for r, t in by_language.values()), report


def test_language_detection_stays_above_the_floor(
    messages: list[dict[str, Any]], answers: list[tuple[str, str]]
) -> None:
    right: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for message, (_, language) in zip(messages, answers, strict=True):
        total[message["language"]] += 1
        right[message["language"]] += language == message["language"]
    rows = {name: (right[name], total[name]) for name in LANGUAGES}
    report = "\n" + table(rows)
    print(report)
    assert all(r / t >= DETECTION_FLOOR for r, t in rows.values()), report
