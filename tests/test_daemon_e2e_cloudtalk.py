"""`siro-poller run` as a process against the CloudTalk simulator and the Siro fake."""

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
from poller.simulators.audio import wav_bytes
from poller.simulators.cloudtalk_server import (
    KEY_ID,
    KEY_SECRET,
    CloudTalkApi,
    cloudtalk_agent,
    cloudtalk_call,
)
from poller.simulators.kit import serve
from poller.simulators.siro_server import FakeSiro
from tests.daemon_process import daemon_environment
from tests.test_daemon_e2e import STARTED_LINE, stop, wait_for

STARTED = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)


@dataclass
class CloudTalkDaemonWorld:
    api: CloudTalkApi
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
                "PROVIDER__KIND": "cloudtalk",
                "PROVIDER__BASE_URL": self.api.url,
                "PROVIDER__USERNAME": KEY_ID,
                "PROVIDER__PASSWORD": KEY_SECRET,
                # A page of two: the listing walks pages up to responseData.pageCount.
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
def world(state_database_url: str, tmp_path: Path) -> Iterator[CloudTalkDaemonWorld]:
    engine = make_engine(state_database_url)
    migrate.upgrade(engine)
    engine.dispose()
    with serve(CloudTalkApi()) as api, FakeSiro(verify_audio_type=True) as siro:
        yield CloudTalkDaemonWorld(
            api, siro, state_database_url, tmp_path / "state", tmp_path / "daemon.log"
        )


def test_every_cloudtalk_call_reaches_siro_once_with_its_agent_and_contact(
    world: CloudTalkDaemonWorld,
) -> None:
    api = world.api
    agents = [
        cloudtalk_agent(7, "rep1@example.com", "Rep One"),
        cloudtalk_agent(8, "rep2@example.com", "Rep Two"),
    ]
    expected: dict[str, tuple[str, str]] = {}
    for n in range(5):
        agent = agents[n % 2]
        contact = f"1415555{n:04d}"
        call = cloudtalk_call(
            100 + n,
            STARTED + timedelta(minutes=n),
            agent=agent,
            call_type="outgoing" if n % 2 == 0 else "incoming",
            external=int(contact),
        )
        api.add_call(call, wav_bytes(0.5))
        expected[str(100 + n)] = (f"user-{n % 2 + 1}", contact)
    api.add_call(
        cloudtalk_call(200, STARTED + timedelta(minutes=9), agent=agents[0], recorded=False)
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
    for call_id, (siro_user, contact_phone) in expected.items():
        [body] = [b for b in creates if f"[{call_id}]" in b["title"]]
        assert body["userId"] == siro_user
        assert body["contactPhone"].endswith(contact_phone)
    # Each recording fetched once, from its own path; the listing never asked past the last page.
    assert api.count("/api/calls/recording/") == 5
    assert KEY_SECRET not in world.log()
