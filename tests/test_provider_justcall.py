"""The JustCall profile against its simulator on 127.0.0.1: what a user of it would notice."""

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
from poller.adapters.providers.profiles.justcall import JustCallProvider, JustCallSettings
from poller.adapters.providers.registry import build_provider
from poller.config import load_settings
from poller.config_types import ConfigError
from poller.domain.call_record import CallRecord
from poller.domain.states import Direction, RecordingState
from poller.domain.windows import Window
from poller.ports.provider import ProviderAuthError, ProviderPort
from poller.simulators.audio import mp3_bytes
from poller.simulators.justcall_server import (
    API_KEY,
    API_SECRET,
    JustCallSimulator,
    justcall_call,
)
from poller.simulators.kit import AuthCheck, Request
from tests.provider_contract import T0 as CONTRACT_T0
from tests.provider_contract import FakeTime, HttpProviderContract, HttpWorld, ProviderWorld
from tests.provider_contract import listed as listed_pages

T0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
WINDOW = Window(T0, T0 + timedelta(hours=1))
AUDIO = mp3_bytes(1)


@pytest.fixture
def sim() -> Iterator[JustCallSimulator]:
    with JustCallSimulator() as running:
        yield running


def provider(sim: JustCallSimulator, **settings: Any) -> JustCallProvider:
    values = {
        "kind": "justcall",
        "base_url": sim.url,
        "api_key": API_KEY,
        "api_secret": API_SECRET,
        "time_zone": "America/New_York",
        "download_hosts": sim.download_hosts,
        **settings,
    }
    adapter = build_provider(JustCallSettings.model_validate(values))
    assert isinstance(adapter, JustCallProvider)
    return adapter


def listed(adapter: JustCallProvider, window: Window = WINDOW) -> dict[str, CallRecord]:
    pages = list(adapter.list_window(window))
    assert [bad for page in pages for bad in page.malformed] == []
    return {record.provider_call_id: record for page in pages for record in page.records}


def client() -> HttpClient:
    return HttpClient(
        limits=Limits(connect_timeout=2, read_timeout=2, deadline=10, max_body_bytes=1 << 20),
        hosts=HostRules(),
        retry=RetryPolicy.once(),
        user_agent="siro-poller-test",
    )


def test_each_call_is_listed_with_its_rep_contact_and_recording(sim: JustCallSimulator) -> None:
    at = T0 + timedelta(minutes=5, seconds=7)  # 09:05:07 in New York: an unpadded hour
    sim.api.add_call(justcall_call(1, at, contact_number="+14155550101"), AUDIO)
    sim.api.add_call(
        justcall_call(
            2,
            at,
            agent_id=1309,
            agent_email="rep2@example.com",
            agent_name="Rep Two",
            direction="Incoming",
            contact_number="+14155550102",
            contact_name="Pat Buyer",
            duration=95,
        ),
        AUDIO,
    )
    records = listed(provider(sim))
    out, into = records["1"], records["2"]
    assert (out.rep_email, out.rep_name, out.rep_provider_id) == (
        "rep1@example.com",
        "Rep One",
        "1308",
    )
    assert (out.direction, out.contact_phone) == (Direction.OUTBOUND, "+14155550101")
    assert (into.direction, into.contact_phone, into.contact_name) == (
        Direction.INBOUND,
        "+14155550102",
        "Pat Buyer",
    )
    # The JustCall line is shared by the agents on it: never the rep's phone.
    assert out.rep_phone is None
    assert out.started_at == at and into.duration_seconds == 95
    assert out.recording_state is RecordingState.READY


def test_the_window_is_asked_for_in_the_accounts_zone_and_every_page_is_read(
    sim: JustCallSimulator,
) -> None:
    for n in range(5):
        sim.api.add_call(justcall_call(n + 1, T0 + timedelta(minutes=n)), AUDIO)
    assert set(listed(provider(sim, page_size=2))) == {"1", "2", "3", "4", "5"}
    listings = [r for r in sim.api.requests if r.path == "/v2.1/calls"]
    assert len(listings) == 3  # pages of 2, 2 and 1; the last has no next_page_link
    first = listings[0]
    # 14:00 UTC is 09:00 in New York, written as JustCall takes it (no T, no offset).
    assert first.param("from_datetime") == "2026-03-02 08:59:59"
    assert first.param("to_datetime") == "2026-03-02 10:00:01"
    assert (first.param("sort"), first.param("order"), first.param("per_page")) == (
        "datetime",
        "asc",
        "2",
    )
    assert first.header("authorization") == f"{API_KEY}:{API_SECRET}"
    # The following pages are the links JustCall gave, on its own host.
    assert [r.param("page") for r in listings[1:]] == ["2", "3"]


def test_the_simulator_refuses_what_justcall_refuses(sim: JustCallSimulator) -> None:
    url = f"{sim.url}/v2.1/calls"
    auth = {"Authorization": f"{API_KEY}:{API_SECRET}"}
    good = {"from_datetime": "2026-03-02 09:00:00", "to_datetime": "2026-03-02 10:00:00"}
    assert requests.get(url, params=good, headers=auth, timeout=5).status_code == 200
    for wrong in ("2026-03-02T09:00:00", "2026-03-02 09:00:00+00:00", "2026-03-02T14:00:00Z"):
        answer = requests.get(url, params=good | {"from_datetime": wrong}, headers=auth, timeout=5)
        assert answer.status_code == 400 and answer.json()["status"] == "error"
    too_big = requests.get(url, params={"per_page": "101"}, headers=auth, timeout=5)
    assert too_big.status_code == 400
    basic = requests.get(url, auth=(API_KEY, API_SECRET), timeout=5)
    assert basic.status_code == 401  # the key and secret raw, never HTTP Basic


def test_calls_that_never_connected_have_no_recording_to_wait_for(sim: JustCallSimulator) -> None:
    at = T0 + timedelta(minutes=1)
    for n, kind in enumerate(("Missed", "Busy", "Abandoned before ringing", "Unanswered")):
        sim.api.add_call(justcall_call(n + 1, at, kind=kind, direction="Incoming"))
    sim.api.add_call(justcall_call(9, at))  # answered, its recording not there yet
    states = {cid: r.recording_state for cid, r in listed(provider(sim)).items()}
    assert states == {
        "1": RecordingState.NONE,
        "2": RecordingState.NONE,
        "3": RecordingState.NONE,
        "4": RecordingState.NONE,
        "9": RecordingState.PENDING,
    }


def test_the_recording_link_is_followed_without_the_accounts_key(
    sim: JustCallSimulator, tmp_path: Path
) -> None:
    sim.api.add_call(justcall_call(7, T0 + timedelta(minutes=1)), AUDIO)
    adapter = provider(sim)
    [record] = listed(adapter).values()
    request = adapter.resolve_download(record)
    Downloader(client(), max_bytes=1 << 20).fetch(request, tmp_path / "call.mp3")
    assert (tmp_path / "call.mp3").read_bytes() == AUDIO
    [link] = [r for r in sim.api.web.requests if r.path.startswith("/rec-redirect/")]
    [media] = [r for r in sim.api.media.requests if r.path.startswith("/media/")]
    assert link.header("authorization") is None and media.header("authorization") is None


def test_a_wrong_time_zone_is_reported_once(
    sim: JustCallSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    for n in range(3):
        sim.api.add_call(justcall_call(n + 1, T0 + timedelta(hours=6, minutes=n)), AUDIO)
    adapter = provider(sim, time_zone="UTC")  # the account is in New York
    with caplog.at_level(logging.WARNING):
        # Asked for 14:00-22:00 "UTC", JustCall reads 19:00-03:00 UTC: only the calls at 20:00.
        assert len(listed(adapter, Window(T0, T0 + timedelta(hours=8)))) == 3
    [warning] = [r.getMessage() for r in caplog.records if "time zone" in r.getMessage()]
    assert "UTC-05:00" in warning and "provider.time_zone = 'UTC' is UTC+00:00" in warning


def test_a_refused_key_names_both_secrets_and_shows_neither(sim: JustCallSimulator) -> None:
    with pytest.raises(ProviderAuthError) as caught:
        listed(provider(sim, api_secret="not-the-secret", max_retries=0))
    message = str(caught.value)
    assert "check provider.api_key, provider.api_secret" in message
    assert "not-the-secret" not in message and API_KEY not in message
    adapter = provider(sim)
    assert {API_KEY, API_SECRET, f"{API_KEY}:{API_SECRET}"} <= set(adapter.http.secrets())


def test_unset_keys_are_named_before_any_request() -> None:
    settings = JustCallSettings.model_validate({"kind": "justcall"})
    assert settings.requirements() == [
        "provider.api_key: required: the JustCall API key",
        "provider.api_secret: required: its secret",
        "provider.time_zone: required: the account's time zone in JustCall "
        '(e.g. "America/New_York"), in which it reads the listing\'s times',
    ]
    assert settings.api_base_url == "https://api.justcall.io"
    with pytest.raises(ValueError, match="time_zone"):
        JustCallSettings.model_validate({"kind": "justcall", "time_zone": "Mars/Olympus"})


def test_keys_the_profile_fixes_are_refused_by_name(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[provider]\nkind = "justcall"\ntime_zone = "UTC"\nauth = "basic"\n'
        '[provider.listing]\ntime_format = "iso8601"\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert "provider.auth: fixed by the justcall profile" in caught.value.problems
    assert "provider.listing: fixed by the justcall profile" in caught.value.problems


# -- the provider contract -----------------------------------------------------------------


class RevokedAfter:
    """JustCall's key check, until the account's key is deleted after ``uses`` requests."""

    def __init__(self, check: AuthCheck, uses: int) -> None:
        self.check, self.left = check, uses

    def accepts(self, request: Request) -> bool:
        self.left -= 1
        return self.left >= 0 and self.check.accepts(request)


class JustCallWorld(HttpWorld):
    """The simulator on the adapter's clock, so its per-minute budget passes in no real time."""

    static_credentials = True

    def __init__(self) -> None:
        self.waits: list[float] = []
        self.time = FakeTime()
        self.sim = JustCallSimulator(clock=self.time)

    def __enter__(self) -> JustCallWorld:
        self.sim.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sim.__exit__(None, None, None)

    def provider(self, *, max_pages: int | None = None) -> ProviderPort:
        settings = JustCallSettings.model_validate(
            {
                "kind": "justcall",
                "base_url": self.sim.url,
                "api_key": API_KEY,
                "api_secret": API_SECRET,
                "time_zone": "America/New_York",
                "page_size": self.page_size,
                "download_hosts": self.sim.download_hosts,
                "requests_per_minute": None,
            }
        )
        retry = RetryPolicy(max_tries=3, base_delay=0.0, max_delay=5.0, sleep=self.retry_sleep)
        adapter = JustCallProvider(
            settings, retry=retry, sleep=self.time.sleep, monotonic=self.time
        )
        if max_pages is not None:
            adapter.max_pages = lambda: max_pages  # type: ignore[method-assign]
        return adapter

    # Contract names ("c0001") stand in for JustCall's numeric ids: read as text either way.
    def add_call(
        self, call_id: str, at: datetime, *, recording: bool = True, signed: bool = False
    ) -> None:
        record = justcall_call(0, at) | {"id": call_id, "call_sid": f"CA{call_id}"}
        self.sim.api.add_call(record, AUDIO if recording else None)

    def add_recording(self, call_id: str) -> None:
        self.sim.api.add_recording(call_id, AUDIO)  # type: ignore[arg-type]

    def add_malformed(self, call_id: str, at: datetime) -> None:
        record = justcall_call(0, at) | {"id": call_id, "call_sid": f"CA{call_id}"}
        self.sim.api.add_call(record)
        record["call_date"] = "the day before yesterday"  # after the simulator filed it by time

    def fail_listing(
        self, status: int, *, times: int | None = 1, retry_after: str | None = None
    ) -> None:
        wait = int(retry_after) if retry_after is not None else None
        self.sim.api.fail("status", status=status, retry_after=wait, times=times, path="/v2.1")

    def loop_paging(self, at_page: int) -> None:
        self.sim.api.loop_from_page = at_page

    def listing_requests(self) -> int:
        return self.sim.api.count("/v2.1/calls")

    def redirect_listing_to(self, url: str) -> None:
        self.sim.api.fail("redirect", location=url, times=None, path="/v2.1/calls")

    def next_page_on(self, base_url: str) -> None:
        self.sim.api.next_link_base = base_url

    def expire_tokens_after(self, uses: int) -> ProviderPort:
        assert self.sim.api.auth is not None
        self.sim.api.auth = RevokedAfter(self.sim.api.auth, uses)
        return self.provider()

    def tokens_minted(self) -> int:
        return 0


class TestJustCall(HttpProviderContract):
    @pytest.fixture
    def world(self) -> Iterator[JustCallWorld]:
        with JustCallWorld() as running:
            yield running

    def test_a_signed_recording_url_is_never_stored_but_still_downloads(
        self, world: ProviderWorld
    ) -> None:
        # JustCall's recording links carry no signature (its document's example, and every call
        # the simulator serves); the contract's signed link has no JustCall counterpart.
        world.add_call("plain", CONTRACT_T0 + timedelta(minutes=5))
        provider = world.provider()
        [record] = [record for page in listed_pages(provider) for record in page.records]
        assert record.recording_url is not None and "?" not in record.recording_url
        assert record.recording_state is RecordingState.READY
