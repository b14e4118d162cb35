"""The OpenAPI document, made to say exactly what the API answers.

litestar derives most of it from the handlers; this adds what it cannot know: every
error is RFC 9457 problem+json (not litestar's own error shape), the bodies of the raw
endpoints (mail, provider webhooks) with their real media types, the success bodies of
handlers that answer pre-encoded bytes (idempotent replays), and links from create
operations to the read and update operations of what they created, so that a client
or a stateful fuzzer can chain create -> read -> update.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from litestar.openapi.spec import (
    Link,
    OpenAPI,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Reference,
    RequestBody,
    Schema,
)

from helpdesk.web.problems import MEDIA_TYPE as PROBLEM_MEDIA_TYPE

METHODS = ("get", "put", "post", "patch", "delete")

# Statuses any operation may answer (as problem+json), and those of any write.
_ANY = {
    400: "The request is not valid (each field named in `errors`)",
    401: "No valid token (or, on public endpoints, a failed signature or secret)",
    403: "The caller's role may not do this",
    404: "No such object, or not within the caller's scope",
    429: "Too many requests; retry after `Retry-After` seconds",
    503: "A backing service is unavailable; retry after `Retry-After` seconds",
}
_WRITE = {
    409: "Conflicts with the current state (e.g. a name that is taken)",
    413: "The body is too large",
    415: "The body's media type is not accepted",
    422: "Idempotency-Key reused with a different request",
}
_IF_MATCH = {
    412: "The object changed since the ETag sent in If-Match",
    428: "If-Match is required",
}
IF_MATCH_OPERATIONS = frozenset({"updateTicket"})
# Statuses only some operations answer.
EXTRA_ERRORS = {
    "verifyWebhook": {405: "The provider makes no subscription handshake"},
}
# Operations that answer an error status with their usual body (readiness: 503 with
# the same details as 200).
SAME_BODY_ON = {"getReadiness": 503}
# Pages a customer opens in a browser answer their errors as HTML pages too.
HTML_ERRORS = {"showCsatPage": (404, 409), "commentCsat": (404, 409)}


def _problem_schema() -> Schema:
    text = Schema(type=OpenAPIType.STRING)
    field_error = Schema(
        type=OpenAPIType.OBJECT,
        properties={"field": text, "message": text},
        required=["field", "message"],
    )
    return Schema(
        type=OpenAPIType.OBJECT,
        description="RFC 9457 problem details; `errors` names each invalid field by its path",
        properties={
            "type": text,
            "title": text,
            "status": Schema(type=OpenAPIType.INTEGER),
            "detail": text,
            "instance": text,
            "request_id": text,
            "errors": Schema(type=OpenAPIType.ARRAY, items=field_error),
        },
        required=["type", "title", "status", "detail"],
    )


def _content(media_type: str, schema: Schema | Reference) -> dict[str, OpenAPIMediaType]:
    return {media_type: OpenAPIMediaType(schema=schema)}


_BINARY = Schema(type=OpenAPIType.STRING)
_ANY_OBJECT = Schema(type=OpenAPIType.OBJECT, additional_properties=True)
_TEXT = Schema(type=OpenAPIType.STRING)


def _form(*fields: str) -> Schema:
    return Schema(
        type=OpenAPIType.OBJECT,
        properties={name: _TEXT for name in fields},
        additional_properties=True,
    )


# What the raw endpoints read (they take the bytes, not a decoded model).
RAW_BODIES: dict[str, dict[str, OpenAPIMediaType]] = {
    "receiveMail": _content("message/rfc822", _BINARY),
    "receiveMailgun": _content(
        "multipart/form-data", _form("timestamp", "token", "signature", "body-mime")
    ),
    "receiveMailgunMime": _content(
        "multipart/form-data", _form("timestamp", "token", "signature", "body-mime")
    ),
    "receiveSendgridMail": _content("multipart/form-data", _form("email")),
    "receivePostmarkMail": _content(
        "application/json",
        Schema(
            type=OpenAPIType.OBJECT,
            properties={"RawEmail": _TEXT},
            additional_properties=True,
        ),
    ),
    "receiveWebhook": _content("application/json", _ANY_OBJECT)
    | _content("application/x-www-form-urlencoded", _form("payload")),
    "receiveInteraction": _content("application/x-www-form-urlencoded", _form("payload")),
    "commentCsat": _content("application/x-www-form-urlencoded", _form("comment", "rating"))
    | _content("application/json", _form("comment", "rating")),
}

# Success bodies litestar cannot see: (status, media type, schema or component name).
SUCCESS: dict[str, tuple[int, str, str | Schema]] = {
    "createTicket": (201, "application/json", "TicketOut"),
    "createTicketFromCall": (201, "application/json", "TicketOut"),
    "mergeTicket": (200, "application/json", "TicketOut"),
    "createReply": (201, "application/json", "MessageOut"),
    "createNote": (201, "application/json", "MessageOut"),
    "logCall": (201, "application/json", "MessageOut"),
    "mergeCustomer": (200, "application/json", "CustomerDetail"),
    "downloadAttachment": (200, "application/octet-stream", _BINARY),
    "downloadMessageSource": (200, "message/rfc822", _BINARY),
    "downloadQuarantinedMail": (200, "message/rfc822", _BINARY),
    "streamTickets": (200, "text/event-stream", _TEXT),
    "streamSla": (200, "text/event-stream", _TEXT),
    "streamChatEvents": (200, "text/event-stream", _TEXT),
    "showCsatPage": (200, "text/html", _TEXT),
    "commentCsat": (200, "text/html", _TEXT),
    "verifyWebhook": (200, "text/plain", _TEXT),
    "receiveWebhook": (200, "text/plain", _TEXT),
    "receiveInteraction": (200, "text/plain", _TEXT),
}


def _link(operation_id: str, **parameters: str) -> Link:
    return Link(operation_id=operation_id, parameters=parameters)


# From a create operation's answer to what reads and changes the object it made.
LINKS: dict[str, dict[str, Link]] = {
    "createTicket": {
        "getTicket": _link("getTicket", ticket_id="$response.body#/id"),
        "updateTicket": _link("updateTicket", ticket_id="$response.body#/id"),
        "createReply": _link("createReply", ticket_id="$response.body#/id"),
        "createNote": _link("createNote", ticket_id="$response.body#/id"),
        "getTicketSla": _link("getTicketSla", ticket_id="$response.body#/id"),
        "getCustomer": _link("getCustomer", customer_id="$response.body#/customer_id"),
    },
    "createTicketFromCall": {
        "getTicket": _link("getTicket", ticket_id="$response.body#/id"),
        "updateTicket": _link("updateTicket", ticket_id="$response.body#/id"),
        "logCall": _link("logCall", ticket_id="$response.body#/id"),
    },
    "createAgent": {"updateAgent": _link("updateAgent", agent_id="$response.body#/id")},
    "createTemplate": {
        "updateTemplate": _link("updateTemplate", template_id="$response.body#/id"),
        "deleteTemplate": _link("deleteTemplate", template_id="$response.body#/id"),
    },
    "createCalendar": {
        "updateCalendar": _link("updateCalendar", calendar_id="$response.body#/id"),
    },
    "createPolicy": {"updatePolicy": _link("updatePolicy", policy_id="$response.body#/id")},
    "createRoutingRule": {
        "updateRoutingRule": _link("updateRoutingRule", rule_id="$response.body#/id"),
    },
    "createGroup": {
        "updateGroupRouting": _link("updateGroupRouting", group_id="$response.body#/id"),
    },
    "upsertCustomer": {
        "getCustomer": _link("getCustomer", customer_id="$response.body#/customer_id"),
        "setCustomerStage": _link("setCustomerStage", customer_id="$response.body#/customer_id"),
        "getCustomerTimeline": _link(
            "getCustomerTimeline", customer_id="$response.body#/customer_id"
        ),
    },
    "createEmailAccount": {
        "getEmailAccount": _link("getEmailAccount", name="$response.body#/name"),
        "updateEmailAccount": _link("updateEmailAccount", name="$response.body#/name"),
    },
    "createChannelAccount": {
        "getChannelAccount": _link(
            "getChannelAccount", kind="$response.body#/kind", name="$response.body#/name"
        ),
        "updateChannelAccount": _link(
            "updateChannelAccount", kind="$response.body#/kind", name="$response.body#/name"
        ),
    },
}


def by_last_segment(**ids: str) -> Callable[..., str]:
    """An operation id per path for a handler served at several paths, chosen by the
    path's last segment (`mime=...` for `/.../mailgun/mime`)."""

    def create(route_handler: Any, http_method: Any, path_components: list[Any]) -> str:
        last = path_components[-1]
        return ids[last if isinstance(last, str) else last.name]

    return create


def operations(openapi: OpenAPI) -> Iterator[tuple[str, str, Operation]]:
    for path, item in (openapi.paths or {}).items():
        for method in METHODS:
            operation = getattr(item, method, None)
            if operation is not None:
                yield path, method, operation


def refine(openapi: OpenAPI) -> OpenAPI:
    """Make litestar's document exact (see the module's docstring); in place."""
    schemas = openapi.components.schemas
    schemas["Problem"] = _problem_schema()
    problem = Reference(ref="#/components/schemas/Problem")
    for _path, method, operation in operations(openapi):
        operation_id = operation.operation_id or ""
        responses = dict(operation.responses or {})
        errors = dict(_ANY)
        if method != "get":
            errors |= _WRITE
        if operation_id in IF_MATCH_OPERATIONS:
            errors |= _IF_MATCH
        errors |= EXTRA_ERRORS.get(operation_id, {})
        html = HTML_ERRORS.get(operation_id, ())
        for status in html:
            errors.setdefault(status, _WRITE.get(status, ""))
        for status, description in errors.items():
            content = _content(PROBLEM_MEDIA_TYPE, problem)
            if status in html:
                content |= _content("text/html", _TEXT)
            responses[str(status)] = OpenAPIResponse(description=description, content=content)
        if operation_id in SUCCESS:
            status, media_type, body = SUCCESS[operation_id]
            schema = (
                Reference(ref=f"#/components/schemas/{body}") if isinstance(body, str) else body
            )
            if isinstance(body, str) and body not in schemas:
                raise LookupError(f"{operation_id}: no component schema {body}")
            previous = responses.pop(str(status), None) or responses.pop("200", None)
            description = previous.description if isinstance(previous, OpenAPIResponse) else ""
            responses[str(status)] = OpenAPIResponse(
                description=description or "Done", content=_content(media_type, schema)
            )
        if operation_id in SAME_BODY_ON:
            usual, error = responses.get("200"), responses[str(SAME_BODY_ON[operation_id])]
            if isinstance(usual, OpenAPIResponse) and isinstance(error, OpenAPIResponse):
                error.content = (error.content or {}) | (usual.content or {})
        if operation_id in LINKS:
            for code, response in responses.items():
                if code.startswith("2") and isinstance(response, OpenAPIResponse):
                    response.links = dict(LINKS[operation_id])
        if operation_id in RAW_BODIES:
            operation.request_body = RequestBody(
                content=dict(RAW_BODIES[operation_id]), required=True
            )
        operation.responses = dict(sorted(responses.items()))
    return openapi
