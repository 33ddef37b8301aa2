"""The Outreach profile against its simulator on 127.0.0.1: what a user of it would notice."""

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
from poller.adapters.providers.profiles.outreach import OutreachProvider, OutreachSettings
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
from poller.simulators.outreach_server import (
    CLIENT_ID,
    CLIENT_SECRET,
    REDIRECT_URI,
    OutreachSimulator,
    outreach_call,
)
from tests.conftest import database_url

T0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
WINDOW = Window(T0, T0 + timedelta(hours=1))
AUDIO = mp3_bytes(1)


@pytest.fixture
def sim() -> Iterator[OutreachSimulator]:
    with OutreachSimulator() as running:
        running.api.add_user(10, "rep1@example.com", "Rep One")
        running.api.add_user(11, "rep2@example.com", "Rep Two")
        yield running


def table(sim: OutreachSimulator, seed: str, **settings: Any) -> dict[str, Any]:
    return {
        "kind": "outreach",
        "base_url": sim.url,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "redirect_uri": REDIRECT_URI,
        "refresh_token": seed,
        "download_hosts": [sim.media_host],
        **settings,
    }


def provider(
    sim: OutreachSimulator, store: MemoryOAuthTokenStore | None = None, **settings: Any
) -> OutreachProvider:
    seed = settings.pop("refresh_token", None) or sim.api.seed_refresh_token()
    adapter = build_provider(
        OutreachSettings.model_validate(table(sim, seed, **settings)),
        token_store=store or MemoryOAuthTokenStore(),
    )
    assert isinstance(adapter, OutreachProvider)
    return adapter


def listed(adapter: OutreachProvider, window: Window = WINDOW) -> dict[str, CallRecord]:
    pages = list(adapter.list_window(window))
    assert [bad for page in pages for bad in page.malformed] == []
    return {record.provider_call_id: record for page in pages for record in page.records}


def test_each_call_is_listed_with_its_rep_contact_and_recording(sim: OutreachSimulator) -> None:
    api = sim.api
    at = T0 + timedelta(minutes=5)
    api.add_call(outreach_call(1, at, user_id=10, to="+14155550101"), AUDIO)
    api.add_call(outreach_call(2, at, user_id=11, direction="inbound", from_="+14155550102"), AUDIO)
    records = listed(provider(sim))
    out, into = records["1"], records["2"]
    assert (out.rep_email, out.rep_name, out.rep_provider_id) == (
        "rep1@example.com",
        "Rep One",
        "10",
    )
    assert (out.direction, out.contact_phone) == (Direction.OUTBOUND, "+14155550101")
    assert (into.rep_email, into.direction, into.contact_phone) == (
        "rep2@example.com",
        Direction.INBOUND,
        "+14155550102",
    )
    # The rep's own number is never taken from the call: local presence dials from a pool.
    assert out.rep_phone is None and into.rep_phone is None
    assert out.started_at == at and out.duration_seconds == 60
    # An inbound call is never dialed: its start is when it was answered.
    assert into.started_at == at + timedelta(seconds=5) and into.duration_seconds == 55
    assert out.recording_state is RecordingState.READY
    # One user lookup per Outreach user, however many calls name them.
    assert api.count("/api/v2/users/") == 2


def test_the_listing_asks_outreach_for_the_calls_updated_in_the_window(
    sim: OutreachSimulator,
) -> None:
    listed(provider(sim, page_size=50))
    [request] = sim.api.listing_requests()
    assert request.param("filter[updatedAt]") == "2026-03-02T13:59:59Z..2026-03-02T15:00:01Z"
    assert (request.param("sort"), request.param("count")) == ("updatedAt", "false")
    assert request.param("page[size]") == "50"
    assert request.header("content-type") == "application/vnd.api+json"
    assert (request.header("authorization") or "").startswith("Bearer access-")


def test_every_call_is_listed_once_across_pages_by_the_next_link(sim: OutreachSimulator) -> None:
    for n in range(7):
        sim.api.add_call(outreach_call(n + 1, T0 + timedelta(minutes=n)), AUDIO)
    records = listed(provider(sim, page_size=3))
    assert sorted(records, key=int) == [str(n + 1) for n in range(7)]
    pages = sim.api.listing_requests()
    assert len(pages) == 3
    assert [r.param("page[after]") is not None for r in pages] == [False, True, True]


def test_a_recording_attached_later_lists_the_call_again_ready(sim: OutreachSimulator) -> None:
    at = T0 + timedelta(minutes=5)
    sim.api.add_call(outreach_call(1, at))
    adapter = provider(sim)
    assert listed(adapter)["1"].recording_state is RecordingState.PENDING
    sim.api.add_recording(1, AUDIO)  # updatedAt moves to now
    now = datetime.now(UTC)
    later = Window(now - timedelta(minutes=5), now + timedelta(minutes=5))
    assert listed(adapter, later)["1"].recording_state is RecordingState.READY


def test_calls_not_answered_or_not_recorded_have_no_recording_to_wait_for(
    sim: OutreachSimulator,
) -> None:
    at = T0 + timedelta(minutes=1)
    sim.api.add_call(outreach_call(1, at, outcome="Not Answered"))
    sim.api.add_call(outreach_call(2, at, should_record=False))
    sim.api.add_call(outreach_call(3, at))
    states = {cid: r.recording_state for cid, r in listed(provider(sim)).items()}
    assert states == {
        "1": RecordingState.NONE,
        "2": RecordingState.NONE,
        "3": RecordingState.PENDING,  # answered, recorded, no URL yet: the poll waits for it
    }


def test_a_deleted_user_leaves_the_call_its_outreach_user_id(sim: OutreachSimulator) -> None:
    sim.api.add_call(outreach_call(1, T0 + timedelta(minutes=1), user_id=99), AUDIO)
    [record] = listed(provider(sim)).values()
    assert (record.rep_email, record.rep_provider_id) == (None, "99")


def test_the_recording_is_fetched_fresh_and_without_outreach_credentials(
    sim: OutreachSimulator, tmp_path: Path
) -> None:
    sim.api.add_call(outreach_call(7, T0 + timedelta(minutes=1)), AUDIO)
    adapter = provider(sim)
    [record] = listed(adapter).values()
    assert record.recording_url is not None and record.recording_url.endswith("?[REDACTED]")
    sim.api.media.expire_all()  # the listed URL is dead an hour later

    request = adapter.resolve_download(record)
    assert sim.api.requests[-1].path == "/api/v2/calls/7"
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


def test_a_recording_host_the_config_does_not_allow_is_refused(sim: OutreachSimulator) -> None:
    sim.api.add_call(outreach_call(7, T0 + timedelta(minutes=1)), AUDIO)
    adapter = provider(sim, download_hosts=[])
    [record] = listed(adapter).values()
    with pytest.raises(ProviderRefused, match=r"provider\.download_hosts"):
        adapter.resolve_download(record)


def test_the_refresh_token_is_used_once_and_the_rotated_one_kept(sim: OutreachSimulator) -> None:
    sim.api.add_call(outreach_call(1, T0 + timedelta(minutes=1)), AUDIO)
    store = MemoryOAuthTokenStore()
    seed = sim.api.seed_refresh_token()
    assert list(listed(provider(sim, store, refresh_token=seed))) == ["1"]
    [form] = [r["form"] for r in sim.api.issuer.requests]
    assert form["grant_type"] == "refresh_token" and form["refresh_token"] == seed
    assert (form["client_id"], form["redirect_uri"]) == (CLIENT_ID, REDIRECT_URI)
    # The access token runs out; a restarted adapter refreshes with the rotated token, never
    # the spent seed (which would revoke the whole grant).
    sim.api.issuer.expire_access_tokens()
    assert list(listed(provider(sim, store, refresh_token=seed))) == ["1"]
    assert (sim.api.issuer.refreshes, sim.api.issuer.replays) == (2, 0)


def test_a_refused_refresh_names_the_keys_to_check(sim: OutreachSimulator) -> None:
    with pytest.raises(ProviderAuthError, match=r"provider\.refresh_token") as caught:
        listed(provider(sim, refresh_token="not-a-token", max_retries=0))
    assert "not-a-token" not in str(caught.value)
    with pytest.raises(ProviderAuthError, match=r"provider\.client_id"):
        listed(provider(sim, client_secret="wrong", max_retries=0))


def test_a_429_is_waited_out_and_the_listing_goes_on(sim: OutreachSimulator) -> None:
    sim.api.add_call(outreach_call(1, T0 + timedelta(minutes=1)), AUDIO)
    sim.api.fail("status", status=429, retry_after=7, path="/api/v2/calls")
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)

    settings = OutreachSettings.model_validate(table(sim, sim.api.seed_refresh_token()))
    adapter = OutreachProvider(
        settings,
        retry=RetryPolicy(max_tries=2, sleep=sleep),
        sleep=sleep,
        monotonic=lambda: sum(waits),
        token_store=MemoryOAuthTokenStore(),
    )
    assert list(listed(adapter)) == ["1"]
    assert 429 in sim.api.statuses and 7 in waits


def test_keys_the_profile_fixes_are_refused_by_name(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[provider]\nkind = "outreach"\nauth = "bearer"\ntoken_url = "https://x.example/t"\n'
        '[provider.listing]\npath = "/api/v2/mailings"\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    for key in ("auth", "token_url", "listing"):
        assert f"provider.{key}: fixed by the outreach profile" in caught.value.problems


def test_unset_credentials_are_named_before_any_request() -> None:
    settings = OutreachSettings.model_validate({"kind": "outreach"})
    assert settings.requirements() == [
        "provider.client_id: required: the OAuth app's Application ID",
        "provider.client_secret: required: the OAuth app's Application Secret",
        "provider.redirect_uri: required: the OAuth app's redirect URI",
        "provider.refresh_token: required: the refresh token of the app's authorisation",
    ]
    generic = settings.generic_settings()
    assert settings.api_base_url == "https://api.outreach.io"
    assert generic.token_url == "https://api.outreach.io/oauth/token"


def test_provider_check_lists_with_the_stored_token_and_names_refused_keys(
    sim: OutreachSimulator, engine: Engine
) -> None:
    recent = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    for n in range(3):
        sim.api.add_call(outreach_call(n + 1, recent + timedelta(minutes=n)), mp3_bytes(1))
    seed = sim.api.seed_refresh_token()
    env = {
        f"SIRO_POLLER_PROVIDER__{key.upper()}": str(value)
        for key, value in table(sim, seed, max_retries=0).items()
        if key != "download_hosts"
    }
    env["SIRO_POLLER_DATABASE__URL"] = database_url(engine)
    ok = CliRunner().invoke(main, ["provider", "check"], env=env)
    assert ok.exit_code == 0, ok.output
    assert ok.stdout.strip() == "provider outreach: ok: 3 of 3 records mapped"
    sim.api.issuer.expire_access_tokens()
    again = CliRunner().invoke(main, ["provider", "check"], env=env)
    assert again.exit_code == 0, again.output
    assert sim.api.issuer.replays == 0  # the second check used the rotated token

    # A new seed wins over the stored token; Outreach refuses this one.
    refused = CliRunner().invoke(
        main,
        ["provider", "check"],
        env=env | {"SIRO_POLLER_PROVIDER__REFRESH_TOKEN": "revoked-seed"},
    )
    assert refused.exit_code == 1
    assert "provider outreach: auth:" in refused.stdout
    assert "provider.refresh_token" in refused.stdout
    for secret in (seed, CLIENT_SECRET, "revoked-seed"):
        assert secret not in ok.output + again.output + refused.output


def test_a_poll_stores_every_call_of_a_busy_window(sim: OutreachSimulator, engine: Engine) -> None:
    recent = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=40)
    for n in range(25):
        sim.api.add_call(outreach_call(n + 1, recent + timedelta(seconds=60 * n)))
    seed = sim.api.seed_refresh_token()
    environment = {
        f"SIRO_POLLER_PROVIDER__{key.upper()}": str(value)
        for key, value in table(sim, seed, page_size=4).items()
        if key != "download_hosts"
    }
    environment |= {
        "SIRO_POLLER_DATABASE__URL": database_url(engine),
        "SIRO_POLLER_POLL__INITIAL_LOOKBACK_HOURS": "1",
    }
    result = CliRunner().invoke(main, ["poll"], env=environment)
    assert result.exit_code == 0, result.output
    counts = SqlStore(engine).status(datetime.now(UTC)).counts
    assert sum(counts.values()) == 25
