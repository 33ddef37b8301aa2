"""A webhook event polls its provider within seconds in the running daemon, one poll at a time.

The daemon runs in this process with poll and work intervals of an hour, and the call ends
well inside the settle delay of two minutes: a call in Siro within the test came by the nudged
poll, never by an interval.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest

from poller.adapters.memory_store import MemoryStore
from poller.adapters.providers.generic import GenericProvider
from poller.adapters.providers.memory import InMemoryProvider
from poller.adapters.siro_fake import InMemorySiro
from poller.adapters.sql.store import SqlStore
from poller.app import build_worker
from poller.config import Settings
from poller.core.daemon import Daemon
from poller.core.poll import PollCycle
from poller.core.poll_report import PollParams, PollReport
from poller.core.polling import LockedPollCycle
from poller.core.users_sync import sync_users
from poller.domain.clock import utcnow
from poller.domain.siro import SiroUser
from poller.domain.windows import Window
from poller.ports.poll_lock import NoPollLock
from poller.ports.provider import ListedPage
from poller.ports.webhooks import Verified
from poller.simulators.audio import mp3_bytes
from poller.simulators.provider_server import FakeCallLog, quickstart_call, serve
from poller.wiring import daemon_params_from_settings, poll_cycle_from_settings
from tests.test_worker import NO_WAIT, Clock, worker_for

HOUR = 3600
# How long a test waits for what a nudge does; the intervals (an hour) are far beyond it.
PATIENCE = 60


class WatchedProvider(GenericProvider):
    """The generic adapter, counting the listings under way at once."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.guard = threading.Lock()
        self.active = 0
        self.most_at_once = 0
        self.windows: list[Window] = []

    @contextmanager
    def listing(self, window: Window) -> Iterator[None]:
        with self.guard:
            self.active += 1
            self.most_at_once = max(self.most_at_once, self.active)
            self.windows.append(window)
        try:
            time.sleep(
                0.5
            )  # longer than the debounce: a nudged poll would overlap, were it allowed
            yield
        finally:
            with self.guard:
                self.active -= 1

    def list_window(self, window: Window) -> Iterator[ListedPage]:
        with self.listing(window):
            yield from super().list_window(window)


@pytest.fixture
def api() -> Iterator[FakeCallLog]:
    api = FakeCallLog(auth=("bearer", "provider-token-123"))
    with serve(api) as running:
        api.base_url = running.url
        yield api


def settings_for(api: FakeCallLog, tmp_path: Path) -> Settings:
    return Settings(
        state_dir=tmp_path / "state",
        provider={"base_url": api.base_url, "auth": "bearer", "token": "provider-token-123"},
        poll={
            "start_at": utcnow() - timedelta(hours=2),
            "settle_delay_seconds": 120,
            "interval_seconds": HOUR,
        },
        worker={"interval_seconds": HOUR},
        siro={
            "conversation_type": "sales",
            "organization_id": "org-1",
            "users_refresh_minutes": 60,
        },
    )


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + PATIENCE
    while not condition():
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.05)


def test_an_event_brings_a_call_ended_seconds_ago_into_siro_with_one_poll_at_a_time(
    api: FakeCallLog, tmp_path: Path, sql_store: SqlStore
) -> None:
    settings = settings_for(api, tmp_path)
    provider = WatchedProvider(settings.provider, retry=NO_WAIT)
    siro = InMemorySiro(clock=utcnow, users=[SiroUser(id="u-9", email="m@example.com")])
    sync_users(siro, sql_store, utcnow(), default_region="US")
    stop = threading.Event()
    worker = build_worker(settings, sql_store, stop, providers={"generic": provider}, siro=siro)
    params = dataclasses.replace(
        daemon_params_from_settings(settings, {"generic": provider}),
        nudge_debounce_seconds=0.2,
        nudge_follow_up_seconds=(0.5, 1.0),
    )
    assert params.settle_delays == {"generic": 120.0}
    cycle = poll_cycle_from_settings(settings, "generic", provider, sql_store, utcnow)
    daemon = Daemon(
        params,
        store=sql_store,
        poll_cycles=[LockedPollCycle("generic", cycle, NoPollLock())],
        worker=worker,
        stop=stop,
    )
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: bool(provider.windows))  # the interval poll at start
        wait_until(lambda: provider.active == 0)
        started = utcnow() - timedelta(seconds=30)
        path = api.add_recording("/recordings/call-1", mp3_bytes())
        api.add_call(quickstart_call("call-1", started, recording_url=api.base_url + path), started)

        announced = Verified(event="call.ended", call_ids=("call-1",))
        senders = [
            threading.Thread(
                target=daemon.nudges.event_arrived, args=("generic", announced, utcnow())
            )
            for _ in range(8)
        ]
        for sender in senders:
            sender.start()
        daemon.poll_job()  # an interval poll at the same moment
        for sender in senders:
            sender.join(PATIENCE)

        wait_until(lambda: len(siro.recordings) == 1)
        wait_until(lambda: daemon.nudges.polls_run.get("generic", 0) >= 3)  # the follow-ups
    finally:
        stop.set()
        thread.join(PATIENCE)
    assert not thread.is_alive()
    assert provider.most_at_once == 1
    [call] = sql_store.find_calls("call-1")
    assert call.provider == "generic"
    cursor = sql_store.get_cursor("generic")
    assert cursor is not None and cursor.cursor_value is not None
    assert cursor.cursor_value <= utcnow() - timedelta(seconds=120)


@dataclass(frozen=True)
class HeldCycle(PollCycle):
    """A poll cycle that records how it was asked to run and waits for the test's go."""

    runs: list[bool] = field(default_factory=list)
    started: threading.Event = field(default_factory=threading.Event)
    go: threading.Event = field(default_factory=threading.Event)

    def __call__(self, *, reach_now: bool = False) -> PollReport:
        self.runs.append(reach_now)
        self.started.set()
        assert self.go.wait(PATIENCE)
        return PollReport(provider="memory", now=utcnow(), dry_run=False)


class HeldLock:
    def __init__(self, free: bool) -> None:
        self.free = free

    def try_acquire(self) -> bool:
        return self.free

    def release(self) -> None:
        pass


def daemon_with(cycle: HeldCycle, lock: HeldLock, tmp_path: Path, role: str = "all") -> Daemon:
    settings = Settings(
        state_dir=tmp_path / "state",
        provider={"base_url": "http://127.0.0.1:9", "auth": "none"},
        worker={"role": role},
    )
    store = MemoryStore()
    clock = Clock(utcnow())
    return Daemon(
        daemon_params_from_settings(settings),
        store=store,
        poll_cycles=[LockedPollCycle("memory", cycle, lock)],
        worker=worker_for(settings, store, InMemorySiro(clock=clock), clock),
        stop=threading.Event(),
    )


def held_cycle() -> HeldCycle:
    return HeldCycle(PollParams(provider_key="memory"), InMemoryProvider(), MemoryStore(), utcnow)


def test_a_nudge_during_a_poll_makes_that_poll_run_once_more_nudged(tmp_path: Path) -> None:
    cycle = held_cycle()
    daemon = daemon_with(cycle, HeldLock(free=True), tmp_path)
    interval = threading.Thread(target=daemon.poll_job)
    interval.start()
    assert cycle.started.wait(PATIENCE)

    # Returns at once: the poll under way takes the nudge; no second poll runs beside it.
    assert daemon.poll_provider("memory", reach_now=True)
    assert daemon.poll_provider("memory", reach_now=True)
    assert cycle.runs == [False]

    cycle.go.set()
    interval.join(PATIENCE)
    assert cycle.runs == [False, True]  # two nudges, one more pass


def test_a_process_without_the_poll_lock_ignores_nudges(tmp_path: Path) -> None:
    cycle = held_cycle()
    cycle.go.set()
    lock = HeldLock(free=False)
    daemon = daemon_with(cycle, lock, tmp_path)
    assert not daemon.poll_provider("memory", reach_now=True)
    assert not daemon.poll_provider("elsewhere", reach_now=True)
    assert cycle.runs == []
    lock.free = True
    assert daemon.poll_provider("memory", reach_now=True)
    assert cycle.runs == [True]


def test_a_worker_only_process_plans_no_poll_for_an_event(tmp_path: Path) -> None:
    cycle = held_cycle()
    daemon = daemon_with(cycle, HeldLock(free=True), tmp_path, role="worker")
    daemon.nudges.event_arrived("memory", Verified(event="call.ended"), utcnow())
    assert not daemon.poll_provider("memory", reach_now=True)
    assert cycle.runs == []
