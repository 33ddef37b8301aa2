"""Paginators on their own: what comes next, when it ends, and every kind of loop."""

from __future__ import annotations

from typing import Any

import pytest

from poller.adapters.http.paginators import (
    LinkHeaderPaginator,
    NextUrlPaginator,
    OffsetPaginator,
    PageNumberPaginator,
    PageRequest,
    PageResponse,
    PagingLoop,
    SinglePage,
    TokenPaginator,
)

FIRST = PageRequest("https://api.example.com/calls", {"from": "a", "to": "b"})


def page(
    body: Any = None, *, items: int = 3, headers: dict[str, str] | None = None
) -> PageResponse:
    return PageResponse(FIRST.url, body or {}, headers or {}, [{"n": n} for n in range(items)])


def test_a_token_is_sent_back_with_the_window_and_an_absent_token_ends() -> None:
    paginator = TokenPaginator(token_path="meta.next", token_param="cursor")
    following = paginator.next_request(FIRST, page({"meta": {"next": "t-2"}}))
    assert following == PageRequest(FIRST.url, {"from": "a", "to": "b", "cursor": "t-2"})
    assert following is not None
    assert paginator.next_request(following, page({"meta": {"next": ""}})) is None
    assert paginator.next_request(following, page({"meta": {}})) is None


def test_a_token_seen_twice_is_a_loop() -> None:
    paginator = TokenPaginator()
    first = paginator.next_request(FIRST, page({"next_page_token": "t"}))
    assert first is not None
    with pytest.raises(PagingLoop, match="paging token returned before"):
        paginator.next_request(first, page({"next_page_token": "t"}))


def test_a_relative_next_url_is_resolved_against_the_page() -> None:
    paginator = NextUrlPaginator(next_url_path="next_page_uri")
    following = paginator.next_request(FIRST, page({"next_page_uri": "/calls?PageToken=PA2"}))
    assert following == PageRequest("https://api.example.com/calls?PageToken=PA2", None)
    assert following is not None
    with pytest.raises(PagingLoop):
        paginator.next_request(following, page({"next_page_uri": "/calls?PageToken=PA2"}))


def test_the_link_header_next_relation_is_followed() -> None:
    paginator = LinkHeaderPaginator()
    header = (
        '<https://api.example.com/calls?p=1>; rel="prev", '
        '<https://api.example.com/calls?p=3>; rel="next"'
    )
    following = paginator.next_request(FIRST, page(headers={"link": header}))
    assert following == PageRequest("https://api.example.com/calls?p=3", None)
    assert paginator.next_request(FIRST, page(headers={"Link": '<x>; rel="prev"'})) is None


def test_page_numbers_end_on_a_short_or_empty_page_and_catch_an_ignored_parameter() -> None:
    paginator = PageNumberPaginator(page_size=3, page_param="p", first_page=0)
    request = PageRequest(FIRST.url, paginator.first(FIRST.params or {}))
    second = paginator.next_request(request, page(items=3))
    assert second is not None and (second.params or {})["p"] == "1"
    assert paginator.next_request(second, page(items=2)) is None
    repeating = PageNumberPaginator()
    same = page(items=3)
    after_first = repeating.next_request(request, same)
    assert after_first is not None
    with pytest.raises(PagingLoop, match="ignore the 'page' parameter"):
        repeating.next_request(after_first, same)


def test_offsets_move_by_the_items_each_page_held() -> None:
    paginator = OffsetPaginator(page_size=3, offset_param="skip")
    request = PageRequest(FIRST.url, paginator.first({}))
    following = paginator.next_request(request, page(items=3))
    assert following is not None and (following.params or {})["skip"] == "3"
    assert paginator.next_request(following, PageResponse(FIRST.url, {}, {}, [])) is None


def test_a_single_page_api_has_no_next_page() -> None:
    assert SinglePage().next_request(FIRST, page({"next": "ignored"})) is None
