"""The composition root: the one place that wires adapters to ports for the daemon and the CLI.

Most commands only open the state store, or build one adapter: what only the daemon builds (the
worker and its audio library, the scheduler, the metrics and webhook servers, the Siro client,
each provider kind's adapter) is imported by the function that builds it, so that opening the
store costs no more than the database layer and the settings.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from poller import __version__
from poller.adapters.sql import migrate
from poller.adapters.sql.database import make_engine
from poller.adapters.sql.store import SqlStore
from poller.config import ConfigError, Settings, provider_problems
from poller.domain.clock import utcnow
from poller.ports.poll_lock import NoPollLock, PollLock
from poller.ports.provider import ProviderPort, SourceDeleter
from poller.ports.siro import SiroPort
from poller.ports.store import Store
from poller.ports.telemetry import Telemetry
from poller.ports.webhooks import EventSink

if TYPE_CHECKING:
    from poller.adapters.downloader import Downloader
    from poller.adapters.prometheus_metrics import PrometheusTelemetry
    from poller.adapters.siro.client import SiroHttpClient
    from poller.adapters.webhooks.receiver import Endpoint, WebhookReceiver
    from poller.core.daemon import Daemon
    from poller.core.progress import WorkProgress
    from poller.core.source_deletion import SourceDeletionJob
    from poller.core.worker import Worker
    from poller.domain.records import UsersSyncResult
    from poller.domain.retention import RetentionReport
    from poller.ports.download import RecordingFetcher

log = logging.getLogger(__name__)


def build_engine(settings: Settings) -> Engine:
    # The worker's threads (three per unit of `concurrency`: see core/stages.py), its drain
    # loop, the poll job and the health check.
    return make_engine(settings.database_url, pool_size=3 * settings.worker.concurrency + 3)


def open_store(settings: Settings, engine: Engine | None = None) -> SqlStore:
    """The state store, refusing a database whose schema is not the one this code expects."""
    engine = engine or build_engine(settings)
    migrate.assert_at_head(engine)
    return SqlStore(engine)


def build_provider(
    settings: Settings,
    name: str | None = None,
    *,
    engine: Engine | None = None,
    to_subscribe: bool = False,
) -> ProviderPort:
    """The adapter of the provider called ``name`` (default: the first configured).

    A provider whose OAuth refresh token rotates keeps it in the state database (``engine``,
    or one opened on database.url): every command that talks to it, `provider check`
    included, must use the stored token, as the seed in config is spent after one refresh.

    ``to_subscribe`` (`webhooks subscribe`): an unset ``webhook.secret`` is no problem, since
    only the verification of events needs it, and a vendor that chooses the secret itself
    (Aircall) hands it over only when the subscription is made. A vendor that must be given the
    secret says so when asked to subscribe.

    Raises ``ConfigError`` naming what its kind needs and the config leaves unset.
    """
    from poller.adapters.providers import registry as providers_registry
    from poller.adapters.sql.oauth_tokens import SqlOAuthTokenStore

    provider = settings.provider_named(name) if name else settings.configured_providers[0]
    problems = provider_problems(provider)
    if to_subscribe:
        secret_key = provider.config_key("webhook.secret") + ":"
        problems = [problem for problem in problems if not problem.startswith(secret_key)]
    if problems:
        raise ConfigError(problems)
    token_store = None
    if providers_registry.needs_token_store(provider):
        token_store = SqlOAuthTokenStore(
            engine or build_engine(settings),
            # A waiter waits out another process's refresh, which takes one request at most.
            lock_timeout_seconds=provider.deadline_seconds + 30,
        )
    if to_subscribe:
        # registry.build_provider would check the requirements again, the secret's included.
        return providers_registry.adapter_class(provider.kind)(provider, token_store=token_store)
    return providers_registry.build_provider(provider, token_store=token_store)


def build_providers(settings: Settings, engine: Engine | None = None) -> dict[str, ProviderPort]:
    """Every configured provider's adapter, by the name its calls are stored under."""
    return {
        provider.name: build_provider(settings, provider.name, engine=engine)
        for provider in settings.configured_providers
    }


def build_siro_client(settings: Settings) -> SiroHttpClient:
    """The one Siro client of this process: it holds the access token and what Siro accepted."""
    from poller.adapters.siro.client import SiroHttpClient

    return SiroHttpClient(settings.siro)


def worker_identity() -> str:
    """Who holds a lease: readable in `calls show`, unique per process start."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def build_downloader(
    settings: Settings,
    stop: threading.Event,
    providers: Mapping[str, ProviderPort] | None = None,
) -> Downloader:
    from poller.adapters.downloader import Downloader
    from poller.adapters.http import HostRules, HttpClient, Limits, RetryPolicy
    from poller.adapters.providers.base import ProviderAdapter

    # One client serves every provider's downloads: the most patient of their limits.
    configured = settings.configured_providers
    slowest = max(configured, key=lambda p: p.deadline_seconds)
    client = HttpClient(
        limits=Limits(
            connect_timeout=max(p.connect_timeout_seconds for p in configured),
            read_timeout=max(p.read_timeout_seconds for p in configured),
            deadline=slowest.deadline_seconds,
            max_body_bytes=settings.worker.max_file_bytes,
            deadline_key=slowest.config_key("deadline_seconds"),
            max_retry_after=max(p.max_retry_after_seconds for p in configured),
            retry_after_key=max(configured, key=lambda p: p.max_retry_after_seconds).config_key(
                "max_retry_after_seconds"
            ),
            read_timeout_key=max(configured, key=lambda p: p.read_timeout_seconds).config_key(
                "read_timeout_seconds"
            ),
            url_keys={host: key for p in configured for host, key in p.url_keys().items()},
        ),
        # Each download brings its own rules (DownloadRequest); these are only the fallback.
        hosts=HostRules(),
        # One attempt per download: the worker reschedules the row with its own backoff.
        retry=RetryPolicy.once(),
        user_agent=f"siro-poller/{__version__}",
        pool_size=settings.worker.concurrency,
    )
    # A download from a provider's own host counts against that provider's rate limit.
    rate_limiters = {
        host: limiter
        for provider in (providers or {}).values()
        if isinstance(provider, ProviderAdapter)
        for host, limiter in provider.rate_limited_hosts().items()
    }
    return Downloader(
        client,
        max_bytes=settings.worker.max_download_bytes,
        stop=stop,
        rate_limiters=rate_limiters,
    )


def build_worker(
    settings: Settings,
    store: Store,
    stop: threading.Event,
    *,
    providers: Mapping[str, ProviderPort] | None = None,
    siro: SiroPort | None = None,
    downloader: RecordingFetcher | None = None,
    telemetry: Telemetry | None = None,
    progress: WorkProgress | None = None,
) -> Worker:
    from poller.adapters.audio import PyAvAudio
    from poller.core.worker import Worker
    from poller.wiring import worker_params_from_settings

    providers = providers if providers is not None else build_providers(settings)
    return Worker(
        params=worker_params_from_settings(settings),
        store=store,
        providers=providers,
        siro=siro or build_siro_client(settings),
        downloader=downloader or build_downloader(settings, stop, providers),
        audio=PyAvAudio(),
        owner=worker_identity(),
        stop=stop,
        telemetry=telemetry,
        progress=progress,
    )


def build_poll_lock(store: SqlStore, provider: str) -> PollLock:
    """Who polls ``provider``: on PostgreSQL an advisory lock per provider name; SQLite is one
    host, where every daemon polls."""
    from poller.adapters.sql.postgres import PostgresPollLock

    if store.engine.dialect.name == "postgresql":
        return PostgresPollLock(store.engine, provider)
    return NoPollLock()


def startup_summary(settings: Settings) -> str:
    """What `run` says it runs with, on its start-up line."""
    providers = ", ".join(
        f"{provider.name} ({provider.kind})" for provider in settings.configured_providers
    )
    metrics = f"metrics on {settings.metrics.listen}" if settings.metrics.listen else "metrics off"
    return (
        f"version {__version__}, role {settings.worker.role}, "
        f"database {describe_database(settings.database_url)}, "
        f"provider{'s' if len(settings.configured_providers) > 1 else ''} {providers}, {metrics}"
        + (f", {webhooks_summary(settings)}" if receives_webhooks(settings) else "")
    )


def receives_webhooks(settings: Settings) -> bool:
    """Whether `run` starts the webhook receiver: it is configured and this process polls (an
    event nudges a poll, which a worker-only process never runs)."""
    return bool(settings.webhooks.listen) and settings.worker.role in ("all", "poller")


def webhooks_summary(settings: Settings) -> str:
    """Where the receiver listens and whose events it takes, for the start-up line."""
    if not receives_webhooks(settings):
        return "webhooks off"
    names = [p.name for p in settings.configured_providers if p.webhook.enabled]
    return (
        f"webhooks on {settings.webhooks.listen} for {', '.join(names)}"
        if names
        else f"webhooks on {settings.webhooks.listen} for no provider (none has webhook.enabled)"
    )


def webhook_endpoints(
    settings: Settings, providers: Mapping[str, ProviderPort]
) -> dict[str, Endpoint]:
    """Each provider with ``webhook.enabled``, by name, with its verifier. Raises
    ``ConfigError`` naming every provider whose kind takes no events or lacks its secret."""
    from poller.adapters.providers.base import ProviderAdapter
    from poller.adapters.webhooks.receiver import Endpoint

    endpoints: dict[str, Endpoint] = {}
    problems: list[str] = []
    for entry in settings.configured_providers:
        if not entry.webhook.enabled:
            continue
        adapter = providers.get(entry.name)
        try:
            verifier = adapter.webhook_verifier() if isinstance(adapter, ProviderAdapter) else None
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        if verifier is None:
            key = entry.config_key("webhook.enabled")
            problems.append(
                f"{key}: nothing can check the events of this {entry.kind} provider: its kind "
                "takes none, or what they are checked with (webhook.secret, or the kind's "
                f"credentials) is unset; set it, or set {key} = false"
            )
            continue
        public_url = entry.webhook.public_url
        endpoints[entry.name] = Endpoint(verifier, str(public_url) if public_url else None)
    if problems:
        raise ConfigError(problems)
    return endpoints


def _close_on_stop(receiver: WebhookReceiver, stop: threading.Event) -> None:
    """Stop taking events as soon as the daemon is asked to stop."""

    def close() -> None:
        stop.wait()
        receiver.close()

    threading.Thread(target=close, name="webhooks-stop", daemon=True).start()


def serve_webhooks(
    settings: Settings,
    providers: Mapping[str, ProviderPort],
    sink: EventSink,
    *,
    telemetry: Telemetry | None = None,
) -> WebhookReceiver:
    """The receiver on ``webhooks.listen``, serving from its own threads until closed.

    Raises ``ConfigError`` for a provider it cannot take events for, or an address it cannot
    listen on."""
    from poller.adapters.webhooks.receiver import ReceiverLimits, WebhookReceiver

    section = settings.webhooks
    endpoints = webhook_endpoints(settings, providers)
    ages = [
        p.webhook.max_event_age_seconds
        for p in settings.configured_providers
        if p.name in endpoints
    ]
    try:
        return WebhookReceiver(
            section.listen,
            endpoints,
            sink,
            limits=ReceiverLimits(
                max_body_bytes=section.max_body_bytes,
                request_timeout=section.request_timeout_seconds,
                max_connections=section.max_connections,
                per_source_rate=section.per_source_rate,
                per_source_burst=section.per_source_burst,
            ),
            # A resent delivery is refused as stale or, within twice the window, as a replay.
            replay_ttl_seconds=2 * max(ages, default=300.0),
            telemetry=telemetry,
        )
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(
            [f"webhooks.listen: cannot listen on {section.listen!r}: {reason}"]
        ) from None


def describe_database(url: str) -> str:
    """The state database as a log line may show it: SQLite's file, or the URL without its
    password."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return "(database.url, not a URL)"
    if parsed.get_backend_name() == "sqlite":
        return f"{parsed.database or ':memory:'} (SQLite)"
    return parsed.render_as_string(hide_password=True)


def build_source_deletion(
    settings: Settings,
    store: SqlStore,
    *,
    providers: Mapping[str, ProviderPort] | None = None,
    siro: SiroPort | None = None,
    stop: threading.Event | None = None,
) -> SourceDeletionJob:
    """Deletion at the source over this store's database, for `run` and `source purge`."""
    from poller.adapters.sql.source_deletions import SqlSourceDeletions
    from poller.core.source_deletion import SourceDeletionJob
    from poller.wiring import source_deletion_params_from_settings

    providers = providers if providers is not None else build_providers(settings)
    return SourceDeletionJob(
        params=source_deletion_params_from_settings(settings),
        store=SqlSourceDeletions(store.engine),
        siro=siro or build_siro_client(settings),
        deleters={
            name: provider
            for name, provider in providers.items()
            if isinstance(provider, SourceDeleter)
        },
        owner=worker_identity(),
        clock=utcnow,
        stop=stop or threading.Event(),
    )


def build_daemon(
    settings: Settings,
    store: SqlStore,
    stop: threading.Event,
    *,
    progress: WorkProgress | None = None,
) -> Daemon:
    from poller.adapters.systemd_notify import SystemdNotifier
    from poller.core.daemon import Daemon
    from poller.core.polling import LockedPollCycle
    from poller.core.retention import run_retention
    from poller.core.users_sync import sync_users
    from poller.core.webhook_subscriptions import ArrivalRecorder
    from poller.wiring import (
        daemon_params_from_settings,
        poll_cycle_from_settings,
        retention_rules_from_settings,
        webhook_subscription_job,
    )

    telemetry: PrometheusTelemetry | None = None
    if settings.metrics.listen:
        # Imported only when metrics are on: prometheus_client is no small import.
        from prometheus_client import CollectorRegistry

        from poller.adapters.prometheus_metrics import PrometheusTelemetry

        telemetry = PrometheusTelemetry(CollectorRegistry(), version=__version__)
    providers = build_providers(settings, store.engine)
    siro = build_siro_client(settings)
    worker = build_worker(
        settings,
        store,
        stop,
        providers=providers,
        siro=siro,
        telemetry=telemetry,
        progress=progress,
    )

    extra_jobs: list[tuple[str, Callable[[], None], float]] = []
    deletion = build_source_deletion(settings, store, providers=providers, siro=siro, stop=stop)
    if deletion.params.active:
        every = float(settings.source_deletion.interval_seconds)
        extra_jobs.append(("source-delete", deletion.job, every))
    # Where the receiver runs: with the polling side.
    subscriptions = webhook_subscription_job(settings, providers, store)
    polling_jobs = [subscriptions] if subscriptions is not None else []

    def users_sync() -> UsersSyncResult:
        result = sync_users(
            siro, store, utcnow(), default_region=settings.siro.phone_default_region
        )
        log.info("Siro users synced: %s", result.summary())
        return result

    rules = retention_rules_from_settings(settings)

    def retention() -> RetentionReport:
        return run_retention(rules, store, utcnow())

    daemon = Daemon(
        daemon_params_from_settings(settings, providers),
        store=store,
        poll_cycles=[
            # A PollCycle, so that a nudged poll can list up to now.
            LockedPollCycle(
                name,
                poll_cycle_from_settings(settings, name, provider, store, utcnow),
                build_poll_lock(store, name),
            )
            for name, provider in providers.items()
        ],
        worker=worker,
        stop=stop,
        notifier=SystemdNotifier(),
        telemetry=telemetry,
        users_sync=users_sync,
        about=startup_summary(settings),
        extra_jobs=extra_jobs,
        retention=retention,
        polling_jobs=polling_jobs,
    )
    if receives_webhooks(settings):
        # Each event nudges an early poll, and its arrival is kept for `webhooks status`.
        arrivals = ArrivalRecorder(store, then=daemon.nudges)
        receiver = serve_webhooks(settings, providers, arrivals, telemetry=telemetry)
        _close_on_stop(receiver, stop)
    if telemetry is not None:
        from poller.adapters.prometheus_metrics import pause_scopes, serve_metrics

        serve_metrics(
            settings.metrics.listen,
            telemetry,
            store,
            utcnow,
            health=lambda: daemon.health_check(utcnow()),
            scopes=pause_scopes(list(providers)),
            request_timeout=settings.metrics.request_timeout_seconds,
            max_connections=settings.metrics.max_connections,
            sizes=store,
        )
    return daemon
