"""The worker over the in-memory provider: no network at all, every store backend."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from poller.adapters.providers.memory import InMemoryProvider, InMemoryRecordings
from poller.adapters.siro_fake import InMemorySiro
from poller.app import build_worker
from poller.config import Settings
from poller.core.daemon import Daemon
from poller.core.poll import poll_once
from poller.core.poll_report import PollReport
from poller.core.users_sync import sync_users
from poller.core.worker import Worker
from poller.domain.call_record import DownloadRequest
from poller.domain.failures import StepFailure
from poller.domain.siro import AudioFormat, RecordingCreate, SignedUpload, SiroUser
from poller.domain.states import CallState
from poller.ports.download import Downloaded
from poller.ports.provider import TransientProviderError
from poller.simulators.audio import mp3_bytes
from poller.simulators.provider_server import quickstart_call
from poller.wiring import daemon_params_from_settings, poll_params_from_settings
from tests.seed import AnyStore

STARTED = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
NOW = STARTED + timedelta(hours=1)
SIGNED = "X-Goog-Signature=0ddba11"


class World:
    def __init__(self, store: AnyStore, tmp_path: Path) -> None:
        self.store = store
        self.provider = InMemoryProvider(name="memory")
        self.recordings = InMemoryRecordings()
        self.siro = InMemorySiro(
            clock=lambda: NOW, users=[SiroUser(id="user-1", email="rep@yourcompany.com")]
        )
        self.settings = Settings(
            state_dir=tmp_path / "state",
            provider={"name": "memory"},
            poll={"start_at": STARTED - timedelta(hours=1), "settle_delay_seconds": 0},
        )

    def offer(self, call_id: str, minute: int, *, signed: bool = False) -> None:
        url = f"https://media.example.com/{call_id}.mp3" + (f"?{SIGNED}" if signed else "")
        at = STARTED + timedelta(minutes=minute)
        self.provider.add(quickstart_call(call_id, at, recording_url=url), at)
        self.recordings.add(url, mp3_bytes(1))

    def poll(self) -> None:
        params = poll_params_from_settings(self.settings, "memory")
        report = poll_once(params, self.provider, self.store, NOW)
        assert report.ok, report.error

    def worker(self) -> Worker:
        worker = build_worker(
            self.settings,
            self.store,
            threading.Event(),
            providers={"memory": self.provider},
            siro=self.siro,
            downloader=self.recordings,
        )
        worker.clock = lambda: NOW
        sync_users(self.siro, self.store, NOW, default_region="US")
        return worker


@pytest.fixture
def world(any_store: AnyStore, tmp_path: Path) -> World:
    return World(any_store, tmp_path)


def test_every_call_reaches_siro_once_and_is_attributed(world: World) -> None:
    for n in range(5):
        world.offer(f"call-{n}", n)
    world.poll()
    world.worker().drain()
    world.poll()
    world.worker().drain()
    assert {c.state for c in world.store.list_calls()} == {CallState.UPLOADED}
    assert sorted(body.title.split("[")[1] for body in world.siro.created) == [
        f"call-{n}]" for n in range(5)
    ]
    assert {body.user_id for body in world.siro.created} == {"user-1"}


def test_a_signed_url_is_fetched_fresh_from_the_provider_never_from_the_row(
    world: World,
) -> None:
    world.offer("call-signed", 1, signed=True)
    world.poll()
    (call,) = world.store.find_calls("call-signed")
    assert call.recording_url is not None and "0ddba11" not in call.recording_url
    world.worker().drain()
    assert world.recordings.fetched == [f"https://media.example.com/call-signed.mp3?{SIGNED}"]
    assert world.store.find_calls("call-signed")[0].state is CallState.UPLOADED


def test_a_provider_that_is_briefly_away_only_delays_the_call(world: World) -> None:
    world.offer("call-1", 1)
    world.poll()
    world.recordings.failures.append(
        StepFailure.retry("download_network", "the connection broke after 0 bytes")
    )
    world.worker().drain()
    (call,) = world.store.find_calls("call-1")
    assert call.state is CallState.PENDING
    assert call.next_attempt_at is not None and call.next_attempt_at > NOW
    assert (call.error_kind, call.attempts) == ("download_network", 1)


def test_a_listing_failure_keeps_what_came_before_and_the_rest_comes_next_cycle(
    world: World,
) -> None:
    world.provider.page_size = 2
    for n in range(5):
        world.offer(f"call-{n}", n)
    world.provider.failures.append(TransientProviderError("HTTP 503", status=503))
    params = poll_params_from_settings(world.settings, "memory")
    failed = poll_once(params, world.provider, world.store, NOW)
    assert failed.error is not None and "503" in failed.error
    assert world.store.list_calls() == []
    world.poll()
    assert len(world.store.list_calls()) == 5


def test_the_daemons_poll_job_polls_every_provider_even_after_one_fails(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    world.offer("call-1", 1)
    polled: list[str] = []

    def broken() -> PollReport:
        polled.append("broken")
        raise RuntimeError("a bug in one provider's cycle")

    def working() -> PollReport:
        polled.append("working")
        return poll_once(
            poll_params_from_settings(world.settings), world.provider, world.store, NOW
        )

    daemon = Daemon(
        daemon_params_from_settings(world.settings),
        store=world.store,
        poll_cycles=[broken, working],
        worker=world.worker(),
        stop=threading.Event(),
    )
    daemon.poll_job()
    assert polled == ["broken", "working"]
    assert [c.provider_call_id for c in world.store.list_calls()] == ["call-1"]
    assert "poll job failed" in caplog.text


class HeldSiro(InMemorySiro):
    """Siro whose signed URLs wait until the test lets them go; it counts the requests under
    way at once to its API and to its storage, the most at once of each, and the uploads
    between their signed URL and their PUT's end."""

    def __init__(self) -> None:
        super().__init__(
            clock=lambda: NOW, users=[SiroUser(id="user-1", email="rep@yourcompany.com")]
        )
        self.go = threading.Event()
        self.lock = threading.Lock()
        self.at_once = {"api": 0, "storage": 0, "signed": 0}
        self.most_at_once = {"api": 0, "storage": 0, "signed": 0}

    @contextmanager
    def under_way(self, *hosts: str) -> Iterator[None]:
        with self.lock:
            for host in hosts:
                self.at_once[host] += 1
                self.most_at_once[host] = max(self.most_at_once[host], self.at_once[host])
        try:
            yield
        finally:
            with self.lock:
                for host in hosts:
                    self.at_once[host] -= 1

    def request_upload(self, file_type: AudioFormat, size_bytes: int) -> SignedUpload:
        with self.under_way("api"):
            assert self.go.wait(timeout=30), "the test never let the uploads go"
            signed = super().request_upload(file_type, size_bytes)
        with self.lock:
            self.at_once["signed"] += 1
            self.most_at_once["signed"] = max(self.most_at_once["signed"], self.at_once["signed"])
        return signed

    def put_audio(
        self, signed: SignedUpload, path: Path, file_type: AudioFormat, size_bytes: int
    ) -> SignedUpload:
        try:
            with self.under_way("storage"):
                time.sleep(0.005)  # long enough for the other threads to pile up, if they may
                return super().put_audio(signed, path, file_type, size_bytes)
        finally:
            with self.lock:
                self.at_once["signed"] -= 1

    def create_recording(self, body: RecordingCreate) -> str:
        with self.under_way("api"):
            time.sleep(0.005)
            return super().create_recording(body)


class CountedRecordings(InMemoryRecordings):
    """The provider's recordings, counting the downloads under way at once."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.downloading = 0
        self.most_downloading = 0

    def fetch(self, request: DownloadRequest, destination: Path) -> Downloaded:
        with self.lock:
            self.downloading += 1
            self.most_downloading = max(self.most_downloading, self.downloading)
        try:
            return super().fetch(request, destination)
        finally:
            with self.lock:
                self.downloading -= 1


def wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, "the worker never got there"
        time.sleep(0.01)


def test_downloads_go_on_while_siro_holds_the_uploads_bounded_per_host(
    world: World, tmp_path: Path
) -> None:
    world.settings = Settings(
        state_dir=tmp_path / "state",
        provider={"name": "memory"},
        poll={"start_at": STARTED - timedelta(hours=1), "settle_delay_seconds": 0},
        worker={"concurrency": 2},
    )
    world.siro = siro = HeldSiro()
    world.recordings = recordings = CountedRecordings()
    for n in range(6):
        world.offer(f"call-{n}", n)
    world.poll()
    worker = world.worker()
    drain = threading.Thread(target=worker.drain)
    drain.start()
    try:
        # Siro holds two signed URLs (worker.concurrency of them); the download stage goes on
        # with two more calls, which wait downloaded for their turn at the upload, and claims
        # no further.
        def states() -> list[str]:
            return sorted(c.state.value for c in world.store.list_calls())

        wait_for(lambda: siro.at_once["api"] == 2 and states().count("downloaded") == 4)
        assert states() == ["downloaded"] * 4 + ["pending"] * 2
        assert len(recordings.fetched) == 4
        assert len(list((tmp_path / "state" / "spool").iterdir())) == 4
    finally:
        siro.go.set()
        drain.join(timeout=60)
    assert {c.state for c in world.store.list_calls()} == {CallState.UPLOADED}
    assert len(siro.created) == 6 and len(recordings.fetched) == 6
    # Per host, no more than worker.concurrency requests at once; a signed URL is asked for
    # only once a storage slot is free for its PUT (it is short-lived: it must not wait).
    assert siro.most_at_once["api"] == 2
    assert siro.most_at_once["storage"] <= 2 and siro.most_at_once["signed"] <= 2
    assert recordings.most_downloading <= 2
