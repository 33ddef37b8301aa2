"""Cursor and window arithmetic for incremental polling. Pure: every instant is an argument.

The boundary rule
-----------------
A window (and each span it is split into) is **half-open**, ``[start, end)``. The cursor is the
``end`` of the last fully listed span and means "everything the provider files before this
instant is in the table". Consecutive spans share their boundary instant: one span's ``end``
is the next one's ``start``, so no instant falls between two spans.

Providers differ on whether their ``from``/``to`` parameters are inclusive, and on the
precision they keep (Unix seconds drop the fraction). :func:`request_bounds` therefore asks
for a little more than the span: the start rounded down and the end rounded up to the
parameter's precision, each widened by one unit. A call exactly on a boundary is thus returned
by at least one of the two spans that share it, whatever the provider's convention; a call
returned by both is one row, because rows are keyed by ``(provider, provider_call_id)`` and
written with an upsert. Re-reading is harmless by construction; skipping never happens.

The window itself is ``[cursor - lookback, now - settle_delay)``. The lookback re-reads recent
calls whose recording was not ready yet; the settle delay keeps the window clear of the last
moments, which providers fill in late. The cursor never moves past ``now - settle_delay``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

# Windows shorter than this are not split further when a provider caps its rows per query:
# more calls than the cap within one second is not something splitting can fix.
MIN_SPAN = timedelta(seconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True, order=True)
class Window:
    """A half-open UTC interval ``[start, end)`` of a provider's call log."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("window bounds must be timezone-aware")
        if self.end <= self.start:
            raise ValueError(f"window end {self.end} is not after its start {self.start}")

    @property
    def span(self) -> timedelta:
        return self.end - self.start

    def contains(self, instant: datetime) -> bool:
        return self.start <= instant < self.end

    def __str__(self) -> str:
        return f"[{_iso(self.start)}, {_iso(self.end)})"


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def first_cursor(
    now: datetime, *, start_at: datetime | None, initial_lookback: timedelta
) -> datetime:
    """Where the very first poll starts: ``start_at`` if configured, else ``now - lookback``."""
    return start_at if start_at is not None else now - initial_lookback


def poll_window(
    cursor: datetime | None,
    *,
    now: datetime,
    lookback: timedelta,
    settle_delay: timedelta,
    initial_start: datetime,
    floor: datetime | None = None,
    history_limit: timedelta | None = None,
) -> Window | None:
    """The window one poll cycle lists, or ``None`` when there is nothing to list yet.

    Without a cursor (first run) the window starts at ``initial_start``: the lookback exists
    to re-read what an earlier cycle saw, and there was none. ``floor`` (the configured
    ``start_at``) is never crossed by the lookback; ``history_limit`` clamps the start to what
    the provider still keeps.
    """
    start = initial_start if cursor is None else cursor - lookback
    if floor is not None:
        start = max(start, floor)
    if history_limit is not None:
        start = max(start, now - history_limit)
    end = now - settle_delay
    if end <= start:
        return None
    return Window(start, end)


def split_window(window: Window, max_span: timedelta | None) -> list[Window]:
    """Consecutive spans covering ``window`` exactly, none longer than ``max_span``."""
    if max_span is None or window.span <= max_span:
        return [window]
    if max_span <= timedelta(0):
        raise ValueError("max_span must be positive")
    spans: list[Window] = []
    start = window.start
    while start < window.end:
        end = min(start + max_span, window.end)
        spans.append(Window(start, end))
        start = end
    return spans


def halve(window: Window) -> tuple[Window, Window] | None:
    """Two halves of ``window``, or ``None`` when it is already as short as it is useful."""
    if window.span < 2 * MIN_SPAN:
        return None
    middle = window.start + window.span / 2
    return Window(window.start, middle), Window(middle, window.end)


def floor_to(value: datetime, unit: timedelta) -> datetime:
    return _EPOCH + ((value - _EPOCH) // unit) * unit


def ceil_to(value: datetime, unit: timedelta) -> datetime:
    floored = floor_to(value, unit)
    return floored if floored == value else floored + unit


def request_bounds(window: Window, resolution: timedelta) -> tuple[datetime, datetime]:
    """The instants to send a provider for ``window`` (see the boundary rule above)."""
    return (
        floor_to(window.start, resolution) - resolution,
        ceil_to(window.end, resolution) + resolution,
    )
