"""Prometheus metrics: counters from the running daemon, gauges read from the state table.

The gauges come from the database at scrape time, so they are true for every worker sharing
it, and survive restarts; the counters describe this process since it started.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from poller.ports.store import Store

_STEP_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class PrometheusTelemetry:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.steps = Counter(
            "siro_poller_steps",
            "Download and upload steps by outcome (ok, adopted, retry, fail, skip) and reason.",
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


class StateTableCollector(Collector):
    """Gauges from the state table: what is where, what waits, how far behind polling is."""

    def __init__(self, store: Store, clock: Callable[[], datetime]) -> None:
        self.store = store
        self.clock = clock

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = self.clock()
        summary = self.store.status(now)
        calls = GaugeMetricFamily("siro_poller_calls", "Calls by state.", labels=["state"])
        for state, count in summary.counts.items():
            calls.add_metric([state], count)
        yield calls
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


def serve_metrics(listen: str, store: Store, clock: Callable[[], datetime]) -> PrometheusTelemetry:
    """Serve /metrics on ``host:port`` from a background thread for the life of the process."""
    host, _, port = listen.rpartition(":")
    registry = CollectorRegistry()
    telemetry = PrometheusTelemetry(registry)
    registry.register(StateTableCollector(store, clock))
    start_http_server(int(port), addr=host.strip("[]"), registry=registry)
    return telemetry
