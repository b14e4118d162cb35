"""The results: `bench/results/<date>-<host>[-quick][-only-<scenarios>].json` and a
Markdown table (a run of some scenarios never overwrites a run of all of them)."""

from __future__ import annotations

import os
import platform
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from bench.stats import Row

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_kb = int(line.split()[1])
    except OSError:
        pass
    return {
        "host": socket.gethostname(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "memory_gb": round(memory_kb / 1024 / 1024, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
    }


def _number(value: float | None) -> str:
    if value is None:
        return ""
    if value != value:  # NaN
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def markdown(rows: list[Row], info: dict[str, Any]) -> str:
    m = info["machine"]
    lines = [
        f"## Benchmark {info['date']} on {m['host']} ({info['sizes']['name']} sizes)",
        "",
        f"{m['cpus']} CPUs ({m['cpu']}), {m['memory_gb']} GB RAM, {m['os']}, Python {m['python']}; "
        f"PostgreSQL {info['postgres']['version']} ({info['postgres']['kind']}), "
        f"Redis {info['redis']}. Every value is the median of {info['sizes']['runs']} runs; "
        "ratio = value / baseline, both measured in this run on the same servers.",
        "",
        "| scenario | case | metric | value | baseline | baseline value | ratio | better | note |",
        "|---|---|---|---:|---|---:|---:|---|---|",
    ]
    for row in rows:
        ratio = _number(row.ratio) if row.ratio is not None else ""
        lines.append(
            f"| {row.scenario} | {row.case} | {row.metric} | {_number(row.value)} {row.unit} "
            f"| {row.baseline_name} | {_number(row.baseline)} | {ratio} | {row.better} "
            f"| {row.note} |"
        )
    if info.get("facts"):
        lines += ["", "Facts: " + "; ".join(f"{k}: {v}" for k, v in info["facts"].items())]
    if info.get("missing"):
        lines += ["", "Not measured: " + "; ".join(info["missing"])]
    return "\n".join(lines) + "\n"


def write(rows: list[Row], info: dict[str, Any], folder: Path = RESULTS) -> tuple[Path, Path, str]:
    folder.mkdir(exist_ok=True)
    suffix = "" if info["sizes"]["name"] == "full" else f"-{info['sizes']['name']}"
    if info.get("only"):
        suffix += "-only-" + "-".join(info["only"])
    stem = f"{info['date']}-{info['machine']['host']}{suffix}"
    table = markdown(rows, info)
    json_path = folder / f"{stem}.json"
    md_path = folder / f"{stem}.md"
    document = {**info, "rows": [row.as_json() for row in rows]}
    json_path.write_bytes(msgspec.json.format(msgspec.json.encode(document), indent=2) + b"\n")
    md_path.write_text(table)
    return json_path, md_path, table


def today() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d")
