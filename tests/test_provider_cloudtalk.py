"""The CloudTalk profile against its simulator on 127.0.0.1: what a user of it would notice."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from poller.adapters.downloader import Downloader
from poller.adapters.http import HostRules, HttpClient, Limits, RetryPolicy
from poller.adapters.providers.profiles.cloudtalk import CloudTalkProvider, CloudTalkSettings
from poller.adapters.providers.registry import build_provider
from poller.cli import main
from poller.config import load_settings
from poller.config_types import ConfigError
from poller.domain.call_record import CallRecord
from poller.domain.states import Direction, RecordingState
from poller.domain.windows import Window
from poller.ports.provider import ProviderAuthError, TransientProviderError
from poller.simulators.audio import wav_bytes
from poller.simulators.cloudtalk_server import (
    KEY_ID,
    KEY_SECRET,
    CloudTalkApi,
    cloudtalk_agent,
    cloudtalk_call,
)
from poller.simulators.kit import serve

T0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
WINDOW = Window(T0, T0 + timedelta(hours=1))
AUDIO = wav_bytes(0.5)
REP1 = cloudtalk_agent(7, "rep1@example.com", "Rep One")
REP2 = cloudtalk_agent(8, "rep2@example.com", "Rep Two")


@pytest.fixture
def api() -> Iterator[CloudTalkApi]:
    with serve(CloudTalkApi()) as running:
        yield running


def provider(api: CloudTalkApi, **settings: Any) -> CloudTalkProvider:
    values = {
        "kind": "cloudtalk",
        "base_url": api.url,
        "username": KEY_ID,
        "password": KEY_SECRET,
        **settings,
    }
    adapter = build_provider(CloudTalkSettings.model_validate(values))
    assert isinstance(adapter, CloudTalkProvider)
    return adapter


def listed(adapter: CloudTalkProvider, window: Window = WINDOW) -> dict[str, CallRecord]:
    pages = list(adapter.list_window(window))
    assert [bad for page in pages for bad in page.malformed] == []
    return {record.provider_call_id: record for page in pages for record in page.records}


def test_each_call_is_listed_with_its_agent_contact_and_recording(api: CloudTalkApi) -> None:
    at = T0 + timedelta(minutes=5)
    api.add_call(cloudtalk_call(1, at, agent=REP1, external=421904247371), AUDIO)
    api.add_call(
        cloudtalk_call(2, at, agent=REP2, call_type="incoming", external="+14155550102"), AUDIO
    )
    records = listed(provider(api))
    out, into = records["1"], records["2"]
    assert (out.rep_email, out.rep_name, out.rep_provider_id) == (
        "rep1@example.com",
        "Rep One",
        "7",
    )
    # public_external is "E.164" without its plus in CloudTalk's own example: given it back.
    assert (out.direction, out.contact_phone, out.contact_name) == (
        Direction.OUTBOUND,
        "+421904247371",
        "Jon Doe",
    )
    assert (into.rep_email, into.direction, into.contact_phone) == (
        "rep2@example.com",
        Direction.INBOUND,
        "+14155550102",
    )
    # An internal call has no direction, and its other end's extension stays as it is.
    api.add_call(cloudtalk_call(3, at, agent=REP1, call_type="internal", external="1001"), AUDIO)
    internal = listed(provider(api))["3"]
    assert (internal.direction, internal.contact_phone) == (None, "1001")
    # The company number the call went through is never taken as the rep's.
    assert out.rep_phone is None and into.rep_phone is None
    assert out.started_at == at and out.duration_seconds == 65
    assert out.recording_state is RecordingState.READY
    # The recording_link play page is never where the audio is looked for.
    assert out.recording_url is None


def test_the_listing_asks_cloudtalk_for_the_window_in_its_own_time_format(
    api: CloudTalkApi,
) -> None:
    listed(provider(api, page_size=50))
    [request] = [r for r in api.requests if r.path == "/api/calls/index.json"]
    assert request.param("date_from") == "2026-03-02 13:59:59"
    assert request.param("date_to") == "2026-03-02 15:00:01"
    assert (request.param("limit"), request.param("page")) == ("50", "1")
    assert request.header("accept") == "application/json"
    assert (request.header("authorization") or "").startswith("Basic ")


def test_paging_follows_the_page_count_and_asks_for_no_page_past_it(api: CloudTalkApi) -> None:
    for n in range(5):
        api.add_call(cloudtalk_call(n + 1, T0 + timedelta(minutes=n), agent=REP1), AUDIO)
    assert sorted(listed(provider(api, page_size=2))) == ["1", "2", "3", "4", "5"]
    assert api.listing_pages() == [1, 2, 3]


def test_a_call_not_recorded_is_skipped_at_once_with_cloudtalks_reason(api: CloudTalkApi) -> None:
    api.add_call(cloudtalk_call(1, T0 + timedelta(minutes=1), agent=REP1, recorded=False))
    [record] = listed(provider(api)).values()
    assert record.recording_state is RecordingState.NONE
    assert record.no_recording_reason == "CloudTalk reports the call was not recorded"


def test_the_recording_is_fetched_from_its_path_with_the_key_and_is_wav(
    api: CloudTalkApi, tmp_path: Path
) -> None:
    api.add_call(cloudtalk_call(7, T0 + timedelta(minutes=1), agent=REP1), AUDIO)
    adapter = provider(api)
    [record] = listed(adapter).values()
    request = adapter.resolve_download(record)
    assert request.url == f"{api.url}/api/calls/recording/7.json"
    assert request.format_hint == "wav"
    client = HttpClient(
        limits=Limits(connect_timeout=2, read_timeout=2, deadline=10, max_body_bytes=1 << 20),
        hosts=HostRules(),
        retry=RetryPolicy.once(),
        user_agent="siro-poller-test",
    )
    Downloader(client, max_bytes=1 << 20).fetch(request, tmp_path / "call.wav")
    assert (tmp_path / "call.wav").read_bytes() == AUDIO


def test_a_429_without_retry_after_is_waited_out_until_cloudtalks_reset_time() -> None:
    # The company's minute ends ten minutes from now (a clock of the simulator's own).
    with serve(CloudTalkApi(clock=lambda: time.time() + 600)) as api:
        api.add_call(cloudtalk_call(1, T0 + timedelta(minutes=1), agent=REP1), AUDIO)
        for _ in range(60):
            api.budget.charge(1)  # the company's other integrations spent the minute
        with pytest.raises(TransientProviderError, match=r"pause of (5[4-9]\d|6[0-6]\d) s"):
            listed(provider(api))
        # One 429, read for its X-CloudTalkAPI-ResetTime: no request after it, no Retry-After.
        assert api.statuses == [429]
        assert api.count("/api/calls/index.json") == 1


def test_a_refused_key_names_both_keys_to_check(api: CloudTalkApi) -> None:
    with pytest.raises(ProviderAuthError, match=r"check provider\.username, provider\.password"):
        listed(provider(api, password="not-the-secret", max_retries=0))


def test_keys_the_profile_fixes_are_refused_by_name(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[provider]\nkind = "cloudtalk"\nusername = "k"\nauth = "bearer"\n'
        '[provider.recording]\ndownload_path = "/x/{call_id}"\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert "provider.auth: fixed by the cloudtalk profile" in caught.value.problems
    assert "provider.recording: fixed by the cloudtalk profile" in caught.value.problems


def test_unset_credentials_are_named_before_any_request() -> None:
    settings = CloudTalkSettings.model_validate({"kind": "cloudtalk"})
    assert settings.requirements() == [
        "provider.username: required: the API key's id",
        "provider.password: required: the API key's secret",
    ]
    assert settings.api_base_url == "https://my.cloudtalk.io"
    with pytest.raises(ValueError, match="page_size"):
        CloudTalkSettings.model_validate({"kind": "cloudtalk", "page_size": 1001})
    with pytest.raises(ValueError, match="requests_per_minute"):
        CloudTalkSettings.model_validate({"kind": "cloudtalk", "requests_per_minute": 61})


def test_provider_check_reads_cloudtalk_as_a_native_kind(api: CloudTalkApi) -> None:
    recent = datetime.now(UTC) - timedelta(hours=2)
    for n in range(3):
        api.add_call(cloudtalk_call(n + 1, recent + timedelta(minutes=n), agent=REP1), AUDIO)
    env = {
        "SIRO_POLLER_PROVIDER__KIND": "cloudtalk",
        "SIRO_POLLER_PROVIDER__BASE_URL": api.url,
        "SIRO_POLLER_PROVIDER__USERNAME": KEY_ID,
        "SIRO_POLLER_PROVIDER__PASSWORD": KEY_SECRET,
        "SIRO_POLLER_PROVIDER__MAX_RETRIES": "0",
    }
    ok = CliRunner().invoke(main, ["provider", "check"], env=env)
    assert ok.exit_code == 0, ok.output
    assert ok.stdout.strip() == "provider cloudtalk: ok: 3 of 3 records mapped"

    refused = CliRunner().invoke(
        main, ["provider", "check"], env=env | {"SIRO_POLLER_PROVIDER__PASSWORD": "wrong"}
    )
    assert refused.exit_code == 1
    assert "provider cloudtalk: auth:" in refused.stdout
    assert "check provider.username, provider.password" in refused.stdout
    assert KEY_SECRET not in ok.output + refused.output
