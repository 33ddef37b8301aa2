"""How a listing walks its pages: one small class per paging style, each guarding against loops.

A paginator is asked, after each page, for the request of the next one; ``None`` ends the
listing. Every style remembers what it has handed out in the current listing, so a provider
that returns the same token, URL or page twice stops the listing with :class:`PagingLoop`
instead of looping forever. The page limit is the caller's (it counts pages, whatever the
style).

Some APIs say in the body where the listing ends: a last-page flag (8x8's ``lastPage``, whose
``pageKey`` goes on growing on the last page) or a page count (CallRail's ``total_pages``,
CloudTalk's ``pageCount``). :class:`TokenPaginator` and :class:`PageCountPaginator` read them;
a body without the flag or count they were told to read is a :class:`PagingFieldError`, not
taken as the end: a misnamed path must not cut every listing short.

Modelled on the Meltano SDK's ``pagination.py``: the request loop is written once, in the
provider base class, and only the "what comes next" differs per API.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

from poller.domain.paths import MISSING, dig, present


class PagingError(Exception):
    """The pages of a listing cannot be followed."""


class PagingLoop(PagingError):
    """The provider handed out a page it had already handed out in this listing."""


class PagingFieldError(PagingError):
    """The body lacks the last-page flag or page count the paginator was told to read."""


def last_page_flag(body: Any, path: str) -> bool:
    """The body's boolean at ``path`` that says whether this page is the last one."""
    flag = dig(body, path)
    if not isinstance(flag, bool):
        raise PagingFieldError(
            f"the response holds {_what(flag)} at {path!r}, not the true or false that says "
            "whether the page is the last one; check the path"
        )
    return flag


def page_count(body: Any, path: str) -> int:
    """The body's whole number of pages at ``path`` (a numeric string is taken too)."""
    count = dig(body, path)
    if isinstance(count, str) and count.strip().isdigit():
        count = int(count)
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise PagingFieldError(
            f"the response holds {_what(count)} at {path!r}, not the number of pages; "
            "check the path"
        )
    return count


def _what(value: Any) -> str:
    if value is MISSING:
        return "nothing"
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else f"{type(value).__name__} value"


@dataclass(frozen=True, slots=True)
class PageRequest:
    """One listing request: a URL and its query parameters (``None``: the URL carries them)."""

    url: str
    params: Mapping[str, str] | None = None


@dataclass(frozen=True, slots=True)
class PageResponse:
    """What a paginator may look at: the decoded body, the headers and the items of the page."""

    url: str
    body: Any
    headers: Mapping[str, str]
    items: Sequence[Any]


@dataclass
class Paginator(ABC):
    """Decides the next request of one listing; make a new one per listing."""

    _seen: set[str] = field(default_factory=set, init=False, repr=False)

    def next_request(self, current: PageRequest, page: PageResponse) -> PageRequest | None:
        following = self.following(current, page)
        if following is None:
            return None
        key = self.identity(following, page)
        if key in self._seen:
            raise PagingLoop(
                f"the provider pointed at a page it had already returned ({self.describe(key)}); "
                "stopped to avoid a loop"
            )
        self._seen.add(key)
        return following

    @abstractmethod
    def following(self, current: PageRequest, page: PageResponse) -> PageRequest | None:
        """The request of the page after ``page``, or ``None`` after the last one."""

    def identity(self, request: PageRequest, page: PageResponse) -> str:
        """What must not repeat within a listing."""
        params = sorted((request.params or {}).items())
        return json.dumps([request.url, params])

    def describe(self, key: str) -> str:
        return "the same next-page request"


@dataclass
class SinglePage(Paginator):
    """The API answers a window in one response."""

    def following(self, current: PageRequest, page: PageResponse) -> PageRequest | None:
        return None


@dataclass
class TokenPaginator(Paginator):
    """An opaque token in the body, sent back as a query parameter (Zoom, Dialpad, Siro).

    With ``last_page_path``, a true flag there ends the listing whatever the token says (8x8
    hands out a next ``pageKey`` on its last page too).
    """

    token_path: str = "next_page_token"  # noqa: S105  (a JSON path, not a secret)
    token_param: str = "page_token"  # noqa: S105  (a parameter name, not a secret)
    last_page_path: str | None = None

    def following(self, current: PageRequest, page: PageResponse) -> PageRequest | None:
        if self.last_page_path is not None and last_page_flag(page.body, self.last_page_path):
            return None
        token = dig(page.body, self.token_path)
        if not present(token) or isinstance(token, dict | list | bool):
            return None
        return PageRequest(current.url, {**(current.params or {}), self.token_param: str(token)})

    def identity(self, request: PageRequest, page: PageResponse) -> str:
        return str((request.params or {}).get(self.token_param))

    def describe(self, key: str) -> str:
        return "a paging token returned before"


@dataclass
class NextUrlPaginator(Paginator):
    """A next-page URL in the body (Twilio's ``next_page_uri``, RingCentral's ``navigation``).

    A relative URL is resolved against the page's own URL; the URL carries every parameter.
    """

    next_url_path: str = "next"

    def following(self, current: PageRequest, page: PageResponse) -> PageRequest | None:
        target = dig(page.body, self.next_url_path)
        if not present(target) or not isinstance(target, str):
            return None
        return PageRequest(urljoin(page.url, target.strip()), None)

    def identity(self, request: PageRequest, page: PageResponse) -> str:
        return request.url

    def describe(self, key: str) -> str:
        return "a next-page URL returned before"


@dataclass
class LinkHeaderPaginator(Paginator):
    """RFC 8288 ``Link: <...>; rel="next"`` headers (GitHub style APIs)."""

    def following(self, current: PageRequest, page: PageResponse) -> PageRequest | None:
        header = next(
            (value for name, value in page.headers.items() if name.lower() == "link"), None
        )
        if not header:
            return None
        # Here, not at import: the config imports every paginator, requests is not yet needed.
        from requests.utils import parse_header_links

        for link in parse_header_links(header):
            if "next" in str(link.get("rel", "")).split() and link.get("url"):
                return PageRequest(urljoin(page.url, link["url"]), None)
        return None

    def identity(self, request: PageRequest, page: PageResponse) -> str:
        return request.url

    def describe(self, key: str) -> str:
        return "a Link rel=next URL returned before"


def _fingerprint(items: Sequence[Any]) -> str:
    # Item by item: a page's records may be decoded only as they are read (page_reader).
    digest = hashlib.sha256()
    for item in items:
        digest.update(json.dumps(item, sort_keys=True, default=str).encode())
        digest.update(b"\n")
    return digest.hexdigest()


@dataclass
class _CountingPaginator(Paginator):
    """Page numbers and offsets: the next page is computed, so the end must be inferred.

    The listing ends on an empty page or on one shorter than ``page_size`` (when known). A
    provider that ignores the page parameter answers the same items again: that is the loop
    these styles detect, by the items' fingerprint.
    """

    page_size: int | None = None
    _previous: str | None = field(default=None, init=False, repr=False)

    def next_request(self, current: PageRequest, page: PageResponse) -> PageRequest | None:
        if not page.items or (self.page_size is not None and len(page.items) < self.page_size):
            return None
        fingerprint = _fingerprint(page.items)
        if fingerprint == self._previous:
            raise PagingLoop(
                "the provider answered the next page with the same items as the one before; "
                f"it seems to ignore the {self.parameter!r} parameter"
            )
        self._previous = fingerprint
        return self.following(current, page)

    @property
    @abstractmethod
    def parameter(self) -> str: ...


@dataclass
class PageNumberPaginator(_CountingPaginator):
    """``?page=1``, ``?page=2`` ... (Aircall's ``page``, many simple APIs)."""

    page_param: str = "page"
    first_page: int = 1

    @property
    def parameter(self) -> str:
        return self.page_param

    def first(self, params: Mapping[str, str]) -> dict[str, str]:
        return {**params, self.page_param: str(self.first_page)}

    def following(self, current: PageRequest, page: PageResponse) -> PageRequest | None:
        params = dict(current.params or {})
        number = int(params.get(self.page_param, self.first_page))
        params[self.page_param] = str(number + 1)
        return PageRequest(current.url, params)


@dataclass
class OffsetPaginator(_CountingPaginator):
    """``?offset=0``, ``?offset=50`` ...: the offset moves by the items each page held."""

    offset_param: str = "offset"

    @property
    def parameter(self) -> str:
        return self.offset_param

    def first(self, params: Mapping[str, str]) -> dict[str, str]:
        return {**params, self.offset_param: "0"}

    def following(self, current: PageRequest, page: PageResponse) -> PageRequest | None:
        params = dict(current.params or {})
        offset = int(params.get(self.offset_param, "0"))
        params[self.offset_param] = str(offset + len(page.items))
        return PageRequest(current.url, params)


@dataclass
class PageCountPaginator(PageNumberPaginator):
    """Page numbers, ended by what the body says rather than by an empty or short page.

    ``total_pages_path``: the number of pages (CallRail ``total_pages``, Freshcaller
    ``meta.total_pages``, CloudTalk ``responseData.pageCount``); the page numbered
    ``first_page + total - 1`` is the last. ``last_page_path``: a flag true on the last page.
    Until then an empty or short page does not end the listing (records may move between
    pages while it is read), so the count bounds it instead: a count that keeps growing is
    stopped by the caller's page limit, and a page with the same records as the one before
    (two empty ones, with only a flag) is a loop, as for plain page numbers.
    """

    total_pages_path: str | None = None
    last_page_path: str | None = None

    def next_request(self, current: PageRequest, page: PageResponse) -> PageRequest | None:
        if self.last_page_path is not None and last_page_flag(page.body, self.last_page_path):
            return None
        number = int((current.params or {}).get(self.page_param, self.first_page))
        if page.items or self.total_pages_path is None:
            # Without a count, two empty pages that are not the last would go on to the limit.
            # Checked on the last page too: the same items again there means the page before
            # the last was never served, and ending quietly would lose its records.
            fingerprint = _fingerprint(page.items)
            if fingerprint == self._previous:
                raise PagingLoop(
                    "the provider answered the next page with the same items as the one "
                    f"before; it seems to ignore the {self.parameter!r} parameter"
                )
            self._previous = fingerprint
        if self.total_pages_path is not None:
            total = page_count(page.body, self.total_pages_path)
            if number - self.first_page + 1 >= total:
                return None
        return self.following(current, page)
