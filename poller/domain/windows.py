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
moments, which providers fill in late. The cursor never moves past ``now - settle_delay``
(:func:`cursor_limit`).

A nudged poll (a webhook announced a call) lists up to ``now`` instead: the call it was told
of is usually inside the settle stretch. The cursor still stops at ``now - settle_delay``, so
the next poll lists that stretch again; that re-read is harmless by construction, as rows are
upserted, and whatever the provider filed late in the stretch is still found.

Spans sized by records
----------------------
A window is listed in spans sized by what they hold, not by the calendar
(:class:`SpanSizer`): the first span reaches as far as the provider's declared limit allows,
so a stretch without calls costs one request; a span that turns out full is listed again in
halves; after each span the next one is sized from the density of calls just seen.

Splitting only helps a provider that answers for the span asked. No span is split or sized
below a floor, so the work is bounded: a window needs at most one span per floor's length
(or per the provider's limit, if shorter) plus, before each, as many splits as halve the
longest span down to the floor. A provider seen answering with calls well outside the span
asked (:func:`outside_span`) is listed in plain spans, paged through, from there on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

# Windows shorter than this are not split further when a provider caps its rows per query:
# more calls than the cap within one second is not something splitting can fix.
MIN_SPAN = timedelta(seconds=1)
# A call this long after a span's end, or this long before its start, was not filed in it.
_LATE_MARGIN = timedelta(minutes=10)
_EARLY_MARGIN = timedelta(days=1)
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
    reach_now: bool = False,
) -> Window | None:
    """The window one poll cycle lists, or ``None`` when there is nothing to list yet.

    Without a cursor (first run) the window starts at ``initial_start``: the lookback exists
    to re-read what an earlier cycle saw, and there was none. ``floor`` (the configured
    ``start_at``) is never crossed by the lookback; ``history_limit`` clamps the start to what
    the provider still keeps. ``reach_now`` (a nudged poll) ends the window at ``now`` rather
    than before the settle delay; the cursor's limit stays :func:`cursor_limit`.
    """
    start = initial_start if cursor is None else cursor - lookback
    if floor is not None:
        start = max(start, floor)
    if history_limit is not None:
        start = max(start, now - history_limit)
    end = now if reach_now else cursor_limit(now, settle_delay)
    if end <= start:
        return None
    return Window(start, end)


def cursor_limit(now: datetime, settle_delay: timedelta) -> datetime:
    """The furthest a poll at ``now`` may move the cursor, whatever window it listed: the
    provider may still be filing the calls that came after ``now - settle_delay``."""
    return now - settle_delay


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


def halve(window: Window, floor: timedelta = MIN_SPAN) -> tuple[Window, Window] | None:
    """Two halves of ``window``, or ``None`` when a half would be shorter than ``floor``."""
    if window.span < 2 * floor:
        return None
    middle = window.start + window.span / 2
    return Window(window.start, middle), Window(middle, window.end)


def outside_span(span: Window, started_at: datetime) -> bool:
    """Whether a call that started at ``started_at`` is well outside ``span``, where no
    provider answering for that span puts it: proof that the provider ignores the span.

    The margins allow for the rounding of :func:`request_bounds`, for a provider that filters
    on when a call was created or ended rather than when it started, and for a mapping that
    reads the answer time as the start: none of those moves a call by this much.
    """
    return started_at >= span.end + _LATE_MARGIN or started_at < span.start - _EARLY_MARGIN


@dataclass(slots=True)
class SpanSizer:
    """The consecutive spans that list ``window``, each sized by the records the last one held.

    ``max_span`` is the provider's declared limit on one query's span (``None``: none), and
    ``full_rows`` the number of records that makes a span full: the provider's row cap, or
    for a provider without one the most records one span should hold, so that the cursor
    moves (and progress is saved) often on a busy account. ``floor`` is the shortest span it
    splits into or sizes (the window's last span may be shorter): a full span at the floor is
    listed whole.

    The caller lists :meth:`next_span` completely and reports it with :meth:`listed`, or
    reports it with :meth:`full` and lists the same start again, in a span half as long.
    Once :meth:`ignore_spans` is called (the provider answers for other spans than the one
    asked), spans are as long as the provider's limit allows and never split. Spans never
    leave a gap: each starts where the last listed one ended.
    """

    window: Window
    max_span: timedelta | None
    full_rows: int
    floor: timedelta = MIN_SPAN
    _start: datetime = field(init=False)
    # How long the next span is; ``None``: to the end of the window.
    _size: timedelta | None = field(init=False, default=None)
    _splits: int = field(init=False, default=0)
    _honoured: bool = field(init=False, default=True)

    def __post_init__(self) -> None:
        if self.max_span is not None and self.max_span <= timedelta(0):
            raise ValueError("max_span must be positive")
        if self.full_rows <= 0:
            raise ValueError("full_rows must be positive")
        if self.floor <= timedelta(0):
            raise ValueError("floor must be positive")
        self._start = self.window.start

    @property
    def splits(self) -> int:
        """How many spans turned out full and were split."""
        return self._splits

    @property
    def honoured(self) -> bool:
        """Whether spans are still split and sized (no :meth:`ignore_spans` yet)."""
        return self._honoured

    def next_span(self) -> Window | None:
        """The span to list next, or ``None`` once the whole window is listed."""
        if self._start >= self.window.end:
            return None
        end = self.window.end
        for limit in (self._size, self.max_span):
            if limit is not None:
                end = min(end, self._start + limit)
        return Window(self._start, end)

    def listed(self, span: Window, rows: int) -> None:
        """``span`` was listed completely and held ``rows`` records: the next span starts at
        its end, long enough to hold about half of ``full_rows`` at the same density."""
        self._start = span.end
        remaining = self.window.end - span.end
        # Seconds, not timedelta arithmetic: a long empty-ish span times a big factor would
        # overflow timedelta.
        wanted = span.span.total_seconds() * self.full_rows / (2 * max(rows, 1))
        if not self._honoured or rows == 0 or wanted >= remaining.total_seconds():
            self._size = None
        else:
            self._size = max(self.floor, timedelta(seconds=wanted))

    def full(self, span: Window) -> bool:
        """``span`` turned out full: the next span is its first half. ``False`` when a half
        would be shorter than the floor or spans are ignored, and then nothing changes: the
        caller lists ``span`` whole."""
        halves = halve(span, self.floor) if self._honoured else None
        if halves is None:
            return False
        self._start = span.start
        self._size = halves[0].span
        self._splits += 1
        return True

    def ignore_spans(self, span: Window) -> bool:
        """The provider answered ``span`` (the one being listed) with calls from outside it:
        from here on spans are as long as ``max_span`` allows and never split. Whether the
        next span is no longer ``span``, so that listing it whole should start again."""
        self._honoured = False
        self._start = span.start
        self._size = None
        following = self.next_span()
        return following != span


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
