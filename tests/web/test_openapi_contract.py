"""The OpenAPI document is one a client (or a stateful fuzzer) can rely on: stable
operation ids, links from create to read/update, problem+json errors, real bodies."""

from __future__ import annotations

import re
from typing import Any

import pytest

from helpdesk.app import create_app
from helpdesk.config import Settings

METHODS = ("get", "put", "post", "patch", "delete")
CREATES_WITH_LINKS = {
    "createTicket": {"getTicket", "updateTicket", "createReply"},
    "createTicketFromCall": {"getTicket", "updateTicket"},
    "createAgent": {"updateAgent"},
    "createTemplate": {"updateTemplate", "deleteTemplate"},
    "createCalendar": {"updateCalendar"},
    "createPolicy": {"updatePolicy"},
    "createRoutingRule": {"updateRoutingRule"},
    "upsertCustomer": {"getCustomer", "setCustomerStage"},
    "createEmailAccount": {"getEmailAccount", "updateEmailAccount"},
    "createChannelAccount": {"getChannelAccount", "updateChannelAccount"},
}
RAW_BODIES = {
    "receiveMail": {"message/rfc822"},
    "receiveMailgun": {"multipart/form-data"},
    "receiveMailgunMime": {"multipart/form-data"},
    "receiveSendgridMail": {"multipart/form-data"},
    "receivePostmarkMail": {"application/json"},
    "receiveWebhook": {"application/json", "application/x-www-form-urlencoded"},
    "receiveInteraction": {"application/x-www-form-urlencoded"},
}


@pytest.fixture(scope="module")
def document(settings: Settings) -> dict[str, Any]:
    schema: dict[str, Any] = create_app(settings).openapi_schema.to_schema()
    return schema


def operations(document: dict[str, Any]) -> dict[str, tuple[str, str, dict[str, Any]]]:
    found = {}
    for path, item in document["paths"].items():
        for method in METHODS:
            if method in item:
                operation = item[method]
                assert "operationId" in operation, f"{method.upper()} {path} has no operationId"
                assert operation["operationId"] not in found, operation["operationId"]
                found[operation["operationId"]] = (path, method, operation)
    return found


def test_every_operation_has_a_unique_readable_operation_id(document: dict[str, Any]) -> None:
    ids = operations(document)
    assert len(ids) >= 80
    for operation_id in ids:
        assert re.fullmatch(r"[a-z]+(?:[A-Z][a-z]*)*", operation_id), operation_id
    assert ids["createTicket"][:2] == ("/tickets", "post")
    assert ids["getTicket"][:2] == ("/tickets/{ticket_id}", "get")
    assert ids["updateTicket"][:2] == ("/tickets/{ticket_id}", "patch")


def test_create_operations_link_to_reading_and_updating_what_they_made(
    document: dict[str, Any],
) -> None:
    ids = operations(document)
    for create, expected in CREATES_WITH_LINKS.items():
        _path, _method, operation = ids[create]
        success = [r for status, r in operation["responses"].items() if status.startswith("2")]
        links = success[0].get("links", {})
        assert expected <= set(links), create
        for link in links.values():
            target_path = ids[link["operationId"]][0]
            for parameter, expression in link["parameters"].items():
                assert "{" + parameter + "}" in target_path, (create, link)
                assert expression.startswith("$response.body#/"), (create, link)


def test_errors_are_documented_as_problem_json(document: dict[str, Any]) -> None:
    for operation_id, (_path, method, operation) in operations(document).items():
        responses = operation["responses"]
        statuses = {"400", "401", "403", "404", "429", "503"}
        if method != "get":
            statuses |= {"409", "413", "415", "422"}
        assert statuses <= set(responses), operation_id
        for status in statuses:
            content = responses[status]["content"]
            assert "application/problem+json" in content, (operation_id, status)


def test_raw_endpoints_document_the_bodies_they_read(document: dict[str, Any]) -> None:
    ids = operations(document)
    for operation_id, media_types in RAW_BODIES.items():
        body = ids[operation_id][2]["requestBody"]
        assert set(body["content"]) == media_types, operation_id


def test_readiness_documents_its_details_on_503(document: dict[str, Any]) -> None:
    responses = operations(document)["getReadiness"][2]["responses"]
    assert set(responses["503"]["content"]) == {"application/json", "application/problem+json"}
    assert (
        responses["503"]["content"]["application/json"]
        == responses["200"]["content"]["application/json"]
    )
