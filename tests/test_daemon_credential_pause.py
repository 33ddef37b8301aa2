"""A wrong Siro client secret, fixed while the daemon runs, loses no call and spends no attempt.

`siro-poller run` is a real process against the provider and Siro fakes over HTTP. Siro refuses
the configured client secret: the daemon pauses instead of failing calls, `status` and
`/healthz` say why; once the app in Siro takes the secret, every call is uploaded once, and the
only attempt spent on each is its real upload.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from poller.domain.pauses import SIRO
from poller.domain.states import CallState
from tests.daemon_process import free_port
from tests.test_daemon_e2e import (
    World,
    assert_each_call_once_in_siro,
    offer,
    open_world,
    stop,
    wait_for,
)

WRONG_SECRET = "csecret-typed-wrong-0000"
# The calls claimed before the pause were downloaded (progress that stays); the others wait.
WAITING = {CallState.PENDING, CallState.DOWNLOADED}


@pytest.fixture
def world(state_database_url: str, tmp_path: Path) -> Iterator[World]:
    with open_world(state_database_url, tmp_path) as running:
        yield running


def healthz(port: int) -> tuple[int, dict[str, Any]]:
    try:
        answer = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    except requests.ConnectionError:
        return 0, {}
    return answer.status_code, answer.json()


def held_back(world: World) -> bool:
    """Siro is paused and every call is in the queue, none held by the worker."""
    calls = world.store.list_calls(limit=100)
    return (
        [p.scope for p in world.store.pauses()] == [SIRO]
        and len(calls) == 6
        and all(c.lease_owner is None and c.state in WAITING for c in calls)
        and any(c.state is CallState.DOWNLOADED for c in calls)
    )


def test_a_wrong_secret_fixed_while_the_daemon_runs_loses_no_call_and_spends_no_attempt(
    world: World,
) -> None:
    call_ids = offer(world, 6)
    port = free_port()
    overrides = {
        "SIRO__CLIENT_SECRET": WRONG_SECRET,
        "WORKER__CREDENTIAL_PROBE_SECONDS": "5",
        "METRICS__LISTEN": f"127.0.0.1:{port}",
    }
    daemon = world.start(**overrides)
    try:
        wait_for(lambda: held_back(world), 60, "the Siro credential pause", world)

        calls = world.store.list_calls(limit=100)
        assert {(c.attempts, c.error_kind) for c in calls} == {(0, None)}
        assert world.counts()["failed"] == 0
        (pause,) = world.store.pauses()
        assert "siro.client_secret" in pause.reason and WRONG_SECRET not in pause.reason
        status = subprocess.run(
            [sys.executable, "-m", "poller", "status"],
            env=world.env(**overrides),
            capture_output=True,
            text=True,
            check=False,
        )
        assert status.returncode == 1, status.stdout + status.stderr
        assert status.stdout.startswith("PAUSED (siro) since ")
        code, document = healthz(port)
        assert code == 503
        assert ("credentials", "siro") in [(r["check"], r["subject"]) for r in document["reasons"]]
        assert len(world.siro.state.recordings) == 0

        world.siro.state.set_client_secret(WRONG_SECRET)  # the admin corrects the app in Siro

        wait_for(lambda: world.counts()["uploaded"] == 6, 60, "6 uploads", world)
        wait_for(lambda: healthz(port)[0] == 200, 30, "/healthz to answer 200", world)
    finally:
        assert stop(daemon) == 0
    assert_each_call_once_in_siro(world, call_ids)
    calls = world.store.list_calls(limit=100)
    assert {(c.state, c.attempts) for c in calls} == {(CallState.UPLOADED, 1)}
    assert world.store.pauses() == []
    outcomes = {e.outcome for c in calls for e in world.store.events_for(c.id)}
    assert "paused" in outcomes and not outcomes & {"fail", "retry"}
    log = world.log()
    assert "credential pause (siro)" in log
    assert "Siro accepts the credentials again" in log
    assert WRONG_SECRET not in log and world.siro.state.client_secret not in log


def test_work_exits_with_the_pause_reason_instead_of_failing_the_backlog(world: World) -> None:
    offer(world, 4)
    env = world.env(SIRO__CLIENT_SECRET=WRONG_SECRET)
    poll = subprocess.run(
        [sys.executable, "-m", "poller", "poll"], env=env, capture_output=True, check=False
    )
    assert poll.returncode == 0, poll.stderr

    work = subprocess.run(
        [sys.executable, "-m", "poller", "work", "--until-idle"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )

    assert work.returncode == 2, work.stdout + work.stderr
    assert "0 failed" in work.stdout
    (line,) = [line for line in work.stderr.splitlines() if "work paused" in line]
    assert line.startswith("siro-poller: work paused: credential pause (siro) for ")
    assert "siro.client_secret" in line and WRONG_SECRET not in work.stderr
    calls = world.store.list_calls(limit=100)
    assert {(c.state, c.attempts, c.error_kind) for c in calls} == {(CallState.DOWNLOADED, 0, None)}
    assert (
        json.loads(
            subprocess.run(
                [sys.executable, "-m", "poller", "status", "--json"],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            ).stdout
        )["pauses"][0]["scope"]
        == SIRO
    )
