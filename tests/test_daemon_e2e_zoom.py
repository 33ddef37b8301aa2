"""`siro-poller run` as a process against the Zoom Phone simulator and the Siro fake."""

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
from poller.simulators.siro_server import FakeSiro
from poller.simulators.zoom_server import (
    ACCOUNT_ID,
    CLIENT_ID,
    CLIENT_SECRET,
    ZoomPhone,
    recording_item,
    serve_zoom,
)
from tests.daemon_process import daemon_environment
from tests.test_daemon_e2e import STARTED_LINE, stop, wait_for

STARTED = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
REPS = {"zoom-user-1": "rep1@example.com", "zoom-user-2": "rep2@example.com"}


@dataclass
class ZoomDaemonWorld:
    phone: ZoomPhone
    api_url: str
    web_url: str
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
                "PROVIDER__KIND": "zoom",
                "PROVIDER__BASE_URL": f"{self.api_url}/v2",
                "PROVIDER__TOKEN_URL": f"{self.web_url}/oauth/token",
                "PROVIDER__ACCOUNT_ID": ACCOUNT_ID,
                "PROVIDER__CLIENT_ID": CLIENT_ID,
                "PROVIDER__CLIENT_SECRET": CLIENT_SECRET,
                "PROVIDER__SETTLE_DELAY_SECONDS": "0",
                "WORKER__CONCURRENCY": "2",
            },
        )

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def uploaded(self) -> int:
        engine = make_engine(self.database_url)
        try:
            return SqlStore(engine).status(datetime.now(UTC)).counts["uploaded"]
        finally:
            engine.dispose()


@pytest.fixture
def zoom_world(state_database_url: str, tmp_path: Path) -> Iterator[ZoomDaemonWorld]:
    url = state_database_url
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    phone = ZoomPhone()
    with serve_zoom(phone) as (api, web), FakeSiro(verify_audio_type=True) as siro:
        yield ZoomDaemonWorld(
            phone=phone,
            api_url=api.url,
            web_url=web.url,
            siro=siro,
            database_url=url,
            state_dir=tmp_path / "state",
            log_path=tmp_path / "daemon.log",
        )


def test_every_zoom_recording_reaches_siro_once_with_its_rep_and_contact(
    zoom_world: ZoomDaemonWorld,
) -> None:
    phone = zoom_world.phone
    phone.add_user("zoom-user-1", REPS["zoom-user-1"], name="Rep One", ext=1001)
    phone.add_user("zoom-user-2", REPS["zoom-user-2"], name="Rep Two", ext=1002)
    expected: dict[str, tuple[str, str, str]] = {}
    for n in range(5):
        recording_id = f"zr-{n:03d}"
        owner = "zoom-user-1" if n % 2 == 0 else "zoom-user-2"
        direction = "outbound" if n % 2 == 0 else "inbound"
        audio = mp3_bytes(1) if n % 2 == 0 else wav_bytes(0.5)
        url = phone.add_file(f"file-{n}", audio)
        phone.add_recording(
            recording_item(
                recording_id,
                STARTED + timedelta(minutes=n),
                call_id=f"70000{n}",
                direction=direction,
                owner_id=owner,
                download_url=url,
                contact_name=f"Customer {n}",
                contact_number=f"+1415555{n:04d}",
            )
        )
        expected[recording_id] = (f"user-{owner[-1]}", f"Customer {n}", f"+1415555{n:04d}")
    log = zoom_world.log_path.open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "poller", "run"],
        env=zoom_world.env(),
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=zoom_world.state_dir.parent,
    )
    try:
        wait_for(
            lambda: STARTED_LINE in zoom_world.log() or process.poll() is not None,
            30,
            "the daemon to start",
            zoom_world,  # type: ignore[arg-type]
        )
        wait_for(
            lambda: zoom_world.uploaded() == 5,
            60,
            "5 uploads",
            zoom_world,  # type: ignore[arg-type]
        )
    finally:
        assert stop(process) == 0

    with zoom_world.siro.state.lock:
        recordings = list(zoom_world.siro.state.recordings.values())
    assert len(recordings) == 5
    creates = [r.json for r in zoom_world.siro.state.requests_for("create") if r.json]
    for recording_id, (user_id, contact_name, contact_phone) in expected.items():
        [body] = [b for b in creates if f"[{recording_id}]" in b["title"]]
        assert body["userId"] == user_id
        assert body["contactName"] == contact_name
        assert body["contactPhone"] == contact_phone
    # Downloads went to the file host with the bearer token, never in the query string.
    downloads = phone.requests_to("/v2/phone/recording/download/")
    assert downloads and all(r["role"] == "web" for r in downloads)
    assert all(r["headers"]["Authorization"].startswith("Bearer zat-") for r in downloads)
    assert all("access_token" not in r["params"] for r in downloads)
    for secret in phone.secrets():
        assert secret not in zoom_world.log()
