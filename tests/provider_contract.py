"""The provider contract: what every adapter must do, whatever its vendor.

An adapter's test module runs the suite in a few lines (vdirsyncer's ``tests/storage`` style)::

    class TestGeneric(HttpProviderContract):
        @pytest.fixture
        def world(self) -> Iterator[ProviderWorld]:
            with GenericWorld() as world:
                yield world

A :class:`ProviderWorld` plays the vendor: it seeds calls in the vendor's own record shape,
scripts failures and builds the adapter pointed at itself. :class:`ProviderContract` holds what
any provider must do; :class:`HttpProviderContract` adds what only an HTTP provider can get
wrong (credentials on redirects and next-page URLs, Retry-After, tokens expiring mid-window).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from poller.domain.states import RecordingState
from poller.domain.windows import Window
from poller.ports.provider import (
    ListedPage,
    PageLimitExceeded,
    PagingLoopError,
    PermanentProviderError,
    ProviderAuthError,
    ProviderPort,
    TransientProviderError,
)
from poller.simulators.counting_listener import CountingListener

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
WINDOW = Window(T0, T0 + timedelta(hours=2))
SIGNATURE = "X-Goog-Signature=deadbeefcafe"


class FakeTime:
    """A monotonic clock that sleeping moves on at once: an adapter's waits cost no real time.

    Give an adapter ``sleep=time.sleep, monotonic=time`` (its rate limiters wait on them) and
    its retry policy ``sleep=time.sleep`` too, so a retry's wait also counts down a limiter's
    pause, as real time would.
    """

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class ProviderWorld(ABC):
    """A vendor's call log, scripted by the contract tests."""

    # Records per listing page; the suite seeds more than two pages' worth.
    page_size: int = 10
    # The vendor lists a window's calls newest first (Dialpad) rather than oldest first.
    newest_first: bool = False
    # The adapter retries a passing failure itself (every HTTP adapter, through its client).
    retries_within_listing: bool = False

    @abstractmethod
    def add_call(
        self, call_id: str, at: datetime, *, recording: bool = True, signed: bool = False
    ) -> None:
        """A call at ``at``; with ``signed`` its recording URL carries :data:`SIGNATURE`."""

    @abstractmethod
    def add_recording(self, call_id: str) -> None:
        """The recording of an already listed call becomes ready."""

    @abstractmethod
    def add_malformed(self, call_id: str, at: datetime) -> None:
        """A record listed at ``at`` whose start time cannot be read."""

    @abstractmethod
    def provider(self, *, max_pages: int | None = None) -> ProviderPort: ...

    @abstractmethod
    def fail_listing(
        self, status: int, *, times: int | None = 1, retry_after: str | None = None
    ) -> None:
        """The next listing requests answer ``status`` (``times``: None for every one)."""

    @abstractmethod
    def loop_paging(self, at_page: int) -> None:
        """From page ``at_page`` on, the vendor points each page at itself."""

    @abstractmethod
    def listing_requests(self) -> int: ...


def listed(provider: ProviderPort, window: Window = WINDOW) -> list[ListedPage]:
    return list(provider.list_window(window))


def call_ids(pages: list[ListedPage]) -> list[str]:
    return [record.provider_call_id for page in pages for record in page.records]


def seed(world: ProviderWorld, count: int, *, start: datetime = T0) -> list[str]:
    ids = [f"c{n:04d}" for n in range(count)]
    for n, call_id in enumerate(ids):
        world.add_call(call_id, start + timedelta(minutes=1 + n))
    return ids


class ProviderContract:
    """What every provider adapter does; a subclass supplies the ``world`` fixture."""

    def test_every_call_of_a_window_is_listed_once_across_its_pages(
        self, world: ProviderWorld
    ) -> None:
        ids = seed(world, world.page_size * 2 + 3)
        pages = listed(world.provider())
        assert sorted(call_ids(pages)) == ids
        assert len(pages) >= 3
        assert [page.number for page in pages] == list(range(1, len(pages) + 1))

    def test_calls_outside_the_window_are_not_listed(self, world: ProviderWorld) -> None:
        world.add_call("first-instant", WINDOW.start)
        world.add_call("inside", WINDOW.start + timedelta(minutes=30))
        world.add_call("last-second", WINDOW.end - timedelta(seconds=1))
        world.add_call("hour-before", WINDOW.start - timedelta(hours=1))
        world.add_call("hour-after", WINDOW.end + timedelta(hours=1))
        found = set(call_ids(listed(world.provider())))
        assert {"first-instant", "inside", "last-second"} <= found
        assert not found & {"hour-before", "hour-after"}

    def test_a_malformed_record_is_reported_with_its_position_and_the_rest_go_in(
        self, world: ProviderWorld
    ) -> None:
        seed(world, 3)
        world.add_malformed("broken", T0 + timedelta(minutes=2, seconds=30))
        pages = listed(world.provider())
        assert sorted(call_ids(pages)) == ["c0000", "c0001", "c0002"]
        [error] = [error for page in pages for error in page.malformed]
        assert error.position.window == WINDOW
        assert error.position.page == 1
        # Ordered by time: after c0000 and c0001, or before them when listed newest first.
        assert error.position.index == (1 if getattr(world, "newest_first", False) else 2)
        assert "started_at" in error.reason
        assert error.raw is not None and "broken" in error.raw

    def test_a_paging_loop_stops_the_window_after_the_pages_before_it(
        self, world: ProviderWorld
    ) -> None:
        seed(world, world.page_size * 3)
        world.loop_paging(at_page=2)
        pages: list[ListedPage] = []
        with pytest.raises(PagingLoopError):
            for page in world.provider().list_window(WINDOW):
                pages.append(page)
        assert len(call_ids(pages)) >= world.page_size
        assert world.listing_requests() <= 4

    def test_the_page_limit_bounds_a_window(self, world: ProviderWorld) -> None:
        seed(world, world.page_size * 3)
        pages: list[ListedPage] = []
        with pytest.raises(PageLimitExceeded):
            for page in world.provider(max_pages=2).list_window(WINDOW):
                pages.append(page)
        assert len(pages) == 2

    def test_a_signed_recording_url_is_never_stored_but_still_downloads(
        self, world: ProviderWorld
    ) -> None:
        world.add_call("signed", T0 + timedelta(minutes=5), signed=True)
        provider = world.provider()
        [record] = [record for page in listed(provider) for record in page.records]
        stored = f"{record.recording_url} {record.raw}"
        assert "deadbeefcafe" not in stored
        assert record.recording_state is RecordingState.READY
        request = provider.resolve_download(_StoredCall.of(record))
        assert "deadbeefcafe" in request.url

    def test_a_recording_that_comes_late_is_ready_when_listed_again(
        self, world: ProviderWorld
    ) -> None:
        world.add_call("late", T0 + timedelta(minutes=5), recording=False)
        provider = world.provider()
        [first] = [record for page in listed(provider) for record in page.records]
        assert first.recording_state is RecordingState.PENDING
        world.add_recording("late")
        [second] = [record for page in listed(provider) for record in page.records]
        assert second.recording_state is RecordingState.READY

    def test_a_passing_failure_is_retried_within_the_listing(self, world: ProviderWorld) -> None:
        ids = seed(world, 3)
        world.fail_listing(503, times=1)
        if not world.retries_within_listing:
            # A provider without in-cycle retries reports it; the next cycle lists again.
            with pytest.raises(TransientProviderError):
                listed(world.provider())
        assert sorted(call_ids(listed(world.provider()))) == ids

    def test_a_lasting_server_error_is_transient(self, world: ProviderWorld) -> None:
        seed(world, 3)
        world.fail_listing(503, times=None)
        with pytest.raises(TransientProviderError) as raised:
            listed(world.provider())
        assert raised.value.status in (503, None)

    def test_a_rejected_request_is_permanent_and_not_retried(self, world: ProviderWorld) -> None:
        seed(world, 3)
        world.fail_listing(400, times=None)
        with pytest.raises(PermanentProviderError):
            listed(world.provider())
        assert world.listing_requests() == 1

    def test_a_429_carries_its_retry_after(self, world: ProviderWorld) -> None:
        seed(world, 3)
        world.fail_listing(429, times=None, retry_after="7")
        with pytest.raises(TransientProviderError) as raised:
            listed(world.provider())
        assert raised.value.retry_after == pytest.approx(7.0)


class HttpWorld(ProviderWorld):
    """A vendor served over HTTP on 127.0.0.1."""

    retries_within_listing = True

    # The waits the adapter's retry policy asked for (it sleeps through them in no time).
    waits: list[float]
    # The adapter's clock: its rate limiters sleep on it, in no real time.
    time: FakeTime
    # The vendor's credential is a static key (no token to mint again): when it expires the
    # listing must stop with an auth error after the pages that came, without retrying.
    static_credentials: bool = False

    @abstractmethod
    def redirect_listing_to(self, url: str) -> None: ...

    @abstractmethod
    def next_page_on(self, base_url: str) -> None:
        """Next-page URLs point at ``base_url`` instead of the vendor."""

    @abstractmethod
    def expire_tokens_after(self, uses: int) -> ProviderPort:
        """An adapter whose access tokens the vendor refuses after ``uses`` requests."""

    @abstractmethod
    def tokens_minted(self) -> int: ...

    def retry_sleep(self, seconds: float) -> None:
        """The retry policy's sleep: noted in ``waits``, and passed on the adapter's clock."""
        self.waits.append(seconds)
        self.time.sleep(seconds)


class HttpProviderContract(ProviderContract):
    """What only an HTTP provider can get wrong."""

    @pytest.fixture
    def elsewhere(self) -> Iterator[CountingListener]:
        """Another port of the same host: another host to credentials and to the allowlist."""
        with CountingListener() as listener:
            yield listener

    def test_retry_after_is_honoured_within_the_listing(self, world: HttpWorld) -> None:
        ids = seed(world, 3)
        world.fail_listing(429, times=1, retry_after="2")
        assert sorted(call_ids(listed(world.provider()))) == ids
        assert world.waits == [pytest.approx(2.0)]

    def test_credentials_never_follow_a_redirect_to_another_host(
        self, world: HttpWorld, elsewhere: CountingListener
    ) -> None:
        seed(world, 3)
        world.redirect_listing_to(f"{elsewhere.url}/calls")
        with pytest.raises(PermanentProviderError):
            listed(world.provider())
        assert elsewhere.connections == 0

    def test_credentials_never_go_to_a_next_page_on_another_host(
        self, world: HttpWorld, elsewhere: CountingListener
    ) -> None:
        seed(world, world.page_size * 2)
        world.next_page_on(elsewhere.url)
        pages: list[ListedPage] = []
        with pytest.raises(PermanentProviderError):
            for page in world.provider().list_window(WINDOW):
                pages.append(page)
        assert len(pages) == 1
        assert elsewhere.connections == 0

    def test_a_token_that_expires_mid_window_is_minted_again(self, world: HttpWorld) -> None:
        ids = seed(world, world.page_size * 2 + 3)
        provider = world.expire_tokens_after(uses=2)
        if getattr(world, "static_credentials", False):
            pages: list[ListedPage] = []
            with pytest.raises(ProviderAuthError):
                for page in provider.list_window(WINDOW):
                    pages.append(page)
            assert len(pages) == 2
            assert world.listing_requests() == 3
            return
        assert sorted(call_ids(listed(provider))) == ids
        assert world.tokens_minted() >= 2


class _StoredCall:
    """What the worker hands ``resolve_download``: the stored row's locator fields."""

    def __init__(
        self, call_id: str, recording_id: str | None, url: str | None, raw: object = None
    ) -> None:
        self.provider_call_id = call_id
        self.recording_id = recording_id
        self.recording_url = url
        # The stored row keeps the sanitised raw record too; an adapter may read it back.
        self.raw = raw

    @classmethod
    def of(cls, record: object) -> _StoredCall:
        return cls(
            record.provider_call_id,  # type: ignore[attr-defined]
            record.recording_id,  # type: ignore[attr-defined]
            record.recording_url,  # type: ignore[attr-defined]
            getattr(record, "raw", None),
        )
