"""Failures as an operator meets them in the log: one line each, the setting to check named,
nothing retried that retrying cannot cure, and no duplicate of what the daemon says itself."""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from apscheduler.events import EVENT_JOB_MAX_INSTANCES, SchedulerEvent
from apscheduler.schedulers.background import BackgroundScheduler

from poller.adapters.http import RetryPolicy
from poller.adapters.providers.generic import GenericProvider, GenericSettings
from poller.adapters.siro import SiroHttpClient
from poller.config import Settings
from poller.core.daemon import Daemon
from poller.core.poll import poll_once
from poller.domain.windows import Window
from poller.logs import configure_logging
from poller.ports.provider import ProviderAuthError, TransientProviderError
from poller.ports.siro import SiroTransientError
from poller.simulators.http_server import LocalHTTPServer, QuietHandler
from poller.simulators.provider_server import FakeCallLog, serve
from poller.simulators.siro_server import FakeSiro
from poller.wiring import poll_params_from_settings
from tests.seed import AnyStore
from tests.siro_settings import siro_settings

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
WINDOW = Window(NOW - timedelta(hours=1), NOW)
# RFC 6761: no name under .invalid ever resolves, so nothing real is contacted.
UNRESOLVABLE = "http://calls.nonexistent.invalid/api"
TOKEN = "provider-token-never-logged"


class Waits:
    """The retry policy's sleep: counts the waits instead of taking them."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def provider(url: str, waits: Waits, **settings: Any) -> GenericProvider:
    retry = RetryPolicy(max_tries=4, base_delay=0.0, max_delay=1.0, sleep=waits)
    return GenericProvider(GenericSettings(base_url=url, **settings), retry=retry)


@pytest.fixture
def refusing() -> str:
    """The URL of a provider simulator that is gone: its port refuses connections."""
    with LocalHTTPServer(QuietHandler) as gone:
        url = gone.url
    return url


def lines_at(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelno >= level]


# -- a poll that fails ------------------------------------------------------------------------


def test_a_provider_refusing_connections_is_one_line_per_cycle_naming_base_url(
    refusing: str, any_store: AnyStore, caplog: pytest.LogCaptureFixture
) -> None:
    waits = Waits()
    adapter = provider(refusing, waits)
    params = poll_params_from_settings(Settings(provider={"base_url": refusing}))
    for cycle in range(2):
        caplog.clear()
        with caplog.at_level(logging.DEBUG):
            report = poll_once(params, adapter, any_store, NOW + timedelta(minutes=5 * cycle))
        assert not report.ok
        assert len(waits.waits) == 3 * (cycle + 1)  # retried within the call, as before
        (line,) = lines_at(caplog, logging.INFO)
        assert [r.levelno for r in caplog.records if r.levelno >= logging.INFO] == [logging.ERROR]
        assert line.startswith("generic: poll failed after 0 page(s) and 0 call(s) listed")
        assert "connection failed (Connection refused); check provider.base_url" in line
        # Each message names the page once, the retries' (at DEBUG) included.
        for message in (record.getMessage() for record in caplog.records):
            assert message.count("page 1 of window") <= 1, message
        retried = [r.getMessage() for r in caplog.records if "; retry " in r.getMessage()]
        assert len(retried) == 3 and all(r.startswith("page 1 of window") for r in retried)


def test_a_refused_token_names_the_credential_key() -> None:
    api = FakeCallLog(auth=("bearer", "the-right-token"))
    with serve(api) as server:
        adapter = provider(server.url, Waits(), auth="bearer", token=TOKEN)
        with pytest.raises(ProviderAuthError) as caught:
            list(adapter.list_window(WINDOW))
    message = str(caught.value)
    assert "HTTP 401" in message and message.endswith("check provider.token")
    assert TOKEN not in message


# -- a host name that does not resolve ----------------------------------------------------------


def test_a_provider_host_that_does_not_resolve_fails_at_once_naming_host_and_key() -> None:
    waits = Waits()
    adapter = provider(UNRESOLVABLE, waits, listing={"params": {"sig": "sig-never-shown"}})
    with pytest.raises(TransientProviderError) as caught:
        list(adapter.list_window(WINDOW))
    message = str(caught.value)
    assert waits.waits == []  # not tried again within the call; the next cycle tries
    assert "the host name calls.nonexistent.invalid does not resolve" in message
    assert message.endswith("check provider.base_url")
    assert "sig-never-shown" not in message and "?" not in message


@pytest.fixture
def siro() -> Iterator[FakeSiro]:
    with FakeSiro() as fake:
        yield fake


def test_siro_users_with_a_host_that_does_not_resolve_fails_at_once(
    siro: FakeSiro, caplog: pytest.LogCaptureFixture
) -> None:
    settings = siro_settings(
        siro,
        external_api_base_url="https://functions.nonexistent.invalid/api-externalApi",
        max_retries=4,
    )
    with (
        SiroHttpClient(settings) as client,
        caplog.at_level(logging.DEBUG),
        pytest.raises(SiroTransientError) as caught,
    ):
        client.list_users()
    message = str(caught.value)
    assert message.startswith("Siro users: https://functions.nonexistent.invalid: ")
    assert "the host name functions.nonexistent.invalid does not resolve" in message
    assert message.endswith("check siro.external_api_base_url")
    assert not [r for r in caplog.records if "retry" in r.getMessage()]


# -- the scheduler's turns ----------------------------------------------------------------------


def test_a_turn_skipped_behind_a_running_job_logs_nothing_at_info() -> None:
    """APScheduler's own warning for the skipped turn is silenced by the logging setup, and
    the daemon's listener notes it at DEBUG only: a backlog is not a fault."""
    stream = io.StringIO()
    handler = configure_logging(Settings(), stream=stream)
    running, release, skipped = threading.Event(), threading.Event(), threading.Event()

    def long_poll() -> None:
        running.set()
        release.wait(30)

    def listener(event: SchedulerEvent) -> None:
        Daemon.on_scheduler_event(event)
        skipped.set()

    scheduler = BackgroundScheduler(timezone=UTC, job_defaults={"max_instances": 1})
    scheduler.add_listener(listener, EVENT_JOB_MAX_INSTANCES)
    try:
        now = datetime.now(UTC)
        scheduler.add_job(long_poll, "interval", hours=1, id="poll", next_run_time=now)
        scheduler.start()
        assert running.wait(30)
        scheduler.modify_job("poll", next_run_time=datetime.now(UTC))  # the next turn is due
        assert skipped.wait(30)
    finally:
        release.set()
        scheduler.shutdown(wait=True)
        logging.getLogger().removeHandler(handler)
    assert stream.getvalue() == ""
