"""The metrics listener over a real socket: `/healthz` says whether all is well and why not,
`/metrics` serves the metrics, and no other path answers."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client import CollectorRegistry

from poller.adapters.prometheus_metrics import (
    MetricsServer,
    PrometheusTelemetry,
    pause_scopes,
    serve_metrics,
)
from poller.adapters.providers.memory import InMemoryProvider, InMemoryRecordings
from poller.adapters.siro_fake import InMemorySiro
from poller.app import build_worker
from poller.config import Settings
from poller.core.daemon import Daemon
from poller.core.poll import poll_once
from poller.core.poll_report import PollReport
from poller.domain.pauses import SIRO
from poller.ports.webhooks import Subscription, SubscriptionState
from poller.wiring import daemon_params_from_settings, poll_params_from_settings
from tests.receiver_settings import receiver_section
from tests.seed import AnyStore

NOW = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
REASON = "Siro mint-token: HTTP 401; check siro.client_id, siro.client_secret"


class World:
    def __init__(self, store: AnyStore, tmp_path: Path, *, webhook: bool = False) -> None:
        self.store = store
        self.now = NOW
        self.provider = InMemoryProvider(name="memory")
        self.settings = Settings(
            state_dir=tmp_path / "state",
            provider={"name": "memory", "webhook": {"enabled": webhook}},
            poll={"interval_seconds": 60, "settle_delay_seconds": 0},
            worker={"interval_seconds": 15},
            **(receiver_section() if webhook else {}),
        )
        worker = build_worker(
            self.settings,
            store,
            threading.Event(),
            providers={"memory": self.provider},
            siro=InMemorySiro(clock=self.clock),
            downloader=InMemoryRecordings(),
        )
        worker.clock = self.clock
        params = poll_params_from_settings(self.settings, "memory")

        def poll_cycle() -> PollReport:
            return poll_once(params, self.provider, store, self.now)

        self.daemon = Daemon(
            daemon_params_from_settings(self.settings),
            store=store,
            poll_cycles=[poll_cycle],
            worker=worker,
            stop=threading.Event(),
        )

    def clock(self) -> datetime:
        return self.now


@pytest.fixture
def world(any_store: AnyStore, tmp_path: Path) -> World:
    return World(any_store, tmp_path)


@pytest.fixture
def listener(world: World) -> Iterator[MetricsServer]:
    server = serve_metrics(
        "127.0.0.1:0",
        PrometheusTelemetry(CollectorRegistry(), version="9.8.7"),
        world.store,
        world.clock,
        health=lambda: world.daemon.health_check(world.now),
        scopes=pause_scopes(["memory"]),
    )
    yield server
    server.close()


def test_a_lost_webhook_subscription_is_a_warning_of_a_healthy_healthz(
    any_store: AnyStore, tmp_path: Path
) -> None:
    # Polling still brings every call: a lost subscription costs latency, so /healthz stays 200
    # (an orchestrator would otherwise restart a process that does its job).
    world = World(any_store, tmp_path, webhook=True)
    world.daemon.poll_job()
    world.daemon.work_job()
    any_store.save_webhook_subscription(
        Subscription("memory", SubscriptionState.DEACTIVATED, detail="failed deliveries"), NOW
    )
    server = serve_metrics(
        "127.0.0.1:0",
        PrometheusTelemetry(CollectorRegistry(), version="9.8.7"),
        any_store,
        world.clock,
        health=lambda: world.daemon.health_check(world.now),
        scopes=pause_scopes(["memory"]),
    )
    try:
        answer = get(server, "/healthz")
    finally:
        server.close()

    assert answer.status_code == 200
    document = answer.json()
    assert (document["healthy"], document["reasons"]) == (True, [])
    (warning,) = document["warnings"]
    assert (warning["check"], warning["subject"]) == ("webhooks", "memory")
    assert "deactivated" in warning["message"]
    assert "`siro-poller webhooks subscribe --provider memory`" in warning["message"]


def get(server: MetricsServer, path: str) -> requests.Response:
    return requests.get(f"http://127.0.0.1:{server.port}{path}", timeout=10)


def reasons(answer: requests.Response) -> list[dict[str, Any]]:
    document: dict[str, Any] = answer.json()
    return list(document["reasons"])


def test_healthz_is_503_with_reasons_until_polling_and_the_worker_have_run(
    world: World, listener: MetricsServer
) -> None:
    answer = get(listener, "/healthz")

    assert answer.status_code == 503
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.json()["status"] == "degraded"
    assert [(r["check"], r["subject"]) for r in reasons(answer)] == [
        ("polling", "memory"),
        ("worker", "worker"),
    ]

    world.daemon.poll_job()
    world.daemon.work_job()
    healthy = get(listener, "/healthz")
    assert healthy.status_code == 200
    assert healthy.json() == {
        "healthy": True,
        "status": "ok",
        "checked_at": NOW.isoformat(),
        "reasons": [],
        "warnings": [],
    }


def test_healthz_is_503_during_a_credential_pause_and_after_polling_stalls(
    world: World, listener: MetricsServer
) -> None:
    world.daemon.poll_job()
    world.daemon.work_job()
    world.store.record_pause(SIRO, REASON, NOW - timedelta(minutes=3))

    paused = get(listener, "/healthz")
    assert paused.status_code == 503
    (reason,) = reasons(paused)
    assert (reason["check"], reason["subject"]) == ("credentials", "siro")
    assert "for 3m" in reason["message"] and REASON in reason["message"]

    world.store.end_pause(SIRO)
    world.now += timedelta(minutes=10)  # polling (every minute) has not succeeded since
    world.daemon.work_job()
    (stalled,) = reasons(get(listener, "/healthz"))
    assert stalled["check"] == "polling"
    assert "polling memory last succeeded 10m ago" in stalled["message"]


def test_metrics_only_at_metrics_with_the_pause_and_build_gauges(
    world: World, listener: MetricsServer
) -> None:
    world.store.record_pause(SIRO, REASON, NOW)

    metrics = get(listener, "/metrics")

    assert metrics.status_code == 200
    assert 'siro_poller_credential_paused{scope="siro"} 1.0' in metrics.text
    assert 'siro_poller_credential_paused{scope="provider:memory"} 0.0' in metrics.text
    assert 'siro_poller_build_info{version="9.8.7"} 1.0' in metrics.text
    assert "siro_poller_due_calls 0.0" in metrics.text
    for path in ("/", "/metricsx", "/metrics/more", "/healthz/x", "/favicon.ico"):
        assert get(listener, path).status_code == 404, path
    assert get(listener, "/metrics?name[]=x").status_code == 200
