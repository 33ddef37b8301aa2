"""`siro-poller run` as a process against the Dialpad simulator and the Siro fake."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from poller.adapters.sql import migrate
from poller.adapters.sql.database import make_engine
from poller.adapters.sql.store import SqlStore
from poller.cli import main
from poller.simulators.audio import aac_bytes, mp3_bytes, wav_bytes
from poller.simulators.dialpad_server import DialpadServers, call_proto, recording_detail
from poller.simulators.siro_server import FakeSiro
from tests.daemon_process import daemon_environment

API_KEY = "dialpad-e2e-key-0001"
STARTED_LINE = "siro-poller running as"
STARTED = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)


@pytest.fixture
def dialpad() -> Iterator[DialpadServers]:
    with DialpadServers(API_KEY, page_size=3) as servers:
        yield servers


def provider_env(servers: DialpadServers) -> dict[str, str]:
    return {
        "SIRO_POLLER_PROVIDER__KIND": "dialpad",
        "SIRO_POLLER_PROVIDER__BASE_URL": servers.url,
        "SIRO_POLLER_PROVIDER__API_KEY": API_KEY,
        "SIRO_POLLER_PROVIDER__DOWNLOAD_HOSTS": f'["{servers.media_host}"]',
        "SIRO_POLLER_PROVIDER__MAX_RETRIES": "2",
        "SIRO_POLLER_PROVIDER__CONNECT_TIMEOUT_SECONDS": "2",
        "SIRO_POLLER_PROVIDER__READ_TIMEOUT_SECONDS": "5",
    }


def seed(servers: DialpadServers) -> dict[str, tuple[str, str, str]]:
    """Seven calls over three pages: five recorded, one waiting, one never recorded."""
    expected: dict[str, tuple[str, str, str]] = {}
    makers = (lambda: mp3_bytes(1), lambda: wav_bytes(0.5), lambda: aac_bytes(1))
    for n in range(5):
        call_id = str(servers.next_id())
        at = STARTED + timedelta(minutes=n)
        rep, contact = f"rep{n % 3 + 1}@example.com", f"+1415555{n:04d}"
        servers.state.add_call(
            call_proto(
                call_id,
                at,
                rep_email=rep,
                contact_name=f"Prospect {n}",
                contact_phone=contact,
                recordings=[
                    recording_detail(f"vm-{n}", at, recording_type="voicemail"),
                    recording_detail(f"rec-{n}", at),
                ],
            )
        )
        servers.state.add_audio("callrecording", f"rec-{n}", makers[n % 3]())
        expected[call_id] = (rep, contact, f"Prospect {n}")
    servers.state.add_call(call_proto("1", STARTED + timedelta(minutes=6), was_recorded=False))
    servers.state.add_call(call_proto("2", STARTED + timedelta(minutes=7), was_recorded=True))
    return expected


def test_every_dialpad_call_reaches_siro_once_with_its_rep_and_contact(
    dialpad: DialpadServers, state_database_url: str, tmp_path: Path
) -> None:
    expected = seed(dialpad)
    engine = make_engine(state_database_url)
    migrate.upgrade(engine)
    log_path = tmp_path / "daemon.log"
    with FakeSiro(verify_audio_type=True) as siro:
        env = daemon_environment(
            state_dir=tmp_path / "state",
            database_url=state_database_url,
            siro=siro,
            start_at=STARTED - timedelta(minutes=5),
            settings={
                key.removeprefix("SIRO_POLLER_"): value
                for key, value in provider_env(dialpad).items()
            },
        )
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "poller", "run"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=tmp_path,
            )
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and process.poll() is None:
                with siro.state.lock:
                    done = len(siro.state.recordings) >= len(expected)
                if done:
                    break
                time.sleep(0.2)
            time.sleep(1.5)  # a few more cycles: nothing may arrive twice
        finally:
            process.terminate()
            process.wait(timeout=15)
        text = log_path.read_text(encoding="utf-8", errors="replace")
        assert STARTED_LINE in text, text[-4000:]
        with siro.state.lock:
            bodies = [recording["body"] for recording in siro.state.recordings.values()]
    engine.dispose()

    assert len(bodies) == len(expected), text[-4000:]
    for call_id, (rep, contact_phone, contact_name) in expected.items():
        [body] = [body for body in bodies if f"[{call_id}]" in str(body.get("title"))]
        assert body.get("userId") == f"user-{rep[3]}" or body.get("userEmail") == rep
        assert (body.get("contactPhone"), body.get("contactName")) == (contact_phone, contact_name)
    # Only call recordings were shared (never the voicemails), each once, and the media host
    # never saw the key.
    shared = sorted(request["recording_id"] for request in dialpad.state.share_requests)
    assert shared == [f"rec-{n}" for n in range(5)]
    assert all(
        "Authorization" not in headers and API_KEY not in path
        for path, headers in dialpad.state.media_requests
    )
    assert API_KEY not in text
    engine = make_engine(state_database_url)
    states = SqlStore(engine).status(datetime.now(UTC)).counts
    engine.dispose()
    assert states.get("uploaded") == 5


def test_provider_check_lists_dialpad_and_maps_every_record(dialpad: DialpadServers) -> None:
    recent = datetime.now(UTC) - timedelta(hours=2)
    for n in range(4):
        dialpad.state.add_call(call_proto(str(dialpad.next_id()), recent + timedelta(minutes=n)))
    result = CliRunner().invoke(
        main,
        ["provider", "check"],
        env={**provider_env(dialpad), "SIRO_POLLER_PROVIDER__MAX_RETRIES": "0"},
    )
    assert result.exit_code == 0, result.output
    # Read-only and quick: the first page (three calls) is enough to check the mapping.
    assert result.stdout.strip() == "provider dialpad: ok: 3 of 3 records mapped"
    assert API_KEY not in result.output
    assert len(dialpad.state.listing_requests()) == 1


def test_provider_check_names_the_api_key_when_dialpad_refuses_it(
    dialpad: DialpadServers,
) -> None:
    result = CliRunner().invoke(
        main,
        ["provider", "check"],
        env={
            **provider_env(dialpad),
            "SIRO_POLLER_PROVIDER__API_KEY": "expired-key-5555",
            "SIRO_POLLER_PROVIDER__MAX_RETRIES": "0",
        },
    )
    assert result.exit_code == 1
    assert "provider dialpad: auth:" in result.stdout
    assert "provider.api_key" in result.stdout
    assert "expired-key-5555" not in result.output
