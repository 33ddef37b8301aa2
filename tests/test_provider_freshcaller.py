"""The Freshcaller profile against its simulator on 127.0.0.1: what a user of it would notice."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from poller.adapters.downloader import Downloader
from poller.adapters.http import HostRules, HttpClient, Limits, RetryPolicy
from poller.adapters.providers.profiles.freshcaller import (
    FreshcallerProvider,
    FreshcallerSettings,
)
from poller.adapters.providers.registry import build_provider
from poller.config import load_settings
from poller.config_types import ConfigError
from poller.domain.call_record import CallRecord
from poller.domain.failures import StepFailure
from poller.domain.states import Direction, RecordingState
from poller.domain.windows import Window
from poller.ports.provider import ProviderAuthError, ProviderPort
from poller.simulators.audio import mp3_bytes
from poller.simulators.counting_listener import CountingListener
from poller.simulators.freshcaller_server import API_KEY, FreshcallerSimulator, freshcaller_call
from poller.simulators.kit import AuthCheck, Request
from tests.provider_contract import (
    SIGNATURE,
    FakeTime,
    HttpProviderContract,
    HttpWorld,
    call_ids,
    seed,
)
from tests.provider_contract import listed as listed_pages

T0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
WINDOW = Window(T0, T0 + timedelta(hours=1))
AUDIO = mp3_bytes(1)


@pytest.fixture
def sim() -> Iterator[FreshcallerSimulator]:
    with FreshcallerSimulator() as running:
        running.api.add_user(10, "rep1@example.com", "Rep One")
        running.api.add_user(11, "rep2@example.com", "Rep Two")
        yield running


def provider(sim: FreshcallerSimulator, **settings: Any) -> FreshcallerProvider:
    values = {
        "kind": "freshcaller",
        "base_url": sim.url,
        "api_key": API_KEY,
        "download_hosts": [sim.media_host],
        **settings,
    }
    adapter = build_provider(FreshcallerSettings.model_validate(values))
    assert isinstance(adapter, FreshcallerProvider)
    return adapter


def listed(adapter: FreshcallerProvider, window: Window = WINDOW) -> dict[str, CallRecord]:
    pages = list(adapter.list_window(window))
    assert [bad for page in pages for bad in page.malformed] == []
    return {record.provider_call_id: record for page in pages for record in page.records}


def test_each_call_is_listed_with_its_rep_contact_and_recording(
    sim: FreshcallerSimulator,
) -> None:
    api = sim.api
    at = T0 + timedelta(minutes=5)
    api.add_call(freshcaller_call(1, at, customer_number="+14155550101"), AUDIO)
    api.add_call(
        freshcaller_call(
            2,
            at,
            agent_id=11,
            agent_name="Rep Two",
            direction="incoming",
            customer_number="+14155550102",
            customer_name="Pat Buyer",
            duration=95,
        ),
        AUDIO,
    )
    records = listed(provider(sim))
    out, into = records["1"], records["2"]
    assert (out.rep_email, out.rep_name, out.rep_provider_id) == (
        "rep1@example.com",
        "Rep One",
        "10",
    )
    assert (out.direction, out.contact_phone) == (Direction.OUTBOUND, "+14155550101")
    assert (into.rep_email, into.direction, into.contact_phone, into.contact_name) == (
        "rep2@example.com",
        Direction.INBOUND,
        "+14155550102",
        "Pat Buyer",
    )
    # The account's line is shared by every agent on it: never the rep's phone.
    assert out.rep_phone is None and into.rep_phone is None
    assert out.started_at == at and into.duration_seconds == 95
    assert out.recording_state is RecordingState.READY
    # The user list is read once, however many calls name its agents.
    assert api.count("/api/v1/users") == 1


def test_the_listing_asks_for_the_window_in_utc_with_z_and_walks_every_page(
    sim: FreshcallerSimulator,
) -> None:
    for n in range(5):
        sim.api.add_call(freshcaller_call(n + 1, T0 + timedelta(minutes=n)), AUDIO)
    assert set(listed(provider(sim, page_size=2))) == {"1", "2", "3", "4", "5"}
    listings = [r for r in sim.api.requests if r.path == "/api/v1/calls"]
    # Three pages of two, then the body's total_pages ends it: no fourth request.
    assert [r.param("page") for r in listings] == ["1", "2", "3"]
    first = listings[0]
    assert first.param("by_time[from]") == "2026-03-02T13:59:59Z"
    assert first.param("by_time[to]") == "2026-03-02T15:00:01Z"
    assert first.param("per_page") == "2"
    assert first.header("x-api-auth") == API_KEY
    assert first.header("accept") == "application/json"


def test_the_simulator_refuses_what_freshcaller_refuses(sim: FreshcallerSimulator) -> None:
    url = f"{sim.url}/api/v1/calls"
    headers = {"X-Api-Auth": API_KEY, "Accept": "application/json"}
    window = {"by_time[from]": "2026-03-02T14:00:00Z", "by_time[to]": "2026-03-02T15:00:00Z"}
    assert requests.get(url, params=window, headers=headers, timeout=5).status_code == 200
    offset = window | {"by_time[from]": "2026-03-02T14:00:00+00:00"}
    refused = requests.get(url, params=offset, headers=headers, timeout=5)
    assert refused.status_code == 422 and refused.json()["error_type"] == "invalid_value"
    too_big = requests.get(url, params={"per_page": "1001"}, headers=headers, timeout=5)
    assert too_big.status_code == 422
    any_type = requests.get(url, headers={"X-Api-Auth": API_KEY, "Accept": "*/*"}, timeout=5)
    assert any_type.status_code == 404
    assert requests.get(url, headers={"Accept": "application/json"}, timeout=5).status_code == 401


def test_the_recording_is_fetched_fresh_and_its_file_without_the_key(
    sim: FreshcallerSimulator, tmp_path: Path
) -> None:
    sim.api.add_call(freshcaller_call(7, T0 + timedelta(minutes=1)), AUDIO)
    adapter = provider(sim)
    [record] = listed(adapter).values()
    sim.api.media.expire_all()  # whatever the listing pointed at has expired since

    request = adapter.resolve_download(record)
    assert sim.api.requests[-1].path == "/api/v1/calls/7"
    assert sim.media_host not in request.credential_hosts
    client = HttpClient(
        limits=Limits(connect_timeout=2, read_timeout=2, deadline=10, max_body_bytes=1 << 20),
        hosts=HostRules(),
        retry=RetryPolicy.once(),
        user_agent="siro-poller-test",
    )
    Downloader(client, max_bytes=1 << 20).fetch(request, tmp_path / "call.mp3")
    assert (tmp_path / "call.mp3").read_bytes() == AUDIO
    # The key went to the account's host, which redirected; the file's host never saw it.
    [recording] = [r for r in sim.api.requests if "/recordings/" in r.path]
    assert recording.header("x-api-auth") == API_KEY
    [media] = [r for r in sim.api.media.requests if r.path.startswith("/media/")]
    assert media.header("x-api-auth") is None and media.header("authorization") is None


def test_a_recording_host_the_config_does_not_allow_is_refused(
    sim: FreshcallerSimulator, tmp_path: Path
) -> None:
    sim.api.add_call(freshcaller_call(7, T0 + timedelta(minutes=1)), AUDIO)
    adapter = provider(sim, download_hosts=[])
    [record] = listed(adapter).values()
    request = adapter.resolve_download(record)
    client = HttpClient(
        limits=Limits(connect_timeout=2, read_timeout=2, deadline=10, max_body_bytes=1 << 20),
        hosts=HostRules(),
        retry=RetryPolicy.once(),
        user_agent="siro-poller-test",
    )
    with pytest.raises(StepFailure, match=r"provider\.download_hosts"):
        Downloader(client, max_bytes=1 << 20).fetch(request, tmp_path / "call.mp3")
    assert sim.api.media.count("/media/") == 0


def test_a_call_listed_before_its_recording_waits_for_it(sim: FreshcallerSimulator) -> None:
    sim.api.add_call(freshcaller_call(1, T0 + timedelta(minutes=1)))  # recorded, processing
    sim.api.add_call(freshcaller_call(2, T0 + timedelta(minutes=2), recorded=False))
    adapter = provider(sim)
    states = {cid: r.recording_state for cid, r in listed(adapter).items()}
    assert states == {"1": RecordingState.PENDING, "2": RecordingState.PENDING}
    sim.api.add_recording(1, AUDIO)
    assert listed(adapter)["1"].recording_state is RecordingState.READY


def test_an_agent_the_user_list_lacks_keeps_its_id_and_name(sim: FreshcallerSimulator) -> None:
    sim.api.add_call(freshcaller_call(1, T0 + timedelta(minutes=1), agent_id=99), AUDIO)
    sim.api.add_call(freshcaller_call(2, T0 + timedelta(minutes=2), agent_id=None), AUDIO)
    adapter = provider(sim)
    records = listed(adapter)
    assert (records["1"].rep_email, records["1"].rep_provider_id) == (None, "99")
    assert records["1"].rep_name == "Rep One"
    assert records["2"].rep_provider_id is None and records["2"].rep_email is None
    listed(adapter)  # the same unknown agent again: the list is not read again at once
    assert sim.api.count("/api/v1/users") == 1


def test_a_key_that_may_not_list_users_still_lists_every_call(
    sim: FreshcallerSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    sim.api.users_forbidden = True
    sim.api.add_call(freshcaller_call(1, T0 + timedelta(minutes=1)), AUDIO)
    with caplog.at_level(logging.WARNING):
        [record] = listed(provider(sim)).values()
    assert (record.rep_email, record.rep_provider_id, record.rep_name) == (None, "10", "Rep One")
    assert any("refused the user list (403)" in r.getMessage() for r in caplog.records)
    assert any("provider.api_key" in r.getMessage() for r in caplog.records)


def test_a_429_is_waited_out_as_retry_after_says(sim: FreshcallerSimulator) -> None:
    sim.api.add_call(freshcaller_call(1, T0 + timedelta(minutes=1)), AUDIO)
    sim.api.fail("status", status=429, retry_after=7, path="/api/v1/calls")
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)

    settings = FreshcallerSettings.model_validate(
        {"kind": "freshcaller", "base_url": sim.url, "api_key": API_KEY}
    )
    retry = RetryPolicy(max_tries=2, sleep=sleep)
    adapter = FreshcallerProvider(settings, retry=retry, sleep=sleep, monotonic=lambda: sum(waits))
    assert list(listed(adapter)) == ["1"]
    assert sim.api.statuses[:2] == [429, 200] and max(waits) >= 7


def test_a_refused_api_key_names_the_key_to_check(sim: FreshcallerSimulator) -> None:
    with pytest.raises(ProviderAuthError, match=r"check provider\.api_key") as caught:
        listed(provider(sim, api_key="not-the-key", max_retries=0))
    assert "not-the-key" not in str(caught.value)


def test_the_subdomain_names_the_account_host_and_unset_keys_are_named() -> None:
    settings = FreshcallerSettings.model_validate({"kind": "freshcaller"})
    assert settings.requirements() == [
        "provider.subdomain: required: the account's subdomain (acme for acme.freshcaller.com)",
        "provider.api_key: required: the Freshcaller API key",
    ]
    for written in ("acme", "ACME.freshcaller.com", "https://acme.freshcaller.com/"):
        chosen = FreshcallerSettings.model_validate(
            {"kind": "freshcaller", "subdomain": written, "api_key": "k"}
        )
        assert chosen.api_base_url == "https://acme.freshcaller.com"
    adapter = build_provider(chosen)
    # Freshcaller's host is no host the operator vouched for: it may not resolve privately.
    assert "acme.freshcaller.com" in adapter.hosts.credential_hosts
    assert not adapter.hosts.is_explicit("acme.freshcaller.com")
    with pytest.raises(ValueError, match="subdomain"):
        FreshcallerSettings.model_validate({"kind": "freshcaller", "subdomain": "acme.evil/x"})
    hooked = FreshcallerSettings.model_validate(
        {"kind": "freshcaller", "subdomain": "acme", "api_key": "k", "webhook": {"enabled": True}}
    )
    [missing] = hooked.requirements()
    assert missing.startswith("provider.webhook.secret: ")


def test_keys_the_profile_fixes_are_refused_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[provider]\nkind = "freshcaller"\nsubdomain = "acme"\napi_key_header = "X-Key"\n'
        '[provider.paging]\nmode = "token"\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert "provider.api_key_header: fixed by the freshcaller profile" in caught.value.problems
    assert "provider.paging: fixed by the freshcaller profile" in caught.value.problems
    monkeypatch.setenv("SIRO_POLLER_PROVIDER__PAGE_SIZE", "5000")
    config.write_text('[provider]\nkind = "freshcaller"\nsubdomain = "acme"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"provider\.page_size"):
        load_settings(config)


# -- the provider contract -----------------------------------------------------------------


class RevokedAfter:
    """Freshcaller's key check, until the key is regenerated after ``uses`` requests."""

    def __init__(self, check: AuthCheck, uses: int) -> None:
        self.check, self.left = check, uses

    def accepts(self, request: Request) -> bool:
        self.left -= 1
        return self.left >= 0 and self.check.accepts(request)


class FreshcallerWorld(HttpWorld):
    """The simulator on the adapter's clock, so its per-minute budget passes in no real time.
    Its calls name no agent: the contract counts listing requests, not user-list reads."""

    static_credentials = True
    newest_first = True

    def __init__(self) -> None:
        self.waits: list[float] = []
        self.time = FakeTime()
        self.sim = FreshcallerSimulator(clock=self.time)

    def __enter__(self) -> FreshcallerWorld:
        self.sim.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sim.__exit__(None, None, None)

    def provider(self, *, max_pages: int | None = None) -> ProviderPort:
        settings = FreshcallerSettings.model_validate(
            {
                "kind": "freshcaller",
                "base_url": self.sim.url,
                "api_key": API_KEY,
                "page_size": self.page_size,
                "download_hosts": [self.sim.media_host],
                "requests_per_minute": None,
            }
        )
        retry = RetryPolicy(max_tries=3, base_delay=0.0, max_delay=5.0, sleep=self.retry_sleep)
        adapter = FreshcallerProvider(
            settings, retry=retry, sleep=self.time.sleep, monotonic=self.time
        )
        if max_pages is not None:
            adapter.max_pages = lambda: max_pages  # type: ignore[method-assign]
        return adapter

    # Contract names ("c0001") stand in for Freshcaller's numeric ids: read as text either way.
    def add_call(
        self, call_id: str, at: datetime, *, recording: bool = True, signed: bool = False
    ) -> None:
        record = freshcaller_call(0, at, agent_id=None) | {"id": call_id}
        self.sim.api.add_call(
            record, AUDIO if recording else None, signature=SIGNATURE if signed else None
        )

    def add_recording(self, call_id: str) -> None:
        self.sim.api.add_recording(call_id, AUDIO)

    def add_malformed(self, call_id: str, at: datetime) -> None:
        record = freshcaller_call(0, at, agent_id=None) | {"id": call_id}
        self.sim.api.add_call(record)
        record["created_time"] = "the day before yesterday"  # after the simulator filed it

    def fail_listing(
        self, status: int, *, times: int | None = 1, retry_after: str | None = None
    ) -> None:
        wait = int(retry_after) if retry_after is not None else None
        self.sim.api.fail("status", status=status, retry_after=wait, times=times, path="/api")

    def loop_paging(self, at_page: int) -> None:
        self.sim.api.loop_from_page = at_page

    def listing_requests(self) -> int:
        return len([r for r in self.sim.api.requests if r.path == "/api/v1/calls"])

    def redirect_listing_to(self, url: str) -> None:
        self.sim.api.fail("redirect", location=url, times=None, path="/api/v1/calls")

    def next_page_on(self, base_url: str) -> None:
        raise AssertionError("Freshcaller's pages are numbered; the body names no next URL")

    def expire_tokens_after(self, uses: int) -> ProviderPort:
        assert self.sim.api.auth is not None
        self.sim.api.auth = RevokedAfter(self.sim.api.auth, uses)
        return self.provider()

    def tokens_minted(self) -> int:
        return 0


class TestFreshcaller(HttpProviderContract):
    @pytest.fixture
    def world(self) -> Iterator[FreshcallerWorld]:
        with FreshcallerWorld() as running:
            yield running

    def test_credentials_never_go_to_a_next_page_on_another_host(
        self, world: HttpWorld, elsewhere: CountingListener
    ) -> None:
        # Freshcaller's next page is the same request with the next page number: the body
        # names no URL another host could be put in. Every page goes to the account's host.
        ids = seed(world, world.page_size * 2)
        assert sorted(call_ids(listed_pages(world.provider()))) == ids
        assert elsewhere.connections == 0
