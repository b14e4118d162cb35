"""The console's files: one module graph from index.html, every module served as
JavaScript under the console's strict CSP."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.conftest import Client

STATIC = Path(__file__).resolve().parents[2] / "helpdesk" / "console" / "static"


def _imports(source: str) -> list[str]:
    return re.findall(r'^import .* from "/console/([\w.-]+)";$', source, re.MULTILINE)


def test_every_console_module_is_reached_from_the_page() -> None:
    """index.html loads app.js as a module; every other script is imported from there,
    so no file ships unused and none is missing."""
    page = (STATIC / "index.html").read_text()
    assert '<script type="module" src="/console/app.js"></script>' in page
    reached: set[str] = set()
    todo = ["app.js"]
    while todo:
        name = todo.pop()
        if name in reached:
            continue
        reached.add(name)
        todo.extend(_imports((STATIC / name).read_text()))
    assert reached == {p.name for p in STATIC.glob("*.js")}


def _content_type(response: Any) -> str:
    return str(response.headers["content-type"]).partition(";")[0]


async def test_console_modules_are_served_as_javascript_under_the_csp(client: Client) -> None:
    for script in sorted(STATIC.glob("*.js")):
        response = await client.get(f"/console/{script.name}")
        assert response.status_code == 200, script.name
        assert _content_type(response) == "text/javascript", script.name
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "script-src 'self'" in response.headers["content-security-policy"]
    page = await client.get("/console/")
    assert "<script>" not in page.text  # no inline scripts: the CSP would block them
