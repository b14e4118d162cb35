"""Every error becomes RFC 9457 application/problem+json with a stable `type`.

Domain errors map one to one; framework errors map by status; database outages are
503; anything unexpected is logged with its traceback and answered with a plain 500
that reveals nothing. Denials are written to the audit log after the response.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import asyncpg
import msgspec
from litestar import Request, Response
from litestar.background_tasks import BackgroundTask, BackgroundTasks
from litestar.exceptions import HTTPException, SerializationException, ValidationException

from helpdesk.agents.models import Principal
from helpdesk.audit import service as audit
from helpdesk.db.pool import database_unavailable
from helpdesk.errors import HelpdeskError
from helpdesk.observability import request_id_var
from helpdesk.web.auth import not_found_key

log = logging.getLogger(__name__)

PROBLEM_BASE = "urn:helpdesk:problem:"
MEDIA_TYPE = "application/problem+json"

_SLUG_BY_STATUS = {
    400: "invalid-input",
    401: "unauthenticated",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    409: "conflict",
    412: "version-mismatch",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "invalid-input",
    428: "precondition-required",
    429: "too-many-requests",
    503: "service-unavailable",
}


def problem(
    request: Request[Any, Any, Any],
    status: int,
    slug: str,
    title: str,
    detail: str,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    background: BackgroundTasks | None = None,
) -> Response[dict[str, Any]]:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
    }
    request_id = request_id_var.get()
    if request_id:
        body["request_id"] = request_id
    if extra:
        body.update(extra)
    return Response(
        body, status_code=status, media_type=MEDIA_TYPE, headers=headers, background=background
    )


def _principal(request: Request[Any, Any, Any]) -> Principal | None:
    user = request.scope.get("user")
    return user if isinstance(user, Principal) else None


def _after_denial(request: Request[Any, Any, Any], status: int, reason: str) -> BackgroundTasks:
    """Audit the denial and, for 404s, count towards the caller's not-found budget."""
    ctx = request.app.state.ctx
    principal = _principal(request)
    ip = request.client.host if request.client else None
    request_id = request_id_var.get()

    async def write() -> None:
        token = request_id_var.set(request_id)
        try:
            if status == 404 and principal is not None:
                key = not_found_key(principal.agent_id)

                async def count() -> tuple[int, int]:
                    async with ctx.redis.pipeline(transaction=True) as pipe:
                        pipe.set(key, 0, ex=ctx.settings.auth.not_found_window_seconds, nx=True)
                        pipe.incr(key)
                        pipe.ttl(key)
                        _, hits, left = await pipe.execute()
                    return int(hits), int(left)

                try:  # skipped while Redis is down (helpdesk.redis_outage)
                    hits, ttl = await ctx.redis_outage.call("not_found_budget", count)
                    if hits >= ctx.settings.auth.not_found_limit and ttl > 0:
                        ctx.over_budget.block(principal.agent_id, ttl)
                except Exception:
                    log.warning("could not count a 404 towards the id-walking budget")
            try:
                await audit.record(
                    ctx.pool,
                    action=f"{request.method} {request.scope.get('path_template', '')}",
                    outcome="denied",
                    actor=principal,
                    object_type="http",
                    object_id=request.url.path,
                    detail={"status": status, "reason": reason},
                    ip=ip,
                )
            except Exception:
                log.warning("could not record a denial in the audit log")
        finally:
            request_id_var.reset(token)

    return BackgroundTasks([BackgroundTask(write)])


def handle_helpdesk_error(
    request: Request[Any, Any, Any], exc: HelpdeskError
) -> Response[dict[str, Any]]:
    headers = {}
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    if exc.status_code == 503:
        headers["Retry-After"] = "5"
    background = None
    if exc.status_code in (401, 403, 429) or (exc.status_code == 404 and _principal(request)):
        background = _after_denial(request, exc.status_code, exc.slug)
    return problem(
        request, exc.status_code, exc.slug, exc.title, exc.detail, exc.extra, headers, background
    )


_AT = re.compile(r" - at `\$\.?([^`]*)`")
_NAMED = re.compile(r"(?:unknown|missing required) field `([^`]*)`")
_REGEX = re.compile(r"Expected `str` matching regex '(.*)'$", re.DOTALL)

# What a pattern allows, said in words (msgspec names only the regex).
_NAME_RULE = (
    "1 to 63 characters: lowercase letters a-z, digits, '-' and '_',"
    " starting with a letter or digit"
)
PATTERN_RULES = {
    r"^[a-z0-9][a-z0-9_-]{0,62}$(?!\n)": _NAME_RULE,
    r"^[a-z0-9][a-z0-9_-]{0,62}$": _NAME_RULE,
    r"^[a-z]{1,20}$(?!\n)": "1 to 20 lowercase letters a-z",
    r"^(me|unassigned|[0-9]{1,18})$": "'me', 'unassigned' or an agent id",
    r"^[a-z]{2}$": "a two-letter language code in lowercase, e.g. 'cs'",
    r"^[A-Z]{3}$": "a three-letter currency code in capitals, e.g. 'CZK'",
    r"^[^\s,]+$": "text without spaces or commas",
    r"^[^\s]+$": "text without spaces",
    r"^[^\r\n\x00]*$(?!\n)": "text on one line",
    r"^[^@\s]+@[^@\s]+$": "an e-mail address (name@domain)",
    r"^[\w.+-]+/[\w.+-]+$(?!\n)": "a media type such as 'application/pdf'",
    r"^\+?[0-9 ()./-]{3,50}$(?!\n)": "a phone number: digits, spaces and + ( ) . / -",
}


def _readable(message: str) -> str:
    """msgspec's "Expected `str` matching regex '...'" said in words where we know the
    pattern, else without the regex syntax a user cannot act on."""
    found = _REGEX.match(message)
    if found is None:
        return message
    pattern = found.group(1)
    rule = PATTERN_RULES.get(pattern) or PATTERN_RULES.get(pattern.replace("\\\\", "\\"))
    return f"Use {rule}" if rule else "The value does not have the expected format"


def _validation_errors(extra: Any) -> list[dict[str, str]]:
    """Name the offending field by its path, the way the client wrote it
    (`customer.email`, `orders[0].ordered_at`, `limit`)."""
    errors = []
    for item in extra if isinstance(extra, list) else []:
        if not isinstance(item, dict):
            continue
        message = str(item.get("message", "invalid value"))
        key = str(item.get("key") or "")
        path = _AT.search(message)
        named = _NAMED.search(message)
        # litestar keeps the path in `key` (`data.orders[0]`) when it cut it from the
        # message; msgspec's own message says `- at `$.orders[0]``.
        if path and path.group(1):
            field = path.group(1)
        else:
            field = "" if key == "data" else key.removeprefix("data.")
        if named:
            field = f"{field}.{named.group(1)}" if field else named.group(1)
        errors.append({"field": field, "message": _readable(_AT.sub("", message))})
    return errors


def handle_http_exception(
    request: Request[Any, Any, Any], exc: HTTPException
) -> Response[dict[str, Any]]:
    status = exc.status_code
    if status >= 500:
        return handle_unexpected(request, exc)
    slug = _SLUG_BY_STATUS.get(status, "client-error")
    extra: dict[str, Any] = {}
    detail = exc.detail
    if isinstance(exc, ValidationException):
        errors = _validation_errors(exc.extra)
        extra["errors"] = errors
        if errors:
            detail = "; ".join(f"{e['field'] or 'body'}: {e['message']}" for e in errors)
    background = _after_denial(request, status, slug) if status in (401, 403) else None
    return problem(
        request, status, slug, detail or slug, detail, extra, dict(exc.headers or {}), background
    )


def handle_bad_body(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    """msgspec raises these for invalid UTF-8 or absurd nesting in a JSON body."""
    return problem(request, 400, "invalid-input", "Malformed request body", str(exc)[:200])


def handle_unavailable(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    log.warning("database unavailable", extra={"error": type(exc).__name__})
    return problem(
        request,
        503,
        "service-unavailable",
        "Service temporarily unavailable",
        "A backing service is unavailable; retry shortly.",
        headers={"Retry-After": "5"},
    )


def handle_serialization(
    request: Request[Any, Any, Any], exc: SerializationException
) -> Response[dict[str, Any]]:
    """A body a handler decoded itself (`request.json()`) that is not JSON is the
    client's error; failing to encode our own answer is ours."""
    if isinstance(exc.__cause__, msgspec.DecodeError):
        return problem(
            request, 400, "invalid-input", "Malformed request body", str(exc.__cause__)[:200]
        )
    return handle_unexpected(request, exc)


_KEY = re.compile(r"^Key \((.+?)\)=")
_WRAPPED = re.compile(r"^\w+\((.+)\)$")  # lower(email) -> email


def conflict_fields(exc: asyncpg.UniqueViolationError) -> list[str]:
    """The columns of the unique key a write collided with, from PostgreSQL's detail
    (`Key (lower(email))=(...) already exists.`); the value is not repeated."""
    found = _KEY.match(getattr(exc, "detail", None) or "")
    if found is None:
        return []
    fields = []
    for column in found.group(1).split(", "):
        unwrapped = _WRAPPED.match(column)
        fields.append(unwrapped.group(1) if unwrapped else column)
    return fields


def handle_unique_violation(
    request: Request[Any, Any, Any], exc: asyncpg.UniqueViolationError
) -> Response[dict[str, Any]]:
    """Any write that collides with a unique key (a name or e-mail that is taken) is
    the client's conflict to resolve, wherever it happens: 409 naming the field(s)."""
    fields = conflict_fields(exc)
    log.info("write refused by a unique key", extra={"constraint": exc.constraint_name})
    if fields:
        names = ", ".join(fields)
        verb = "is" if len(fields) == 1 else "are"
        detail = f"{names} {verb} already taken: another object has the same value"
        errors = [{"field": field, "message": "already taken"} for field in fields]
    else:
        detail = "Another object has the same unique value"
        errors = []
    return problem(request, 409, "conflict", "Conflict", detail, {"errors": errors})


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    if database_unavailable(exc):
        return handle_unavailable(request, exc)
    if isinstance(exc, asyncpg.UniqueViolationError):
        return handle_unique_violation(request, exc)
    if isinstance(exc, SerializationException):
        return handle_serialization(request, exc)
    if isinstance(
        exc, asyncpg.CharacterNotInRepertoireError | asyncpg.UntranslatableCharacterError
    ):
        # Safety net: text PostgreSQL cannot store (NUL), from a path that skipped the
        # input sanitizer (helpdesk.web.middleware).
        log.warning("client text rejected by the database", extra={"error": type(exc).__name__})
        return problem(
            request, 400, "invalid-input", "Invalid text", "Text may not contain NUL characters."
        )
    if isinstance(exc, asyncpg.DataError) and str(exc).startswith("invalid input for query"):
        # Safety net: a client value PostgreSQL cannot take (models should catch it first).
        log.warning("client value rejected by the database", extra={"error": type(exc).__name__})
        return problem(request, 400, "invalid-input", "Invalid value", "A value is out of range.")
    log.error("unhandled error", exc_info=exc)
    return problem(
        request,
        500,
        "internal-error",
        "Internal error",
        "Something went wrong on our side; the request id identifies it in our logs.",
    )


EXCEPTION_HANDLERS: dict[type[Exception] | int, Any] = {
    HelpdeskError: handle_helpdesk_error,
    HTTPException: handle_http_exception,
    RecursionError: handle_bad_body,
    UnicodeDecodeError: handle_bad_body,
    SerializationException: handle_serialization,
    asyncpg.UniqueViolationError: handle_unique_violation,
    Exception: handle_unexpected,
}
