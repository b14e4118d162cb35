"""The Messenger, Instagram and WhatsApp adapters: what each product sends its own way."""

from __future__ import annotations

import mimetypes
from typing import TYPE_CHECKING, Any

import httpx
import msgspec

from helpdesk.channels.accounts import ChannelAccount
from helpdesk.channels.adapter import (
    ChannelKind,
    InboundAttachment,
    InboundMessage,
    OutboundChatMessage,
)
from helpdesk.channels.base import (
    PermanentDeliveryError,
    RecipientUnreachableError,
)
from helpdesk.channels.catalogue import entry
from helpdesk.channels.meta.graph import (
    MediaFetchError,
    MetaAdapter,
    attachment_type,
    base_url,
    checked_cdn_url,
    http_fetch_error,
    sent_message_id,
)

if TYPE_CHECKING:
    import asyncpg


def _messaging_type(tagged: bool) -> dict[str, str]:
    if tagged:
        return {"messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT"}
    return {"messaging_type": "RESPONSE"}


class MessengerAdapter(MetaAdapter):
    """Messenger: the Send API (`POST me/messages`) with the page access token."""

    kind: ChannelKind = "messenger"

    async def _send_text(
        self,
        http: httpx.AsyncClient,
        token: str,
        account: ChannelAccount,
        outbound: OutboundChatMessage,
        text: str,
        tagged: bool,
    ) -> str:
        body = {
            "recipient": {"id": outbound.conversation_id},
            **_messaging_type(tagged),
            "message": {"text": text},
        }
        answer = await self._post(http, "me/messages", token, json=body)
        return sent_message_id(answer, self.kind)

    async def _send_file(
        self,
        http: httpx.AsyncClient,
        token: str,
        account: ChannelAccount,
        outbound: OutboundChatMessage,
        attachment: tuple[str, str, bytes],
        tagged: bool,
    ) -> str:
        """An upload in the same call (multipart `filedata`), as the Send API documents."""
        filename, content_type, content = attachment
        message = {
            "attachment": {
                "type": self._file_type(filename, content_type),
                "payload": {"is_reusable": False},
            }
        }
        data = {
            "recipient": msgspec.json.encode({"id": outbound.conversation_id}).decode(),
            "message": msgspec.json.encode(message).decode(),
            **_messaging_type(tagged),
        }
        answer = await self._post(
            http,
            "me/messages",
            token,
            data=data,
            files={"filedata": (filename, content, content_type)},
        )
        return sent_message_id(answer, self.kind)


# What Instagram messaging takes (Meta's "Upload Media for Instagram Messaging"): PNG,
# JPEG and GIF images up to 8 MB; MP4, OGG, AVI, MOV and WebM videos, AAC, M4A, WAV and
# MP4 audio and PDF files up to 25 MB. Anything else it refuses, unlike Messenger.
_INSTAGRAM_TYPES = {
    "image/png": "image",
    "image/jpeg": "image",
    "image/gif": "image",
    "video/mp4": "video",
    "video/ogg": "video",
    "video/x-msvideo": "video",
    "video/avi": "video",
    "video/quicktime": "video",
    "video/webm": "video",
    "audio/aac": "audio",
    "audio/x-aac": "audio",
    "audio/mp4": "audio",
    "audio/m4a": "audio",
    "audio/x-m4a": "audio",
    "audio/wav": "audio",
    "audio/x-wav": "audio",
    "audio/wave": "audio",
    "audio/vnd.wave": "audio",
    "application/pdf": "file",
}
_INSTAGRAM_LIMITS = entry("instagram").outbound_max_bytes
_INSTAGRAM_ACCEPTS = (
    "Instagram takes PNG, JPEG and GIF images up to 8 MB, MP4, OGG, AVI, MOV and WebM "
    "videos, AAC, M4A, WAV and MP4 audio and PDF files up to 25 MB"
)


def instagram_file_type(filename: str, content_type: str) -> str | None:
    """The Instagram attachment type of a file, or None when Instagram refuses it. A
    generic content type is judged by the file name's extension."""
    declared = content_type.split(";")[0].strip().lower()
    found = _INSTAGRAM_TYPES.get(declared)
    if found is None and declared in {"", "application/octet-stream", "binary/octet-stream"}:
        guessed, _ = mimetypes.guess_type(filename)
        found = _INSTAGRAM_TYPES.get(guessed or "")
    return found


class InstagramAdapter(MessengerAdapter):
    """Instagram messaging: the same Send API, through the page linked to the account;
    each file goes out as the attachment type Instagram takes for it."""

    kind: ChannelKind = "instagram"
    recipient_setting = "instagram_account_id"
    profile_fields = "name,username"

    def _check_files(self, outbound: OutboundChatMessage) -> None:
        """Every file checked before the first request: a reply is refused whole, with
        the reason, rather than sent without a file the agent attached."""
        refused = []
        for filename, content_type, content in outbound.attachments:
            kind = instagram_file_type(filename, content_type)
            if kind is None:
                refused.append(f"{filename} ({content_type})")
            elif len(content) > _INSTAGRAM_LIMITS[kind]:
                refused.append(f"{filename} ({len(content) // (1024 * 1024)} MB)")
        if refused:
            raise PermanentDeliveryError(
                f"Instagram cannot take {', '.join(refused)}: {_INSTAGRAM_ACCEPTS}. Nothing "
                "was sent; send the file another way (e.g. by e-mail or as a link) and "
                "reply without it"
            )

    def _file_type(self, filename: str, content_type: str) -> str:
        return instagram_file_type(filename, content_type) or "file"


class WhatsAppAdapter(MetaAdapter):
    """WhatsApp Cloud API: `POST {phone_number_id}/messages`; files uploaded first to
    `{phone_number_id}/media` and sent by media id."""

    kind: ChannelKind = "whatsapp"
    credential = "access_token"  # the name of the secret, not its value
    recipient_setting = "phone_number_id"

    async def resolve_sender(
        self, conn: asyncpg.Connection, account: ChannelAccount, message: InboundMessage
    ) -> InboundMessage:
        """WhatsApp names the sender in the webhook (profile name or username)."""
        return message

    def _number(self, account: ChannelAccount) -> str:
        number = str(account.setting("phone_number_id") or "")
        if not number.isdigit():
            raise PermanentDeliveryError(
                f"the whatsapp account '{account.name}' has no phone_number_id"
            )
        return number

    async def fetch_attachment(
        self, account: ChannelAccount, attachment: InboundAttachment
    ) -> bytes:
        """Media id -> a short-lived URL (`GET {media_id}`), then the bytes, both with the
        access token (which is why the URL's host is checked first)."""
        media_id = attachment.fetch_ref or ""
        if not media_id.isdigit():
            raise MediaFetchError("WhatsApp gave no media id for this file", permanent=True)
        token = account.secret("access_token")
        if not token:
            raise MediaFetchError(f"the whatsapp account '{account.name}' has no access_token")
        async with httpx.AsyncClient(base_url=base_url(account), timeout=30) as http:
            try:
                response = await http.get(media_id, headers={"Authorization": f"Bearer {token}"})
            except httpx.HTTPError as error:
                raise MediaFetchError(f"WhatsApp unreachable ({type(error).__name__})") from None
            if response.status_code != 200:
                raise http_fetch_error(self.kind, "media lookup", response.status_code)
            try:
                url = str(response.json().get("url") or "")
            except (ValueError, AttributeError):
                url = ""
            return await self._download(http, checked_cdn_url(account, url), token)

    @staticmethod
    def _addressee(outbound: OutboundChatMessage) -> dict[str, str]:
        """`to` for a phone number; `recipient` for a business-scoped user id (a user with
        a username whose number Meta does not share, e.g. `CZ.1502576394655843`)."""
        conversation = outbound.conversation_id
        return {"to": conversation} if conversation.isdigit() else {"recipient": conversation}

    def _reply_context(self, outbound: OutboundChatMessage) -> dict[str, Any]:
        quoted = outbound.reply_to_external_id
        return {"context": {"message_id": quoted}} if quoted else {}

    async def _send_text(
        self,
        http: httpx.AsyncClient,
        token: str,
        account: ChannelAccount,
        outbound: OutboundChatMessage,
        text: str,
        tagged: bool,
    ) -> str:
        body = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            **self._addressee(outbound),
            "type": "text",
            "text": {"body": text, "preview_url": False},
            **self._reply_context(outbound),
        }
        url = f"{self._number(account)}/messages"
        try:
            answer = await self._post(http, url, token, json=body)
        except PermanentDeliveryError as error:
            # The quoted message may be one WhatsApp will not quote (a reaction, a system
            # notice, a deleted message): a refused request sent nothing, so the reply goes
            # once more, unquoted.
            if "context" not in body or isinstance(error, RecipientUnreachableError):
                raise
            del body["context"]
            answer = await self._post(http, url, token, json=body)
        return sent_message_id(answer, self.kind)

    async def _send_file(
        self,
        http: httpx.AsyncClient,
        token: str,
        account: ChannelAccount,
        outbound: OutboundChatMessage,
        attachment: tuple[str, str, bytes],
        tagged: bool,
    ) -> str:
        filename, content_type, content = attachment
        number = self._number(account)
        uploaded = await self._post(
            http,
            f"{number}/media",
            token,
            data={"messaging_product": "whatsapp", "type": content_type},
            files={"file": (filename, content, content_type)},
        )
        media_id = str(uploaded.get("id") or "")
        if not media_id:
            raise PermanentDeliveryError("WhatsApp accepted the upload but returned no media id")
        kind = attachment_type(content_type)
        kind = "document" if kind == "file" else kind
        media: dict[str, Any] = {"id": media_id}
        if kind == "document":
            media["filename"] = filename
        body = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            **self._addressee(outbound),
            "type": kind,
            kind: media,
        }
        answer = await self._post(http, f"{number}/messages", token, json=body)
        return sent_message_id(answer, self.kind)
