"""The Zoom Phone adapter against its simulator: the provider contract, then Zoom's own points."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from click.testing import CliRunner

from poller.adapters.http import RateLimiter, RetryPolicy
from poller.adapters.providers.registry import build_provider, missing_settings
from poller.adapters.providers.zoom import ZoomProvider, ZoomSettings
from poller.cli import main
from poller.domain.retry_after import parse_retry_after
from poller.domain.states import Direction
from poller.domain.windows import Window, split_window
from poller.ports.provider import (
    PermanentProviderError,
    ProviderAuthError,
    TransientProviderError,
)
from poller.simulators.zoom_server import (
    ACCOUNT_ID,
    CLIENT_ID,
    CLIENT_SECRET,
    ZoomPhone,
    recording_item,
    serve_zoom,
)
from tests.provider_contract import (
    SIGNATURE,
    T0,
    WINDOW,
    HttpProviderContract,
    HttpWorld,
    _StoredCall,
    call_ids,
    listed,
)

AUDIO = b"ID3\x04\x00zoom-audio"


class ZoomWorld(HttpWorld):
    """Zoom Phone: recordings on the API host, token and files on the web host."""

    def __init__(self) -> None:
        self.phone = ZoomPhone()
        self._serving = serve_zoom(self.phone)
        self.waits: list[float] = []
        # Pauses the shared rate limiter took (after 429s), slept through in no time.
        self.paused: list[float] = []

    def __enter__(self) -> ZoomWorld:
        self.api, self.web = self._serving.__enter__()
        self.phone.add_user("zoom-user-1", "rita@example.com")
        self.phone.add_user("zoom-user-2", "sam@example.com", name="Sam Seller", ext=1002)
        self.plain_url = self.phone.add_file("file-plain", AUDIO)
        return self

    def __exit__(self, *exc: object) -> None:
        self._serving.__exit__(None, None, None)

    def settings(self, **overrides: Any) -> ZoomSettings:
        values: dict[str, Any] = {
            "kind": "zoom",
            "base_url": f"{self.api.url}/v2",
            "token_url": f"{self.web.url}/oauth/token",
            "account_id": ACCOUNT_ID,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "page_size": self.page_size,
            **overrides,
        }
        return ZoomSettings.model_validate(values)

    def retry(self) -> RetryPolicy:
        return RetryPolicy(max_tries=3, base_delay=0.0, max_delay=10.0, sleep=self.waits.append)

    def provider(self, *, max_pages: int | None = None, **overrides: Any) -> ZoomProvider:
        provider = ZoomProvider(self.settings(**overrides), retry=self.retry())
        self.quiet_limiter(provider)
        if max_pages is not None:
            provider.max_pages = lambda: max_pages  # type: ignore[method-assign]
        return provider

    def quiet_limiter(self, provider: ZoomProvider) -> ZoomProvider:
        """The provider's rate limiter on a clock that its pauses move on at once."""
        elapsed = [0.0]

        def pause(seconds: float) -> None:
            self.paused.append(seconds)
            elapsed[0] += seconds

        provider.http.rate_limiter = RateLimiter(
            name="zoom", monotonic=lambda: elapsed[0], sleep=pause
        )
        return provider

    def add_call(
        self, call_id: str, at: datetime, *, recording: bool = True, signed: bool = False
    ) -> None:
        url = None
        if recording:
            url = f"{self.plain_url}?{SIGNATURE}" if signed else self.plain_url
        self.phone.add_recording(recording_item(call_id, at, download_url=url))

    def add_recording(self, call_id: str) -> None:
        # Zoom lists a recording before its file is ready without a download_url.
        self.phone.update(call_id, download_url=self.plain_url)

    def add_malformed(self, call_id: str, at: datetime) -> None:
        item = recording_item(call_id, at, download_url=self.plain_url)
        self.phone.add_recording(item)
        item["date_time"] = "the day before yesterday"

    def fail_listing(
        self, status: int, *, times: int | None = 1, retry_after: str | None = None
    ) -> None:
        self.phone.fail_listing(status, times=times, retry_after=retry_after)

    def loop_paging(self, at_page: int) -> None:
        self.phone.repeat_token_at_page = at_page

    def listing_requests(self) -> int:
        return len(self.phone.listing_requests())

    def redirect_listing_to(self, url: str) -> None:
        self.phone.redirect_listing_to = url

    def next_page_on(self, base_url: str) -> None:
        # Zoom pages by token on the same URL; the nearest thing is a next page that redirects.
        self.phone.next_page_redirect = base_url

    def expire_tokens_after(self, uses: int) -> ZoomProvider:
        self.phone.token_uses = uses
        return self.provider()

    def tokens_minted(self) -> int:
        return len(self.phone.tokens_issued)


@pytest.fixture
def world() -> Iterator[ZoomWorld]:
    with ZoomWorld() as running:
        yield running


class TestZoomProvider(HttpProviderContract):
    pass


# -- auth -----------------------------------------------------------------------------------


def test_the_token_is_minted_with_account_credentials_and_basic_client_auth(
    world: ZoomWorld,
) -> None:
    world.add_call("rec-1", T0 + timedelta(minutes=1))
    listed(world.provider())
    [mint] = world.phone.requests_to("/oauth/token")
    assert mint["role"] == "web"
    assert "grant_type=account_credentials" in mint["body"]
    assert f"account_id={ACCOUNT_ID}" in mint["body"]
    assert CLIENT_SECRET not in mint["body"]
    assert mint["headers"]["Authorization"].startswith("Basic ")
    # The client credentials never reach the API host; the bearer token does.
    for sent in world.phone.requests_to("/v2/"):
        assert sent["role"] == "api"
        assert sent["headers"]["Authorization"].startswith("Bearer zat-")


def test_the_token_is_reused_until_it_nears_expiry(world: ZoomWorld) -> None:
    for n in range(25):
        world.add_call(f"rec-{n}", T0 + timedelta(minutes=1 + n))
    provider = world.provider()
    listed(provider)
    listed(provider)
    assert world.tokens_minted() == 1


def test_a_token_is_minted_again_a_minute_before_its_hour_is_up(world: ZoomWorld) -> None:
    now = [datetime(2026, 3, 2, 12, 0, tzinfo=UTC)]
    provider = world.quiet_limiter(
        ZoomProvider(world.settings(), retry=world.retry(), clock=lambda: now[0])
    )
    world.add_call("rec-1", T0 + timedelta(minutes=1))
    listed(provider)
    now[0] += timedelta(minutes=58)
    listed(provider)
    assert world.tokens_minted() == 1
    now[0] += timedelta(minutes=1, seconds=30)
    listed(provider)
    assert world.tokens_minted() == 2


def test_a_refused_token_on_the_api_names_the_app_credentials_and_scopes(
    world: ZoomWorld,
) -> None:
    world.add_call("rec-1", T0 + timedelta(minutes=1))
    world.phone.token_uses = 0  # every token refused, the fresh one too
    with pytest.raises(ProviderAuthError) as raised:
        listed(world.provider())
    message = str(raised.value)
    assert "provider.client_id" in message and "scopes" in message
    assert "provider.auth" not in message
    assert world.tokens_minted() == 2  # minted again once after the 401, then given up


def test_refused_client_credentials_are_an_auth_error_naming_the_keys(world: ZoomWorld) -> None:
    world.add_call("rec-1", T0 + timedelta(minutes=1))
    with pytest.raises(ProviderAuthError) as raised:
        listed(world.provider(client_secret="not-the-secret"))
    message = str(raised.value)
    assert "provider.client_secret" in message and "provider.account_id" in message
    assert "not-the-secret" not in message


def test_a_wrong_account_id_is_refused_as_a_bad_grant(world: ZoomWorld) -> None:
    with pytest.raises(ProviderAuthError, match=r"provider\.account_id"):
        listed(world.provider(account_id="someone-else"))


def test_the_simulator_refuses_what_zoom_refuses(world: ZoomWorld) -> None:
    token_url = f"{world.web.url}/oauth/token"
    grant = {"grant_type": "account_credentials", "account_id": ACCOUNT_ID}
    # Client credentials in the body instead of Basic: refused.
    body_auth = {**grant, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    assert requests.post(token_url, data=body_auth, timeout=5).status_code == 401
    # The plain client-credentials grant: refused.
    wrong_grant = {**grant, "grant_type": "client_credentials"}
    basic = (CLIENT_ID, CLIENT_SECRET)
    assert requests.post(token_url, data=wrong_grant, auth=basic, timeout=5).status_code == 400
    # The documented query-string form works as well as the SDK's form body.
    answer = requests.post(token_url, params=grant, auth=basic, timeout=5)
    assert answer.status_code == 200
    token = answer.json()["access_token"]
    assert answer.json()["expires_in"] == 3600 and "refresh_token" not in answer.json()
    # A token in the query string is refused, for the API and for files alike.
    listing = f"{world.api.url}/v2/phone/recordings"
    assert requests.get(listing, params={"access_token": token}, timeout=5).status_code == 401
    bearer = {"Authorization": f"Bearer {token}"}
    assert (
        requests.get(world.plain_url, params={"access_token": token}, timeout=5).status_code == 401
    )
    assert requests.get(world.plain_url, headers=bearer, timeout=5).content == AUDIO
    # More than a month, or more than 300 a page: refused.
    too_long = {"from": "2026-01-01", "to": "2026-03-01"}
    assert requests.get(listing, params=too_long, headers=bearer, timeout=5).status_code == 400
    big = {"page_size": "301"}
    assert requests.get(listing, params=big, headers=bearer, timeout=5).status_code == 400


# -- listing --------------------------------------------------------------------------------


def test_the_listing_asks_for_the_window_by_start_time_with_full_pages(world: ZoomWorld) -> None:
    world.add_call("rec-1", T0 + timedelta(minutes=1))
    listed(ZoomProvider(world.settings(page_size=300), retry=world.retry()))
    [request] = world.phone.listing_requests()
    assert request["params"] == {
        "from": "2026-03-02T08:59:59Z",
        "to": "2026-03-02T11:00:01Z",
        "query_date_type": "start_time",
        "page_size": "300",
    }


def test_windows_longer_than_a_month_are_split_into_ones_zoom_accepts(world: ZoomWorld) -> None:
    provider = world.provider()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    world.add_call("january", start + timedelta(days=3))
    world.add_call("march", start + timedelta(days=70))
    spans = split_window(
        Window(start, start + timedelta(days=90)), provider.capabilities.max_window
    )
    assert len(spans) == 4  # 27-day spans
    found = [call_id for span in spans for call_id in call_ids(listed(provider, span))]
    assert sorted(found) == ["january", "march"]


def test_an_expired_next_page_token_makes_the_window_transient(world: ZoomWorld) -> None:
    for n in range(world.page_size + 2):
        world.add_call(f"rec-{n:03d}", T0 + timedelta(minutes=1 + n))
    world.phone.page_token_ttl = 0
    pages = []
    with pytest.raises(TransientProviderError, match="next_page_token"):
        for page in world.provider().list_window(WINDOW):
            pages.append(page)
    assert len(pages) == 1


# -- mapping --------------------------------------------------------------------------------


def test_the_owner_is_the_rep_with_the_email_from_the_phone_users(world: ZoomWorld) -> None:
    at = T0 + timedelta(minutes=3)
    item = recording_item(
        "rec-out",
        at,
        call_id="7001",
        download_url=world.plain_url,
        owner_id="zoom-user-2",
        owner_name="Sam Seller",
        extension=1002,
        contact_name="Pat Prospect",
        contact_number="+14155550199",
    )
    world.phone.add_recording(item)
    inbound = recording_item(
        "rec-in",
        at + timedelta(minutes=1),
        direction="inbound",
        download_url=world.plain_url,
        contact_name="Casey Caller",
        contact_number="+14155550142",
    )
    world.phone.add_recording(inbound)
    records = {r.provider_call_id: r for page in listed(world.provider()) for r in page.records}
    out = records["rec-out"]
    assert (out.rep_email, out.rep_name, out.rep_extension, out.rep_provider_id) == (
        "sam@example.com",
        "Sam Seller",
        "1002",
        "zoom-user-2",
    )
    assert (out.contact_name, out.contact_phone, out.direction) == (
        "Pat Prospect",
        "+14155550199",
        Direction.OUTBOUND,
    )
    assert out.started_at == at and out.duration_seconds == 185
    assert out.raw["call_id"] == "7001"
    came_in = records["rec-in"]
    assert (came_in.contact_name, came_in.contact_phone, came_in.direction) == (
        "Casey Caller",
        "+14155550142",
        Direction.INBOUND,
    )
    assert came_in.rep_email == "rita@example.com"


def test_the_users_are_cached_and_loaded_again_for_an_owner_not_seen_before(
    world: ZoomWorld,
) -> None:
    now = [datetime(2026, 3, 2, 12, 0, tzinfo=UTC)]
    provider = ZoomProvider(world.settings(), retry=world.retry(), clock=lambda: now[0])
    world.add_call("rec-1", T0 + timedelta(minutes=1))
    listed(provider)
    listed(provider)
    assert len(world.phone.requests_to("/v2/phone/users")) == 1
    world.phone.add_user("zoom-user-3", "nina@example.com", name="Nina New", ext=1003)
    world.phone.add_recording(
        recording_item(
            "rec-new",
            T0 + timedelta(minutes=2),
            owner_id="zoom-user-3",
            download_url=world.plain_url,
        )
    )
    now[0] += timedelta(minutes=2)
    records = {r.provider_call_id: r for page in listed(provider) for r in page.records}
    assert records["rec-new"].rep_email == "nina@example.com"
    assert len(world.phone.requests_to("/v2/phone/users")) == 2
    now[0] += timedelta(hours=2)  # stale: loaded again even with every owner known
    listed(provider)
    assert len(world.phone.requests_to("/v2/phone/users")) == 3


def test_users_over_several_pages_are_all_loaded(world: ZoomWorld) -> None:
    for n in range(150):
        world.phone.add_user(f"bulk-{n}", f"bulk{n}@example.com", ext=2000 + n)
    world.phone.add_recording(
        recording_item(
            "rec-bulk", T0 + timedelta(minutes=1), owner_id="bulk-149", download_url=world.plain_url
        )
    )
    [record] = [r for page in listed(world.provider()) for r in page.records]
    assert record.rep_email == "bulk149@example.com"
    assert len(world.phone.requests_to("/v2/phone/users")) == 2


def test_a_call_queue_owner_is_never_the_rep_its_agent_is(world: ZoomWorld) -> None:
    item = recording_item("rec-queue", T0 + timedelta(minutes=1), download_url=world.plain_url)
    item["owner"] = {
        "id": "cq-1",
        "name": "Sales Queue",
        "type": "call queue",
        "extension_number": 800,
    }
    item["outgoing_by"] = {"name": "Sam Seller", "extension_number": "1002"}
    world.phone.add_recording(item)
    [record] = [r for page in listed(world.provider()) for r in page.records]
    assert (record.rep_email, record.rep_name, record.rep_extension, record.rep_provider_id) == (
        "sam@example.com",
        "Sam Seller",
        "1002",
        "zoom-user-2",
    )


def test_each_recording_of_a_transferred_call_is_its_own_row(world: ZoomWorld) -> None:
    at = T0 + timedelta(minutes=1)
    for recording_id, owner in (("rec-a", "zoom-user-1"), ("rec-b", "zoom-user-2")):
        world.phone.add_recording(
            recording_item(
                recording_id,
                at,
                call_id="shared-call",
                owner_id=owner,
                download_url=world.plain_url,
            )
        )
    records = [r for page in listed(world.provider()) for r in page.records]
    assert sorted((r.provider_call_id, r.rep_email) for r in records) == [
        ("rec-a", "rita@example.com"),
        ("rec-b", "sam@example.com"),
    ]


# -- downloads ------------------------------------------------------------------------------


def test_downloads_go_to_the_file_host_with_the_bearer_token_only_in_the_header(
    world: ZoomWorld,
) -> None:
    world.add_call("rec-1", T0 + timedelta(minutes=1))
    provider = world.provider()
    [record] = [r for page in listed(provider) for r in page.records]
    request = provider.resolve_download(_StoredCall.of(record))
    assert request.url == world.plain_url and "access_token" not in request.url
    headers = request.headers_for(request.url)
    assert headers["Authorization"].startswith("Bearer zat-")
    assert requests.get(request.url, headers=headers, timeout=5).content == AUDIO
    # Credentials never go to a host that is not Zoom's.
    assert request.headers_for("https://storage.example.com/file.mp3") == {}
    assert request.format_hint == "mp3"


def test_a_stored_query_stripped_url_is_fetched_again_by_call_id(world: ZoomWorld) -> None:
    world.add_call("rec-signed", T0 + timedelta(minutes=1), signed=True)
    provider = world.provider()
    [record] = [r for page in listed(provider) for r in page.records]
    assert "deadbeefcafe" not in str(record.recording_url)
    request = provider.resolve_download(_StoredCall.of(record))
    assert request.url.endswith(SIGNATURE)
    call_id = record.raw["call_id"]
    assert world.phone.requests_to(f"/v2/phone/call_logs/{call_id}/recordings")


def test_a_download_url_elsewhere_is_refused(world: ZoomWorld) -> None:
    item = recording_item(
        "rec-far", T0 + timedelta(minutes=1), download_url="https://evil.example.net/x.mp3"
    )
    world.phone.add_recording(item)
    provider = world.provider()
    [record] = [r for page in listed(provider) for r in page.records]
    with pytest.raises(PermanentProviderError):
        provider.resolve_download(_StoredCall.of(record))


# -- rate limits ----------------------------------------------------------------------------


def test_a_qps_429_without_retry_after_is_retried_and_then_transient(world: ZoomWorld) -> None:
    world.add_call("rec-1", T0 + timedelta(minutes=1))
    world.phone.fail_listing(429, times=1)
    assert call_ids(listed(world.provider())) == ["rec-1"]
    world.phone.fail_listing(429, times=None)
    with pytest.raises(TransientProviderError) as raised:
        listed(world.provider())
    assert raised.value.status == 429
    assert raised.value.retry_after is not None and 0 < raised.value.retry_after <= 5


def test_a_daily_cap_waits_until_its_retry_after_instant(world: ZoomWorld) -> None:
    world.add_call("rec-1", T0 + timedelta(minutes=1))
    lifts = (datetime.now(UTC) + timedelta(hours=3)).replace(microsecond=0)
    world.phone.fail_listing(
        429, times=None, retry_after=lifts.strftime("%Y-%m-%dT%H:%M:%SZ"), limit_type="Daily-limit"
    )
    with pytest.raises(TransientProviderError, match="daily cap") as raised:
        listed(world.provider())
    assert raised.value.retry_after == pytest.approx(3 * 3600, abs=60)
    # Not hammered: a wait that long ends the attempts at once.
    assert world.listing_requests() == 1


def test_a_daily_cap_without_retry_after_lasts_until_midnight_utc(world: ZoomWorld) -> None:
    world.add_call("rec-1", T0 + timedelta(minutes=1))
    world.phone.fail_listing(429, times=None, limit_type="Daily-limit")
    now = datetime(2026, 3, 2, 21, 30, tzinfo=UTC)
    provider = ZoomProvider(world.settings(), retry=world.retry(), clock=lambda: now)
    world.quiet_limiter(provider)
    with pytest.raises(TransientProviderError, match="daily cap") as raised:
        listed(provider)
    assert raised.value.retry_after == pytest.approx(2.5 * 3600)


def test_retry_after_may_be_an_iso_instant() -> None:
    now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    assert parse_retry_after("2026-03-02T09:01:00Z", now) == 60
    assert parse_retry_after("2026-03-01T00:00:00Z", now) == 0


# -- config ---------------------------------------------------------------------------------


def test_missing_credentials_are_named_and_the_real_hosts_are_the_defaults() -> None:
    settings = ZoomSettings.model_validate({"kind": "zoom"})
    assert settings.api_base_url == "https://api.zoom.us/v2"
    assert settings.token_url == "https://zoom.us/oauth/token"
    problems = missing_settings(settings)
    assert [line.split(":")[0] for line in problems] == [
        "provider.account_id",
        "provider.client_id",
        "provider.client_secret",
    ]
    full = ZoomSettings.model_validate(
        {"kind": "zoom", "account_id": "a", "client_id": "b", "client_secret": "s3cr3t-value"}
    )
    provider = build_provider(full)
    assert provider.hosts.may_send_credentials("https://api.zoom.us/v2/phone/recordings")
    assert provider.hosts.may_send_credentials("https://zoom.us/v2/phone/recording/download/x")
    assert not provider.hosts.may_send_credentials("https://example.com/x")
    assert "s3cr3t-value" not in repr(full)


# -- provider check -------------------------------------------------------------------------


def zoom_env(world: ZoomWorld, **overrides: str) -> dict[str, str]:
    return {
        "SIRO_POLLER_PROVIDER__KIND": "zoom",
        "SIRO_POLLER_PROVIDER__BASE_URL": f"{world.api.url}/v2",
        "SIRO_POLLER_PROVIDER__TOKEN_URL": f"{world.web.url}/oauth/token",
        "SIRO_POLLER_PROVIDER__ACCOUNT_ID": ACCOUNT_ID,
        "SIRO_POLLER_PROVIDER__CLIENT_ID": CLIENT_ID,
        "SIRO_POLLER_PROVIDER__CLIENT_SECRET": CLIENT_SECRET,
        "SIRO_POLLER_PROVIDER__MAX_RETRIES": "0",
        **overrides,
    }


def test_provider_check_maps_the_recent_recordings(world: ZoomWorld) -> None:
    recent = datetime.now(UTC) - timedelta(hours=2)
    for n in range(4):
        world.add_call(f"rec-{n}", recent + timedelta(minutes=n))
    result = CliRunner().invoke(main, ["provider", "check"], env=zoom_env(world))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "provider zoom: ok: 4 of 4 records mapped"
    assert CLIENT_SECRET not in result.output
    assert len(world.phone.listing_requests()) == 1


def test_provider_check_with_a_wrong_secret_is_an_auth_verdict(world: ZoomWorld) -> None:
    env = zoom_env(world, SIRO_POLLER_PROVIDER__CLIENT_SECRET="wrong-secret-value")
    result = CliRunner().invoke(main, ["provider", "check"], env=env)
    assert result.exit_code == 1
    assert "provider zoom: auth:" in result.stdout
    assert "provider.client_secret" in result.stdout
    assert "wrong-secret-value" not in result.output
    assert world.phone.listing_requests() == []


def test_provider_check_names_the_missing_app_credentials_before_any_request(
    world: ZoomWorld,
) -> None:
    env = zoom_env(world)
    del env["SIRO_POLLER_PROVIDER__CLIENT_SECRET"], env["SIRO_POLLER_PROVIDER__ACCOUNT_ID"]
    result = CliRunner().invoke(main, ["provider", "check"], env=env)
    assert result.exit_code == 2
    assert "provider.account_id: required" in result.stderr
    assert "provider.client_secret: required" in result.stderr
    assert world.phone.requests == []
