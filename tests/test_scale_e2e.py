"""Several `siro-poller run` processes on one PostgreSQL database, as on several VMs.

Real processes, real PostgreSQL, the provider and Siro as local HTTP servers: one process
polls while the others stand by, a SIGKILLed poller is replaced, workers killed at random
lose and duplicate nothing, and a step longer than its lease keeps its row.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from poller.simulators.chaos import Chaos
from poller.simulators.siro_server import Fault
from tests.test_daemon_e2e import (
    World,
    assert_each_call_once_in_siro,
    offer,
    open_world,
    start_together,
    stop,
    stop_together,
    wait_for,
)

POLLS = "generic: this process polls it now"
STANDS_BY = "generic: another process polls it; this one stands by"


@pytest.fixture
def world(tmp_path: Path, fresh_postgres_url: str) -> Iterator[World]:
    with open_world(fresh_postgres_url, tmp_path) as running:
        yield running


def another(world: World, name: str) -> World:
    """The same world for another process: its own state directory (spool) and log."""
    folder = world.state_dir.parent / name
    folder.mkdir(exist_ok=True)
    return dataclasses.replace(world, state_dir=folder / "state", log_path=folder / "daemon.log")


def test_one_process_polls_and_another_takes_over_after_a_sigkill(world: World) -> None:
    first_ids = offer(world, 10)
    first = world.start()
    wait_for(lambda: POLLS in world.log(), 30, "the first process to poll", world)
    standby = another(world, "standby")
    second = standby.start()
    try:
        wait_for(lambda: STANDS_BY in standby.log(), 30, "the second one to stand by", standby)
        wait_for(lambda: world.counts()["uploaded"] == 10, 60, "10 uploads", world)
        listings_before = len(world.api.list_requests())
        assert POLLS not in standby.log()

        first.kill()  # SIGKILL: no clean-up, the database ends the session and frees the lock
        first.wait(timeout=10)
        # Calls of half an hour ago: inside the lookback of the window the next poller lists.
        later_ids = offer(world, 10, minute_offset=300)
        wait_for(lambda: POLLS in standby.log(), 30, "the standby to take over", standby)
        wait_for(lambda: world.counts()["uploaded"] == 20, 60, "20 uploads", standby)
    finally:
        if first.poll() is None:
            first.kill()
        assert stop(second) == 0
    assert len(world.api.list_requests()) > listings_before
    assert_each_call_once_in_siro(world, first_ids + later_ids)


def test_workers_killed_at_random_upload_every_call_exactly_once(world: World) -> None:
    call_ids = offer(world, 100)
    world.siro.state.chaos = Chaos(server_error=0.08, rate_limited=0.04, drop=0.04, seed=21)
    world.api.chaos = Chaos(server_error=0.05, drop=0.03, seed=22)
    # Uploads slow enough that the kills land while there is still work in flight: with six
    # storage slots (PUTs at once), 90 uploads take at least 9 s, and each kill comes a second
    # or two after the last restart.
    world.siro.state.fail_next("put", *[Fault.slow(0.6)] * 100)
    fast_lease = {"WORKER__LEASE_SECONDS": "5", "WORKER__CONCURRENCY": "2"}
    worker_role = {"WORKER__ROLE": "worker", **fast_lease}
    workers = [another(world, f"worker-{n}") for n in range(3)]
    poller, *running = start_together(
        (world, {"WORKER__ROLE": "poller"}), *[(w, worker_role) for w in workers]
    )
    rng = random.Random(4)
    kills = 0
    try:
        # Each restart waits for the new worker's start line, which on a busy host takes
        # seconds while the others upload: leave room for the kills until nearly the end.
        while kills < 4 and world.counts()["uploaded"] < 90:
            time.sleep(rng.uniform(0.2, 1.0))
            victim = rng.randrange(3)
            running[victim].kill()
            running[victim].wait(timeout=10)
            kills += 1
            running[victim] = workers[victim].start(**worker_role)
        wait_for(lambda: world.counts()["uploaded"] == 100, 180, "100 uploads", world)
    finally:
        alive = [process for process in [poller, *running] if process.poll() is None]
        assert stop_together(alive) == [0] * len(alive)
    assert kills >= 3
    assert world.counts()["failed"] == 0
    assert_each_call_once_in_siro(world, call_ids)
    assert len(world.siro.state.recordings) == 100
    assert sum(world.siro.state.chaos.injected.values()) > 10


def test_a_step_longer_than_its_lease_keeps_its_row(world: World) -> None:
    (call_id,) = offer(world, 1)
    # The PUT takes 12 s, more than two leases of 5 s: only the heartbeat keeps the row.
    world.siro.state.fail_next("put", Fault.slow(12))
    slow_settings = {"WORKER__LEASE_SECONDS": "5", "SIRO__READ_TIMEOUT_SECONDS": "30"}
    first = world.start(**slow_settings)
    wait_for(
        lambda: bool(world.siro.state.requests_for("put")), 60, "the slow upload to start", world
    )
    second_world = another(world, "second")
    # At DEBUG, so that an upload by this process would show in its log.
    second = second_world.start(WORKER__ROLE="worker", LOGGING__LEVEL="DEBUG", **slow_settings)
    try:
        wait_for(lambda: world.counts()["uploaded"] == 1, 60, "the upload", world)
    finally:
        assert stop_together([first, second]) == [0, 0]

    (row,) = world.store.find_calls(call_id)
    outcomes = [(e.step, e.outcome) for e in world.store.events_for(row.id)]
    assert ("lease", "rescued") not in outcomes
    assert outcomes.count(("upload", "create_sent")) == 1
    assert len(world.siro.state.recordings) == 1
    assert "uploaded as Siro recording" not in second_world.log()
