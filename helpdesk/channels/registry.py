"""Which adapter serves which channel kind (declared in `helpdesk.channels.catalogue`).

Adapters are imported lazily by dotted path, so the contract never imports a provider
SDK it does not need, and a kind whose adapter is not installed is simply unsupported
(its webhooks answer 404).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from functools import cache
from typing import cast

from helpdesk.channels.adapter import ChannelAdapter
from helpdesk.channels.catalogue import CATALOGUE
from helpdesk.config import Settings

# From the catalogue, in its order: every chat kind and where its adapter lives.
ADAPTER_PATHS: Mapping[str, str] = {
    e.name: e.adapter for e in CATALOGUE.values() if e.adapter is not None
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
