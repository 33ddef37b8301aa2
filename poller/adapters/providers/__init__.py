"""Provider adapters: one per ``provider.kind`` (see :mod:`.registry`), each a ``ProviderPort``."""

from __future__ import annotations

from poller.adapters.providers.registry import build_provider, missing_settings

__all__ = ["build_provider", "missing_settings"]
