"""The generic adapter against a fake call-log API on a real socket."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from poller.adapters.http import RetryPolicy
from poller.adapters.providers import build_provider
from poller.adapters.providers.generic import GenericProvider, GenericSettings
from poller.config import ConfigError
from poller.domain.call_record import DownloadRequest, RateLimitHints
from poller.domain.raw_record import MAX_DEPTH, TOO_DEEP, parse_time
from poller.domain.records import Call
from poller.domain.states import CallState, Direction, RecordingState
from poller.domain.windows import Window
from poller.ports.provider import (
    ListedPage,
    MalformedRecordError,
    PageLimitExceeded,
    PagingLoopError,
    PermanentProviderError,
    RecordPosition,
    TransientProviderError,
)
from poller.simulators.http_server import LocalHTTPServer, QuietHandler
from poller.simulators.provider_server import FakeCallLog, quickstart_call, serve

T0 = datetime(2026, 2, 23, 14, 0, tzinfo=UTC)
WINDOW = Window(T0 - timedelta(hours=1), T0 + timedelta(hours=1))
NO_WAIT = RetryPolicy(max_tries=3, base_delay=0.0, max_delay=1.0)


def adapter(url: str, retry: RetryPolicy = NO_WAIT, **settings: Any) -> GenericProvider:
    return GenericProvider(GenericSettings(base_url=url, **settings), retry=retry)


def pages(provider: GenericProvider, window: Window = WINDOW) -> list[ListedPage]:
    return list(provider.list_window(window))


def ids(listed: list[ListedPage]) -> list[str]:
    return [record.provider_call_id for page in listed for record in page.records]


@pytest.fixture
def api() -> FakeCallLog:
    return FakeCallLog(page_size=3)


@pytest.fixture
def server(api: FakeCallLog) -> Iterator[LocalHTTPServer]:
    with serve(api) as running:
        yield running


def add_calls(api: FakeCallLog, count: int, *, url: str | None = None) -> None:
    for n in range(count):
        at = T0 + timedelta(minutes=n)
        api.add_call(quickstart_call(f"call-{n}", at, recording_url=url), at)


# -- normalising -------------------------------------------------------------------------


def test_defaults_read_the_quickstart_payload(api: FakeCallLog, server: LocalHTTPServer) -> None:
    api.add_call(
        quickstart_call("call-789", T0, recording_url="https://your-voip.com/recordings/c.m4a"), T0
    )
    api.add_call(quickstart_call("call-790", T0 + timedelta(seconds=5)), T0)
    [page] = pages(adapter(server.url))
    ready, waiting = page.records
    assert ready.provider_call_id == "call-789"
    assert ready.rep_email == "rep@yourcompany.com"
    assert ready.rep_phone == "+14251234563"
    assert ready.contact_name == "Jane Smith"
    assert ready.contact_phone == "+15551234567"
    assert ready.started_at == T0 and ready.started_at.tzinfo is not None
    assert ready.recording_url == "https://your-voip.com/recordings/c.m4a"
    assert ready.recording_state is RecordingState.READY
    assert ready.raw["call_id"] == "call-789"
    assert waiting.recording_state is RecordingState.PENDING
    assert waiting.recording_url is None


def test_a_nested_shape_maps_through_configuration() -> None:
    provider = adapter(
        "https://api.example.com/v2",
        fields={
            "call_id": "id",
            "recording_id": "media.id",
            "started_at": "times.start",
            "started_at_format": "unix_ms",
            "ended_at": "times.end",
            "ended_at_format": "unix_ms",
            "duration": "duration_ms",
            "duration_unit": "milliseconds",
            "direction": "type",
            "rep_email": "agent.email",
            "rep_phone": "",
            "rep_provider_id": "agent.id",
            "rep_name": "agent.name",
            "rep_extension": "agent.ext",
            "contact_name": "customer.name",
            "contact_phone": "customer.numbers.0",
            "recording_url": "media.url",
            "recording_status": "media.status",
        },
    )
    raw = {
        "id": 42,
        "times": {"start": 1771855200000, "end": 1771855500000},
        "duration_ms": 299500,
        "type": "Outgoing",
        "agent": {"email": "a@example.com", "id": 7, "name": "Ann", "ext": "101"},
        "customer": {"name": "Bo", "numbers": ["+15550001111", "+15550002222"]},
        "media": {"id": "m-1", "url": "/media/m-1.wav", "status": "AVAILABLE"},
    }
    record = provider.normalise(raw, RecordPosition(WINDOW, 1, 0))
    assert record.provider_call_id == "42"
    assert record.recording_id == "m-1"
    assert record.started_at == datetime(2026, 2, 23, 14, 0, tzinfo=UTC)
    assert record.ended_at == datetime(2026, 2, 23, 14, 5, tzinfo=UTC)
    assert record.duration_seconds == 300
    assert record.direction is Direction.OUTBOUND
    assert (record.rep_email, record.rep_provider_id, record.rep_name, record.rep_extension) == (
        "a@example.com",
        "7",
        "Ann",
        "101",
    )
    assert record.rep_phone is None
    assert record.contact_phone == "+15550001111"
    assert record.recording_url == "https://api.example.com/media/m-1.wav"
    assert record.recording_state is RecordingState.READY

    absent = {**raw, "media": {"status": "deleted"}}
    assert (
        provider.normalise(absent, RecordPosition(WINDOW, 1, 1)).recording_state
        is RecordingState.NONE
    )
    processing = {**raw, "media": {"url": "/media/m-1.wav", "status": "processing"}}
    assert (
        provider.normalise(processing, RecordPosition(WINDOW, 1, 2)).recording_state
        is RecordingState.PENDING
    )


def test_duration_comes_from_start_and_end_when_not_given() -> None:
    provider = adapter("https://api.example.com", fields={"ended_at": "ended_at"})
    raw = {"call_id": "c", "started_at": "2026-02-23T14:00:00Z", "ended_at": "2026-02-23T14:01:30Z"}
    assert provider.normalise(raw, RecordPosition(WINDOW, 1, 0)).duration_seconds == 90


@pytest.mark.parametrize(
    ("value", "time_format", "expected"),
    [
        ("2026-02-23T14:00:00Z", "iso8601", T0),
        ("2026-02-23T16:00:00+02:00", "iso8601", T0),
        ("2026-02-23 14:00:00", "iso8601", T0),  # naive: taken as UTC
        (1771855200, "unix_s", T0),
        ("1771855200", "unix_s", T0),
        (1771855200000, "unix_ms", T0),
        ("Mon, 23 Feb 2026 14:00:00 +0000", "rfc2822", T0),
    ],
)
def test_time_formats(value: object, time_format: str, expected: datetime) -> None:
    parsed = parse_time(value, time_format)
    assert parsed == expected
    assert parsed.utcoffset() == timedelta(0)


def test_malformed_records_are_reported_with_their_position_and_the_rest_go_through(
    api: FakeCallLog, server: LocalHTTPServer
) -> None:
    api.page_size = 10
    api.add_call(quickstart_call("good-1", T0), T0)
    api.add_call({"email": "rep@yourcompany.com", "started_at": "2026-02-23T14:00:01Z"}, T0)
    api.add_call({**quickstart_call("bad-time", T0), "started_at": "yesterday-ish"}, T0)
    api.add_call(["not", "an", "object"], T0, key="list")  # type: ignore[arg-type]
    api.add_call(quickstart_call("good-2", T0), T0 + timedelta(seconds=1))
    [page] = pages(adapter(server.url))
    assert [record.provider_call_id for record in page.records] == ["good-1", "good-2"]
    assert page.item_count == 5
    problems = {(m.position.page, m.position.index): m for m in page.malformed}
    assert len(problems) == 3
    no_id = next(m for m in page.malformed if "call_id has no value" in m.reason)
    assert no_id.position.window == WINDOW and no_id.position.page == 1
    bad_time = next(m for m in page.malformed if m.call_id == "bad-time")
    assert "yesterday-ish" in bad_time.reason and "iso8601" in bad_time.reason
    assert f"page 1, item {bad_time.position.index}" in str(bad_time)


def test_over_long_text_is_truncated_and_nul_characters_dropped() -> None:
    provider = adapter("https://api.example.com")
    raw = {**quickstart_call("c-1", T0), "contact_name": "x" * 400, "note": "a\x00b"}
    record = provider.normalise(raw, RecordPosition(WINDOW, 1, 0))
    assert record.contact_name == "x" * 255
    assert record.raw["note"] == "ab"


# -- listing -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("time_format", "start", "end"),
    [
        ("iso8601", "2026-02-23T12:59:59Z", "2026-02-23T15:00:01Z"),
        ("unix_s", "1771851599", "1771858801"),
        ("unix_ms", "1771851599999", "1771858800001"),
    ],
)
def test_the_window_is_sent_in_the_configured_format_widened_by_one_unit(
    api: FakeCallLog, server: LocalHTTPServer, time_format: str, start: str, end: str
) -> None:
    api.time_format = time_format  # type: ignore[assignment]
    api.start_param, api.end_param = "since", "until"
    pages(
        adapter(
            server.url,
            listing={"start_param": "since", "end_param": "until", "time_format": time_format},
        )
    )
    [request] = api.list_requests()
    assert (request["query"]["since"], request["query"]["until"]) == (start, end)


def test_fixed_parameters_and_no_end_parameter(api: FakeCallLog, server: LocalHTTPServer) -> None:
    api.end_param = None
    add_calls(api, 2)
    listed = pages(adapter(server.url, listing={"end_param": "", "params": {"order": "asc"}}))
    assert ids(listed) == ["call-0", "call-1"]
    [request] = api.list_requests()
    assert request["query"]["order"] == "asc" and "to" not in request["query"]


def test_token_paging_walks_every_page(api: FakeCallLog, server: LocalHTTPServer) -> None:
    add_calls(api, 8)
    listed = pages(adapter(server.url))
    assert [page.number for page in listed] == [1, 2, 3]
    assert ids(listed) == [f"call-{n}" for n in range(8)]
    tokens = [r["query"].get("page_token") for r in api.list_requests()]
    assert tokens == [None, "tok-3", "tok-6"]


def test_page_number_paging_stops_at_a_short_page(
    api: FakeCallLog, server: LocalHTTPServer
) -> None:
    api.paging, api.page_size_param = "page_number", "per_page"
    add_calls(api, 7)
    provider = adapter(
        server.url,
        paging={"mode": "page_number", "page_size_param": "per_page", "page_size": 3},
    )
    assert ids(pages(provider)) == [f"call-{n}" for n in range(7)]
    assert [r["query"]["page"] for r in api.list_requests()] == ["1", "2", "3"]


def test_next_url_paging_with_nested_items(api: FakeCallLog, server: LocalHTTPServer) -> None:
    api.paging, api.items_path, api.next_url_path = "next_url", "data.items", "links.next"
    add_calls(api, 5)
    provider = adapter(
        server.url,
        listing={"items_path": "data.items"},
        paging={"mode": "next_url", "next_url_path": "links.next"},
    )
    assert ids(pages(provider)) == [f"call-{n}" for n in range(5)]


def test_link_header_paging(api: FakeCallLog, server: LocalHTTPServer) -> None:
    api.paging = "link_header"
    add_calls(api, 7)
    listed = pages(adapter(server.url, paging={"mode": "link_header"}))
    assert ids(listed) == [f"call-{n}" for n in range(7)]
    assert len(listed) == 3


def test_offset_paging_stops_at_a_short_page(api: FakeCallLog, server: LocalHTTPServer) -> None:
    api.paging, api.page_size_param = "offset", "limit"
    add_calls(api, 7)
    provider = adapter(
        server.url, paging={"mode": "offset", "page_size_param": "limit", "page_size": 3}
    )
    assert ids(pages(provider)) == [f"call-{n}" for n in range(7)]
    offsets = [request["query"].get("offset") for request in api.list_requests()]
    assert offsets == ["0", "3", "6"]


def test_offset_paging_needs_a_page_size() -> None:
    with pytest.raises(ValueError, match="offset paging needs page_size"):
        GenericSettings(base_url="https://x.example", paging={"mode": "offset"})


def test_a_body_that_is_the_list_itself(api: FakeCallLog, server: LocalHTTPServer) -> None:
    api.items_path, api.paging = None, "none"
    add_calls(api, 2)
    provider = adapter(server.url, listing={"items_path": ""}, paging={"mode": "none"})
    assert ids(pages(provider)) == ["call-0", "call-1"]


def test_a_repeated_token_stops_the_window_after_the_pages_before_it(
    api: FakeCallLog, server: LocalHTTPServer
) -> None:
    add_calls(api, 12)
    api.repeat_token_at_page = 2
    received: list[ListedPage] = []
    with pytest.raises(PagingLoopError, match="already returned"):
        for page in adapter(server.url).list_window(WINDOW):
            received.append(page)
    assert [page.number for page in received] == [1, 2]
    assert len(api.list_requests()) == 2


def test_a_repeated_next_url_is_a_loop_too(api: FakeCallLog, server: LocalHTTPServer) -> None:
    api.paging, api.repeat_token_at_page = "next_url", 3
    add_calls(api, 12)
    with pytest.raises(PagingLoopError):
        pages(adapter(server.url, paging={"mode": "next_url"}))


def test_a_page_number_the_api_ignores_is_a_loop(api: FakeCallLog, server: LocalHTTPServer) -> None:
    api.paging, api.page_param = "page_number", "p"  # the API does not know "page"
    add_calls(api, 7)
    with pytest.raises(PagingLoopError, match="same items as the one before"):
        pages(adapter(server.url, paging={"mode": "page_number", "page_size": 3}))


def test_a_hard_page_limit_bounds_every_window(api: FakeCallLog, server: LocalHTTPServer) -> None:
    add_calls(api, 12)
    with pytest.raises(PageLimitExceeded):
        pages(adapter(server.url, paging={"max_pages": 2}))


def test_a_next_url_to_another_host_is_refused(server: LocalHTTPServer) -> None:
    class Elsewhere(QuietHandler):
        def do_GET(self) -> None:
            body = b'{"calls": [], "next": "http://evil.example:9/steal"}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    with (
        LocalHTTPServer(Elsewhere) as other,
        pytest.raises(PermanentProviderError, match="not the provider"),
    ):
        pages(adapter(other.url, paging={"mode": "next_url"}))


def test_credentials_never_follow_a_redirect_to_another_host() -> None:
    seen: list[dict[str, str]] = []

    class Collector(QuietHandler):
        def do_GET(self) -> None:
            seen.append(dict(self.headers.items()))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

    with LocalHTTPServer(Collector) as target:

        class Redirector(QuietHandler):
            def do_GET(self) -> None:
                self.send_response(302)
                self.send_header("Location", target.url.replace("127.0.0.1", "localhost") + "/x")
                self.send_header("Content-Length", "0")
                self.end_headers()

        with LocalHTTPServer(Redirector) as redirector:
            provider = adapter(redirector.url, auth="api_key", api_key="k-123456")
            # Not an allowed host: refused before connecting, so no credentials could follow.
            with pytest.raises(PermanentProviderError, match="refused to connect to localhost"):
                pages(provider)
    assert seen == []


# -- auth --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("auth", "settings"),
    [
        (("bearer", "tok-abc"), {"auth": "bearer", "token": "tok-abc"}),
        (("basic", "ann", "pw-1"), {"auth": "basic", "username": "ann", "password": "pw-1"}),
        (
            ("api_key", "X-Api-Token", "key-9"),
            {"auth": "api_key", "api_key_header": "X-Api-Token", "api_key": "key-9"},
        ),
    ],
)
def test_each_auth_kind_is_accepted(
    api: FakeCallLog, server: LocalHTTPServer, auth: tuple[str, ...], settings: dict[str, str]
) -> None:
    api.auth = auth
    add_calls(api, 1)
    assert ids(pages(adapter(server.url, **settings))) == ["call-0"]


def test_a_rejected_credential_is_permanent_and_not_in_the_message(
    api: FakeCallLog, server: LocalHTTPServer
) -> None:
    api.auth = ("bearer", "right-token")
    with pytest.raises(PermanentProviderError) as caught:
        pages(adapter(server.url, auth="bearer", token="wrong-token-value"))
    assert caught.value.status == 401
    assert "wrong-token-value" not in str(caught.value)
    assert len(api.list_requests()) == 1  # a 401 is not retried


def test_missing_credentials_are_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"provider\.token"):
        build_provider(GenericSettings(base_url="https://x.example", auth="bearer"))
    with pytest.raises(ConfigError, match=r"provider\.base_url"):
        build_provider(GenericSettings())


# -- failures and retries ----------------------------------------------------------------


def test_a_transient_failure_is_retried_within_the_cycle(
    api: FakeCallLog, server: LocalHTTPServer
) -> None:
    add_calls(api, 5)
    api.fail_page(2, 503, times=2)
    assert ids(pages(adapter(server.url))) == [f"call-{n}" for n in range(5)]
    assert len(api.list_requests()) == 4  # page 1, page 2 three times


def test_retries_are_bounded(api: FakeCallLog, server: LocalHTTPServer) -> None:
    add_calls(api, 5)
    api.fail_page(2, 500, times=None)
    received: list[ListedPage] = []
    with pytest.raises(TransientProviderError) as caught:
        for page in adapter(server.url).list_window(WINDOW):
            received.append(page)
    assert [page.number for page in received] == [1]
    assert caught.value.status == 500
    assert "page 2" in str(caught.value)
    assert len(api.list_requests()) == 1 + NO_WAIT.max_tries


def test_a_429_honours_a_short_retry_after_and_gives_up_on_a_long_one(
    api: FakeCallLog, server: LocalHTTPServer
) -> None:
    add_calls(api, 2)
    api.fail_page(1, 429, times=1, retry_after="0")
    assert ids(pages(adapter(server.url))) == ["call-0", "call-1"]
    api.requests.clear()
    api.fail_page(1, 429, times=1, retry_after="3600")
    with pytest.raises(TransientProviderError) as caught:
        pages(adapter(server.url))
    assert caught.value.retry_after == 3600
    assert len(api.list_requests()) == 1  # waiting an hour is the next cycle's business


def test_a_refused_connection_is_transient() -> None:
    with LocalHTTPServer(QuietHandler) as gone:
        url = gone.url
    with pytest.raises(TransientProviderError, match="connection failed"):
        pages(adapter(url, retry=RetryPolicy(max_tries=1)))


def test_a_body_that_is_not_json_or_has_no_list_is_permanent() -> None:
    class Html(QuietHandler):
        def do_GET(self) -> None:
            body = b"<html>maintenance</html>" if "html" in self.path else b'{"calls": 5}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    with LocalHTTPServer(Html) as server:
        with pytest.raises(PermanentProviderError, match="not JSON"):
            pages(adapter(server.url, listing={"path": "/html"}))
        with pytest.raises(PermanentProviderError, match="is not a list"):
            pages(adapter(server.url))


# -- downloads ---------------------------------------------------------------------------


def stored_call(record_url: str | None, call_id: str = "call-1") -> Call:
    return Call(
        id=1,
        provider="generic",
        provider_call_id=call_id,
        state=CallState.PENDING,
        recording_url=record_url,
    )


def test_a_stable_recording_url_downloads_with_provider_auth_on_its_host_only(
    api: FakeCallLog, server: LocalHTTPServer
) -> None:
    provider = adapter(server.url, auth="bearer", token="tok-abc")
    request = provider.resolve_download(stored_call(server.url + "/recordings/call-1.mp3"))
    assert request.url == server.url + "/recordings/call-1.mp3"
    assert request.format_hint == "mp3"
    assert request.headers_for(request.url) == {"Authorization": "Bearer tok-abc"}
    assert request.headers_for("https://bucket.s3.amazonaws.com/x.mp3") == {}


def test_credentials_are_withheld_from_plain_http_when_the_api_is_https() -> None:
    request = DownloadRequest(
        url="https://api.example.com/r.wav",
        headers={"Authorization": "Bearer t"},
        credential_hosts=frozenset({"api.example.com", "media.example.com"}),
        https_only=True,
    )
    assert request.headers_for("https://media.example.com/r.wav") == {"Authorization": "Bearer t"}
    assert request.headers_for("http://api.example.com/r.wav") == {}


def test_a_signed_recording_url_is_never_stored_and_is_fetched_fresh_for_download(
    api: FakeCallLog, server: LocalHTTPServer
) -> None:
    signed = "https://bucket.example.net/c1.mp3?X-Amz-Signature=deadbeef&X-Amz-Expires=600"
    api.add_call(quickstart_call("call-1", T0, recording_url=signed), T0)
    [page] = pages(adapter(server.url))
    [record] = page.records
    assert record.recording_state is RecordingState.READY
    assert record.recording_url is not None and "deadbeef" not in record.recording_url
    assert "deadbeef" not in repr(record.raw)

    without_refetch = adapter(server.url)
    with pytest.raises(PermanentProviderError, match="refetch_path"):
        without_refetch.resolve_download(record)

    refetching = adapter(
        server.url,
        auth="bearer",
        token="tok-abc",
        recording={"refetch_path": "/calls/{call_id}", "refetch_item_path": "call"},
        download_hosts=["bucket.example.net"],
    )
    api.auth = ("bearer", "tok-abc")
    request = refetching.resolve_download(record)
    assert request.url == signed
    # A signed URL carries its own authority: provider credentials stay home.
    assert request.headers_for(request.url) == {}


def test_a_call_without_a_recording_url_cannot_be_resolved(server: LocalHTTPServer) -> None:
    with pytest.raises(PermanentProviderError, match="no recording URL"):
        adapter(server.url).resolve_download(stored_call(None))


# -- rate limits -------------------------------------------------------------------------


def test_rate_limit_hints_from_common_headers() -> None:
    received = T0
    hints = RateLimitHints.from_headers(
        {"Retry-After": "7", "X-RateLimit-Remaining": "0", "X-RateLimit-Limit": "60"}, received
    )
    assert (hints.retry_after_seconds, hints.remaining, hints.limit) == (7.0, 0, 60)
    assert hints.exhausted
    dated = RateLimitHints.from_headers({"Retry-After": "Mon, 23 Feb 2026 14:00:30 GMT"}, received)
    assert dated.retry_after_seconds == 30.0
    unix = RateLimitHints.from_headers({"X-AircallApi-Reset": "1771855260"}, received)
    assert unix.reset_at == T0 + timedelta(minutes=1)
    relative = RateLimitHints.from_headers({"RateLimit-Reset": "15"}, received)
    assert relative.reset_at == T0 + timedelta(seconds=15)
    unreadable = RateLimitHints.from_headers({"Retry-After": "soon"}, received)
    assert unreadable.retry_after_seconds is None


def test_pages_carry_the_rate_limit_hints(api: FakeCallLog, server: LocalHTTPServer) -> None:
    add_calls(api, 1)
    [page] = pages(adapter(server.url))
    assert isinstance(page.rate_limit, RateLimitHints)


def test_basic_auth_header_is_standard() -> None:
    provider = adapter("https://x.example", auth="basic", username="ann", password="pw")
    expected = "Basic " + base64.b64encode(b"ann:pw").decode()
    assert provider.auth.headers_for_request() == {"Authorization": expected}


# -- hostile records: each costs itself at most, never its page ------------------------------


def hostile(call_id: str, **fields: Any) -> dict[str, Any]:
    return {**quickstart_call(call_id, T0), **fields}


def deep(levels: int) -> dict[str, Any]:
    node: dict[str, Any] = {"end": True}
    for _ in range(levels):
        node = {"next": node}
    return node


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        (
            {"started_at": "9999-12-31T23:59:59-01:00"},
            "started_at '9999-12-31T23:59:59-01:00' is out of range",
        ),
        (
            {"started_at": "1969-07-20T20:17:40Z"},
            "started_at 1969-07-20T20:17:40+00:00 is before 1970",
        ),
        ({"started_at": "2026-02-25T14:00:00Z"}, "is more than a day in the future"),
        ({"duration": "Infinity"}, "duration 'Infinity' is not a finite number"),
        ({"duration": "nan"}, "duration 'nan' is not a finite number"),
        ({"duration": 1e30}, "duration 1e+30 is out of range"),
        ({"duration": float("inf")}, "duration inf is not a finite number"),
    ],
)
def test_a_time_or_number_out_of_range_is_a_malformed_record_with_its_raw_text(
    fields: dict[str, Any], reason: str
) -> None:
    provider = GenericProvider(
        GenericSettings(base_url="https://api.example.com", fields={"duration": "duration"}),
        clock=lambda: T0,
    )
    with pytest.raises(MalformedRecordError) as raised:
        provider.normalise(hostile("odd", **fields), RecordPosition(WINDOW, 1, 0))
    assert reason in raised.value.reason
    assert raised.value.call_id == "odd"
    assert raised.value.raw is not None and json.loads(raised.value.raw)["call_id"] == "odd"


def test_a_900_deep_record_maps_with_its_raw_record_capped() -> None:
    provider = adapter("https://api.example.com")
    record = provider.normalise(hostile("deep", extra=deep(900)), RecordPosition(WINDOW, 1, 0))
    assert record.provider_call_id == "deep"
    stored = json.dumps(record.raw)
    assert TOO_DEEP in stored and stored.count('"next"') < MAX_DEPTH


def test_nul_in_a_key_or_value_is_dropped_and_the_record_maps() -> None:
    # Not in the id: an id with NUL is a malformed record (test_nul_is_stripped_from_ids).
    provider = adapter("https://api.example.com")
    raw = hostile("nul-id", contact_name="Ja\x00ne", **{"no\x00te": {"k\x00": "v\x00"}})
    record = provider.normalise(raw, RecordPosition(WINDOW, 1, 0))
    assert (record.provider_call_id, record.contact_name) == ("nul-id", "Jane")
    assert record.raw["note"] == {"k": "v"}
    assert "\x00" not in json.dumps(record.raw)


def test_any_error_in_one_record_becomes_a_malformed_record_and_the_page_goes_on(
    api: FakeCallLog, server: LocalHTTPServer
) -> None:
    class Fragile(GenericProvider):
        def normalise(self, raw: Any, position: RecordPosition) -> Any:
            if raw.get("call_id") == "call-1":
                raise RecursionError("maximum recursion depth exceeded")
            if raw.get("call_id") == "call-2":
                raise OverflowError("date value out of range")
            return super().normalise(raw, position)

    add_calls(api, 4)
    api.page_size = 10
    provider = Fragile(GenericSettings(base_url=server.url), retry=NO_WAIT)
    [page] = pages(provider)
    assert [r.provider_call_id for r in page.records] == ["call-0", "call-3"]
    reasons = {m.position.index: m.reason for m in page.malformed}
    assert reasons == {
        1: "could not be mapped: RecursionError: maximum recursion depth exceeded",
        2: "could not be mapped: OverflowError: date value out of range",
    }
    assert all(m.raw and "call-" in m.raw for m in page.malformed)


def test_a_200_answer_without_the_items_path_is_an_error_naming_what_it_saw() -> None:
    class Maintenance(QuietHandler):
        def do_GET(self) -> None:
            body = {"calls": []} if "empty" in self.path else {"error": "maintenance", "eta": 5}
            payload = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    with LocalHTTPServer(Maintenance) as server:
        with pytest.raises(PermanentProviderError) as raised:
            pages(adapter(server.url))
        message = str(raised.value)
        assert "provider.listing.items_path 'calls'" in message
        assert "top-level keys: error, eta" in message
        [page] = pages(adapter(server.url, listing={"path": "/empty"}))
        assert page.records == [] and page.item_count == 0
