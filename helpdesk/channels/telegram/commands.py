"""What `helpdesk telegram set-webhook` and `helpdesk telegram poll` do.

Polling is for development (no public URL): each update goes through the same path as
a webhook delivery (stored in `inbound_events` once per update_id, then processed), and
the offset that confirms updates to Telegram only moves past an update once it is stored.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg
from telegram.error import BadRequest, NetworkError, RetryAfter, TelegramError

from helpdesk.channels import accounts
from helpdesk.channels.signatures import valid_telegram_secret
from helpdesk.channels.telegram.adapter import bot_for, delivery_error, retry_after_seconds
from helpdesk.channels.telegram.parse import ALLOWED_UPDATES, webhook_url
from helpdesk.channels.webhooks import process_event, store_event
from helpdesk.config import Settings

log = logging.getLogger(__name__)


class TelegramCommandError(Exception):
    """A one-line reason the command could not do its work."""


async def telegram_account(conn: asyncpg.Connection, name: str) -> accounts.ChannelAccount:
    account = await accounts.get_account(conn, "telegram", name)
    if account is None:
        raise TelegramCommandError(
            f"no telegram account '{name}' (create it with POST /channels/accounts)"
        )
    if not account.secret("bot_token"):
        raise TelegramCommandError(f"the telegram account '{name}' has no bot_token secret")
    return account


def _reason(error: TelegramError, account: accounts.ChannelAccount) -> str:
    mapped = delivery_error(error, account.secret("bot_token"))
    return str(mapped)


async def set_webhook(account: accounts.ChannelAccount, public_base_url: str) -> str:
    """Point the bot's webhook at us, with the account's secret; returns the URL."""
    secret = account.secret("webhook_secret")
    if not valid_telegram_secret(secret):
        raise TelegramCommandError(
            f"the telegram account '{account.name}' needs a webhook_secret of 1-256 "
            "characters A-Z a-z 0-9 _ - (Telegram echoes it on every delivery)"
        )
    if not public_base_url.startswith(("https://", "http://")):
        raise TelegramCommandError("--url must be the public http(s) base URL of the API")
    url = webhook_url(public_base_url, account.name)
    async with bot_for(account) as bot:
        try:
            await bot.set_webhook(
                url=url, secret_token=secret, allowed_updates=list(ALLOWED_UPDATES)
            )
        except TelegramError as error:
            raise TelegramCommandError(f"setWebhook failed: {_reason(error, account)}") from None
    return url


async def poll(
    pool: asyncpg.Pool,
    settings: Settings,
    account: accounts.ChannelAccount,
    *,
    once: bool = False,
    long_poll_seconds: int = 50,
) -> int:
    """Long-poll getUpdates and store and process each update; returns how many were new.

    `once`: one getUpdates without waiting, then stop (scripts and tests).
    """
    stored = 0
    offset: int | None = None
    async with bot_for(account, poll_timeout=long_poll_seconds) as bot:
        try:
            await bot.delete_webhook(drop_pending_updates=False)  # getUpdates needs none set
        except TelegramError as error:
            raise TelegramCommandError(f"deleteWebhook failed: {_reason(error, account)}") from None
        while True:
            try:
                updates = await bot.get_updates(
                    offset=offset,
                    timeout=0 if once else long_poll_seconds,
                    allowed_updates=list(ALLOWED_UPDATES),
                )
            except RetryAfter as error:
                if once:
                    raise TelegramCommandError(_reason(error, account)) from None
                await asyncio.sleep(retry_after_seconds(error))
                continue
            except NetworkError as error:
                if once or isinstance(error, BadRequest):
                    raise TelegramCommandError(
                        f"getUpdates failed: {_reason(error, account)}"
                    ) from None
                log.warning("telegram getUpdates failed; retrying", extra={"account": account.name})
                await asyncio.sleep(5)
                continue
            except TelegramError as error:
                raise TelegramCommandError(
                    f"getUpdates failed: {_reason(error, account)}"
                ) from None
            for update in updates:
                body = update.to_json().encode()
                async with pool.acquire() as conn:
                    event_id = await store_event(conn, account, str(update.update_id), body)
                offset = update.update_id + 1  # stored: safe to confirm to Telegram
                if event_id is None:
                    continue  # stored before (a webhook, an earlier poll)
                try:
                    stored += await process_event(pool, settings, event_id) or 0
                except Exception:  # recorded on the event; a worker's sweep retries it
                    log.exception("telegram update not processed", extra={"event_id": event_id})
            if once:
                return stored
