"""Every provider runs the provider contract: the generic adapter over HTTP, the in-memory one."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from poller.adapters.http import RetryPolicy
from poller.adapters.providers.generic import GenericProvider, GenericSettings
from poller.adapters.providers.memory import InMemoryProvider
from poller.ports.provider import (
    PermanentProviderError,
    ProviderError,
    ProviderPort,
    TransientProviderError,
)
from poller.simulators.provider_server import FakeCallLog, quickstart_call, serve
from tests.provider_contract import (
    SIGNATURE,
    FakeTime,
    HttpProviderContract,
    HttpWorld,
    ProviderContract,
    ProviderWorld,
    call_ids,
    listed,
    seed,
)


class GenericWorld(HttpWorld):
    """The quickstart-shaped JSON call log of poller/simulators/provider_server.py."""

    def __init__(self) -> None:
        self.api = FakeCallLog(page_size=self.page_size, auth=("bearer", "provider-token"))
        self.server = serve(self.api)
        self.waits: list[float] = []
        self.time = FakeTime()
        self.paging: dict[str, Any] = {}

    def __enter__(self) -> GenericWorld:
        self.server.__enter__()
        self.api.base_url = self.server.url
        self.api.add_recording("/media/plain.mp3", b"ID3audio")
        self.api.add_recording(
            "/media/signed.mp3",
            b"ID3audio",
            require_auth=False,
            required_query={"X-Goog-Signature": "deadbeefcafe"},
        )
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.__exit__(None, None, None)

    def settings(self, **overrides: Any) -> GenericSettings:
        values: dict[str, Any] = {
            "base_url": self.server.url,
            "auth": "bearer",
            "token": "provider-token",
            # Signed recording URLs are never stored: the call is fetched again for a fresh one.
            "recording": {"refetch_path": "/calls/{call_id}", "refetch_item_path": "call"},
            **overrides,
        }
        return GenericSettings.model_validate(values)

    def retry(self) -> RetryPolicy:
        return RetryPolicy(max_tries=3, base_delay=0.0, max_delay=10.0, sleep=self.retry_sleep)

    def provider(self, *, max_pages: int | None = None) -> ProviderPort:
        paging = dict(self.paging)
        if max_pages is not None:
            paging["max_pages"] = max_pages
        return GenericProvider(
            self.settings(paging=paging),
            retry=self.retry(),
            sleep=self.time.sleep,
            monotonic=self.time,
        )

    def add_call(
        self, call_id: str, at: datetime, *, recording: bool = True, signed: bool = False
    ) -> None:
        url = None
        if recording:
            url = f"/media/signed.mp3?{SIGNATURE}" if signed else "/media/plain.mp3"
        self.api.add_call(quickstart_call(call_id, at, recording_url=url), at)

    def add_recording(self, call_id: str) -> None:
        self.api.update_call(call_id, recording_url="/media/plain.mp3")

    def add_malformed(self, call_id: str, at: datetime) -> None:
        record = quickstart_call(call_id, at)
        record["started_at"] = "the day before yesterday"
        self.api.add_call(record, at)

    def fail_listing(
        self, status: int, *, times: int | None = 1, retry_after: str | None = None
    ) -> None:
        self.api.fail_page(1, status, times=times, retry_after=retry_after)

    def loop_paging(self, at_page: int) -> None:
        self.api.repeat_token_at_page = at_page

    def listing_requests(self) -> int:
        return len(self.api.list_requests())

    def redirect_listing_to(self, url: str) -> None:
        self.api.redirect_listing_to = url

    def next_page_on(self, base_url: str) -> None:
        self.api.paging = "next_url"
        self.api.next_url_base = base_url
        self.paging = {"mode": "next_url"}

    def expire_tokens_after(self, uses: int) -> ProviderPort:
        self.api.auth = ("oauth", "poller-client", "client-secret")
        self.api.token_uses = uses
        settings = self.settings(
            auth="oauth_client_credentials",
            token=None,
            token_url=f"{self.server.url}/oauth/token",
            client_id="poller-client",
            client_secret="client-secret",
            paging=self.paging,
        )
        return GenericProvider(settings, retry=self.retry())

    def tokens_minted(self) -> int:
        return len(self.api.tokens_issued)


class TestGenericProvider(HttpProviderContract):
    @pytest.fixture
    def world(self) -> Iterator[GenericWorld]:
        with GenericWorld() as world:
            yield world


def test_the_rate_limiter_waits_on_the_clock_the_adapter_is_given() -> None:
    with GenericWorld() as world:
        ids = seed(world, 3)
        world.fail_listing(429, times=1, retry_after="2")
        # A retry policy that waits without moving the clock: the limiter's own pause remains.
        retry = RetryPolicy(max_tries=2, base_delay=0.0, max_delay=10.0, sleep=world.waits.append)
        provider = GenericProvider(
            world.settings(), retry=retry, sleep=world.time.sleep, monotonic=world.time
        )
        assert sorted(call_ids(listed(provider))) == ids
        assert world.waits == [pytest.approx(2.0)]
        assert world.time.slept == [pytest.approx(2.0)]


class MemoryWorld(ProviderWorld):
    """The in-memory provider, scripted directly."""

    page_size = 10

    def __init__(self) -> None:
        self.memory = InMemoryProvider(page_size=self.page_size)

    def provider(self, *, max_pages: int | None = None) -> ProviderPort:
        if max_pages is not None:
            self.memory.max_pages = max_pages
        return self.memory

    def add_call(
        self, call_id: str, at: datetime, *, recording: bool = True, signed: bool = False
    ) -> None:
        url = None
        if recording:
            url = f"https://media.example.com/{call_id}.mp3"
            if signed:
                url += f"?{SIGNATURE}"
        self.memory.add(quickstart_call(call_id, at, recording_url=url), at)

    def add_recording(self, call_id: str) -> None:
        self.memory.update(call_id, recording_url=f"https://media.example.com/{call_id}.mp3")

    def add_malformed(self, call_id: str, at: datetime) -> None:
        record = quickstart_call(call_id, at)
        record["started_at"] = "the day before yesterday"
        self.memory.add(record, at)

    def fail_listing(
        self, status: int, *, times: int | None = 1, retry_after: str | None = None
    ) -> None:
        seconds = float(retry_after) if retry_after is not None else None
        error: ProviderError
        if status == 429 or status >= 500:
            error = TransientProviderError(f"HTTP {status}", status=status, retry_after=seconds)
        else:
            error = PermanentProviderError(f"HTTP {status}", status=status)
        self.memory.failures = deque([error] * (times or 1_000))

    def loop_paging(self, at_page: int) -> None:
        self.memory.repeat_page = at_page

    def listing_requests(self) -> int:
        return self.memory.listing_requests


class TestInMemoryProvider(ProviderContract):
    @pytest.fixture
    def world(self) -> MemoryWorld:
        return MemoryWorld()
