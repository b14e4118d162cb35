from __future__ import annotations

from tests.conftest import Client


async def test_openapi_document_describes_the_api(client: Client) -> None:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    for path in (
        "/tickets",
        "/tickets/{ticket_id}",
        "/tickets/{ticket_id}/replies",
        "/customers",
        "/auth/login",
        "/healthz",
        "/readyz",
    ):
        assert path in paths, path
    listing = {p["name"] for p in paths["/tickets"]["get"]["parameters"]}
    assert {"status", "q", "cursor", "limit", "assignee"} <= listing
