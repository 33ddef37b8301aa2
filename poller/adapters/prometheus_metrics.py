"""Prometheus metrics and the health check, served by the daemon on ``metrics.listen``.

``/metrics``: counters from the running daemon, gauges read from the state table. The gauges
come from the database at scrape time, so they are true for every worker sharing it, and
survive restarts; the counters describe this process since it started.

``/healthz``: 200 while healthy, 503 otherwise, with the reasons as JSON
(:mod:`poller.domain.health`). Any other path is a 404.

The server is reachable by anything on its network, so a client cannot hold it: the limits of
:mod:`poller.adapters.bounded_http` (a deadline per request, a bounded number of connections).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from poller.adapters.bounded_http import (
    BoundedServer,
    DeadlineReader,
    listen_address,
    start_serving,
)
from poller.domain.health import Health
from poller.domain.pauses import SIRO, provider_scope
from poller.ports.store import RetentionStore, Store

log = logging.getLogger(__name__)

NOT_FOUND = b"not found: the paths are /metrics and /healthz\n"

_STEP_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class PrometheusTelemetry:
    def __init__(self, registry: CollectorRegistry, *, version: str = "") -> None:
        self.registry = registry
        build = Gauge(
            "siro_poller_build_info",
            "The version of siro-poller this process runs (always 1).",
            ["version"],
            registry=registry,
        )
        build.labels(version=version or "unknown").set(1)
        self.steps = Counter(
            "siro_poller_steps",
            "Download and upload steps by outcome (ok, adopted, retry, fail, skip, paused) and "
            "reason.",
            ["step", "outcome", "kind"],
            registry=registry,
        )
        self.step_seconds = Histogram(
            "siro_poller_step_duration_seconds",
            "How long successful download and upload steps took.",
            ["step"],
            buckets=_STEP_BUCKETS,
            registry=registry,
        )
        self.downloaded = Counter(
            "siro_poller_downloaded_bytes", "Recording bytes downloaded.", registry=registry
        )
        self.polls = Counter(
            "siro_poller_polls",
            "Poll cycles by outcome (ok, error).",
            ["outcome"],
            registry=registry,
        )
        self.listed = Counter(
            "siro_poller_calls_listed", "Call records read from the provider.", registry=registry
        )
        self.webhooks = Counter(
            "siro_poller_webhook_requests",
            "Requests to the webhook receiver by provider (empty for a path that names none) "
            "and outcome (accepted, refused, replayed, rate_limited, too_large, unknown_path).",
            ["provider", "outcome"],
            registry=registry,
        )

    def step_finished(
        self, step: str, outcome: str, *, seconds: float | None = None, kind: str | None = None
    ) -> None:
        self.steps.labels(step=step, outcome=outcome, kind=kind or "").inc()
        if seconds is not None:
            self.step_seconds.labels(step=step).observe(seconds)

    def bytes_downloaded(self, count: int) -> None:
        self.downloaded.inc(count)

    def poll_finished(self, *, ok: bool, listed: int) -> None:
        self.polls.labels(outcome="ok" if ok else "error").inc()
        self.listed.inc(listed)

    def webhook_request(self, provider: str, outcome: str) -> None:
        self.webhooks.labels(provider=provider, outcome=outcome).inc()


class StateTableCollector(Collector):
    """Gauges from the state table: what is where, what waits, how far behind polling is."""

    def __init__(
        self, store: Store, clock: Callable[[], datetime], scopes: Sequence[str] = ()
    ) -> None:
        self.store = store
        self.clock = clock
        # The pause scopes that always have a series (0 when not paused): Siro's and each
        # configured provider's, so an alert can compare with 1 without an absent series.
        self.scopes = tuple(scopes)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = self.clock()
        summary = self.store.status(now)
        calls = GaugeMetricFamily("siro_poller_calls", "Calls by state.", labels=["state"])
        for state, count in summary.counts.items():
            calls.add_metric([state], count)
        yield calls
        # A rise of fallback_* or none beside siro_* shows reps Siro does not know, at once.
        attributed = GaugeMetricFamily(
            "siro_poller_uploaded_calls_by_attribution",
            "Uploaded calls by how their rep was attributed (map_*, siro_email, siro_phone, "
            "fallback_email, fallback_phone, none).",
            labels=["attribution"],
        )
        for kind, count in summary.uploaded_by_attribution.items():
            attributed.add_metric([kind], count)
        yield attributed
        yield GaugeMetricFamily(
            "siro_poller_due_calls", "Calls due for the worker now.", value=summary.due_now
        )
        oldest = summary.oldest_due_at
        yield GaugeMetricFamily(
            "siro_poller_oldest_due_age_seconds",
            "How long the oldest due call has been waiting for the worker.",
            value=(now - oldest).total_seconds() if oldest else 0.0,
        )
        behind = GaugeMetricFamily(
            "siro_poller_cursor_lag_seconds",
            "How far the poll cursor is behind now, per provider.",
            labels=["provider"],
        )
        success = GaugeMetricFamily(
            "siro_poller_last_poll_success_timestamp_seconds",
            "When polling last completed without error, per provider.",
            labels=["provider"],
        )
        for cursor in summary.cursors:
            if cursor.cursor_value is not None:
                behind.add_metric([cursor.provider], (now - cursor.cursor_value).total_seconds())
            if cursor.last_success_at is not None:
                success.add_metric([cursor.provider], cursor.last_success_at.timestamp())
        yield behind
        yield success
        unmapped = GaugeMetricFamily(
            "siro_poller_unmapped_records",
            "Listed records the field mapping could not read (not calls yet), per provider.",
            labels=["provider"],
        )
        for provider, count in summary.unmapped.items():
            unmapped.add_metric([provider], count)
        yield unmapped
        paused = GaugeMetricFamily(
            "siro_poller_credential_paused",
            "1 while work is paused because Siro (scope siro) or a provider (provider:NAME) "
            "refuses the credentials, else 0.",
            labels=["scope"],
        )
        in_force = {pause.scope for pause in summary.pauses}
        for scope in sorted(in_force | set(self.scopes)):
            paused.add_metric([scope], 1.0 if scope in in_force else 0.0)
        yield paused


class TableSizeCollector(Collector):
    """Gauges of the state database's size: rows per table, bytes, expired unmapped records,
    so that growth (and what retention holds it to) shows on a dashboard."""

    def __init__(self, store: RetentionStore) -> None:
        self.store = store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        sizes = self.store.table_sizes()
        rows = GaugeMetricFamily(
            "siro_poller_table_rows", "Rows per table of the state database.", labels=["table"]
        )
        for table, count in sizes.rows.items():
            rows.add_metric([table], count)
        yield rows
        if sizes.database_bytes is not None:
            yield GaugeMetricFamily(
                "siro_poller_database_bytes",
                "Size of the state database: the SQLite file's pages (free ones included, WAL "
                "not), or the PostgreSQL tables with their indexes.",
                value=sizes.database_bytes,
            )
        expired = GaugeMetricFamily(
            "siro_poller_unmapped_expired_records",
            "Unmapped records retention expired without their ever mapping, per provider.",
            labels=["provider"],
        )
        for provider, count in sizes.unmapped_expired.items():
            expired.add_metric([provider], count)
        yield expired


def pause_scopes(providers: Sequence[str]) -> list[str]:
    """Siro's scope and each provider's, for :class:`StateTableCollector`."""
    return [SIRO, *(provider_scope(name) for name in providers)]


DEFAULT_REQUEST_TIMEOUT_SECONDS = 10.0
DEFAULT_MAX_CONNECTIONS = 32


class MetricsServer:
    """``/metrics`` and ``/healthz`` on one address, each connection in a thread of its own,
    within the limits the module describes."""

    def __init__(
        self,
        listen: str,
        registry: CollectorRegistry,
        health: Callable[[], Health],
        *,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT_SECONDS,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        host, port, family = listen_address(listen)

        class Server(BoundedServer):
            address_family = family
            label = "metrics server"

        self._server = Server(
            (host, port),
            _handler(registry, health),
            max_connections=max_connections,
            request_timeout=request_timeout,
        )
        self.port: int = self._server.server_address[1]
        self._thread = start_serving(self._server, "metrics")

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler(
    registry: CollectorRegistry, health: Callable[[], Health]
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server: BoundedServer

        def setup(self) -> None:
            super().setup()
            deadline = time.monotonic() + self.server.request_timeout
            self.rfile = DeadlineReader(self.rfile, self.connection, deadline)  # type: ignore[assignment]

        def do_GET(self) -> None:
            self.server.request_arrived(self.connection)
            # The answer is written within the same bound as the request was read.
            self.connection.settimeout(self.server.request_timeout)
            path = urlsplit(self.path).path
            if path == "/metrics":
                encoder, content_type = choose_encoder(self.headers.get("Accept") or "")
                self._answer(200, content_type, encoder(registry))
            elif path == "/healthz":
                self._healthz()
            else:
                self._answer(
                    404, "text/plain; charset=utf-8", b"not found: try /metrics or /healthz\n"
                )

        def _healthz(self) -> None:
            document: dict[str, Any]
            try:
                verdict = health()
            except Exception as exc:
                log.exception("the health check could not read the state database")
                document = {
                    "healthy": False,
                    "status": "degraded",
                    "reasons": [
                        {
                            "check": "database",
                            "subject": "state database",
                            "message": f"could not read the state database: {type(exc).__name__}",
                        }
                    ],
                }
            else:
                document = verdict.to_dict()
            body = json.dumps(document, default=_json_default, sort_keys=True).encode()
            self._answer(200 if document["healthy"] else 503, "application/json", body)

        def _answer(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # scrapes every few seconds would drown the log

    return Handler


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def serve_metrics(
    listen: str,
    telemetry: PrometheusTelemetry,
    store: Store,
    clock: Callable[[], datetime],
    *,
    health: Callable[[], Health],
    scopes: Sequence[str] = (),
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT_SECONDS,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    sizes: RetentionStore | None = None,
) -> MetricsServer:
    """Serve ``/metrics`` and ``/healthz`` on ``host:port`` from a background thread for the
    life of the process; ``sizes``, when given, adds the table-size gauges."""
    telemetry.registry.register(StateTableCollector(store, clock, scopes))
    if sizes is not None:
        telemetry.registry.register(TableSizeCollector(sizes))
    return MetricsServer(
        listen,
        telemetry.registry,
        health,
        request_timeout=request_timeout,
        max_connections=max_connections,
    )
