"""Provider adapters: one per ``provider.kind``, each a ``ProviderPort``."""

from __future__ import annotations

from poller.config import ProviderSettings
from poller.ports.provider import ProviderPort


def build_provider(settings: ProviderSettings) -> ProviderPort:
    """The adapter ``settings.kind`` names, configured; raises ``ConfigError`` if it cannot be."""
    if settings.kind == "generic":
        from poller.adapters.providers.generic import GenericProvider

        return GenericProvider(settings)
    raise AssertionError(f"unknown provider kind {settings.kind!r}")  # config validation forbids
