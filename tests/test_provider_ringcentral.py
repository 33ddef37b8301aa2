"""The RingCentral adapter against the RingCentral simulator: the contract, then its own points."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner

from poller.adapters.http import RateLimiter, RetryPolicy
from poller.adapters.providers.registry import build_provider, missing_settings
from poller.adapters.providers.ringcentral import RingCentralProvider, RingCentralSettings
from poller.cli import main
from poller.config import ConfigError, load_settings
from poller.core.poll import poll_once
from poller.core.poll_report import PollParams
from poller.domain.call_record import host_key
from poller.domain.filters import SkipReason
from poller.domain.ingest import ListedCall, plan_ingest
from poller.domain.states import CallState, Direction, RecordingState
from poller.ports.provider import (
    ProviderAuthError,
    ProviderRefused,
    TransientProviderError,
)
from poller.simulators.ringcentral_server import (
    RingCentralState,
    call_record,
    recording_of,
    serve,
)
from tests.provider_contract import (
    SIGNATURE,
    T0,
    WINDOW,
    FakeTime,
    HttpProviderContract,
    HttpWorld,
    _StoredCall,
    call_ids,
    listed,
)
from tests.seed import AnyStore

REP = (400643091008, "101", "+16505550101")
UNLIMITED = {group: (10_000, 60, 60) for group in ("Heavy", "Medium", "Light", "Auth")}


class RingCentralWorld(HttpWorld):
    """RingCentral's company call log, newest first, media on a host of its own."""

    newest_first = True

    def __init__(self) -> None:
        self.clock = FakeTime()
        self.api = RingCentralState(groups=dict(UNLIMITED), monotonic=self.clock)
        self.waits: list[float] = []
        self._serving = serve(self.api)

    def __enter__(self) -> RingCentralWorld:
        self._serving.__enter__()
        self.api.add_extension(REP[0], REP[1], "Alice Rep", "alice@example.com")
        return self

    def __exit__(self, *exc: object) -> None:
        self._serving.__exit__(None, None, None)

    def settings(self, **overrides: Any) -> RingCentralSettings:
        values = self.api.settings_values(**{"per_page": self.page_size, **overrides})
        return RingCentralSettings.model_validate(values)

    def retry(self) -> RetryPolicy:
        def sleep(seconds: float) -> None:
            self.waits.append(seconds)
            self.clock.now += seconds

        return RetryPolicy(max_tries=3, base_delay=0.0, max_delay=10.0, sleep=sleep)

    def provider(self, *, max_pages: int | None = None, **overrides: Any) -> RingCentralProvider:
        provider = RingCentralProvider(self.settings(**overrides), retry=self.retry())
        provider.http.rate_limiter = RateLimiter(
            penalty=provider.rate_limit_penalty_seconds,
            name="provider ringcentral",
            monotonic=self.clock,
            sleep=self.clock.sleep,
        )
        if max_pages is not None:
            provider.page_limit = max_pages
        return provider

    def add_call(
        self, call_id: str, at: datetime, *, recording: bool = True, signed: bool = False
    ) -> None:
        query = SIGNATURE if signed else ""
        self.api.add_media(
            call_id,
            b"ID3audio",
            required_query=dict([SIGNATURE.split("=")]) if signed else None,
        )
        found = recording_of(self.api, call_id, query)
        if not recording:
            # Listed before RingCentral has processed the recording: no contentUri yet.
            del found["contentUri"]
        self.api.add_record(
            call_record(f"rec-{call_id}", at, session=f"s-{call_id}", rep=REP, recording=found)
        )

    def add_recording(self, call_id: str) -> None:
        record = self.api.find(f"rec-{call_id}")
        fresh = recording_of(self.api, call_id)
        record["recording"] = fresh
        for leg in record["legs"]:
            if "recording" in leg:
                leg["recording"] = dict(fresh)

    def add_malformed(self, call_id: str, at: datetime) -> None:
        record = call_record(
            f"rec-{call_id}", at, session=f"s-{call_id}", recording=recording_of(self.api, call_id)
        )
        record["startTime"] = "the day before yesterday"
        self.api.add_record(record, at)

    def fail_listing(
        self, status: int, *, times: int | None = 1, retry_after: str | None = None
    ) -> None:
        self.api.listing_failures = [(status, retry_after)] * (times or 1)
        self.api.fail_forever = times is None

    def loop_paging(self, at_page: int) -> None:
        self.api.loop_from_page = at_page

    def listing_requests(self) -> int:
        return len(self.api.listing_requests())

    def redirect_listing_to(self, url: str) -> None:
        self.api.redirect_listing_to = url

    def next_page_on(self, base_url: str) -> None:
        self.api.navigation_base = base_url

    def expire_tokens_after(self, uses: int) -> RingCentralProvider:
        self.api.token_uses = uses
        return self.provider()

    def tokens_minted(self) -> int:
        return len(self.api.tokens_issued)


@pytest.fixture
def rc() -> Iterator[RingCentralWorld]:
    with RingCentralWorld() as world:
        yield world


class TestRingCentral(HttpProviderContract):
    @pytest.fixture
    def world(self, rc: RingCentralWorld) -> RingCentralWorld:
        return rc


# -- the listing request ------------------------------------------------------------------


def test_the_listing_asks_for_recorded_voice_calls_in_detail_with_both_dates(
    rc: RingCentralWorld,
) -> None:
    rc.add_call("c1", T0 + timedelta(minutes=1))
    listed(rc.provider())
    [request] = rc.api.listing_requests()
    assert request.path == "/restapi/v1.0/account/~/call-log"
    query = {name: values[-1] for name, values in request.query.items()}
    assert query["type"] == "Voice"
    assert query["view"] == "Detailed"
    assert query["recordingType"] == "All"
    assert query["perPage"] == str(rc.page_size)
    assert datetime.fromisoformat(query["dateFrom"]) <= WINDOW.start
    assert datetime.fromisoformat(query["dateTo"]) >= WINDOW.end
    assert query["dateFrom"].endswith("Z") and query["dateTo"].endswith("Z")


def test_pages_follow_navigation_next_page_up_to_1000_per_page(rc: RingCentralWorld) -> None:
    for n in range(25):
        rc.add_call(f"c{n:02d}", T0 + timedelta(minutes=n))
    pages = listed(rc.provider())
    assert len(pages) == 3
    pages_asked = [r.query["page"][-1] for r in rc.api.listing_requests()]
    assert pages_asked == ["1", "2", "3"]
    with pytest.raises(ValueError, match="1000"):
        rc.settings(per_page=1001)


# -- one recording, one call --------------------------------------------------------------


def test_legs_of_one_session_carrying_one_recording_become_one_call(rc: RingCentralWorld) -> None:
    at = T0 + timedelta(minutes=3)
    recording = recording_of(rc.api, "rec-777")
    # A transferred call: two call-log records of one telephony session, both listing it.
    rc.api.add_record(
        call_record("IaA", at, session="s-transfer", rep=REP, recording=recording, duration=40)
    )
    rc.api.add_record(
        call_record(
            "IaB",
            at + timedelta(seconds=40),
            session="s-transfer",
            rep=(400643092008, "102", "+16505550102"),
            recording=dict(recording),
            duration=60,
        )
    )
    pages = listed(rc.provider())
    records = [record for page in pages for record in page.records]
    assert [record.provider_call_id for record in records] == ["rec-777"]
    [record] = records
    assert record.recording_id == "rec-777"
    assert record.started_at == at  # the session's first record
    assert record.rep_provider_id == str(REP[0])  # who took the call before the transfer
    assert pages[0].item_count == 1


def test_two_recordings_of_one_session_are_two_calls_and_a_repeat_is_the_same_call(
    rc: RingCentralWorld,
) -> None:
    at = T0 + timedelta(minutes=3)
    rc.api.add_record(
        call_record("IaA", at, session="s-1", rep=REP, recording=recording_of(rc.api, "r-1"))
    )
    rc.api.add_record(
        call_record(
            "IaB",
            at + timedelta(minutes=1),
            session="s-1",
            rep=REP,
            recording=recording_of(rc.api, "r-2"),
        )
    )
    first = sorted(call_ids(listed(rc.provider())))
    second = sorted(call_ids(listed(rc.provider())))
    assert first == second == ["r-1", "r-2"]


def test_outbound_rep_is_the_recorded_legs_extension_with_its_email(rc: RingCentralWorld) -> None:
    rc.api.add_record(
        call_record(
            "IaOut",
            T0 + timedelta(minutes=5),
            session="s-out",
            direction="Outbound",
            rep=REP,
            contact=("+16505556678", "Jane Customer"),
            recording=recording_of(rc.api, "r-out"),
        )
    )
    [record] = [r for page in listed(rc.provider()) for r in page.records]
    assert record.direction is Direction.OUTBOUND
    assert record.rep_email == "alice@example.com"
    assert record.rep_provider_id == str(REP[0])
    assert record.rep_extension == "101"
    assert record.rep_name == "Alice Rep"
    assert record.rep_phone == "+16505550101"
    assert (record.contact_phone, record.contact_name) == ("+16505556678", "Jane Customer")
    assert record.duration_seconds == 95
    assert record.recording_state is RecordingState.READY
    assert record.recording_url == rc.api.content_uri("r-out")


def test_inbound_contact_is_the_caller_and_rep_the_callee(rc: RingCentralWorld) -> None:
    rc.api.add_record(
        call_record(
            "IaIn",
            T0 + timedelta(minutes=5),
            session="s-in",
            direction="Inbound",
            rep=REP,
            contact=("+14155550199", "Bob Buyer"),
            recording=recording_of(rc.api, "r-in"),
        )
    )
    [record] = [r for page in listed(rc.provider()) for r in page.records]
    assert record.direction is Direction.INBOUND
    assert record.rep_email == "alice@example.com"
    assert (record.contact_phone, record.contact_name) == ("+14155550199", "Bob Buyer")


def test_the_extension_list_is_cached_and_refreshed(rc: RingCentralWorld) -> None:
    rc.add_call("c1", T0 + timedelta(minutes=1))
    now = [datetime(2026, 3, 3, 9, 0, tzinfo=T0.tzinfo)]
    provider = RingCentralProvider(rc.settings(), retry=rc.retry(), clock=lambda: now[0])

    def extension_requests() -> int:
        return len([r for r in rc.api.requests if r.path.endswith("/extension")])

    listed(provider)
    listed(provider)
    assert extension_requests() == 1
    # A rep added since is picked up by one early refresh, at most once a minute.
    rc.api.add_extension(400643092008, "102", "Bruno Rep", "bruno@example.com")
    other = (400643092008, "102", "+16505550102")
    rc.api.add_record(
        call_record(
            "IaNew",
            T0 + timedelta(minutes=9),
            session="s-new",
            rep=other,
            recording=recording_of(rc.api, "r-new"),
        )
    )
    now[0] += timedelta(minutes=2)
    emails = {r.provider_call_id: r.rep_email for page in listed(provider) for r in page.records}
    assert emails == {"c1": "alice@example.com", "r-new": "bruno@example.com"}
    assert extension_requests() == 2
    now[0] += timedelta(minutes=61)
    listed(provider)
    assert extension_requests() == 3


# -- short recordings ---------------------------------------------------------------------


def test_a_short_recording_is_a_call_skipped_with_that_reason(rc: RingCentralWorld) -> None:
    rc.api.add_record(
        call_record("IaShort", T0 + timedelta(minutes=2), session="s-short", short_recording=True)
    )
    [record] = [r for page in listed(rc.provider()) for r in page.records]
    assert record.recording_state is RecordingState.NONE
    assert record.recording_too_short
    plan = plan_ingest("ringcentral", None, ListedCall(record), T0 + timedelta(hours=3))
    assert plan.values["state"] == CallState.SKIPPED.value
    assert plan.values["error_kind"] == SkipReason.SHORT_RECORDING.value
    assert "shortRecording" in plan.values["last_error"]


# -- auth and tokens ----------------------------------------------------------------------


def test_one_token_serves_listings_and_downloads(rc: RingCentralWorld) -> None:
    for n in range(25):
        rc.add_call(f"c{n:02d}", T0 + timedelta(minutes=n))
    provider = rc.provider()
    records = [r for page in listed(provider) for r in page.records]
    listed(provider)
    for record in records[:3]:
        request = provider.resolve_download(_StoredCall.of(record))
        assert requests.get(request.url, headers=request.headers, timeout=5).content == b"ID3audio"
    assert len(rc.api.tokens_issued) == 1
    [mint] = [r for r in rc.api.requests if r.path == "/restapi/oauth/token"]
    assert mint.headers["Authorization"].startswith("Basic ")


def test_a_refused_jwt_names_the_keys_and_never_the_secret(rc: RingCentralWorld) -> None:
    rc.add_call("c1", T0 + timedelta(minutes=1))
    provider = rc.provider(jwt="not-the-jwt")
    with pytest.raises(ProviderAuthError) as raised:
        listed(provider)
    message = str(raised.value)
    assert "provider.jwt" in message
    assert "not-the-jwt" not in message and rc.api.client_secret not in message


def test_missing_secrets_are_named_by_requirements() -> None:
    settings = RingCentralSettings.model_validate({"kind": "ringcentral"})
    problems = missing_settings(settings)
    assert [line.split(":")[0] for line in problems] == [
        "provider.client_id",
        "provider.client_secret",
        "provider.jwt",
    ]
    assert settings.api_base_url == "https://platform.ringcentral.com"


# -- media --------------------------------------------------------------------------------


def test_media_is_on_the_media_host_with_credentials_only_for_the_vendor_hosts(
    rc: RingCentralWorld,
) -> None:
    rc.add_call("c1", T0 + timedelta(minutes=1))
    provider = rc.provider()
    [record] = [r for page in listed(provider) for r in page.records]
    request = provider.resolve_download(_StoredCall.of(record))
    assert host_key(request.url) == host_key(rc.api.media_url)
    assert request.headers["Authorization"].startswith("Bearer rc-access-")
    assert host_key(rc.api.media_url) in request.credential_hosts
    assert request.credential_hosts == {
        host_key(rc.api.base_url),
        host_key(rc.api.media_url),
        "platform.ringcentral.com",
        "media.ringcentral.com",
    }


def test_by_default_only_ringcentrals_media_host_is_trusted() -> None:
    settings = RingCentralSettings.model_validate(
        {"kind": "ringcentral", "client_id": "id", "client_secret": "s", "jwt": "j"}
    )
    provider = build_provider(settings)
    assert provider.hosts.may_send_credentials(
        "https://media.ringcentral.com/restapi/v1.0/account/1/recording/2/content"
    )
    assert not provider.hosts.may_send_credentials("https://media.example.com/x.mp3")
    stranger = _StoredCall("c", "r", "https://media.example.com/recording/2/content")
    with pytest.raises(ProviderRefused):
        provider.resolve_download(stranger)


# -- throttling ---------------------------------------------------------------------------


def test_a_429_without_retry_after_waits_30_s_and_sends_nothing_meanwhile(
    rc: RingCentralWorld,
) -> None:
    ids = [f"c{n}" for n in range(3)]
    for n, call_id in enumerate(ids):
        rc.add_call(call_id, T0 + timedelta(minutes=n))
    rc.fail_listing(429, times=1, retry_after=None)
    provider = rc.provider()
    assert sorted(call_ids(listed(provider))) == ids
    refused, retried = rc.api.listing_requests()[:2]
    assert retried.at - refused.at >= 30.0


def test_a_lasting_429_without_retry_after_reports_30_s(rc: RingCentralWorld) -> None:
    rc.add_call("c1", T0 + timedelta(minutes=1))
    rc.fail_listing(429, times=None, retry_after=None)
    provider = rc.provider()
    provider.http.retry = RetryPolicy.once()
    with pytest.raises(TransientProviderError) as raised:
        listed(provider)
    assert raised.value.retry_after == pytest.approx(30.0)


def test_a_penalty_is_never_restarted_by_the_adapter(rc: RingCentralWorld) -> None:
    # A small Heavy group: its own 429 comes with a 60 s penalty that each request restarts.
    rc.api.groups["Heavy"] = (2, 60, 60)
    for n in range(3 * rc.page_size):
        rc.add_call(f"c{n:02d}", T0 + timedelta(minutes=n))
    provider = rc.provider()
    with pytest.raises(TransientProviderError) as raised:
        listed(provider)
    # X-Rate-Limit-Remaining reached 0: the adapter waited for the window instead of sending.
    assert raised.value.retry_after == pytest.approx(60.0)
    assert len(rc.api.listing_requests()) == 2
    # A next cycle within the window still sends nothing.
    with pytest.raises(TransientProviderError):
        listed(provider)
    assert len(rc.api.listing_requests()) == 2
    # Once the window has passed, the listing goes on and never met a 429.
    rc.clock.now += 61
    rc.api.groups["Heavy"] = (10_000, 60, 60)
    assert len(call_ids(listed(provider))) == 3 * rc.page_size


def test_the_rate_limit_window_header_is_read() -> None:
    from poller.domain.call_record import RateLimitHints

    hints = RateLimitHints.from_headers(
        {
            "X-Rate-Limit-Group": "Heavy",
            "X-Rate-Limit-Limit": "10",
            "X-Rate-Limit-Remaining": "0",
            "X-Rate-Limit-Window": "60",
        },
        T0,
    )
    assert (hints.limit, hints.remaining, hints.window_seconds) == (10, 0, 60.0)
    assert hints.exhausted


def test_the_window_pauses_a_limiter_only_when_exhausted() -> None:
    clock = FakeTime()
    limiter = RateLimiter(monotonic=clock, sleep=clock.sleep, max_wait=120)
    limiter.observe(200, {"X-Rate-Limit-Remaining": "3", "X-Rate-Limit-Window": "60"})
    limiter.acquire()
    assert clock.slept == []
    limiter.observe(200, {"X-Rate-Limit-Remaining": "0", "X-Rate-Limit-Window": "60"})
    limiter.acquire()
    assert clock.slept == [pytest.approx(60.0)]


# -- provider check -----------------------------------------------------------------------


def _check_env(rc: RingCentralWorld, **overrides: str) -> dict[str, str]:
    return {
        "SIRO_POLLER_PROVIDER__KIND": "ringcentral",
        "SIRO_POLLER_PROVIDER__BASE_URL": rc.api.base_url,
        "SIRO_POLLER_PROVIDER__MEDIA_BASE_URL": rc.api.media_url,
        "SIRO_POLLER_PROVIDER__CLIENT_ID": rc.api.client_id,
        "SIRO_POLLER_PROVIDER__CLIENT_SECRET": rc.api.client_secret,
        "SIRO_POLLER_PROVIDER__JWT": rc.api.jwt,
        "SIRO_POLLER_PROVIDER__MAX_RETRIES": "0",
        **overrides,
    }


def test_provider_check_lists_and_maps_the_recent_calls(rc: RingCentralWorld) -> None:
    recent = datetime.now(UTC) - timedelta(hours=2)
    for n in range(4):
        rc.add_call(f"c{n}", recent + timedelta(minutes=n))
    result = CliRunner().invoke(main, ["provider", "check"], env=_check_env(rc))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "provider ringcentral: ok: 4 of 4 records mapped"
    for secret in rc.api.secrets():
        assert secret not in result.output
    assert len(rc.api.tokens_issued) == 1


def test_provider_check_names_a_refused_jwt(rc: RingCentralWorld) -> None:
    env = _check_env(rc, SIRO_POLLER_PROVIDER__JWT="not-the-jwt")
    result = CliRunner().invoke(main, ["provider", "check"], env=env)
    assert result.exit_code == 1
    assert "provider.jwt" in result.output
    assert "not-the-jwt" not in result.output


def test_provider_check_without_secrets_names_them_before_any_request(
    rc: RingCentralWorld,
) -> None:
    env = _check_env(rc)
    del env["SIRO_POLLER_PROVIDER__JWT"], env["SIRO_POLLER_PROVIDER__CLIENT_SECRET"]
    result = CliRunner().invoke(main, ["provider", "check"], env=env)
    assert result.exit_code == 2
    assert "provider.client_secret: required" in result.stderr
    assert "provider.jwt: required" in result.stderr
    assert rc.api.requests == []


def test_a_refused_token_names_the_keys_and_the_permissions(rc: RingCentralWorld) -> None:
    rc.add_call("c1", T0 + timedelta(minutes=1))
    provider = rc.provider()
    listed(provider)
    rc.api.tokens.clear()  # every token revoked, and the fresh one refused too
    rc.api.jwt = "rotated-jwt"
    with pytest.raises(ProviderAuthError) as raised:
        listed(provider)
    message = str(raised.value)
    assert "provider.jwt" in message and "Read Call Log" in message
    assert "provider.auth" not in message


def test_after_a_real_429_nothing_is_sent_until_the_penalty_ends(rc: RingCentralWorld) -> None:
    rc.add_call("c1", T0 + timedelta(minutes=1))
    provider = rc.provider()
    listed(provider)  # token and extension list in hand
    # Another client of the account has used up the Heavy group: RingCentral's 60 s penalty.
    rc.api.groups["Heavy"] = (1, 60, 60)
    rc.api.throttle("Heavy")
    before = len(rc.api.listing_requests())
    with pytest.raises(TransientProviderError) as raised:
        listed(provider)
    assert raised.value.retry_after == pytest.approx(60.0)
    assert len(rc.api.listing_requests()) == before + 1
    refused_at = rc.api.listing_requests()[-1].at
    # A next cycle early in the penalty sends nothing, so it does not restart it...
    rc.clock.now += 10
    with pytest.raises(TransientProviderError):
        listed(provider)
    assert len(rc.api.listing_requests()) == before + 1
    # ...and one near its end waits it out, then lists.
    rc.clock.now += 20
    assert call_ids(listed(provider)) == ["c1"]
    assert rc.api.listing_requests()[-1].at >= refused_at + 60


def test_the_simulator_restarts_a_penalty_on_every_request_sent_during_it() -> None:
    clock = FakeTime()
    state = RingCentralState(groups={"Heavy": (1, 60, 60)}, monotonic=clock)
    assert state.throttle("Heavy")[1] is None
    assert state.throttle("Heavy")[1] == 60.0  # over the limit: the penalty starts
    clock.now += 59
    assert state.throttle("Heavy")[1] == 60.0  # sent during it: it starts again
    clock.now += 59
    assert state.throttle("Heavy")[1] == 60.0
    clock.now += 61
    headers, penalty = state.throttle("Heavy")
    assert penalty is None
    assert headers["X-Rate-Limit-Group"] == "Heavy"
    assert headers["X-Rate-Limit-Window"] == "60"


def test_the_rep_is_the_extension_of_the_leg_that_holds_the_recording(
    rc: RingCentralWorld,
) -> None:
    agent = (400643093008, "103", "+16505550103")
    rc.api.add_extension(agent[0], agent[1], "Carla Agent", "carla@example.com")
    record = call_record(
        "IaQueue",
        T0 + timedelta(minutes=4),
        session="s-queue",
        direction="Inbound",
        rep=REP,  # the call queue's extension on the record
        contact=("+14155550123", "Dana Prospect"),
    )
    # The agent who answered: a leg of its own, and the only place the recording is listed.
    answered = dict(record["legs"][-1])
    answered["extension"] = {"id": agent[0], "uri": "https://platform.ringcentral.com/x"}
    answered["to"] = {"phoneNumber": agent[2], "extensionNumber": agent[1]}
    answered["recording"] = recording_of(rc.api, "r-agent")
    answered["master"] = False
    record["legs"].append(answered)
    rc.api.add_record(record)
    [found] = [r for page in listed(rc.provider()) for r in page.records]
    assert found.provider_call_id == "r-agent"
    assert found.rep_email == "carla@example.com"
    assert found.rep_extension == "103"
    assert (found.contact_phone, found.contact_name) == ("+14155550123", "Dana Prospect")


def test_a_record_with_a_bad_duration_is_reported_alone(rc: RingCentralWorld) -> None:
    rc.add_call("good", T0 + timedelta(minutes=1))
    # telephonySessionId is optional in the spec: a record without it is a call all the same.
    no_session = call_record(
        "IaX", T0 + timedelta(minutes=2), session="s-x", recording=recording_of(rc.api, "r-x")
    )
    del no_session["telephonySessionId"]
    rc.api.add_record(no_session)
    bad_duration = call_record(
        "IaY", T0 + timedelta(minutes=3), session="s-y", recording=recording_of(rc.api, "r-y")
    )
    bad_duration["duration"] = "long"
    rc.api.add_record(bad_duration)
    [page] = listed(rc.provider())
    assert sorted(r.provider_call_id for r in page.records) == ["good", "r-x"]
    [error] = page.malformed
    assert "duration" in error.reason


# -- config -------------------------------------------------------------------------------


def test_config_errors_of_a_ringcentral_table_name_its_keys(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        '[[providers]]\nkind = "ringcentral"\nname = "rc-east"\nper_page = 5000\nauth = "bearer"\n'
        '[[providers]]\nkind = "ringcentral"\nname = "rc-west"\nmedia_base_url = "ftp://x"\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as raised:
        load_settings(config)
    problems = raised.value.problems
    assert any(p.startswith("providers.rc-east.per_page:") for p in problems), problems
    assert 'providers.rc-east.auth: applies only to kind = "generic"' in problems, problems
    assert any(p.startswith("providers.rc-west.media_base_url:") for p in problems), problems


def test_config_check_names_the_missing_ringcentral_secrets(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[provider]\nkind = "ringcentral"\nclient_id = "app"\n', encoding="utf-8")
    result = CliRunner().invoke(main, ["--config", str(config), "config", "check"])
    assert result.exit_code == 2
    assert "provider.client_secret: required" in result.stderr
    assert "SIRO_POLLER_PROVIDER__JWT" in result.stderr
    assert "provider.client_id" not in result.stderr


# -- catch-up cost -----------------------------------------------------------------------------


def test_a_first_run_from_11_months_back_over_30_calls_makes_at_most_10_listings(
    rc: RingCentralWorld, any_store: AnyStore
) -> None:
    # The call log is in the Heavy group (10 a minute): a listing per day was 340 of them.
    start = T0 - timedelta(days=100)  # in the past: a start time far ahead is malformed
    now = start + timedelta(days=340)
    for n in range(30):
        rc.add_call(f"call-{n:02d}", start + timedelta(days=11 * n, hours=9, minutes=n))
    settle = timedelta(minutes=2)
    params = PollParams(provider_key="ringcentral", start_at=start, settle_delay=settle)
    report = poll_once(params, rc.provider(per_page=1000), any_store, now)
    assert report.ok, report.error
    assert len(any_store.list_calls(limit=100)) == 30
    assert report.cursor_after == now - settle
    assert rc.listing_requests() <= 10
