"""Twilio end to end: `provider check` and `siro-poller run` as a process against the simulator."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from poller.adapters.sql import migrate
from poller.adapters.sql.database import make_engine
from poller.adapters.sql.store import SqlStore
from poller.cli import main
from poller.domain.states import CallState
from poller.simulators.audio import encoded, mp3_bytes
from poller.simulators.http_server import LocalHTTPServer
from poller.simulators.siro_server import FakeSiro
from poller.simulators.twilio_server import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    FakeTwilio,
    serve,
    sid,
    twilio_call,
    twilio_recording,
)
from tests.daemon_process import daemon_environment
from tests.test_daemon_e2e import STARTED_LINE, stop, wait_for

STARTED = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)


def twilio_env(url: str, **overrides: str) -> dict[str, str]:
    return {
        "SIRO_POLLER_PROVIDER__KIND": "twilio",
        "SIRO_POLLER_PROVIDER__BASE_URL": url,
        "SIRO_POLLER_PROVIDER__ACCOUNT_SID": ACCOUNT_SID,
        "SIRO_POLLER_PROVIDER__AUTH_TOKEN": AUTH_TOKEN,
        "SIRO_POLLER_PROVIDER__MAX_RETRIES": "0",
        **overrides,
    }


@pytest.fixture
def twilio() -> Iterator[tuple[FakeTwilio, LocalHTTPServer]]:
    api = FakeTwilio()
    with serve(api) as server:
        yield api, server


def check(url: str, **env: str) -> Result:
    return CliRunner().invoke(main, ["provider", "check"], env=twilio_env(url, **env))


def seed_check(api: FakeTwilio) -> None:
    recent = datetime.now(UTC) - timedelta(hours=2)
    for n in range(3):
        call_sid = sid("CA", f"check-{n}")
        api.add(
            twilio_recording(sid("RE", f"check-{n}"), call_sid, recent + timedelta(minutes=n)),
            twilio_call(call_sid, recent, from_="+15551230000", to="client:alice"),
        )


def test_provider_check_maps_every_twilio_recording(
    twilio: tuple[FakeTwilio, LocalHTTPServer],
) -> None:
    api, server = twilio
    seed_check(api)
    result = check(server.url)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "provider twilio: ok: 3 of 3 records mapped"
    assert AUTH_TOKEN not in result.output


def test_provider_check_names_twilios_keys_when_the_token_is_refused(
    twilio: tuple[FakeTwilio, LocalHTTPServer],
) -> None:
    api, server = twilio
    seed_check(api)
    result = check(server.url, SIRO_POLLER_PROVIDER__AUTH_TOKEN="rotated-token")
    assert result.exit_code == 1
    assert "provider twilio: auth:" in result.stdout
    assert "provider.account_sid and provider.auth_token" in result.stdout
    assert "rotated-token" not in result.output


def test_provider_check_names_the_missing_twilio_credentials(
    twilio: tuple[FakeTwilio, LocalHTTPServer],
) -> None:
    _, server = twilio
    result = check(server.url, SIRO_POLLER_PROVIDER__AUTH_TOKEN="")
    assert result.exit_code != 0
    assert "provider.auth_token" in result.output


# -- the daemon -----------------------------------------------------------------------------


@dataclass
class Daemon:
    state_dir: Path
    log_path: Path

    def log(self) -> str:
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def test_the_daemon_uploads_each_twilio_recording_once_with_its_rep_and_contact(
    state_database_url: str, tmp_path: Path
) -> None:
    engine = make_engine(state_database_url)
    migrate.upgrade(engine)
    api = FakeTwilio()
    # Each recording: (its call's from, to, direction, caller name).
    calls = {
        # Inbound to a Siro user's number: the rep goes by phone.
        "inbound": ("+15551230001", "+15550000002", "inbound", "Jane Smith"),
        # A browser softphone rep named in rep_emails.
        "alice": ("client:alice", "+15551230002", "outbound-api", None),
        # A softphone rep mapped to a Siro user in siro.rep_map.provider_id.
        "carol": ("+15551230003", "client:carol", "inbound", "Bob Jones"),
        # A dual-channel recording: the mp3 keeps both channels.
        "stereo": ("client:alice", "+15551230004", "outbound-dial", None),
    }
    recording_sids: dict[str, str] = {}
    for n, (name, (from_, to, direction, caller)) in enumerate(calls.items()):
        recording_sid, call_sid = sid("RE", name), sid("CA", name)
        recording_sids[name] = recording_sid
        at = STARTED + timedelta(minutes=n)
        api.add(
            twilio_recording(recording_sid, call_sid, at, channels=2 if name == "stereo" else 1),
            twilio_call(call_sid, at, from_=from_, to=to, direction=direction, caller_name=caller),
            encoded("mp3", 1.0, channels=2) if name == "stereo" else mp3_bytes(1),
        )
    # Without RequestedChannels=2, Twilio would hand out a mono downmix.
    api.downmixed[recording_sids["stereo"]] = mp3_bytes(1)
    # A recording Twilio reports absent: skipped with its reason, never uploaded.
    absent = sid("RE", "absent")
    api.add(
        twilio_recording(absent, sid("CA", "absent"), STARTED, status="absent", error_code=13617),
        twilio_call(sid("CA", "absent"), STARTED, from_="+15551230009", to="+15550000001"),
    )
    with serve(api) as provider, FakeSiro(verify_audio_type=True) as siro:
        daemon = Daemon(tmp_path / "state", tmp_path / "daemon.log")
        env = daemon_environment(
            state_dir=daemon.state_dir,
            database_url=state_database_url,
            siro=siro,
            start_at=STARTED - timedelta(minutes=5),
            settings={
                "PROVIDER__KIND": "twilio",
                "PROVIDER__BASE_URL": provider.url,
                "PROVIDER__ACCOUNT_SID": ACCOUNT_SID,
                "PROVIDER__AUTH_TOKEN": AUTH_TOKEN,
                "PROVIDER__REP_EMAILS": json.dumps({"client:alice": "rep1@example.com"}),
                "SIRO__REP_MAP__PROVIDER_ID": json.dumps({"client:carol": "user-3"}),
                "WORKER__SHUTDOWN_GRACE_SECONDS": "5",
            },
        )
        with daemon.log_path.open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "poller", "run"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=tmp_path,
            )
        store = SqlStore(engine)
        try:
            wait_for(
                lambda: STARTED_LINE in daemon.log() or process.poll() is not None,
                30,
                "the daemon to start",
                daemon,  # type: ignore[arg-type]
            )

            def settled() -> bool:
                counts = store.status(datetime.now(UTC)).counts
                return counts["uploaded"] == 4 and counts["skipped"] == 1

            wait_for(settled, 60, "4 uploads and 1 skip", daemon)  # type: ignore[arg-type]
        finally:
            assert stop(process) == 0

        creates = [r.json for r in siro.state.requests_for("create") if r.json]
        assert len(siro.state.recordings) == 4
        by_sid = {}
        for name, recording_sid in recording_sids.items():
            matching = [body for body in creates if f"[{recording_sid}]" in body["title"]]
            assert len(matching) == 1, f"{name} reached Siro {len(matching)} times"
            by_sid[name] = matching[0]
        assert by_sid["inbound"]["userId"] == "user-2"
        assert (by_sid["inbound"]["contactPhone"], by_sid["inbound"]["contactName"]) == (
            "+15551230001",
            "Jane Smith",
        )
        assert by_sid["alice"]["userId"] == "user-1"
        assert by_sid["alice"]["contactPhone"] == "+15551230002"
        assert by_sid["carol"]["userId"] == "user-3"
        assert by_sid["carol"]["contactPhone"] == "+15551230003"
        (stereo,) = store.find_calls(recording_sids["stereo"])
        assert stereo.audio_channels == 2
        (skipped,) = store.list_calls(state=CallState.SKIPPED)
        assert skipped.provider_call_id == absent
        assert skipped.last_error == "Twilio reports the recording absent (Twilio error 13617)"
        assert AUTH_TOKEN not in daemon.log()
    engine.dispose()
