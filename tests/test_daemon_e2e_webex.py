"""`siro-poller run` as a process against the Webex simulator and the Siro fake."""

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
from poller.simulators.siro_server import FakeSiro
from poller.simulators.webex_server import (
    CLIENT_ID,
    CLIENT_SECRET,
    WebexSimulator,
    webex_recording,
)
from tests.daemon_process import daemon_environment
from tests.test_daemon_e2e import STARTED_LINE, stop, wait_for

STARTED = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)


@dataclass
class WebexDaemonWorld:
    sim: WebexSimulator
    siro: FakeSiro
    database_url: str
    state_dir: Path
    log_path: Path
    seed: str

    def env(self) -> dict[str, str]:
        return daemon_environment(
            state_dir=self.state_dir,
            database_url=self.database_url,
            siro=self.siro,
            start_at=STARTED - timedelta(minutes=5),
            settings={
                "PROVIDER__KIND": "webex",
                "PROVIDER__BASE_URL": self.sim.url,
                "PROVIDER__CLIENT_ID": CLIENT_ID,
                "PROVIDER__CLIENT_SECRET": CLIENT_SECRET,
                "PROVIDER__REFRESH_TOKEN": self.seed,
                "PROVIDER__DOWNLOAD_HOSTS": f'["{self.sim.media_host}"]',
                # A page of two: the listing follows Webex's Link header.
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
def world(state_database_url: str, tmp_path: Path) -> Iterator[WebexDaemonWorld]:
    engine = make_engine(state_database_url)
    migrate.upgrade(engine)
    engine.dispose()
    with WebexSimulator() as sim, FakeSiro(verify_audio_type=True) as siro:
        seed = sim.api.seed_refresh_token()
        yield WebexDaemonWorld(
            sim, siro, state_database_url, tmp_path / "state", tmp_path / "daemon.log", seed
        )


def test_every_webex_recording_reaches_siro_once_with_its_rep(world: WebexDaemonWorld) -> None:
    api = world.sim.api
    expected: dict[str, str] = {}
    for n in range(5):
        rep = 1 + n % 2
        recording_id = f"9f1e{n:028x}"
        api.add_recording(
            webex_recording(
                recording_id, STARTED + timedelta(minutes=n), owner_email=f"rep{rep}@example.com"
            ),
            mp3_bytes(1),
        )
        expected[recording_id] = f"user-{rep}"
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
    for recording_id, siro_user in expected.items():
        [body] = [b for b in creates if f"[{recording_id}]" in b["title"]]
        assert body["userId"] == siro_user
    # One refresh, never a replay; each link fetched fresh and used without the token.
    assert (api.issuer.refreshes, api.issuer.replays) == (1, 0)
    assert api.count("/v1/convergedRecordings/") == 5
    media = [r for r in api.media.requests if r.path.startswith("/media/")]
    assert len(media) == 5 and all(r.header("authorization") is None for r in media)
    for secret in (world.seed, CLIENT_SECRET):
        assert secret not in world.log()
