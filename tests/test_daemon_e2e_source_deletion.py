"""`siro-poller run` deleting recordings at the source, on SQLite and PostgreSQL.

One daemon run per backend, two Aircall accounts: ``deleting`` opted in (a grace of two
seconds), ``keeping`` left at the default. Deletion starts paused, so the test can set every
case up while the daemon uploads; then it is resumed. Every uploaded and verified recording of
``deleting`` is deleted exactly once (the simulator counts the DELETEs), after its grace; none
is deleted for a call that failed, was skipped, was created without an id, was replayed, or
whose Siro read-back disagrees (deleted, processing error); ``keeping`` sees no DELETE at all.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from poller.adapters.sql import migrate
from poller.adapters.sql.database import make_engine
from poller.adapters.sql.models import source_deletions_table
from poller.adapters.sql.source_deletions import SqlSourceDeletions
from poller.adapters.sql.store import SqlStore
from poller.domain.records import Call
from poller.domain.states import CallState
from poller.simulators.aircall_server import AircallSimulator, aircall_call
from poller.simulators.audio import mp3_bytes
from poller.simulators.siro_server import FakeSiro
from tests.daemon_process import daemon_environment
from tests.test_daemon_e2e import STARTED_LINE, stop

GRACE_SECONDS = 2.0
TOKEN = "aircall-delete-token-0001"


@pytest.fixture
def accounts() -> Iterator[dict[str, AircallSimulator]]:
    with ExitStack() as stack:
        yield {
            name: stack.enter_context(AircallSimulator(f"{name}-id", TOKEN, limit=6000))
            for name in ("deleting", "keeping")
        }


def _config(accounts: dict[str, AircallSimulator], path: Path) -> Path:
    tables = []
    for name, simulator in accounts.items():
        deletion = (
            f"delete_at_source = true\ndelete_grace_days = {GRACE_SECONDS / 86400!r}\n"
            if name == "deleting"
            else ""
        )
        tables.append(
            f'[[providers]]\nkind = "aircall"\nname = "{name}"\nbase_url = "{simulator.url}"\n'
            f'api_id = "{name}-id"\napi_token = "{TOKEN}"\nrequests_per_minute = 6000\n'
            "max_retries = 2\nconnect_timeout_seconds = 2\nread_timeout_seconds = 5\n"
            f'download_hosts = ["{simulator.media_host}"]\n{deletion}'
        )
    path.write_text(
        "\n".join(tables) + "\n[source_deletion]\ninterval_seconds = 1\nretry_base_seconds = 0.5\n",
        encoding="utf-8",
    )
    return path


def test_deletes_every_verified_recording_once_and_nothing_else(
    accounts: dict[str, AircallSimulator], state_database_url: str, tmp_path: Path
) -> None:
    engine = make_engine(state_database_url)
    migrate.upgrade(engine)
    store = SqlStore(engine)
    deletions = SqlSourceDeletions(engine)
    deletions.pause_deletion(datetime.now(UTC), "test", "set the cases up first")
    started = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=20)
    deleting, keeping = accounts["deleting"].api, accounts["keeping"].api
    # 1000, 1001: plain; 1002: nobody answered (skipped); 1003: not audio (failed); 1004: Siro
    # names no id (adopted by title); 1005: replayed; 1006, 1007: Siro disagrees later.
    for n in range(8):
        call = aircall_call(1000 + n, started + timedelta(seconds=30 * n), answered=n != 2)
        body = b"<html>this is no recording</html>" if n == 3 else mp3_bytes(1)
        deleting.add_call(call, recording=None if n == 2 else body)
    for n in range(2):
        keeping.add_call(
            aircall_call(2000 + n, started + timedelta(seconds=30 * n)), recording=mp3_bytes(1)
        )

    log_path = tmp_path / "daemon.log"
    with (
        FakeSiro(
            verify_audio_type=True,
            processing_time=timedelta(0),
            create_without_id_titles=("[1004]",),
        ) as siro,
        log_path.open("ab") as log,
    ):
        env = daemon_environment(
            state_dir=tmp_path / "state",
            database_url=state_database_url,
            siro=siro,
            start_at=started,
            settings={"WORKER__CONCURRENCY": "2", "WORKER__MAX_ATTEMPTS": "10"},
        )
        # [[providers]] in the file: the single [provider] defaults of the environment go.
        env = {k: v for k, v in env.items() if not k.startswith("SIRO_POLLER_PROVIDER__")}
        env["SIRO_POLLER_CONFIG"] = str(_config(accounts, tmp_path / "config.toml"))
        daemon = subprocess.Popen(
            [sys.executable, "-m", "poller", "run"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
        try:
            _wait(lambda: STARTED_LINE in _read(log_path), 30, "the daemon to start", log_path)
            _wait(lambda: _settled(store), 60, "every call to settle", log_path)
            first_1005 = _call(store, "1005").siro_recording_id
            store.replay(_call(store, "1005").id, datetime.now(UTC), actor="test")
            _wait(
                lambda: (
                    _call(store, "1005").state is CallState.UPLOADED
                    and _call(store, "1005").siro_recording_id != first_1005
                ),
                60,
                "the replayed call's second upload",
                log_path,
            )
            for reference, disagreement in (
                ("1006", {"deleted": True}),
                ("1007", {"processing_status": "error"}),
            ):
                recording_id = _call(store, reference).siro_recording_id
                assert recording_id is not None
                siro.state.disagree(recording_id, **disagreement)  # type: ignore[arg-type]
            assert deleting.deletes == []  # paused so far
            deletions.resume_deletion()
            _wait(
                lambda: (
                    _deletion_states(engine, store)
                    == {
                        "1000": "deleted",
                        "1001": "deleted",
                        "1004": "refused",
                        "1005": "refused",
                        "1006": "refused",
                        "1007": "refused",
                    }
                ),
                60,
                "the deletions",
                log_path,
            )
            time.sleep(2.5)  # a few more deletion turns: none of them may delete again
        finally:
            assert stop(daemon) == 0

    # Exactly once each, and only the verified ones.
    assert sorted(deleting.deletes) == [("1000", 204), ("1001", 204)]
    assert keeping.deletes == []
    assert not [r for r in keeping.requests if r.get("method") == "DELETE"]
    for reference in ("1000", "1001"):
        call = _call(store, reference)
        assert call.uploaded_at is not None
        [event] = [e for e in store.events_for(call.id) if e.step == "source_delete"]
        assert event.outcome == "deleted" and event.http_status == 204
        assert event.at >= call.uploaded_at + timedelta(seconds=GRACE_SECONDS)
    reasons = {
        reference: " ".join(
            e.message or ""
            for e in store.events_for(_call(store, reference).id)
            if e.step == "source_delete"
        )
        for reference in ("1004", "1005", "1006", "1007")
    }
    assert "adopted by its title" in reasons["1004"]
    assert "replayed" in reasons["1005"]
    assert "deleted" in reasons["1006"]
    assert "error" in reasons["1007"]
    assert _call(store, "1002").state is CallState.SKIPPED
    assert _call(store, "1003").state is CallState.FAILED

    # The dry run, afterwards: nothing more would go, and each uploaded call says why.
    dry = subprocess.run(
        [sys.executable, "-m", "poller", "source", "purge", "--dry-run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert dry.returncode == 0, dry.stderr
    lines = dry.stdout.splitlines()
    assert lines[0] == "0 recording(s) would be deleted now; 8 kept"
    assert sum("deleting 1000): deleted:" in line for line in lines) == 1
    assert sum("keeping 2000): provider_off:" in line for line in lines) == 1
    assert sum("deleting 1005): refused:" in line for line in lines) == 1
    assert not any("1002" in line or "1003" in line for line in lines)
    assert TOKEN not in _read(log_path)
    engine.dispose()


def _settled(store: SqlStore) -> bool:
    counts = store.status(datetime.now(UTC)).counts
    return counts["uploaded"] == 8 and counts["skipped"] == 1 and counts["failed"] == 1


def _call(store: SqlStore, reference: str) -> Call:
    [call] = store.find_calls(reference)
    return call


def _deletion_states(engine: Engine, store: SqlStore) -> dict[str, str]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(source_deletions_table.c.call_id, source_deletions_table.c.state)
        ).all()
    by_id = {row.call_id: row.state for row in rows}
    found = {}
    for n in range(8):
        call = _call(store, str(1000 + n))
        if call.id in by_id:
            found[call.provider_call_id] = by_id[call.id]
    return found


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


def _wait(condition: Callable[[], bool], timeout: float, what: str, log_path: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; daemon log:\n{_read(log_path)[-6000:]}")
