"""The Webex Calling profile against its simulator on 127.0.0.1: what a user of it would notice."""

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
from poller.adapters.memory_store import MemoryOAuthTokenStore
from poller.adapters.providers.profiles.webex import WebexProvider, WebexSettings
from poller.adapters.providers.registry import build_provider
from poller.cli import main
from poller.config import load_settings
from poller.config_types import ConfigError
from poller.domain.call_record import CallRecord
from poller.domain.states import RecordingState
from poller.domain.windows import Window
from poller.ports.provider import ProviderAuthError, ProviderRefused
from poller.simulators.audio import mp3_bytes
from poller.simulators.webex_server import (
    CLIENT_ID,
    CLIENT_SECRET,
    WebexSimulator,
    webex_recording,
)
from tests.conftest import database_url

T0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
WINDOW = Window(T0, T0 + timedelta(hours=1))
AUDIO = mp3_bytes(1)


@pytest.fixture
def sim() -> Iterator[WebexSimulator]:
    with WebexSimulator() as running:
        yield running


def table(sim: WebexSimulator, seed: str, **settings: Any) -> dict[str, Any]:
    return {
        "kind": "webex",
        "base_url": sim.url,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "refresh_token": seed,
        "download_hosts": [sim.media_host],
        **settings,
    }


def provider(
    sim: WebexSimulator, store: MemoryOAuthTokenStore | None = None, **settings: Any
) -> WebexProvider:
    seed = settings.pop("refresh_token", None) or sim.api.seed_refresh_token()
    adapter = build_provider(
        WebexSettings.model_validate(table(sim, seed, **settings)),
        token_store=store or MemoryOAuthTokenStore(),
    )
    assert isinstance(adapter, WebexProvider)
    return adapter


def listed(adapter: WebexProvider, window: Window = WINDOW) -> dict[str, CallRecord]:
    pages = list(adapter.list_window(window))
    assert [bad for page in pages for bad in page.malformed] == []
    return {record.provider_call_id: record for page in pages for record in page.records}


def test_each_recording_is_listed_with_its_owner_as_the_rep(sim: WebexSimulator) -> None:
    at = T0 + timedelta(minutes=5)
    sim.api.add_recording(webex_recording("rec-1", at, owner_email="rep1@example.com"), AUDIO)
    sim.api.add_recording(
        webex_recording("rec-2", at, owner_email="queue-admin@example.com", owner_type="callQueue"),
        AUDIO,
    )
    records = listed(provider(sim))
    user, queue = records["rec-1"], records["rec-2"]
    assert (user.rep_email, user.started_at, user.duration_seconds) == ("rep1@example.com", at, 60)
    assert user.recording_state is RecordingState.READY
    assert user.recording_url is None  # the listing carries no link; it is fetched per download
    # A call queue's recording names an administrator's email, not a rep: only its owner id.
    assert queue.rep_email is None and queue.rep_provider_id
    [request] = sim.api.listing_requests()
    assert request.param("from") == "2026-03-02T13:59:59Z"
    assert request.param("to") == "2026-03-02T15:00:01Z"
    assert (request.param("serviceType"), request.param("max")) == ("calling", "100")


def test_every_recording_is_listed_once_across_pages_by_the_link_header(
    sim: WebexSimulator,
) -> None:
    for n in range(7):
        sim.api.add_recording(webex_recording(f"rec-{n}", T0 + timedelta(minutes=n)), AUDIO)
    records = listed(provider(sim, page_size=3))
    assert sorted(records) == [f"rec-{n}" for n in range(7)]
    assert len(sim.api.listing_requests()) == 3


def test_a_window_over_thirty_days_is_split_as_webex_asks(sim: WebexSimulator) -> None:
    adapter = provider(sim)
    assert adapter.capabilities.max_window == timedelta(days=30)


def test_the_audio_link_is_fetched_fresh_and_downloaded_without_the_token(
    sim: WebexSimulator, tmp_path: Path
) -> None:
    sim.api.add_recording(webex_recording("rec-7", T0 + timedelta(minutes=1)), AUDIO)
    adapter = provider(sim)
    [record] = listed(adapter).values()
    request = adapter.resolve_download(record)
    assert sim.api.requests[-1].path == "/v1/convergedRecordings/rec-7"
    assert sim.media_host not in request.credential_hosts
    assert request.format_hint == "mp3"
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


def test_a_download_host_the_config_does_not_allow_is_refused(sim: WebexSimulator) -> None:
    sim.api.add_recording(webex_recording("rec-7", T0 + timedelta(minutes=1)), AUDIO)
    adapter = provider(sim, download_hosts=["*.webex.com"])
    [record] = listed(adapter).values()
    with pytest.raises(ProviderRefused, match=r"provider\.download_hosts"):
        adapter.resolve_download(record)


def test_the_refresh_token_is_used_once_and_the_current_one_kept(sim: WebexSimulator) -> None:
    sim.api.add_recording(webex_recording("rec-1", T0 + timedelta(minutes=1)), AUDIO)
    store = MemoryOAuthTokenStore()
    seed = sim.api.seed_refresh_token()
    assert list(listed(provider(sim, store, refresh_token=seed))) == ["rec-1"]
    [form] = [r["form"] for r in sim.api.issuer.requests]
    assert (form["grant_type"], form["refresh_token"], form["client_id"]) == (
        "refresh_token",
        seed,
        CLIENT_ID,
    )
    sim.api.issuer.expire_access_tokens()
    assert list(listed(provider(sim, store, refresh_token=seed))) == ["rec-1"]
    assert (sim.api.issuer.refreshes, sim.api.issuer.replays) == (2, 0)


def test_a_refused_refresh_names_the_key_to_check(sim: WebexSimulator) -> None:
    with pytest.raises(ProviderAuthError, match=r"provider\.refresh_token") as caught:
        listed(provider(sim, refresh_token="not-a-token", max_retries=0))
    assert "not-a-token" not in str(caught.value)


def test_a_429_is_waited_out_for_its_retry_after(sim: WebexSimulator) -> None:
    sim.api.add_recording(webex_recording("rec-1", T0 + timedelta(minutes=1)), AUDIO)
    sim.api.fail("status", status=429, retry_after=9, path="/v1/admin/convergedRecordings")
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)

    adapter = WebexProvider(
        WebexSettings.model_validate(table(sim, sim.api.seed_refresh_token())),
        retry=RetryPolicy(max_tries=2, sleep=sleep),
        sleep=sleep,
        monotonic=lambda: sum(waits),
        token_store=MemoryOAuthTokenStore(),
    )
    assert list(listed(adapter)) == ["rec-1"]
    assert 429 in sim.api.statuses and 9 in waits


def test_keys_the_profile_fixes_are_refused_by_name(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[provider]\nkind = "webex"\nauth = "bearer"\n[provider.recording]\nformat = "wav"\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    for key in ("auth", "recording"):
        assert f"provider.{key}: fixed by the webex profile" in caught.value.problems


def test_unset_credentials_are_named_and_webex_hosts_are_the_defaults() -> None:
    settings = WebexSettings.model_validate({"kind": "webex"})
    assert settings.requirements() == [
        "provider.client_id: required: the integration's Client ID",
        "provider.client_secret: required: the integration's Client Secret",
        "provider.refresh_token: required: the refresh token of the integration's authorisation",
    ]
    generic = settings.generic_settings()
    assert generic.token_url == "https://webexapis.com/v1/access_token"
    assert generic.download_hosts == ["*.webex.com"]


def test_provider_check_lists_with_the_stored_token(sim: WebexSimulator, engine: Engine) -> None:
    recent = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    for n in range(3):
        sim.api.add_recording(webex_recording(f"r{n}", recent + timedelta(minutes=n)), AUDIO)
    seed = sim.api.seed_refresh_token()
    env = {
        f"SIRO_POLLER_PROVIDER__{key.upper()}": str(value)
        for key, value in table(sim, seed, max_retries=0).items()
        if key != "download_hosts"
    }
    env["SIRO_POLLER_DATABASE__URL"] = database_url(engine)
    ok = CliRunner().invoke(main, ["provider", "check"], env=env)
    assert ok.exit_code == 0, ok.output
    assert ok.stdout.strip() == "provider webex: ok: 3 of 3 records mapped"
    sim.api.issuer.expire_access_tokens()
    again = CliRunner().invoke(main, ["provider", "check"], env=env)
    assert again.exit_code == 0, again.output
    assert sim.api.issuer.replays == 0
    refused = CliRunner().invoke(
        main, ["provider", "check"], env=env | {"SIRO_POLLER_PROVIDER__REFRESH_TOKEN": "revoked"}
    )
    assert refused.exit_code == 1
    assert "provider webex: auth:" in refused.stdout
    assert "provider.refresh_token" in refused.stdout
    for secret in (seed, CLIENT_SECRET):
        assert secret not in ok.output + again.output + refused.output
