"""`helpdesk classify` as other tools run it: JSON lines in, one JSON line out for each,
a bad line reported on stderr without stopping the others, exit status 2 at the end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

COMMAND = Path(sys.executable).parent / "helpdesk"
DATASET = Path(__file__).parent / "data" / "labelled_messages.jsonl"


def run(stdin: str | bytes) -> subprocess.CompletedProcess[bytes]:
    # `make test` installs the project, console script included: its absence is a bug.
    assert COMMAND.exists(), f"no `helpdesk` console script at {COMMAND}"
    return subprocess.run(  # noqa: S603 - our own console script, fixed arguments
        [str(COMMAND), "classify"],
        input=stdin.encode() if isinstance(stdin, str) else stdin,
        capture_output=True,
        timeout=60,
        check=False,
        # No HELPDESK_* settings and no database: the tool needs none.
        env={"PATH": "/usr/bin:/bin"},
        cwd="/",
    )


def test_each_line_gets_exactly_the_four_keys() -> None:
    lines = [
        {"subject": "Reklamace", "text": "Hrnek přišel rozbitý.", "channel": "email"},
        {"subject": "", "text": "kde je moje objednavka??", "channel": "webchat"},
        {"subject": "Refund", "text": "I returned the jacket, where is my refund?"},
        {"text": "vrátenie tovaru, prosím", "channel": None, "id": 17},
    ]
    result = run("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines))
    assert result.returncode == 0, result.stderr
    assert result.stderr == b""
    out = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert [list(answer) for answer in out] == [
        ["category", "language", "confidence", "reason"]
    ] * 4
    assert [(a["category"], a["language"]) for a in out] == [
        ("complaint", "cs"),
        ("order", "cs"),
        ("return", "en"),
        ("return", "sk"),
    ]
    assert all(0 <= a["confidence"] <= 1 for a in out)
    assert "rule complaint.cs 'reklamace'" in out[0]["reason"]


def test_a_bad_line_is_reported_and_the_others_still_answered() -> None:
    stdin = (
        b'{"subject": "Reklamace", "text": "rozbite"}\n'
        b"this is not json\n"
        b"\n"
        b'{"text": 5}\n'
        b'["a list"]\n'
        b'{"subject": "", "text": ""}\n'
        b'{"text": "\xff\xfe broken utf-8"}\n'
        b'{"text": "where is my order?"}\n'
    )
    result = run(stdin)
    assert result.returncode == 2
    out = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert [a["category"] for a in out] == ["complaint", "order"]
    errors = result.stderr.decode().splitlines()
    assert [e.split(":")[1].strip() for e in errors] == [
        "line 2",
        "line 4",
        "line 5",
        "line 6",
        "line 7",
    ]
    assert all(e.startswith("helpdesk classify: line ") for e in errors)
    assert "neither subject nor text" in errors[3]


def test_the_labelled_dataset_pipes_through_as_it_is() -> None:
    result = run(DATASET.read_bytes())
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == len(DATASET.read_bytes().splitlines())
