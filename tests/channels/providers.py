"""The chat providers as the shared contract tests see them (tests/channels/test_chat_contract.py).

One class per provider says how to build, sign and post its webhook bodies, how to make
its fake API on loopback fail, and how to read what that fake received. The contract
tests hold the assertions; what differs between providers (status codes, ids, the
provider's own words in an error) is data here.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx

from helpdesk.channels.slack.adapter import forget_cached_names
from helpdesk.config import Settings
from tests.channels.meta import conftest as meta
from tests.channels.meta import payloads as meta_payloads
from tests.channels.meta.fake_graph_api import FakeGraphApi
from tests.channels.replies import run_worker
from tests.channels.slack import conftest as slack
from tests.channels.slack import payloads as slack_payloads
from tests.channels.slack.fake_slack_api import FakeSlackApi
from tests.channels.telegram import conftest as telegram
from tests.channels.telegram import payloads as telegram_payloads
from tests.channels.telegram.fake_bot_api import FakeBotApi


@dataclass(frozen=True)
class Forgery:
    """A delivery that must be refused: what is wrong with it, its bytes and headers, and
    the credential it carried (which must not be logged), if any."""

    name: str
    body: bytes
    headers: dict[str, str]
    credential: str = ""


@dataclass(frozen=True)
class Delivery:
    """A genuine delivery's bytes and the headers it carries beyond the signature."""

    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class Outage:
    """A send failure that is retried with backoff, and the reason the row then shows."""

    status: int
    error: str | None
    reason: str


class ChatProvider:
    """What a contract test needs of one provider. Messages are numbered from 1."""

    kind: str  # the channel, and the webhook's kind
    account: str
    token: str  # the API token replies are sent with
    secret: str  # what proves a delivery is genuine; never echoed nor logged
    refused_status = 401
    customer: str  # the customer's external id in customer_identities
    reply_text = "Zásilka dorazí zítra."
    reply_external_id: str  # the id the fake gives our first reply

    # --- the fake API and the account -----------------------------------------------------

    def fake(self) -> Any:
        raise NotImplementedError

    async def add_account(self, db: asyncpg.Connection, base_url: str) -> None:
        raise NotImplementedError

    async def add_account_without_secret(self, db: asyncpg.Connection, base_url: str) -> None:
        raise NotImplementedError

    # --- deliveries -----------------------------------------------------------------------

    @property
    def webhook(self) -> str:
        return f"/channels/{self.kind}/{self.account}/webhook"

    def encode(self, body: dict[str, Any]) -> bytes:
        raise NotImplementedError

    def signed(self, body: bytes) -> dict[str, str]:
        """The headers of a genuine delivery of `body`."""
        raise NotImplementedError

    async def post(
        self,
        client: httpx.AsyncClient,
        body: dict[str, Any] | bytes,
        extra: dict[str, str] | None = None,
    ) -> httpx.Response:
        """POST `body` signed as the provider does, with `extra` headers on top."""
        raw = body if isinstance(body, bytes) else self.encode(body)
        headers = {**self.signed(raw), **(extra or {})}
        return await client.post(self.webhook, content=raw, headers=headers)

    def text(self, n: int, text: str) -> dict[str, Any]:
        """The customer's message number `n`."""
        raise NotImplementedError

    def edit(self, n: int, of: int, text: str) -> dict[str, Any]:
        """Delivery number `n`: the customer edited their message `of` to `text`."""
        raise NotImplementedError

    def external_id(self, n: int) -> str:
        """Our external id of the customer's message number `n`."""
        raise NotImplementedError

    def repeats(self) -> tuple[list[Delivery], list[Delivery], int]:
        """Deliveries of one message: those racing each other, those after it was
        processed, and how many inbound events they make (identical bytes are one)."""
        raise NotImplementedError

    def forgeries(self) -> list[Forgery]:
        raise NotImplementedError

    def without_secret(self) -> list[tuple[bytes, dict[str, str]]]:
        """Deliveries to an account that has no secret to check them with."""
        raise NotImplementedError

    # --- what the fake received -----------------------------------------------------------

    def sends(self, fake: Any) -> list[Any]:
        """The calls that carried a reply's text."""
        raise NotImplementedError

    def check_reply(self, fake: Any) -> None:
        """Assert the one reply went as the provider takes it (reply_text, quoting, auth)."""
        raise NotImplementedError

    async def after_reply(
        self, client: httpx.AsyncClient, db: asyncpg.Connection, settings: Settings
    ) -> None:
        """What the provider sends back about our reply, and what we make of it."""

    def subject(self, first_text: str) -> str:
        """The subject of a ticket opened by the customer's message `first_text`."""
        return first_text

    def refuse(self, fake: Any) -> None:
        """Make the next send fail for good (not the customer's doing)."""
        raise NotImplementedError

    def check_refusal(self, error: str) -> None:
        raise NotImplementedError


class Slack(ChatProvider):
    kind = "slack"
    account = slack.ACCOUNT
    token = slack.TOKEN
    secret = slack.SIGNING_SECRET
    customer = slack_payloads.CUSTOMER
    reply_text = "Zásilka dorazí zítra <14:00 & později>."
    reply_external_id = f"{slack_payloads.SUPPORT_CHANNEL}:1700000000.000100"

    def fake(self) -> FakeSlackApi:
        forget_cached_names()  # users.info answers are cached per account id, reused here
        return FakeSlackApi(self.token)

    async def add_account(self, db: asyncpg.Connection, base_url: str) -> None:
        await slack.add_account(db, base_url)

    async def add_account_without_secret(self, db: asyncpg.Connection, base_url: str) -> None:
        await slack.add_account(db, base_url, secrets={"bot_token": self.token})

    def encode(self, body: dict[str, Any]) -> bytes:
        return slack_payloads.encode(body)

    def signed(self, body: bytes) -> dict[str, str]:
        return slack_payloads.signed_headers(self.secret, body)

    @staticmethod
    def ts(n: int) -> str:
        return slack.ROOT_TS if n == 1 else f"13555176{n:02d}.000100"

    def text(self, n: int, text: str) -> dict[str, Any]:
        return slack_payloads.message(f"Ev{n:04d}", self.ts(n), text)

    def edit(self, n: int, of: int, text: str) -> dict[str, Any]:
        return slack_payloads.edited(f"Ev{n:04d}", self.ts(of), text, f"13588787{n:02d}.1")

    def external_id(self, n: int) -> str:
        return f"{slack_payloads.SUPPORT_CHANNEL}:{self.ts(n)}"

    def repeats(self) -> tuple[list[Delivery], list[Delivery], int]:
        body = self.encode(self.text(1, "Dobrý den"))

        def retry(number: int, reason: str = "http_timeout") -> Delivery:
            retried = {"X-Slack-Retry-Num": str(number), "X-Slack-Retry-Reason": reason}
            return Delivery(body, retried)

        # The first delivery and an http_timeout retry overlapping it, then one more retry;
        # the last retry comes after processing.
        return [Delivery(body, {}), retry(1), retry(2)], [retry(3, "http_error")], 1

    def forgeries(self) -> list[Forgery]:
        # Wall-clock skews are a minute beyond the 5-minute window: the server reads its
        # clock later than this does (the exact boundary: tests/channels/test_signatures.py).
        body = self.encode(slack_payloads.message("Ev0001", slack.ROOT_TS))
        now = int(time.time())

        def signed(secret: str, at: int) -> dict[str, str]:
            return slack_payloads.signed_headers(secret, body, at)

        good = signed(self.secret, now)
        signature = good["x-slack-signature"]
        no_signature = {k: v for k, v in good.items() if k != "x-slack-signature"}
        no_timestamp = {k: v for k, v in good.items() if "timestamp" not in k}
        cases = [
            ("one byte of the body changed", body.replace(b"Live", b"Livf"), good),
            ("ts 6 min old", body, signed(self.secret, now - 360)),
            ("ts 6 min ahead", body, signed(self.secret, now + 360)),
            ("non-numeric ts", body, {**good, "x-slack-request-timestamp": f"{now}.0"}),
            ("no signature", body, no_signature),
            ("no timestamp", body, no_timestamp),
            ("v1=", body, {**good, "x-slack-signature": "v1=" + signature[3:]}),
            ("short hex", body, {**good, "x-slack-signature": signature[:-2]}),
            ("wrong secret", body, signed("not-our-secret", now)),
        ]
        return [
            Forgery(name, sent, headers, headers.get("x-slack-signature", "")[3:])
            for name, sent, headers in cases
        ]

    def without_secret(self) -> list[tuple[bytes, dict[str, str]]]:
        body = self.encode(slack_payloads.message())
        return [(body, slack_payloads.signed_headers("", body))]

    def sends(self, fake: FakeSlackApi) -> list[Any]:
        return fake.calls_of("chat.postMessage")

    def check_reply(self, fake: FakeSlackApi) -> None:
        (call,) = fake.calls_of("chat.postMessage")
        assert call.authorization == f"Bearer {self.token}"
        assert call.content_type == "application/json"
        assert call.params["channel"] == slack_payloads.SUPPORT_CHANNEL
        assert call.params["thread_ts"] == slack.ROOT_TS
        assert call.params["text"] == "Zásilka dorazí zítra &lt;14:00 &amp; později&gt;."

    def refuse(self, fake: FakeSlackApi) -> None:
        fake.fail("chat.postMessage", 200, "channel_not_found")

    def check_refusal(self, error: str) -> None:
        assert error == (
            "Slack refused the message: channel_not_found "
            "(the channel does not exist or the app cannot see it)"
        )

    def rate_limit(self, fake: FakeSlackApi) -> int:
        fake.fail("chat.postMessage", 429, "ratelimited", retry_after=30)
        return 30

    def check_rate_limited(self, row_error: str, view_error: str) -> None:
        assert row_error == "Slack rate limit (ratelimited); retry after 30 s"
        assert "ratelimited" in view_error

    outages = [
        Outage(500, None, "Slack unavailable: HTTP 500"),
        Outage(503, "service_unavailable", "Slack unavailable: service_unavailable"),
        Outage(200, "internal_error", "Slack unavailable: internal_error"),
    ]

    def fail_send(self, fake: FakeSlackApi, outage: Outage) -> None:
        fake.fail("chat.postMessage", outage.status, outage.error)

    def partial_reply(self, fake: FakeSlackApi) -> dict[str, Any]:
        """A reply whose text goes first and whose file upload then fails."""
        fake.fail("files.getUploadURLExternal", 500, None)
        attachment = {"filename": "a.txt", "content_type": "text/plain", "content": "YQ=="}
        return {"text": "Posílám soubor.", "attachments": [attachment]}

    def check_partly_sent(self, error: str) -> None:
        assert error == (
            "only partly sent (the text reached Slack, the files did not; not resent to avoid "
            "duplicates): Slack unavailable: HTTP 500"
        )

    def ignored(self) -> list[tuple[bytes, str | None]]:
        """Bots, our own messages, other channels and other events (kept, not messages)."""
        p = slack_payloads
        bodies = [
            p.bot_message("Ev0001", "1355517523.000006"),
            p.message("Ev0002", "1355517523.000007", "Odpověď", user=p.BOT_USER_ID),
            p.message("Ev0003", "1355517523.000008", channel=p.OTHER_CHANNEL),
            p.app_mention("Ev0004", "1355517523.000009"),
            p.reaction_added("Ev0005"),
            p.message("Ev0006", "1355517523.000010", subtype="channel_join"),
        ]
        return [(self.encode(body), f"Ev000{n}") for n, body in enumerate(bodies, 1)]


class Telegram(ChatProvider):
    kind = "telegram"
    account = telegram.ACCOUNT
    token = telegram.TOKEN
    secret = telegram.SECRET
    refused_status = 403
    customer = str(telegram_payloads.CHAT_ID)
    reply_external_id = "1111111:500"  # the fake's first message id, in our chat:message form

    def fake(self) -> FakeBotApi:
        return FakeBotApi(self.token)

    async def add_account(self, db: asyncpg.Connection, base_url: str) -> None:
        await telegram.add_account(db, base_url)

    async def add_account_without_secret(self, db: asyncpg.Connection, base_url: str) -> None:
        await telegram.add_account(db, base_url, secrets={"bot_token": self.token})

    def encode(self, body: dict[str, Any]) -> bytes:
        return telegram_payloads.encode(body)

    def signed(self, body: bytes) -> dict[str, str]:
        return self.with_secret(self.secret)

    @staticmethod
    def with_secret(secret: str | None) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        if secret is not None:
            headers["X-Telegram-Bot-Api-Secret-Token"] = secret
        return headers

    def text(self, n: int, text: str) -> dict[str, Any]:
        return telegram_payloads.message(9999 + n, 1364 + n, text)

    def edit(self, n: int, of: int, text: str) -> dict[str, Any]:
        return telegram_payloads.edited(9999 + n, 1364 + of, text)

    def external_id(self, n: int) -> str:
        return f"{telegram_payloads.CHAT_ID}:{1364 + n}"

    def repeats(self) -> tuple[list[Delivery], list[Delivery], int]:
        same = Delivery(self.encode(self.text(1, "Dobrý den")), {})
        return [same, same, same], [same], 1

    def forgeries(self) -> list[Forgery]:
        body = self.encode(self.text(1, "Dobrý den"))
        return [
            Forgery(repr(secret), body, self.with_secret(secret), secret or "")
            for secret in (None, "", "wrong", self.secret[:-1], self.secret + "0")
        ]

    def without_secret(self) -> list[tuple[bytes, dict[str, str]]]:
        body = self.encode(self.text(1, "Dobrý den"))
        return [(body, self.with_secret(secret)) for secret in (None, "", "anything")]

    def sends(self, fake: FakeBotApi) -> list[Any]:
        return fake.calls_of("sendMessage")

    def check_reply(self, fake: FakeBotApi) -> None:
        (call,) = fake.calls_of("sendMessage")
        assert call.params["chat_id"] == "1111111"
        assert call.params["text"] == self.reply_text
        assert json.loads(call.params["reply_parameters"]) == {
            "message_id": 1365,
            "allow_sending_without_reply": True,
        }
        assert fake.calls_of("getMe") == []  # no extra round trip per reply

    def refuse(self, fake: FakeBotApi) -> None:
        fake.fail("sendMessage", 400, "Bad Request: chat not found")

    def check_refusal(self, error: str) -> None:
        assert error == "Telegram refused the message: Chat not found"

    def block(self, fake: FakeBotApi) -> None:
        fake.fail("sendMessage", 403, "Forbidden: bot was blocked by the user")

    def check_blocked(self, error: str, unreachable_reason: str) -> None:
        assert "bot was blocked by the user" in error
        assert "bot was blocked by the user" in unreachable_reason

    def rate_limit(self, fake: FakeBotApi) -> int:
        fake.fail("sendMessage", 429, "Too Many Requests: retry after 37", retry_after=37)
        return 37

    def check_rate_limited(self, row_error: str, view_error: str) -> None:
        assert "Flood control exceeded" in row_error
        assert "37" in view_error

    outages = [Outage(502, "Bad Gateway", "Telegram unavailable: Bad Gateway")]

    def fail_send(self, fake: FakeBotApi, outage: Outage) -> None:
        fake.fail("sendMessage", outage.status, outage.error or "")

    def partial_reply(self, fake: FakeBotApi) -> dict[str, Any]:
        """A reply whose text goes first (too long for a caption) and whose file fails."""
        fake.fail("sendDocument", 502, "Bad Gateway")
        attachment = {"filename": "a.txt", "content_type": "text/plain", "content": "YQ=="}
        return {"text": "x" * 2000, "attachments": [attachment]}

    def check_partly_sent(self, error: str) -> None:
        assert error.startswith("only partly sent (1 of 2 parts reached Telegram")

    def ignored(self) -> list[tuple[bytes, str | None]]:
        updates: list[dict[str, Any] | bytes] = [
            telegram_payloads.callback_query(20000),
            telegram_payloads.my_chat_member(20001),
            {"update_id": 20002, "invented_update_type": {"whatever": [1, 2, 3]}},
            b"<html>not json at all</html>",
        ]
        keys = ["20000", "20001", "20002", None]
        return [
            (u if isinstance(u, bytes) else self.encode(u), key)
            for u, key in zip(updates, keys, strict=True)
        ]


class Meta(ChatProvider):
    """Messenger, Instagram and WhatsApp: one Graph API, one app secret."""

    account = meta.ACCOUNT
    token = meta.TOKEN
    secret = meta.APP_SECRET
    send_path = "me/messages"

    def fake(self) -> FakeGraphApi:
        return FakeGraphApi(self.token)

    async def add_account(self, db: asyncpg.Connection, base_url: str) -> None:
        await meta.add_accounts(db, base_url)

    async def add_account_without_secret(self, db: asyncpg.Connection, base_url: str) -> None:
        """No account of the kind at all: nothing to check a signature with."""

    def encode(self, body: dict[str, Any]) -> bytes:
        return meta_payloads.encode(body)

    def signed(self, body: bytes) -> dict[str, str]:
        return meta_payloads.signed_headers(self.secret, body)

    def external_id(self, n: int) -> str:
        return self.mid(n)

    def mid(self, n: int) -> str:
        raise NotImplementedError

    def repeats(self) -> tuple[list[Delivery], list[Delivery], int]:
        same = Delivery(self.encode(self.text(1, "Dobrý den")), {})
        return [same, same, same], [same], 1

    def forgeries(self) -> list[Forgery]:
        body = self.encode(self.text(1, "Dobrý den"))
        reserialised = json.dumps(json.loads(body)).encode()  # \u-escaped: other bytes, same JSON
        assert reserialised != body
        signature = self.signed(body)["X-Hub-Signature-256"]
        another = meta_payloads.signed_headers("another-app-secret", body)
        return [
            Forgery("reserialised", reserialised, self.signed(body), signature),
            Forgery("another secret", body, another, another["X-Hub-Signature-256"]),
            Forgery("no signature", body, {"Content-Type": "application/json"}),
            Forgery("sha1", body, {"X-Hub-Signature-256": "sha1=" + "0" * 40}),
            Forgery("short", body, {"X-Hub-Signature-256": signature[:-2]}, signature[:-2]),
        ]

    def without_secret(self) -> list[tuple[bytes, dict[str, str]]]:
        body = self.encode(self.text(1, "hi"))
        return [(body, self.signed(body))]

    def sends(self, fake: FakeGraphApi) -> list[Any]:
        return fake.calls_to(self.send_path)


class Messenger(Meta):
    kind = "messenger"
    customer = meta_payloads.PSID
    reply_external_id = "m_out1"

    def text(self, n: int, text: str) -> dict[str, Any]:
        return meta_payloads.messenger_text(self.mid(n), text)

    def edit(self, n: int, of: int, text: str) -> dict[str, Any]:
        return meta_payloads.messenger_edit(self.mid(of), text)

    def mid(self, n: int) -> str:
        return f"m_AAA{n}"

    def check_reply(self, fake: FakeGraphApi) -> None:
        (call,) = fake.calls_to("me/messages")
        assert call.authorization == f"Bearer {self.token}"
        assert call.body == {
            "recipient": {"id": meta_payloads.PSID},
            "messaging_type": "RESPONSE",
            "message": {"text": self.reply_text},
        }

    async def after_reply(
        self, client: httpx.AsyncClient, db: asyncpg.Connection, settings: Settings
    ) -> None:
        # Our own message comes back as an echo: not a customer message.
        echo = meta_payloads.messenger_echo(self.reply_external_id, "x")
        assert (await self.post(client, echo)).status_code == 200
        await run_worker(settings)
        assert await db.fetchval("SELECT count(*) FROM messages WHERE direction = 'inbound'") == 1

    def block(self, fake: FakeGraphApi) -> None:
        fake.fail(
            "me/messages", 400, 551, "This person isn't available right now.", subcode=1545041
        )

    def check_blocked(self, error: str, unreachable_reason: str) -> None:
        assert "isn't available right now" in error
        assert "551" in unreachable_reason


class Instagram(Meta):
    kind = "instagram"
    customer = meta_payloads.IGSID
    reply_external_id = "m_out1"

    def text(self, n: int, text: str) -> dict[str, Any]:
        return meta_payloads.instagram_text(self.mid(n), text)

    def mid(self, n: int) -> str:
        return f"aWdfZA{n}"

    def check_reply(self, fake: FakeGraphApi) -> None:
        (call,) = fake.calls_to("me/messages")
        assert call.authorization == f"Bearer {self.token}"
        assert call.body["recipient"] == {"id": meta_payloads.IGSID}
        assert call.body["message"] == {"text": self.reply_text}


class WhatsApp(Meta):
    kind = "whatsapp"
    customer = meta_payloads.CUSTOMER_WA_ID
    reply_external_id = "wamid.OUT1"
    send_path = f"{meta_payloads.PHONE_NUMBER_ID}/messages"

    def text(self, n: int, text: str) -> dict[str, Any]:
        return meta_payloads.whatsapp_text(self.mid(n), text)

    def edit(self, n: int, of: int, text: str) -> dict[str, Any]:
        return meta_payloads.whatsapp_edit(f"wamid.E{n}", self.mid(of), text)

    def mid(self, n: int) -> str:
        return f"wamid.IN{n}"

    def repeats(self) -> tuple[list[Delivery], list[Delivery], int]:
        same = self.text(1, "Dobrý den")
        # The same message in three deliveries with different bytes (Meta batches differ).
        batched = {**same, "entry": same["entry"] + [{"id": "x", "changes": []}]}
        first, other = Delivery(self.encode(same), {}), Delivery(self.encode(batched), {})
        return [first, other, first], [first], 2  # identical bytes are one event

    def check_reply(self, fake: FakeGraphApi) -> None:
        (call,) = fake.calls_to(self.send_path)
        assert call.authorization == f"Bearer {self.token}"
        assert call.body == {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": meta_payloads.CUSTOMER_WA_ID,
            "type": "text",
            "text": {"body": self.reply_text, "preview_url": False},
            "context": {"message_id": self.mid(1)},
        }


SLACK, TELEGRAM = Slack(), Telegram()
MESSENGER, INSTAGRAM, WHATSAPP = Messenger(), Instagram(), WhatsApp()
EVERY = [SLACK, TELEGRAM, MESSENGER, INSTAGRAM, WHATSAPP]
