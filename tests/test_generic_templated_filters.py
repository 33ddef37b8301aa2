"""G2: the window's bounds placed inside a parameter by a template ({start}, {end})."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import responses

from poller.adapters.http import RetryPolicy
from poller.adapters.providers.generic import GenericProvider, GenericSettings
from poller.config import ConfigError, load_settings
from poller.domain.windows import Window
from poller.ports.provider import PermanentProviderError
from poller.simulators.http_server import LocalHTTPServer
from poller.simulators.provider_server import (
    FakeCallLog,
    quickstart_call,
    range_filter,
    rsql_filter,
    serve,
)

T0 = datetime(2026, 2, 23, 14, 0, tzinfo=UTC)
WINDOW = Window(T0 - timedelta(hours=1), T0 + timedelta(hours=1))
NO_WAIT = RetryPolicy(max_tries=2, base_delay=0.0, max_delay=0.0)
START_MS = "1771851599999"  # 13:00 UTC less a millisecond (the boundary rule)
END_MS = "1771858800001"  # 15:00 UTC plus one

OUTREACH = {"start_param": "", "end_param": "", "params": {"filter[updatedAt]": "{start}..inf"}}
EIGHT_BY_EIGHT = {
    "start_param": "",
    "end_param": "",
    "time_format": "unix_ms",
    "params": {"filter": "type==callrecording;createdTime=ge={start};createdTime=le={end}"},
}


def adapter(url: str, **settings: Any) -> GenericProvider:
    return GenericProvider(GenericSettings(base_url=url, **settings), retry=NO_WAIT)


def listed_ids(provider: GenericProvider) -> list[str]:
    return [r.provider_call_id for page in provider.list_window(WINDOW) for r in page.records]


@pytest.fixture
def server(api: FakeCallLog) -> Iterator[LocalHTTPServer]:
    with serve(api) as running:
        yield running


def add_calls(api: FakeCallLog) -> None:
    for name, at in [
        ("before", WINDOW.start - timedelta(hours=2)),
        ("inside", T0),
        ("after", WINDOW.end + timedelta(hours=2)),
    ]:
        api.add_call(quickstart_call(name, at), at)


@pytest.mark.parametrize("api", [FakeCallLog(window_reader=range_filter("filter[updatedAt]"))])
def test_an_outreach_range_filter_carries_the_start(
    api: FakeCallLog, server: LocalHTTPServer
) -> None:
    add_calls(api)
    # Only a start: the API answers to now, and the calls after the window come too.
    assert listed_ids(adapter(server.url, listing=OUTREACH)) == ["inside", "after"]
    [request] = api.list_requests()
    assert request["query"] == {"filter[updatedAt]": "2026-02-23T12:59:59Z..inf"}
    # On the wire: percent-encoded by the HTTP layer, once; the ".." travels as it is.
    assert request["raw_query"] == "filter%5BupdatedAt%5D=2026-02-23T12%3A59%3A59Z..inf"


@pytest.mark.parametrize(
    "api", [FakeCallLog(time_format="unix_ms", window_reader=rsql_filter("filter", "createdTime"))]
)
def test_an_8x8_rsql_filter_carries_both_bounds_in_milliseconds(
    api: FakeCallLog, server: LocalHTTPServer
) -> None:
    add_calls(api)
    assert listed_ids(adapter(server.url, listing=EIGHT_BY_EIGHT)) == ["inside"]
    [request] = api.list_requests()
    expected = f"type==callrecording;createdTime=ge={START_MS};createdTime=le={END_MS}"
    assert request["query"] == {"filter": expected}
    assert parse_qs(request["raw_query"]) == {"filter": [expected]}
    assert request["raw_query"] == (
        f"filter=type%3D%3Dcallrecording%3BcreatedTime%3Dge%3D{START_MS}"
        f"%3BcreatedTime%3Dle%3D{END_MS}"
    )


@pytest.mark.parametrize(
    "api",
    [
        FakeCallLog(
            page_size=2,
            time_format="unix_ms",
            window_reader=rsql_filter("filter", "createdTime"),
            token_param="pageKey",
            token_path="pageKey",
            token_prefix="",
        )
    ],
)
def test_every_page_of_a_window_keeps_the_filled_filter(
    api: FakeCallLog, server: LocalHTTPServer
) -> None:
    for n in range(5):
        api.add_call(quickstart_call(f"c{n}", T0 + timedelta(minutes=n)), T0)
    paging = {"token_param": "pageKey", "token_path": "pageKey"}
    assert listed_ids(adapter(server.url, listing=EIGHT_BY_EIGHT, paging=paging)) == [
        f"c{n}" for n in range(5)
    ]
    filters = {request["query"]["filter"] for request in api.list_requests()}
    assert len(api.list_requests()) == 3
    assert len(filters) == 1


@pytest.mark.parametrize("api", [FakeCallLog(window_reader=range_filter("filter[updatedAt]"))])
def test_a_filter_the_api_cannot_read_is_refused_not_taken_as_empty(
    api: FakeCallLog, server: LocalHTTPServer
) -> None:
    add_calls(api)
    listing = {**OUTREACH, "params": {"filter[updatedAt]": "{start}"}}  # no "..": not a range
    with pytest.raises(PermanentProviderError, match="HTTP 400"):
        listed_ids(adapter(server.url, listing=listing))


@responses.activate
def test_a_placeholder_in_a_name_and_literal_braces() -> None:
    responses.get("https://api.example.com/calls", json={"calls": []})
    listing = {
        "end_param": "",
        "params": {"since_{start}": "1", "q": '{{"after": "{start}"}}'},
    }
    list(adapter("https://api.example.com", listing=listing).list_window(WINDOW))
    [call] = responses.calls
    sent = parse_qs(call.request.url.split("?", 1)[1])
    assert sent == {
        "from": ["2026-02-23T12:59:59Z"],
        "since_2026-02-23T12:59:59Z": ["1"],
        "q": ['{"after": "2026-02-23T12:59:59Z"}'],
    }


def test_the_bound_is_filled_in_the_listings_time_format_and_zone() -> None:
    provider = adapter(
        "https://api.example.com",
        listing={
            "start_param": "",
            "end_param": "",
            "time_format": "%Y-%m-%d %H:%M",
            "time_zone": "Europe/Berlin",
            "params": {"filter": "created>={start} AND created<{end}"},
        },
    )
    assert provider.first_request(WINDOW).params == {
        "filter": "created>=2026-02-23 13:59 AND created<2026-02-23 16:01"
    }


# -- config ----------------------------------------------------------------------------------


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("listing", "expected"),
    [
        (
            '[provider.listing.params]\n"filter[updatedAt]" = "{from}..inf"\n',
            "provider.listing.params: '{from}..inf' has the placeholder {from}; the "
            "placeholders are {start} and {end}",
        ),
        (
            '[provider.listing.params]\nq = "{start"\n',
            "provider.listing.params: '{start' has a lone '{': write '{{' for a literal brace",
        ),
        (
            '[provider.listing]\nstart_param = ""\n',
            "provider.listing: start_param is empty, so a name or value in params must hold "
            "{start}",
        ),
    ],
)
def test_a_bad_template_is_a_config_error_naming_the_key(
    tmp_path: Path, listing: str, expected: str
) -> None:
    text = '[provider]\nbase_url = "https://voip.example.com"\n' + listing
    with pytest.raises(ConfigError) as raised:
        load_settings(write(tmp_path / "c.toml", text))
    assert any(expected in problem for problem in raised.value.problems), raised.value.problems


def test_an_outreach_style_config_loads(tmp_path: Path) -> None:
    text = """
[provider]
base_url = "https://api.outreach.io/api/v2"
[provider.listing]
path = "/calls"
start_param = ""
end_param = ""
items_path = "data"
[provider.listing.params]
"filter[updatedAt]" = "{start}..inf"
"""
    settings = load_settings(write(tmp_path / "c.toml", text))
    assert isinstance(settings.provider, GenericSettings)
    assert settings.provider.listing.start_param is None
