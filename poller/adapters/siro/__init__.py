"""The Siro client over HTTP, one file per concept; :class:`SiroHttpClient` is its face."""

from poller.adapters.siro.client import SiroHttpClient

__all__ = ["SiroHttpClient"]
