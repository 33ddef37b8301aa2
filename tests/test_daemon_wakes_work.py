"""The work job runs as soon as calls are due, not a whole interval later.

Each daemon here runs in this process with intervals of an hour: any upload that happens
within the test happened because the work job was woken, never because its interval elapsed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from poller.adapters.memory_store import MemoryStore
from poller.adapters.providers.generic import GenericProvider
from poller.adapters.siro_fake import InMemorySiro
from poller.app import build_worker
from poller.config import Settings
from poller.core.daemon import Daemon
from poller.core.poll import poll_once
from poller.core.poll_report import PollReport
from poller.core.users_sync import sync_users
from poller.domain.clock import utcnow
from poller.domain.records import UsersSyncResult
from poller.domain.siro import SiroUser
from poller.simulators.audio import mp3_bytes
from poller.simulators.provider_server import FakeCallLog, quickstart_call, serve
from poller.wiring import daemon_params_from_settings, poll_params_from_settings
from tests.test_worker import NO_WAIT

HOUR = 3600
# How long a test waits for what a woken job does; the intervals (an hour) are far beyond it.
PATIENCE = 60


@pytest.fixture
def api() -> Iterator[FakeCallLog]:
    api = FakeCallLog(auth=("bearer", "provider-token-123"))
    with serve(api) as running:
        api.base_url = running.url
        yield api


def offer_call(api: FakeCallLog) -> None:
    started = utcnow() - timedelta(minutes=30)
    path = api.add_recording("/recordings/call-1", mp3_bytes())
    api.add_call(quickstart_call("call-1", started, recording_url=api.base_url + path), started)


def settings_for(api: FakeCallLog, tmp_path: Path, role: str) -> Settings:
    return Settings(
        state_dir=tmp_path / "state",
        provider={"base_url": api.base_url, "auth": "bearer", "token": "provider-token-123"},
        poll={
            "start_at": utcnow() - timedelta(hours=2),
            "settle_delay_seconds": 0,
            "interval_seconds": HOUR,
        },
        worker={"interval_seconds": HOUR, "role": role},
        siro={
            "conversation_type": "sales",
            "organization_id": "org-1",
            "users_refresh_minutes": 60,
        },
    )


class World:
    def __init__(self, api: FakeCallLog, tmp_path: Path, role: str) -> None:
        self.settings = settings_for(api, tmp_path, role)
        self.store = MemoryStore()
        self.provider = GenericProvider(self.settings.provider, retry=NO_WAIT)
        self.siro = InMemorySiro(clock=utcnow, users=[SiroUser(id="u-9", email="m@example.com")])
        self.stop = threading.Event()
        self.events: list[str] = []  # what happened, in order
        self.drained = threading.Condition()

    def poll(self) -> PollReport:
        report = poll_once(
            poll_params_from_settings(self.settings), self.provider, self.store, utcnow()
        )
        assert report.ok, report.error
        return report

    def daemon(
        self,
        poll_cycle: Callable[[], PollReport] | None = None,
        users_sync: Callable[[], UsersSyncResult] | None = None,
    ) -> Daemon:
        worker = build_worker(
            self.settings,
            self.store,
            self.stop,
            providers={self.settings.provider.name: self.provider},
            siro=self.siro,
        )
        drain = worker.drain

        def observed_drain() -> Any:
            report = drain()
            with self.drained:
                self.events.append(f"drain: {report.processed} processed")
                self.drained.notify_all()
            return report

        worker.drain = observed_drain  # type: ignore[method-assign]
        return Daemon(
            daemon_params_from_settings(self.settings),
            store=self.store,
            poll_cycles=[poll_cycle] if poll_cycle else [],
            worker=worker,
            stop=self.stop,
            users_sync=users_sync,
        )

    def wait_for_event(self, event: str) -> None:
        with self.drained:
            assert self.drained.wait_for(lambda: event in self.events, PATIENCE), self.events

    def run(self, daemon: Daemon) -> threading.Thread:
        thread = threading.Thread(target=daemon.run, daemon=True)
        thread.start()
        return thread

    def finish(self, thread: threading.Thread) -> None:
        self.stop.set()
        thread.join(PATIENCE)
        assert not thread.is_alive()


def test_a_poll_that_brings_due_calls_wakes_the_work_job(api: FakeCallLog, tmp_path: Path) -> None:
    world = World(api, tmp_path, role="all")
    sync_users(world.siro, world.store, utcnow(), default_region="US")
    offer_call(api)

    def poll_after_the_first_drain() -> PollReport:
        # The first work pass (at start) has found nothing; only then does the call arrive.
        world.wait_for_event("drain: 0 processed")
        report = world.poll()
        world.events.append(f"poll: {report.counts['inserted']} inserted")
        return report

    thread = world.run(world.daemon(poll_cycle=poll_after_the_first_drain))
    try:
        world.wait_for_event("drain: 1 processed")
    finally:
        world.finish(thread)

    assert world.events == ["drain: 0 processed", "poll: 1 inserted", "drain: 1 processed"]
    assert len(world.siro.recordings) == 1


def test_the_first_users_sync_wakes_the_work_job_that_had_to_wait_for_it(
    api: FakeCallLog, tmp_path: Path
) -> None:
    world = World(api, tmp_path, role="worker")
    offer_call(api)
    world.poll()  # one call due before the daemon starts
    work_turns = threading.Event()

    def slow_users_sync() -> UsersSyncResult:
        # The work job's turn at start comes while the users are still being fetched.
        assert work_turns.wait(PATIENCE)
        world.events.append("users synced")
        return sync_users(world.siro, world.store, utcnow(), default_region="US")

    daemon = world.daemon(users_sync=slow_users_sync)
    work_job = daemon.work_job

    def observed_work_job() -> None:
        work_job()
        work_turns.set()

    daemon.work_job = observed_work_job  # type: ignore[method-assign]
    thread = world.run(daemon)
    try:
        world.wait_for_event("drain: 1 processed")
    finally:
        world.finish(thread)

    assert world.events == ["users synced", "drain: 1 processed"]
    assert len(world.siro.recordings) == 1
