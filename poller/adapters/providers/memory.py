"""A phone system that lives in memory: a full :class:`ProviderPort` without a network.

It keeps raw records shaped like the quickstart payload (``call_id``, ``started_at``, ``email``,
``number``, ``contact_name``, ``contact_phone``, ``recording_url``), pages them, reports bad
records with their position like any adapter, and can be scripted to fail. Worker tests and
the demo run on it; it passes the same provider contract suite as the HTTP adapters.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from poller.domain.call_record import (
    CallRecord,
    DownloadRequest,
    ProviderCapabilities,
    RateLimitHints,
    RecordingLocator,
)
from poller.domain.failures import StepFailure
from poller.domain.paths import present
from poller.domain.raw_record import parse_time, raw_text, sanitise_raw
from poller.domain.redaction import MASK, redact_url
from poller.domain.states import RecordingState
from poller.domain.windows import Window
from poller.ports.download import Downloaded
from poller.ports.provider import (
    ListedPage,
    MalformedRecordError,
    PageLimitExceeded,
    PagingLoopError,
    PermanentProviderError,
    ProviderError,
    RecordPosition,
)


@dataclass
class InMemoryProvider:
    """Calls in a list; ``list_window`` pages them ``page_size`` at a time, oldest first.

    ``failures`` are raised, one per listing request, before any page is served; a
    :class:`~poller.ports.provider.TransientProviderError` there plays a 5xx or a 429.
    ``repeat_page`` hands that page out again as its own successor (a paging loop).
    """

    name: str = "memory"
    page_size: int = 50
    max_pages: int = 10_000
    capabilities: ProviderCapabilities = field(default_factory=ProviderCapabilities)
    repeat_page: int | None = None
    records: list[tuple[datetime, dict[str, Any]]] = field(default_factory=list)
    failures: deque[ProviderError] = field(default_factory=deque)
    listing_requests: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, record: Mapping[str, Any], at: datetime) -> None:
        """A call the log lists at instant ``at`` (the record may be malformed on purpose)."""
        with self._lock:
            self.records.append((at, dict(record)))
            self.records.sort(key=lambda entry: entry[0])

    def update(self, call_id: str, **changes: Any) -> None:
        with self._lock:
            for _at, record in self.records:
                if record.get("call_id") == call_id:
                    record.update(changes)

    def list_window(self, window: Window) -> Iterator[ListedPage]:
        with self._lock:
            items = [record for at, record in self.records if window.contains(at)]
        pages = [items[i : i + self.page_size] for i in range(0, len(items), self.page_size)]
        for number in range(1, self.max_pages + 1):
            self.listing_requests += 1
            if self.failures:
                raise self.failures.popleft()
            page = pages[number - 1] if number <= len(pages) else []
            yield self._page(window, number, page)
            if self.repeat_page == number:
                raise PagingLoopError(
                    f"window {window}: page {number} pointed at itself; stopped to avoid a loop"
                )
            if number >= len(pages):
                return
        raise PageLimitExceeded(f"window {window}: more than {self.max_pages} pages")

    def normalise(self, raw: Mapping[str, Any], position: RecordPosition) -> CallRecord:
        def malformed(reason: str, call_id: str | None = None) -> MalformedRecordError:
            return MalformedRecordError(position, reason, call_id, raw=raw_text(raw))

        call_id = raw.get("call_id")
        if not isinstance(call_id, str) or not call_id:
            raise malformed("call_id has no value at path call_id")
        started = raw.get("started_at")
        if not present(started):
            raise malformed("started_at has no value at path started_at", call_id)
        try:
            started_at = parse_time(started, "iso8601")
        except (ValueError, TypeError, OverflowError) as exc:
            raise malformed(f"started_at {exc}", call_id) from None
        url = raw.get("recording_url")
        url = url if isinstance(url, str) and url else None
        return CallRecord(
            provider_call_id=call_id,
            started_at=started_at,
            recording_state=RecordingState.READY if url else RecordingState.PENDING,
            raw=sanitise_raw(raw),
            rep_email=_text(raw.get("email")),
            rep_phone=_text(raw.get("number")),
            contact_name=_text(raw.get("contact_name")),
            contact_phone=_text(raw.get("contact_phone")),
            recording_url=redact_url(url) if url else None,
        )

    def resolve_download(self, call: RecordingLocator) -> DownloadRequest:
        if call.recording_url is None:
            raise PermanentProviderError(
                f"call {call.provider_call_id} has no recording URL to download"
            )
        if MASK in call.recording_url:
            # A signed URL is never stored; the log is asked again for a fresh one.
            with self._lock:
                fresh = next(
                    (
                        record.get("recording_url")
                        for _at, record in self.records
                        if record.get("call_id") == call.provider_call_id
                    ),
                    None,
                )
            if not isinstance(fresh, str):
                raise PermanentProviderError(
                    f"call {call.provider_call_id}: the provider no longer lists a recording"
                )
            return DownloadRequest(url=fresh)
        return DownloadRequest(url=call.recording_url)

    def _page(self, window: Window, number: int, items: list[dict[str, Any]]) -> ListedPage:
        records: list[CallRecord] = []
        malformed: list[MalformedRecordError] = []
        for index, item in enumerate(items):
            try:
                records.append(self.normalise(item, RecordPosition(window, number, index)))
            except MalformedRecordError as error:
                malformed.append(error)
        return ListedPage(
            window=window,
            number=number,
            records=records,
            malformed=malformed,
            item_count=len(items),
            rate_limit=RateLimitHints(),
        )


@dataclass
class InMemoryRecordings:
    """The recordings of an :class:`InMemoryProvider`: a :class:`RecordingFetcher` by URL.

    ``bodies`` maps a recording URL (its query string ignored, as a signed URL's changes) to
    the audio bytes; ``failures`` are raised, one per fetch, before any audio is served.
    """

    bodies: dict[str, bytes] = field(default_factory=dict)
    failures: deque[StepFailure] = field(default_factory=deque)
    fetched: list[str] = field(default_factory=list)

    def add(self, url: str, body: bytes) -> None:
        self.bodies[_without_query(url)] = body

    def fetch(self, request: DownloadRequest, destination: Path) -> Downloaded:
        self.fetched.append(request.url)
        if self.failures:
            raise self.failures.popleft()
        body = self.bodies.get(_without_query(request.url))
        if body is None:
            raise StepFailure.fail(
                "recording_not_found", f"no recording at {redact_url(request.url)}"
            )
        if not body:
            raise StepFailure.fail("not_audio", "the provider sent an empty body")
        descriptor = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as out:
            out.write(body)
        return Downloaded(
            path=destination,
            size_bytes=len(body),
            sha256=hashlib.sha256(body).hexdigest(),
            http_status=200,
            duration_ms=0,
        )


def _without_query(url: str) -> str:
    return url.split("?", 1)[0]


def _text(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None
