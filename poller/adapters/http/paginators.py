"""How a listing walks its pages: one small class per paging style, each guarding against loops.

A paginator is asked, after each page, for the request of the next one; ``None`` ends the
listing. Every style remembers what it has handed out in the current listing, so a provider
that returns the same token, URL or page twice stops the listing with :class:`PagingLoop`
instead of looping forever. The page limit is the caller's (it counts pages, whatever the
style).

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

from requests.utils import parse_header_links

from poller.domain.paths import dig, present


class PagingLoop(Exception):
    """The provider handed out a page it had already handed out in this listing."""


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
    """An opaque token in the body, sent back as a query parameter (Zoom, Dialpad, Siro)."""

    token_path: str = "next_page_token"  # noqa: S105  (a JSON path, not a secret)
    token_param: str = "page_token"  # noqa: S105  (a parameter name, not a secret)

    def following(self, current: PageRequest, page: PageResponse) -> PageRequest | None:
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
