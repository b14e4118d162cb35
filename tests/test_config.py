"""Settings: defaults, file and environment overrides, one-line errors."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import typing
from pathlib import Path

import msgspec
import pytest

from helpdesk.config import ConfigError, Settings, load_settings


def test_defaults_promise_a_60_minute_first_response() -> None:
    settings = load_settings({})
    assert settings.sla.first_response_minutes == 60
    assert settings.port == 8000
    assert settings.database_url == ""


def test_environment_overrides_file_overrides_defaults(tmp_path: Path) -> None:
    extra = tmp_path / "site.toml"
    extra.write_text('port = 9000\nlog_level = "DEBUG"\n[auth]\ntoken_ttl_hours = 12\n')
    settings = load_settings(
        {
            "HELPDESK_CONFIG_FILE": str(extra),
            "HELPDESK_PORT": "9100",
            "HELPDESK_DEMO": "0",
            "HELPDESK_SLA__FIRST_RESPONSE_MINUTES": "30",
        }
    )
    assert settings.port == 9100
    assert settings.log_level == "DEBUG"
    assert settings.auth.token_ttl_hours == 12
    assert settings.demo is False
    assert settings.sla.first_response_minutes == 30


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"HELPDESK_PORT": "eighty"}, "invalid setting port (from HELPDESK_PORT)"),
        ({"HELPDESK_PORT": "0"}, "port: 0 is out of range"),
        ({"HELPDESK_LOG_LEVEL": "LOUD"}, "log_level"),
        ({"HELPDESK_DATABASE_URL": "mysql://x"}, "database_url: must start with"),
        ({"HELPDESK_AUTH__TOKEN_TTL_HOURS": "x"}, "auth.token_ttl_hours"),
        ({"HELPDESK_TYPO": "1"}, "invalid setting typo (from HELPDESK_TYPO): unknown setting"),
        ({"HELPDESK_CONFIG_FILE": "/nonexistent.toml"}, "does not exist"),
        # It named a directory replacing the shipped defaults; ignoring it silently would
        # run a deployment on settings it does not expect.
        (
            {"HELPDESK_CONFIG_DIR": "/app/config"},
            "name a file of overrides with HELPDESK_CONFIG_FILE",
        ),
    ],
)
def test_wrong_values_name_the_setting(environ: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_settings(environ)
    assert expected in str(error.value)
    assert "\n" not in str(error.value)


def test_cli_reports_a_bad_setting_in_one_line_without_traceback() -> None:
    env = {**os.environ, "HELPDESK_PORT": "not-a-port"}
    result = subprocess.run(
        [sys.executable, "-m", "helpdesk", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [
        "helpdesk: invalid setting port (from HELPDESK_PORT): Expected `int`, got `str`"
    ]


def test_unreachable_database_is_one_line_without_the_password() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELPDESK_")}
    env["HELPDESK_DATABASE_URL"] = "postgresql://helpdesk:s3cr3t-pw@127.0.0.1:1/helpdesk"
    result = subprocess.run(
        [sys.executable, "-m", "helpdesk", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 3
    assert result.stderr.strip().startswith("helpdesk: cannot use the database:")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "s3cr3t-pw" not in result.stderr + result.stdout


def _documented(example: str) -> set[str]:
    """Every `section.key` the example sets or shows commented out (`# key = ...`), and every
    table it names (`[section.table]`, `[[section.list]]`)."""
    found: set[str] = set()
    section = ""
    for line in example.splitlines():
        text = line.lstrip("#").strip()
        header = re.fullmatch(r"\[\[?([a-z_.]+)\]\]?", text)
        if header:
            section = header.group(1)
            found.add(section)
            continue
        key = re.match(r"([a-z_][a-z0-9_]*)\s*=", text)
        if key:
            found.add(f"{section}.{key.group(1)}" if section else key.group(1))
    return found


def _setting_paths(struct: type[msgspec.Struct], prefix: str = "") -> list[str]:
    """Every setting of the Settings tree, as `section.key` (lists of tables included)."""
    paths = []
    for field in msgspec.structs.fields(struct):
        path = f"{prefix}{field.name}"
        paths.append(path)
        kind = field.type
        if typing.get_origin(kind) is list:
            (kind,) = typing.get_args(kind)
        if isinstance(kind, type) and issubclass(kind, msgspec.Struct):
            paths += _setting_paths(kind, f"{path}.")
    return paths


def test_the_example_file_documents_every_setting() -> None:
    """config/helpdesk.example.toml is the reference of every setting: a field added to the
    Settings tree without an entry there fails here."""
    example = (Path(__file__).parent.parent / "config" / "helpdesk.example.toml").read_text()
    documented = _documented(example)
    missing = [path for path in _setting_paths(Settings) if path not in documented]
    assert missing == []


def test_the_example_file_is_valid_settings() -> None:
    """What the example sets for real loads (a copy is a working deployment file)."""
    example = Path(__file__).parent.parent / "config" / "helpdesk.example.toml"
    settings = load_settings({"HELPDESK_CONFIG_FILE": str(example)})
    assert settings.demo is False
    assert settings.csat.public_base_url == "https://help.example.com"
