"""What `run` schedules for each `worker.role`, and how it stands by while another process polls."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

from poller.adapters.memory_store import MemoryStore
from poller.adapters.siro_fake import InMemorySiro
from poller.config import Settings
from poller.core.daemon import Daemon
from poller.core.poll_report import PollReport
from poller.core.polling import LockedPollCycle
from poller.domain.clock import utcnow
from poller.wiring import daemon_params_from_settings
from tests.test_worker import Clock, worker_for


class SwitchableLock:
    """A poll lock that another process holds until the test frees it."""

    def __init__(self) -> None:
        self.free = False
        self.released = False

    def try_acquire(self) -> bool:
        return self.free

    def release(self) -> None:
        self.released = True


def nothing() -> None:
    pass


def daemon_for(tmp_path: Path, role: str, lock: SwitchableLock, polls: list[int]) -> Daemon:
    settings = Settings(
        state_dir=tmp_path / "state",
        provider={"base_url": "http://127.0.0.1:9", "auth": "none"},
        worker={"role": role},
    )
    store = MemoryStore()
    clock = Clock(utcnow())
    worker = worker_for(settings, store, InMemorySiro(clock=clock), clock)

    def poll_cycle() -> PollReport:
        polls.append(1)
        return PollReport(provider="generic", now=clock(), dry_run=False)

    return Daemon(
        daemon_params_from_settings(settings),
        store=store,
        poll_cycles=[LockedPollCycle("generic", poll_cycle, lock)],
        worker=worker,
        stop=threading.Event(),
        extra_jobs=[("source-delete", nothing, 60.0)],
        polling_jobs=[("webhook-subscriptions", nothing, 3600.0)],
    )


@pytest.mark.parametrize(
    ("role", "jobs"),
    [
        ("all", {"poll", "work", "source-delete", "webhook-subscriptions"}),
        # The subscriptions are checked beside the receiver, which runs where polling runs.
        ("poller", {"poll", "webhook-subscriptions"}),
        ("worker", {"work", "source-delete"}),
    ],
)
def test_each_role_runs_its_own_jobs(tmp_path: Path, role: str, jobs: set[str]) -> None:
    daemon = daemon_for(tmp_path, role, SwitchableLock(), [])
    assert {job for job, _body, _every in daemon.jobs()} - {"users"} == jobs
    assert daemon.healthy(utcnow())


def test_a_process_stands_by_while_another_holds_the_poll_lock(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="poller.core.polling")
    lock = SwitchableLock()
    polls: list[int] = []
    daemon = daemon_for(tmp_path, "all", lock, polls)

    daemon.poll_job()
    daemon.poll_job()
    assert polls == []
    assert caplog.text.count("generic: another process polls it") == 1  # once, not each time

    lock.free = True  # the holder died
    daemon.poll_job()
    assert polls == [1]
    assert "generic: this process polls it now" in caplog.text
