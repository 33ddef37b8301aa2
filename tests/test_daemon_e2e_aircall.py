"""`siro-poller run` as a process against the Aircall simulator and the Siro fake.

The daemon lists the simulated Aircall account, reads each call again for a fresh signed
recording URL, fetches it from the separate storage host and uploads it to Siro: every call
exactly once, with its rep and contact.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from poller.adapters.sql import migrate
from poller.adapters.sql.database import make_engine
from poller.adapters.sql.store import SqlStore
from poller.domain.states import CallState
from poller.simulators.aircall_server import AircallSimulator, aircall_call, aircall_contact
from poller.simulators.audio import mp3_bytes
from poller.simulators.siro_server import FakeSiro
from tests.daemon_process import daemon_environment
from tests.test_daemon_e2e import STARTED_LINE, stop

API_ID = "aircall-e2e-id"
API_TOKEN = "aircall-e2e-token-0001"


@pytest.fixture
def aircall() -> Iterator[AircallSimulator]:
    with AircallSimulator(API_ID, API_TOKEN) as simulator:
        yield simulator


def daemon_env(
    aircall: AircallSimulator,
    siro: FakeSiro,
    state_database_url: str,
    state_dir: Path,
    start: datetime,
) -> dict[str, str]:
    return daemon_environment(
        state_dir=state_dir,
        database_url=state_database_url,
        siro=siro,
        start_at=start,
        settings={
            "PROVIDER__KIND": "aircall",
            "PROVIDER__BASE_URL": aircall.url,
            "PROVIDER__API_ID": API_ID,
            "PROVIDER__API_TOKEN": API_TOKEN,
            "PROVIDER__DOWNLOAD_HOSTS": f'["{aircall.media_host}"]',
            "WORKER__CONCURRENCY": "2",
            "WORKER__MAX_ATTEMPTS": "10",
        },
    )


def test_every_aircall_call_reaches_siro_once_with_its_rep_and_contact(
    aircall: AircallSimulator, state_database_url: str, tmp_path: Path
) -> None:
    engine = make_engine(state_database_url)
    migrate.upgrade(engine)
    store = SqlStore(engine)
    # Aircall's call.ended comes ~30 s after hang-up; the adapter's settle delay keeps clear of
    # the last minute, so these calls are a few minutes old.
    started = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=20)
    api = aircall.api
    for n in range(4):
        contact = aircall_contact(f"Customer{n}", "Lee", f"+1 555-010-000{n}") if n % 2 else None
        call = aircall_call(
            1000 + n,
            started + timedelta(seconds=40 * n),
            direction="inbound" if n % 2 else "outbound",
            user={"id": 10 + n, "name": f"Rep {n % 3 + 1}", "email": f"rep{n % 3 + 1}@example.com"},
            raw_digits=f"+1 415-555-01{n:02d}",
            contact=contact,
        )
        api.add_call(call, recording=mp3_bytes(1))
    api.add_call(aircall_call(2000, started + timedelta(seconds=5), answered=False))
    # Answered, recording still being processed: it waits, then goes once it is there.
    late = aircall_call(3000, started + timedelta(seconds=10))
    api.add_call(late)

    log_path = tmp_path / "daemon.log"
    with FakeSiro(verify_audio_type=True) as siro, log_path.open("ab") as log:
        env = daemon_env(aircall, siro, state_database_url, tmp_path / "state", started)
        daemon = subprocess.Popen(
            [sys.executable, "-m", "poller", "run"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
        try:
            _wait(lambda: STARTED_LINE in _read(log_path), 30, "the daemon to start", log_path)
            _wait(lambda: _counts(store)["uploaded"] == 4, 60, "4 uploads", log_path)
            assert _counts(store)["skipped"] == 1  # the missed call
            api.add_recording("3000", mp3_bytes(1))
            _wait(lambda: _counts(store)["uploaded"] == 5, 60, "the late recording", log_path)
        finally:
            assert stop(daemon) == 0

        with siro.state.lock:
            titles = Counter(str(r["title"]) for r in siro.state.recordings.values())
        creates = [r.json for r in siro.state.requests_for("create") if r.json]
    for call_id in ("1000", "1001", "1002", "1003", "3000"):
        assert sum(n for t, n in titles.items() if f"[{call_id}]" in t) == 1, call_id
    assert len(titles) == 5
    by_id = {body["title"].rsplit("[", 1)[-1].rstrip("]"): body for body in creates}
    # rep1@example.com is Siro's user-1: the recording goes to that user.
    assert by_id["1000"]["userId"] == "user-1"
    assert by_id["1001"]["userId"] == "user-2"
    assert by_id["1001"]["contactName"] == "Customer1 Lee"
    assert by_id["1001"]["contactPhone"] == "+14155550101"  # sent in E.164
    assert by_id["1002"]["contactPhone"] == "+14155550102"
    [missed] = store.find_calls("2000")
    assert missed.state is CallState.SKIPPED
    # Every download came from the storage host, signed and without the API key.
    assert aircall.media.requests and all(
        "Authorization" not in r["headers"] for r in aircall.media.requests
    )
    text = _read(log_path)
    assert API_TOKEN not in text and "X-Amz-Signature=" not in text
    engine.dispose()


def _counts(store: SqlStore) -> dict[str, int]:
    return store.status(datetime.now(UTC)).counts


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


def _wait(condition: Callable[[], bool], timeout: float, what: str, log_path: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; daemon log:\n{_read(log_path)[-6000:]}")
