"""The composition root: the one place that wires adapters to ports for the daemon and the CLI."""

from __future__ import annotations

from sqlalchemy import Engine

from poller.adapters.siro_http import SiroHttpClient
from poller.adapters.sql import migrate
from poller.adapters.sql.database import make_engine
from poller.adapters.sql.store import SqlStore
from poller.config import Settings
from poller.ports.provider import ProviderPort


def build_engine(settings: Settings) -> Engine:
    return make_engine(settings.database_url)


def open_store(settings: Settings, engine: Engine | None = None) -> SqlStore:
    """The state store, refusing a database whose schema is not the one this code expects."""
    engine = engine or build_engine(settings)
    migrate.assert_at_head(engine)
    return SqlStore(engine)


def build_provider(settings: Settings) -> ProviderPort:
    """The adapter for ``provider.kind``; raises ``ConfigError`` if its settings are incomplete."""
    from poller.adapters.providers import build_provider as build

    return build(settings.provider)


def build_siro_client(settings: Settings) -> SiroHttpClient:
    """The one Siro client of this process: it holds the access token and what Siro accepted."""
    return SiroHttpClient(settings.siro)
