"""The Vonage Business Communications profile against its simulator on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from poller.adapters.downloader import Downloader
from poller.adapters.http import HostRules, HttpClient, Limits, RetryPolicy
from poller.adapters.providers.profiles.vonage import VonageProvider, VonageSettings
from poller.adapters.providers.registry import build_provider
from poller.cli import main
from poller.config import load_settings
from poller.config_types import ConfigError
from poller.domain.call_record import CallRecord
from poller.domain.states import Direction, RecordingState
from poller.domain.windows import Window
from poller.ports.provider import ProviderAuthError
from poller.simulators.audio import mp3_bytes
from poller.simulators.vonage_server import (
    CLIENT_ID,
    CLIENT_SECRET,
    PASSWORD,
    USERNAME,
    VonageSimulator,
    company_recording,
)

T0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
WINDOW = Window(T0, T0 + timedelta(hours=1))
AUDIO = mp3_bytes(1)


@pytest.fixture
def sim() -> Iterator[VonageSimulator]:
    with VonageSimulator() as running:
        running.api.add_extension("101", "rep1@example.com", "Rep One")
        running.api.add_extension("102", "rep2@example.com", "Rep Two")
        yield running


def provider(sim: VonageSimulator, **settings: Any) -> VonageProvider:
    values = {
        "kind": "vonage",
        "base_url": sim.url,
        "username": USERNAME,
        "password": PASSWORD,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        **settings,
    }
    adapter = build_provider(VonageSettings.model_validate(values))
    assert isinstance(adapter, VonageProvider)
    return adapter


def listed(adapter: VonageProvider, window: Window = WINDOW) -> dict[str, CallRecord]:
    pages = list(adapter.list_window(window))
    assert [bad for page in pages for bad in page.malformed] == []
    return {record.provider_call_id: record for page in pages for record in page.records}


def test_each_recording_is_listed_with_its_extension_contact_and_times(
    sim: VonageSimulator,
) -> None:
    at = T0 + timedelta(minutes=5)
    sim.api.add(company_recording(1, at, direction="OUTBOUND", dnis="14155550101"), AUDIO)
    sim.api.add(
        company_recording(
            2, at, direction="INBOUND", extension="102", caller_id="14155550102", cnam="ACME"
        ),
        AUDIO,
    )
    sim.api.add(company_recording(3, at, direction="INTRA_PBX"), AUDIO)
    records = listed(provider(sim))
    out, into, internal = records["1"], records["2"], records["3"]
    assert (out.direction, out.contact_phone, out.contact_name) == (
        Direction.OUTBOUND,
        "14155550101",
        None,
    )
    assert (into.direction, into.contact_phone, into.contact_name) == (
        Direction.INBOUND,
        "14155550102",
        "ACME",
    )
    assert internal.contact_phone is None and internal.direction is None
    assert (out.rep_extension, into.rep_extension) == ("101", "102")
    # The rep's email and name come from the account's extensions, read once.
    assert (out.rep_email, out.rep_name) == ("rep1@example.com", "Rep One")
    assert into.rep_email == "rep2@example.com"
    assert sim.api.count("/t/vbc.prod/provisioning/") == 1
    # The caller id of an outbound call may be a company number: never the rep's phone.
    assert out.rep_phone is None and "17325550100" not in out.rep_identifiers
    assert out.started_at == at and out.duration_seconds == 60
    assert out.ended_at == at + timedelta(seconds=60)
    assert out.recording_state is RecordingState.READY


def test_an_extension_without_a_user_or_a_directory_out_of_reach_keeps_its_number(
    sim: VonageSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    at = T0 + timedelta(minutes=1)
    sim.api.add_extension("150", None, "Lobby")
    sim.api.add(company_recording(1, at, extension="150"), AUDIO)
    sim.api.add(company_recording(2, at, extension="777"), AUDIO)  # gone from the account
    records = listed(provider(sim))
    assert [(r.rep_extension, r.rep_email) for r in records.values()] == [
        ("150", None),
        ("777", None),
    ]
    sim.api.provisioning_subscribed = False
    adapter = provider(sim)
    [first, _] = listed(adapter).values()
    assert (first.rep_extension, first.rep_email) == ("150", None)
    assert "subscribe the application to the Provisioning API" in caplog.text
    asked = sim.api.count("/t/vbc.prod/provisioning/")
    listed(adapter)  # not asked again within the hour
    assert sim.api.count("/t/vbc.prod/provisioning/") == asked


def test_the_listing_writes_the_window_as_vonage_documents_it(sim: VonageSimulator) -> None:
    listed(provider(sim, page_size=50))
    [request] = sim.api.listing_requests()
    assert request.path == "/t/vbc.prod/call_recording/api/accounts/self/company_call_recordings"
    assert request.param("start:gte") == "2026-03-02T13:59:59+0000"
    assert request.param("start:lte") == "2026-03-02T15:00:01+0000"
    assert (request.param("order"), request.param("page"), request.param("page_size")) == (
        "start:ASC",
        "1",
        "50",
    )
    [token_request] = sim.api.issuer.requests
    assert token_request["form"]["username"] == f"{USERNAME}@vbc.prod"
    assert token_request["form"]["scope"] == "openid"
    assert "authorization" not in {name.lower() for name in token_request["headers"]}


def test_pages_are_walked_to_total_pages(sim: VonageSimulator) -> None:
    for n in range(5):
        sim.api.add(company_recording(n + 1, T0 + timedelta(minutes=n)), AUDIO)
    records = listed(provider(sim, page_size=2))
    assert sorted(records) == ["1", "2", "3", "4", "5"]
    assert [r.param("page") for r in sim.api.listing_requests()] == ["1", "2", "3"]


def test_the_recording_is_downloaded_by_its_id_with_the_token(
    sim: VonageSimulator, tmp_path: Path
) -> None:
    sim.api.add(company_recording(193228, T0 + timedelta(minutes=1)), AUDIO)
    adapter = provider(sim)
    [record] = listed(adapter).values()
    request = adapter.resolve_download(record)
    assert request.url == f"{sim.url}/t/vbc.prod/call_recording/api/audio/recording/193228"
    assert request.headers["Authorization"].startswith("Bearer ")
    client = HttpClient(
        limits=Limits(connect_timeout=2, read_timeout=2, deadline=10, max_body_bytes=1 << 20),
        hosts=HostRules(),
        retry=RetryPolicy.once(),
        user_agent="siro-poller-test",
    )
    Downloader(client, max_bytes=1 << 20).fetch(request, tmp_path / "call.mp3")
    assert (tmp_path / "call.mp3").read_bytes() == AUDIO


def test_a_refused_password_names_the_keys_to_check(sim: VonageSimulator) -> None:
    with pytest.raises(ProviderAuthError, match=r"provider\.username, provider\.password"):
        listed(provider(sim, password="not-the-password", max_retries=0))


def test_keys_the_profile_fixes_are_refused_and_the_user_name_is_completed(
    tmp_path: Path,
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[provider]\nkind = "vonage"\nauth = "bearer"\n[provider.fields]\ncall_id = "x"\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert "provider.auth: fixed by the vonage profile" in caught.value.problems
    assert "provider.fields: fixed by the vonage profile" in caught.value.problems
    named = VonageSettings.model_validate({"kind": "vonage", "username": "api@vbc.prod"})
    assert named.generic_settings().username == "api@vbc.prod"
    assert VonageSettings.model_validate({"kind": "vonage"}).requirements() == [
        "provider.username: required: the VBC integration user",
        "provider.password: required: the integration user's password",
        "provider.client_id: required: the application's Consumer Key",
        "provider.client_secret: required: the application's Consumer Secret",
    ]
    with pytest.raises(ValueError, match="account_id"):
        VonageSettings.model_validate({"kind": "vonage", "account_id": "../users"})


def test_provider_check_reads_vonage_as_a_native_kind() -> None:
    with VonageSimulator() as sim:
        recent = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
        for n in range(3):
            sim.api.add(company_recording(n + 1, recent + timedelta(minutes=n)), AUDIO)
        env = {
            "SIRO_POLLER_PROVIDER__KIND": "vonage",
            "SIRO_POLLER_PROVIDER__BASE_URL": sim.url,
            "SIRO_POLLER_PROVIDER__USERNAME": USERNAME,
            "SIRO_POLLER_PROVIDER__PASSWORD": PASSWORD,
            "SIRO_POLLER_PROVIDER__CLIENT_ID": CLIENT_ID,
            "SIRO_POLLER_PROVIDER__CLIENT_SECRET": CLIENT_SECRET,
            "SIRO_POLLER_PROVIDER__MAX_RETRIES": "0",
        }
        ok = CliRunner().invoke(main, ["provider", "check"], env=env)
        assert ok.exit_code == 0, ok.output
        assert ok.stdout.strip() == "provider vonage: ok: 3 of 3 records mapped"
        refused = CliRunner().invoke(
            main, ["provider", "check"], env=env | {"SIRO_POLLER_PROVIDER__PASSWORD": "wrong-pw"}
        )
        assert refused.exit_code == 1
        assert "provider vonage: auth:" in refused.stdout
        assert "wrong-pw" not in refused.output and PASSWORD not in ok.output
