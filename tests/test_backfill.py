"""Backfill: a past range beyond the lookback listed against the fake provider on a real
socket, into real stores, without moving the live cursor, resumable without listing twice."""

from __future__ import annotations

import dataclasses
import io
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner, Result
from rich.console import Console
from sqlalchemy import Engine

from poller.adapters.http import RetryPolicy
from poller.adapters.providers.generic import GenericProvider
from poller.adapters.sql.store import SqlStore
from poller.cli import main
from poller.cli.backfill import progress_display
from poller.config import Settings
from poller.core.backfill import BackfillRangeError, plan_backfill, run_backfill
from poller.core.poll import poll_once
from poller.domain.records import BackfillRun
from poller.domain.windows import Window
from poller.simulators.http_server import LocalHTTPServer
from poller.simulators.provider_server import FakeCallLog, quickstart_call, serve
from poller.wiring import poll_params_from_settings
from tests.conftest import database_url
from tests.seed import AnyStore

T0 = datetime(2026, 11, 1, 0, 0, tzinfo=UTC)
NOW = T0 + timedelta(days=20)
NO_WAIT = RetryPolicy(max_tries=1, base_delay=0.0, max_delay=0.0)


@pytest.fixture
def api() -> FakeCallLog:
    log = FakeCallLog(page_size=100)
    # Ten days of old calls, one every six hours, none on a window boundary (a call there is
    # listed by both windows that share it: harmless, but it would blur the counts below).
    for n in range(40):
        add(log, f"old-{n:02d}", T0 + timedelta(hours=6 * n + 1))
    return log


@pytest.fixture
def server(api: FakeCallLog) -> Iterator[LocalHTTPServer]:
    with serve(api) as running:
        yield running


def add(api: FakeCallLog, call_id: str, at: datetime) -> None:
    url = f"https://voip.example.com/recordings/{call_id}.mp3"
    api.add_call(quickstart_call(call_id, at, recording_url=url), at)


def settings_for(url: str, **listing: Any) -> Settings:
    return Settings(
        provider={"base_url": url, "listing": listing},
        poll={"lookback_minutes": 60, "initial_lookback_hours": 1},
    )


def provider_of(settings: Settings) -> GenericProvider:
    return GenericProvider(settings.provider, retry=NO_WAIT)


def window_starts(api: FakeCallLog) -> list[str]:
    """The `from` of every first-page request: one per window (span) listed."""
    return [r["query"]["from"] for r in api.list_requests() if "page_token" not in r["query"]]


def test_a_past_range_is_listed_and_the_live_cursor_stays(
    api: FakeCallLog, server: LocalHTTPServer, any_store: AnyStore
) -> None:
    settings = settings_for(server.url, max_window_hours=24)
    params = poll_params_from_settings(settings)
    provider = provider_of(settings)
    # The daemon has polled: its cursor is at NOW, and its lookback reaches an hour back.
    live = poll_once(params, provider, any_store, NOW)
    assert live.ok and live.listed == 0
    cursor = any_store.get_cursor("generic")
    api.requests.clear()

    plan = plan_backfill(params, provider, any_store, T0, T0 + timedelta(days=10), NOW)
    assert len(plan.windows) == 10 and not plan.resumed
    result = run_backfill(plan, params, provider, any_store, NOW)

    assert result.ok and result.run.done
    assert {c.provider_call_id for c in any_store.list_calls(limit=1000)} == {
        f"old-{n:02d}" for n in range(40)
    }
    run = result.run
    assert (run.windows, run.listed, run.new_calls, run.known, run.unmapped) == (10, 40, 40, 0, 0)
    assert run.listed_until == T0 + timedelta(days=10)
    assert len(window_starts(api)) == 10
    # Not a poll: the cursor and its bookkeeping are as the daemon left them.
    assert any_store.get_cursor("generic") == cursor

    again = run_backfill(
        plan_backfill(params, provider, any_store, T0, T0 + timedelta(days=10), NOW),
        params,
        provider,
        any_store,
        NOW,
    )
    assert again.ok and again.run.id != run.id  # a finished run is done; asking again relists
    assert (again.run.new_calls, again.run.known) == (0, 40)
    assert len(any_store.list_calls(limit=1000)) == 40


def test_an_interrupted_backfill_resumes_without_listing_a_window_twice(
    api: FakeCallLog, server: LocalHTTPServer, any_store: AnyStore
) -> None:
    settings = settings_for(server.url, max_window_hours=24)
    params = poll_params_from_settings(settings)
    provider = provider_of(settings)
    stop = threading.Event()
    done: list[Window] = []

    def stop_after_three(window: Window, run: BackfillRun) -> None:
        done.append(window)
        if len(done) == 3:
            stop.set()  # as Ctrl-C would, between two windows

    first = run_backfill(
        plan_backfill(params, provider, any_store, T0, T0 + timedelta(days=10), NOW),
        params,
        provider,
        any_store,
        NOW,
        span_done=stop_after_three,
        stop=stop,
    )
    assert first.interrupted and not first.run.done
    assert first.run.listed_until == T0 + timedelta(days=3)
    listed_first = window_starts(api)
    assert len(listed_first) == 3
    api.requests.clear()

    plan = plan_backfill(params, provider, any_store, T0, T0 + timedelta(days=10), NOW)
    assert plan.resumed and plan.run.id == first.run.id
    assert plan.windows[0].start == T0 + timedelta(days=3) and len(plan.windows) == 7
    second = run_backfill(plan, params, provider, any_store, NOW)

    assert second.ok and second.run.done
    listed_second = window_starts(api)
    assert len(listed_second) == 7
    assert not set(listed_first) & set(listed_second)
    assert (second.run.windows, second.run.listed, second.run.new_calls) == (10, 40, 40)
    assert any_store.get_cursor("generic") is None


def test_without_a_provider_limit_a_quiet_range_is_one_request_and_a_busy_one_is_split(
    api: FakeCallLog, server: LocalHTTPServer, any_store: AnyStore
) -> None:
    settings = settings_for(server.url)  # the provider declares no longest window
    params = poll_params_from_settings(settings)
    provider = provider_of(settings)
    quiet = run_backfill(
        plan_backfill(params, provider, any_store, T0, T0 + timedelta(days=10), NOW),
        params,
        provider,
        any_store,
        NOW,
    )
    assert quiet.ok and (quiet.run.windows, quiet.run.new_calls) == (1, 40)
    assert len(window_starts(api)) == 1  # ten days, not ten requests

    # Spans full at 8 calls (two days here) in pages of 4: the run saves its progress after
    # each span, and a stop takes effect after the span being listed.
    api.requests.clear()
    api.page_size = 4
    busy = dataclasses.replace(params, full_span_rows=8)
    stop = threading.Event()
    saved: list[datetime] = []

    def stop_after_two(span: Window, run: BackfillRun) -> None:
        saved.append(run.listed_until)
        if len(saved) == 2:
            stop.set()

    since, until = T0 - timedelta(days=1), T0 + timedelta(days=11)
    first = run_backfill(
        plan_backfill(busy, provider, any_store, since, until, NOW),
        busy,
        provider,
        any_store,
        NOW,
        span_done=stop_after_two,
        stop=stop,
    )
    assert first.interrupted and first.run.listed_until == saved[-1] < until
    assert saved[0] > since
    plan = plan_backfill(busy, provider, any_store, since, until, NOW)
    assert plan.resumed and plan.windows[0].start == saved[-1]
    second = run_backfill(plan, busy, provider, any_store, NOW)
    assert second.ok and second.run.done and second.run.windows > 3
    assert second.run.listed >= 40 and len(any_store.list_calls(limit=1000)) == 40


def test_a_window_at_the_row_cap_is_halved_and_unmapped_records_are_kept(
    api: FakeCallLog, server: LocalHTTPServer, any_store: AnyStore
) -> None:
    api.row_cap = 5
    broken = {"call_id": "broken", "started_at": "yesterday-ish"}
    api.add_call(broken, T0 + timedelta(hours=1))
    settings = settings_for(server.url, max_window_hours=48, max_rows_per_query=5)
    params = poll_params_from_settings(settings)
    provider = provider_of(settings)

    result = run_backfill(
        plan_backfill(params, provider, any_store, T0, T0 + timedelta(days=10), NOW),
        params,
        provider,
        any_store,
        NOW,
    )

    assert result.ok, result.error
    assert len(any_store.list_calls(limit=1000)) == 40
    assert result.run.unmapped >= 1
    (kept,) = any_store.unmapped_records("generic")
    assert kept.provider_call_id == "broken"
    assert any_store.get_cursor("generic") is None


def test_a_range_that_is_not_settled_yet_is_refused(
    server: LocalHTTPServer, any_store: AnyStore
) -> None:
    settings = settings_for(server.url)
    params = poll_params_from_settings(settings)
    with pytest.raises(BackfillRangeError, match="the poll cycle lists what is more recent"):
        plan_backfill(params, provider_of(settings), any_store, T0, NOW, NOW)
    with pytest.raises(BackfillRangeError, match="is not before"):
        plan_backfill(params, provider_of(settings), any_store, T0, T0, NOW)
    assert any_store.backfill_runs() == []


def cli(engine: Engine, server: LocalHTTPServer, *args: str) -> Result:
    env = {
        "SIRO_POLLER_DATABASE__URL": database_url(engine),
        "SIRO_POLLER_PROVIDER__BASE_URL": server.url,
        "SIRO_POLLER_PROVIDER__MAX_RETRIES": "0",
        "SIRO_POLLER_PROVIDER__LISTING__MAX_WINDOW_HOURS": "24",
    }
    return CliRunner().invoke(main, ["backfill", *args], env=env)


def test_the_command_resumes_after_a_provider_error_and_prints_a_summary(
    api: FakeCallLog, server: LocalHTTPServer, engine: Engine
) -> None:
    since, until = "2026-11-01T00:00:00Z", "2026-11-11T00:00:00Z"
    api.fail_page(1, 502, times=None)

    failed = cli(engine, server, "--since", since, "--until", until)

    assert failed.exit_code == 1
    assert "starting backfill #1 of generic" in failed.stdout
    assert "HTTP 502" in failed.stderr and "run the same command again to resume" in failed.stderr
    assert "Traceback" not in failed.output
    store = SqlStore(engine)
    (run,) = store.backfill_runs()
    assert run.last_error is not None and not run.done

    api.clear_failures()
    resumed = cli(engine, server, "--since", since, "--until", until)

    assert resumed.exit_code == 0, resumed.output
    assert "resuming backfill #1 of generic" in resumed.stdout
    # Not a terminal: one plain line per window on stderr, then the summary.
    assert resumed.stderr.count("window [") == 10
    assert (
        "backfill #1 of generic done: 10 window(s), 40 listed, 40 new call(s), "
        "0 already known, 0 unmapped; the poll cursor was not moved"
    ) in resumed.stdout
    assert store.cursors() == []

    as_json = cli(engine, server, "--since", since, "--until", until, "--json")
    document = json.loads(as_json.stdout)
    assert document["id"] == 2 and document["done"] is True
    assert (document["new_calls"], document["known"]) == (0, 40)

    wrong = cli(engine, server, "--since", until, "--until", since)
    assert wrong.exit_code == 2 and "is not before --until" in wrong.stderr


def test_a_terminal_shows_a_progress_bar(
    api: FakeCallLog, server: LocalHTTPServer, any_store: AnyStore
) -> None:
    settings = settings_for(server.url, max_window_hours=24)
    params = poll_params_from_settings(settings)
    provider = provider_of(settings)
    plan = plan_backfill(params, provider, any_store, T0, T0 + timedelta(days=10), NOW)
    screen = io.StringIO()
    terminal = Console(file=screen, force_terminal=True, width=120)

    with progress_display(plan, quiet=False, console=terminal) as span_done:
        assert span_done is not None
        result = run_backfill(plan, params, provider, any_store, NOW, span_done=span_done)

    assert result.ok
    shown = screen.getvalue()
    assert "backfill generic" in shown and "100%" in shown and "40 listed, 40 new" in shown


def test_poll_since_until_is_a_backfill(
    api: FakeCallLog, server: LocalHTTPServer, engine: Engine
) -> None:
    env = {
        "SIRO_POLLER_DATABASE__URL": database_url(engine),
        "SIRO_POLLER_PROVIDER__BASE_URL": server.url,
        "SIRO_POLLER_PROVIDER__LISTING__MAX_WINDOW_HOURS": "24",
    }
    args = ["poll", "--since", "2026-11-01T00:00:00Z", "--until", "2026-11-11T00:00:00Z"]

    result = CliRunner().invoke(main, args, env=env)

    assert result.exit_code == 0, result.output
    assert "backfill #1 of generic done: 10 window(s), 40 listed, 40 new call(s)" in result.stdout
    assert SqlStore(engine).cursors() == []
    half = CliRunner().invoke(main, ["poll", "--since", "2026-11-01T00:00:00Z"], env=env)
    assert half.exit_code == 2 and "needs --until" in half.stderr
