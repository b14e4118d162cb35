"""Domain errors. Each maps to one RFC 9457 problem type in `helpdesk.web.problems`."""

from __future__ import annotations

from typing import Any


class HelpdeskError(Exception):
    """Base of every error the API reports to a client; never a 500."""

    status_code = 400
    slug = "bad-request"
    title = "Bad request"

    def __init__(self, detail: str = "", **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra


class InvalidInput(HelpdeskError):
    status_code = 400
    slug = "invalid-input"
    title = "The request is not valid"

    def __init__(self, detail: str, field: str | None = None, **extra: Any) -> None:
        if field is not None:
            extra["errors"] = [{"field": field, "message": detail}]
        super().__init__(detail, **extra)


class Unauthenticated(HelpdeskError):
    status_code = 401
    slug = "unauthenticated"
    title = "Authentication required"


class Forbidden(HelpdeskError):
    status_code = 403
    slug = "forbidden"
    title = "Not allowed"


class NotFound(HelpdeskError):
    """Also what an out-of-scope object looks like: same body, no hint it exists."""

    status_code = 404
    slug = "not-found"
    title = "Not found"


class Conflict(HelpdeskError):
    status_code = 409
    slug = "conflict"
    title = "Conflict"


class VersionMismatch(HelpdeskError):
    status_code = 412
    slug = "version-mismatch"
    title = "The object was changed by someone else"


class PayloadTooLarge(HelpdeskError):
    status_code = 413
    slug = "payload-too-large"
    title = "Payload too large"


class UnprocessableIdempotencyKey(HelpdeskError):
    status_code = 422
    slug = "idempotency-key-reused"
    title = "Idempotency-Key was used with a different request"


class PreconditionRequired(HelpdeskError):
    status_code = 428
    slug = "precondition-required"
    title = "If-Match header required"


class ClientDisconnected(HelpdeskError):
    """The client closed the connection before its request body was complete. Nobody
    reads the answer; it only ends the request without an error in the log."""

    status_code = 400
    slug = "client-disconnected"
    title = "The client disconnected before sending the whole request"


class NotConfigured(HelpdeskError):
    """The request is valid but the deployment lacks a setting it needs (an admin fixes it)."""

    status_code = 422
    slug = "not-configured"
    title = "Not configured"


class TooManyRequests(HelpdeskError):
    status_code = 429
    slug = "too-many-requests"
    title = "Too many requests"

    def __init__(self, detail: str = "", retry_after: int = 60, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.retry_after = retry_after


class ServiceUnavailable(HelpdeskError):
    status_code = 503
    slug = "service-unavailable"
    title = "Service temporarily unavailable"
