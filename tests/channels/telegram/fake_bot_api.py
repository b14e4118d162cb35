"""A Telegram Bot API server on loopback, for python-telegram-bot pointed at it by base URL.

It speaks the documented wire format (https://core.telegram.org/bots/api#making-requests):
`POST /bot<token>/<method>` with form or multipart parameters, answers in the
`{"ok": true, "result": ...}` envelope or `{"ok": false, "error_code", "description",
"parameters"}`, and serves files at `/file/bot<token>/<file_path>`. It records every
call so tests assert what Telegram would have received, and can be told to fail.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

BOT_USER = {"id": 7000000001, "is_bot": True, "first_name": "Shop Help", "username": "shop_bot"}


@dataclass
class Call:
    method: str
    params: dict[str, str]
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # name -> (filename, data)


@dataclass
class Failure:
    status: int
    description: str
    parameters: dict[str, Any] | None = None


class FakeBotApi:
    def __init__(self, token: str) -> None:
        self.token = token
        self.calls: list[Call] = []
        self.updates: list[dict[str, Any]] = []
        self.webhook: dict[str, str] | None = None
        self._failures: dict[str, list[Failure]] = {}
        self._files: dict[str, tuple[str, bytes]] = {}  # file_id -> (file_path, content)
        self._message_ids = itertools.count(500)
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    # --- what tests set up -------------------------------------------------------------

    def add_file(self, file_id: str, file_path: str, content: bytes) -> None:
        self._files[file_id] = (file_path, content)

    def fail(
        self,
        method: str,
        status: int,
        description: str,
        *,
        retry_after: int | None = None,
        times: int = 1,
    ) -> None:
        """The next `times` calls of `method` answer this error instead."""
        parameters = None if retry_after is None else {"retry_after": retry_after}
        self._failures.setdefault(method, []).extend(
            [Failure(status, description, parameters)] * times
        )

    def calls_of(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    # --- the server ----------------------------------------------------------------------

    async def start(self) -> str:
        app = web.Application(client_max_size=60 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._method)
        app.router.add_get("/file/bot{token}/{path:.+}", self._file)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @staticmethod
    def _error(status: int, description: str, parameters: dict[str, Any] | None = None) -> Any:
        body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
        if parameters:
            body["parameters"] = parameters
        return web.json_response(body, status=status)

    async def _method(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return self._error(401, "Unauthorized")
        method = request.match_info["method"]
        params: dict[str, str] = {}
        files: dict[str, tuple[str, bytes]] = {}
        if request.content_type == "application/json":
            params = {
                k: v if isinstance(v, str) else json.dumps(v)
                for k, v in (await request.json()).items()
            }
        else:
            for name, value in (await request.post()).items():
                if isinstance(value, web.FileField):
                    files[name] = (value.filename, value.file.read())
                else:
                    params[name] = str(value)
        params.update(request.query)
        self.calls.append(Call(method, params, files))
        pending = self._failures.get(method)
        if pending:
            failure = pending.pop(0)
            return self._error(failure.status, failure.description, failure.parameters)
        handler = getattr(self, f"_api_{method}", None)
        if handler is None:
            return self._error(404, "Not Found")
        result = handler(params, files)
        if isinstance(result, web.Response):
            return result
        return web.json_response({"ok": True, "result": result})

    async def _file(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return web.Response(status=401)
        for path, content in self._files.values():
            if path == request.match_info["path"]:
                return web.Response(body=content, content_type="application/octet-stream")
        return web.Response(status=404)

    # --- Bot API methods -------------------------------------------------------------------

    def _message(self, params: dict[str, str]) -> dict[str, Any]:
        chat_id = params["chat_id"]
        message: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "from": BOT_USER,
            "chat": {"id": int(chat_id) if chat_id.lstrip("-").isdigit() else 0, "type": "private"},
            "date": int(time.time()),
        }
        return message

    def _api_getMe(self, params: dict[str, str], files: Any) -> Any:
        return BOT_USER

    def _api_answerCallbackQuery(self, params: dict[str, str], files: Any) -> Any:
        if not params.get("callback_query_id"):
            return self._error(400, "Bad Request: query is too old or query ID is invalid")
        return True

    def _api_sendMessage(self, params: dict[str, str], files: Any) -> Any:
        if not params.get("text"):
            return self._error(400, "Bad Request: message text is empty")
        return {**self._message(params), "text": params["text"]}

    def _api_sendDocument(self, params: dict[str, str], files: dict[str, tuple[str, bytes]]) -> Any:
        if "document" not in files:
            return self._error(400, "Bad Request: there is no document in the request")
        filename, content = files["document"]
        unique = hashlib.sha256(content).hexdigest()[:16]
        message = self._message(params)
        message["document"] = {
            "file_id": f"BQAD{unique}",
            "file_unique_id": unique,
            "file_name": filename,
            "file_size": len(content),
        }
        if params.get("caption"):
            message["caption"] = params["caption"]
        return message

    def _api_getFile(self, params: dict[str, str], files: Any) -> Any:
        found = self._files.get(params.get("file_id", ""))
        if found is None:
            return self._error(400, "Bad Request: invalid file_id")
        path, content = found
        return {
            "file_id": params["file_id"],
            "file_unique_id": hashlib.sha256(content).hexdigest()[:16],
            "file_size": len(content),
            "file_path": path,
        }

    def _api_setWebhook(self, params: dict[str, str], files: Any) -> Any:
        self.webhook = params
        return True

    def _api_deleteWebhook(self, params: dict[str, str], files: Any) -> Any:
        self.webhook = None
        return True

    def _api_getUpdates(self, params: dict[str, str], files: Any) -> Any:
        if self.webhook is not None:
            return self._error(409, "Conflict: can't use getUpdates method while webhook is active")
        offset = int(params.get("offset", "0"))
        self.updates = [u for u in self.updates if u["update_id"] >= offset]  # confirmed
        limit = int(params.get("limit", "100"))
        return self.updates[:limit]
