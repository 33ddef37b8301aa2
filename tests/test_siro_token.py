"""The access-token cache on its own: one mint for many threads, expiry, and a 401's token."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from poller.adapters.http.tokens import AccessToken, AccessTokenCache
from poller.ports.siro import SiroTransientError
from poller.simulators.siro_server import ManualClock

MARGIN = timedelta(minutes=5)


class CountingMint:
    def __init__(self, clock: ManualClock, lifetime: timedelta = timedelta(hours=16)) -> None:
        self.clock = clock
        self.lifetime = lifetime
        self.count = 0
        self.pause = 0.0
        self.fail_with: Exception | None = None

    def __call__(self) -> AccessToken:
        self.count += 1
        time.sleep(self.pause)  # widens the window in which other threads would mint too
        if self.fail_with is not None:
            raise self.fail_with
        return AccessToken(f"token-{self.count}", self.clock() + self.lifetime)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def test_many_threads_share_one_mint(clock: ManualClock) -> None:
    mint = CountingMint(clock)
    mint.pause = 0.1
    cache = AccessTokenCache(mint, clock=clock, refresh_margin=MARGIN)
    start = threading.Barrier(16)

    def get() -> str:
        start.wait()
        return cache.get().value

    with ThreadPoolExecutor(16) as pool:
        values = list(pool.map(lambda _: get(), range(16)))

    assert mint.count == 1
    assert set(values) == {"token-1"}


def test_a_new_token_is_minted_ahead_of_expiry(clock: ManualClock) -> None:
    mint = CountingMint(clock)
    cache = AccessTokenCache(mint, clock=clock, refresh_margin=MARGIN)
    first = cache.get()

    clock.advance(timedelta(hours=16) - MARGIN - timedelta(seconds=1))
    assert cache.get() is first

    clock.advance(timedelta(seconds=1))
    assert cache.get().value == "token-2"


def test_a_refused_token_is_replaced_once(clock: ManualClock) -> None:
    mint = CountingMint(clock)
    cache = AccessTokenCache(mint, clock=clock, refresh_margin=MARGIN)
    refused = cache.get()

    cache.invalidate(refused)

    assert cache.get().value == "token-2"
    assert mint.count == 2


def test_a_late_401_does_not_discard_the_token_another_thread_already_replaced(
    clock: ManualClock,
) -> None:
    mint = CountingMint(clock)
    cache = AccessTokenCache(mint, clock=clock, refresh_margin=MARGIN)
    refused = cache.get()
    cache.invalidate(refused)  # thread A saw the 401 first and got token-2
    replacement = cache.get()

    cache.invalidate(refused)  # thread B's 401 for the same old token arrives late

    assert cache.get() is replacement
    assert mint.count == 2


def test_threads_waiting_on_a_failed_mint_share_its_error(clock: ManualClock) -> None:
    mint = CountingMint(clock)
    mint.pause = 0.1
    mint.fail_with = SiroTransientError("Siro access-token: HTTP 503", http_status=503)
    cache = AccessTokenCache(mint, clock=clock, refresh_margin=MARGIN)
    start = threading.Barrier(8)

    def get() -> BaseException | None:
        start.wait()
        try:
            cache.get()
        except SiroTransientError as exc:
            return exc
        return None

    with ThreadPoolExecutor(8) as pool:
        errors = list(pool.map(lambda _: get(), range(8)))

    assert all(isinstance(e, SiroTransientError) and e.http_status == 503 for e in errors)
    assert mint.count == 1  # the waiters did not each ask Siro again in turn

    mint.fail_with = None
    assert cache.get().value.startswith("token-")  # and the next caller tries afresh
