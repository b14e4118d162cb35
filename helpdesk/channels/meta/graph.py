"""What all Meta adapters share: webhook checks, the Graph API client, errors, profiles.

Inbound: the subscription handshake (`hub.mode=subscribe`, our verify token, the
challenge echoed) and `X-Hub-Signature-256` (HMAC-SHA256 of the raw body with the app
secret) on every POST. Outbound: the Graph API send endpoints over httpx (no Meta SDK
is maintained for Python), at the account setting `base_url` (a fake server in tests).
A reply outside the 24-hour customer-service window is refused before the request.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import msgspec

from helpdesk.channels import queries
from helpdesk.channels.accounts import ChannelAccount
from helpdesk.channels.adapter import (
    REJECT_UNAUTHENTIC,
    AttachmentFetchError,
    ChannelKind,
    InboundAttachment,
    InboundMessage,
    Normalized,
    OutboundChatMessage,
    Verdict,
    WebhookRequest,
)
from helpdesk.channels.base import (
    PermanentDeliveryError,
    RecipientUnreachableError,
    RetryableDeliveryError,
)
from helpdesk.channels.meta import items, parse
from helpdesk.channels.signatures import verify_meta, verify_meta_handshake
from helpdesk.channels.windows import needs_human_agent_tag, reply_refusal
from helpdesk.config import Settings

if TYPE_CHECKING:
    import asyncpg


log = logging.getLogger(__name__)


DEFAULT_BASE_URL = "https://graph.facebook.com/v21.0/"
SIGNATURE_HEADER = "x-hub-signature-256"
# Hosts Meta serves attachment files from; nothing else is fetched (a signed payload is
# still input, and the WhatsApp token must never leave Meta).
_CDN_SUFFIXES = (".fbcdn.net", ".fbsbx.com", ".facebook.com", ".cdninstagram.com", ".whatsapp.net")
# Graph API error codes worth another try (throttling, temporary unavailability).
_TRANSIENT_CODES = frozenset(
    {1, 2, 4, 17, 32, 341, 613, 80007, 130429, 131000, 131016, 131048, 131056, 133004}
)
# The person cannot be reached on this channel any more.
_UNREACHABLE_CODES = frozenset({551, 131026})
_UNREACHABLE_SUBCODES = frozenset({1545041, 2018001})
_TEXT_LIMITS = {"messenger": 2000, "instagram": 1000, "whatsapp": 4096}


# Profile lookups that failed, by (Graph API, kind, account, user id): not asked again
# for a while, so a person whose profile Meta will not show costs one Graph call per
# interval, not one per message. Per process; bounded.
PROFILE_RETRY_SECONDS = 3600.0
_PROFILE_FAILURES: dict[tuple[str, str, str, str], float] = {}
_PROFILE_FAILURES_MAX = 10_000
PROFILE_TIMEOUT_SECONDS = 5.0


class GraphError(msgspec.Struct):
    message: str = ""
    code: int = 0
    error_subcode: int | None = None


class GraphErrorBody(msgspec.Struct):
    error: GraphError | None = None


class GraphProfile(msgspec.Struct):
    """A Messenger user profile (`first_name`, `last_name`, `name`) or an Instagram one
    (`name`, `username`), as the Graph API answers `GET /{user id}?fields=...`."""

    name: str = ""
    first_name: str = ""
    last_name: str = ""
    username: str = ""


def profile_name(kind: str, profile: GraphProfile) -> str:
    """The name to show: Messenger's full name; Instagram's name with the @username."""
    full = profile.name or " ".join(p for p in (profile.first_name, profile.last_name) if p)
    handle = f"@{profile.username.lstrip('@')}" if profile.username else ""
    if kind == "instagram" and full and handle:
        return f"{full} ({handle})"[:200]
    return (full or handle)[:200]


def base_url(account: ChannelAccount) -> str:
    url = str(account.setting("base_url") or DEFAULT_BASE_URL)
    return url if url.endswith("/") else url + "/"


def cdn_url(account: ChannelAccount, url: str) -> str:
    """Where to fetch an attachment: only a Meta CDN host over https, moved to the
    configured base URL's host when there is one (a fake server in tests)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme != "https" or not host.endswith(_CDN_SUFFIXES):
        raise ValueError("not a Meta CDN URL; not fetched")
    configured = account.setting("base_url")
    if not configured:
        return url
    base = urlsplit(str(configured))
    return urlunsplit((base.scheme, base.netloc, parts.path, parts.query, ""))


_APP: dict[str, str] = {str(kind): name for kind, name in items.APP_NAMES.items()}


class MediaFetchError(AttachmentFetchError):
    """A Meta file could not be downloaded: the shared ingestion stores the message with
    its text and keeps the file as pending (retried) or failed (`permanent`: the URL
    expired, the media id is gone). `reason` never holds the CDN URL or the token."""


def http_fetch_error(kind: str, what: str, status: int) -> MediaFetchError:
    """A refused download: 4xx is final (an expired or withdrawn URL or media id), except
    401 (a token to renew), 408 and 429; 5xx is Meta's outage, worth another try."""
    permanent = 400 <= status < 500 and status not in {401, 408, 429}
    detail = "the link expired or the file was withdrawn" if permanent else "try again later"
    return MediaFetchError(
        f"{_APP.get(kind, kind)} {what} failed: HTTP {status} ({detail})", permanent=permanent
    )


def checked_cdn_url(account: ChannelAccount, url: str) -> str:
    try:
        return cdn_url(account, url)
    except ValueError:
        raise MediaFetchError(
            "the file's address is not on Meta's file servers; not fetched", permanent=True
        ) from None


def split_text(text: str, limit: int) -> list[str]:
    """The reply in pieces the provider accepts, cut at paragraph or line breaks where
    possible (Messenger takes 2,000 characters, Instagram 1,000, WhatsApp 4,096)."""
    text = text.strip()
    pieces: list[str] = []
    while len(text) > limit:
        cut = max(text.rfind("\n\n", 0, limit), text.rfind("\n", 0, limit))
        if cut < limit // 2:
            cut = text.rfind(" ", 0, limit)
        if cut < limit // 2:
            cut = limit
        pieces.append(text[:cut].rstrip())
        text = text[cut:].lstrip()
    if text:
        pieces.append(text)
    return pieces


def delivery_error(kind: str, response: httpx.Response) -> Exception:
    """The outbox's view of a Graph API refusal, with Meta's own message in the reason."""
    try:
        error = msgspec.json.decode(response.content, type=GraphErrorBody).error
    except (msgspec.DecodeError, msgspec.ValidationError):
        error = None
    status = response.status_code
    name = _APP[kind]
    if error is None:
        if status == 429 or status >= 500:
            return RetryableDeliveryError(f"{name} unavailable: HTTP {status}")
        return PermanentDeliveryError(f"{name} refused the message: HTTP {status}")
    detail = f"{error.message or 'no message'} (code {error.code})"
    if error.code in _UNREACHABLE_CODES or error.error_subcode in _UNREACHABLE_SUBCODES:
        return RecipientUnreachableError(f"{name} cannot reach this person: {detail}")
    if status == 429 or status >= 500 or error.code in _TRANSIENT_CODES:
        return RetryableDeliveryError(f"{name} rate limit or outage: {detail}")
    if error.code == 131047 or error.error_subcode == 2018278:
        return PermanentDeliveryError(
            f"{name} refused a reply outside the 24-hour window: {detail}"
        )
    if error.code == 190:
        return PermanentDeliveryError(f"{name} rejected the access token; renew it: {detail}")
    return PermanentDeliveryError(f"{name} refused the message: {detail}")


class MetaAdapter:
    kind: ChannelKind
    credential = "page_access_token"  # the name of the secret, not its value
    recipient_setting = "page_id"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    # --- inbound -------------------------------------------------------------------------

    def verify(self, account: ChannelAccount, request: WebhookRequest, now: float) -> Verdict:
        """GET: the subscription handshake (403 unless our verify token). POST: signed with
        our app secret, or 401 (which check failed is never said)."""
        if request.method == "GET":
            if not verify_meta_handshake(
                account.secret("verify_token"),
                request.query.get("hub.mode"),
                request.query.get("hub.verify_token"),
            ):
                return Verdict(accept=False, status=403)
            challenge = request.query.get("hub.challenge", "")
            return Verdict(accept=False, status=200, body=challenge.encode())
        if not verify_meta(
            account.secret("app_secret"), request.headers.get(SIGNATURE_HEADER), request.body
        ):
            return REJECT_UNAUTHENTIC
        return Verdict(accept=True, dedupe_key=parse.delivery_key(request.body))

    def normalize(self, account: ChannelAccount, payload: bytes) -> list[Normalized]:
        recipient = account.setting(self.recipient_setting) or None
        return list(
            parse.normalize_body(self.kind, account.name, payload, recipient_id=recipient)  # type: ignore[arg-type]
        )

    # --- who wrote ----------------------------------------------------------------------

    profile_fields = "first_name,last_name,name"

    async def resolve_sender(
        self, conn: asyncpg.Connection, account: ChannelAccount, message: InboundMessage
    ) -> InboundMessage:
        """The sender's name from their Graph API profile, where Meta sends none.

        Asked once per person and account: the name is kept on the customer identity
        (and on the customer, unless an agent renamed them), so a person already named
        is never looked up again. A failed lookup (no permission, the person blocked the
        page, Meta unreachable) leaves the placeholder and never fails ingestion; it is
        tried again after `PROFILE_RETRY_SECONDS`."""
        sender = message.sender
        kind: items.MetaKind = self.kind  # type: ignore[assignment]
        if not items.is_placeholder_name(kind, sender.external_id, sender.display_name):
            return message  # Meta named them in the webhook
        identity = (self.kind, account.name, sender.external_id)
        known = await conn.fetchrow(queries.IDENTITY, *identity)
        if known is not None and not items.is_placeholder_name(
            kind, sender.external_id, known["display_name"]
        ):
            return message  # named before: the identity keeps the name
        key = (base_url(account), *identity)  # which Graph API said no, about whom
        failed_at = _PROFILE_FAILURES.get(key)
        if failed_at is not None and time.monotonic() - failed_at < PROFILE_RETRY_SECONDS:
            return message
        name = await self._profile_name(account, sender.external_id)
        if not name:
            if len(_PROFILE_FAILURES) >= _PROFILE_FAILURES_MAX:
                _PROFILE_FAILURES.clear()
            _PROFILE_FAILURES[key] = time.monotonic()
            return message
        _PROFILE_FAILURES.pop(key, None)
        if known is not None:  # a person first seen while no name could be had
            await conn.execute(queries.NAME_IDENTITY, *identity, name)
            await conn.execute(
                queries.NAME_CUSTOMER,
                known["customer_id"],
                name,
                known["display_name"],
            )
        return msgspec.structs.replace(
            message, sender=msgspec.structs.replace(sender, display_name=name)
        )

    async def _profile_name(self, account: ChannelAccount, user_id: str) -> str:
        """`GET /{user id}?fields=...` with the page token; "" when Meta will not say."""
        token = account.secret(self.credential)
        if not token or not user_id.isdigit():
            return ""
        try:
            async with httpx.AsyncClient(
                base_url=base_url(account), timeout=PROFILE_TIMEOUT_SECONDS
            ) as http:
                response = await http.get(
                    user_id,
                    params={"fields": self.profile_fields},
                    headers={"Authorization": f"Bearer {token}"},
                )
        except httpx.HTTPError as error:
            log.warning(
                "profile lookup failed",
                extra={"channel": self.kind, "error_type": type(error).__name__},
            )
            return ""
        if response.status_code != 200:
            reason = delivery_error(self.kind, response)
            log.warning(
                "profile lookup refused",
                extra={"channel": self.kind, "status": response.status_code, "reason": str(reason)},
            )
            return ""
        try:
            profile = msgspec.json.decode(response.content, type=GraphProfile)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return ""
        return profile_name(self.kind, profile)

    # --- files ---------------------------------------------------------------------------

    async def fetch_attachment(
        self, account: ChannelAccount, attachment: InboundAttachment
    ) -> bytes:
        """The file at its CDN URL (`fetch_ref`), or `MediaFetchError` saying why."""
        if not attachment.fetch_ref:
            raise MediaFetchError(f"{_APP[self.kind]} gave no URL for this file", permanent=True)
        url = checked_cdn_url(account, attachment.fetch_ref)
        async with httpx.AsyncClient(timeout=30) as http:
            return await self._download(http, url, None)

    async def _download(self, http: httpx.AsyncClient, url: str, token: str | None) -> bytes:
        """At most the attachment limit + 1 bytes (the caller keeps a note instead)."""
        limit = self._settings.attachment_max_bytes + 1
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        chunks: list[bytes] = []
        size = 0
        try:
            async with http.stream("GET", url, headers=headers) as response:
                if response.status_code != 200:
                    raise http_fetch_error(self.kind, "file download", response.status_code)
                async for chunk in response.aiter_bytes():
                    chunks.append(chunk)
                    size += len(chunk)
                    if size >= limit:
                        break
        except httpx.HTTPError as error:  # never the URL: Meta's CDN URLs carry signatures
            raise MediaFetchError(
                f"{_APP[self.kind]} file server unreachable ({type(error).__name__})"
            ) from None
        return b"".join(chunks)[:limit]

    # --- outbound ------------------------------------------------------------------------

    def _token(self, account: ChannelAccount) -> str:
        token = account.secret(self.credential)
        if not token:
            raise PermanentDeliveryError(
                f"the {self.kind} account '{account.name}' has no {self.credential}"
            )
        return token

    def _check_window(self, account: ChannelAccount, outbound: OutboundChatMessage) -> bool:
        """Raises when the reply may not go out; True when it needs the HUMAN_AGENT tag."""
        human_agent = bool(account.setting("human_agent_tag", False))
        now = datetime.now(UTC)
        refusal = reply_refusal(
            self.kind, outbound.last_inbound_at, now, human_agent_tag=human_agent
        )
        if refusal is not None:
            raise PermanentDeliveryError(refusal)
        assert outbound.last_inbound_at is not None  # reply_refusal said so
        return human_agent and needs_human_agent_tag(outbound.last_inbound_at, now)

    async def _post(
        self,
        http: httpx.AsyncClient,
        url: str,
        token: str,
        *,
        json: dict[str, Any] | None = None,
        data: dict[str, str] | None = None,
        files: dict[str, tuple[str, bytes, str]] | None = None,
    ) -> dict[str, Any]:
        try:
            response = await http.post(
                url, json=json, data=data, files=files, headers={"Authorization": f"Bearer {token}"}
            )
        except httpx.TransportError as error:
            raise RetryableDeliveryError(
                f"{self.kind} unreachable: {type(error).__name__}"
            ) from None
        if response.status_code != 200:
            raise delivery_error(self.kind, response)
        try:
            answer = response.json()
        except ValueError:
            raise RetryableDeliveryError(f"{self.kind} answered with a non-JSON body") from None
        return answer if isinstance(answer, dict) else {}

    async def send(self, account: ChannelAccount, outbound: OutboundChatMessage) -> str:
        """The text (in pieces if long), then each file. Meta takes no idempotency key: a
        failure after the first piece went out fails the delivery saying so, not resent."""
        token = self._token(account)
        tagged = self._check_window(account, outbound)
        self._check_files(outbound)
        requests = [("text", piece) for piece in split_text(outbound.text, _TEXT_LIMITS[self.kind])]
        requests += [("file", str(i)) for i in range(len(outbound.attachments))]
        if not requests:
            raise PermanentDeliveryError("the reply has neither text nor files")
        first: str | None = None
        async with httpx.AsyncClient(base_url=base_url(account), timeout=30) as http:
            for what, value in requests:
                try:
                    if what == "text":
                        sent = await self._send_text(http, token, account, outbound, value, tagged)
                    else:
                        attachment = outbound.attachments[int(value)]
                        sent = await self._send_file(
                            http, token, account, outbound, attachment, tagged
                        )
                except (RetryableDeliveryError, PermanentDeliveryError) as error:
                    if first is None:
                        raise
                    raise PermanentDeliveryError(
                        f"only partly sent (the first part reached {self.kind}, the rest did not; "
                        f"not resent to avoid duplicates): {error.reason}"
                    ) from None
                first = first or sent
        assert first is not None
        return first

    def _check_files(self, outbound: OutboundChatMessage) -> None:
        """Raises, before anything is sent, when a file cannot go out on this channel."""

    def _file_type(self, filename: str, content_type: str) -> str:
        """The Send API attachment type a file goes out as."""
        return attachment_type(content_type)

    async def _send_text(
        self,
        http: httpx.AsyncClient,
        token: str,
        account: ChannelAccount,
        outbound: OutboundChatMessage,
        text: str,
        tagged: bool,
    ) -> str:
        raise NotImplementedError

    async def _send_file(
        self,
        http: httpx.AsyncClient,
        token: str,
        account: ChannelAccount,
        outbound: OutboundChatMessage,
        attachment: tuple[str, str, bytes],
        tagged: bool,
    ) -> str:
        raise NotImplementedError


def attachment_type(content_type: str) -> str:
    major = content_type.split("/", 1)[0]
    return major if major in {"image", "video", "audio"} else "file"


def sent_message_id(answer: dict[str, Any], kind: str) -> str:
    """`message_id` (Messenger/Instagram) or `messages[0].id` (WhatsApp)."""
    found = answer.get("message_id")
    if not found:
        messages = answer.get("messages")
        if isinstance(messages, list) and messages and isinstance(messages[0], dict):
            found = messages[0].get("id")
    if not found:
        raise PermanentDeliveryError(f"{kind} accepted the message but returned no id")
    return str(found)
