"""A Slack Web API server on loopback, for slack-sdk's AsyncWebClient pointed at it by base URL.

It speaks the documented wire format (https://docs.slack.dev/apis/web-api/): `POST
/api/<method>` with a JSON, form or query body and the token as `Authorization: Bearer`;
answers `{"ok": true, ...}` or `{"ok": false, "error": "<code>"}` (HTTP 200 for most
errors, 429 with `Retry-After` for `ratelimited`). It also takes the uploads of
`files.getUploadURLExternal` URLs and serves `url_private_download` files. Every call is
recorded so tests assert what Slack would have received, and it can be told to fail.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

TEAM_ID = "T123ABC456"
BOT_USER_ID = "U0HELPBOT"
BOT_ID = "B0HELPBOT"


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    authorization: str | None
    content_type: str


@dataclass
class Failure:
    status: int
    error: str | None  # None: a non-JSON error page, as a proxy or load balancer answers
    retry_after: int | None = None


@dataclass
class Upload:
    file_id: str
    filename: str
    length: int
    content: bytes | None = None
    completed: dict[str, Any] = field(default_factory=dict)


class FakeSlackApi:
    def __init__(self, token: str) -> None:
        self.token = token
        self.calls: list[Call] = []
        self.uploads: dict[str, Upload] = {}
        self.downloads: list[str | None] = []  # the Authorization header of each file GET
        self._files: dict[str, tuple[str, bytes]] = {}  # path -> (content type, bytes)
        self._file_objects: dict[str, dict[str, Any]] = {}  # id -> files.info's `file`
        self._users: dict[str, dict[str, Any]] = {}  # id -> users.info's `user`
        self._download_failures: list[int] = []  # HTTP statuses for the next file GETs
        self._failures: dict[str, list[Failure]] = {}
        self._ts = itertools.count(100)
        self._file_ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.origin = ""

    @property
    def base_url(self) -> str:
        """What the account's `base_url` setting holds (slack-sdk appends the method)."""
        return f"{self.origin}/api/"

    # --- what tests set up -------------------------------------------------------------

    def add_file(self, path: str, content: bytes, content_type: str) -> None:
        """Serve `content` at `path` (the path of a url_private_download)."""
        self._files[path] = (content_type, content)

    def add_file_object(self, file: dict[str, Any]) -> None:
        """What files.info answers for `file["id"]`."""
        self._file_objects[file["id"]] = file

    def fail_downloads(self, status: int, *, times: int = 1) -> None:
        """The next `times` file downloads answer `status` (a 403 of a missing scope)."""
        self._download_failures.extend([status] * times)

    def add_user(self, user: dict[str, Any]) -> None:
        """What users.info answers for `user["id"]`."""
        self._users[user["id"]] = user

    def fail(
        self,
        method: str,
        status: int,
        error: str | None,
        *,
        retry_after: int | None = None,
        times: int = 1,
    ) -> None:
        """The next `times` calls of `method` answer this error instead."""
        self._failures.setdefault(method, []).extend([Failure(status, error, retry_after)] * times)

    def calls_of(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    # --- the server ----------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(client_max_size=60 * 1024 * 1024)
        app.router.add_route("*", "/api/{method}", self._method)  # slack-sdk GETs reads
        app.router.add_post("/upload/v1/{file_id}", self._upload)
        app.router.add_get("/files-pri/{path:.+}", self._download)
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
    def _error(error: str, status: int = 200, retry_after: int | None = None) -> web.Response:
        headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
        return web.json_response({"ok": False, "error": error}, status=status, headers=headers)

    async def _method(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        params: dict[str, Any] = dict(request.query)
        if request.content_type == "application/json":
            params.update(await request.json())
        elif request.can_read_body:
            params.update({k: str(v) for k, v in (await request.post()).items()})
        authorization = request.headers.get("Authorization")
        self.calls.append(Call(method, params, authorization, request.content_type))
        if authorization != f"Bearer {self.token}":
            return self._error("invalid_auth" if authorization else "not_authed")
        pending = self._failures.get(method)
        if pending:
            failure = pending.pop(0)
            if failure.error is None:
                return web.Response(
                    status=failure.status,
                    text="<html>upstream error</html>",
                    content_type="text/html",
                )
            return self._error(failure.error, failure.status, failure.retry_after)
        handler = getattr(self, "_api_" + method.replace(".", "_"), None)
        if handler is None:
            return self._error("unknown_method", status=404)
        result: web.Response | dict[str, Any] = handler(params)
        if isinstance(result, web.Response):
            return result
        return web.json_response({"ok": True, **result})

    async def _upload(self, request: web.Request) -> web.StreamResponse:
        upload = self.uploads.get(request.match_info["file_id"])
        if upload is None:
            return web.Response(status=404, text="not found")
        upload.content = await request.read()
        return web.Response(text=f"OK - {len(upload.content)}")

    async def _download(self, request: web.Request) -> web.StreamResponse:
        authorization = request.headers.get("Authorization")
        self.downloads.append(authorization)
        if authorization != f"Bearer {self.token}":  # Slack shows its sign-in page
            return web.Response(text="<html>Sign in to Slack</html>", content_type="text/html")
        if self._download_failures:
            return web.Response(status=self._download_failures.pop(0), text="denied")
        found = self._files.get(request.match_info["path"])
        if found is None:
            return web.Response(status=404)
        content_type, content = found
        return web.Response(body=content, content_type=content_type)

    # --- Web API methods -------------------------------------------------------------------

    def _api_auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": "https://example.slack.com/",
            "team": "Example",
            "user": "helpbot",
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
        }

    def _api_chat_postMessage(self, params: dict[str, Any]) -> web.Response | dict[str, Any]:
        channel = params.get("channel")
        if not channel:
            return self._error("channel_not_found")
        if not params.get("text") and not params.get("blocks"):
            return self._error("no_text")
        ts = f"1700000000.{next(self._ts):06d}"
        message = {"type": "message", "user": BOT_USER_ID, "bot_id": BOT_ID, "ts": ts}
        message["text"] = params.get("text", "")
        if params.get("thread_ts"):
            message["thread_ts"] = params["thread_ts"]
        return {"channel": channel, "ts": ts, "message": message}

    def _api_files_info(self, params: dict[str, Any]) -> web.Response | dict[str, Any]:
        found = self._file_objects.get(str(params.get("file", "")))
        if found is None:
            return self._error("file_not_found")
        return {"file": found, "comments": [], "response_metadata": {"next_cursor": ""}}

    def _api_users_info(self, params: dict[str, Any]) -> web.Response | dict[str, Any]:
        found = self._users.get(str(params.get("user", "")))
        if found is None:
            return self._error("user_not_found")
        return {"user": found}

    def _api_files_getUploadURLExternal(self, params: dict[str, Any]) -> Any:
        if not params.get("filename") or not str(params.get("length", "")).isdigit():
            return self._error("invalid_arguments")
        file_id = f"F0UPLOAD{next(self._file_ids):03d}"
        self.uploads[file_id] = Upload(file_id, params["filename"], int(params["length"]))
        return {"upload_url": f"{self.origin}/upload/v1/{file_id}", "file_id": file_id}

    def _api_files_completeUploadExternal(self, params: dict[str, Any]) -> Any:
        files = json.loads(params.get("files", "[]"))
        done = []
        for item in files:
            upload = self.uploads.get(item.get("id", ""))
            if upload is None or upload.content is None or len(upload.content) != upload.length:
                return self._error("file_upload_not_found")
            upload.completed = {**params, "title": item.get("title")}
            done.append({"id": upload.file_id, "name": upload.filename, "title": item.get("title")})
        return {"files": done}
