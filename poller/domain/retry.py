"""When to try a row again after a transient error: capped exponential backoff with jitter."""

from __future__ import annotations

import random
from datetime import timedelta


def retry_delay(
    attempt: int,
    *,
    base_seconds: float,
    max_seconds: float,
    retry_after_seconds: float | None = None,
    rng: random.Random | None = None,
) -> timedelta:
    """The wait before attempt ``attempt + 1``, given that ``attempt`` (1-based) just failed.

    "Equal jitter": half the exponential step is fixed, half random, so many rows that failed
    together (a provider outage) spread out without ever retrying at once. A server's
    ``Retry-After`` is a floor: retrying earlier only earns another 429.
    """
    step = min(max_seconds, base_seconds * 2 ** max(0, attempt - 1))
    delay = step / 2 + (rng or random).uniform(0, step / 2)
    if retry_after_seconds is not None:
        delay = max(delay, retry_after_seconds)
    return timedelta(seconds=delay)
