"""The Quo (formerly OpenPhone) profile against its simulator on 127.0.0.1: what a user of it
would notice."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from poller.adapters.downloader import Downloader
from poller.adapters.http import HostRules, HttpClient, Limits, RetryPolicy
from poller.adapters.providers.profiles.quo import QuoProvider, QuoSettings
from poller.adapters.providers.registry import build_provider
from poller.cli import main
from poller.config import load_settings
from poller.config_types import ConfigError
from poller.domain.call_record import CallRecord
from poller.domain.states import Direction, RecordingState
from poller.domain.windows import Window
from poller.ports.provider import ProviderAuthError, TransientProviderError
from poller.simulators.audio import mp3_bytes
from poller.simulators.quo_server import API_KEY, QUO_NUMBER, QuoSimulator, quo_call

T0 = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(days=2)
WINDOW = Window(T0, T0 + timedelta(hours=1))
AUDIO = mp3_bytes(1)
SECOND = mp3_bytes(2)


@pytest.fixture
def sim() -> Iterator[QuoSimulator]:
    with QuoSimulator() as running:
        running.api.add_user("US1rep", "rep1@example.com", "Dana", "Reyes")
        running.api.add_user("US2rep", "rep2@example.com", "Sam", "Lee")
        yield running


def provider(sim: QuoSimulator, **settings: Any) -> QuoProvider:
    values = {
        "kind": "quo",
        "base_url": sim.url,
        "api_key": API_KEY,
        "download_hosts": sim.recording_hosts,
        **settings,
    }
    adapter = build_provider(QuoSettings.model_validate(values))
    assert isinstance(adapter, QuoProvider)
    return adapter


def listed(adapter: QuoProvider, window: Window = WINDOW) -> dict[str, CallRecord]:
    pages = list(adapter.list_window(window))
    assert [bad for page in pages for bad in page.malformed] == []
    return {record.provider_call_id: record for page in pages for record in page.records}


def fetch(request: Any, path: Path) -> bytes:
    client = HttpClient(
        limits=Limits(connect_timeout=2, read_timeout=2, deadline=10, max_body_bytes=1 << 20),
        hosts=HostRules(),
        retry=RetryPolicy.once(),
        user_agent="siro-poller-test",
    )
    Downloader(client, max_bytes=1 << 20).fetch(request, path)
    return path.read_bytes()


def test_each_call_is_listed_with_its_users_email_line_and_contact(sim: QuoSimulator) -> None:
    at = T0 + timedelta(minutes=5)
    sim.api.add_call(quo_call("AC1", at, user_id="US1rep"), AUDIO)
    sim.api.add_call(
        quo_call("AC2", at, user_id="US2rep", direction="outgoing", contact="+14155550102"), AUDIO
    )
    records = listed(provider(sim))
    into, out = records["AC1"], records["AC2"]
    assert (into.rep_email, into.rep_name, into.rep_provider_id) == (
        "rep1@example.com",
        "Dana Reyes",
        "US1rep",
    )
    assert (into.direction, into.rep_phone, into.contact_phone) == (
        Direction.INBOUND,
        QUO_NUMBER,
        "+15555550123",
    )
    assert (out.rep_email, out.direction, out.contact_phone) == (
        "rep2@example.com",
        Direction.OUTBOUND,
        "+14155550102",
    )
    assert into.started_at == at and into.duration_seconds == 60
    assert into.recording_state is RecordingState.READY
    assert into.recording_url is None  # the signed URL is asked for at download time only


def test_the_listing_asks_for_the_window_with_the_key_and_the_version_header(
    sim: QuoSimulator,
) -> None:
    listed(provider(sim, page_size=20))
    [request] = sim.api.listings()
    # Both bounds are inclusive at Quo: the window widened by the boundary rule, in UTC.
    start = datetime.fromisoformat(request.param("createdAt[gte]") or "")
    end = datetime.fromisoformat(request.param("createdAt[lte]") or "")
    assert start <= T0 and end >= WINDOW.end and start.utcoffset() == timedelta(0)
    assert request.param("limit") == "20" and request.param("after") is None
    # The key alone (Quo refuses "Bearer") and the API version on every request.
    assert request.header("authorization") == API_KEY
    assert request.header("quo-api-version") == "2026-03-30"


def test_paging_follows_next_cursor_until_it_is_null(sim: QuoSimulator) -> None:
    for n in range(5):
        sim.api.add_call(quo_call(f"AC{n}", T0 + timedelta(minutes=n)), AUDIO)
    assert sorted(listed(provider(sim, page_size=2))) == [f"AC{n}" for n in range(5)]
    cursors = [request.param("after") for request in sim.api.listings()]
    assert len(cursors) == 3 and cursors[0] is None and all(cursors[1:])


def test_each_user_is_looked_up_once_and_a_removed_one_keeps_only_its_id(
    sim: QuoSimulator,
) -> None:
    for n in range(3):
        sim.api.add_call(quo_call(f"AC{n}", T0 + timedelta(minutes=n), user_id="US1rep"), AUDIO)
    sim.api.add_call(quo_call("ACGONE", T0 + timedelta(minutes=9), user_id="USgone"), AUDIO)
    # Quo's AI agent is a system actor (SYU...): there is no user to ask for.
    sim.api.add_call(quo_call("ACAI", T0 + timedelta(minutes=8), user_id="SYUsona"), AUDIO)
    records = listed(provider(sim))
    assert sim.api.count("/users/US1rep") == 1
    assert sim.api.count("/users/SYU") == 0
    assert (records["ACGONE"].rep_email, records["ACGONE"].rep_provider_id) == (None, "USgone")
    assert records["ACAI"].rep_email is None


def test_unanswered_calls_have_no_recording_and_live_ones_are_not_ready(
    sim: QuoSimulator,
) -> None:
    at = T0 + timedelta(minutes=1)
    sim.api.add_call(quo_call("ACMISSED", at, status="missed"))
    sim.api.add_call(quo_call("ACNOANSWER", at, status="no-answer", direction="outgoing"))
    sim.api.add_call(quo_call("ACLIVE", at, status="in-progress"))
    unanswered = quo_call("ACFORWARDED", at, status="forwarded") | {"answeredAt": None}
    sim.api.add_call(unanswered)
    records = listed(provider(sim))
    assert records["ACMISSED"].recording_state is RecordingState.NONE
    assert records["ACMISSED"].no_recording_reason == (
        "Quo has no recording: the call ended missed without being answered"
    )
    assert records["ACNOANSWER"].recording_state is RecordingState.NONE
    assert records["ACLIVE"].recording_state is RecordingState.PENDING
    assert records["ACFORWARDED"].recording_state is RecordingState.NONE
    assert records["ACFORWARDED"].no_recording_reason == (
        "Quo has no recording: nobody answered the call"
    )


def test_the_first_segment_is_downloaded_without_the_api_key(
    sim: QuoSimulator, tmp_path: Path
) -> None:
    # Paused and resumed: two segments. Only the first, the oldest, is taken.
    sim.api.add_call(quo_call("AC7", T0 + timedelta(minutes=1)), AUDIO, SECOND)
    adapter = provider(sim)
    [record] = listed(adapter).values()
    request = adapter.resolve_download(record)
    assert sim.api.requests[-1].path == "/calls/AC7/recordings"
    assert sim.api.requests[-1].header("quo-api-version") == "2026-03-30"
    assert request.secret_path and request.refreshable  # the signed URL is a credential
    assert fetch(request, tmp_path / "call.mp3") == AUDIO
    assert [r.path for r in sim.api.media.requests] == ["/media/rec-AC7-0"]
    assert all(r.header("authorization") is None for r in sim.api.media.requests)


def test_a_recording_still_processing_is_retried_not_failed(
    sim: QuoSimulator, tmp_path: Path
) -> None:
    sim.api.add_call(quo_call("AC8", T0 + timedelta(minutes=1)))  # no segment yet
    adapter = provider(sim)
    [record] = listed(adapter).values()
    with pytest.raises(TransientProviderError, match="no entry"):
        adapter.resolve_download(record)
    sim.api.add_segment("AC8", None)  # listed, url null until completed
    with pytest.raises(TransientProviderError, match="not ready yet"):
        adapter.resolve_download(record)
    sim.api.finish_segment("AC8", 0, AUDIO)
    assert fetch(adapter.resolve_download(record), tmp_path / "call.mp3") == AUDIO


def test_a_429_pauses_the_listing_and_it_goes_on(sim: QuoSimulator) -> None:
    sim.api.add_call(quo_call("AC1", T0 + timedelta(minutes=1)), AUDIO)
    sim.api.fail("status", status=429, path="/calls")
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)

    settings = QuoSettings.model_validate({"kind": "quo", "base_url": sim.url, "api_key": API_KEY})
    retry = RetryPolicy(max_tries=2, sleep=sleep)
    adapter = QuoProvider(settings, retry=retry, sleep=sleep, monotonic=lambda: sum(waits))
    assert list(listed(adapter)) == ["AC1"]
    assert sim.api.statuses[:2] == [429, 200] and waits


def test_a_burst_of_requests_is_spread_to_quos_per_second_limit() -> None:
    # One clock for the poller's limiter and Quo's per-second budget, moved only by waits.
    now = [1_000_000.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    with QuoSimulator(clock=lambda: now[0]) as quo:
        quo.api.add_user("US1rep", "rep1@example.com")
        for n in range(11):
            quo.api.add_call(quo_call(f"AC{n}", T0 + timedelta(minutes=n)), AUDIO)
        settings = QuoSettings.model_validate(
            {"kind": "quo", "base_url": quo.url, "api_key": API_KEY, "page_size": 1}
        )
        adapter = QuoProvider(settings, sleep=sleep, monotonic=lambda: now[0])
        assert len(listed(adapter)) == 11
    # 11 pages and one user lookup at the default 300 a minute, held as 5 a second: the last
    # request goes out two seconds in, and Quo never answered 429.
    assert len(quo.api.requests) == 12 and now[0] >= 1_000_002.0
    assert 429 not in quo.api.statuses


def test_a_refused_api_key_names_the_key_to_check(sim: QuoSimulator) -> None:
    with pytest.raises(ProviderAuthError, match=r"check provider\.api_key"):
        listed(provider(sim, api_key="not-the-key", max_retries=0))


def test_keys_the_profile_fixes_are_refused_and_unset_ones_named(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[provider]\nkind = "quo"\napi_key_header = "X-Key"\n[provider.paging]\nmode = "none"\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert "provider.api_key_header: fixed by the quo profile" in caught.value.problems
    assert "provider.paging: fixed by the quo profile" in caught.value.problems
    settings = QuoSettings.model_validate({"kind": "quo"})
    assert settings.requirements() == ["provider.api_key: required: a Quo API key"]
    assert settings.api_base_url == "https://api.quo.com"
    assert settings.download_hosts == ["files.openphone.co"]
    with pytest.raises(ValueError, match="page_size"):
        QuoSettings.model_validate({"kind": "quo", "page_size": 51})


def test_provider_check_reads_quo_as_a_native_kind(sim: QuoSimulator) -> None:
    recent = datetime.now(UTC) - timedelta(hours=2)
    for n in range(3):
        sim.api.add_call(quo_call(f"AC{n}", recent + timedelta(minutes=n)), AUDIO)
    env = {
        "SIRO_POLLER_PROVIDER__KIND": "quo",
        "SIRO_POLLER_PROVIDER__BASE_URL": sim.url,
        "SIRO_POLLER_PROVIDER__API_KEY": API_KEY,
        "SIRO_POLLER_PROVIDER__MAX_RETRIES": "0",
    }
    ok = CliRunner().invoke(main, ["provider", "check"], env=env)
    assert ok.exit_code == 0, ok.output
    assert ok.stdout.strip() == "provider quo: ok: 3 of 3 records mapped"

    refused = CliRunner().invoke(
        main, ["provider", "check"], env=env | {"SIRO_POLLER_PROVIDER__API_KEY": "wrong"}
    )
    assert refused.exit_code == 1
    assert "provider quo: auth:" in refused.stdout
    assert "check provider.api_key" in refused.stdout
    assert API_KEY not in ok.output + refused.output
