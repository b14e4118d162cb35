"""Settings: shipped defaults < optional file < HELPDESK_* variables.

The defaults are `helpdesk/defaults.toml`, package data read with importlib.resources, so
an installed wheel has them wherever it runs; a deployment overrides them with the file
named by HELPDESK_CONFIG_FILE (see `config/helpdesk.example.toml`) and with variables.
Built once at start-up and passed down; no module reads the environment on its own.
A wrong value raises `ConfigError` with one line naming the setting.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import msgspec

DEFAULTS_RESOURCE = "defaults.toml"  # in the `helpdesk` package
ENV_PREFIX = "HELPDESK_"


class AuthSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    token_ttl_hours: int = 720
    login_max_failures: int = 5
    login_max_failures_per_address: int = 20
    login_window_seconds: int = 900
    known_device_days: int = 365
    not_found_limit: int = 60
    not_found_window_seconds: int = 60
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    argon2_parallelism: int = 4


class SlaCalendarSeed(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    name: str
    spec: dict[str, Any]


class SlaPolicySeed(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """A policy stored on first start (admins edit them through the API afterwards)."""

    name: str
    conditions: dict[str, Any] = {}
    calendar: str | None = None
    first_response_minutes: int = 0
    next_response_minutes: int = 0
    resolution_minutes: int = 0
    business_time: list[str] = []
    pause_statuses: list[str] = msgspec.field(default_factory=lambda: ["pending"])
    pausable: list[str] = msgspec.field(default_factory=lambda: ["resolution"])
    warn_at_percent: int = 75
    escalations: list[dict[str, Any]] = []


class SlaSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    # The promise, and the built-in policy used when the database holds no policy at all.
    first_response_minutes: int = 60
    # Calendar-time targets count 24x7 in this zone; reports print instants in it.
    timezone: str = "Europe/Prague"
    # How often the safety-net sweep runs, and how far ahead it schedules precise jobs.
    sweep_interval_seconds: int = 30
    # Email account whose SMTP settings send escalation emails ("": the first with SMTP).
    notice_email_account: str = ""
    calendars: list[SlaCalendarSeed] = []
    policies: list[SlaPolicySeed] = []


class RoutingSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    # Acknowledge new chat tickets to the customer (email acknowledges on receipt).
    acknowledge: bool = True
    # Per language; {number} is the ticket number, {due} the first-response due time.
    acknowledgement: dict[str, str] = msgspec.field(
        default_factory=lambda: {
            "en": "Thank you, we have your request as ticket #{number}. "
            "We will answer by {due} at the latest.",
        }
    )
    # How often the worker looks for tickets not routed yet and queues waiting for agents.
    sweep_interval_seconds: int = 2
    # The internal group (by name) a ticket is escalated to when the escalation names no
    # group and routing named none for the ticket (empty: none, such an escalation is 422).
    default_escalation_group: str = ""


class CustomerSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    # Lifecycle derivation (helpdesk/defaults.toml documents the rules).
    loyal_min_orders: int = 5
    loyal_min_revenue: float = 20000.0
    loyal_period_days: int = 365
    inactive_after_days: int = 365
    # At risk: this many bad experiences within the window.
    risk_threshold: int = 3
    risk_window_days: int = 90
    # What counts as a bad experience.
    bad_experience_kinds: list[Literal["sla_breach", "low_rating", "reopened"]] = msgspec.field(
        default_factory=lambda: ["sla_breach", "low_rating", "reopened"]
    )


class CsatSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    enabled: bool = True
    # Asked this long after the ticket is solved (not if it was reopened meanwhile).
    delay_minutes: int = 60
    link_valid_days: int = 14
    # Ratings of 1-2: "alert" the group's supervisors, "reopen" the ticket, "both", "none".
    low_rating_action: Literal["none", "alert", "reopen", "both"] = "alert"
    # Where customers reach the rating page (the API's public address, e.g.
    # "https://help.example.com"); "" means this server itself: http://host:port.
    public_base_url: str = ""
    # Per language; {link} is the signed rating link, {number} the ticket number.
    question: dict[str, str] = msgspec.field(
        default_factory=lambda: {
            "en": "How satisfied are you with our help with ticket #{number}? Rate it "
            "from 1 to 5: {link}",
        }
    )


class WorkerSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    poll_delay_seconds: float = 0.05
    # arq starts at most this many jobs per poll, so a worker runs at most
    # max_jobs / poll_delay_seconds jobs per second (20 and 0.05 s: 400 jobs/s).
    max_jobs: int = 50
    outbox_relay_interval_seconds: int = 5
    outbox_lease_seconds: int = 180
    outbox_max_attempts: int = 8
    metrics_port: int = 9101
    # Webhook deliveries still unprocessed this long after arrival are enqueued again
    # (their job was lost with Redis, or never enqueued); checked this often, too.
    inbound_sweep_seconds: int = 30


class EmailSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    max_message_bytes: int = 40 * 1024 * 1024
    max_attachments: int = 50
    auto_reply_limit_per_hour: int = 1
    # The acknowledgement of a new email ticket in the customer's language (decided as
    # routing decides it); `acknowledgement_text` for every language without an entry.
    acknowledgement_text: str = (
        "Thank you for your message. We have opened ticket #{number} and will answer"
        " within {first_response_minutes} minutes.\n\nPlease keep [#{number}] in the"
        " subject when you write about this matter."
    )
    acknowledgement: dict[str, str] = msgspec.field(
        default_factory=lambda: {
            "cs": "Děkujeme za Vaši zprávu. Založili jsme požadavek #{number} a odpovíme"
            " do {first_response_minutes} minut.\n\nKdyž nám budete o této věci psát,"
            " ponechte prosím v předmětu [#{number}].",
            "sk": "Ďakujeme za Vašu správu. Založili sme požiadavku #{number} a odpovieme"
            " do {first_response_minutes} minút.\n\nKeď nám budete o tejto veci písať,"
            " ponechajte prosím v predmete [#{number}].",
        }
    )
    imap_poll_seconds: float = 60.0
    imap_idle_seconds: float = 1500.0
    imap_batch_size: int = 100
    imap_timeout_seconds: float = 60.0
    imap_backoff_max_seconds: float = 900.0
    smtp_timeout_seconds: float = 60.0


class Settings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    database_url: str = ""
    redis_url: str = ""
    data_dir: str = "var"
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    demo: bool = True
    database_pool_min: int = 1
    database_pool_max: int = 10
    request_max_body_bytes: int = 10 * 1024 * 1024
    attachment_max_bytes: int = 8 * 1024 * 1024
    auth: AuthSettings = AuthSettings()
    sla: SlaSettings = SlaSettings()
    routing: RoutingSettings = RoutingSettings()
    customers: CustomerSettings = CustomerSettings()
    csat: CsatSettings = CsatSettings()
    worker: WorkerSettings = WorkerSettings()
    email: EmailSettings = EmailSettings()

    def public_base_url(self) -> str:
        """Where customers reach this API: `csat.public_base_url`, else the address it
        serves on (`host`, `port`; a wildcard host is reached on loopback)."""
        if self.csat.public_base_url:
            return self.csat.public_base_url.rstrip("/")
        wildcard = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104
        host = wildcard.get(self.host, self.host)
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    def __post_init__(self) -> None:
        _check_range("port", self.port, 1, 65535)
        _check_range("database_pool_min", self.database_pool_min, 1, 1000)
        _check_range("database_pool_max", self.database_pool_max, self.database_pool_min, 1000)
        _check_range("request_max_body_bytes", self.request_max_body_bytes, 1024, 1 << 30)
        _check_range("attachment_max_bytes", self.attachment_max_bytes, 1, 25 * 1024 * 1024)
        _check_range("sla.first_response_minutes", self.sla.first_response_minutes, 1, 100_000)
        _check_range("worker.max_jobs", self.worker.max_jobs, 1, 10_000)
        _check_range("auth.token_ttl_hours", self.auth.token_ttl_hours, 1, 24 * 365)
        _check_range("auth.login_max_failures", self.auth.login_max_failures, 1, 1000)
        _check_range("auth.argon2_memory_kib", self.auth.argon2_memory_kib, 8, 1 << 22)
        _check_range("email.max_message_bytes", self.email.max_message_bytes, 1024, 1 << 30)
        _check_range("email.max_attachments", self.email.max_attachments, 0, 10_000)
        _check_range(
            "email.auto_reply_limit_per_hour", self.email.auto_reply_limit_per_hour, 0, 1000
        )
        _check_range("email.imap_batch_size", self.email.imap_batch_size, 1, 10_000)
        _check_range("email.imap_poll_seconds", self.email.imap_poll_seconds, 0.05, 86_400)
        _check_range("email.imap_idle_seconds", self.email.imap_idle_seconds, 0.05, 1740)
        for name, url, schemes in (
            ("database_url", self.database_url, ("postgres://", "postgresql://")),
            ("redis_url", self.redis_url, ("redis://", "rediss://", "unix://")),
        ):
            if url and not url.startswith(schemes):
                raise ValueError(f"{name}: must start with one of {', '.join(schemes)}")


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise ValueError(f"{name}: {value} is out of range [{low}, {high}]")


class ConfigError(Exception):
    """A setting is wrong; the message is one line fit for the operator."""


def default_settings_toml() -> dict[str, Any]:
    """The shipped defaults (`helpdesk/defaults.toml`), from the installed package."""
    source = resources.files("helpdesk").joinpath(DEFAULTS_RESOURCE)
    return tomllib.loads(source.read_text("utf-8"))


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"configuration file {path} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"configuration file {path} is not valid TOML: {exc}") from exc


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


_ENV_META = {"HELPDESK_CONFIG_FILE"}


def _env_overrides(environ: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Turn HELPDESK_SECTION__NAME=value into nested keys; remember each key's variable."""
    overrides: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for variable, value in environ.items():
        if not variable.startswith(ENV_PREFIX) or variable in _ENV_META:
            continue
        if variable.startswith("HELPDESK_TEST_"):
            continue
        path = variable[len(ENV_PREFIX) :].lower().split("__")
        target = overrides
        for part in path[:-1]:
            target = target.setdefault(part, {})
        target[path[-1]] = value
        origin[".".join(path)] = variable
    return overrides, origin


_LOCATION = re.compile(r" - at `\$\.?([^`]*)`")


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Build the settings, or raise ConfigError naming the offending setting."""
    env = os.environ if environ is None else environ
    if "HELPDESK_CONFIG_DIR" in env:
        # It once named a directory replacing the defaults; they ship in the package now.
        raise ConfigError(
            "HELPDESK_CONFIG_DIR is not read: the defaults ship inside the package; "
            "name a file of overrides with HELPDESK_CONFIG_FILE"
        )
    raw = default_settings_toml()
    extra = env.get("HELPDESK_CONFIG_FILE")
    if extra:
        raw = _merge(raw, _read_toml(Path(extra)))
    env_values, origin = _env_overrides(env)
    raw = _merge(raw, env_values)
    raw = _merge(raw, overrides)
    try:
        return msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        message = str(exc)
        match = _LOCATION.search(message)
        setting = match.group(1).replace("[", ".").replace("]", "") if match else ""
        problem = _LOCATION.sub("", message)
        if problem.startswith("Object contains unknown field"):
            setting = setting or problem.split("`")[1]
            problem = "unknown setting"
        variable = origin.get(setting)
        where = f"{setting} (from {variable})" if variable else setting
        raise ConfigError(
            f"invalid setting {where}: {problem}" if where else f"invalid setting {problem}"
        ) from None
