"""A Graph API server on loopback: the parts of Messenger, Instagram and WhatsApp we call.

It speaks the documented wire format:
- `POST /v21.0/me/messages` (Messenger/Instagram Send API) with a JSON body, or
  multipart with `recipient`, `message` and `filedata` for an upload; answers
  `{"recipient_id", "message_id"}`.
- `POST /v21.0/{phone_number_id}/messages` (WhatsApp Cloud API); answers
  `{"messaging_product", "contacts", "messages": [{"id": "wamid..."}]}`.
- `POST /v21.0/{phone_number_id}/media` (multipart upload); answers `{"id"}`.
- `GET /v21.0/{media_id}`; answers the media's short-lived `url` on lookaside.fbsbx.com,
  which is served (with the same Bearer token) at `/whatsapp_business/attachments/`.
- `GET /v21.0/{user_id}?fields=...` for a profile added with `add_profile` (Messenger
  user profile, Instagram user profile): the requested fields that the profile has.
- any other `GET` path: a CDN file (Messenger/Instagram attachment URLs), no token.
Errors are `{"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}`.
Every call is recorded so tests assert what Meta would have received.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

VERSION = "v21.0"


@dataclass
class Call:
    path: str  # e.g. "me/messages", "1234/messages", "1234/media"
    body: dict[str, Any]
    files: dict[str, tuple[str, bytes, str]]
    authorization: str | None


@dataclass
class Failure:
    status: int
    code: int | None  # None: a non-JSON error page, as a load balancer answers
    message: str = ""
    subcode: int | None = None


class FakeGraphApi:
    def __init__(self, token: str) -> None:
        self.token = token
        self.calls: list[Call] = []
        self.downloads: list[tuple[str, str | None]] = []  # (path, Authorization)
        self._cdn: dict[str, tuple[str, bytes]] = {}
        self._media: dict[str, tuple[str, bytes]] = {}
        self._failures: dict[str, list[Failure]] = {}
        self._profiles: dict[str, dict[str, str]] = {}
        self.profile_calls: list[tuple[str, str, str | None]] = []  # (id, fields, auth)
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.origin = ""

    @property
    def base_url(self) -> str:
        return f"{self.origin}/{VERSION}/"

    # --- what tests set up ----------------------------------------------------------------

    def add_cdn_file(self, path: str, content: bytes, content_type: str) -> None:
        self._cdn[path] = (content_type, content)

    def add_media(self, media_id: str, content: bytes, content_type: str) -> None:
        self._media[media_id] = (content_type, content)

    def add_profile(self, user_id: str, **fields: str) -> None:
        self._profiles[user_id] = fields

    def fail(
        self,
        path: str,
        status: int,
        code: int | None,
        message: str = "",
        *,
        subcode: int | None = None,
        times: int = 1,
    ) -> None:
        self._failures.setdefault(path, []).extend(
            [Failure(status, code, message, subcode)] * times
        )

    def calls_to(self, path: str) -> list[Call]:
        return [c for c in self.calls if c.path == path]

    # --- the server -----------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(client_max_size=110 * 1024 * 1024)
        app.router.add_post(f"/{VERSION}/{{node}}/{{edge}}", self._post)
        app.router.add_get(f"/{VERSION}/{{media_id}}", self._media_url)
        app.router.add_get("/whatsapp_business/attachments/", self._media_download)
        app.router.add_get("/{path:.+}", self._cdn_file)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.origin = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @staticmethod
    def _error(failure: Failure) -> web.Response:
        if failure.code is None:
            return web.Response(status=failure.status, text="<html>Bad Gateway</html>")
        error: dict[str, Any] = {
            "message": failure.message,
            "type": "OAuthException",
            "code": failure.code,
            "fbtrace_id": "AbCdEfGh123",
        }
        if failure.subcode is not None:
            error["error_subcode"] = failure.subcode
        return web.json_response({"error": error}, status=failure.status)

    def _authorized(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {self.token}"

    async def _post(self, request: web.Request) -> web.Response:
        path = f"{request.match_info['node']}/{request.match_info['edge']}"
        body: dict[str, Any] = {}
        files: dict[str, tuple[str, bytes, str]] = {}
        if request.content_type == "application/json":
            body = await request.json()
        else:
            form = await request.post()
            for name, value in form.items():
                if isinstance(value, web.FileField):
                    files[name] = (value.filename, value.file.read(), value.content_type)
                else:
                    body[name] = json.loads(value) if name in {"recipient", "message"} else value
        self.calls.append(Call(path, body, files, request.headers.get("Authorization")))
        if not self._authorized(request):
            return self._error(Failure(401, 190, "Invalid OAuth access token."))
        pending = self._failures.get(path)
        if pending:
            return self._error(pending.pop(0))
        number = next(self._ids)
        node, edge = path.split("/")
        if edge == "media":
            media_id = f"90000{number}"
            name, content, content_type = files["file"]
            self._media[media_id] = (content_type, content)
            return web.json_response({"id": media_id})
        if node == "me":
            return web.json_response(
                {"recipient_id": body["recipient"]["id"], "message_id": f"m_out{number}"}
            )
        if "to" in body:
            contact = {"input": body["to"], "wa_id": body["to"]}
        else:  # sent to a business-scoped user id: no phone number is disclosed
            contact = {"input": body["recipient"], "user_id": body["recipient"]}
        return web.json_response(
            {
                "messaging_product": "whatsapp",
                "contacts": [contact],
                "messages": [{"id": f"wamid.OUT{number}"}],
            }
        )

    async def _media_url(self, request: web.Request) -> web.Response:
        media_id = request.match_info["media_id"]
        if "fields" in request.query:
            return self._profile(request, media_id)
        self.downloads.append((request.path, request.headers.get("Authorization")))
        if not self._authorized(request):
            return self._error(Failure(401, 190, "Invalid OAuth access token."))
        pending = self._failures.get(media_id)
        if pending:
            return self._error(pending.pop(0))
        if media_id not in self._media:
            return self._error(Failure(400, 100, "Unsupported get request."))
        content_type, content = self._media[media_id]
        return web.json_response(
            {
                "messaging_product": "whatsapp",
                "url": f"https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid={media_id}",
                "mime_type": content_type,
                "file_size": len(content),
                "id": media_id,
            }
        )

    def _profile(self, request: web.Request, user_id: str) -> web.Response:
        fields = request.query["fields"]
        self.profile_calls.append((user_id, fields, request.headers.get("Authorization")))
        if not self._authorized(request):
            return self._error(Failure(401, 190, "Invalid OAuth access token."))
        pending = self._failures.get(user_id)
        if pending:
            return self._error(pending.pop(0))
        profile = self._profiles.get(user_id)
        if profile is None:  # what Meta answers for a user the page may not look up
            return self._error(Failure(400, 100, "Unsupported get request.", subcode=33))
        wanted = fields.split(",")
        return web.json_response(
            {"id": user_id, **{k: v for k, v in profile.items() if k in wanted}}
        )

    async def _media_download(self, request: web.Request) -> web.Response:
        self.downloads.append((request.path_qs, request.headers.get("Authorization")))
        if not self._authorized(request):
            return web.Response(status=401)
        found = self._media.get(request.query.get("mid", ""))
        if found is None:
            return web.Response(status=404)
        return web.Response(body=found[1], content_type=found[0])

    async def _cdn_file(self, request: web.Request) -> web.Response:
        self.downloads.append((request.path, request.headers.get("Authorization")))
        pending = self._failures.get(request.path)
        if pending:
            return self._error(pending.pop(0))
        found = self._cdn.get(request.path)
        if found is None:
            return web.Response(status=404)
        return web.Response(body=found[1], content_type=found[0])
