"""`siro-poller run` as a real process against a local provider and a local Siro.

Both fakes are real HTTP servers on 127.0.0.1; the daemon is a subprocess with its own state
database (SQLite file or a fresh PostgreSQL database), configured through the environment
exactly as a systemd unit would.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from poller import __version__
from poller.adapters.sql import migrate
from poller.adapters.sql.database import make_engine
from poller.adapters.sql.store import SqlStore
from poller.domain.states import CallState
from poller.simulators.audio import (
    LOGIN_PAGE,
    aac_bytes,
    encoded,
    flac_bomb,
    flac_bytes,
    mp3_bytes,
    wav_bytes,
)
from poller.simulators.chaos import Chaos
from poller.simulators.http_server import LocalHTTPServer
from poller.simulators.provider_server import FakeCallLog, quickstart_call, serve
from poller.simulators.siro_server import FakeSiro, Fault
from tests.daemon_process import daemon_environment

STARTED = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
PROVIDER_TOKEN = "provider-token-e2e-0001"
STARTED_LINE = "siro-poller running as"


@dataclass
class World:
    """The provider, Siro and the state database one daemon run works against."""

    api: FakeCallLog
    provider: LocalHTTPServer
    siro: FakeSiro
    database_url: str
    engine: Engine
    state_dir: Path
    log_path: Path

    @property
    def store(self) -> SqlStore:
        return SqlStore(self.engine)

    def env(self, **overrides: str) -> dict[str, str]:
        return daemon_environment(
            state_dir=self.state_dir,
            database_url=self.database_url,
            siro=self.siro,
            start_at=STARTED - timedelta(minutes=5),
            settings={
                "PROVIDER__BASE_URL": self.provider.url,
                "PROVIDER__AUTH": "bearer",
                "PROVIDER__TOKEN": PROVIDER_TOKEN,
                "WORKER__CONCURRENCY": "4",
                "WORKER__MAX_ATTEMPTS": "10",
                "WORKER__MAX_FILE_BYTES": "200000",
                "WORKER__MAX_DOWNLOAD_BYTES": "200000",
                "WORKER__SHUTDOWN_GRACE_SECONDS": "5",
                **overrides,
            },
        )

    def start(self, **overrides: str) -> subprocess.Popen[bytes]:
        """A daemon that has got as far as running its scheduler."""
        (process,) = start_together((self, overrides))
        return process

    def launch(self, **overrides: str) -> subprocess.Popen[bytes]:
        """A daemon process, not waited for (see :func:`start_together`)."""
        return subprocess.Popen(
            [sys.executable, "-m", "poller", "run"],
            env=self.env(**overrides),
            stdout=self.log_path.open("ab"),
            stderr=subprocess.STDOUT,
            cwd=self.state_dir.parent,
        )

    def start_lines(self) -> int:
        return self.log().count(STARTED_LINE) if self.log_path.exists() else 0

    def counts(self) -> dict[str, int]:
        return self.store.status(datetime.now(UTC)).counts

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def start_together(*daemons: tuple[World, Mapping[str, str]]) -> list[subprocess.Popen[bytes]]:
    """Daemons (a world and its overrides each) that have all got as far as running their
    scheduler.

    All are launched before any is waited for: their start-ups, seconds each on a busy
    machine, overlap instead of adding up.
    """
    # Daemons of one world write to one log: that log must gain a start line for each.
    awaited: dict[Path, tuple[World, int]] = {}
    for world, _overrides in daemons:
        lines = awaited[world.log_path][1] if world.log_path in awaited else world.start_lines()
        awaited[world.log_path] = (world, lines + 1)
    launched = [world.launch(**overrides) for world, overrides in daemons]

    def all_started() -> bool:
        return all(world.start_lines() >= lines for world, lines in awaited.values())

    try:
        wait_for(
            lambda: all_started() or any(process.poll() is not None for process in launched),
            30,
            "the daemon to start",
            daemons[0][0],
        )
    except AssertionError:
        # Left running, a daemon that never said it started would poll and work on for the
        # rest of the test run, taking CPU from every test after it.
        for process in launched:
            process.kill()
            process.wait(timeout=10)
        raise
    return launched


def offer(world: World, count: int, *, minute_offset: int = 0) -> list[str]:
    """``count`` good calls, each with a small recording in one of Siro's formats."""
    makers = (lambda: mp3_bytes(1), lambda: wav_bytes(0.5), lambda: aac_bytes(1))
    ids = []
    for index in range(count):
        call_id = f"call-{minute_offset + index:04d}"
        started = STARTED + timedelta(seconds=30 * (minute_offset + index))
        path = world.api.add_recording(f"/recordings/{call_id}", makers[index % 3]())
        world.api.add_call(
            quickstart_call(
                call_id,
                started,
                recording_url=world.provider.url + path,
                email=f"rep{index % 3 + 1}@example.com",
                contact_name=f"Customer {index}",
            ),
            started,
        )
        ids.append(call_id)
    return ids


def offer_bad(world: World) -> None:
    bodies = {"bad-html": LOGIN_PAGE, "bad-flac": flac_bytes(), "bad-huge": mp3_bytes(20)}
    for offset, (call_id, body) in enumerate(bodies.items()):
        started = STARTED + timedelta(seconds=7 + offset)
        path = world.api.add_recording(f"/recordings/{call_id}", body)
        world.api.add_call(
            quickstart_call(call_id, started, recording_url=world.provider.url + path), started
        )


def wait_for(condition: Callable[[], bool], timeout: float, what: str, world: World) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    # Once more at the deadline: a test process starved past it by a busy host has not
    # looked since its last sleep, and the daemon may have got there meanwhile.
    if condition():
        return
    raise AssertionError(f"timed out waiting for {what}; daemon log:\n{world.log()[-6000:]}")


def stop(process: subprocess.Popen[bytes], timeout: float = 15) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=timeout)


def stop_together(processes: Sequence[subprocess.Popen[bytes]], timeout: float = 15) -> list[int]:
    """Each process's exit code after SIGTERM, sent to all before any is waited for: their
    shutdowns overlap instead of adding up."""
    for process in processes:
        process.send_signal(signal.SIGTERM)
    return [process.wait(timeout=timeout) for process in processes]


@contextmanager
def open_world(database_url: str, tmp_path: Path) -> Iterator[World]:
    """Both fakes running, and a migrated state database at ``database_url``."""
    engine = make_engine(database_url)
    migrate.upgrade(engine)
    api = FakeCallLog(auth=("bearer", PROVIDER_TOKEN), page_size=50)
    with serve(api) as provider, FakeSiro(verify_audio_type=True) as siro:
        api.base_url = provider.url
        yield World(
            api=api,
            provider=provider,
            siro=siro,
            database_url=database_url,
            engine=engine,
            state_dir=tmp_path / "state",
            log_path=tmp_path / "daemon.log",
        )
    engine.dispose()


@pytest.fixture
def world(state_database_url: str, tmp_path: Path) -> Iterator[World]:
    with open_world(state_database_url, tmp_path) as running:
        yield running


def siro_titles(world: World) -> Counter[str]:
    with world.siro.state.lock:
        return Counter(str(r["title"]) for r in world.siro.state.recordings.values())


def assert_each_call_once_in_siro(world: World, call_ids: list[str]) -> None:
    titles = siro_titles(world)
    for call_id in call_ids:
        matching = [t for t, n in titles.items() for _ in range(n) if f"[{call_id}]" in t]
        assert len(matching) == 1, f"{call_id} is in Siro {len(matching)} times"


def test_60_calls_reach_siro_exactly_once_and_bad_ones_fail_with_reasons(world: World) -> None:
    # Enough for two pages of the listing (50 a page) and a backlog many times the threads.
    call_ids = offer(world, 60)
    offer_bad(world)
    daemon = world.start()
    try:
        wait_for(
            lambda: world.counts()["uploaded"] == 60 and world.counts()["failed"] == 3,
            120,
            "60 uploads and 3 failures",
            world,
        )
    finally:
        assert stop(daemon) == 0

    assert_each_call_once_in_siro(world, call_ids)
    assert len(world.siro.state.recordings) == 60
    creates = [r.json for r in world.siro.state.requests_for("create")]
    first = next(body for body in creates if body and "[call-0003]" in body["title"])
    # rep1@example.com is a Siro user: the recording goes to that user by id, not by email.
    assert first["userId"] == "user-1"
    assert "userEmail" not in first
    (row,) = world.store.find_calls("call-0003")
    assert (row.siro_user_id, row.attribution) == ("user-1", "siro_email")
    assert first["contactName"] == "Customer 3"
    assert first["contactPhone"] == "+15551234567"
    assert first["fileType"] == "mp3"
    started = datetime.fromisoformat(first["dateCreated"].replace("Z", "+00:00"))
    assert started == STARTED + timedelta(seconds=90)
    reasons = {
        call.provider_call_id: call.error_kind
        for call in world.store.list_calls(state=CallState.FAILED)
    }
    assert reasons == {
        "bad-html": "not_audio",
        "bad-flac": "corrupt_audio",  # a FLAC header with no audio after it
        "bad-huge": "oversize",
    }
    for secret in [PROVIDER_TOKEN, *world.siro.state.secrets()]:
        assert secret not in world.log()
    # No line a call at INFO: a backlog is summed up, failures keep their line each.
    assert "uploaded as Siro recording" not in world.log()
    assert world.log().count("failed (") == 3


def test_an_m4a_call_is_uploaded_as_aac_and_an_ogg_call_as_mp3_each_exactly_once(
    world: World,
) -> None:
    bodies = {"call-789": encoded("m4a", 3.0), "call-790": encoded("ogg", 3.0, channels=2)}
    for offset, (call_id, body) in enumerate(bodies.items()):
        started = STARTED + timedelta(seconds=offset)
        path = world.api.add_recording(f"/recordings/{call_id}", body, content_type="audio/mp4")
        world.api.add_call(
            quickstart_call(call_id, started, recording_url=world.provider.url + path), started
        )
    daemon = world.start()
    try:
        wait_for(lambda: world.counts()["uploaded"] == 2, 60, "2 uploads", world)
    finally:
        assert stop(daemon) == 0

    assert_each_call_once_in_siro(world, list(bodies))
    creates = {
        body["title"].rsplit("[", 1)[-1].rstrip("]"): body
        for body in (r.json for r in world.siro.state.requests_for("create"))
        if body
    }
    assert {call_id: body["fileType"] for call_id, body in creates.items()} == {
        "call-789": "aac",
        "call-790": "mp3",
    }
    # The fake Siro looked at the bytes: each upload really is what its fileType says.
    received = sorted(u.received_type or "" for u in world.siro.state.uploads.values())
    assert received == ["aac", "mp3"]
    (m4a,) = world.store.find_calls("call-789")
    assert (m4a.source_format, m4a.source_codec, m4a.audio_format) == ("m4a", "aac", "aac")
    assert m4a.duration_seconds == 3
    assert [e.step for e in world.store.events_for(m4a.id)][1:3] == ["download", "convert"]


def test_injected_faults_still_give_exactly_once_and_nothing_failed(world: World) -> None:
    # 100 calls meet every kind of fault on both sides, more than 20 times a side: each
    # provider 429 holds all downloads for its Retry-After, so more calls add wall time only.
    call_ids = offer(world, 100)
    world.siro.state.chaos = Chaos(server_error=0.10, rate_limited=0.05, drop=0.03, seed=7)
    world.api.chaos = Chaos(server_error=0.10, rate_limited=0.05, drop=0.03, seed=11)
    daemon = world.start()
    try:
        wait_for(lambda: world.counts()["uploaded"] == 100, 180, "100 uploads", world)
    finally:
        assert stop(daemon) == 0

    assert world.counts()["failed"] == 0
    assert_each_call_once_in_siro(world, call_ids)
    assert len(world.siro.state.recordings) == 100
    assert sum(world.siro.state.chaos.injected.values()) > 20  # the faults really happened
    assert sum(world.api.chaos.injected.values()) > 20


def test_a_kill_during_the_create_call_loses_nothing_and_duplicates_nothing(
    world: World,
) -> None:
    call_ids = offer(world, 30)
    # Siro makes the recording, then sits on its answer: the daemon dies waiting for it.
    world.siro.state.fail_next("create", Fault.slow(30))
    daemon = world.start(WORKER__LEASE_SECONDS="5", WORKER__CONCURRENCY="1")
    wait_for(lambda: len(world.siro.state.recordings) >= 1, 60, "the first create", world)
    daemon.kill()
    daemon.wait(timeout=10)
    first_title = next(iter(siro_titles(world)))
    leased = [c for c in world.store.list_calls() if c.lease_owner is not None]
    # The call in the create, and at most two others (three threads per unit of concurrency):
    # downloaded beside it, waiting for their turn at Siro (the stages overlap).
    assert len(leased) <= 3
    assert len([c for c in leased if c.siro_create_sent_at is not None]) == 1

    restarted = world.start(WORKER__LEASE_SECONDS="5")
    try:
        wait_for(lambda: world.counts()["uploaded"] == 30, 90, "30 uploads", world)
    finally:
        assert stop(restarted) == 0

    assert_each_call_once_in_siro(world, call_ids)
    assert len(world.siro.state.recordings) == 30
    (adopted,) = [c for c in world.store.list_calls() if f"[{c.provider_call_id}]" in first_title]
    outcomes = [(e.step, e.outcome) for e in world.store.events_for(adopted.id)]
    assert ("lease", "rescued") in outcomes and ("upload", "adopted") in outcomes


def test_a_kill_at_random_moments_and_restarts_lose_and_duplicate_nothing(
    world: World,
) -> None:
    call_ids = offer(world, 120)
    world.siro.state.chaos = Chaos(server_error=0.05, drop=0.05, seed=3)
    for pause in (1.5, 2.5):
        daemon = world.start(WORKER__LEASE_SECONDS="5")
        time.sleep(pause)
        daemon.kill()
        daemon.wait(timeout=10)
    final = world.start(WORKER__LEASE_SECONDS="5")
    try:
        wait_for(lambda: world.counts()["uploaded"] == 120, 120, "120 uploads", world)
    finally:
        assert stop(final) == 0
    assert_each_call_once_in_siro(world, call_ids)
    assert len(world.siro.state.recordings) == 120


def test_sigterm_exits_cleanly_within_the_grace_and_gives_rows_back(world: World) -> None:
    offer(world, 8)
    # Every PUT hangs for longer than the grace: in-flight work cannot finish in time.
    for _ in range(8):
        world.siro.state.fail_next("put", Fault(delay=20, after_processing=True))
    daemon = world.start(WORKER__SHUTDOWN_GRACE_SECONDS="2", WORKER__CONCURRENCY="2")
    # Not just claimed (a download still running would stop at once): hung inside Siro's PUT.
    wait_for(lambda: world.siro.state.requests_for("put"), 60, "a PUT in flight", world)
    # Exited within stop()'s 15 s, while the PUTs still hang (20 s): the daemon did not wait for
    # them, and says it gave up on them once its own 2 s grace was over (a wall-clock bound here
    # would measure the machine's load, not the daemon).
    assert stop(daemon) == 0
    assert "in-flight work did not finish within 2s; exiting anyway" in world.log()
    assert all(c.lease_owner is None for c in world.store.list_calls())
    released = [
        e
        for c in world.store.list_calls()
        for e in world.store.events_for(c.id)
        if e.outcome == "released"
    ]
    assert released
    assert "stopping: no new work is claimed" in world.log()


def test_the_daemon_refuses_a_database_that_is_not_at_head(world: World) -> None:
    migrate.downgrade(world.engine, "base")
    result = subprocess.run(
        [sys.executable, "-m", "poller", "run"],
        env=world.env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "run `siro-poller db upgrade` first" in result.stderr


def test_systemd_hears_ready_watchdog_and_stopping(world: World, tmp_path: Path) -> None:
    notify_path = tmp_path / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(notify_path))
    listener.settimeout(30)
    daemon = subprocess.Popen(
        [sys.executable, "-m", "poller", "run"],
        env={**world.env(), "NOTIFY_SOCKET": str(notify_path), "WATCHDOG_USEC": "2000000"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        messages = [listener.recv(4096).decode()]
        assert messages[0].startswith("READY=1")
        messages.append(listener.recv(4096).decode())
        assert messages[1] == "WATCHDOG=1"
        daemon.send_signal(signal.SIGTERM)
        while not messages[-1].startswith("STOPPING=1"):
            messages.append(listener.recv(4096).decode())
        assert daemon.wait(timeout=15) == 0
    finally:
        daemon.kill()
        listener.close()


def test_metrics_show_the_state_table_and_the_work_done(world: World) -> None:
    offer(world, 10)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    daemon = world.start(METRICS__LISTEN=f"127.0.0.1:{port}")
    try:
        wait_for(lambda: world.counts()["uploaded"] == 10, 60, "10 uploads", world)
        wait_for(
            lambda: (
                'siro_poller_steps_total{kind="",outcome="ok",step="upload"} 10.0' in _scrape(port)
            ),
            20,
            "upload counters",
            world,
        )
        text = _scrape(port)
    finally:
        assert stop(daemon) == 0
    (startup,) = [line for line in world.log().splitlines() if STARTED_LINE in line]
    url = make_url(world.database_url)
    database = (
        f"{url.database} (SQLite)"
        if url.get_backend_name() == "sqlite"
        else url.render_as_string(hide_password=True)
    )
    assert (
        f": version {__version__}, role all, database {database}, provider generic (generic), "
        f"metrics on 127.0.0.1:{port}; poll every 1s, work every 1s, worker.concurrency 4"
    ) in startup
    assert 'siro_poller_calls{state="uploaded"} 10.0' in text
    assert "siro_poller_due_calls 0.0" in text
    assert 'siro_poller_polls_total{outcome="ok"}' in text
    assert 'siro_poller_cursor_lag_seconds{provider="generic"}' in text
    downloaded = re.search(r"^siro_poller_downloaded_bytes_total (\S+)$", text, re.MULTILINE)
    assert downloaded and float(downloaded.group(1)) > 10 * 8000


def _scrape(port: int) -> str:
    try:
        return requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except requests.ConnectionError:
        return ""


def test_two_daemons_sharing_postgres_upload_each_call_once(
    tmp_path: Path, fresh_postgres_url: str
) -> None:
    with open_world(fresh_postgres_url, tmp_path) as world:
        call_ids = offer(world, 150)
        world.siro.state.chaos = Chaos(server_error=0.05, drop=0.02, seed=5)
        # One daemon alone drains 150 calls in about the time another takes to start on a busy
        # machine: the first creates answer late (within the read timeout), so that the first
        # daemon's slots for Siro's API are held until the second is working too.
        for _ in range(6):
            world.siro.state.fail_next("create", Fault.slow(4))
        daemons = start_together(
            (world, {"WORKER__CONCURRENCY": "3"}),
            (world, {"WORKER__CONCURRENCY": "3", "STATE_DIR": str(tmp_path / "state-2")}),
        )
        try:
            wait_for(lambda: world.counts()["uploaded"] == 150, 120, "150 uploads", world)
        finally:
            assert stop_together(daemons) == [0, 0]
        assert_each_call_once_in_siro(world, call_ids)
        assert len(world.siro.state.recordings) == 150
        senders = {
            (e.message or "").rsplit(" ", 1)[-1]
            for c in world.store.list_calls(limit=200)
            for e in world.store.events_for(c.id)
            if e.outcome == "create_sent"
        }
        assert len(senders) == 2  # both daemons took their share


def test_break_8_spool_orphans_of_a_sigkill_mid_conversion_are_swept(world: World) -> None:
    # Two hours of FLAC (silence, 13 KB) take seconds to encode: long enough to kill it midway.
    body = flac_bomb(declared_seconds=7200, real_seconds=7200)
    path = world.api.add_recording("/recordings/long", body)
    world.api.add_call(
        quickstart_call("long", STARTED, recording_url=world.provider.url + path), STARTED
    )
    spool = world.state_dir / "spool"
    big = {"WORKER__MAX_FILE_BYTES": "104857600", "WORKER__MAX_DOWNLOAD_BYTES": "104857600"}
    daemon = world.start(WORKER__LEASE_SECONDS="5", **big)
    try:
        wait_for(
            lambda: any(p.suffix == ".mp3" and p.stat().st_size for p in spool.glob("call-*")),
            60,
            "a conversion under way",
            world,
        )
    finally:
        daemon.kill()
        daemon.wait(timeout=10)
    left = sorted(p.name for p in spool.glob("call-*"))
    assert [name.split(".", 1)[1] for name in left] == ["download", "mp3"]
    # The recording is gone when the call is tried again: the row fails, and only the sweep
    # can remove what the killed conversion left.
    del world.api.recordings["/recordings/long"]

    restarted = world.start(WORKER__LEASE_SECONDS="5", **big)
    try:
        wait_for(lambda: world.counts()["failed"] == 1, 60, "the call to fail", world)
        wait_for(lambda: not list(spool.glob("call-*")), 30, "the spool to be swept", world)
    finally:
        assert stop(restarted) == 0
    assert "from the spool that no call owns" in world.log()
