"""The Aircall adapter against the Aircall simulator: the provider contract, then Aircall's own
rules (mapping, the 10,000-row cap, signed recording URLs, the rate-limit headers)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from poller.adapters.downloader import Downloader
from poller.adapters.http import HostRules, HttpClient, Limits, RetryPolicy
from poller.adapters.providers.aircall import AircallProvider, AircallSettings
from poller.adapters.sql import migrate
from poller.adapters.sql.database import make_engine
from poller.adapters.sql.store import SqlStore
from poller.cli import main
from poller.config import ConfigError, Settings, load_settings, provider_problems
from poller.core.poll import poll_once
from poller.domain.states import Direction, RecordingState
from poller.domain.windows import Window
from poller.ports.provider import (
    PermanentProviderError,
    ProviderAuthError,
    ProviderPort,
    ProviderRefused,
    TransientProviderError,
)
from poller.simulators.aircall_server import (
    ROW_CAP,
    AircallSimulator,
    aircall_call,
    aircall_contact,
)
from poller.wiring import poll_params_from_settings
from tests.provider_contract import (
    SIGNATURE,
    T0,
    WINDOW,
    FakeTime,
    HttpProviderContract,
    HttpWorld,
    ListedPage,
    call_ids,
    listed,
    seed,
)
from tests.seed import AnyStore

API_ID = "aircall-api-id"
API_TOKEN = "aircall-api-token-0001"
AUDIO = b"ID3" + b"\x00" * 64


class AircallWorld(HttpWorld):
    """The simulator on a clock frozen to a whole second, so a 429's reset is exact.

    Not frozen, the simulator's clock is the real one moved on by the adapter's sleeps, so a
    window's reset it waits for passes in no real time.
    """

    def __init__(self, *, frozen: bool = True, **simulator: Any) -> None:
        now = datetime.now(UTC).replace(microsecond=0)
        self.now = now
        self.waits: list[float] = []
        self.time = FakeTime()
        self.slept_from = self.time.now
        clock = (lambda: now.timestamp()) if frozen else (lambda: self.wall_clock().timestamp())
        self.sim = AircallSimulator(API_ID, API_TOKEN, clock=clock, **simulator)
        self.frozen = frozen

    def wall_clock(self) -> datetime:
        if self.frozen:
            return self.now
        return datetime.now(UTC) + timedelta(seconds=self.time.now - self.slept_from)

    def __enter__(self) -> AircallWorld:
        self.sim.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sim.__exit__(None, None, None)

    def settings(self, **overrides: Any) -> AircallSettings:
        values: dict[str, Any] = {
            "base_url": self.sim.url,
            "api_id": API_ID,
            "api_token": API_TOKEN,
            "per_page": self.page_size,
            # The storage host of the signed URLs is, here, another local port.
            "download_hosts": [self.sim.media_host],
            **overrides,
        }
        return AircallSettings.model_validate(values)

    def retry(self) -> RetryPolicy:
        return RetryPolicy(max_tries=3, base_delay=0.0, max_delay=5.0, sleep=self.retry_sleep)

    def provider(self, *, max_pages: int | None = None, **overrides: Any) -> AircallProvider:
        adapter = AircallProvider(
            self.settings(**overrides),
            retry=self.retry(),
            clock=self.wall_clock,
            sleep=self.time.sleep,
            monotonic=self.time,
        )
        if max_pages is not None:
            adapter.max_pages = lambda: max_pages  # type: ignore[method-assign]
        return adapter

    # Contract names ("c0001") stand in for Aircall's numeric ids, which the adapter reads as
    # text either way.
    def add_call(
        self, call_id: str, at: datetime, *, recording: bool = True, signed: bool = False
    ) -> None:
        record = aircall_call(0, at)
        record["id"] = call_id
        self.sim.api.add_call(
            record,
            recording=AUDIO if recording else None,
            signature=SIGNATURE.split("=", 1)[1] if signed else None,
        )

    def add_recording(self, call_id: str) -> None:
        self.sim.api.add_recording(call_id, AUDIO)

    def add_malformed(self, call_id: str, at: datetime) -> None:
        record = aircall_call(0, at)
        record["id"] = call_id
        record["started_at"] = "the day before yesterday"
        self.sim.api.add_call(record, created_at=int(at.timestamp()))

    def fail_listing(
        self, status: int, *, times: int | None = 1, retry_after: str | None = None
    ) -> None:
        # Aircall's 429 names its wait in X-AircallApi-Reset, not Retry-After.
        reset_in = int(retry_after) if retry_after is not None else None
        self.sim.api.fail_listing(status, times=times, reset_in=reset_in)

    def loop_paging(self, at_page: int) -> None:
        self.sim.api.loop_from_page = at_page

    def listing_requests(self) -> int:
        return len(self.sim.api.listing_requests())

    def redirect_listing_to(self, url: str) -> None:
        self.sim.api.redirect_listing_to = url

    def next_page_on(self, base_url: str) -> None:
        self.sim.api.next_link_base = base_url

    def expire_tokens_after(self, uses: int) -> ProviderPort:
        # Aircall's API key does not expire; it can be deleted. See the test below.
        self.sim.api.revoke_after = uses
        return self.provider()

    def tokens_minted(self) -> int:
        return 0


@pytest.fixture
def world() -> Iterator[AircallWorld]:
    with AircallWorld() as running:
        yield running


class TestAircall(HttpProviderContract):
    @pytest.fixture
    def world(self) -> Iterator[AircallWorld]:
        with AircallWorld() as running:
            yield running

    def test_a_token_that_expires_mid_window_is_minted_again(self, world: HttpWorld) -> None:
        # Aircall signs every request with the same static key: nothing to mint. What can happen
        # is a key deleted in the dashboard mid-window; then the listing stops with an auth
        # error naming the keys to fix, after the pages that did arrive.
        ids = seed(world, world.page_size * 2 + 3)
        provider = world.expire_tokens_after(uses=2)
        pages: list[ListedPage] = []
        with pytest.raises(ProviderAuthError) as raised:
            for page in provider.list_window(WINDOW):
                pages.append(page)
        assert call_ids(pages) == ids[: world.page_size * 2]
        assert "provider.api_token" in str(raised.value)
        assert API_TOKEN not in str(raised.value)


# -- the requests and the mapping ----------------------------------------------------------


def _basic() -> str:
    return "Basic " + base64.b64encode(f"{API_ID}:{API_TOKEN}".encode()).decode()


def test_the_listing_asks_for_the_window_in_unix_seconds_oldest_first_50_a_page(
    world: AircallWorld,
) -> None:
    world.sim.api.add_call(aircall_call(1, T0 + timedelta(minutes=5)), recording=AUDIO)
    listed(world.provider(per_page=50))
    [request] = world.sim.api.listing_requests()
    assert request["headers"]["Authorization"] == _basic()
    query = request["query"]
    assert (query["order"], query["per_page"], query["fetch_contact"]) == ("asc", "50", "true")
    # One second of margin each side; the boundary rule dedupes what two windows share.
    assert int(query["from"]) == int(WINDOW.start.timestamp()) - 1
    assert int(query["to"]) == int(WINDOW.end.timestamp()) + 1


def aircall_env(monkeypatch: pytest.MonkeyPatch, **values: str) -> Settings:
    monkeypatch.setenv("SIRO_POLLER_PROVIDER__KIND", "aircall")
    for key, value in values.items():
        monkeypatch.setenv(f"SIRO_POLLER_PROVIDER__{key.upper()}", value)
    return load_settings()


def test_a_page_size_above_aircalls_maximum_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ConfigError) as raised:
        aircall_env(monkeypatch, api_id="id", per_page="51")
    assert str(raised.value).count("provider.per_page") == 1
    assert "less than or equal to 50" in str(raised.value)


def test_a_misspelt_kind_names_the_kinds_there_are(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[[providers]]\nname = "east"\nkind = "aircal"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_settings(config)
    problem = str(raised.value)
    assert problem.startswith("providers.east.kind: unknown kind 'aircal'; the kinds are ")
    assert "aircall" in problem.split("the kinds are ")[1].split(", ")


def test_missing_api_credentials_are_named_with_where_to_set_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = aircall_env(monkeypatch)
    assert provider_problems(settings.provider) == [
        "provider.api_id: required to sign in to Aircall; set SIRO_POLLER_PROVIDER__API_ID",
        "provider.api_token: required to sign in to Aircall; set SIRO_POLLER_PROVIDER__API_TOKEN"
        " or the credential file provider.api_token",
    ]


def test_rep_contact_direction_and_times_come_from_the_call_object(
    world: AircallWorld,
) -> None:
    at = T0 + timedelta(minutes=3)
    contact = aircall_contact("Jane", "Smith", "+1 555-123-4567")
    world.sim.api.add_call(
        aircall_call(
            812345,
            at,
            direction="inbound",
            duration=125,
            user={"id": 77, "name": "Ana Rep", "email": "ana@example.com"},
            raw_digits="+1 415-555-0100",
            contact=contact,
        ),
        recording=AUDIO,
    )
    [record] = [r for page in listed(world.provider()) for r in page.records]
    assert record.provider_call_id == "812345"
    assert record.started_at == at
    assert record.ended_at == at + timedelta(seconds=125)
    assert record.duration_seconds == 125
    assert record.direction is Direction.INBOUND
    assert (record.rep_email, record.rep_name, record.rep_provider_id) == (
        "ana@example.com",
        "Ana Rep",
        "77",
    )
    assert record.rep_phone == "+1 415-555-0199"  # the Aircall line
    assert (record.contact_name, record.contact_phone) == ("Jane Smith", "+1 415-555-0100")
    assert record.recording_state is RecordingState.READY


def test_an_anonymous_caller_falls_back_to_the_contacts_number_and_no_contact_is_fine(
    world: AircallWorld,
) -> None:
    contact = aircall_contact("", "", "+44 20 7946 0000", company="Globex")
    world.sim.api.add_call(
        aircall_call(1, T0 + timedelta(minutes=1), raw_digits="anonymous", contact=contact),
        recording=AUDIO,
    )
    world.sim.api.add_call(
        aircall_call(2, T0 + timedelta(minutes=2), direction="outbound", user={}), recording=AUDIO
    )
    first, second = [r for page in listed(world.provider()) for r in page.records]
    assert (first.contact_name, first.contact_phone) == ("Globex", "+44 20 7946 0000")
    assert (second.contact_name, second.contact_phone) == (None, "+1 415-555-0100")
    assert second.direction is Direction.OUTBOUND
    assert second.rep_email is None


def test_missed_calls_are_never_recorded_and_answered_ones_wait_for_their_recording(
    world: AircallWorld,
) -> None:
    api = world.sim.api
    api.add_call(aircall_call(1, T0 + timedelta(minutes=1), answered=False))
    api.add_call(aircall_call(2, T0 + timedelta(minutes=2)))  # answered, recording not yet
    api.add_call(aircall_call(3, T0 + timedelta(minutes=3), status="answered"))  # ongoing
    states = {
        r.provider_call_id: r.recording_state for p in listed(world.provider()) for r in p.records
    }
    assert states == {
        "1": RecordingState.NONE,
        "2": RecordingState.PENDING,
        "3": RecordingState.PENDING,
    }


def test_a_record_with_an_unreadable_time_is_reported_with_the_field_and_the_call(
    world: AircallWorld,
) -> None:
    record = aircall_call(5, T0 + timedelta(minutes=1))
    record["ended_at"] = "soon"
    world.sim.api.add_call(record, created_at=int((T0 + timedelta(minutes=1)).timestamp()))
    [page] = listed(world.provider())
    [error] = page.malformed
    assert error.call_id == "5"
    assert error.reason.startswith("ended_at")


# -- signed recording URLs -------------------------------------------------------------------


def _downloader() -> Downloader:
    client = HttpClient(
        limits=Limits(connect_timeout=2, read_timeout=2, deadline=10, max_body_bytes=1 << 20),
        hosts=HostRules(),
        retry=RetryPolicy.once(),
        user_agent="siro-poller-test",
    )
    return Downloader(client, max_bytes=1 << 20)


def test_an_expired_signed_url_is_never_used_the_call_is_read_again_and_fetched_without_the_key(
    world: AircallWorld, tmp_path: Path
) -> None:
    world.sim.api.add_call(aircall_call(7, T0 + timedelta(minutes=1)), recording=AUDIO)
    provider = world.provider()
    [record] = [r for page in listed(provider) for r in page.records]
    assert record.recording_url is not None
    assert "X-Amz-Signature=[REDACTED]" in record.recording_url
    assert world.sim.media.grants and not any(
        signature in f"{record.raw} {record.recording_url}" for signature in world.sim.media.grants
    )
    world.sim.media.expire_all()  # an hour later: every URL the listing carried is dead

    request = provider.resolve_download(record)
    assert world.sim.api.requests[-1]["path"] == "/v1/calls/7"
    assert request.headers == {} and request.credential_hosts == frozenset()
    fetched = _downloader().fetch(request, tmp_path / "call.mp3")
    assert (tmp_path / "call.mp3").read_bytes() == AUDIO
    assert fetched.size_bytes == len(AUDIO)
    [media_request] = world.sim.media.requests
    assert "Authorization" not in media_request["headers"]


def test_a_call_whose_recording_is_gone_on_refetch_is_retried_later(world: AircallWorld) -> None:
    world.sim.api.add_call(aircall_call(8, T0 + timedelta(minutes=1)), recording=AUDIO)
    provider = world.provider()
    [record] = [r for page in listed(provider) for r in page.records]
    world.sim.api.calls["8"].recording_key = None
    with pytest.raises(TransientProviderError, match="no recording URL"):
        provider.resolve_download(record)


def test_a_signed_url_on_a_host_not_allowed_is_refused_before_any_request(
    world: AircallWorld,
) -> None:
    world.sim.api.add_call(aircall_call(9, T0 + timedelta(minutes=1)), recording=AUDIO)
    provider = world.provider(download_hosts=[])
    [record] = [r for page in listed(provider) for r in page.records]
    with pytest.raises(ProviderRefused, match=r"provider\.download_hosts"):
        provider.resolve_download(record)
    assert world.sim.media.requests == []


def test_credentials_go_to_the_api_host_only_and_s3_serves_recordings() -> None:
    adapter = AircallProvider(AircallSettings(api_id="id", api_token="token"))
    assert adapter.hosts.credential_hosts == frozenset({"api.aircall.io"})
    assert adapter.hosts.is_allowed("aircall-recordings.s3.eu-west-1.amazonaws.com")
    assert not adapter.hosts.may_send_credentials("https://bucket.s3.amazonaws.com/x.mp3")


# -- the 10,000-row cap ----------------------------------------------------------------------


def test_the_simulator_caps_a_query_at_10000_rows_as_aircall_does() -> None:
    with AircallWorld(frozen=False, limit=1_000) as world:
        for n in range(ROW_CAP + 30):
            world.sim.api.add_call(aircall_call(n + 1, T0 + timedelta(seconds=n // 10)))
        status, last = world.sim.api.listing({"page": "200", "per_page": "50"}, "http://h")
        assert status == 200 and last["meta"]["next_page_link"] is None
        assert last["meta"]["total"] == ROW_CAP + 30 and last["meta"]["count"] == 50
        status, _ = world.sim.api.listing({"page": "201", "per_page": "50"}, "http://h")
        assert status == 400
        status, _ = world.sim.api.listing({"per_page": "51"}, "http://h")
        assert status == 400


def test_a_busy_window_past_the_row_cap_is_halved_and_every_call_goes_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The real cap is 10,000 (the simulator test above); a small one makes the same point fast.
    cap = 120
    monkeypatch.setattr("poller.adapters.providers.aircall.ROW_CAP", cap)
    calls = cap * 4 + 7
    with AircallWorld(frozen=False, limit=100_000) as world:
        world.sim.api.row_cap = cap
        start = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
        for n in range(calls):
            world.sim.api.add_call(aircall_call(n + 1, start + timedelta(seconds=5 * n)))
        settings = Settings(
            provider={**_kind(world), "requests_per_minute": 100_000, "per_page": 50},
            poll={"start_at": start, "settle_delay_seconds": 0},
        )
        provider = AircallProvider(settings.provider, retry=world.retry())
        assert provider.capabilities.max_rows_per_query == cap
        engine = make_engine(f"sqlite:///{tmp_path / 'state.sqlite3'}")
        migrate.upgrade(engine)
        store = SqlStore(engine)
        now = start + timedelta(hours=1)
        report = poll_once(poll_params_from_settings(settings), provider, store, now)
        assert report.ok, report.error
        assert len(store.list_calls(limit=100_000)) == calls
        # Each query came back at most full: the window was split until each part fit.
        assert report.spans_listed >= 5
        assert all(int(r["query"].get("page", "1")) <= 3 for r in world.sim.api.listing_requests())


def _kind(world: AircallWorld) -> dict[str, Any]:
    return {
        "kind": "aircall",
        "base_url": world.sim.url,
        "api_id": API_ID,
        "api_token": API_TOKEN,
        "download_hosts": [world.sim.media_host],
    }


# -- rate limits -----------------------------------------------------------------------------


def test_an_exhausted_window_pauses_the_listing_until_the_reset_instead_of_earning_a_429() -> None:
    with AircallWorld(frozen=False, limit=2, window_seconds=2) as world:
        seed(world, world.page_size * 3)
        pages = listed(world.provider())
        assert len(call_ids(pages)) == world.page_size * 3
        # No request got a 429: the limiter waited for the window's reset instead.
        assert world.sim.api.statuses == [200, 200, 200]
        assert pages[-1].rate_limit.limit == 2


def test_a_429_waits_until_the_reset_it_names(world: AircallWorld) -> None:
    ids = seed(world, 3)
    world.sim.api.fail_listing(429, times=1, reset_in=3)
    assert sorted(call_ids(listed(world.provider()))) == ids
    assert world.waits == [3.0]


def test_a_429_whose_reset_is_far_off_is_left_to_the_next_cycle_with_its_wait(
    world: AircallWorld,
) -> None:
    seed(world, 3)
    world.sim.api.fail_listing(429, times=None, reset_in=45)
    with pytest.raises(TransientProviderError) as raised:
        listed(world.provider())
    assert raised.value.retry_after == 45.0
    assert world.listing_requests() == 1


def test_an_unknown_call_on_refetch_is_permanent(world: AircallWorld) -> None:
    provider = world.provider()

    class Gone:
        provider_call_id = "404404"
        recording_id = None
        recording_url = None

    with pytest.raises(PermanentProviderError, match="HTTP 404"):
        provider.resolve_download(Gone())


def test_a_window_is_listed_in_ascending_pages_without_gaps(world: AircallWorld) -> None:
    ids = seed(world, 25)
    pages = listed(world.provider(), Window(T0, T0 + timedelta(hours=1)))
    assert call_ids(pages) == ids
    pages_asked = [r["query"].get("page", "1") for r in world.sim.api.listing_requests()]
    assert pages_asked == ["1", "2", "3"]


def test_any_store_sees_each_call_once(world: AircallWorld, any_store: AnyStore) -> None:
    for n in range(5):
        world.sim.api.add_call(aircall_call(n + 1, world.now - timedelta(minutes=30 - n)))
    settings = Settings(provider=_kind(world), poll={"start_at": world.now - timedelta(hours=1)})
    provider = world.provider()
    params = poll_params_from_settings(settings)
    first = poll_once(params, provider, any_store, world.now)
    second = poll_once(params, provider, any_store, world.now + timedelta(minutes=5))
    assert first.ok and second.ok, (first.error, second.error)
    assert sorted(c.provider_call_id for c in any_store.list_calls()) == ["1", "2", "3", "4", "5"]


# -- provider check ------------------------------------------------------------------------


def check_aircall(world: AircallWorld, *args: str, **env: str) -> Result:
    environment = {
        "SIRO_POLLER_PROVIDER__KIND": "aircall",
        "SIRO_POLLER_PROVIDER__BASE_URL": world.sim.url,
        "SIRO_POLLER_PROVIDER__API_ID": API_ID,
        "SIRO_POLLER_PROVIDER__API_TOKEN": API_TOKEN,
        "SIRO_POLLER_PROVIDER__MAX_RETRIES": "0",
        **env,
    }
    return CliRunner().invoke(main, ["provider", "check", *args], env=environment)


def test_provider_check_maps_every_aircall_call_with_one_request() -> None:
    with AircallWorld(frozen=False) as world:
        recent = datetime.now(UTC) - timedelta(hours=2)
        for n in range(4):
            world.sim.api.add_call(aircall_call(n + 1, recent + timedelta(minutes=n)))
        result = check_aircall(world)
        assert result.exit_code == 0, result.output
        assert result.stdout.strip() == "provider aircall: ok: 4 of 4 records mapped"
        assert len(world.sim.api.listing_requests()) == 1
        assert API_TOKEN not in result.output


def test_provider_check_names_the_aircall_keys_when_the_key_is_refused() -> None:
    with AircallWorld(frozen=False) as world:
        result = check_aircall(world, SIRO_POLLER_PROVIDER__API_TOKEN="revoked-token")
        assert result.exit_code == 1
        assert "provider aircall: auth:" in result.stdout
        assert "provider.api_id" in result.stdout and "provider.api_token" in result.stdout
        assert "revoked-token" not in result.output


def test_provider_check_without_the_token_is_a_config_error_before_any_request() -> None:
    with AircallWorld(frozen=False) as world:
        result = check_aircall(world, SIRO_POLLER_PROVIDER__API_TOKEN="")
        assert result.exit_code == 2
        assert "provider.api_token: required to sign in to Aircall" in result.stderr
        assert world.sim.api.requests == []
