"""Retry delays grow, stay capped, spread out, and never undercut Retry-After."""

from __future__ import annotations

import random
from datetime import timedelta

from poller.domain.retry import retry_delay


def delays(attempt: int, **kwargs: float) -> list[float]:
    rng = random.Random(7)
    return [
        retry_delay(attempt, base_seconds=30, max_seconds=3600, rng=rng, **kwargs).total_seconds()
        for _ in range(200)
    ]


def test_delays_double_per_attempt_within_their_jitter_band() -> None:
    for attempt, step in [(1, 30), (2, 60), (3, 120), (5, 480)]:
        spread = delays(attempt)
        assert min(spread) >= step / 2 and max(spread) <= step
        assert len({round(d, 3) for d in spread}) > 150  # really jittered


def test_delays_are_capped() -> None:
    assert max(delays(30)) <= 3600
    assert min(delays(30)) >= 1800


def test_retry_after_is_a_floor() -> None:
    assert min(delays(1, retry_after_seconds=900)) == 900
    assert retry_delay(9, base_seconds=30, max_seconds=60, retry_after_seconds=5) >= timedelta(
        seconds=30
    )
