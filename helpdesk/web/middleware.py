"""ASGI middleware: request ids, access logs and metrics; JSON body sanitising."""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from litestar.types import ASGIApp, Receive, Scope, Send

from helpdesk.errors import ClientDisconnected
from helpdesk.observability import Metrics, request_id_var

log = logging.getLogger("helpdesk.access")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


async def observe_request(
    app: ASGIApp, scope: Scope, receive: Receive, send: Send, metrics: Metrics | None
) -> None:
    """Run one HTTP request with a request id (a sane X-Request-ID is honoured), then log
    and measure it.

    Called from the application's entry point, so it also sees what no route or
    middleware answers: 401s of the authentication layer, 404/405 of the router.
    """
    incoming = _header(scope, b"x-request-id")
    request_id = incoming if incoming and _REQUEST_ID.match(incoming) else uuid.uuid4().hex
    token = request_id_var.set(request_id)
    started = time.perf_counter()
    status = 500

    async def send_with_id(message: Any) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            headers = list(message.get("headers", []))
            headers.append((b"x-request-id", request_id.encode()))
            message = {**message, "headers": headers}
        await send(message)

    try:
        await app(scope, until_disconnect(receive), send_with_id)
    finally:
        elapsed = time.perf_counter() - started
        route = scope.get("path_template") or "unmatched"
        method = scope.get("method", "")
        if metrics is not None:
            metrics.requests.labels(method, route, str(status)).inc()
            metrics.latency.labels(method, route).observe(elapsed)
        user = scope.get("user")
        log.info(
            "request",
            extra={
                "method": method,
                "route": route,
                "status": status,
                "duration_ms": round(elapsed * 1000, 2),
                "agent_id": getattr(user, "agent_id", None),
            },
        )
        request_id_var.reset(token)


def until_disconnect(receive: Receive) -> Receive:
    """`receive` that turns a disconnect before the end of the request body into
    `ClientDisconnected`, logged as one INFO line.

    Whoever reads the body (the framework, the JSON sanitiser, a webhook) would
    otherwise get the framework's 500 exception, logged as an unhandled error with a
    traceback: any client could fill the log without credentials. A disconnect after
    the body (an event stream listening for it) passes through unchanged.
    """
    complete = False

    async def guarded() -> Any:
        nonlocal complete
        message: Any = await receive()
        if message["type"] == "http.request":
            complete = complete or not message.get("more_body", False)
        elif message["type"] == "http.disconnect" and not complete:
            log.info("client disconnected before sending the whole request body")
            raise ClientDisconnected
        return message

    return guarded


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


# A JSON "\u0000" escape preceded by an even number of backslashes (i.e. a real escape).
_NUL_ESCAPE = re.compile(rb"(?<!\\)((?:\\\\)*)\\u0000")


def sanitize_json_body(body: bytes) -> bytes:
    """Make a JSON body storable: invalid UTF-8 and NUL become U+FFFD.

    PostgreSQL `text` rejects NUL and invalid UTF-8; replacing them keeps the
    customer's words instead of rejecting the whole message.
    """
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        body = body.decode("utf-8", errors="replace").encode("utf-8")
    if b"\\u0000" in body:
        body = _NUL_ESCAPE.sub(rb"\1\\ufffd", body)
    return body.replace(b"\x00", "\ufffd".encode())


_NUL_PERCENT = re.compile(rb"%00|\x00")


def sanitize_query_string(query: bytes) -> bytes:
    """NUL in a query string (`%00`) becomes U+FFFD, like NUL in a body."""
    return _NUL_PERCENT.sub(b"%EF%BF%BD", query) if b"%00" in query or b"\x00" in query else query


# Provider webhooks and raw mail are verified and stored byte-exact (a signature covers
# the exact bytes): their bodies are never rewritten.
_RAW_BODY_PATH = re.compile(
    r"^/channels/[^/]+/[^/]+/(?:webhook|inbound(?:/[a-z/]+)?|interactivity)$"
)


def input_sanitizer(max_body_bytes: int) -> Any:
    """Make query strings and bodies storable before any handler parses them.

    Bodies are buffered (up to the limit), sanitised and replayed: a form's `%00`, and
    in any other body (JSON under whatever Content-Type) NUL and invalid UTF-8, become
    U+FFFD. Multipart bodies (files) and the raw provider paths are never rewritten.
    """

    def factory(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            query = scope.get("query_string", b"")
            if query:
                scope["query_string"] = sanitize_query_string(query)
            kind: str = scope["type"]
            if (
                kind != "http"
                or scope.get("method") in ("GET", "HEAD", "DELETE")
                or _RAW_BODY_PATH.match(scope.get("path", ""))
            ):
                await app(scope, receive, send)
                return
            content_type = (_header(scope, b"content-type") or "").lower()
            if content_type.startswith("multipart/"):
                await app(scope, receive, send)  # files are bytes; litestar parses the parts
                return
            # The framework decodes a JSON body whatever Content-Type says (text/plain,
            # none at all), so every body but a form is made storable as JSON.
            sanitize = (
                sanitize_query_string
                if content_type.startswith("application/x-www-form-urlencoded")
                else sanitize_json_body
            )
            chunks: list[bytes] = []
            size = 0
            more = True
            while more:
                message: Any = await receive()
                if message["type"] != "http.request":
                    await app(scope, _replay_then(message, receive), send)
                    return
                chunk = message.get("body", b"")
                size += len(chunk)
                chunks.append(chunk)
                more = message.get("more_body", False)
                if size > max_body_bytes:
                    # Let the framework answer 413 from what it reads.
                    await app(scope, _replay(b"".join(chunks), more, receive), send)
                    return
            body = sanitize(b"".join(chunks))
            await app(scope, _replay(body, False, receive), send)

        return middleware

    return factory


def _replay(body: bytes, more: bool, receive: Receive) -> Any:
    sent = False

    async def replay() -> Any:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": more}
        return await receive()

    return replay


def _replay_then(first: Any, receive: Receive) -> Any:
    sent = False

    async def replay() -> Any:
        nonlocal sent
        if not sent:
            sent = True
            return first
        return await receive()

    return replay
