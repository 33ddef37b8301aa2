"""What a provider adapter hands the core: normalised calls, download requests, its limits.

Everything here is provider-neutral and free of I/O. Adapters build these values at their edge
(parsing the provider's time formats, field names and headers); the core and the worker only
ever see them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from poller.domain.retry_after import parse_retry_after
from poller.domain.states import Direction, RecordingState
from poller.domain.urls import UnsafeUrl, url_target

# Column widths of the `calls` table (poller/adapters/sql/models.py). An adapter truncates
# free text to fit, because one over-long contact name must not fail a whole page.
MAX_ID_LENGTH = 255
TEXT_LIMITS: Mapping[str, int] = {
    "rep_email": 320,
    "rep_phone": 64,
    "rep_provider_id": 255,
    "rep_name": 255,
    "rep_extension": 64,
    "contact_name": 255,
    "contact_phone": 64,
}


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One call from a provider's call log, normalised.

    Every value is safe to persist: ``recording_url`` and ``raw`` have been stripped of
    credentials (userinfo, signed query strings) by the adapter. Times are aware UTC.
    """

    provider_call_id: str
    started_at: datetime
    recording_state: RecordingState
    raw: Mapping[str, Any]
    recording_id: str | None = None
    ended_at: datetime | None = None
    duration_seconds: int | None = None
    direction: Direction | None = None
    rep_email: str | None = None
    rep_phone: str | None = None
    rep_provider_id: str | None = None
    rep_name: str | None = None
    rep_extension: str | None = None
    contact_name: str | None = None
    contact_phone: str | None = None
    recording_url: str | None = None
    # With recording_state NONE: the provider dropped the recording as too short to keep.
    recording_too_short: bool = False
    # Why the provider has no recording (``recording_state`` NONE), in its own terms: the skip
    # reason an operator reads. Unset: the generic "the provider reports no recording".
    no_recording_reason: str | None = None
    # Why the adapter cannot tell which party is the rep (say, a direction it does not know):
    # the call is skipped with this reason rather than given to a guess, which could be the
    # customer.
    rep_undecided_reason: str | None = None

    def __post_init__(self) -> None:
        if not self.provider_call_id:
            raise ValueError("a call record needs a provider call id")
        for name in ("started_at", "ended_at"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise ValueError(f"{name} must be timezone-aware")

    @property
    def rep_identifiers(self) -> tuple[str, ...]:
        """Every value that names the rep, for allow and deny lists."""
        values = (
            self.rep_email,
            self.rep_phone,
            self.rep_provider_id,
            self.rep_extension,
            self.rep_name,
        )
        return tuple(value for value in values if value)


class RecordingLocator(Protocol):
    """What download resolution needs to know about a call; a stored ``Call`` row has it."""

    @property
    def provider_call_id(self) -> str: ...

    @property
    def recording_id(self) -> str | None: ...

    @property
    def recording_url(self) -> str | None: ...


def host_key(url: str) -> str:
    """``host`` or ``host:port`` (lower case, default ports dropped): what credentials bind to.

    Read as the connection reads it (:func:`~poller.domain.urls.url_target`); raises
    :class:`~poller.domain.urls.UnsafeUrl` (a ``ValueError``) for a URL parsers disagree on.
    """
    return url_target(url).key


@dataclass(frozen=True, slots=True)
class DownloadRequest:
    """How to fetch one recording's audio, and where that fetch may go.

    - ``credential_hosts``: exact host keys (``host`` or ``host:port``) that may receive
      ``headers``, the provider's credentials; never over plain HTTP when ``https_only``.
      The downloader asks :meth:`headers_for` before the first request and again before
      following every redirect, so credentials never follow a redirect to a storage bucket.
    - ``download_hosts``: hosts the recording (or a redirect) may be fetched from besides the
      credential hosts: exact host keys or patterns like ``*.example.com``.
    - ``explicit_hosts``: exact entries an operator configured. Only these may resolve to
      loopback, private, link-local or cloud metadata addresses.
    """

    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    credential_hosts: frozenset[str] = frozenset()
    download_hosts: frozenset[str] = frozenset()
    explicit_hosts: frozenset[str] = frozenset()
    https_only: bool = False
    format_hint: str | None = None
    # The setting a refused destination's message tells the operator to change.
    hosts_config_key: str = "provider.download_hosts"
    # The URL's path itself grants access (a share link): messages show only its host.
    secret_path: bool = False
    # The URL was handed out just now and expires (a signed URL or token from a JSON step):
    # refused where no credentials went, it is retried and asked for afresh, not failed.
    refreshable: bool = False

    def headers_for(self, url: str) -> dict[str, str]:
        try:
            target = url_target(url)
        except UnsafeUrl:
            return {}
        if self.https_only and target.scheme != "https":
            return {}
        if target.key not in self.credential_hosts:
            return {}
        return dict(self.headers)


@dataclass(frozen=True, slots=True)
class ProviderCapabilities:
    """Limits of a provider's call-log API that the core plans its windows around.

    ``None`` means unlimited or unknown.
    """

    max_window: timedelta | None = None
    max_rows_per_query: int | None = None
    settle_delay: timedelta = timedelta(0)
    history_limit: timedelta | None = None


_RETRY_AFTER = ("retry-after",)
_REMAINING = (
    "x-ratelimit-remaining",
    "x-rate-limit-remaining",
    "ratelimit-remaining",
    "x-aircallapi-remaining",
    "x-cloudtalkapi-remaining",
)
_LIMIT = (
    "x-ratelimit-limit",
    "x-rate-limit-limit",
    "ratelimit-limit",
    "x-aircallapi-limit",
    "x-cloudtalkapi-limit",
)
_WINDOW = ("x-rate-limit-window",)
_RESET = (
    "x-ratelimit-reset",
    "x-rate-limit-reset",
    "ratelimit-reset",
    "x-aircallapi-reset",
    "x-cloudtalkapi-resettime",
)
# Reset headers are either a Unix time or a number of seconds from now; anything this large is
# a Unix time (2001-09-09), no API asks a client to wait 31 years.
_UNIX_TIME_THRESHOLD = 1_000_000_000


@dataclass(frozen=True, slots=True)
class RateLimitHints:
    """What a provider's response headers said about its rate limit."""

    retry_after_seconds: float | None = None
    remaining: int | None = None
    limit: int | None = None
    reset_at: datetime | None = None
    # The length of the provider's rate window (RingCentral's X-Rate-Limit-Window), seconds.
    window_seconds: float | None = None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str], received_at: datetime) -> RateLimitHints:
        lowered = {name.lower(): value.strip() for name, value in headers.items()}

        def first(names: tuple[str, ...]) -> str | None:
            return next((lowered[name] for name in names if lowered.get(name)), None)

        return cls(
            retry_after_seconds=parse_retry_after(first(_RETRY_AFTER), received_at),
            remaining=_as_int(first(_REMAINING)),
            limit=_as_int(first(_LIMIT)),
            reset_at=_reset_at(first(_RESET), received_at),
            window_seconds=_as_number(first(_WINDOW)),
        )

    @property
    def exhausted(self) -> bool:
        return self.remaining is not None and self.remaining <= 0


def _as_number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _as_int(value: str | None) -> int | None:
    number = _as_number(value)
    return int(number) if number is not None else None


def _reset_at(value: str | None, received_at: datetime) -> datetime | None:
    number = _as_number(value)
    if number is None:
        return None
    try:
        if number >= _UNIX_TIME_THRESHOLD:
            return datetime.fromtimestamp(number, tz=UTC)
        return received_at + timedelta(seconds=number)
    except (OverflowError, OSError, ValueError):
        return None
