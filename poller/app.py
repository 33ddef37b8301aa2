"""The composition root: the one place that wires adapters to ports for the daemon and the CLI."""

from __future__ import annotations

from sqlalchemy import Engine

from poller.adapters.sql.database import make_engine
from poller.adapters.sql.store import SqlStore
from poller.config import Settings


def build_engine(settings: Settings) -> Engine:
    return make_engine(settings.database_url)


def build_store(settings: Settings, engine: Engine | None = None) -> SqlStore:
    return SqlStore(engine or build_engine(settings))
