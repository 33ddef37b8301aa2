"""`siro-poller run` as a real process against the RingCentral simulator and the Siro fake."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from poller.adapters.sql import migrate
from poller.adapters.sql.database import make_engine
from poller.adapters.sql.store import SqlStore
from poller.domain.filters import SkipReason
from poller.domain.states import CallState
from poller.simulators.audio import mp3_bytes, wav_bytes
from poller.simulators.ringcentral_server import RingCentralState, call_record, recording_of, serve
from poller.simulators.siro_server import FakeSiro
from tests.daemon_process import daemon_environment
from tests.test_daemon_e2e import STARTED_LINE, stop

STARTED = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
UNLIMITED = {group: (10_000, 60, 60) for group in ("Heavy", "Medium", "Light", "Auth")}


class Run:
    def __init__(self, api: RingCentralState, siro: FakeSiro, url: str, tmp: Path) -> None:
        self.api = api
        self.siro = siro
        self.database_url = url
        self.state_dir = tmp / "state"
        self.log_path = tmp / "daemon.log"
        self.engine = make_engine(url)
        migrate.upgrade(self.engine)

    def log(self) -> str:
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def env(self) -> dict[str, str]:
        return daemon_environment(
            state_dir=self.state_dir,
            database_url=self.database_url,
            siro=self.siro,
            start_at=STARTED - timedelta(minutes=5),
            settings={
                "PROVIDER__KIND": "ringcentral",
                "PROVIDER__BASE_URL": self.api.base_url,
                "PROVIDER__MEDIA_BASE_URL": self.api.media_url,
                "PROVIDER__CLIENT_ID": self.api.client_id,
                "PROVIDER__CLIENT_SECRET": self.api.client_secret,
                "PROVIDER__JWT": self.api.jwt,
                "PROVIDER__SETTLE_DELAY_SECONDS": "0",
                "WORKER__CONCURRENCY": "2",
                "WORKER__SHUTDOWN_GRACE_SECONDS": "5",
            },
        )

    def start(self) -> subprocess.Popen[bytes]:
        log = self.log_path.open("ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "poller", "run"],
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.state_dir.parent,
        )
        self.wait(lambda: STARTED_LINE in self.log() or process.poll() is not None, "the start")
        return process

    def wait(self, condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}; daemon log:\n{self.log()[-6000:]}")

    def counts(self) -> dict[str, int]:
        return SqlStore(self.engine).status(datetime.now(UTC)).counts


@pytest.fixture
def run(state_database_url: str, tmp_path: Path) -> Iterator[Run]:
    url = state_database_url
    with (
        serve(RingCentralState(groups=dict(UNLIMITED))) as api,
        FakeSiro(verify_audio_type=True) as siro,
    ):
        running = Run(api, siro, url, tmp_path)
        yield running
        running.engine.dispose()


def test_every_recording_reaches_siro_once_with_its_rep_and_contact(run: Run) -> None:
    api = run.api
    reps = [(400643091000 + n, f"10{n}", f"+1650555010{n}") for n in range(1, 4)]
    for extension_id, number, _ in reps:
        api.add_extension(extension_id, number, f"Rep {number}", f"rep{number[-1]}@example.com")
    expected: dict[str, tuple[str, str, str]] = {}
    for n in range(4):
        recording_id = f"rc-rec-{n}"
        at = STARTED + timedelta(minutes=n)
        audio = mp3_bytes(1) if n % 2 == 0 else wav_bytes(0.5)
        api.add_media(recording_id, audio, "audio/mpeg" if n % 2 == 0 else "audio/x-wav")
        contact = (f"+1415555{n:04d}", f"Customer {n}")
        api.add_record(
            call_record(
                f"Ia{n}",
                at,
                session=f"s-{n}",
                direction="Inbound" if n % 2 else "Outbound",
                rep=reps[n % 3],
                contact=contact,
                recording=recording_of(api, recording_id),
            )
        )
        expected[recording_id] = (f"user-{n % 3 + 1}", *contact)
    # The recording of session 0 listed again on a second record (a transfer): still one call.
    api.add_record(
        call_record(
            "Ia0-transfer",
            STARTED + timedelta(minutes=0, seconds=50),
            session="s-0",
            rep=reps[1],
            recording=recording_of(api, "rc-rec-0"),
        )
    )
    api.add_record(
        call_record(
            "IaShort", STARTED + timedelta(minutes=9), session="s-short", short_recording=True
        )
    )

    daemon = run.start()
    try:
        run.wait(
            lambda: run.counts()["uploaded"] == 4 and run.counts()["skipped"] == 1,
            "4 uploads and 1 skip",
        )
    finally:
        assert stop(daemon) == 0

    creates = [r.json for r in run.siro.state.requests_for("create") if r.json]
    for recording_id, (user_id, contact_phone, contact_name) in expected.items():
        [body] = [body for body in creates if f"[{recording_id}]" in body["title"]]
        assert body["userId"] == user_id
        assert (body["contactPhone"], body["contactName"]) == (contact_phone, contact_name)
    assert len(run.siro.state.recordings) == 4
    store = SqlStore(run.engine)
    [short] = store.list_calls(state=CallState.SKIPPED)
    assert short.error_kind == SkipReason.SHORT_RECORDING.value
    # One token served every listing, extension list and download.
    assert len(api.tokens_issued) == 1
    assert {r.host for r in api.requests if r.path.endswith("/content")} == {"media"}
    for secret in [*api.secrets(), *run.siro.state.secrets()]:
        assert secret not in run.log()
