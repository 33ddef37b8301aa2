"""No cap on Retry-After (P14 break 6): a server's wait is believed up to a cap, and cutting it
is logged.

``Retry-After: 999999999`` from a hostile or broken provider paused that provider until the
daemon restarted. The provider, its rate-limit reset headers and Siro are all capped at
``max_retry_after_seconds`` (an hour unless set), over real sockets.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from poller.adapters.http import HttpTransient, RateLimiter, RetryPolicy
from poller.adapters.providers.generic import GenericProvider, GenericSettings
from poller.adapters.siro import SiroHttpClient
from poller.domain.windows import Window
from poller.ports.provider import TransientProviderError
from poller.ports.siro import SiroTransientError
from poller.simulators.http_server import LocalHTTPServer
from poller.simulators.provider_server import FakeCallLog, quickstart_call, serve
from poller.simulators.siro_server import FakeSiro, Fault
from tests.siro_settings import siro_settings

T0 = datetime(2026, 2, 23, 14, 0, tzinfo=UTC)
WINDOW = Window(T0 - timedelta(hours=1), T0 + timedelta(hours=1))
HOSTILE_WAIT = "999999999"
AN_HOUR = 3600.0


@pytest.fixture
def api() -> FakeCallLog:
    calls = FakeCallLog(page_size=3)
    for n in range(2):
        at = T0 + timedelta(minutes=n)
        calls.add_call(quickstart_call(f"call-{n}", at), at)
    return calls


@pytest.fixture
def server(api: FakeCallLog) -> Iterator[LocalHTTPServer]:
    with serve(api) as running:
        yield running


def adapter(url: str, **settings: Any) -> GenericProvider:
    retry = RetryPolicy(max_tries=2, base_delay=0.0, max_delay=5.0)
    return GenericProvider(GenericSettings(base_url=url, **settings), retry=retry)


def listed_ids(provider: GenericProvider) -> list[str]:
    return [r.provider_call_id for page in provider.list_window(WINDOW) for r in page.records]


def test_no_cap_on_retry_after_a_huge_wait_pauses_the_provider_an_hour_at_most_and_says_so(
    api: FakeCallLog, server: LocalHTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    api.fail_page(1, 429, times=1, retry_after=HOSTILE_WAIT)
    provider = adapter(server.url)

    with pytest.raises(TransientProviderError) as caught:
        listed_ids(provider)
    assert caught.value.retry_after == AN_HOUR
    # The next poll of the same provider is held back by the pause: an hour, not 31 years.
    with pytest.raises(TransientProviderError) as held:
        listed_ids(provider)
    assert held.value.retry_after is not None
    assert 0 < held.value.retry_after <= AN_HOUR
    assert len(api.list_requests()) == 1
    lines = [record.getMessage() for record in caplog.records]
    cut = [line for line in lines if "provider.max_retry_after_seconds" in line]
    assert cut, caplog.text
    assert all(HOSTILE_WAIT in line and "3600 s" in line for line in cut)


def test_no_cap_on_retry_after_with_a_short_cap_the_provider_resumes_after_it(
    api: FakeCallLog, server: LocalHTTPServer
) -> None:
    api.fail_page(1, 429, times=1, retry_after=HOSTILE_WAIT)
    provider = adapter(server.url, max_retry_after_seconds=0.5)

    # The 429's wait is cut to half a second, sat out within the call, and the page comes.
    assert listed_ids(provider) == ["call-0", "call-1"]
    assert listed_ids(provider) == ["call-0", "call-1"]


def test_no_cap_on_retry_after_a_rate_limit_reset_years_away_is_capped_too(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    limiter = RateLimiter(max_wait=30, wall_clock=lambda: now, name="provider p")
    far = str(int((now + timedelta(days=365 * 30)).timestamp()))

    with caplog.at_level(logging.WARNING):
        limiter.observe(200, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": far})
    with pytest.raises(HttpTransient) as caught:
        limiter.acquire()

    assert caught.value.retry_after is not None
    assert 0 < caught.value.retry_after <= AN_HOUR
    assert "provider p asked for a wait of" in caplog.text


def test_no_cap_on_retry_after_siros_huge_wait_is_cut_to_its_own_setting(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with FakeSiro() as siro:
        client = SiroHttpClient(siro_settings(siro, read_timeout_seconds=0.3))
        siro.state.fail_next("users", Fault.rate_limited(retry_after=HOSTILE_WAIT))
        with caplog.at_level(logging.WARNING), pytest.raises(SiroTransientError) as caught:
            client.list_users()

    assert caught.value.retry_after == AN_HOUR
    cut = [r.getMessage() for r in caplog.records if "asked for a wait" in r.getMessage()]
    assert len(cut) == 1 and "siro.max_retry_after_seconds" in cut[0], cut
