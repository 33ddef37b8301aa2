"""The Dialpad adapter: the provider contract over its simulator, and Dialpad's own rules."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner

from poller.adapters.http import RetryPolicy
from poller.adapters.providers.dialpad import DialpadProvider, DialpadSettings
from poller.cli import main
from poller.config import ConfigError, load_settings
from poller.domain.states import Direction, RecordingState
from poller.domain.windows import Window
from poller.ports.provider import (
    PermanentProviderError,
    ProviderAuthError,
    ProviderPort,
    ProviderRefused,
    TransientProviderError,
)
from poller.simulators.audio import mp3_bytes
from poller.simulators.dialpad_server import (
    DialpadServers,
    call_proto,
    epoch_ms,
    recording_detail,
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

API_KEY = "dialpad-api-key-0123456789"
AUDIO = b"ID3dialpad-audio"


class DialpadWorld(HttpWorld):
    """Dialpad's call log and share-link media host, on two local servers."""

    newest_first = True
    static_credentials = True

    def __init__(self) -> None:
        self.servers = DialpadServers(API_KEY, page_size=self.page_size)
        self.state = self.servers.state
        self.waits: list[float] = []
        self.time = FakeTime()

    def __enter__(self) -> DialpadWorld:
        self.servers.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.servers.__exit__(None, None, None)

    def settings(self, **overrides: Any) -> DialpadSettings:
        values: dict[str, Any] = {
            "kind": "dialpad",
            "base_url": self.servers.url,
            "api_key": API_KEY,
            # The media host is another host: listed explicitly, it gets no credentials.
            "download_hosts": [self.servers.media_host],
            **overrides,
        }
        return DialpadSettings.model_validate(values)

    def retry(self) -> RetryPolicy:
        return RetryPolicy(max_tries=3, base_delay=0.0, max_delay=10.0, sleep=self.retry_sleep)

    def provider(self, *, max_pages: int | None = None, **overrides: Any) -> DialpadProvider:
        provider = DialpadProvider(
            self.settings(**overrides),
            retry=self.retry(),
            sleep=self.time.sleep,
            monotonic=self.time,
        )
        if max_pages is not None:
            provider.max_pages = lambda: max_pages  # type: ignore[method-assign]
        return provider

    def add_call(
        self, call_id: str, at: datetime, *, recording: bool = True, signed: bool = False
    ) -> None:
        details = [recording_detail(f"rec-{call_id}", at)] if recording else None
        if signed:
            self.state.signed.add(f"rec-{call_id}")
            assert details is not None
            details[0]["url"] = f"https://dialpad.com/r/rec-{call_id}?{SIGNATURE}"
        self.state.add_call(call_proto(call_id, at, recordings=details))  # type: ignore[arg-type]
        self.state.add_audio("callrecording", f"rec-{call_id}", AUDIO)

    def add_recording(self, call_id: str) -> None:
        record, _ = self.state.calls[call_id]
        started = datetime.fromtimestamp(int(record["date_started"]) / 1000, tz=T0.tzinfo)
        self.state.update_call(
            call_id, recording_details=[recording_detail(f"rec-{call_id}", started)]
        )

    def add_malformed(self, call_id: str, at: datetime) -> None:
        record = call_proto(call_id, at)  # type: ignore[arg-type]
        record["date_started"] = "the day before yesterday"
        record["_sort_ms"] = epoch_ms(at)
        self.state.add_call(record)

    def fail_listing(
        self, status: int, *, times: int | None = 1, retry_after: str | None = None
    ) -> None:
        self.state.fail_listing(status, times=times, retry_after=retry_after)

    def loop_paging(self, at_page: int) -> None:
        self.state.repeat_cursor_at_page = at_page

    def listing_requests(self) -> int:
        return len(self.state.listing_requests())

    def redirect_listing_to(self, url: str) -> None:
        self.state.redirect_listing_to = url

    def next_page_on(self, base_url: str) -> None:
        # Dialpad pages by an opaque cursor, not a URL: the closest it can come is the next
        # page's request being redirected to another host.
        self.state.redirect_page_to = base_url

    def expire_tokens_after(self, uses: int) -> ProviderPort:
        # An API key has the expiry its admin chose: it is refused from then on.
        self.state.key_uses_left = uses
        return self.provider()

    def tokens_minted(self) -> int:
        return 0


@pytest.fixture
def world() -> Iterator[DialpadWorld]:
    with DialpadWorld() as running:
        yield running


class TestDialpad(HttpProviderContract):
    @pytest.fixture
    def world(self) -> Iterator[DialpadWorld]:
        with DialpadWorld() as running:
            yield running


def only_record(provider: DialpadProvider, window: Window = WINDOW) -> Any:
    [record] = [record for page in listed(provider, window) for record in page.records]
    return record


# -- the listing request --------------------------------------------------------------------


def test_the_listing_asks_for_the_window_in_epoch_ms_with_the_bearer_key(
    world: DialpadWorld,
) -> None:
    world.add_call("c1", T0 + timedelta(minutes=5))
    listed(world.provider(long_call_hours=0))
    [(method, path, query, headers)] = world.state.requests
    assert (method, path) == ("GET", "/api/v2/call")
    assert headers["Authorization"] == f"Bearer {API_KEY}"
    assert "apikey" not in query
    # The half-open window widened by a millisecond each side, whatever Dialpad's bounds.
    assert query["started_after"] == [str(epoch_ms(WINDOW.start) - 1)]
    assert query["started_before"] == [str(epoch_ms(WINDOW.end) + 1)]


def test_pages_follow_the_cursor_newest_first_and_every_call_comes_once(
    world: DialpadWorld,
) -> None:
    for n in range(25):
        world.add_call(f"c{n:02d}", T0 + timedelta(minutes=1 + n))
    pages = listed(world.provider())
    assert len(pages) == 3
    ids = call_ids(pages)
    assert ids == sorted(ids, reverse=True)
    assert sorted(ids) == [f"c{n:02d}" for n in range(25)]
    cursors = [query.get("cursor") for query in world.state.listing_requests()]
    assert cursors[0] is None and all(cursors[1:])


def test_an_unknown_cursor_is_refused_like_the_real_api(world: DialpadWorld) -> None:
    answer = requests.get(
        f"{world.servers.url}/api/v2/call",
        params={"cursor": "made-up"},
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=5,
    )
    assert answer.status_code == 400


def test_a_later_page_that_fails_keeps_the_newer_pages_and_names_the_failure(
    world: DialpadWorld,
) -> None:
    for n in range(25):
        world.add_call(f"c{n:02d}", T0 + timedelta(minutes=1 + n))
    provider = world.provider()
    pages = []
    # The first page comes; every later request fails: the window is not complete, so the
    # core keeps its cursor before it and the next cycle lists the whole window again.
    iterator = provider.list_window(WINDOW)
    pages.append(next(iterator))
    world.fail_listing(503, times=None)
    with pytest.raises(TransientProviderError):
        for page in iterator:
            pages.append(page)
    assert len(call_ids(pages)) == 10
    world.state.list_failures.clear()
    assert len(call_ids(listed(provider))) == 25


def test_a_call_that_ends_after_its_window_was_listed_comes_with_a_later_window(
    world: DialpadWorld,
) -> None:
    # A long call starts inside the window but only ends (and so is only listed) later.
    world.state.add_call(
        call_proto("long", T0 + timedelta(minutes=30), duration=timedelta(hours=2)),
        ended=False,
    )
    world.add_call("short", T0 + timedelta(minutes=40))
    provider = world.provider(long_call_hours=4)
    assert call_ids(listed(provider)) == ["short"]
    world.state.end_call("long")
    # The next window starts where this one ended: no lookback at all.
    following = Window(WINDOW.end, WINDOW.end + timedelta(hours=1))
    assert call_ids(listed(provider, following)) == ["long"]


def test_a_call_that_ends_mid_listing_is_listed_by_the_next_window(world: DialpadWorld) -> None:
    for n in range(25):
        world.add_call(f"c{n:02d}", T0 + timedelta(minutes=1 + n))
    # A window is listed once its end has passed, so a call that ends mid-listing ends after
    # the window: here it started among the calls the first page already passed.
    world.state.add_call(
        call_proto("mid", T0 + timedelta(minutes=20), duration=timedelta(minutes=110)),
        ended=False,
    )
    provider = world.provider()
    iterator = provider.list_window(WINDOW)
    first = next(iterator)
    world.state.end_call("mid")
    seen = call_ids([first, *iterator])
    assert "mid" not in seen  # the keyset cursor resumed below it
    following = Window(WINDOW.end, WINDOW.end + timedelta(minutes=30))
    assert "mid" in call_ids(listed(provider, following))


def test_calls_of_the_widened_request_that_ended_before_the_window_are_left_out(
    world: DialpadWorld,
) -> None:
    world.add_call("ended-before", WINDOW.start - timedelta(hours=3))
    world.state.add_call(
        call_proto(
            "spans-start", WINDOW.start - timedelta(minutes=10), duration=timedelta(minutes=30)
        )
    )
    assert call_ids(listed(world.provider(long_call_hours=4))) == ["spans-start"]


def test_an_answer_without_items_stops_the_window_but_an_empty_one_ends_it(
    world: DialpadWorld,
) -> None:
    provider = world.provider()
    assert provider.page_items({}, "page 1") == []
    assert provider.page_items({"cursor": None, "items": []}, "page 1") == []
    with pytest.raises(PermanentProviderError) as raised:
        provider.page_items({"error": {"code": 500}}, "page 1")
    assert "nothing at 'items'" in str(raised.value) and "error" in str(raised.value)
    # Dialpad's proto3 printer leaves an empty list out; it never writes `null` for one.
    with pytest.raises(PermanentProviderError, match="'items' is null"):
        provider.page_items({"cursor": None, "items": None}, "page 1")
    with pytest.raises(PermanentProviderError, match="no records and an error"):
        provider.page_items({"items": [], "error": {"code": 503}}, "page 1")


# -- mapping ----------------------------------------------------------------------------------


def test_a_call_maps_target_as_the_rep_and_contact_as_the_other_party(
    world: DialpadWorld,
) -> None:
    started = T0 + timedelta(minutes=5)
    world.state.add_call(
        call_proto(
            "6543210987654321",
            started,
            duration=timedelta(seconds=186),
            direction="inbound",
            rep_email="ana@example.com",
            rep_phone="+14155550100",
            rep_name="Ana Rep",
            contact_name="Prospect Co",
            contact_phone="+14155550123",
            recordings=[recording_detail("rec_1", started)],
        )
    )
    record = only_record(world.provider())
    assert record.provider_call_id == "6543210987654321"
    assert record.started_at == started
    assert record.ended_at == started + timedelta(seconds=186)
    assert record.duration_seconds == 186  # from milliseconds
    assert record.direction is Direction.INBOUND
    assert (record.rep_email, record.rep_phone, record.rep_name, record.rep_provider_id) == (
        "ana@example.com",
        "+14155550100",
        "Ana Rep",
        "2",
    )
    assert (record.contact_name, record.contact_phone) == ("Prospect Co", "+14155550123")
    assert record.recording_state is RecordingState.READY
    assert record.recording_id == "callrecording:rec_1"


def test_int64_fields_as_json_numbers_map_too(world: DialpadWorld) -> None:
    started = T0 + timedelta(minutes=5)
    record = call_proto("1", started, recordings=[recording_detail("r1", started)])
    record.update(call_id=1002, date_started=epoch_ms(started), date_ended=epoch_ms(started) + 9000)
    world.state.add_call(record)
    mapped = only_record(world.provider())
    assert mapped.provider_call_id == "1002"
    assert mapped.started_at == started


def test_the_call_recording_is_picked_never_a_voicemail(world: DialpadWorld) -> None:
    at = T0 + timedelta(minutes=5)
    world.state.add_call(
        call_proto(
            "c1",
            at,
            recordings=[
                recording_detail("vm", at, recording_type="voicemail"),
                recording_detail("admin", at, recording_type="admincallrecording"),
                recording_detail("short", at, duration=timedelta(seconds=5)),
                recording_detail("main", at, duration=timedelta(minutes=3)),
            ],
        )
    )
    assert only_record(world.provider()).recording_id == "callrecording:main"


def test_an_admin_recording_is_used_when_it_is_the_only_call_recording(
    world: DialpadWorld,
) -> None:
    at = T0 + timedelta(minutes=5)
    world.state.add_call(
        call_proto(
            "c1", at, recordings=[recording_detail("a1", at, recording_type="admincallrecording")]
        )
    )
    world.state.add_audio("admincallrecording", "a1", AUDIO)
    provider = world.provider()
    record = only_record(provider)
    assert record.recording_id == "admincallrecording:a1"
    request = provider.resolve_download(_StoredCall.of(record))
    assert requests.get(request.url, timeout=5).content == AUDIO


def test_recorded_without_details_waits_and_unrecorded_or_voicemail_only_has_none(
    world: DialpadWorld,
) -> None:
    at = T0 + timedelta(minutes=5)
    world.state.add_call(call_proto("waiting", at, was_recorded=True))
    world.state.add_call(call_proto("unrecorded", at + timedelta(minutes=1), was_recorded=False))
    world.state.add_call(
        call_proto(
            "voicemail",
            at + timedelta(minutes=2),
            was_recorded=False,
            recordings=[recording_detail("vm", at, recording_type="voicemail")],
        )
    )
    states = {
        record.provider_call_id: record.recording_state
        for page in listed(world.provider())
        for record in page.records
    }
    assert states == {
        "waiting": RecordingState.PENDING,
        "unrecorded": RecordingState.NONE,
        "voicemail": RecordingState.NONE,
    }


def test_share_links_in_the_record_are_never_stored(world: DialpadWorld) -> None:
    at = T0 + timedelta(minutes=5)
    record = call_proto("c1", at, recordings=[recording_detail("r1", at)])
    record["call_recording_share_links"] = ["https://dialpad.com/shared/call/SECRETLINK"]
    record["voicemail_share_link"] = "https://dialpad.com/shared/vm/SECRETLINK"
    world.state.add_call(record)
    mapped = only_record(world.provider())
    assert "SECRETLINK" not in str(mapped.raw)


def test_a_record_without_call_id_is_malformed_and_the_others_map(world: DialpadWorld) -> None:
    at = T0 + timedelta(minutes=5)
    world.add_call("good", at)
    broken = call_proto("broken", at + timedelta(minutes=1))
    broken["call_id"] = ""
    world.state.calls["broken"] = (broken, True)
    pages = listed(world.provider())
    assert call_ids(pages) == ["good"]
    [error] = [error for page in pages for error in page.malformed]
    assert "call_id" in error.reason


# -- share links and downloads ----------------------------------------------------------------


def test_the_download_goes_through_a_share_link_with_the_configured_privacy(
    world: DialpadWorld,
) -> None:
    world.add_call("c1", T0 + timedelta(minutes=5))
    provider = world.provider()
    record = only_record(provider)
    request = provider.resolve_download(_StoredCall.of(record))
    [body] = world.state.share_requests
    assert body == {
        "recording_id": "rec-c1",
        "recording_type": "callrecording",
        "privacy": "public",
    }
    [(_, _, _, headers)] = [r for r in world.state.requests if r[0] == "POST"]
    assert headers["Authorization"] == f"Bearer {API_KEY}"
    assert request.url.startswith(world.servers.media.url)
    # The media host is not Dialpad's API: it never gets the key.
    assert request.headers_for(request.url) == {}
    assert requests.get(request.url, timeout=5).content == AUDIO


def test_a_stricter_privacy_is_sent_as_configured(world: DialpadWorld) -> None:
    world.add_call("c1", T0 + timedelta(minutes=5))
    provider = world.provider(share_link_privacy="admin")
    provider.resolve_download(_StoredCall.of(only_record(provider)))
    assert world.state.share_requests[0]["privacy"] == "admin"


def test_a_share_link_is_reused_for_a_retried_download(world: DialpadWorld) -> None:
    world.add_call("c1", T0 + timedelta(minutes=5))
    provider = world.provider()
    stored = _StoredCall.of(only_record(provider))
    first = provider.resolve_download(stored)
    second = provider.resolve_download(stored)
    assert first.url == second.url
    assert len(world.state.share_requests) == 1


def test_a_media_host_not_allowed_is_refused_before_anything_is_sent(
    world: DialpadWorld,
) -> None:
    world.add_call("c1", T0 + timedelta(minutes=5))
    provider = world.provider(download_hosts=[])
    with pytest.raises(ProviderRefused):
        provider.resolve_download(_StoredCall.of(only_record(provider)))
    assert world.state.media_requests == []


def test_a_429_on_share_links_reschedules_with_its_wait(world: DialpadWorld) -> None:
    world.add_call("c1", T0 + timedelta(minutes=5))
    provider = world.provider()
    stored = _StoredCall.of(only_record(provider))
    world.state.fail_share_links(429, times=None, retry_after="45")
    with pytest.raises(TransientProviderError) as raised:
        provider.resolve_download(stored)
    # Longer than the in-call retry would wait: the worker reschedules the row with it.
    assert raised.value.retry_after == pytest.approx(45.0)
    assert raised.value.status == 429
    # The listing is not paused by the share links' limit.
    assert call_ids(listed(provider)) == ["c1"]


def test_a_short_429_on_share_links_is_waited_out_within_the_call(world: DialpadWorld) -> None:
    world.add_call("c1", T0 + timedelta(minutes=5))
    provider = world.provider()
    stored = _StoredCall.of(only_record(provider))
    world.state.fail_share_links(429, times=1, retry_after="2")
    request = provider.resolve_download(stored)
    assert requests.get(request.url, timeout=5).content == AUDIO
    assert world.waits == [pytest.approx(2.0)]


def test_share_links_are_throttled_to_the_configured_rate(world: DialpadWorld) -> None:
    for n in range(2):
        world.add_call(f"c{n}", T0 + timedelta(minutes=1 + n))
    provider = world.provider(share_links_per_minute=2)
    stored = [_StoredCall.of(record) for page in listed(provider) for record in page.records]
    provider.resolve_download(stored[0])
    # Two a minute, evenly spaced: the next link is 30 s off, too long for a download to wait.
    with pytest.raises(TransientProviderError) as raised:
        provider.resolve_download(stored[1])
    assert raised.value.retry_after == pytest.approx(30.0, abs=1.0)
    assert len(world.state.share_requests) == 1  # the second was never sent


def test_the_listing_pace_keeps_to_dialpads_20_requests_a_second(world: DialpadWorld) -> None:
    limiter = world.provider().http.rate_limiter
    assert limiter is not None
    assert (limiter.rate, limiter.period) == (20, pytest.approx(1.0))
    slower = world.provider(requests_per_minute=90).http.rate_limiter
    assert slower is not None and slower.rate / slower.period * 60 == pytest.approx(90)


def test_the_simulator_enforces_100_share_links_a_minute(world: DialpadWorld) -> None:
    world.add_call("c1", T0 + timedelta(minutes=5))
    statuses = [
        requests.post(
            f"{world.servers.url}/api/v2/recordingsharelink",
            json={"recording_id": "rec-c1", "recording_type": "callrecording"},
            headers={"Authorization": f"Bearer {API_KEY}"},
            timeout=5,
        ).status_code
        for _ in range(101)
    ]
    assert statuses[:100] == [200] * 100
    assert statuses[100] == 429


def test_a_recording_dialpad_no_longer_has_fails_the_row_permanently(
    world: DialpadWorld,
) -> None:
    world.add_call("c1", T0 + timedelta(minutes=5))
    provider = world.provider()
    stored = _StoredCall.of(only_record(provider))
    world.state.audio.clear()
    with pytest.raises(PermanentProviderError) as raised:
        provider.resolve_download(stored)
    assert raised.value.status == 404


def test_a_refused_key_names_the_api_key_setting_and_never_shows_it(world: DialpadWorld) -> None:
    world.add_call("c1", T0 + timedelta(minutes=5))
    provider = world.provider(api_key="not-the-key-987654")
    with pytest.raises(ProviderAuthError) as raised:
        listed(provider)
    assert "provider.api_key" in str(raised.value)
    assert "not-the-key-987654" not in str(raised.value)


def test_a_missing_api_key_is_named_by_the_requirements() -> None:
    settings = DialpadSettings.model_validate({"kind": "dialpad"})
    assert settings.requirements() == [
        "provider.api_key: required: a Dialpad company-admin API key with the calls:list scope"
    ]


def test_the_key_goes_only_to_dialpad_hosts() -> None:
    settings = DialpadSettings.model_validate(
        {"kind": "dialpad", "api_key": API_KEY, "download_hosts": ["media.example.com"]}
    )
    provider = DialpadProvider(settings)
    assert provider.base_url == "https://dialpad.com"
    assert provider.hosts.credential_hosts == {"dialpad.com"}
    assert provider.hosts.https_only
    assert API_KEY not in repr(settings)


def test_real_audio_survives_the_share_link_download(world: DialpadWorld) -> None:
    at = T0 + timedelta(minutes=5)
    world.state.add_call(call_proto("c1", at, recordings=[recording_detail("r1", at)]))
    audio = mp3_bytes(1)
    world.state.add_audio("callrecording", "r1", audio)
    provider = world.provider()
    request = provider.resolve_download(_StoredCall.of(only_record(provider)))
    assert requests.get(request.url, timeout=5).content == audio


# -- configuration --------------------------------------------------------------------------


def _load(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "c.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_settings(path)
    return raised.value.problems


def test_a_dialpad_table_loads_with_its_own_keys(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        '[provider]\nkind = "dialpad"\napi_key = "k-123"\nshare_link_privacy = "company"\n',
        encoding="utf-8",
    )
    provider = load_settings(path).provider
    assert isinstance(provider, DialpadSettings)
    assert provider.share_link_privacy == "company"
    assert provider.name == "dialpad"


def test_bad_dialpad_keys_are_named_as_the_file_names_them(tmp_path: Path) -> None:
    problems = _load(
        tmp_path,
        '[[providers]]\nkind = "dialpad"\nname = "dp"\napi_key = "k"\n'
        'share_link_privacy = "everyone"\ntoken = "x"\n',
    )
    assert sorted(problems) == [
        "providers.dp.share_link_privacy: Input should be 'owner', 'admin', 'company' or "
        "'public' (got 'everyone')",
        'providers.dp.token: applies only to kind = "generic" or kind = "salesloft"',
    ]


def test_an_unknown_kind_names_the_kinds_there_are(tmp_path: Path) -> None:
    [problem] = _load(tmp_path, '[provider]\nkind = "dialpadd"\n')
    assert problem.startswith("provider.kind: unknown kind 'dialpadd'; the kinds are ")
    assert "dialpad" in problem.split("the kinds are ")[1].split(", ")


def test_config_check_names_the_missing_api_key(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[provider]\nkind = "dialpad"\n', encoding="utf-8")
    result = CliRunner().invoke(main, ["--config", str(path), "config", "check"])
    assert result.exit_code != 0
    assert "provider.api_key: required: a Dialpad company-admin API key" in result.output
