"""The Salesloft profile against its simulator on 127.0.0.1: what a user of it would notice."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine

from poller.adapters.downloader import Downloader
from poller.adapters.http import HostRules, HttpClient, Limits, RetryPolicy
from poller.adapters.providers.profiles.salesloft import SalesloftProvider, SalesloftSettings
from poller.adapters.providers.registry import build_provider
from poller.adapters.sql.store import SqlStore
from poller.cli import main
from poller.config import load_settings
from poller.config_types import ConfigError
from poller.domain.call_record import CallRecord
from poller.domain.states import Direction, RecordingState
from poller.domain.windows import Window
from poller.ports.provider import ProviderAuthError, ProviderRefused
from poller.simulators.audio import mp3_bytes
from poller.simulators.salesloft_server import API_KEY, SalesloftSimulator, salesloft_cdr
from tests.conftest import database_url

T0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
WINDOW = Window(T0, T0 + timedelta(hours=1))
AUDIO = mp3_bytes(1)


@pytest.fixture
def sim() -> Iterator[SalesloftSimulator]:
    with SalesloftSimulator() as running:
        running.api.add_user(10, "rep1@example.com", "Rep One")
        running.api.add_user(11, "rep2@example.com", "Rep Two")
        yield running


def provider(sim: SalesloftSimulator, **settings: Any) -> SalesloftProvider:
    values = {
        "kind": "salesloft",
        "base_url": sim.url,
        "token": API_KEY,
        "download_hosts": [sim.media_host],
        **settings,
    }
    adapter = build_provider(SalesloftSettings.model_validate(values))
    assert isinstance(adapter, SalesloftProvider)
    return adapter


def listed(adapter: SalesloftProvider, window: Window = WINDOW) -> dict[str, CallRecord]:
    pages = list(adapter.list_window(window))
    assert [bad for page in pages for bad in page.malformed] == []
    return {record.provider_call_id: record for page in pages for record in page.records}


def test_each_call_is_listed_with_its_rep_contact_and_recording(sim: SalesloftSimulator) -> None:
    api = sim.api
    at = T0 + timedelta(minutes=5)
    api.add_call(salesloft_cdr(1, at, user_id=10, from_="7705551234", to="4155550101"), AUDIO)
    api.add_call(
        salesloft_cdr(2, at, user_id=11, direction="inbound", from_="4155550102", to="7705559999"),
        AUDIO,
    )
    records = listed(provider(sim))
    out, into = records["1"], records["2"]
    assert (out.rep_email, out.rep_name, out.rep_provider_id) == (
        "rep1@example.com",
        "Rep One",
        "10",
    )
    assert (out.direction, out.contact_phone) == (Direction.OUTBOUND, "4155550101")
    assert (into.rep_email, into.direction, into.contact_phone) == (
        "rep2@example.com",
        Direction.INBOUND,
        "4155550102",
    )
    # The rep's own number is never taken from the record: with Local Dial it is a pool number.
    assert out.rep_phone is None and into.rep_phone is None
    assert out.started_at == at  # Salesloft's -05:00 offset read as the instant it is
    assert out.duration_seconds == 60
    assert out.recording_state is RecordingState.READY
    # One user lookup per Salesloft user, however many calls name them.
    assert api.count("/v2/users/") == 2


def test_the_listing_asks_salesloft_for_the_window_oldest_first(sim: SalesloftSimulator) -> None:
    listed(provider(sim, page_size=50))
    [request] = [r for r in sim.api.requests if r.path == "/v2/call_data_records.json"]
    assert request.param("created_at[gte]") == "2026-03-02T13:59:59Z"
    assert request.param("created_at[lt]") == "2026-03-02T15:00:01Z"
    assert (request.param("sort_by"), request.param("sort_direction")) == ("created_at", "ASC")
    assert request.param("per_page") == "50"
    assert request.header("authorization") == f"Bearer {API_KEY}"


def test_calls_that_were_not_connected_or_not_recorded_have_no_recording_to_wait_for(
    sim: SalesloftSimulator,
) -> None:
    at = T0 + timedelta(minutes=1)
    sim.api.add_call(salesloft_cdr(1, at, status="no-answer", recording_status=None))
    sim.api.add_call(salesloft_cdr(2, at, recording_status="not_recorded"))
    sim.api.add_call(salesloft_cdr(3, at, recording_status="processing"))
    sim.api.add_call(salesloft_cdr(4, at, recording_status=None))
    sim.api.add_call(salesloft_cdr(5, at, status="busy"))  # "completed" with no URL
    states = {cid: r.recording_state for cid, r in listed(provider(sim)).items()}
    assert states == {
        "1": RecordingState.NONE,
        "2": RecordingState.NONE,
        "3": RecordingState.PENDING,  # still processing: the poll waits for it
        "4": RecordingState.PENDING,  # completed, no recording yet: waits too
        "5": RecordingState.NONE,
    }


def test_a_deleted_user_leaves_the_call_its_salesloft_user_id(sim: SalesloftSimulator) -> None:
    sim.api.add_call(salesloft_cdr(1, T0 + timedelta(minutes=1), user_id=99), AUDIO)
    [record] = listed(provider(sim)).values()
    assert (record.rep_email, record.rep_provider_id) == (None, "99")


def test_the_recording_is_fetched_fresh_and_without_salesloft_credentials(
    sim: SalesloftSimulator, tmp_path: Path
) -> None:
    sim.api.add_call(salesloft_cdr(7, T0 + timedelta(minutes=1)), AUDIO)
    adapter = provider(sim)
    [record] = listed(adapter).values()
    assert record.recording_url is not None and record.recording_url.endswith("?[REDACTED]")
    sim.api.media.expire_all()  # the listed URL is dead an hour later

    request = adapter.resolve_download(record)
    assert sim.api.requests[-1].path == "/v2/call_data_records/7.json"
    assert sim.media_host not in request.credential_hosts
    client = HttpClient(
        limits=Limits(connect_timeout=2, read_timeout=2, deadline=10, max_body_bytes=1 << 20),
        hosts=HostRules(),
        retry=RetryPolicy.once(),
        user_agent="siro-poller-test",
    )
    Downloader(client, max_bytes=1 << 20).fetch(request, tmp_path / "call.mp3")
    assert (tmp_path / "call.mp3").read_bytes() == AUDIO
    [media_request] = [r for r in sim.api.media.requests if r.path.startswith("/media/")]
    assert media_request.header("authorization") is None


def test_a_recording_host_the_config_does_not_allow_is_refused(sim: SalesloftSimulator) -> None:
    sim.api.add_call(salesloft_cdr(7, T0 + timedelta(minutes=1)), AUDIO)
    adapter = provider(sim, download_hosts=[])
    [record] = listed(adapter).values()
    with pytest.raises(ProviderRefused, match=r"provider\.download_hosts"):
        adapter.resolve_download(record)


def test_no_page_past_the_hundredth_is_asked_for(sim: SalesloftSimulator) -> None:
    for n in range(130):
        sim.api.add_call(salesloft_cdr(n + 1, T0 + timedelta(seconds=10 * n)))
    adapter = provider(sim, page_size=1, requests_per_minute=None)
    records = listed(adapter)
    assert len(records) == 100  # the poll splits such a window: a full listing is the row cap
    assert adapter.capabilities.max_rows_per_query == 100
    assert max(sim.api.listing_pages()) == 100


def test_a_429_without_retry_after_is_waited_out_and_the_listing_goes_on(
    sim: SalesloftSimulator,
) -> None:
    sim.api.add_call(salesloft_cdr(1, T0 + timedelta(minutes=1)), AUDIO)
    sim.api.fail("status", status=429, path="/v2/call_data_records")
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)

    settings = SalesloftSettings.model_validate(
        {"kind": "salesloft", "base_url": sim.url, "token": API_KEY}
    )
    retry = RetryPolicy(max_tries=2, sleep=sleep)
    adapter = SalesloftProvider(settings, retry=retry, sleep=sleep, monotonic=lambda: sum(waits))
    assert list(listed(adapter)) == ["1"]
    assert sim.api.statuses[:2] == [429, 200] and waits


def test_a_refused_api_key_names_the_key_to_check(sim: SalesloftSimulator) -> None:
    with pytest.raises(ProviderAuthError, match=r"check provider\.token"):
        listed(provider(sim, token="not-the-key", max_retries=0))


def test_keys_the_profile_fixes_are_refused_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[provider]\nkind = "salesloft"\ntoken = "k"\nauth = "basic"\n'
        '[provider.listing]\npath = "/v2/calls.json"\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert "provider.auth: fixed by the salesloft profile" in caught.value.problems
    assert "provider.listing: fixed by the salesloft profile" in caught.value.problems
    monkeypatch.setenv("SIRO_POLLER_PROVIDER__PAGE_SIZE", "500")
    config.write_text('[provider]\nkind = "salesloft"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"provider\.page_size"):
        load_settings(config)


def test_an_unset_api_key_is_named_before_any_request() -> None:
    settings = SalesloftSettings.model_validate({"kind": "salesloft"})
    assert settings.requirements() == ["provider.token: required: the Salesloft API key"]
    assert settings.api_base_url == "https://api.salesloft.com"


def test_a_poll_splits_a_window_of_more_than_a_hundred_pages_and_lists_every_call(
    sim: SalesloftSimulator, engine: Engine
) -> None:
    recent = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=40)
    for n in range(130):
        sim.api.add_call(salesloft_cdr(n + 1, recent + timedelta(seconds=10 * n)))
    environment = {
        "SIRO_POLLER_DATABASE__URL": database_url(engine),
        "SIRO_POLLER_PROVIDER__KIND": "salesloft",
        "SIRO_POLLER_PROVIDER__BASE_URL": sim.url,
        "SIRO_POLLER_PROVIDER__TOKEN": API_KEY,
        "SIRO_POLLER_PROVIDER__PAGE_SIZE": "1",
        "SIRO_POLLER_PROVIDER__REQUESTS_PER_MINUTE": "600",
        "SIRO_POLLER_POLL__INITIAL_LOOKBACK_HOURS": "1",
    }
    result = CliRunner().invoke(main, ["poll"], env=environment)
    assert result.exit_code == 0, result.output
    counts = SqlStore(engine).status(datetime.now(UTC)).counts
    assert sum(counts.values()) == 130
    assert max(sim.api.listing_pages()) == 100  # never a page that costs more
