"""Cursor and window arithmetic: the pure rules the poll cycle plans with."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from poller.domain.windows import (
    MIN_SPAN,
    SpanSizer,
    Window,
    ceil_to,
    cursor_limit,
    first_cursor,
    floor_to,
    halve,
    outside_span,
    poll_window,
    request_bounds,
    split_window,
)

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)


def test_a_window_is_aware_and_not_empty() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Window(datetime(2026, 1, 1), datetime(2026, 1, 2))
    with pytest.raises(ValueError, match="not after"):
        Window(NOW, NOW)
    assert str(Window(NOW, NOW + SECOND)) == "[2026-11-24T12:00:00Z, 2026-11-24T12:00:01Z)"


def test_first_run_starts_at_start_at_or_the_initial_lookback() -> None:
    start_at = datetime(2026, 11, 1, tzinfo=UTC)
    assert first_cursor(NOW, start_at=start_at, initial_lookback=timedelta(hours=24)) == start_at
    assert first_cursor(NOW, start_at=None, initial_lookback=timedelta(hours=24)) == NOW - (
        timedelta(hours=24)
    )


def test_first_window_has_no_lookback_and_later_ones_do() -> None:
    initial = NOW - timedelta(hours=24)
    common = {
        "now": NOW,
        "lookback": timedelta(minutes=60),
        "settle_delay": timedelta(minutes=2),
        "initial_start": initial,
    }
    assert poll_window(None, **common) == Window(initial, NOW - timedelta(minutes=2))
    cursor = NOW - timedelta(minutes=10)
    assert poll_window(cursor, **common) == Window(
        cursor - timedelta(minutes=60), NOW - timedelta(minutes=2)
    )


def test_the_lookback_never_crosses_start_at_nor_the_history_limit() -> None:
    start_at = NOW - timedelta(minutes=30)
    window = poll_window(
        start_at + timedelta(minutes=5),
        now=NOW,
        lookback=timedelta(hours=1),
        settle_delay=timedelta(0),
        initial_start=start_at,
        floor=start_at,
    )
    assert window == Window(start_at, NOW)
    window = poll_window(
        NOW - timedelta(days=400),
        now=NOW,
        lookback=timedelta(0),
        settle_delay=timedelta(0),
        initial_start=NOW,
        history_limit=timedelta(days=180),
    )
    assert window == Window(NOW - timedelta(days=180), NOW)


def test_no_window_while_the_settle_delay_has_not_passed() -> None:
    assert (
        poll_window(
            NOW - timedelta(seconds=30),
            now=NOW,
            lookback=timedelta(0),
            settle_delay=timedelta(minutes=2),
            initial_start=NOW,
        )
        is None
    )


def test_a_nudged_window_reaches_now_but_the_cursor_limit_does_not() -> None:
    settle = timedelta(minutes=2)
    common = {
        "now": NOW,
        "lookback": timedelta(minutes=60),
        "settle_delay": settle,
        "initial_start": NOW - timedelta(hours=24),
    }
    cursor = NOW - settle  # where the last poll left it
    assert poll_window(cursor, **common, reach_now=True) == Window(
        cursor - timedelta(minutes=60), NOW
    )
    assert poll_window(cursor, **common) == Window(cursor - timedelta(minutes=60), NOW - settle)
    assert cursor_limit(NOW, settle) == NOW - settle
    # Before the settle delay has passed over start_at, only a nudged poll has anything to list.
    fresh = {**common, "initial_start": NOW - SECOND}
    assert poll_window(None, **fresh) is None
    assert poll_window(None, **fresh, reach_now=True) == Window(NOW - SECOND, NOW)


@pytest.mark.parametrize(
    ("hours", "max_hours", "expected_spans"),
    [(10, None, 1), (10, 10, 1), (10, 3, 4), (24, 6, 4), (1, 24, 1)],
)
def test_split_spans_cover_the_window_exactly(
    hours: int, max_hours: int | None, expected_spans: int
) -> None:
    window = Window(NOW - timedelta(hours=hours), NOW)
    max_span = timedelta(hours=max_hours) if max_hours else None
    spans = split_window(window, max_span)
    assert len(spans) == expected_spans
    assert spans[0].start == window.start and spans[-1].end == window.end
    for before, after in itertools.pairwise(spans):
        assert before.end == after.start  # contiguous: no gap, no overlap
    if max_span is not None:
        assert all(span.span <= max_span for span in spans)


def test_halves_meet_exactly_and_tiny_windows_are_not_split() -> None:
    window = Window(NOW, NOW + timedelta(minutes=3))
    halves = halve(window)
    assert halves is not None
    first, second = halves
    assert (first.start, first.end, second.end) == (window.start, second.start, window.end)
    assert halve(Window(NOW, NOW + SECOND)) is None


def test_rounding_to_the_parameter_precision() -> None:
    value = NOW + timedelta(milliseconds=1500)
    assert floor_to(value, SECOND) == NOW + SECOND
    assert ceil_to(value, SECOND) == NOW + 2 * SECOND
    assert ceil_to(NOW, SECOND) == NOW


def test_request_bounds_widen_by_one_unit_after_rounding() -> None:
    window = Window(NOW + timedelta(milliseconds=250), NOW + timedelta(seconds=10, milliseconds=1))
    assert request_bounds(window, SECOND) == (NOW - SECOND, NOW + timedelta(seconds=12))
    ms = timedelta(milliseconds=1)
    assert request_bounds(window, ms) == (
        NOW + timedelta(milliseconds=249),
        NOW + timedelta(seconds=10, milliseconds=2),
    )


@pytest.mark.parametrize("convention", ["half_open", "inclusive", "exclusive"])
@pytest.mark.parametrize("resolution", [SECOND, timedelta(milliseconds=1)])
def test_every_instant_of_a_window_is_listed_by_some_span(
    convention: str, resolution: timedelta
) -> None:
    """Whatever a provider does with its bounds, a call on a span boundary is never lost."""
    window = Window(NOW, NOW + timedelta(minutes=10))
    spans = split_window(window, timedelta(minutes=2, milliseconds=500))
    boundaries = [span.start for span in spans] + [spans[-1].end - resolution]
    nearby = [b + delta * resolution for b in boundaries for delta in (-1, 0, 1)]
    instants = [t for t in nearby if window.start <= t < window.end]

    def provider_returns(start: datetime, end: datetime, at: datetime) -> bool:
        # What the provider keeps is at its own precision.
        at = floor_to(at, resolution)
        if convention == "half_open":
            return start <= at < end
        if convention == "inclusive":
            return start <= at <= end
        return start < at < end

    for instant in instants:
        listed_by = [
            span for span in spans if provider_returns(*request_bounds(span, resolution), instant)
        ]
        assert listed_by, f"{instant} is listed by no span under {convention}"


# -- spans sized by the records they hold -------------------------------------------------------


def _list_all(
    sizer: SpanSizer, calls: list[datetime], *, honoured: bool = True
) -> tuple[list[Window], int]:
    """Drive ``sizer`` as the poll cycle does: the spans listed completely, and the requests.
    Not ``honoured``: the provider answers every span with all the calls."""
    listed: list[Window] = []
    requests = 0
    while (span := sizer.next_span()) is not None:
        requests += 1
        rows = sum(1 for at in calls if span.contains(at)) if honoured else len(calls)
        if rows >= sizer.full_rows and sizer.full(span):
            continue
        sizer.listed(span, rows)
        listed.append(span)
    return listed, requests


def test_an_empty_stretch_of_eleven_months_is_one_span() -> None:
    window = Window(NOW - timedelta(days=335), NOW)
    assert _list_all(SpanSizer(window, None, full_rows=10_000), []) == ([window], 1)


def test_a_declared_limit_still_caps_each_span() -> None:
    window = Window(NOW - timedelta(days=90), NOW)
    listed, requests = _list_all(SpanSizer(window, timedelta(days=27), full_rows=10_000), [])
    assert requests == 4 and all(span.span <= timedelta(days=27) for span in listed)


def test_a_full_span_is_listed_again_in_halves_from_the_same_start() -> None:
    window = Window(NOW, NOW + timedelta(hours=8))
    sizer = SpanSizer(window, None, full_rows=100)
    span = sizer.next_span()
    assert span == window
    assert sizer.full(span)
    assert sizer.next_span() == Window(NOW, NOW + timedelta(hours=4))


def test_the_next_span_is_sized_from_the_density_just_seen() -> None:
    window = Window(NOW, NOW + timedelta(days=10))
    sizer = SpanSizer(window, None, full_rows=1000)
    first = Window(NOW, NOW + timedelta(hours=1))
    sizer.listed(first, 100)  # 100 an hour: the next span should hold about 500, 5 hours
    assert sizer.next_span() == Window(first.end, first.end + timedelta(hours=5))
    sizer.listed(Window(first.end, first.end + timedelta(hours=5)), 0)
    assert sizer.next_span() == Window(first.end + timedelta(hours=5), window.end)


def test_a_span_too_short_to_halve_is_not_split() -> None:
    window = Window(NOW, NOW + SECOND)
    sizer = SpanSizer(window, None, full_rows=1)
    assert not sizer.full(window)
    assert sizer.next_span() == window


def test_a_full_span_at_the_floor_is_listed_whole_and_no_span_is_sized_below_it() -> None:
    window = Window(NOW, NOW + timedelta(hours=2))
    floor = timedelta(minutes=15)
    burst = [NOW + timedelta(seconds=n % 60) for n in range(500)]  # 500 calls in a minute
    listed, requests = _list_all(SpanSizer(window, None, full_rows=50, floor=floor), burst)
    # 2 h, 1 h, 30 min and 15 min from the start: the last holds the burst and is listed whole.
    assert listed[0] == Window(NOW, NOW + floor)
    assert all(span.span >= floor for span in listed[:-1])
    assert requests == 3 + len(listed)


def test_a_provider_that_ignores_the_span_costs_a_bounded_number_of_requests() -> None:
    window = Window(NOW - timedelta(days=335), NOW)
    floor = timedelta(minutes=15)
    calls = [NOW - timedelta(days=1)] * 100  # always answered, whatever the span
    sizer = SpanSizer(window, None, full_rows=50, floor=floor)
    listed, requests = _list_all(sizer, calls, honoured=False)
    assert listed[-1].end == window.end
    # Without the detection in the poll cycle: halvings down to the floor, then one span per
    # floor's length at most. Bounded, though large; the poll cycle stops it much sooner.
    assert requests <= window.span / floor + 15


def test_once_the_span_is_ignored_the_rest_of_the_window_is_one_span_never_split() -> None:
    window = Window(NOW, NOW + timedelta(days=3))
    sizer = SpanSizer(window, timedelta(days=2), full_rows=100, floor=timedelta(minutes=15))
    assert sizer.full(Window(NOW, NOW + timedelta(days=2)))
    half = sizer.next_span()
    assert half == Window(NOW, NOW + timedelta(days=1))
    assert sizer.ignore_spans(half)  # listing the half again is no use: start over, longer
    assert sizer.next_span() == Window(NOW, NOW + timedelta(days=2))  # the declared limit holds
    assert not sizer.full(Window(NOW, NOW + timedelta(days=2)))
    sizer.listed(Window(NOW, NOW + timedelta(days=2)), 5_000)
    assert sizer.next_span() == Window(NOW + timedelta(days=2), window.end)
    whole = SpanSizer(window, None, full_rows=100)
    assert not whole.ignore_spans(window)  # already the longest span: listing it goes on


def test_a_call_well_outside_a_span_shows_the_provider_ignored_it() -> None:
    span = Window(NOW, NOW + timedelta(hours=1))
    assert not outside_span(span, NOW)
    assert not outside_span(span, span.end + SECOND)  # the request bounds' rounding
    assert not outside_span(span, NOW - timedelta(hours=5))  # a long call, filed by its end
    assert outside_span(span, span.end + timedelta(minutes=10))
    assert outside_span(span, NOW - timedelta(days=2))


@given(
    offsets=st.lists(st.integers(min_value=0, max_value=30 * 86_400 - 1), max_size=300),
    full_rows=st.integers(min_value=1, max_value=80),
    max_hours=st.none() | st.integers(min_value=1, max_value=24 * 40),
    floor_minutes=st.sampled_from([0, 15]),
)
def test_listed_spans_cover_the_window_exactly_and_none_is_left_full(
    offsets: list[int], full_rows: int, max_hours: int | None, floor_minutes: int
) -> None:
    window = Window(NOW, NOW + timedelta(days=30))
    calls = [NOW + timedelta(seconds=offset) for offset in offsets]
    max_span = timedelta(hours=max_hours) if max_hours is not None else None
    floor = timedelta(minutes=floor_minutes) or MIN_SPAN
    sizer = SpanSizer(window, max_span, full_rows=full_rows, floor=floor)
    listed, requests = _list_all(sizer, calls)
    assert listed[0].start == window.start and listed[-1].end == window.end
    assert all(a.end == b.start for a, b in itertools.pairwise(listed))
    assert max_span is None or all(span.span <= max_span for span in listed)
    for span in listed:
        rows = sum(1 for at in calls if span.contains(at))
        assert rows < full_rows or span.span < 2 * floor
    shortest = min(floor, max_span or floor)
    assert all(span.span >= shortest for span in listed[:-1])
    assert requests - len(listed) <= len(listed) * math.ceil(math.log2(window.span / floor))
    if not calls:
        assert requests == len(split_window(window, max_span))
