"""The classifier's accuracy per category on the labelled messages (issue 6 asks for it here).

`helpdesk.routing.classify` with the shipped default rules over
`tests/routing/data/labelled_messages.jsonl`. Per category: recall (share of that
category's messages labelled right). Baseline: always answering the most common
category, the accuracy any classifier must beat. No database, no timing.
"""

from __future__ import annotations

import collections
from pathlib import Path

import msgspec

from bench.context import Bench
from bench.environment import ROOT
from bench.stats import Row
from helpdesk.routing.classification_rules import default_rules
from helpdesk.routing.classify import classify

DATA = ROOT / "tests" / "routing" / "data" / "labelled_messages.jsonl"


class Labelled(msgspec.Struct):
    subject: str
    text: str
    channel: str
    category: str
    language: str


def evaluate(path: Path = DATA) -> dict[str, tuple[int, int]]:
    """Per category (and 'all', 'language'): (right, total)."""
    rules = default_rules()
    right: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    for line in path.read_text("utf-8").splitlines():
        if not line.strip():
            continue
        item = msgspec.json.decode(line, type=Labelled)
        answer = classify(rules, item.subject, item.text, item.channel)
        for key in (item.category, "all"):
            total[key] += 1
            right[key] += answer.category == item.category
        total["language"] += 1
        right["language"] += answer.language == item.language
    return {key: (right[key], total[key]) for key in total}


def run(bench: Bench) -> None:
    results = evaluate()
    categories = sorted(k for k in results if k not in {"all", "language"})
    majority = max(categories, key=lambda k: results[k][1])
    majority_share = results[majority][1] / results["all"][1] * 100
    for key in [*categories, "all", "language"]:
        right, total = results[key]
        what = "language" if key == "language" else "category"
        bench.add(
            Row(
                "classifier",
                f"{key} ({total} messages)"
                if key not in {"all", "language"}
                else f"{key} ({total})",
                f"{what} accuracy",
                "%",
                runs=[right / total * 100],
                better="higher",
                baseline_name=f"always '{majority}'" if key == "all" else "",
                baseline_runs=[majority_share] if key == "all" else [],
            )
        )
