"""Telegram through the Bot API, with python-telegram-bot as the client.

The webhook is authenticated by the secret Telegram echoes in
`X-Telegram-Bot-Api-Secret-Token` (set with `helpdesk telegram set-webhook`); the
update_id is the delivery id, so a redelivered update is stored once. The Bot API's
base URL is the account setting `base_url` (a local Bot API server, or a fake in tests).
"""

from __future__ import annotations

import contextlib
import logging
import re
import warnings
from collections.abc import AsyncIterator
from datetime import timedelta

from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputFile,
    ReplyParameters,
)
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
)
from telegram.request import HTTPXRequest
from telegram.warnings import PTBDeprecationWarning

from helpdesk.channels.accounts import ChannelAccount
from helpdesk.channels.adapter import (
    AttachmentFetchError,
    ButtonPress,
    ChannelKind,
    InboundAttachment,
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
from helpdesk.channels.signatures import verify_telegram
from helpdesk.channels.telegram.parse import (
    chat_id_param,
    message_external_id,
    normalize_update,
    reply_to_message_id,
    update_id,
)
from helpdesk.config import Settings

DEFAULT_BASE_URL = "https://api.telegram.org"
SECRET_HEADER = "x-telegram-bot-api-secret-token"  # noqa: S105 (a header name)
CAPTION_LIMIT = 1024  # a longer text goes as its own message before the files
# The Bot API puts the token in the URL path (/bot<token>/method, /file/bot<token>/path).
_TOKEN_IN_PATH = re.compile(r"/(file/)?bot\d+:[A-Za-z0-9_-]+")


class _RedactBotTokens(logging.Filter):
    """httpx logs every request URL at INFO; ours carry the bot token, logs never may."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "/bot" in message:
            record.msg = _TOKEN_IN_PATH.sub(r"/\1bot***", message)
            record.args = ()
        return True


def _redact_tokens_in_http_logs() -> None:
    logger = logging.getLogger("httpx")
    if not any(isinstance(f, _RedactBotTokens) for f in logger.filters):
        logger.addFilter(_RedactBotTokens())


@contextlib.asynccontextmanager
async def bot_for(account: ChannelAccount, *, poll_timeout: float = 0) -> AsyncIterator[Bot]:
    """A Bot for one account's token and base URL, its HTTP clients closed afterwards.

    Not `Bot.initialize()`: that costs a getMe per use and its error message quotes the
    token.
    """
    token = account.secret("bot_token")
    if not token:
        raise PermanentDeliveryError(f"the telegram account '{account.name}' has no bot_token")
    _redact_tokens_in_http_logs()
    base = str(account.setting("base_url") or DEFAULT_BASE_URL).rstrip("/")
    request = HTTPXRequest(connection_pool_size=4, read_timeout=30, media_write_timeout=60)
    updates = HTTPXRequest(connection_pool_size=1, read_timeout=poll_timeout + 10)
    bot = Bot(
        token,
        base_url=f"{base}/bot",
        base_file_url=f"{base}/file/bot",
        request=request,
        get_updates_request=updates,
    )
    try:
        yield bot
    finally:
        await request.shutdown()
        await updates.shutdown()


def retry_after_seconds(error: RetryAfter) -> float:
    with warnings.catch_warnings():  # PTB 22 warns that an int becomes a timedelta
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = error.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def delivery_error(error: TelegramError, token: str) -> Exception:
    """The outbox's view of a Bot API failure (the reason never contains the token)."""
    reason = str(error).replace(token, "***") if token else str(error)
    if isinstance(error, RetryAfter):
        seconds = retry_after_seconds(error)
        return RetryableDeliveryError(f"Telegram rate limit: {reason}", retry_after=seconds)
    if isinstance(error, Forbidden):  # blocked the bot, deactivated, removed it from a group
        return RecipientUnreachableError(f"Telegram refused: {reason}")
    if isinstance(error, InvalidToken):
        return PermanentDeliveryError("Telegram rejected the bot token (check bot_token)")
    if isinstance(error, ChatMigrated):
        return PermanentDeliveryError(
            f"the group chat became the supergroup {error.new_chat_id}; reply there"
        )
    if isinstance(error, BadRequest):  # before NetworkError: BadRequest is a subclass
        return PermanentDeliveryError(f"Telegram refused the message: {reason}")
    if isinstance(error, NetworkError):  # timeouts, connection errors, 5xx
        return RetryableDeliveryError(f"Telegram unavailable: {reason}")
    return PermanentDeliveryError(f"Telegram error: {reason}")


class TelegramAdapter:
    kind: ChannelKind = "telegram"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def verify(self, account: ChannelAccount, request: WebhookRequest, now: float) -> Verdict:
        """Only Telegram knows the secret we gave setWebhook; there is no body MAC."""
        if request.method != "POST":
            return Verdict(accept=False, status=405)  # Telegram has no GET handshake
        presented = request.headers.get(SECRET_HEADER)
        if not verify_telegram(account.secret("webhook_secret"), presented):
            return Verdict(accept=False, status=403)
        # Authentic but unparseable: stored without a delivery id, answered 200.
        return Verdict(accept=True, dedupe_key=update_id(request.body))

    def normalize(self, account: ChannelAccount, payload: bytes) -> list[Normalized]:
        return list(normalize_update(account.name, payload))

    async def fetch_attachment(
        self, account: ChannelAccount, attachment: InboundAttachment
    ) -> bytes:
        """getFile, then the download from the file URL it names.

        Telegram's getFile 400 is often "wrong file_id or the file is temporarily
        unavailable": retried like a network error; only "file is too big" is final."""
        if attachment.fetch_ref is None:
            raise AttachmentFetchError("Telegram gave no file_id for this file", permanent=True)
        token = account.secret("bot_token")
        if not token:
            raise AttachmentFetchError(f"the telegram account '{account.name}' has no bot_token")
        async with bot_for(account) as bot:
            try:
                file = await bot.get_file(attachment.fetch_ref)
                return bytes(await file.download_as_bytearray())
            except TelegramError as error:
                reason = str(error).replace(token, "***")
                final = isinstance(error, BadRequest) and "too big" in reason.lower()
                raise AttachmentFetchError(
                    f"Telegram getFile failed: {reason}", permanent=final
                ) from None

    async def acknowledge_press(
        self, account: ChannelAccount, press: ButtonPress, text: str
    ) -> None:
        """Answer the callback query, so the customer's app stops waiting and says thanks."""
        if press.ack_ref is None:
            return
        async with bot_for(account) as bot:
            with contextlib.suppress(TelegramError):  # a late answer only loses the toast
                await bot.answer_callback_query(press.ack_ref, text=text)

    async def send(self, account: ChannelAccount, outbound: OutboundChatMessage) -> str:
        """One reply: its text (quoting the customer's message) and its files.

        A single file with a short text goes as one sendDocument with the text as the
        caption, so the reply is all or nothing. Otherwise the text goes first; a part
        failing after another went out fails the delivery saying so (chat APIs take no
        idempotency key, and a retry would repeat what the customer already has).
        """
        chat_id = chat_id_param(outbound.conversation_id)
        quoted = reply_to_message_id(outbound.conversation_id, outbound.reply_to_external_id)
        reply = (
            None
            if quoted is None
            else ReplyParameters(message_id=quoted, allow_sending_without_reply=True)
        )
        files = list(outbound.attachments)
        text = outbound.text
        caption_only = len(files) == 1 and len(text) <= CAPTION_LIMIT
        token = account.secret("bot_token")
        first: str | None = None
        parts = (1 if text and not caption_only else 0) + len(files)
        delivered = 0
        async with bot_for(account) as bot:
            try:
                if text and not caption_only:
                    keyboard = (
                        InlineKeyboardMarkup(
                            [
                                [
                                    InlineKeyboardButton(label, callback_data=value)
                                    for label, value in outbound.buttons
                                ]
                            ]
                        )
                        if outbound.buttons
                        else None
                    )
                    sent = await bot.send_message(
                        chat_id, text, reply_parameters=reply, reply_markup=keyboard
                    )
                    first = message_external_id(sent.chat_id, sent.message_id)
                    delivered += 1
                for index, (filename, _content_type, content) in enumerate(files):
                    document = await bot.send_document(
                        chat_id,
                        InputFile(content, filename=filename),
                        caption=text if caption_only and text else None,
                        reply_parameters=reply if first is None and index == 0 else None,
                    )
                    delivered += 1
                    if first is None:
                        first = message_external_id(document.chat_id, document.message_id)
            except TelegramError as error:
                mapped = delivery_error(error, token)
                if first is None:
                    raise mapped from None
                raise PermanentDeliveryError(
                    f"only partly sent ({delivered} of {parts} parts reached Telegram; not "
                    f"resent to avoid duplicates): {mapped}"
                ) from None
        if first is None:
            raise PermanentDeliveryError("the reply has neither text nor files")
        return first
