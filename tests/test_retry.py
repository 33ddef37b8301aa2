"""Retry delays grow, stay capped, spread out, and never undercut Retry-After."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from poller.adapters.http import HttpPermanent, HttpTransient, RetryPolicy, parse_retry_after
from poller.domain.call_record import RateLimitHints
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


# -- the in-call retry policy and the Retry-After parser, shared by provider and Siro ----------


def test_retry_after_in_seconds_or_as_an_http_date() -> None:
    now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    assert parse_retry_after("120", now) == 120
    assert parse_retry_after(" 0.5 ", now) == 0.5
    assert parse_retry_after("Mon, 02 Mar 2026 09:01:30 GMT", now) == 90
    assert parse_retry_after("Mon, 02 Mar 2026 08:00:00 GMT", now) == 0  # past: now


@pytest.mark.parametrize("value", [None, "", "soon", "-3", "nan", "inf", "-inf", "1e400"])
def test_unusable_retry_after_values_are_ignored(value: str | None) -> None:
    assert parse_retry_after(value, datetime(2026, 3, 2, tzinfo=UTC)) is None


def test_rate_limit_hints_use_the_same_parser() -> None:
    now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    hints = RateLimitHints.from_headers(
        {"Retry-After": "Mon, 02 Mar 2026 09:00:10 GMT", "X-RateLimit-Reset": "inf"}, now
    )
    assert hints.retry_after_seconds == 10
    assert hints.reset_at is None


class Flaky:
    def __init__(self, failures: list[Exception]) -> None:
        self.failures = failures
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "done"


def policy(waits: list[float], **kwargs: float) -> RetryPolicy:
    return RetryPolicy(sleep=waits.append, **kwargs)  # type: ignore[arg-type]


def test_waits_are_full_jitter_under_a_doubling_cap() -> None:
    waits: list[float] = []
    fn = Flaky([HttpTransient("x") for _ in range(5)])
    assert (
        policy(waits, max_tries=6, base_delay=1.0, max_delay=4.0).call(
            fn, retry_on=(HttpTransient,)
        )
        == "done"
    )
    caps = [1, 2, 4, 4, 4]
    assert all(0 <= wait <= cap for wait, cap in zip(waits, caps, strict=True))


def test_retry_after_is_honoured_exactly_and_tries_are_bounded() -> None:
    waits: list[float] = []
    fn = Flaky([HttpTransient("x", retry_after=7) for _ in range(9)])
    with pytest.raises(HttpTransient):
        policy(waits, max_tries=3, base_delay=1.0, max_delay=30.0).call(
            fn, retry_on=(HttpTransient,)
        )
    assert waits == [7, 7] and fn.calls == 3


def test_a_retry_after_over_the_cap_gives_up_at_once() -> None:
    waits: list[float] = []
    fn = Flaky([HttpTransient("x", retry_after=31)])
    with pytest.raises(HttpTransient):
        policy(waits, max_tries=5, max_delay=30.0).call(fn, retry_on=(HttpTransient,))
    assert waits == [] and fn.calls == 1


def test_other_errors_are_not_retried() -> None:
    waits: list[float] = []
    fn = Flaky([HttpPermanent("x")])
    with pytest.raises(HttpPermanent):
        policy(waits, max_tries=5).call(fn, retry_on=(HttpTransient,))
    assert fn.calls == 1
