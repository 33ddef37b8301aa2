"""`siro-poller run` as a process against the Outreach simulator and the Siro fake."""

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
from poller.simulators.audio import mp3_bytes, wav_bytes
from poller.simulators.outreach_server import (
    CLIENT_ID,
    CLIENT_SECRET,
    REDIRECT_URI,
    OutreachSimulator,
    outreach_call,
)
from poller.simulators.siro_server import FakeSiro
from tests.daemon_process import daemon_environment
from tests.test_daemon_e2e import STARTED_LINE, stop, wait_for

STARTED = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)


@dataclass
class OutreachDaemonWorld:
    sim: OutreachSimulator
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
                "PROVIDER__KIND": "outreach",
                "PROVIDER__BASE_URL": self.sim.url,
                "PROVIDER__CLIENT_ID": CLIENT_ID,
                "PROVIDER__CLIENT_SECRET": CLIENT_SECRET,
                "PROVIDER__REDIRECT_URI": REDIRECT_URI,
                "PROVIDER__REFRESH_TOKEN": self.seed,
                "PROVIDER__DOWNLOAD_HOSTS": f'["{self.sim.media_host}"]',
                # A page of two: the listing follows Outreach's links.next.
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
def world(state_database_url: str, tmp_path: Path) -> Iterator[OutreachDaemonWorld]:
    engine = make_engine(state_database_url)
    migrate.upgrade(engine)
    engine.dispose()
    with OutreachSimulator() as sim, FakeSiro(verify_audio_type=True) as siro:
        seed = sim.api.seed_refresh_token()
        yield OutreachDaemonWorld(
            sim, siro, state_database_url, tmp_path / "state", tmp_path / "daemon.log", seed
        )


def test_every_outreach_call_reaches_siro_once_with_its_rep_and_contact(
    world: OutreachDaemonWorld,
) -> None:
    api = world.sim.api
    api.add_user(10, "rep1@example.com", "Rep One")
    api.add_user(11, "rep2@example.com", "Rep Two")
    expected: dict[str, tuple[str, str]] = {}
    for n in range(5):
        user_id, direction = (10, "outbound") if n % 2 == 0 else (11, "inbound")
        contact, rep_line = f"+1415555{n:04d}", "+17705559999"
        from_, to = (rep_line, contact) if direction == "outbound" else (contact, rep_line)
        record = outreach_call(
            100 + n,
            STARTED + timedelta(minutes=n),
            user_id=user_id,
            direction=direction,
            from_=from_,
            to=to,
        )
        api.add_call(record, mp3_bytes(1) if n % 2 == 0 else wav_bytes(0.5))
        expected[str(100 + n)] = (f"user-{user_id - 9}", contact)
    api.add_call(outreach_call(200, STARTED + timedelta(minutes=9), outcome="Not Answered"))
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
        assert body["contactPhone"].endswith(contact_phone.removeprefix("+1"))
    # Two users, each looked up once; one refresh, never a replay; no token on the media host.
    assert api.count("/api/v2/users/") == 2
    assert (api.issuer.refreshes, api.issuer.replays) == (1, 0)
    media = [r for r in api.media.requests if r.path.startswith("/media/")]
    assert len(media) == 5 and all(r.header("authorization") is None for r in media)
    for secret in (world.seed, CLIENT_SECRET):
        assert secret not in world.log()
