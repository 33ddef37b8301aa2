"""`siro-poller run` as a process against the Quo simulator and the Siro fake."""

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
from poller.simulators.quo_server import API_KEY, QuoSimulator, quo_call
from poller.simulators.siro_server import FakeSiro
from tests.daemon_process import daemon_environment
from tests.test_daemon_e2e import STARTED_LINE, stop, wait_for

STARTED = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=3)


@dataclass
class QuoDaemonWorld:
    sim: QuoSimulator
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
                "PROVIDER__KIND": "quo",
                "PROVIDER__BASE_URL": self.sim.url,
                "PROVIDER__API_KEY": API_KEY,
                "PROVIDER__DOWNLOAD_HOSTS": json.dumps(self.sim.recording_hosts),
                # A page of two: the listing follows nextCursor to the end.
                "PROVIDER__PAGE_SIZE": "2",
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
def world(state_database_url: str, tmp_path: Path) -> Iterator[QuoDaemonWorld]:
    engine = make_engine(state_database_url)
    migrate.upgrade(engine)
    engine.dispose()
    with QuoSimulator() as sim, FakeSiro(verify_audio_type=True) as siro:
        sim.api.add_user("US1", "rep1@example.com")
        sim.api.add_user("US2", "rep2@example.com")
        yield QuoDaemonWorld(
            sim, siro, state_database_url, tmp_path / "state", tmp_path / "daemon.log"
        )


def test_every_quo_call_reaches_siro_once_with_its_user_and_contact(
    world: QuoDaemonWorld,
) -> None:
    api = world.sim.api
    expected: dict[str, tuple[str, str]] = {}
    for n in range(5):
        user, siro_user = ("US1", "user-1") if n % 2 == 0 else ("US2", "user-2")
        contact = f"+1415555{n:04d}"
        call = quo_call(
            f"AC{n}",
            STARTED + timedelta(minutes=n),
            user_id=user,
            direction="incoming" if n % 2 == 0 else "outgoing",
            contact=contact,
        )
        # The last call was paused and resumed: two segments, the first goes to Siro.
        api.add_call(call, mp3_bytes(1), *([mp3_bytes(2)] if n == 4 else []))
        expected[f"AC{n}"] = (siro_user, contact)
    api.add_call(
        quo_call("ACMISSED", STARTED + timedelta(minutes=9), user_id="US1", status="missed")
    )
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
    for call_id, (siro_user, contact) in expected.items():
        [body] = [b for b in creates if f"[{call_id}]" in b["title"]]
        assert body["userId"] == siro_user
        assert body["contactPhone"].endswith(contact[2:])
    # Each user looked up once, not once per call; each call's recording list asked for and
    # its first segment fetched, without the API key.
    assert api.count("/users/") == 2
    # (A download retried under load asks for a fresh signed URL again: at least once each.)
    assert {r.path for r in api.requests if r.path.startswith("/calls/AC")} == {
        f"/calls/AC{n}/recordings" for n in range(5)
    }
    media = [r for r in api.media.requests if r.path.startswith("/media/")]
    assert {r.path for r in media} == {f"/media/rec-AC{n}-0" for n in range(5)}
    assert all(r.header("authorization") is None for r in media)
    assert API_KEY not in world.log()
