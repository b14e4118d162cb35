"""Slack through the Events API (inbound) and the Web API via slack-sdk (replies).

Every Events API request is signed with the app's signing secret (v0 HMAC over the
timestamp and the raw body, five-minute window), the `url_verification` handshake too;
the event_id is the delivery id, so Slack's retries (`X-Slack-Retry-Num`, even an
`http_timeout` retry overlapping the first delivery) are stored once. The Web API's base
URL is the account setting `base_url` (a fake server in tests).
"""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import httpx
import msgspec
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from helpdesk.channels.accounts import ChannelAccount
from helpdesk.channels.adapter import (
    REJECT_UNAUTHENTIC,
    AttachmentFetchError,
    ButtonPress,
    ChannelKind,
    FetchedFile,
    InboundAttachment,
    Normalized,
    OutboundChatMessage,
    Verdict,
    WebhookRequest,
)
from helpdesk.channels.base import PermanentDeliveryError, RetryableDeliveryError
from helpdesk.channels.signatures import verify_slack
from helpdesk.channels.slack import mrkdwn, parse
from helpdesk.config import Settings

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://slack.com/api/"
SIGNATURE_HEADER = "x-slack-signature"
TIMESTAMP_HEADER = "x-slack-request-timestamp"
# Slack answers these with HTTP 200 and ok=false, yet they pass: worth another try.
_TRANSIENT = frozenset(
    {"internal_error", "fatal_error", "service_unavailable", "request_timeout", "ratelimited"}
)
# What an agent should do about Slack's permanent refusals.
_HINTS = {
    "channel_not_found": "the channel does not exist or the app cannot see it",
    "not_in_channel": "the app is not a member of the channel; invite it",
    "is_archived": "the channel is archived",
    "msg_too_long": "the reply is too long for Slack",
    "missing_scope": "the app lacks a permission scope (chat:write, files:write)",
    "invalid_auth": "the bot token was rejected; check bot_token",
    "not_authed": "the bot token was rejected; check bot_token",
    "token_revoked": "the bot token was rejected; check bot_token",
    "account_inactive": "the bot token was rejected; check bot_token",
}


def _settings_of(account: ChannelAccount) -> parse.Settings:
    return parse.Settings(
        support_channels=parse.channel_ids(account.setting("support_channels")),
        bot_user_id=account.setting("bot_user_id") or None,
        team_id=account.setting("team_id") or None,
    )


def base_url(account: ChannelAccount) -> str:
    url = str(account.setting("base_url") or DEFAULT_BASE_URL)
    return url if url.endswith("/") else url + "/"


def web_client(account: ChannelAccount) -> AsyncWebClient:
    """slack-sdk's client for one account (it retries a dropped connection once itself)."""
    token = account.secret("bot_token")
    if not token:
        raise PermanentDeliveryError(f"the slack account '{account.name}' has no bot_token")
    return AsyncWebClient(token=token, base_url=base_url(account), timeout=30)


def download_url(account: ChannelAccount, url: str) -> str:
    """Where to fetch a file with the bot token: only ever a Slack host (the token must
    not go elsewhere), moved to the configured base URL's host when there is one."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme != "https" or not (host == "slack.com" or host.endswith(".slack.com")):
        raise ValueError("not a Slack file URL; the bot token is not sent there")
    configured = account.setting("base_url")
    if not configured:
        return url
    base = urlsplit(str(configured))
    return urlunsplit((base.scheme, base.netloc, parts.path, parts.query, ""))


def _download_error(status: int) -> AttachmentFetchError:
    if status in (404, 410):
        return AttachmentFetchError(
            f"Slack file download failed: HTTP {status} (the file is gone)", permanent=True
        )
    if status in (401, 403):
        return AttachmentFetchError(
            f"Slack refused the download: HTTP {status} (the app needs the files:read scope "
            "and access to the channel)"
        )
    return AttachmentFetchError(f"Slack file download failed: HTTP {status}")


async def _file_info(account: ChannelAccount, file_id: str) -> tuple[str, FetchedFile]:
    """files.info for a file the event gave no URL for: (its download URL, its name)."""
    try:
        response = await web_client(account).files_info(file=file_id)
    except (TimeoutError, SlackClientError, aiohttp.ClientError) as error:
        mapped = delivery_error(error)
        reason = str(mapped).replace("refused the message", "refused files.info")
        permanent = isinstance(mapped, PermanentDeliveryError) and "file_not_found" in reason
        raise AttachmentFetchError(reason, permanent=permanent) from None
    except PermanentDeliveryError as error:  # no bot token
        raise AttachmentFetchError(error.reason) from None
    file = response.get("file") or {}
    url = file.get("url_private_download") or file.get("url_private")
    if not url:
        raise AttachmentFetchError("Slack's files.info gave no download URL for this file")
    named = FetchedFile(
        b"", filename=file.get("name") or file.get("title"), content_type=file.get("mimetype")
    )
    return str(url), named


# Display names by (account id, user id): users.info is Tier 4, but a busy channel asks
# for the same few people all day. Per process, an hour, bounded.
_NAME_TTL_SECONDS = 3600.0
_NAME_CACHE_SIZE = 10_000
MAX_LOOKUPS_PER_EVENT = 20
_names: dict[tuple[int, str], tuple[float, str]] = {}


def forget_cached_names() -> None:
    _names.clear()


async def user_names(account: ChannelAccount, users: list[str]) -> dict[str, str]:
    """Display names of `users` (users.info; cached); those Slack does not give are left out."""
    now = time.monotonic()
    found: dict[str, str] = {}
    client: AsyncWebClient | None = None
    for user in users:
        cached = _names.get((account.id, user))
        if cached is not None and cached[0] > now:
            found[user] = cached[1]
            continue
        try:
            client = client or web_client(account)
            response = await client.users_info(user=user)
        except (TimeoutError, SlackClientError, aiohttp.ClientError, PermanentDeliveryError):
            log.warning("slack users.info failed", extra={"account": account.name})
            continue
        name = _name_of(response.get("user") or {})
        if not name:
            continue
        if len(_names) >= _NAME_CACHE_SIZE:
            _names.clear()
        _names[(account.id, user)] = (now + _NAME_TTL_SECONDS, name)
        found[user] = name
    return found


def _name_of(user: dict[str, Any]) -> str:
    profile = user.get("profile") or {}
    for name in (
        profile.get("display_name"),
        profile.get("real_name"),
        user.get("real_name"),
        user.get("name"),
    ):
        if isinstance(name, str) and name.strip():
            return name.strip()
    return ""


def _retry_after(headers: Any) -> float | None:
    for name, value in dict(headers or {}).items():
        if name.lower() == "retry-after":
            raw = value[0] if isinstance(value, list) and value else value
            try:
                seconds = float(str(raw))
            except ValueError:
                return None
            return seconds if seconds > 0 else None
    return None


def delivery_error(error: Exception) -> Exception:
    """The outbox's view of a Web API failure, with Slack's error code in the reason."""
    if isinstance(error, SlackApiError):
        response = error.response
        status = int(getattr(response, "status_code", 0) or 0)
        data = getattr(response, "data", None)
        code = data.get("error") if isinstance(data, dict) else None
        if status == 429 or code == "ratelimited":
            seconds = _retry_after(getattr(response, "headers", None))
            wait = f"; retry after {seconds:g} s" if seconds else ""
            return RetryableDeliveryError(f"Slack rate limit (ratelimited){wait}", seconds)
        if status >= 500 or code in _TRANSIENT:
            return RetryableDeliveryError(f"Slack unavailable: {code or f'HTTP {status}'}")
        if code:
            hint = _HINTS.get(code)
            reason = f"Slack refused the message: {code}" + (f" ({hint})" if hint else "")
            return PermanentDeliveryError(reason)
        return PermanentDeliveryError(f"Slack refused the message: HTTP {status}")
    if isinstance(error, aiohttp.ClientError | TimeoutError):
        return RetryableDeliveryError(f"Slack unreachable: {type(error).__name__}")
    return PermanentDeliveryError(f"Slack error: {error}")


def _blocks(outbound: OutboundChatMessage) -> list[dict[str, Any]]:
    """The text and a row of buttons (their presses come to the interactivity URL)."""
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": mrkdwn.escape(outbound.text)}},
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "text": {"type": "plain_text", "text": label},
                    "value": value,
                    "action_id": f"button_{index}",
                }
                for index, (label, value) in enumerate(outbound.buttons)
            ],
        },
    ]


class SlackAdapter:
    kind: ChannelKind = "slack"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def verify(self, account: ChannelAccount, request: WebhookRequest, now: float) -> Verdict:
        """Signed with our signing secret within five minutes, or 401 (which check failed
        is never said). A signed `url_verification` is answered here with its challenge."""
        if request.method != "POST":
            return Verdict(accept=False, status=405)  # the Events API has no GET handshake
        if not verify_slack(
            account.secret("signing_secret"),
            request.headers.get(TIMESTAMP_HEADER),
            request.headers.get(SIGNATURE_HEADER),
            request.body,
            now,
        ):
            return REJECT_UNAUTHENTIC
        pressed = parse.interaction_key(request.body)
        if pressed is not None:  # a button press (the interactivity request URL)
            return Verdict(accept=True, dedupe_key=pressed)
        kind, event_id, challenge = parse.head(request.body)
        if kind == "url_verification":
            if not challenge:
                return Verdict(accept=False, status=400)
            return Verdict(accept=False, status=200, body=challenge.encode())
        # Authentic but without an event_id (app_rate_limited, unparseable): stored as is.
        return Verdict(accept=True, dedupe_key=event_id if kind == "event_callback" else None)

    def normalize(self, account: ChannelAccount, payload: bytes) -> list[Normalized]:
        return list(parse.normalize_body(account.name, payload, _settings_of(account)))

    async def acknowledge_press(
        self, account: ChannelAccount, press: ButtonPress, text: str
    ) -> None:
        """Nothing to answer: Slack got its 200 when the press was stored."""

    async def normalize_with_lookups(
        self, account: ChannelAccount, payload: bytes
    ) -> list[Normalized]:
        """`normalize` with the names of users the body only has ids for (a sender
        without a profile, `<@U…>` mentions), looked up with users.info and cached; a
        lookup that fails leaves the id shown."""
        settings = _settings_of(account)
        wanted = sorted(parse.users_to_look_up(payload, settings))[:MAX_LOOKUPS_PER_EVENT]
        names = await user_names(account, wanted) if wanted else {}
        return list(parse.normalize_body(account.name, payload, settings, names))

    async def fetch_attachment(
        self, account: ChannelAccount, attachment: InboundAttachment
    ) -> bytes | FetchedFile:
        """`url_private_download` with the bot token as Bearer; a Slack Connect file
        (no URL in the event, `file_access: check_file_info`) is looked up with
        files.info first, as Slack documents. Stops reading past the attachment limit."""
        ref = attachment.fetch_ref
        if not ref:
            raise AttachmentFetchError("Slack sent no way to download this file", permanent=True)
        token = account.secret("bot_token")
        if not token:
            raise AttachmentFetchError(f"the slack account '{account.name}' has no bot_token")
        named: FetchedFile | None = None
        if not ref.startswith(("https://", "http://")):
            ref, named = await _file_info(account, ref)
        try:
            url = download_url(account, ref)
        except ValueError:
            raise AttachmentFetchError(
                "not a Slack file URL; the bot token is not sent there", permanent=True
            ) from None
        content = await self._download(url, token, attachment.content_type)
        if named is None:
            return content
        return msgspec.structs.replace(named, content=content)

    async def _download(self, url: str, token: str, content_type: str) -> bytes:
        limit = self._settings.attachment_max_bytes + 1
        chunks: list[bytes] = []
        size = 0
        try:
            async with (
                httpx.AsyncClient(timeout=30) as http,
                http.stream("GET", url, headers={"Authorization": f"Bearer {token}"}) as response,
            ):
                if response.status_code != 200:
                    raise _download_error(response.status_code)
                html = response.headers.get("content-type", "").startswith("text/html")
                if html and not content_type.startswith("text/html"):
                    # Slack's answer to a token without files:read is its sign-in page.
                    raise AttachmentFetchError(
                        "Slack answered with a sign-in page: the app needs the files:read scope"
                    )
                async for chunk in response.aiter_bytes():
                    chunks.append(chunk)
                    size += len(chunk)
                    if size >= limit:
                        break
        except httpx.HTTPError as error:
            raise AttachmentFetchError(f"Slack unreachable: {type(error).__name__}") from None
        return b"".join(chunks)[:limit]

    async def send(self, account: ChannelAccount, outbound: OutboundChatMessage) -> str:
        """The text with chat.postMessage in the customer's thread, then the files into the
        same thread (files_upload_v2). Files failing after the text went out fail the
        delivery saying so: Slack takes no idempotency key, and a retry would repeat it."""
        channel, thread_ts = parse.conversation_of(outbound.conversation_id)
        client = web_client(account)
        first: str | None = None
        try:
            if outbound.text.strip():
                blocks = _blocks(outbound) if outbound.buttons else None
                posted = await client.chat_postMessage(
                    channel=channel,
                    thread_ts=thread_ts,
                    text=mrkdwn.escape(outbound.text),
                    blocks=blocks,
                )
                first = parse.message_external_id(
                    str(posted.get("channel") or channel), str(posted["ts"])
                )
            if outbound.attachments:
                uploaded = await client.files_upload_v2(
                    file_uploads=[
                        {"content": content, "filename": name, "title": name}
                        for name, _content_type, content in outbound.attachments
                    ],
                    channel=channel,
                    thread_ts=thread_ts,
                )
                if first is None:
                    files = uploaded.get("files") or [{}]
                    first = f"{channel}:file:{files[0].get('id', '')}"
        except (TimeoutError, SlackClientError, aiohttp.ClientError) as error:
            mapped = delivery_error(error)
            if first is None:
                raise mapped from None
            raise PermanentDeliveryError(
                f"only partly sent (the text reached Slack, the files did not; not resent to "
                f"avoid duplicates): {mapped}"
            ) from None
        if first is None:
            raise PermanentDeliveryError("the reply has neither text nor files")
        return first
