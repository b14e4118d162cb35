"""Which adapter serves which channel kind.

Adapters are imported lazily by dotted path, so the contract never imports a provider
SDK it does not need, and a kind whose adapter is not installed is simply unsupported
(its webhooks answer 404).
"""

from __future__ import annotations

import importlib
from functools import cache
from typing import cast

from helpdesk.channels.adapter import ChannelAdapter
from helpdesk.config import Settings

ADAPTER_PATHS: dict[str, str] = {
    "telegram": "helpdesk.channels.telegram.adapter:TelegramAdapter",
    "slack": "helpdesk.channels.slack.adapter:SlackAdapter",
    "messenger": "helpdesk.channels.meta.adapter:MessengerAdapter",
    "instagram": "helpdesk.channels.meta.adapter:InstagramAdapter",
    "whatsapp": "helpdesk.channels.meta.adapter:WhatsAppAdapter",
    "webchat": "helpdesk.channels.webchat.adapter:WebChatAdapter",
}


@cache
def _adapter_class(kind: str) -> type | None:
    path = ADAPTER_PATHS.get(kind)
    if path is None:
        return None
    module_name, _, class_name = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name is not None and module_name.startswith(error.name):
            return None  # that adapter is not part of this build
        raise
    return cast(type, getattr(module, class_name))


def adapter_for(kind: str, settings: Settings) -> ChannelAdapter | None:
    """A new adapter of `kind` (adapters take the settings and hold no other state)."""
    cls = _adapter_class(kind)
    return None if cls is None else cast(ChannelAdapter, cls(settings))


def chat_kinds() -> list[str]:
    """The chat kinds this build supports."""
    return [kind for kind in ADAPTER_PATHS if _adapter_class(kind) is not None]
