"""`siro-poller run` as a process against the Vonage simulator and the Siro fake."""

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
from poller.simulators.siro_server import FakeSiro
from poller.simulators.vonage_server import (
    CLIENT_ID,
    CLIENT_SECRET,
    PASSWORD,
    USERNAME,
    VonageSimulator,
    company_recording,
)
from tests.daemon_process import daemon_environment
from tests.test_daemon_e2e import STARTED_LINE, stop, wait_for

STARTED = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
# Vonage names a recording's rep by extension: 101 is a user's (found by email through the
# Provisioning API), 102 has no user and is mapped in siro.rep_map.
EXTENSIONS = {"101": "user-1", "102": "user-2"}


@dataclass
class VonageDaemonWorld:
    sim: VonageSimulator
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
                "PROVIDER__KIND": "vonage",
                "PROVIDER__BASE_URL": self.sim.url,
                "PROVIDER__USERNAME": USERNAME,
                "PROVIDER__PASSWORD": PASSWORD,
                "PROVIDER__CLIENT_ID": CLIENT_ID,
                "PROVIDER__CLIENT_SECRET": CLIENT_SECRET,
                # A page of two: the listing walks the pages to total_pages.
                "PROVIDER__PAGE_SIZE": "2",
                "SIRO__REP_MAP__EXTENSION": json.dumps({"102": "user-2"}),
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
def world(state_database_url: str, tmp_path: Path) -> Iterator[VonageDaemonWorld]:
    engine = make_engine(state_database_url)
    migrate.upgrade(engine)
    engine.dispose()
    with VonageSimulator() as sim, FakeSiro(verify_audio_type=True) as siro:
        yield VonageDaemonWorld(
            sim, siro, state_database_url, tmp_path / "state", tmp_path / "daemon.log"
        )


def test_every_vonage_recording_reaches_siro_once_with_its_rep_and_contact(
    world: VonageDaemonWorld,
) -> None:
    api = world.sim.api
    api.add_extension("101", "rep1@example.com", "Rep One")
    api.add_extension("102", None, "Front desk")
    expected: dict[str, tuple[str, str]] = {}
    for n in range(5):
        extension = "101" if n % 2 == 0 else "102"
        contact = f"1415555{n:04d}"
        if n % 2 == 0:
            item = company_recording(
                100 + n, STARTED + timedelta(minutes=n), extension=extension, dnis=contact
            )
        else:
            item = company_recording(
                100 + n,
                STARTED + timedelta(minutes=n),
                direction="INBOUND",
                extension=extension,
                caller_id=contact,
            )
        api.add(item, mp3_bytes(1))
        expected[str(100 + n)] = (EXTENSIONS[extension], contact)
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
            lambda: world.counts()["uploaded"] == 5,
            60,
            "5 uploads",
            world,  # type: ignore[arg-type]
        )
    finally:
        assert stop(process) == 0

    with world.siro.state.lock:
        recordings = list(world.siro.state.recordings.values())
    assert len(recordings) == 5
    creates = [r.json for r in world.siro.state.requests_for("create") if r.json]
    for recording_id, (siro_user, contact_phone) in expected.items():
        [body] = [b for b in creates if f"[{recording_id}]" in b["title"]]
        assert body["userId"] == siro_user
        assert body["contactPhone"].endswith(contact_phone)
    # One password grant for the run (a token lives a day); the password never in the log.
    assert sum(1 for r in api.issuer.requests if r["form"].get("grant_type") == "password") == 1
    assert PASSWORD not in world.log() and CLIENT_SECRET not in world.log()
