"""Serves the console at `/console/` (and `/` redirects there).

Plain HTML, CSS and native JavaScript modules (`app.js` imports the rest): no build
step, nothing to install. The files
carry no data; every byte an agent sees comes from the API with their own token, so a
partner's browser receives exactly what the API lets them see.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar import Response, get
from litestar.response import Redirect
from litestar.response.base import ASGIResponse
from litestar.static_files import create_static_files_router

STATIC = Path(__file__).parent / "static"
# The console's own files only: no inline scripts, no other origins.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; "
        "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


# What `mimetypes` may call a `.js` file, depending on the system's mime.types; module
# scripts are served as the one RFC 9239 names, whatever the host says.
_JAVASCRIPT = frozenset({"text/javascript", "application/javascript", "application/x-javascript"})


async def _secure(response: ASGIResponse | Response[Any]) -> Any:
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value
    media_type = response.headers.get("content-type", "").partition(";")[0].strip()
    if media_type in _JAVASCRIPT:
        response.headers["content-type"] = "text/javascript; charset=utf-8"
    return response


console_files = create_static_files_router(
    path="/console",
    directories=[STATIC],
    html_mode=True,
    name="console",
    opt={"exclude_from_auth": True},
    include_in_schema=False,
    after_request=_secure,
)


@get("/", exclude_from_auth=True, include_in_schema=False)
async def home() -> Response[None]:
    """`make run` serves the console at `/`."""
    return Redirect("/console/")
