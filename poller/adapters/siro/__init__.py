"""The Siro client over HTTP, one file per concept; :class:`SiroHttpClient` is its face."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from poller.adapters.siro.client import SiroHttpClient

__all__ = ["SiroHttpClient"]


def __getattr__(name: str) -> object:
    # The client (requests, the token exchange) is imported when first asked for, not with the
    # package: the config reads SiroSettings from poller.adapters.siro.settings, and a command
    # that only reads the state database never talks to Siro.
    if name == "SiroHttpClient":
        from poller.adapters.siro.client import SiroHttpClient

        return SiroHttpClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
