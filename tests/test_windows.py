"""Cursor and window arithmetic: the pure rules the poll cycle plans with."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from poller.domain.windows import (
    Window,
    ceil_to,
    first_cursor,
    floor_to,
    halve,
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
