"""The Twilio adapter against its simulator: the provider contract, then Twilio's own rules."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from pydantic import ValidationError

from poller.adapters.http import RetryPolicy
from poller.adapters.providers.twilio import TwilioProvider, TwilioSettings
from poller.config import ConfigError, load_settings
from poller.domain.call_record import CallRecord
from poller.domain.filters import SkipReason
from poller.domain.ingest import ListedCall, plan_ingest
from poller.domain.states import CallState, Direction, RecordingState
from poller.domain.windows import Window
from poller.ports.provider import (
    ListedPage,
    PermanentProviderError,
    ProviderAuthError,
    ProviderPort,
    ProviderRefused,
    TransientProviderError,
)
from poller.simulators.twilio_server import (
    ACCOUNT_SID,
    API_KEY_SECRET,
    API_KEY_SID,
    AUTH_TOKEN,
    ExternalStorage,
    FakeTwilio,
    serve,
    serve_storage,
    sid,
    twilio_call,
    twilio_recording,
)
from tests.provider_contract import (
    SIGNATURE,
    T0,
    WINDOW,
    FakeTime,
    HttpProviderContract,
    HttpWorld,
)
from tests.provider_contract import _StoredCall as StoredCall

AUDIO = b"ID3" + b"\x00" * 64
CUSTOMER = "+15551230000"
TWILIO_NUMBER = "+14155550100"


class TwilioWorld(HttpWorld):
    """Twilio's recordings and calls, with an external recording store on another host."""

    # Twilio's credentials are static (HTTP Basic): nothing to mint again when one is revoked.
    static_credentials = True

    def __init__(self) -> None:
        self.api = FakeTwilio()
        self.server = serve(self.api)
        self.storage = ExternalStorage(signature=SIGNATURE)
        self.storage_server = serve_storage(self.storage)
        self.waits: list[float] = []
        self.time = FakeTime()
        # Pauses the shared rate limiter took after 429s (slept through in no time here).
        self.paused = self.time.slept
        self.max_pages: int | None = None

    def __enter__(self) -> TwilioWorld:
        self.server.__enter__()
        self.storage_server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.storage_server.__exit__(None, None, None)
        self.server.__exit__(None, None, None)

    def settings(self, **overrides: Any) -> TwilioSettings:
        values: dict[str, Any] = {
            "kind": "twilio",
            "base_url": self.server.url,
            "account_sid": ACCOUNT_SID,
            "auth_token": AUTH_TOKEN,
            "page_size": self.page_size,
            "download_hosts": [self.storage_server.url.removeprefix("http://")],
            **overrides,
        }
        return TwilioSettings.model_validate(values)

    def retry(self) -> RetryPolicy:
        return RetryPolicy(max_tries=3, base_delay=0.0, max_delay=10.0, sleep=self.waits.append)

    def twilio(self, **overrides: Any) -> TwilioProvider:
        if self.max_pages is not None:
            overrides.setdefault("max_pages", self.max_pages)
        # The retry policy sleeps apart from the limiter's clock, so the limiter's own pause
        # after a 429 still shows in ``paused``.
        return TwilioProvider(
            self.settings(**overrides),
            retry=self.retry(),
            sleep=self.time.sleep,
            monotonic=self.time,
        )

    def provider(self, *, max_pages: int | None = None) -> ProviderPort:
        if max_pages is not None:
            return self.twilio(max_pages=max_pages)
        return self.twilio()

    def add_call(
        self, call_id: str, at: datetime, *, recording: bool = True, signed: bool = False
    ) -> None:
        call_sid = sid("CA", call_id)
        media_url = None
        if signed:
            path = f"/recordings/{call_id}.mp3"
            self.storage.objects[path] = AUDIO
            media_url = f"{self.storage_server.url}{path}?{SIGNATURE}"
        status = "completed" if recording else "processing"
        self.api.add(
            twilio_recording(call_id, call_sid, at, status=status, media_url=media_url),
            twilio_call(call_sid, at, from_=CUSTOMER, to=TWILIO_NUMBER),
            AUDIO,
        )

    def add_recording(self, call_id: str) -> None:
        self.api.update(call_id, status="completed", duration="4")

    def add_malformed(self, call_id: str, at: datetime) -> None:
        record = twilio_recording(call_id, sid("CA", call_id), at)
        record["date_created"] = record["start_time"] = "the day before yesterday"
        self.api.add(record, twilio_call(sid("CA", call_id), at, from_=CUSTOMER, to="+1"), at=at)

    def fail_listing(
        self, status: int, *, times: int | None = 1, retry_after: str | None = None
    ) -> None:
        self.api.fail("list", status, times=times, retry_after=retry_after)

    def loop_paging(self, at_page: int) -> None:
        self.api.loop_at_page = at_page

    def listing_requests(self) -> int:
        return len(self.api.requests_to("list"))

    def redirect_listing_to(self, url: str) -> None:
        self.api.redirect_listing_to = url

    def next_page_on(self, base_url: str) -> None:
        self.api.next_url_base = base_url

    def expire_tokens_after(self, uses: int) -> ProviderPort:
        """An adapter whose auth token is revoked after ``uses`` listing pages."""
        self.api.credential_uses = uses
        return self.twilio()

    def tokens_minted(self) -> int:
        return 0  # static credentials: nothing is ever minted


class TestTwilio(HttpProviderContract):
    @pytest.fixture
    def world(self) -> Iterator[TwilioWorld]:
        with TwilioWorld() as world:
            yield world


@pytest.fixture
def world() -> Iterator[TwilioWorld]:
    with TwilioWorld() as running:
        yield running


def records(provider: ProviderPort, window: Window = WINDOW) -> list[CallRecord]:
    return [record for page in provider.list_window(window) for record in page.records]


def pages_of(provider: ProviderPort, window: Window = WINDOW) -> list[ListedPage]:
    return list(provider.list_window(window))


def add(
    world: TwilioWorld,
    recording_sid: str,
    at: datetime,
    *,
    call_sid: str | None = None,
    from_: str = CUSTOMER,
    to: str = TWILIO_NUMBER,
    direction: str = "inbound",
    call_status: str = "completed",
    caller_name: str | None = None,
    **recording: Any,
) -> None:
    call_sid = call_sid or sid("CA", recording_sid)
    world.api.add(
        twilio_recording(recording_sid, call_sid, at, **recording),
        twilio_call(
            call_sid,
            at,
            from_=from_,
            to=to,
            direction=direction,
            status=call_status,
            caller_name=caller_name,
        ),
        AUDIO,
    )


# -- listing --------------------------------------------------------------------------------


def test_a_window_asks_for_the_whole_days_it_overlaps_and_keeps_only_its_own_recordings(
    world: TwilioWorld,
) -> None:
    midnight = datetime(2026, 3, 3, tzinfo=UTC)
    window = Window(midnight - timedelta(hours=1), midnight + timedelta(hours=1))
    for name, at in {
        "RE-day-before": midnight - timedelta(hours=2),
        "RE-late-evening": midnight - timedelta(minutes=30),
        "RE-after-midnight": midnight + timedelta(minutes=30),
        "RE-next-morning": midnight + timedelta(hours=2),
    }.items():
        add(world, name, at)

    found = [record.provider_call_id for record in records(world.twilio(), window)]

    assert found == ["RE-late-evening", "RE-after-midnight"]
    [query] = world.api.requests_to("list")
    assert query["DateCreated>"] == ["2026-03-02"]
    # The simulator reads "<" strictly; the day after the window's last day holds it all.
    assert query["DateCreated<"] == ["2026-03-04"]
    assert query["IncludeSoftDeleted"] == ["true"]
    assert query["PageSize"] == [str(world.page_size)]


def test_a_window_that_ends_at_midnight_does_not_ask_for_the_next_day(world: TwilioWorld) -> None:
    midnight = datetime(2026, 3, 3, tzinfo=UTC)
    records(world.twilio(), Window(midnight - timedelta(hours=2), midnight))
    [query] = world.api.requests_to("list")
    assert (query["DateCreated>"], query["DateCreated<"]) == (["2026-03-02"], ["2026-03-03"])


def test_pages_follow_next_page_uri_and_its_page_token(world: TwilioWorld) -> None:
    for n in range(world.page_size + 5):
        add(world, f"RE{n:04d}", T0 + timedelta(minutes=1, seconds=n))
    pages = pages_of(world.twilio())
    assert [len(page.records) for page in pages] == [world.page_size, 5]
    first, second = world.api.requests_to("list")
    assert "PageToken" not in first
    assert second["PageToken"] == [f"PA RE{world.page_size - 1:04d}".replace(" ", "")]
    assert second["Page"] == ["1"]


def test_the_recording_sid_keys_the_row_so_a_relisted_day_changes_nothing(
    world: TwilioWorld,
) -> None:
    add(world, "RE-once", T0 + timedelta(minutes=10))
    provider = world.twilio()
    first = records(provider, Window(T0, T0 + timedelta(hours=1)))
    # The next window asks for the same day: Twilio answers the recording again; it is cut.
    second = records(provider, Window(T0 + timedelta(hours=1), T0 + timedelta(hours=2)))
    assert [r.provider_call_id for r in first] == ["RE-once"]
    assert first[0].recording_id == "RE-once"
    assert second == []


# -- statuses -------------------------------------------------------------------------------


def test_statuses_become_ready_waiting_or_skipped_with_twilios_reason(world: TwilioWorld) -> None:
    add(world, "RE-done", T0 + timedelta(minutes=1))
    add(world, "RE-busy", T0 + timedelta(minutes=2), status="processing")
    add(world, "RE-absent", T0 + timedelta(minutes=3), status="absent", error_code=13617)
    add(world, "RE-deleted", T0 + timedelta(minutes=4), status="deleted")
    by_id = {record.provider_call_id: record for record in records(world.twilio())}

    assert by_id["RE-done"].recording_state is RecordingState.READY
    assert by_id["RE-busy"].recording_state is RecordingState.PENDING
    assert by_id["RE-absent"].recording_state is RecordingState.NONE
    assert by_id["RE-absent"].no_recording_reason == (
        "Twilio reports the recording absent (Twilio error 13617)"
    )
    assert by_id["RE-deleted"].recording_state is RecordingState.NONE
    assert by_id["RE-deleted"].no_recording_reason == "the recording was deleted in Twilio"


def test_a_skipped_recording_keeps_twilios_reason_on_its_row(world: TwilioWorld) -> None:
    add(world, "RE-deleted", T0 + timedelta(minutes=4), status="deleted")
    [record] = records(world.twilio())
    plan = plan_ingest("twilio", None, ListedCall(record), T0 + timedelta(hours=3))
    assert plan.values["state"] == CallState.SKIPPED.value
    assert plan.values["error_kind"] == SkipReason.NO_RECORDING.value
    assert plan.values["last_error"] == "the recording was deleted in Twilio"


def test_an_encrypted_recording_is_skipped_as_undecryptable(world: TwilioWorld) -> None:
    add(world, "RE-secret", T0 + timedelta(minutes=1))
    world.api.update("RE-secret", encryption_details={"encryption_public_key_sid": "CR" + "0" * 32})
    [record] = records(world.twilio())
    assert record.recording_state is RecordingState.NONE
    assert record.no_recording_reason is not None
    assert "Call Recording Encryption" in record.no_recording_reason


def test_an_unknown_status_is_a_malformed_record_naming_the_field(world: TwilioWorld) -> None:
    add(world, "RE-odd", T0 + timedelta(minutes=1), status="exploded")
    add(world, "RE-fine", T0 + timedelta(minutes=2))
    [page] = pages_of(world.twilio())
    assert [record.provider_call_id for record in page.records] == ["RE-fine"]
    [error] = page.malformed
    assert error.call_id == "RE-odd"
    assert "status" in error.reason and "exploded" in error.reason


# -- the call join and the rep -------------------------------------------------------------


def test_an_inbound_call_puts_the_twilio_number_as_rep_and_the_caller_as_contact(
    world: TwilioWorld,
) -> None:
    add(world, "RE-in", T0 + timedelta(minutes=1), caller_name="Jane Smith")
    [record] = records(world.twilio())
    assert record.direction is Direction.INBOUND
    assert (record.rep_phone, record.rep_provider_id) == (TWILIO_NUMBER, None)
    assert (record.contact_phone, record.contact_name) == (CUSTOMER, "Jane Smith")
    assert record.raw["call"]["from"] == CUSTOMER
    assert record.duration_seconds == 4
    assert record.started_at == T0 + timedelta(minutes=1)


def test_a_client_identity_is_the_rep_on_either_side(world: TwilioWorld) -> None:
    add(world, "RE-out", T0 + timedelta(minutes=1), from_="client:alice", to=CUSTOMER,
        direction="outbound-api")  # fmt: skip
    add(world, "RE-to-client", T0 + timedelta(minutes=2), from_=CUSTOMER, to="client:bob")
    by_id = {r.provider_call_id: r for r in records(world.twilio())}
    out, received = by_id["RE-out"], by_id["RE-to-client"]
    assert out.direction is Direction.OUTBOUND
    assert (out.rep_provider_id, out.rep_name, out.rep_phone) == ("client:alice", "alice", None)
    assert out.contact_phone == CUSTOMER
    assert (received.rep_provider_id, received.contact_phone) == ("client:bob", CUSTOMER)


def test_rep_emails_and_rep_parties_say_which_number_is_the_rep(world: TwilioWorld) -> None:
    desk = "+14155550199"
    # An outbound call placed from the customer's side of a bridge: by direction alone the rep
    # would be the customer; the configured numbers say otherwise.
    add(world, "RE-mapped", T0 + timedelta(minutes=1), from_=CUSTOMER, to=desk,
        direction="outbound-dial")  # fmt: skip
    add(world, "RE-pattern", T0 + timedelta(minutes=2), from_=CUSTOMER, to="+14155550142",
        direction="outbound-dial")  # fmt: skip
    provider = world.twilio(
        rep_emails={desk: "rep1@example.com"}, rep_parties=["client:*", "+1415555*"]
    )
    by_id = {r.provider_call_id: r for r in records(provider)}
    assert (by_id["RE-mapped"].rep_phone, by_id["RE-mapped"].rep_email) == (
        desk,
        "rep1@example.com",
    )
    assert by_id["RE-mapped"].contact_phone == CUSTOMER
    assert (by_id["RE-pattern"].rep_phone, by_id["RE-pattern"].contact_phone) == (
        "+14155550142",
        CUSTOMER,
    )


def test_each_finished_call_is_read_once_and_the_cache_is_bounded(world: TwilioWorld) -> None:
    shared = sid("CA", "shared")
    add(world, "RE-part1", T0 + timedelta(minutes=1), call_sid=shared)
    add(world, "RE-part2", T0 + timedelta(minutes=2), call_sid=shared)
    add(world, "RE-live", T0 + timedelta(minutes=3), call_status="in-progress")
    provider = world.twilio(call_cache_size=1)
    records(provider)
    records(provider)
    calls = [path for kind, path, _ in world.api.requests if kind == "call"]
    assert calls.count(f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{shared}.json") == 1
    # A call still in progress may still change: it is read again each time.
    live = sid("CA", "RE-live")
    assert calls.count(f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{live}.json") >= 2
    assert len(provider._calls) <= 1


def test_a_rate_limited_call_join_fails_the_span_rather_than_the_records(
    world: TwilioWorld,
) -> None:
    add(world, "RE-1", T0 + timedelta(minutes=1))
    world.api.fail("call", 429, times=None)
    with pytest.raises(TransientProviderError) as raised:
        records(world.twilio())
    assert "Twilio error 20429" in str(raised.value)


def test_a_recording_whose_call_is_gone_is_malformed_naming_the_call(world: TwilioWorld) -> None:
    world.api.add(twilio_recording("RE-orphan", sid("CA", "gone"), T0 + timedelta(minutes=1)))
    [page] = pages_of(world.twilio())
    [error] = page.malformed
    assert "call_sid" in error.reason and sid("CA", "gone") in error.reason


# -- rate limits ------------------------------------------------------------------------------


def test_a_20429_without_retry_after_is_backed_off_and_retried(world: TwilioWorld) -> None:
    add(world, "RE-1", T0 + timedelta(minutes=1))
    world.api.fail("list", 429, times=1)
    assert [r.provider_call_id for r in records(world.twilio())] == ["RE-1"]
    assert len(world.waits) == 1
    # Twilio's limit is per account: every request of this provider paused, not just this one.
    assert world.paused and world.paused[0] > 0


def test_a_lasting_20429_is_transient_and_names_twilios_code(world: TwilioWorld) -> None:
    add(world, "RE-1", T0 + timedelta(minutes=1))
    world.api.fail("list", 429, times=None)
    with pytest.raises(TransientProviderError) as raised:
        records(world.twilio())
    assert raised.value.status == 429
    assert "Twilio error 20429: Too Many Requests" in str(raised.value)
    assert len(world.api.requests_to("list")) == 3  # bounded by the retry policy


# -- auth and media -------------------------------------------------------------------------


def test_an_api_key_authenticates_with_the_account_still_in_the_path(world: TwilioWorld) -> None:
    add(world, "RE-1", T0 + timedelta(minutes=1))
    provider = world.twilio(auth_token=None, api_key_sid=API_KEY_SID, api_key_secret=API_KEY_SECRET)
    assert [r.provider_call_id for r in records(provider)] == ["RE-1"]
    assert all(f"/Accounts/{ACCOUNT_SID}/" in path for _, path, _ in world.api.requests)


def test_refused_credentials_name_the_keys_and_never_the_secret(world: TwilioWorld) -> None:
    add(world, "RE-1", T0 + timedelta(minutes=1))
    with pytest.raises(ProviderAuthError) as raised:
        records(world.twilio(auth_token="not-the-token"))
    message = str(raised.value)
    assert "provider.account_sid and provider.auth_token" in message
    assert "Twilio error 20003" in message
    assert "not-the-token" not in message and AUTH_TOKEN not in message


def test_media_is_the_mp3_on_the_api_host_with_basic_auth_and_keeps_both_channels(
    world: TwilioWorld,
) -> None:
    stereo = b"ID3" + b"\x02" * 128
    add(world, "RE-stereo", T0 + timedelta(minutes=1), channels=2)
    add(world, "RE-mono", T0 + timedelta(minutes=2))
    world.api.media["RE-stereo"] = stereo
    world.api.downmixed["RE-stereo"] = b"ID3" + b"\x01" * 64
    by_id = {r.provider_call_id: r for r in records(world.twilio())}
    record = by_id["RE-stereo"]
    assert record.raw["channels"] == 2
    media = f"{world.server.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings"
    mono = world.twilio().resolve_download(StoredCall.of(by_id["RE-mono"]))
    assert mono.url == f"{media}/RE-mono.mp3"
    assert requests.get(mono.url, headers=mono.headers_for(mono.url), timeout=5).ok
    request = world.twilio().resolve_download(StoredCall.of(record))
    assert request.url == f"{media}/RE-stereo.mp3?RequestedChannels=2"
    assert request.format_hint == "mp3"
    headers = request.headers_for(request.url)
    assert headers["Authorization"].startswith("Basic ")
    # Twilio enforces auth on media: without the credentials it is refused.
    assert requests.get(request.url, timeout=5).status_code == 401
    answer = requests.get(request.url, headers=headers, timeout=5)
    assert (answer.status_code, answer.content) == (200, stereo)


def test_external_storage_media_gets_no_twilio_credentials(world: TwilioWorld) -> None:
    world.add_call("RE-external", T0 + timedelta(minutes=1), signed=True)
    provider = world.twilio()
    [record] = records(provider)
    request = provider.resolve_download(StoredCall.of(record))
    assert request.url.startswith(world.storage_server.url)
    assert request.headers_for(request.url) == {}
    assert requests.get(request.url, timeout=5).content == AUDIO


def test_external_storage_outside_download_hosts_is_refused(world: TwilioWorld) -> None:
    world.add_call("RE-external", T0 + timedelta(minutes=1), signed=True)
    provider = world.twilio(download_hosts=[])
    [record] = records(provider)
    with pytest.raises(ProviderRefused, match=r"provider\.download_hosts"):
        provider.resolve_download(StoredCall.of(record))
    assert world.storage.requests == []


# -- settings -------------------------------------------------------------------------------


def test_requirements_name_the_missing_account_and_credentials() -> None:
    bare = TwilioSettings.model_validate({"kind": "twilio"})
    assert [line.split(":")[0] for line in bare.requirements()] == [
        "provider.account_sid",
        "provider.auth_token",
    ]
    half_key = TwilioSettings.model_validate(
        {"kind": "twilio", "account_sid": ACCOUNT_SID, "api_key_sid": API_KEY_SID}
    )
    assert [line.split(":")[0] for line in half_key.requirements()] == ["provider.api_key_secret"]


def test_an_auth_token_and_an_api_key_together_are_refused() -> None:
    with pytest.raises(ValidationError, match="not both"):
        TwilioSettings.model_validate(
            {
                "kind": "twilio",
                "account_sid": ACCOUNT_SID,
                "auth_token": AUTH_TOKEN,
                "api_key_sid": API_KEY_SID,
                "api_key_secret": API_KEY_SECRET,
            }
        )


def test_the_example_sid_that_config_init_writes_is_named_a_placeholder() -> None:
    for key, example in (("account_sid", "AC" + "x" * 32), ("api_key_sid", "SK" + "x" * 32)):
        with pytest.raises(ValidationError, match="still the example's placeholder"):
            TwilioSettings.model_validate(
                {"kind": "twilio", "account_sid": ACCOUNT_SID, key: example}
            )


def test_a_malformed_account_sid_is_refused() -> None:
    with pytest.raises(ValidationError, match="account_sid"):
        TwilioSettings.model_validate({"kind": "twilio", "account_sid": "AC123"})


def test_the_default_host_is_twilios_and_only_it_gets_credentials() -> None:
    settings = TwilioSettings.model_validate(
        {"kind": "twilio", "account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN}
    )
    provider = TwilioProvider(settings)
    assert provider.base_url == "https://api.twilio.com"
    assert provider.hosts.credential_hosts == {"api.twilio.com"}
    assert settings.name == "twilio"


def test_the_simulator_refuses_what_twilio_refuses(world: TwilioWorld) -> None:
    url = f"{world.server.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings.json"
    auth = (ACCOUNT_SID, AUTH_TOKEN)
    for params in (
        {"DateCreated>": "2026-03-02T09:00:00Z"},
        {"PageSize": "1001"},
        {"StartTime>": "2026-03-02"},
    ):
        answer = requests.get(url, params=params, auth=auth, timeout=5)
        assert answer.status_code == 400, params
        assert answer.json()["code"] == 20001
    assert requests.get(url, timeout=5).json()["code"] == 20003


def test_an_answer_without_recordings_fails_the_window_naming_what_came(
    world: TwilioWorld,
) -> None:
    add(world, "RE-1", T0 + timedelta(minutes=1))
    provider = world.twilio()
    with pytest.raises(PermanentProviderError, match=r"nothing at 'recordings'.*code, message"):
        provider.page_items({"code": 20500, "message": "maintenance"}, "page 1")


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        (
            '[provider]\nkind = "twilio"\nauth = "basic"\n',
            'provider.auth: applies only to kind = "generic"',
        ),
        (
            '[provider]\nkind = "twilio"\npage_size = 5000\n',
            "provider.page_size: Input should be less than or equal to 1000 (got 5000)",
        ),
    ],
)
def test_config_errors_of_a_twilio_table_name_its_keys(
    tmp_path: Path, toml: str, expected: str
) -> None:
    path = tmp_path / "c.toml"
    path.write_text(toml, encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_settings(path)
    assert expected in raised.value.problems


def test_an_unknown_kind_names_the_key_and_lists_twilio_among_the_kinds(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[[providers]]\nname = "pbx"\nkind = "avaya"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_settings(path)
    [problem] = raised.value.problems
    assert problem.startswith("providers.pbx.kind:") and "'avaya'" in problem
    assert "twilio" in problem
