"""The 8x8 profile against its simulator on 127.0.0.1: what a user of it would notice."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from poller.adapters.downloader import Downloader
from poller.adapters.http import HostRules, HttpClient, Limits, RetryPolicy
from poller.adapters.providers.profiles.eightbyeight import (
    EightByEightProvider,
    EightByEightSettings,
)
from poller.adapters.providers.registry import build_provider
from poller.cli import main
from poller.config import load_settings
from poller.config_types import ConfigError
from poller.domain.call_record import CallRecord
from poller.domain.states import Direction, RecordingState
from poller.domain.windows import Window
from poller.ports.provider import ProviderAuthError
from poller.simulators.audio import mp3_bytes
from poller.simulators.eightbyeight_server import (
    CLIENT_ID,
    CLIENT_SECRET,
    EightByEightSimulator,
    call_recording,
)

T0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
WINDOW = Window(T0, T0 + timedelta(hours=1))
AUDIO = mp3_bytes(1)


@pytest.fixture
def sim() -> Iterator[EightByEightSimulator]:
    with EightByEightSimulator(regions=("us-east", "uk")) as running:
        yield running


def provider(sim: EightByEightSimulator, **settings: Any) -> EightByEightProvider:
    values = {
        "kind": "8x8",
        "base_url": sim.url,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        **settings,
    }
    adapter = build_provider(EightByEightSettings.model_validate(values))
    assert isinstance(adapter, EightByEightProvider)
    return adapter


def listed(adapter: EightByEightProvider, window: Window = WINDOW) -> dict[str, CallRecord]:
    pages = list(adapter.list_window(window))
    assert [bad for page in pages for bad in page.malformed] == []
    return {record.provider_call_id: record for page in pages for record in page.records}


def test_each_recording_is_listed_with_its_rep_contact_and_duration(
    sim: EightByEightSimulator,
) -> None:
    at = T0 + timedelta(minutes=5, seconds=7)
    sim.api.add(call_recording("obj-1", at, address="+14155550101"), AUDIO)
    sim.api.add(
        call_recording(
            "obj-2",
            at,
            user_email="rep2@example.com",
            user_name="Rep Two",
            direction="INBOUND",
            address=None,
            duration_ms=90_500,
        )
        | {
            "tags": [
                {"key": "callerId", "value": "+14155550102"},
                {"key": "direction", "value": "INBOUND"},
                {"key": "userEmail", "value": "rep2@example.com"},
            ]
        },
        AUDIO,
    )
    records = listed(provider(sim))
    out, into = records["obj-1"], records["obj-2"]
    assert (out.rep_email, out.rep_name, out.rep_extension) == (
        "rep1@example.com",
        "Rep One",
        "117209",
    )
    assert (out.direction, out.contact_phone) == (Direction.OUTBOUND, "+14155550101")
    assert out.started_at == at  # 8x8 writes createdTime without a zone: UTC
    assert out.duration_seconds == 60  # the duration tag is in milliseconds
    assert out.recording_state is RecordingState.READY
    # No address tag: an inbound call's caller is the contact.
    assert (into.rep_email, into.direction, into.contact_phone) == (
        "rep2@example.com",
        Direction.INBOUND,
        "+14155550102",
    )


def test_the_listing_asks_for_the_window_in_milliseconds_oldest_first(
    sim: EightByEightSimulator,
) -> None:
    listed(provider(sim, page_size=50))
    [request] = sim.api.listing_requests()
    assert request.path == "/storage/us-east/v3/objects"
    # Each bound widened by the format's resolution, a millisecond, so no edge call is lost.
    start_ms = int(T0.timestamp() * 1000) - 1
    end_ms = int(WINDOW.end.timestamp() * 1000) + 1
    assert request.param("filter") == (
        f"type==callrecording;createdTime=ge={start_ms};createdTime=lt={end_ms};"
        "(objectState==AVAILABLE,objectState==PENDING)"
    )
    assert (request.param("sortField"), request.param("sortDirection")) == ("createdTime", "ASC")
    assert request.param("limit") == "50" and request.param("pageKey") is None
    assert (request.header("authorization") or "").startswith("Bearer ")


def test_pages_end_at_last_page_though_page_key_still_grows(sim: EightByEightSimulator) -> None:
    for n in range(5):
        sim.api.add(call_recording(f"obj-{n}", T0 + timedelta(minutes=n)), AUDIO)
    records = listed(provider(sim, page_size=2))
    assert sorted(records) == [f"obj-{n}" for n in range(5)]
    pages = [r.param("pageKey") for r in sim.api.listing_requests()]
    assert pages == [None, "2", "4"]  # the third answer says pageKey 6, and lastPage


def test_a_recording_still_being_stored_waits_and_a_revoked_one_is_not_listed(
    sim: EightByEightSimulator,
) -> None:
    at = T0 + timedelta(minutes=1)
    sim.api.add(call_recording("pending", at, state="PENDING"))
    sim.api.add(call_recording("revoked", at, state="REVOKED"), AUDIO)
    states = {cid: r.recording_state for cid, r in listed(provider(sim)).items()}
    assert states == {"pending": RecordingState.PENDING}


def test_the_region_is_the_users_choice(sim: EightByEightSimulator) -> None:
    sim.api.add(call_recording("us-1", T0 + timedelta(minutes=1)), AUDIO)
    sim.api.add(call_recording("uk-1", T0 + timedelta(minutes=1)), AUDIO, region="uk")
    assert list(listed(provider(sim, region="uk"))) == ["uk-1"]
    assert sim.api.listing_requests()[-1].path == "/storage/uk/v3/objects"


def test_the_recording_is_the_objects_content_fetched_with_the_token(
    sim: EightByEightSimulator, tmp_path: Path
) -> None:
    sim.api.add(call_recording("obj-7", T0 + timedelta(minutes=1)), AUDIO)
    adapter = provider(sim)
    [record] = listed(adapter).values()
    request = adapter.resolve_download(record)
    assert request.url == f"{sim.url}/storage/us-east/v3/objects/obj-7/content"
    client = HttpClient(
        limits=Limits(connect_timeout=2, read_timeout=2, deadline=10, max_body_bytes=1 << 20),
        hosts=HostRules(),
        retry=RetryPolicy.once(),
        user_agent="siro-poller-test",
    )
    Downloader(client, max_bytes=1 << 20).fetch(request, tmp_path / "call.mp3")
    assert (tmp_path / "call.mp3").read_bytes() == AUDIO


def test_the_token_is_renewed_by_8x8s_own_lifetime_written_as_a_string(
    sim: EightByEightSimulator,
) -> None:
    adapter = provider(sim)
    listed(adapter)
    token = adapter.http.auth.tokens.get()  # type: ignore[union-attr]
    assert token is not None
    lifetime = token.expires_at - datetime.now(UTC)
    assert timedelta(minutes=25) < lifetime <= timedelta(seconds=1799)
    assert sim.api.tokens.minted == 1


def test_a_refused_api_key_names_the_keys_to_check(sim: EightByEightSimulator) -> None:
    with pytest.raises(ProviderAuthError, match=r"provider\.client_id, provider\.client_secret"):
        listed(provider(sim, client_secret="not-the-secret", max_retries=0))


def test_keys_the_profile_fixes_are_refused_by_name(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[provider]\nkind = "8x8"\nclient_id = "k"\nclient_secret = "s"\n'
        'token_url = "https://evil.example.com/token"\n[provider.paging]\nmode = "none"\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert "provider.token_url: fixed by the 8x8 profile" in caught.value.problems
    assert "provider.paging: fixed by the 8x8 profile" in caught.value.problems


def test_unset_credentials_and_a_bad_region_are_named_before_any_request() -> None:
    settings = EightByEightSettings.model_validate({"kind": "8x8"})
    assert settings.requirements() == [
        "provider.client_id: required: the 8x8 API key",
        "provider.client_secret: required: the 8x8 API key's secret",
    ]
    assert settings.generic_settings().token_url == "https://api.8x8.com/oauth/v2/token"
    with pytest.raises(ValueError, match="region"):
        EightByEightSettings.model_validate({"kind": "8x8", "region": "us-east/../x"})


def test_provider_check_reads_8x8_as_a_native_kind() -> None:
    with EightByEightSimulator() as sim:
        recent = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
        for n in range(3):
            sim.api.add(call_recording(f"obj-{n}", recent + timedelta(minutes=n)), AUDIO)
        env = {
            "SIRO_POLLER_PROVIDER__KIND": "8x8",
            "SIRO_POLLER_PROVIDER__BASE_URL": sim.url,
            "SIRO_POLLER_PROVIDER__CLIENT_ID": CLIENT_ID,
            "SIRO_POLLER_PROVIDER__CLIENT_SECRET": CLIENT_SECRET,
            "SIRO_POLLER_PROVIDER__MAX_RETRIES": "0",
        }
        ok = CliRunner().invoke(main, ["provider", "check"], env=env)
        assert ok.exit_code == 0, ok.output
        assert ok.stdout.strip() == "provider 8x8: ok: 3 of 3 records mapped"
        refused = CliRunner().invoke(
            main,
            ["provider", "check"],
            env=env | {"SIRO_POLLER_PROVIDER__CLIENT_SECRET": "wrong-secret"},
        )
        assert refused.exit_code == 1
        assert "provider 8x8: auth:" in refused.stdout
        assert "wrong-secret" not in refused.output and CLIENT_SECRET not in ok.output
