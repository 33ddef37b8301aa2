"""The CallRail profile against its simulator on 127.0.0.1: what a user of it would notice."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from poller.adapters.downloader import Downloader
from poller.adapters.http import HostRules, HttpClient, Limits, RetryPolicy
from poller.adapters.providers.profiles.callrail import CallRailProvider, CallRailSettings
from poller.adapters.providers.registry import build_provider
from poller.cli import main
from poller.config import load_settings
from poller.config_types import ConfigError
from poller.domain.call_record import CallRecord
from poller.domain.failures import StepFailure
from poller.domain.states import Direction, RecordingState
from poller.domain.windows import Window
from poller.ports.provider import ProviderAuthError, ProviderRefused
from poller.simulators.audio import mp3_bytes
from poller.simulators.callrail_server import (
    ACCOUNT_ID,
    API_KEY,
    CallRailSimulator,
    callrail_call,
)

T0 = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(days=2)
WINDOW = Window(T0, T0 + timedelta(hours=1))
AUDIO = mp3_bytes(1)


@pytest.fixture
def sim() -> Iterator[CallRailSimulator]:
    with CallRailSimulator() as running:
        yield running


def provider(sim: CallRailSimulator, **settings: Any) -> CallRailProvider:
    values = {
        "kind": "callrail",
        "base_url": sim.url,
        "account_id": ACCOUNT_ID,
        "api_key": API_KEY,
        "download_hosts": sim.recording_hosts,
        **settings,
    }
    adapter = build_provider(CallRailSettings.model_validate(values))
    assert isinstance(adapter, CallRailProvider)
    return adapter


def listed(adapter: CallRailProvider, window: Window = WINDOW) -> dict[str, CallRecord]:
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


def test_each_call_is_listed_with_its_agent_contact_and_recording(
    sim: CallRailSimulator,
) -> None:
    at = T0 + timedelta(minutes=5)
    sim.api.add_call(callrail_call("CAL1", at, agent_email="rep1@example.com"), AUDIO)
    sim.api.add_call(
        callrail_call(
            "CAL2",
            at,
            agent_email="rep2@example.com",
            direction="outbound",
            customer="+14155550102",
            customer_name="Jane Smith",
        ),
        AUDIO,
    )
    records = listed(provider(sim))
    into, out = records["CAL1"], records["CAL2"]
    assert (into.rep_email, into.direction, into.contact_phone, into.contact_name) == (
        "rep1@example.com",
        Direction.INBOUND,
        "+13036231131",
        "RUEGSEGGER SIMO",
    )
    assert (out.rep_email, out.direction, out.contact_phone) == (
        "rep2@example.com",
        Direction.OUTBOUND,
        "+14155550102",
    )
    # The business line that rang is never taken as the rep's number.
    assert into.rep_phone is None and out.rep_phone is None
    # start_time comes in the zone asked for, with its offset: read as the instant it is.
    assert into.started_at == at and into.duration_seconds == 60
    assert into.recording_state is RecordingState.READY
    assert into.recording_url is None  # the link is the recording endpoint, never stored


def test_the_listing_asks_for_utc_minutes_oldest_first_and_the_agents_email(
    sim: CallRailSimulator,
) -> None:
    listed(provider(sim, page_size=50))
    [request] = [r for r in sim.api.requests if r.path.endswith("/calls.json")]
    assert request.path == f"/v3/a/{ACCOUNT_ID}/calls.json"
    # Minutes are the reference's finest unit: the window is rounded out and widened by one.
    assert request.param("start_date") == (T0 - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M")
    assert request.param("end_date") == (T0 + timedelta(minutes=61)).strftime("%Y-%m-%dT%H:%M")
    assert request.param("time_zone") == "Etc/UTC"
    assert (request.param("sort"), request.param("order")) == ("start_time", "asc")
    assert request.param("fields") == "agent_email"
    assert (request.param("per_page"), request.param("page")) == ("50", "1")
    assert request.header("authorization") == f'Token token="{API_KEY}"'


def test_paging_follows_total_pages_and_asks_for_no_page_past_it(sim: CallRailSimulator) -> None:
    for n in range(5):
        sim.api.add_call(callrail_call(f"CAL{n}", T0 + timedelta(minutes=n)), AUDIO)
    assert sorted(listed(provider(sim, page_size=2))) == [f"CAL{n}" for n in range(5)]
    assert sim.api.listing_pages() == [1, 2, 3]


def test_unanswered_calls_have_no_recording_and_answered_ones_wait_for_theirs(
    sim: CallRailSimulator,
) -> None:
    at = T0 + timedelta(minutes=1)
    sim.api.add_call(callrail_call("CALMISSED", at, answered=False))
    sim.api.add_call(callrail_call("CALVM", at, answered=False, voicemail=True))
    sim.api.add_call(callrail_call("CALLATE", at))  # answered; no recording yet
    records = listed(provider(sim))
    assert records["CALMISSED"].recording_state is RecordingState.NONE
    assert records["CALMISSED"].no_recording_reason == (
        "CallRail has no recording: the call was not answered"
    )
    assert records["CALVM"].recording_state is RecordingState.PENDING
    assert records["CALLATE"].recording_state is RecordingState.PENDING
    sim.api.add_recording("CALLATE", AUDIO)
    assert listed(provider(sim))["CALLATE"].recording_state is RecordingState.READY


def test_the_recording_link_is_asked_for_then_followed_without_the_api_key(
    sim: CallRailSimulator, tmp_path: Path
) -> None:
    sim.api.add_call(callrail_call("CAL7", T0 + timedelta(minutes=1)), AUDIO)
    adapter = provider(sim)
    [record] = listed(adapter).values()
    request = adapter.resolve_download(record)
    assert sim.api.requests[-1].path == f"/v3/a/{ACCOUNT_ID}/calls/CAL7/recording.json"
    assert request.secret_path and request.refreshable  # the link is a credential
    assert fetch(request, tmp_path / "call.mp3") == AUDIO
    followed = sim.api.app.requests + sim.api.media.requests
    assert [r.path for r in followed] == ["/calls/CAL7/recording/redirect", "/media/rec-CAL7"]
    assert all(r.header("authorization") is None for r in followed)


def test_a_recording_host_not_allowed_is_refused_naming_the_key(
    sim: CallRailSimulator, tmp_path: Path
) -> None:
    sim.api.add_call(callrail_call("CAL7", T0 + timedelta(minutes=1)), AUDIO)
    adapter = provider(sim, download_hosts=sim.recording_hosts[:1])  # the storage host is not
    [record] = listed(adapter).values()
    with pytest.raises(StepFailure) as refused:
        fetch(adapter.resolve_download(record), tmp_path / "call.mp3")
    assert "provider.download_hosts" in str(refused.value)
    assert sim.api.media.requests == []
    with pytest.raises(ProviderRefused, match=r"provider\.download_hosts"):
        provider(sim, download_hosts=[]).resolve_download(record)


def test_a_429_without_headers_pauses_the_listing_and_it_goes_on(sim: CallRailSimulator) -> None:
    sim.api.add_call(callrail_call("CAL1", T0 + timedelta(minutes=1)), AUDIO)
    sim.api.fail("status", status=429, path=f"/v3/a/{ACCOUNT_ID}/calls.json")
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)

    settings = CallRailSettings.model_validate(
        {"kind": "callrail", "base_url": sim.url, "account_id": ACCOUNT_ID, "api_key": API_KEY}
    )
    retry = RetryPolicy(max_tries=2, sleep=sleep)
    adapter = CallRailProvider(settings, retry=retry, sleep=sleep, monotonic=lambda: sum(waits))
    assert list(listed(adapter)) == ["CAL1"]
    assert sim.api.statuses[:2] == [429, 200] and waits


def test_a_refused_api_key_names_the_key_to_check(sim: CallRailSimulator) -> None:
    with pytest.raises(ProviderAuthError, match=r"check provider\.api_key"):
        listed(provider(sim, api_key="not-the-key", max_retries=0))


def test_no_window_reaches_past_callrails_25_months(sim: CallRailSimulator) -> None:
    adapter = provider(sim)
    assert adapter.capabilities.history_limit == timedelta(days=760)
    with pytest.raises(ValueError, match="history_days"):
        CallRailSettings.model_validate({"kind": "callrail", "history_days": 800})


def test_keys_the_profile_fixes_are_refused_and_unset_ones_named(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[provider]\nkind = "callrail"\naccount_id = "1"\nheader_template = "{api_key}"\n'
        '[provider.paging]\nmode = "none"\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert "provider.header_template: fixed by the callrail profile" in caught.value.problems
    assert "provider.paging: fixed by the callrail profile" in caught.value.problems
    settings = CallRailSettings.model_validate({"kind": "callrail"})
    assert settings.requirements() == [
        "provider.account_id: required: the CallRail account's id",
        "provider.api_key: required: a CallRail API key",
    ]
    assert settings.api_base_url == "https://api.callrail.com"
    assert settings.download_hosts == ["app.callrail.com", "calltrk-production.s3.amazonaws.com"]
    # The id becomes part of every path: only letters and digits.
    with pytest.raises(ValueError, match="account_id"):
        CallRailSettings.model_validate({"kind": "callrail", "account_id": "../a/other"})


def test_provider_check_reads_callrail_as_a_native_kind(sim: CallRailSimulator) -> None:
    recent = datetime.now(UTC) - timedelta(hours=2)
    for n in range(3):
        sim.api.add_call(callrail_call(f"CAL{n}", recent + timedelta(minutes=n)), AUDIO)
    env = {
        "SIRO_POLLER_PROVIDER__KIND": "callrail",
        "SIRO_POLLER_PROVIDER__BASE_URL": sim.url,
        "SIRO_POLLER_PROVIDER__ACCOUNT_ID": ACCOUNT_ID,
        "SIRO_POLLER_PROVIDER__API_KEY": API_KEY,
        "SIRO_POLLER_PROVIDER__MAX_RETRIES": "0",
    }
    ok = CliRunner().invoke(main, ["provider", "check"], env=env)
    assert ok.exit_code == 0, ok.output
    assert ok.stdout.strip() == "provider callrail: ok: 3 of 3 records mapped"

    refused = CliRunner().invoke(
        main, ["provider", "check"], env=env | {"SIRO_POLLER_PROVIDER__API_KEY": "wrong"}
    )
    assert refused.exit_code == 1
    assert "provider callrail: auth:" in refused.stdout
    # Only the key the user sets is named: the header's template is the profile's.
    assert "check provider.api_key" in refused.stdout
    assert "header_template" not in refused.stdout
    assert API_KEY not in ok.output + refused.output
