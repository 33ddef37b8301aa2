"""`siro-poller run` as a process against the CallRail simulator and the Siro fake."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from poller.adapters.sql import migrate
from poller.adapters.sql.database import make_engine
from poller.adapters.sql.store import SqlStore
from poller.simulators.audio import mp3_bytes
from poller.simulators.callrail_server import (
    ACCOUNT_ID,
    API_KEY,
    CallRailSimulator,
    callrail_call,
)
from poller.simulators.siro_server import FakeSiro
from tests.daemon_process import daemon_environment
from tests.test_daemon_e2e import STARTED_LINE, stop, wait_for

STARTED = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=3)


@dataclass
class CallRailDaemonWorld:
    sim: CallRailSimulator
    siro: FakeSiro
    database_url: str
    state_dir: Path
    log_path: Path

    def env(self) -> dict[str, str]:
        return daemon_environment(
            state_dir=self.state_dir,
            database_url=self.database_url,
            siro=self.siro,
            start_at=STARTED - timedelta(minutes=5),
            settings={
                "PROVIDER__KIND": "callrail",
                "PROVIDER__BASE_URL": self.sim.url,
                "PROVIDER__ACCOUNT_ID": ACCOUNT_ID,
                "PROVIDER__API_KEY": API_KEY,
                "PROVIDER__DOWNLOAD_HOSTS": json.dumps(self.sim.recording_hosts),
                # A page of two: the listing walks pages up to total_pages.
                "PROVIDER__PAGE_SIZE": "2",
                "PROVIDER__REQUESTS_PER_MINUTE": "16",
                "WORKER__CONCURRENCY": "2",
            },
        )

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def counts(self) -> dict[str, int]:
        engine = make_engine(self.database_url)
        try:
            return SqlStore(engine).status(datetime.now(UTC)).counts
        finally:
            engine.dispose()


@pytest.fixture
def world(state_database_url: str, tmp_path: Path) -> Iterator[CallRailDaemonWorld]:
    engine = make_engine(state_database_url)
    migrate.upgrade(engine)
    engine.dispose()
    with CallRailSimulator() as sim, FakeSiro(verify_audio_type=True) as siro:
        yield CallRailDaemonWorld(
            sim, siro, state_database_url, tmp_path / "state", tmp_path / "daemon.log"
        )


def test_every_callrail_call_reaches_siro_once_with_its_agent_and_customer(
    world: CallRailDaemonWorld,
) -> None:
    api = world.sim.api
    expected: dict[str, tuple[str, str]] = {}
    for n in range(5):
        email, siro_user = (
            ("rep1@example.com", "user-1")
            if n % 2 == 0
            else (
                "rep2@example.com",
                "user-2",
            )
        )
        customer = f"+1415555{n:04d}"
        call = callrail_call(
            f"CAL{n}",
            STARTED + timedelta(minutes=n),
            agent_email=email,
            direction="inbound" if n % 2 == 0 else "outbound",
            customer=customer,
        )
        api.add_call(call, mp3_bytes(1))
        expected[f"CAL{n}"] = (siro_user, customer)
    api.add_call(callrail_call("CALMISSED", STARTED + timedelta(minutes=9), answered=False))
    log = world.log_path.open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "poller", "run"],
        env=world.env(),
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=world.state_dir.parent,
    )
    try:
        wait_for(
            lambda: STARTED_LINE in world.log() or process.poll() is not None,
            30,
            "the daemon to start",
            world,  # type: ignore[arg-type]
        )
        wait_for(
            lambda: world.counts()["uploaded"] == 5 and world.counts()["skipped"] == 1,
            60,
            "5 uploads and 1 skip",
            world,  # type: ignore[arg-type]
        )
    finally:
        assert stop(process) == 0

    with world.siro.state.lock:
        recordings = list(world.siro.state.recordings.values())
    assert len(recordings) == 5
    creates = [r.json for r in world.siro.state.requests_for("create") if r.json]
    for call_id, (siro_user, customer) in expected.items():
        [body] = [b for b in creates if f"[{call_id}]" in b["title"]]
        assert body["userId"] == siro_user
        assert body["contactPhone"].endswith(customer[2:])
    # Each recording asked for once and followed to the audio without the API key.
    assert api.count(f"/v3/a/{ACCOUNT_ID}/calls/") == 5
    followed = api.app.requests + [r for r in api.media.requests if r.path.startswith("/media/")]
    assert len(followed) == 10 and all(r.header("authorization") is None for r in followed)
    assert API_KEY not in world.log()
