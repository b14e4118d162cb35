"""Structured JSON logs with a request id on every line, and Prometheus metrics.

Logs never carry message bodies, passwords, tokens or signatures: callers pass only
ids and outcomes in `extra`, and the formatter drops keys that look like secrets.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)

_STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
_SECRET_HINTS = ("password", "token", "secret", "signature", "authorization", "body")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key in _STANDARD_ATTRS or key.startswith("_"):
                continue
            if any(hint in key.lower() for hint in _SECRET_HINTS):
                continue
            entry[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            entry["error"] = record.exc_info[0].__name__
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("uvicorn.access",):
        logging.getLogger(noisy).handlers[:] = []
        logging.getLogger(noisy).propagate = False
    for name in ("uvicorn", "uvicorn.error", "arq", "arq.worker"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # HTTP clients log every request URL at INFO; provider URLs carry secrets (the
    # Telegram Bot API puts the bot token in the path), so only their warnings pass.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)


class Metrics:
    """One registry per process (and per app in tests), so metrics never leak between apps."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "helpdesk_http_requests_total",
            "HTTP requests by route template, method and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "helpdesk_http_request_duration_seconds",
            "HTTP request latency by route template",
            ["method", "route"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.messages_stored = Counter(
            "helpdesk_messages_stored_total",
            "Messages stored through the API, by channel, direction and kind",
            ["channel", "direction", "kind"],
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "helpdesk_queue_depth",
            "Jobs waiting in the arq queue (read at scrape time)",
            registry=self.registry,
        )
        self.outbox_waiting = Gauge(
            "helpdesk_outbox_waiting",
            "Outbound deliveries by status (read at scrape time)",
            ["status"],
            registry=self.registry,
        )
        self.deliveries = Counter(
            "helpdesk_deliveries_total",
            "Outbound delivery attempts by channel and outcome (counted by the worker)",
            ["channel", "outcome"],
            registry=self.registry,
        )
        self.enqueue_skipped = Counter(
            "helpdesk_enqueue_skipped_total",
            "After-commit jobs not handed to Redis (down or slow); the worker's relay "
            "and sweeps enqueue them",
            registry=self.registry,
        )
        self.redis_skipped = Counter(
            "helpdesk_redis_skipped_total",
            "Uses of Redis the API did not try, as it had failed moments before "
            "(helpdesk.redis_outage)",
            ["use"],
            registry=self.registry,
        )
