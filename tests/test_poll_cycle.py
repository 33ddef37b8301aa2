"""The poll cycle end to end: a fake provider on a real socket, real stores, simulated time."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from poller.adapters.http import RetryPolicy
from poller.adapters.memory_store import MemoryStore
from poller.adapters.providers.generic import GenericProvider
from poller.adapters.providers.memory import InMemoryProvider
from poller.app import build_provider
from poller.config import Settings, load_settings
from poller.core.poll import REPORTED_MALFORMED, poll_once
from poller.core.poll_report import PollParams, PollReport
from poller.domain.raw_record import MAX_BYTES
from poller.domain.states import CallState
from poller.domain.windows import Window
from poller.simulators.http_server import LocalHTTPServer
from poller.simulators.provider_server import FakeCallLog, quickstart_call, serve
from poller.wiring import (
    daemon_params_from_settings,
    poll_cycle_from_settings,
    poll_params_from_settings,
)
from tests.seed import AnyStore

T0 = datetime(2026, 11, 24, 0, 0, tzinfo=UTC)
SETTLE = timedelta(minutes=2)
NO_WAIT = RetryPolicy(max_tries=2, base_delay=0.0, max_delay=1.0)


@pytest.fixture
def api() -> FakeCallLog:
    return FakeCallLog(page_size=100)


@pytest.fixture
def server(api: FakeCallLog) -> Iterator[LocalHTTPServer]:
    with serve(api) as running:
        yield running


def settings_for(
    url: str, *, provider: dict[str, Any] | None = None, poll: dict[str, Any] | None = None
) -> Settings:
    return Settings(
        provider={"base_url": url, **(provider or {})},
        poll={"start_at": T0, "lookback_minutes": 60, "settle_delay_seconds": 120, **(poll or {})},
    )


def cycle(settings: Settings, store: AnyStore, now: datetime, **kwargs: Any) -> PollReport:
    provider = GenericProvider(settings.provider, retry=NO_WAIT)
    return poll_once(poll_params_from_settings(settings), provider, store, now, **kwargs)


def add(api: FakeCallLog, call_id: str, at: datetime, *, ready: bool = True, **fields: Any) -> None:
    url = f"https://voip.example.com/recordings/{call_id}.mp3" if ready else None
    api.add_call({**quickstart_call(call_id, at, recording_url=url), **fields}, at)


def all_calls(store: AnyStore) -> list[Any]:
    return store.list_calls(limit=100_000)


def cursor_of(store: AnyStore) -> datetime | None:
    cursor = store.get_cursor("generic")
    return cursor.cursor_value if cursor else None


def test_a_backlog_of_5000_calls_goes_in_exactly_once(
    api: FakeCallLog, server: LocalHTTPServer, any_store: AnyStore
) -> None:
    for n in range(5000):
        add(api, f"call-{n:04d}", T0 + timedelta(seconds=15 * n))  # about 21 hours of calls
    settings = settings_for(server.url, provider={"listing": {"max_window_hours": 6}})
    now = T0 + timedelta(hours=22)

    first = cycle(settings, any_store, now)
    assert first.ok, first.error
    assert first.counts["inserted"] == 5000
    assert first.pages >= 50 and first.spans_listed == 4
    assert first.cursor_after == now - SETTLE
    calls = all_calls(any_store)
    assert len(calls) == 5000
    assert len({call.provider_call_id for call in calls}) == 5000
    assert all(call.state is CallState.PENDING and call.next_attempt_at == now for call in calls)

    again = cycle(settings, any_store, now + timedelta(minutes=5))
    assert again.ok, again.error
    assert again.counts["inserted"] == 0 and again.changes == []
    assert len(all_calls(any_store)) == 5000
    sample = calls[0]
    assert len(any_store.events_for(sample.id)) == 1


def test_a_recording_ready_ten_minutes_later_is_picked_up_by_the_lookback(
    api: FakeCallLog, server: LocalHTTPServer, any_store: AnyStore
) -> None:
    started = T0 + timedelta(hours=1)
    add(api, "late", started, ready=False)
    settings = settings_for(server.url)

    listed_at = started + timedelta(minutes=5)
    cycle(settings, any_store, listed_at)
    [call] = all_calls(any_store)
    assert (call.state, call.next_attempt_at, call.recording_state) == (
        CallState.PENDING,
        None,
        "pending",
    )
    assert any_store.status(listed_at).due_now == 0

    # Ten minutes after it was listed, the provider has the recording. The cursor has moved
    # past the call; only the lookback brings it back into the window.
    api.update_call("late", recording_url="https://voip.example.com/recordings/late.mp3")
    now = listed_at + timedelta(minutes=10)
    assert cursor_of(any_store) == listed_at - SETTLE > started
    report = cycle(settings, any_store, now)
    assert report.counts["became_due"] == 1
    [call] = all_calls(any_store)
    assert (call.state, call.next_attempt_at) == (CallState.PENDING, now)
    assert call.recording_url == "https://voip.example.com/recordings/late.mp3"
    assert [e.outcome for e in any_store.events_for(call.id)] == ["listed", "recording_ready"]


def test_a_recording_later_than_the_lookback_is_found_by_the_waiting_recheck(
    api: FakeCallLog, server: LocalHTTPServer, any_store: AnyStore
) -> None:
    started = T0 + timedelta(hours=1)
    add(api, "late", started, ready=False)
    add(api, "other", started + timedelta(minutes=1))
    settings = settings_for(
        server.url, poll={"lookback_minutes": 10, "recheck_waiting_minutes": 30}
    )
    cycle(settings, any_store, started + timedelta(minutes=5))
    # Three hours later the recording exists: far beyond the lookback.
    api.update_call("late", recording_url="https://voip.example.com/recordings/late.mp3")
    now = started + timedelta(hours=3)
    report = cycle(settings, any_store, now)
    assert report.counts["became_due"] == 1
    [call] = [c for c in all_calls(any_store) if c.provider_call_id == "late"]
    assert call.next_attempt_at == now
    # Re-listing waiting calls is throttled: a cycle soon after lists only the normal window.
    before = len(api.list_requests())
    cycle(settings, any_store, now + timedelta(minutes=5))
    assert len(api.list_requests()) - before == 1


def test_the_waiting_recheck_stops_at_the_recording_wait(
    api: FakeCallLog, server: LocalHTTPServer, any_store: AnyStore
) -> None:
    started = T0 + timedelta(hours=1)
    add(api, "late", started, ready=False)
    settings = settings_for(server.url, poll={"lookback_minutes": 10})
    cycle(settings, any_store, started + timedelta(minutes=5))
    report = cycle(settings, any_store, started + timedelta(hours=49))
    assert report.expired == ["late"]


def test_a_call_that_never_gets_a_recording_is_skipped_after_the_wait(
    api: FakeCallLog, server: LocalHTTPServer, any_store: AnyStore
) -> None:
    add(api, "silent", T0 + timedelta(hours=1), ready=False)
    settings = settings_for(server.url, poll={"recording_wait_hours": 48})
    listed_at = T0 + timedelta(hours=1, minutes=5)
    cycle(settings, any_store, listed_at)
    assert cycle(settings, any_store, listed_at + timedelta(hours=47)).expired == []
    report = cycle(settings, any_store, listed_at + timedelta(hours=48, minutes=1))
    assert report.expired == ["silent"]
    [call] = all_calls(any_store)
    assert (call.state, call.error_kind) == (CallState.SKIPPED, "no_recording")
    assert call.last_error == "no recording 48 h after the call was first listed"


def test_a_500_on_page_3_keeps_the_cursor_and_the_next_cycle_completes_the_window(
    api: FakeCallLog, server: LocalHTTPServer, any_store: AnyStore
) -> None:
    settings = settings_for(
        server.url, provider={"auth": "bearer", "token": "provider-token-secret"}
    )
    api.auth = ("bearer", "provider-token-secret")
    first_now = T0 + timedelta(hours=1)
    cycle(settings, any_store, first_now)
    cursor_before = cursor_of(any_store)
    assert cursor_before == first_now - SETTLE

    for n in range(450):
        add(api, f"call-{n:03d}", T0 + timedelta(hours=1, seconds=5 * n))
    api.fail_page(3, 500, times=None)
    now = T0 + timedelta(hours=2)
    failed = cycle(settings, any_store, now)
    assert not failed.ok
    assert failed.error is not None and "page 3" in failed.error and "HTTP 500" in failed.error
    assert failed.pages == 2
    assert cursor_of(any_store) == cursor_before
    assert len(all_calls(any_store)) == 200  # pages 1 and 2 were committed
    stored = any_store.get_cursor("generic")
    assert stored is not None and stored.last_error == failed.error
    assert stored.last_error_at == now
    assert "provider-token-secret" not in stored.last_error

    api.clear_failures()
    later = now + timedelta(minutes=5)
    done = cycle(settings, any_store, later)
    assert done.ok, done.error
    assert done.counts["inserted"] == 250 and done.counts["unchanged"] == 200
    assert len(all_calls(any_store)) == 450
    stored = any_store.get_cursor("generic")
    assert stored is not None
    assert (stored.cursor_value, stored.last_error, stored.last_success_at) == (
        later - SETTLE,
        None,
        later,
    )


@pytest.mark.parametrize("bounds", ["half_open", "inclusive", "exclusive"])
@pytest.mark.parametrize("time_format", ["iso8601", "unix_s"])
def test_calls_exactly_on_window_boundaries_are_neither_lost_nor_duplicated(
    api: FakeCallLog,
    server: LocalHTTPServer,
    any_store: AnyStore,
    bounds: str,
    time_format: str,
) -> None:
    api.bounds, api.time_format = bounds, time_format  # type: ignore[assignment]
    settings = settings_for(
        server.url,
        provider={"listing": {"max_window_hours": 1, "time_format": time_format}},
        poll={"lookback_minutes": 0},
    )
    first_now = T0 + timedelta(hours=3) + SETTLE
    second_now = first_now + timedelta(hours=1)
    instants = [
        T0,  # the first window's start (start_at)
        T0 + timedelta(hours=1),  # span boundaries inside the first window
        T0 + timedelta(hours=2),
        first_now - SETTLE,  # the first window's end, which is the second window's start
        second_now - SETTLE,  # the second window's end
    ]
    for n, at in enumerate(instants):
        add(api, f"edge-{n}", at)
        add(api, f"just-before-{n}", at - timedelta(seconds=1))
        add(api, f"just-after-{n}", at + timedelta(seconds=1))

    first = cycle(settings, any_store, first_now)
    second = cycle(settings, any_store, second_now)
    third = cycle(settings, any_store, second_now + timedelta(hours=1))
    assert first.ok and second.ok and third.ok
    assert first.window == Window(T0, first_now - SETTLE)
    assert second.window == Window(first_now - SETTLE, second_now - SETTLE)

    calls = all_calls(any_store)
    keys = [call.provider_call_id for call in calls]
    assert len(keys) == len(set(keys))  # never duplicated
    since_start = {key for key, (at, _record) in api.calls.items() if at >= T0}
    assert since_start <= set(keys)  # never lost
    # One second before start_at is inside the widened request; whether the provider returns
    # it depends on its bounds. Either way it is in at most once.
    assert set(keys) - since_start <= {"just-before-0"}
    inserted = first.counts["inserted"] + second.counts["inserted"] + third.counts["inserted"]
    assert inserted == len(calls)
    for call in calls:
        assert [e.outcome for e in any_store.events_for(call.id)] == ["listed"]


def test_malformed_records_are_logged_with_their_position_and_the_rest_goes_in(
    api: FakeCallLog,
    server: LocalHTTPServer,
    any_store: AnyStore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    api.page_size = 4
    at = T0 + timedelta(minutes=10)
    for n in range(6):
        add(api, f"good-{n}", at + timedelta(seconds=n))
    api.add_call({"email": "rep@yourcompany.com"}, at + timedelta(seconds=2), key="no-id")
    api.add_call(
        {**quickstart_call("bad-time", at), "started_at": "24/11/2026 00:10"},
        at + timedelta(seconds=4),
    )
    settings = settings_for(server.url)
    with caplog.at_level(logging.WARNING, logger="poller.core.poll"):
        report = cycle(settings, any_store, T0 + timedelta(hours=1))
    assert report.ok, report.error
    assert sorted(c.provider_call_id for c in all_calls(any_store)) == [
        f"good-{n}" for n in range(6)
    ]
    positions = sorted((m.position.page, m.position.index) for m in report.malformed)
    assert positions == [(1, 3), (2, 1)]
    logged = [r.getMessage() for r in caplog.records if "malformed" in r.getMessage()]
    assert len(logged) == 2
    assert any("page 1, item 3" in line and "call_id has no value" in line for line in logged)
    assert any("page 2, item 1" in line and "bad-time" in line for line in logged)
    assert all(str(report.window) in line for line in logged)
    assert cursor_of(any_store) == T0 + timedelta(hours=1) - SETTLE


def test_a_second_api_shape_works_through_configuration_alone(
    server: LocalHTTPServer, api: FakeCallLog, any_store: AnyStore, tmp_path: Path
) -> None:
    api.items_path, api.paging, api.next_url_path = "data.items", "next_url", "links.next"
    api.start_param, api.end_param, api.time_format = "created_after", "created_before", "unix_ms"
    api.auth, api.page_size = ("basic", "acct-1", "basic-password"), 25
    for n in range(60):
        at = T0 + timedelta(minutes=n)
        millis = int(at.timestamp() * 1000)
        record = {
            "id": 9000 + n,
            "timing": {"start_ms": millis, "end_ms": millis + 95_000},
            "kind": "OUTBOUND" if n % 2 else "inbound",
            "agent": {"mail": f"rep{n % 3}@example.com", "extension": "2001"},
            "party": {"display_name": f"Customer {n}", "e164": "+15550000000"},
            "media": {"href": f"/media/{9000 + n}.wav"},
        }
        api.add_call(record, at, key=str(9000 + n))
    config = tmp_path / "siro-poller.toml"
    config.write_text(
        f"""
[provider]
name = "nested"
base_url = "{server.url}"
auth = "basic"
username = "acct-1"
password = "basic-password"

[provider.listing]
start_param = "created_after"
end_param = "created_before"
time_format = "unix_ms"
items_path = "data.items"

[provider.paging]
mode = "next_url"
next_url_path = "links.next"

[provider.fields]
call_id = "id"
started_at = "timing.start_ms"
started_at_format = "unix_ms"
ended_at = "timing.end_ms"
ended_at_format = "unix_ms"
direction = "kind"
rep_email = "agent.mail"
rep_phone = ""
rep_extension = "agent.extension"
contact_name = "party.display_name"
contact_phone = "party.e164"
recording_url = "media.href"

[poll]
start_at = "{T0.isoformat()}"
""",
        encoding="utf-8",
    )
    settings = load_settings(config)
    report = poll_once(
        poll_params_from_settings(settings),
        build_provider(settings),
        any_store,
        T0 + timedelta(hours=2),
    )
    assert report.ok, report.error
    assert report.pages == 3
    calls = all_calls(any_store)
    assert len(calls) == 60 and {call.provider for call in calls} == {"nested"}
    first = next(call for call in calls if call.provider_call_id == "9001")
    assert first.started_at == T0 + timedelta(minutes=1)
    assert first.ended_at == T0 + timedelta(minutes=1, seconds=95)
    assert first.duration_seconds == 95
    assert first.direction == "outbound"
    assert (first.rep_email, first.rep_extension, first.rep_phone) == (
        "rep1@example.com",
        "2001",
        None,
    )
    assert (first.contact_name, first.contact_phone) == ("Customer 1", "+15550000000")
    assert first.recording_url == f"{server.url}/media/9001.wav"
    assert first.next_attempt_at == T0 + timedelta(hours=2)
    cursor = any_store.get_cursor("nested")
    assert cursor is not None and cursor.cursor_value == T0 + timedelta(hours=2) - SETTLE


def test_a_repeated_paging_token_stops_the_window_with_an_error_and_never_loops(
    api: FakeCallLog, server: LocalHTTPServer, any_store: AnyStore
) -> None:
    api.page_size, api.repeat_token_at_page = 10, 3
    for n in range(100):
        add(api, f"call-{n:03d}", T0 + timedelta(minutes=n))
    report = cycle(settings_for(server.url), any_store, T0 + timedelta(hours=3))
    assert report.error is not None and "already returned" in report.error
    assert len(api.list_requests()) == 3
    assert len(all_calls(any_store)) == 30
    cursor = any_store.get_cursor("generic")
    assert cursor is not None
    assert cursor.cursor_value is None  # first run: nothing fully listed yet
    assert cursor.last_error == report.error


def test_filtered_calls_are_skipped_with_their_reason(
    api: FakeCallLog, server: LocalHTTPServer, any_store: AnyStore
) -> None:
    at = T0 + timedelta(minutes=5)
    add(api, "short", at, duration=4)
    add(api, "inbound", at, direction="inbound", duration=300)
    add(api, "contractor", at, email="ann@contractors.example.com")
    add(api, "kept", at, direction="outbound", duration=300)
    settings = settings_for(
        server.url,
        provider={"fields": {"duration": "duration", "direction": "direction"}},
        poll={
            "min_duration_seconds": 10,
            "directions": ["outbound"],
            "rep_deny": ["*@contractors.example.com"],
        },
    )
    report = cycle(settings, any_store, T0 + timedelta(hours=1))
    assert report.counts["skipped"] == 3 and report.counts["inserted"] == 1
    reasons = {c.provider_call_id: (c.state.value, c.error_kind) for c in all_calls(any_store)}
    assert reasons == {
        "short": ("skipped", "too_short"),
        "inbound": ("skipped", "direction_excluded"),
        "contractor": ("skipped", "rep_denied"),
        "kept": ("pending", None),
    }


def test_a_dry_run_reports_the_plan_and_changes_nothing(
    api: FakeCallLog, server: LocalHTTPServer, any_store: AnyStore
) -> None:
    api.bounds = "inclusive"  # the boundary call comes back in both spans
    for n in range(5):
        add(api, f"call-{n}", T0 + timedelta(hours=n))
    add(api, "waiting", T0 + timedelta(minutes=30), ready=False)
    settings = settings_for(server.url, provider={"listing": {"max_window_hours": 1}})
    now = T0 + timedelta(hours=5)
    report = cycle(settings, any_store, now, dry_run=True)
    assert report.ok and report.dry_run
    assert report.counts["inserted"] == 6
    assert sorted(c.provider_call_id for c in report.changes) == sorted(
        [*(f"call-{n}" for n in range(5)), "waiting"]
    )
    assert report.cursor_before is None and report.cursor_after == now - SETTLE
    assert all_calls(any_store) == []
    assert any_store.get_cursor("generic") is None


def test_a_window_that_hits_the_row_cap_is_split_until_it_fits(
    api: FakeCallLog, server: LocalHTTPServer, any_store: AnyStore
) -> None:
    api.row_cap, api.page_size = 50, 20
    for n in range(180):
        add(api, f"call-{n:03d}", T0 + timedelta(seconds=20 * n))
    settings = settings_for(server.url, provider={"listing": {"max_rows_per_query": 50}})
    report = cycle(settings, any_store, T0 + timedelta(hours=2))
    assert report.ok, report.error
    assert len(all_calls(any_store)) == 180
    assert cursor_of(any_store) == T0 + timedelta(hours=2) - SETTLE


def test_a_window_holding_more_than_a_full_span_is_split_and_every_call_goes_in(
    api: FakeCallLog, server: LocalHTTPServer, any_store: AnyStore
) -> None:
    api.page_size = 20
    for n in range(180):
        add(api, f"call-{n:03d}", T0 + timedelta(seconds=20 * n))
    settings = settings_for(server.url)
    params = dataclasses.replace(poll_params_from_settings(settings), full_span_rows=50)
    provider = GenericProvider(settings.provider, retry=NO_WAIT)
    now = T0 + timedelta(hours=2)
    report = poll_once(params, provider, any_store, now)
    assert report.ok, report.error
    assert sorted(c.provider_call_id for c in all_calls(any_store)) == [
        f"call-{n:03d}" for n in range(180)
    ]
    assert report.spans_listed >= 4  # no span the cursor moved past held 50 calls or more
    assert cursor_of(any_store) == now - SETTLE


def test_a_quiet_stretch_of_months_is_one_request(
    api: FakeCallLog, server: LocalHTTPServer, any_store: AnyStore
) -> None:
    start = T0 - timedelta(days=300)  # in the past: a start time far ahead is malformed
    now = T0
    add(api, "only", start + timedelta(days=150))
    report = cycle(settings_for(server.url, poll={"start_at": start}), any_store, now)
    assert report.ok, report.error
    assert [c.provider_call_id for c in all_calls(any_store)] == ["only"]
    assert len(api.list_requests()) == 1 and cursor_of(any_store) == now - SETTLE


def first_pages(api: FakeCallLog) -> list[dict[str, Any]]:
    """One listing request per span listed (or started) from its first page."""
    return [r for r in api.list_requests() if "page_token" not in r["query"]]


def test_a_provider_that_ignores_the_window_is_paged_through_once_with_one_warning(
    api: FakeCallLog,
    server: LocalHTTPServer,
    any_store: AnyStore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Every listing answers all 120 calls, whatever its window: splitting a full span would
    # answer each half with as many again, down to seconds (the suite once hung on it).
    api.ignores_window = True
    api.page_size = 20
    for n in range(120):
        add(api, f"call-{n:03d}", T0 + timedelta(hours=2, minutes=30, seconds=20 * n))
    settings = settings_for(server.url)
    params = dataclasses.replace(poll_params_from_settings(settings), full_span_rows=50)
    provider = GenericProvider(settings.provider, retry=NO_WAIT)
    now = T0 + timedelta(hours=4)

    with caplog.at_level(logging.WARNING, logger="poller.core.poll"):
        report = poll_once(params, provider, any_store, now)

    assert report.ok, report.error
    assert len(all_calls(any_store)) == 120
    assert cursor_of(any_store) == now - SETTLE
    # The whole window (full at 50), its first half (the calls are outside it), the whole again.
    assert [r["query"]["from"] for r in first_pages(api)][1:] == [
        first_pages(api)[0]["query"]["from"]
    ] * 2
    warned = [r.getMessage() for r in caplog.records if "outside it" in r.getMessage()]
    assert len(warned) == 1 and warned[0].startswith("generic: ")
    assert "paged through" in warned[0]


def test_a_burst_fuller_than_a_span_is_listed_whole_at_the_split_floor(
    api: FakeCallLog, server: LocalHTTPServer, any_store: AnyStore
) -> None:
    api.page_size = 20
    for n in range(200):
        add(api, f"call-{n:03d}", T0 + timedelta(minutes=1, seconds=n % 60))
    settings = settings_for(server.url)
    params = dataclasses.replace(poll_params_from_settings(settings), full_span_rows=50)
    provider = GenericProvider(settings.provider, retry=NO_WAIT)
    now = T0 + timedelta(hours=2, minutes=2)

    report = poll_once(params, provider, any_store, now)

    assert report.ok, report.error
    assert len(all_calls(any_store)) == 200
    assert cursor_of(any_store) == now - SETTLE
    # Split from two hours to the 15-minute floor (2 h, 1 h, 30 min, 15 min), which is listed
    # whole; then a floor's length, as short as the burst's density asks; then the rest.
    assert len(first_pages(api)) == 6
    assert report.spans_listed == 3


def test_the_first_run_starts_24_hours_back_by_default(
    api: FakeCallLog, server: LocalHTTPServer, any_store: AnyStore
) -> None:
    now = T0 + timedelta(days=3)
    add(api, "too-old", now - timedelta(hours=25))
    add(api, "recent", now - timedelta(hours=23))
    settings = settings_for(server.url, poll={"start_at": None})
    report = cycle(settings, any_store, now)
    assert report.window == Window(now - timedelta(hours=24), now - SETTLE)
    assert [c.provider_call_id for c in all_calls(any_store)] == ["recent"]


def test_nothing_is_listed_before_the_settle_delay_has_passed(
    api: FakeCallLog, server: LocalHTTPServer, any_store: AnyStore
) -> None:
    now = T0 + timedelta(minutes=1)
    report = cycle(settings_for(server.url), any_store, now)
    assert report.window is None and report.ok
    assert api.list_requests() == []
    cursor = any_store.get_cursor("generic")
    assert cursor is not None
    assert (cursor.cursor_value, cursor.last_polled_at) == (None, now)


def test_a_nudged_poll_lists_a_call_inside_the_settle_stretch_and_caps_the_cursor(
    api: FakeCallLog, server: LocalHTTPServer, any_store: AnyStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="poller.core.poll")
    settings = settings_for(server.url)
    first = cycle(settings, any_store, T0 + timedelta(hours=1))
    assert first.ok, first.error
    now = T0 + timedelta(hours=1, minutes=5)
    add(api, "just-ended", now - timedelta(seconds=20))  # well inside the 120 s settle delay

    plain = cycle(settings, any_store, now)
    assert plain.ok and plain.counts["inserted"] == 0
    assert all_calls(any_store) == []

    nudged = cycle(settings, any_store, now, reach_now=True)
    assert nudged.ok, nudged.error
    assert nudged.window is not None and nudged.window.end == now
    assert [c.provider_call_id for c in all_calls(any_store)] == ["just-ended"]
    assert "generic (nudged): window" in caplog.text
    # The cursor never passes now - settle: the next plain poll reads the stretch again.
    assert nudged.cursor_after == cursor_of(any_store) == now - SETTLE

    later = cycle(settings, any_store, now + timedelta(minutes=5))
    assert later.ok and later.counts["inserted"] == 0
    assert len(all_calls(any_store)) == 1
    assert later.cursor_after == now + timedelta(minutes=5) - SETTLE


def test_a_nudged_dry_run_reports_the_capped_cursor(
    api: FakeCallLog, server: LocalHTTPServer, any_store: AnyStore
) -> None:
    now = T0 + timedelta(hours=1)
    add(api, "just-ended", now - timedelta(seconds=5))
    report = cycle(settings_for(server.url), any_store, now, reach_now=True, dry_run=True)
    assert report.ok, report.error
    assert report.counts["inserted"] == 1
    assert report.cursor_after == now - SETTLE
    assert all_calls(any_store) == []


def test_a_poll_cycle_reads_its_clock_and_can_run_nudged(
    api: FakeCallLog, server: LocalHTTPServer, any_store: AnyStore
) -> None:
    now = T0 + timedelta(hours=1)
    add(api, "just-ended", now - timedelta(seconds=5))
    settings = settings_for(server.url)
    provider = GenericProvider(settings.provider, retry=NO_WAIT)
    poll_cycle = poll_cycle_from_settings(settings, "generic", provider, any_store, lambda: now)
    assert poll_cycle().counts["inserted"] == 0
    report = poll_cycle(reach_now=True)
    assert report.counts["inserted"] == 1
    assert report.cursor_after == now - SETTLE


def test_poll_params_come_from_settings() -> None:
    settings = Settings(
        provider={"name": "acme"},
        poll={"lookback_minutes": 15, "directions": ["inbound"], "rep_allow": ["a@x.com"]},
    )
    params = poll_params_from_settings(settings)
    assert params.provider_key == "acme"
    assert params.lookback == timedelta(minutes=15)
    assert params.call_filter.rep_allow == ("a@x.com",)
    assert {d.value for d in params.call_filter.directions} == {"inbound"}


def test_the_nudges_plain_follow_up_waits_for_the_longer_of_both_settle_delays() -> None:
    settings = Settings(
        provider={
            "name": "acme",
            "base_url": "http://127.0.0.1:9",
            "listing": {"settle_delay_seconds": 300},
        },
        poll={"settle_delay_seconds": 120},
    )
    assert daemon_params_from_settings(settings).settle_delays == {"acme": 120.0}
    provider = GenericProvider(settings.provider, retry=NO_WAIT)
    params = daemon_params_from_settings(settings, {"acme": provider})
    assert params.settle_delays == {"acme": 300.0}


def test_signed_recording_urls_are_stored_without_their_signature(
    api: FakeCallLog, server: LocalHTTPServer, any_store: AnyStore
) -> None:
    signed = "https://media.example.net/c.mp3?X-Amz-Signature=0123abcd&X-Amz-Credential=AKIA1"
    api.add_call(quickstart_call("signed", T0, recording_url=signed), T0)
    report = cycle(settings_for(server.url), any_store, T0 + timedelta(hours=1))
    assert report.ok, report.error
    [call] = all_calls(any_store)
    assert call.recording_state == "ready" and call.next_attempt_at is not None
    stored = repr(call.to_dict())
    assert "0123abcd" not in stored and "AKIA1" not in stored
    assert call.recording_url.startswith("https://media.example.net/c.mp3?")


def test_a_cursor_older_than_the_providers_history_is_clamped_with_a_warning(
    api: FakeCallLog,
    server: LocalHTTPServer,
    any_store: AnyStore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = settings_for(server.url, provider={"listing": {"history_days": 1}})
    any_store.advance_cursor("generic", T0, T0)
    now = T0 + timedelta(days=3)
    with caplog.at_level(logging.WARNING, logger="poller.core.poll"):
        report = cycle(settings, any_store, now)
    assert report.window == Window(now - timedelta(days=1), now - SETTLE)
    assert any("can no longer be listed" in r.getMessage() for r in caplog.records)


# -- nothing lost on a bad listing ---------------------------------------------------------------


def unmapped_of(store: AnyStore, **kwargs: Any) -> list[Any]:
    return store.unmapped_records("generic", limit=100_000, **kwargs)


def nested(levels: int) -> dict[str, Any]:
    node: dict[str, Any] = {"end": True}
    for _ in range(levels):
        node = {"next": node}
    return node


def test_hostile_records_cost_only_themselves_and_are_kept_with_their_reason(
    api: FakeCallLog, server: LocalHTTPServer, any_store: AnyStore
) -> None:
    at = T0 + timedelta(minutes=10)
    future = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    add(api, "good-1", at)
    add(api, "deep", at, extra=nested(900))
    add(api, "nul", at, contact_name="Ja\x00ne", **{"no\x00te": {"k\x00ey": "va\x00lue"}})
    add(api, "bulky", at, transcript="word " * 100_000)
    add(api, "year-9999", at, started_at="9999-12-31T23:59:59-01:00")
    add(api, "before-1970", at, started_at="1969-12-31T23:00:00Z")
    add(api, "tomorrow-plus", at, started_at=future)
    add(api, "infinite", at, duration=float("inf"))
    add(api, "nan", at, duration="nan")
    add(api, "huge", at, duration=1e30)
    add(api, "good-2", at + timedelta(seconds=1), score=float("nan"))  # JSONB refuses NaN
    settings = settings_for(server.url, provider={"fields": {"duration": "duration"}})
    now = T0 + timedelta(hours=1)

    report = cycle(settings, any_store, now)

    assert report.ok, report.error
    calls = {call.provider_call_id: call for call in all_calls(any_store)}
    assert set(calls) == {"good-1", "good-2", "deep", "nul", "bulky"}
    assert len(json.dumps(calls["bulky"].raw)) <= MAX_BYTES
    assert calls["bulky"].raw["call_id"] == "bulky"
    assert calls["bulky"].raw["transcript"] == "[dropped: 500002 bytes]"
    assert calls["good-2"].raw["score"] == "nan"
    assert "\x00" not in repr(calls["nul"].raw) and calls["nul"].raw["note"] == {"key": "value"}
    assert calls["nul"].contact_name == "Jane"
    assert "nested deeper than" in repr(calls["deep"].raw)
    reasons = {row.provider_call_id: row.reason for row in unmapped_of(any_store)}
    assert set(reasons) == {"year-9999", "before-1970", "tomorrow-plus", "infinite", "nan", "huge"}
    assert "out of range" in reasons["year-9999"]
    assert "before 1970" in reasons["before-1970"]
    assert "more than a day in the future" in reasons["tomorrow-plus"]
    assert "not a finite number" in reasons["infinite"] and "not a finite number" in reasons["nan"]
    assert "out of range" in reasons["huge"]
    assert cursor_of(any_store) == now - SETTLE
    assert any_store.status(now).unmapped == {"generic": 6}


def test_a_wrong_mapping_holds_the_cursor_and_fixing_it_brings_every_call_in(
    api: FakeCallLog, server: LocalHTTPServer, any_store: AnyStore
) -> None:
    api.page_size = 10
    for n in range(15):
        add(api, f"call-{n:02d}", T0 + timedelta(minutes=n))
    wrong = settings_for(server.url, provider={"fields": {"started_at": "start_time"}})
    now = T0 + timedelta(hours=1)

    failed = cycle(wrong, any_store, now)

    assert not failed.ok and failed.error is not None
    assert "page 1: 10 of 10 records failed mapping" in failed.error
    assert "started_at has no value at path start_time (10x)" in failed.error
    assert failed.pages == 2 and failed.malformed_count == 15  # the whole span was read
    assert all_calls(any_store) == []
    cursor = any_store.get_cursor("generic")
    assert cursor is not None and cursor.cursor_value is None
    assert cursor.last_error == failed.error
    assert len(unmapped_of(any_store)) == 15

    again = cycle(wrong, any_store, now + timedelta(minutes=5))
    assert not again.ok and cursor_of(any_store) is None
    assert {row.times_seen for row in unmapped_of(any_store)} == {2}

    planned = cycle(settings_for(server.url), any_store, now + timedelta(minutes=10), dry_run=True)
    assert planned.ok and planned.remapped == 15 and planned.counts["inserted"] == 15
    assert all_calls(any_store) == [] and len(unmapped_of(any_store)) == 15

    fixed = cycle(settings_for(server.url), any_store, now + timedelta(minutes=10))
    assert fixed.ok, fixed.error
    assert fixed.remapped == 15 and fixed.counts["inserted"] == 15
    assert len(all_calls(any_store)) == 15
    assert unmapped_of(any_store) == []
    resolved = unmapped_of(any_store, resolved=True)
    assert {row.resolved_call_id for row in resolved} == {c.id for c in all_calls(any_store)}
    assert cursor_of(any_store) == now + timedelta(minutes=10) - SETTLE


def test_records_older_than_the_lookback_come_back_once_the_mapping_reads_them(
    api: FakeCallLog, server: LocalHTTPServer, any_store: AnyStore
) -> None:
    at = T0 + timedelta(minutes=10)
    for n in range(4):  # records of the old API version carry both keys
        add(api, f"both-{n}", at, start_time=f"2026-11-24T00:1{n}:00Z")
    for n in range(6):  # newer ones only start_time: the configured started_at misses them
        record = quickstart_call(f"new-{n}", at)
        record["start_time"] = record.pop("started_at")
        api.add_call(record, at)
    settings = settings_for(server.url, poll={"lookback_minutes": 10})
    first = cycle(settings, any_store, T0 + timedelta(hours=1))
    assert first.ok, first.error  # 6 of 10: under the default ratio, the cursor moves on
    assert len(all_calls(any_store)) == 4 and len(unmapped_of(any_store)) == 6

    later = T0 + timedelta(hours=4)
    fixed = settings_for(
        server.url, provider={"fields": {"started_at": "start_time"}}, poll={"lookback_minutes": 10}
    )
    report = cycle(fixed, any_store, later)
    assert report.ok, report.error
    assert report.window is not None and report.window.start > at  # not listed again
    assert report.remapped == 6
    calls = {call.provider_call_id: call for call in all_calls(any_store)}
    assert set(calls) == {*(f"both-{n}" for n in range(4)), *(f"new-{n}" for n in range(6))}
    assert calls["new-0"].started_at == at
    assert unmapped_of(any_store) == []


def test_a_stricter_ratio_fails_the_poll_on_fewer_unmapped_records(
    api: FakeCallLog, server: LocalHTTPServer, any_store: AnyStore
) -> None:
    add(api, "good", T0 + timedelta(minutes=1))
    add(api, "bad", T0 + timedelta(minutes=2), started_at="soon")
    settings = settings_for(server.url, poll={"max_unmapped_ratio": 0.5})
    report = cycle(settings, any_store, T0 + timedelta(hours=1))
    assert report.error is not None and "1 of 2 records failed mapping" in report.error
    assert "'soon' does not parse as iso8601" in report.error
    assert [c.provider_call_id for c in all_calls(any_store)] == ["good"]
    assert cursor_of(any_store) is None


def test_an_answer_without_the_items_path_holds_the_cursor(
    api: FakeCallLog, server: LocalHTTPServer, any_store: AnyStore
) -> None:
    add(api, "call-1", T0 + timedelta(minutes=1))
    cycle(settings_for(server.url), any_store, T0 + timedelta(hours=1))
    before = cursor_of(any_store)
    api.answer_instead = {"error": "maintenance"}
    report = cycle(settings_for(server.url), any_store, T0 + timedelta(hours=2))
    assert report.error is not None
    assert "items_path 'calls'" in report.error and "top-level keys: error" in report.error
    assert cursor_of(any_store) == before
    api.answer_instead = {"calls": []}  # an explicitly empty page is fine
    assert cycle(settings_for(server.url), any_store, T0 + timedelta(hours=3)).ok


def test_a_backfill_full_of_unmapped_records_keeps_them_all_but_reports_only_the_first(
    api: FakeCallLog, server: LocalHTTPServer, any_store: AnyStore
) -> None:
    for n in range(150):
        at = T0 + timedelta(seconds=10 * n)
        add(api, f"good-{n:03d}", at)
        add(api, f"bad-{n:03d}", at, started_at="not a time")
    report = cycle(settings_for(server.url), any_store, T0 + timedelta(hours=1))
    assert report.ok, report.error
    assert report.malformed_count == 150 and len(report.malformed) == REPORTED_MALFORMED
    assert report.to_dict()["counts"]["malformed"] == 150
    assert len(unmapped_of(any_store)) == 150 and len(all_calls(any_store)) == 150


def test_a_report_keeps_only_the_first_changes_and_hands_on_every_one() -> None:
    """A catch-up's report holds at most ``keep_changes`` changes, however many calls it
    lists (`poll` prints those and counts the rest; the daemon keeps none); ``on_change`` sees
    each one as it is made (what `poll --json` streams)."""
    calls = 1000
    provider = InMemoryProvider(name="memory", page_size=100)
    provider.records = [
        (at, {"call_id": f"c{n:04d}", "started_at": at.isoformat()})
        for n, at in ((n, T0 + timedelta(seconds=n)) for n in range(calls))
    ]
    params = PollParams(provider_key="memory", start_at=T0, settle_delay=timedelta(0))
    seen: list[str] = []
    report = poll_once(
        params,
        provider,
        MemoryStore(),
        T0 + timedelta(hours=1),
        keep_changes=20,
        on_change=lambda change: seen.append(change.provider_call_id),
    )
    assert report.ok, report.error
    assert report.changed == report.counts["inserted"] == calls
    assert seen == [f"c{n:04d}" for n in range(calls)]
    # Changes are only ever appended: 20 at the end is 20 at most all along.
    assert [change.provider_call_id for change in report.changes] == seen[:20]
