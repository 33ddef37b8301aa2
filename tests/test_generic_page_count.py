"""G5: listings that end where the body says (a last-page flag or a page count), not at an
empty page."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import responses

from poller.adapters.http import RetryPolicy
from poller.adapters.http.paginators import (
    PageCountPaginator,
    PageRequest,
    PageResponse,
    PagingFieldError,
    PagingLoop,
    TokenPaginator,
)
from poller.adapters.providers.generic import GenericProvider, GenericSettings
from poller.config import ConfigError, load_settings
from poller.domain.windows import Window
from poller.ports.provider import PageLimitExceeded, PagingLoopError, PermanentProviderError
from poller.simulators.http_server import LocalHTTPServer
from poller.simulators.provider_server import FakeCallLog, quickstart_call, serve

T0 = datetime(2026, 2, 23, 14, 0, tzinfo=UTC)
WINDOW = Window(T0 - timedelta(hours=1), T0 + timedelta(hours=1))
NO_WAIT = RetryPolicy(max_tries=2, base_delay=0.0, max_delay=0.0)
API = "https://api.example.com"


def adapter(url: str, **settings: Any) -> GenericProvider:
    return GenericProvider(GenericSettings(base_url=url, **settings), retry=NO_WAIT)


def listed_ids(provider: GenericProvider) -> list[str]:
    return [r.provider_call_id for page in provider.list_window(WINDOW) for r in page.records]


def add_calls(api: FakeCallLog, count: int) -> list[str]:
    for n in range(count):
        at = T0 + timedelta(minutes=n)
        api.add_call(quickstart_call(f"c{n}", at), at)
    return [f"c{n}" for n in range(count)]


@pytest.fixture
def server(api: FakeCallLog) -> Iterator[LocalHTTPServer]:
    with serve(api) as running:
        yield running


# -- a page count ----------------------------------------------------------------------------


def callrail_api() -> FakeCallLog:
    return FakeCallLog(
        paging="page_number",
        page_size=3,
        page_size_param="per_page",
        total_pages_path="total_pages",
    )


CALLRAIL = {"mode": "page_number", "page_size_param": "per_page", "page_size": 3}


@pytest.mark.parametrize("api", [callrail_api()])
def test_a_page_count_ends_the_listing_on_its_last_page_without_asking_for_another(
    api: FakeCallLog, server: LocalHTTPServer
) -> None:
    expected = add_calls(api, 6)  # two full pages: without the count, a third (empty) is asked
    provider = adapter(server.url, paging={**CALLRAIL, "total_pages_path": "total_pages"})
    assert listed_ids(provider) == expected
    assert [r["query"]["page"] for r in api.list_requests()] == ["1", "2"]


@pytest.mark.parametrize("api", [callrail_api()])
def test_without_the_count_a_full_last_page_costs_an_empty_request(
    api: FakeCallLog, server: LocalHTTPServer
) -> None:
    expected = add_calls(api, 6)
    assert listed_ids(adapter(server.url, paging=CALLRAIL)) == expected
    assert [r["query"]["page"] for r in api.list_requests()] == ["1", "2", "3"]


@pytest.mark.parametrize(
    "api",
    [
        FakeCallLog(
            list_path="/api/calls/index.json",
            start_param="date_from",
            end_param="date_to",
            time_format="%Y-%m-%d %H:%M:%S",
            items_path="responseData.data",
            paging="page_number",
            page_size=2,
            page_size_param="limit",
            total_pages_path="responseData.pageCount",
        )
    ],
)
def test_a_cloudtalk_style_nested_page_count(api: FakeCallLog, server: LocalHTTPServer) -> None:
    expected = add_calls(api, 5)
    provider = adapter(
        server.url,
        listing={
            "path": "/api/calls/index.json",
            "start_param": "date_from",
            "end_param": "date_to",
            "time_format": "%Y-%m-%d %H:%M:%S",
            "items_path": "responseData.data",
        },
        paging={
            "mode": "page_number",
            "page_size_param": "limit",
            "page_size": 2,
            "total_pages_path": "responseData.pageCount",
        },
    )
    assert listed_ids(provider) == expected
    assert len(api.list_requests()) == 3


def page_body(ids: list[str], total: Any) -> dict[str, Any]:
    return {
        "calls": [quickstart_call(i, T0) for i in ids],
        "meta": {"total_pages": total},
    }


@responses.activate
def test_an_empty_page_before_the_count_does_not_end_the_listing() -> None:
    # Freshcaller's meta.total_pages; page 2 came back empty (its calls moved while paging).
    for page, ids in [("1", ["a", "b"]), ("2", []), ("3", ["c"])]:
        responses.get(
            f"{API}/calls",
            json=page_body(ids, 3),
            match=[responses.matchers.query_param_matcher({"page": page}, strict_match=False)],
        )
    provider = adapter(API, paging={"mode": "page_number", "total_pages_path": "meta.total_pages"})
    assert listed_ids(provider) == ["a", "b", "c"]
    assert len(responses.calls) == 3


@responses.activate
def test_a_count_that_keeps_growing_is_stopped_by_the_page_limit() -> None:
    for page in range(1, 4):
        responses.get(
            f"{API}/calls",
            json=page_body([f"p{page}"], page + 5),
            match=[responses.matchers.query_param_matcher({"page": str(page)}, strict_match=False)],
        )
    provider = adapter(
        API,
        paging={"mode": "page_number", "total_pages_path": "meta.total_pages", "max_pages": 3},
    )
    with pytest.raises(PageLimitExceeded):
        listed_ids(provider)


@responses.activate
def test_a_provider_ignoring_the_page_parameter_under_a_count_is_a_loop() -> None:
    responses.get(f"{API}/calls", json=page_body(["same"], 50))
    provider = adapter(API, paging={"mode": "page_number", "total_pages_path": "meta.total_pages"})
    with pytest.raises(PagingLoopError, match="ignore the 'page' parameter"):
        listed_ids(provider)
    assert len(responses.calls) == 2


@responses.activate
def test_a_last_page_that_repeats_the_one_before_is_a_loop_not_the_end() -> None:
    # Pages 2 and 3 of 3 answer the same calls: page 3's own calls were never served, and
    # ending there, as the count says, would lose them without a word.
    responses.get(f"{API}/calls", json=page_body(["a"], 3), match=[_page("1")])
    responses.get(f"{API}/calls", json=page_body(["b"], 3), match=[_page("2")])
    responses.get(f"{API}/calls", json=page_body(["b"], 3), match=[_page("3")])
    provider = adapter(API, paging={"mode": "page_number", "total_pages_path": "meta.total_pages"})
    with pytest.raises(PagingLoopError, match="ignore the 'page' parameter"):
        listed_ids(provider)
    assert len(responses.calls) == 3


def _page(number: str) -> Any:
    return responses.matchers.query_param_matcher({"page": number}, strict_match=False)


@pytest.mark.parametrize(
    ("total", "shown"), [(None, "null"), ("three", '"three"'), (True, "true"), (-1, "-1")]
)
@responses.activate
def test_a_page_without_a_readable_count_fails_the_window_naming_the_path(
    total: Any, shown: str
) -> None:
    responses.get(f"{API}/calls", json=page_body(["a"], total))
    provider = adapter(API, paging={"mode": "page_number", "total_pages_path": "meta.total_pages"})
    pages = provider.list_window(WINDOW)
    assert [r.provider_call_id for r in next(pages).records] == ["a"]  # the page itself is kept
    with pytest.raises(PermanentProviderError) as raised:
        next(pages)
    assert f"holds {shown} at 'meta.total_pages', not the number of pages" in str(raised.value)


@responses.activate
def test_a_count_of_zero_pages_ends_an_empty_listing() -> None:
    responses.get(f"{API}/calls", json=page_body([], 0))
    provider = adapter(
        API, paging={"mode": "page_number", "first_page": 0, "total_pages_path": "meta.total_pages"}
    )
    assert listed_ids(provider) == []
    assert len(responses.calls) == 1


# -- a last-page flag ------------------------------------------------------------------------


def eight_by_eight_api() -> FakeCallLog:
    return FakeCallLog(
        page_size=2,
        token_param="pageKey",
        token_path="pageKey",
        token_prefix="",
        token_on_last_page=True,
        last_page_path="lastPage",
        items_path="content",
    )


EIGHT_BY_EIGHT = {"token_param": "pageKey", "token_path": "pageKey"}


@pytest.mark.parametrize("api", [eight_by_eight_api()])
def test_an_8x8_last_page_flag_ends_the_listing_though_a_page_key_follows(
    api: FakeCallLog, server: LocalHTTPServer
) -> None:
    expected = add_calls(api, 5)
    provider = adapter(
        server.url,
        listing={"items_path": "content", "params": {"pageKey": "0"}},
        paging={**EIGHT_BY_EIGHT, "last_page_path": "lastPage"},
    )
    assert listed_ids(provider) == expected
    assert [r["query"]["pageKey"] for r in api.list_requests()] == ["0", "2", "4"]


@pytest.mark.parametrize("api", [eight_by_eight_api()])
def test_without_the_flag_a_page_key_that_always_grows_runs_into_the_page_limit(
    api: FakeCallLog, server: LocalHTTPServer
) -> None:
    add_calls(api, 5)
    provider = adapter(
        server.url, listing={"items_path": "content"}, paging={**EIGHT_BY_EIGHT, "max_pages": 6}
    )
    with pytest.raises(PageLimitExceeded):
        listed_ids(provider)


@pytest.mark.parametrize(
    "api", [FakeCallLog(paging="page_number", page_size=2, last_page_path="meta.last")]
)
def test_a_last_page_flag_with_page_numbers(api: FakeCallLog, server: LocalHTTPServer) -> None:
    expected = add_calls(api, 4)
    provider = adapter(server.url, paging={"mode": "page_number", "last_page_path": "meta.last"})
    assert listed_ids(provider) == expected
    assert len(api.list_requests()) == 2


@responses.activate
def test_a_flag_that_is_not_a_boolean_fails_the_window() -> None:
    responses.get(f"{API}/calls", json={"calls": [], "lastPage": "true", "pageKey": "1"})
    provider = adapter(
        API,
        paging={"token_param": "pageKey", "token_path": "pageKey", "last_page_path": "lastPage"},
    )
    with pytest.raises(PermanentProviderError, match="holds \"true\" at 'lastPage', not the true"):
        listed_ids(provider)


def test_two_empty_pages_that_are_not_the_last_are_a_loop() -> None:
    paginator = PageCountPaginator(last_page_path="lastPage")
    request = PageRequest(API, {"page": "1"})
    empty = PageResponse(API, {"lastPage": False}, {}, [])
    following = paginator.next_request(request, empty)
    assert following is not None
    with pytest.raises(PagingLoop, match="same items as the one before"):
        paginator.next_request(following, empty)


def test_the_token_paginator_reads_the_flag_before_the_token() -> None:
    paginator = TokenPaginator(token_path="pageKey", token_param="pageKey", last_page_path="x")
    page = PageResponse(API, {"pageKey": "9"}, {}, [1])
    with pytest.raises(PagingFieldError, match="holds nothing at 'x'"):
        paginator.next_request(PageRequest(API, {}), page)


# -- config ----------------------------------------------------------------------------------


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("paging", "expected"),
    [
        (
            'mode = "token"\ntotal_pages_path = "total_pages"\n',
            'provider.paging: total_pages_path works with mode = "page_number"',
        ),
        (
            'mode = "offset"\npage_size = 10\nlast_page_path = "lastPage"\n',
            'provider.paging: last_page_path works with mode = "token" or "page_number"',
        ),
        ('mode = "page_number"\ntotal_pages_path = "a..b"\n', "provider.paging.total_pages_path"),
    ],
)
def test_a_count_or_flag_for_a_mode_that_cannot_use_it_is_a_config_error(
    tmp_path: Path, paging: str, expected: str
) -> None:
    text = '[provider]\nbase_url = "https://voip.example.com"\n[provider.paging]\n' + paging
    with pytest.raises(ConfigError) as raised:
        load_settings(write(tmp_path / "c.toml", text))
    assert any(expected in problem for problem in raised.value.problems), raised.value.problems
