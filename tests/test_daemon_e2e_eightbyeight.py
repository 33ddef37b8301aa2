"""`siro-poller run` as a process against the 8x8 simulator and the Siro fake."""

from __future__ import annotations

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
from poller.simulators.eightbyeight_server import (
    CLIENT_ID,
    CLIENT_SECRET,
    EightByEightSimulator,
    call_recording,
)
from poller.simulators.siro_server import FakeSiro
from tests.daemon_process import daemon_environment
from tests.test_daemon_e2e import STARTED_LINE, stop, wait_for

STARTED = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)


@dataclass
class EightByEightDaemonWorld:
    sim: EightByEightSimulator
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
                "PROVIDER__KIND": "8x8",
                "PROVIDER__BASE_URL": self.sim.url,
                "PROVIDER__CLIENT_ID": CLIENT_ID,
                "PROVIDER__CLIENT_SECRET": CLIENT_SECRET,
                # A page of two: the listing walks pageKey until lastPage.
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
def world(state_database_url: str, tmp_path: Path) -> Iterator[EightByEightDaemonWorld]:
    engine = make_engine(state_database_url)
    migrate.upgrade(engine)
    engine.dispose()
    with EightByEightSimulator() as sim, FakeSiro(verify_audio_type=True) as siro:
        yield EightByEightDaemonWorld(
            sim, siro, state_database_url, tmp_path / "state", tmp_path / "daemon.log"
        )


def test_every_8x8_recording_reaches_siro_once_with_its_rep_and_contact(
    world: EightByEightDaemonWorld,
) -> None:
    api = world.sim.api
    expected: dict[str, tuple[str, str]] = {}
    for n in range(5):
        rep = 1 if n % 2 == 0 else 2
        direction = "OUTBOUND" if n % 2 == 0 else "INBOUND"
        contact = f"+1415555{n:04d}"
        object_id = f"8x8-obj-{n}"
        item = call_recording(
            object_id,
            STARTED + timedelta(minutes=n),
            user_email=f"rep{rep}@example.com",
            user_name=f"Rep {rep}",
            direction=direction,
            address=contact,
        )
        api.add(item, mp3_bytes(1))
        expected[object_id] = (f"user-{rep}", contact)
    # A call of ten minutes ago whose recording is still being stored when first listed, and
    # is stored while the daemon runs: the lookback lists it again.
    recent = datetime.now(UTC) - timedelta(minutes=10)
    api.add(call_recording("8x8-late", recent, state="PENDING"))
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
            lambda: world.counts()["uploaded"] == 5 and world.counts()["pending"] == 1,
            60,
            "5 uploads and 1 call waiting for its recording",
            world,  # type: ignore[arg-type]
        )
        api.make_available("8x8-late", mp3_bytes(1))
        wait_for(
            lambda: world.counts()["uploaded"] == 6,
            60,
            "the late recording's upload",
            world,  # type: ignore[arg-type]
        )
    finally:
        assert stop(process) == 0

    with world.siro.state.lock:
        recordings = list(world.siro.state.recordings.values())
    assert len(recordings) == 6
    creates = [r.json for r in world.siro.state.requests_for("create") if r.json]
    for object_id, (siro_user, contact_phone) in expected.items():
        [body] = [b for b in creates if f"[{object_id}]" in b["title"]]
        assert body["userId"] == siro_user
        assert body["contactPhone"].endswith(contact_phone.lstrip("+"))
    # One token for the whole run (8x8's lasts 1799 s), never the secret in the log.
    assert api.tokens.minted == 1
    assert CLIENT_SECRET not in world.log()
