"""The provider port: what the core needs from a phone system's call-log API.

An adapter hides everything provider-specific (URLs, auth, parameter names, time formats,
paging, field names) behind :class:`ProviderPort`. The core plans windows, commits pages and
moves the cursor; it never sees HTTP.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from poller.domain.call_record import (
    CallRecord,
    DownloadRequest,
    ProviderCapabilities,
    RateLimitHints,
    RecordingLocator,
)
from poller.domain.windows import Window


class ProviderError(Exception):
    """The provider could not answer. Messages name the request, never its credentials."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class TransientProviderError(ProviderError):
    """Worth retrying: 5xx, 429, connection failures and timeouts."""

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class PermanentProviderError(ProviderError):
    """Retrying the same request will not help: other 4xx, a response of the wrong shape."""


class ProviderAuthError(PermanentProviderError):
    """The provider refused the credentials (401/403, even with a freshly minted token)."""


class ProviderRefused(PermanentProviderError):
    """A destination the host rules forbid (another host, a private address): nothing was sent."""


class PagingLoopError(PermanentProviderError):
    """The provider handed out a paging token or next-page URL it had already given."""


class PageLimitExceeded(PermanentProviderError):
    """A window needed more pages than the safety limit allows."""


@dataclass(frozen=True, slots=True)
class RecordPosition:
    """Where a record sat: its window, its page (from 1) and its index on the page (from 0)."""

    window: Window
    page: int
    index: int

    def __str__(self) -> str:
        return f"window {self.window}, page {self.page}, item {self.index}"


class MalformedRecordError(ValueError):
    """A record that cannot be normalised (no id, a time that will not parse, ...).

    ``raw`` is the record as it may be stored (:func:`poller.domain.raw_record.raw_text`:
    sanitised and capped JSON text), so the core can keep it and map it again later.
    """

    def __init__(
        self,
        position: RecordPosition,
        reason: str,
        call_id: str | None = None,
        *,
        raw: str | None = None,
    ) -> None:
        self.position = position
        self.reason = reason
        self.call_id = call_id
        self.raw = raw
        named = f" (call {call_id})" if call_id else ""
        super().__init__(f"{position}{named}: {reason}")


@dataclass(frozen=True, slots=True)
class ListedPage:
    """One page of a window's listing: the records that normalised and the ones that did not.

    ``item_count`` counts every item on the page, malformed ones included, so the core can tell
    when a provider's row cap may have cut a window short. A page of many records comes as
    several chunks of the same ``number``: ``first_index`` is where the chunk starts on its page
    (0 for the first chunk or a whole page) and ``item_count`` counts the chunk's items.
    """

    window: Window
    number: int
    records: list[CallRecord]
    malformed: list[MalformedRecordError] = field(default_factory=list)
    item_count: int = 0
    rate_limit: RateLimitHints = field(default_factory=RateLimitHints)
    first_index: int = 0


class ProviderPort(Protocol):
    """A phone system's call log, as the poll cycle and the worker use it: nothing more."""

    @property
    def capabilities(self) -> ProviderCapabilities: ...

    def list_window(self, window: Window) -> Iterator[ListedPage]:
        """The calls of ``window``, a page at a time, following the provider's paging.

        Asks the provider for the window under the boundary rule of
        :mod:`poller.domain.windows`. Transient failures are retried a bounded number of
        times; after that, or on a permanent failure, raises :class:`ProviderError` *after*
        yielding the pages that did arrive. Raises :class:`PagingLoopError` when a paging
        token or next URL repeats and :class:`PageLimitExceeded` past the page limit.
        """
        ...

    def normalise(self, raw: Mapping[str, Any], position: RecordPosition) -> CallRecord:
        """One provider record as a :class:`CallRecord`; raises :class:`MalformedRecordError`."""
        ...

    def resolve_download(self, call: RecordingLocator) -> DownloadRequest:
        """How to fetch the recording of a call whose recording is ready.

        May ask the provider again (for a fresh signed URL). Raises :class:`ProviderError`.
        """
        ...


@dataclass(frozen=True, slots=True)
class SourceDeletion:
    """The vendor's answer to a delete: ``deleted`` now, or ``gone`` (404: already deleted,
    which counts as done). ``detail`` is what the vendor said, for the call's event."""

    outcome: Literal["deleted", "gone"]
    http_status: int | None
    detail: str


@runtime_checkable
class SourceDeleter(Protocol):
    """An optional capability: a provider whose API can delete a recording at the source.

    Only adapters whose vendor documents a delete endpoint implement it; the others do not
    stub it. Raises :class:`ProviderError` for any other answer (the caller retries with
    back-off, within a bound).
    """

    def delete_recording(self, call: RecordingLocator) -> SourceDeletion: ...


@runtime_checkable
class SourceDeletionCheck(Protocol):
    """An optional capability: a provider that can tell, before any delete, whether its
    credentials may delete recordings (`provider check` asks it when delete_at_source is on).
    """

    def deletion_problems(self) -> list[str]:
        """What stops deleting at the source, each a sentence naming the fix; empty: none
        known. Raises :class:`ProviderError` when the provider cannot be asked."""
        ...
