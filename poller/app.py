"""The composition root: the one place that wires adapters to ports for the daemon and the CLI."""

from __future__ import annotations

import os
import secrets
import socket
import threading

from sqlalchemy import Engine

from poller import __version__
from poller.adapters.audio import PyAvAudio
from poller.adapters.downloader import Downloader
from poller.adapters.http import HostRules, HttpClient, Limits, RetryPolicy
from poller.adapters.prometheus_metrics import serve_metrics
from poller.adapters.siro_http import SiroHttpClient
from poller.adapters.sql import migrate
from poller.adapters.sql.database import make_engine
from poller.adapters.sql.store import SqlStore
from poller.adapters.systemd_notify import SystemdNotifier
from poller.config import Settings
from poller.core.daemon import Daemon
from poller.core.poll import PollReport, poll_once
from poller.core.users_sync import sync_users
from poller.core.worker import Worker
from poller.domain.clock import utcnow
from poller.domain.records import UsersSyncResult
from poller.ports.provider import ProviderPort
from poller.ports.siro import SiroPort
from poller.ports.store import Store
from poller.ports.telemetry import Telemetry
from poller.wiring import (
    daemon_params_from_settings,
    poll_params_from_settings,
    worker_params_from_settings,
)


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


def worker_identity() -> str:
    """Who holds a lease: readable in `calls show`, unique per process start."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def build_downloader(settings: Settings, stop: threading.Event) -> Downloader:
    provider = settings.provider
    client = HttpClient(
        limits=Limits(
            connect_timeout=provider.connect_timeout_seconds,
            read_timeout=provider.read_timeout_seconds,
            deadline=provider.deadline_seconds,
            max_body_bytes=provider.max_page_bytes,
        ),
        # Each download brings its own rules (DownloadRequest); these are only the fallback.
        hosts=HostRules(),
        # One attempt per download: the worker reschedules the row with its own backoff.
        retry=RetryPolicy.once(),
        user_agent=f"siro-poller/{__version__}",
        pool_size=settings.worker.concurrency,
    )
    return Downloader(client, max_bytes=settings.worker.max_download_bytes, stop=stop)


def build_worker(
    settings: Settings,
    store: Store,
    stop: threading.Event,
    *,
    provider: ProviderPort | None = None,
    siro: SiroPort | None = None,
    telemetry: Telemetry | None = None,
) -> Worker:
    return Worker(
        params=worker_params_from_settings(settings),
        store=store,
        provider=provider or build_provider(settings),
        siro=siro or build_siro_client(settings),
        downloader=build_downloader(settings, stop),
        audio=PyAvAudio(),
        owner=worker_identity(),
        stop=stop,
        telemetry=telemetry,
    )


def build_daemon(settings: Settings, store: Store, stop: threading.Event) -> Daemon:
    telemetry: Telemetry | None = None
    if settings.metrics.listen:
        telemetry = serve_metrics(settings.metrics.listen, store, utcnow)
    provider = build_provider(settings)
    siro = build_siro_client(settings)
    worker = build_worker(settings, store, stop, provider=provider, siro=siro, telemetry=telemetry)

    poll_params = poll_params_from_settings(settings)

    def poll_cycle() -> PollReport:
        return poll_once(poll_params, provider, store, utcnow())

    def users_sync() -> UsersSyncResult:
        return sync_users(siro, store, utcnow(), default_region=settings.siro.phone_default_region)

    return Daemon(
        daemon_params_from_settings(settings),
        store=store,
        poll_cycle=poll_cycle,
        worker=worker,
        stop=stop,
        notifier=SystemdNotifier(),
        telemetry=telemetry,
        users_sync=users_sync,
    )
