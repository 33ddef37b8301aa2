"""A hostile or broken provider, seen where a user sees it: the row, the poll, the daemon.

Each case is one the landed code was measured on: recording URLs that point at other loopback
hosts, other ports, cloud metadata (directly and through a redirect), ``file://`` and ``ftp://``,
a body that trickles one byte per second, and a listing page over its byte cap. Calls go through
the real poll cycle and the real worker over real sockets, into SQLite and PostgreSQL. In every
case the row ends with a reason that names the host (or the scheme) and what to change, it is
failed at once when trying again cannot help, the good calls of the same batch still upload, and
nothing connected to the refused address.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

import tests.test_daemon_e2e as e2e
from poller.adapters.http import RetryPolicy
from poller.adapters.providers.generic import GenericProvider
from poller.adapters.siro_fake import InMemorySiro
from poller.adapters.sql import migrate
from poller.adapters.sql.database import make_engine
from poller.adapters.sql.store import SqlStore
from poller.app import build_worker
from poller.config import Settings
from poller.core.poll import poll_once
from poller.core.poll_report import PollReport
from poller.core.users_sync import sync_users
from poller.core.worker import Worker
from poller.domain.clock import utcnow
from poller.domain.siro import SiroUser
from poller.domain.states import CallState
from poller.simulators.audio import mp3_bytes
from poller.simulators.counting_listener import CountingListener
from poller.simulators.http_server import LocalHTTPServer
from poller.simulators.provider_server import FakeCallLog, FakeProviderHandler, quickstart_call
from poller.simulators.siro_server import FakeSiro
from poller.wiring import poll_params_from_settings
from tests.http_fixtures import ConnectAttempts

STARTED = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
TOKEN = "provider-token-hostile"
NO_WAIT = RetryPolicy(max_tries=1, base_delay=0.0, max_delay=0.0)
METADATA_IP = "169.254.169.254"
METADATA_NAME = "metadata.google.internal"


# -- a provider that redirects and trickles --------------------------------------------------


@dataclass
class HostileCallLog(FakeCallLog):
    """The fake call log, plus paths that redirect elsewhere and paths that trickle."""

    redirects: dict[str, str] = field(default_factory=dict)
    # path -> how many bytes to send, one per ``trickle_interval`` seconds
    trickles: dict[str, int] = field(default_factory=dict)
    trickle_interval: float = 1.0
    trickle_requests: dict[str, int] = field(default_factory=dict)


class HostileHandler(FakeProviderHandler):
    def do_GET(self) -> None:
        api: HostileCallLog = self.server.state
        path = urlsplit(self.path).path
        if path in api.redirects:
            with api.lock:
                api.requests.append({"path": path, "query": {}, "headers": dict(self.headers)})
            self.send_response(302)
            self.send_header("Location", api.redirects[path])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if path in api.trickles:
            with api.lock:
                api.trickle_requests[path] = api.trickle_requests.get(path, 0) + 1
            size = api.trickles[path]
            self.send_response(200)
            self.send_header("Content-Type", "audio/mpeg")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            for _ in range(size):
                self.wfile.write(b"\xff")
                self.wfile.flush()
                time.sleep(api.trickle_interval)
            return
        super().do_GET()


class Resolutions:
    """Every name this process looks up, through the ``socket.getaddrinfo`` audit event."""

    installed = False
    current: list[str] | None = None

    def __enter__(self) -> list[str]:
        if not Resolutions.installed:
            sys.addaudithook(Resolutions._hook)
            Resolutions.installed = True
        Resolutions.current = []
        return Resolutions.current

    def __exit__(self, *_exc: object) -> None:
        Resolutions.current = None

    @staticmethod
    def _hook(event: str, args: tuple[Any, ...]) -> None:
        names = Resolutions.current
        if names is not None and event == "socket.getaddrinfo":
            names.append(str(args[0]))


# -- fixtures --------------------------------------------------------------------------------


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def api() -> HostileCallLog:
    return HostileCallLog(auth=("bearer", TOKEN))


@pytest.fixture
def server(api: HostileCallLog) -> Iterator[LocalHTTPServer]:
    with LocalHTTPServer(HostileHandler, api) as running:
        api.base_url = running.url
        yield running


@pytest.fixture
def clock() -> Clock:
    return Clock(STARTED + timedelta(hours=1))


@pytest.fixture
def siro(clock: Clock) -> InMemorySiro:
    # One Siro user who is not the calls' rep: attribution falls back to the rep's email.
    return InMemorySiro(clock=clock, users=[SiroUser(id="user-9", email="manager@example.com")])


def settings_for(
    server: LocalHTTPServer, tmp_path: Path, provider: dict[str, Any] | None = None, **worker: Any
) -> Settings:
    return Settings(
        state_dir=tmp_path / "state",
        provider={
            "base_url": server.url,
            "auth": "bearer",
            "token": TOKEN,
            "connect_timeout_seconds": 1,
            "read_timeout_seconds": 5,
            **(provider or {}),
        },
        poll={"start_at": STARTED - timedelta(hours=1), "settle_delay_seconds": 0},
        worker={"retry_base_seconds": 30, "retry_max_seconds": 600, **worker},
        siro={"conversation_type": "sales", "organization_id": "org-1"},
    )


def offer_url(api: HostileCallLog, call_id: str, url: str, minute: int) -> None:
    started = STARTED + timedelta(minutes=minute)
    api.add_call(quickstart_call(call_id, started, recording_url=url), started)


def offer_audio(api: HostileCallLog, call_id: str, minute: int) -> None:
    path = api.add_recording(f"/recordings/{call_id}", mp3_bytes(1))
    offer_url(api, call_id, api.base_url + path, minute)


def poll(settings: Settings, store: SqlStore, clock: Clock, retry: RetryPolicy = NO_WAIT) -> Any:
    provider = GenericProvider(settings.provider, retry=retry)
    return poll_once(poll_params_from_settings(settings), provider, store, clock())


def worker_for(
    settings: Settings, store: SqlStore, siro: InMemorySiro, clock: Clock | None
) -> Worker:
    worker = build_worker(
        settings,
        store,
        threading.Event(),
        providers={settings.provider.name: GenericProvider(settings.provider, retry=NO_WAIT)},
        siro=siro,
    )
    if clock is not None:
        worker.clock = clock
    sync_users(siro, store, clock() if clock else utcnow(), default_region="US")
    return worker


def row(store: SqlStore, call_id: str) -> Any:
    (call,) = store.find_calls(call_id)
    return call


def assert_failed_once(store: SqlStore, call_id: str, kind: str, *words: str) -> str:
    """The row failed on its first attempt, with ``kind`` and a reason holding ``words``."""
    call = row(store, call_id)
    assert (call.state, call.error_kind, call.attempts) == (CallState.FAILED, kind, 1), (
        call.last_error
    )
    for word in words:
        assert word in call.last_error, call.last_error
    outcomes = [(e.step, e.outcome) for e in store.events_for(call.id)]
    assert outcomes == [("poll", "listed"), ("download", "fail")], outcomes
    assert "Traceback" not in call.last_error
    return str(call.last_error)


# -- recording URLs that point where they must not -------------------------------------------


def test_recordings_on_another_loopback_host_or_port_are_refused_and_never_reached(
    api: HostileCallLog,
    server: LocalHTTPServer,
    tmp_path: Path,
    sql_store: SqlStore,
    siro: InMemorySiro,
    clock: Clock,
) -> None:
    with CountingListener("127.0.0.2") as other_host, CountingListener("127.0.0.1") as other_port:
        offer_url(api, "other-host", f"{other_host.url}/audio.mp3", minute=1)
        offer_url(api, "other-port", f"{other_port.url}/audio.mp3", minute=2)
        offer_audio(api, "good", minute=3)
        settings = settings_for(server, tmp_path)
        assert poll(settings, sql_store, clock).ok

        worker_for(settings, sql_store, siro, clock).drain()

        assert (other_host.connections, other_port.connections) == (0, 0)
    for call_id, listener in (("other-host", other_host), ("other-port", other_port)):
        key = f"{listener.host}:{listener.port}"
        reason = assert_failed_once(
            sql_store, call_id, "download_refused", key, "loopback", "provider.download_hosts"
        )
        assert reason == (
            f"refused to connect to {key} (a loopback address); list it in "
            "provider.download_hosts to allow it"
        )
    assert row(sql_store, "good").state == CallState.UPLOADED
    assert len(siro.created) == 1


def test_cloud_metadata_is_refused_directly_and_through_a_redirect_from_the_provider(
    api: HostileCallLog,
    server: LocalHTTPServer,
    tmp_path: Path,
    sql_store: SqlStore,
    siro: InMemorySiro,
    clock: Clock,
) -> None:
    metadata_ip = f"http://{METADATA_IP}/latest/meta-data/iam/security-credentials/"
    metadata_name = f"http://{METADATA_NAME}/computeMetadata/v1/instance/service-accounts/"
    api.redirects["/recordings/to-ip"] = metadata_ip
    api.redirects["/recordings/to-name"] = metadata_name
    offer_url(api, "ip-direct", metadata_ip, minute=1)
    offer_url(api, "ip-redirect", f"{api.base_url}/recordings/to-ip", minute=2)
    offer_url(api, "name-direct", metadata_name, minute=3)
    offer_url(api, "name-redirect", f"{api.base_url}/recordings/to-name", minute=4)
    offer_audio(api, "good", minute=5)
    settings = settings_for(server, tmp_path)
    assert poll(settings, sql_store, clock).ok
    worker = worker_for(settings, sql_store, siro, clock)

    with ConnectAttempts() as connects, Resolutions() as lookups:
        worker.drain()

    for call_id in ("ip-direct", "ip-redirect"):
        assert_failed_once(
            sql_store,
            call_id,
            "download_refused",
            METADATA_IP,
            "a cloud metadata address",
            "provider.download_hosts",
        )
    for call_id in ("name-direct", "name-redirect"):
        assert_failed_once(
            sql_store,
            call_id,
            "download_refused",
            METADATA_NAME,
            "a cloud metadata name",
            "provider.download_hosts",
        )
    for call_id, path in (("ip-redirect", "to-ip"), ("name-redirect", "to-name")):
        redirected = f"(redirected there by {api.base_url}/recordings/{path})"
        assert row(sql_store, call_id).last_error.endswith(redirected)
    # The provider's redirect was followed no further than the check of its target.
    served = [r["path"] for r in api.requests]
    assert served.count("/recordings/to-ip") == 1 and served.count("/recordings/to-name") == 1
    # Nothing connected to the metadata address, and the metadata name was never looked up.
    assert not [address for address in connects if address[0] == METADATA_IP]
    assert METADATA_NAME not in lookups
    assert row(sql_store, "good").state == CallState.UPLOADED
    assert len(siro.created) == 1


def test_file_and_ftp_recording_urls_fail_at_once_naming_the_scheme(
    api: HostileCallLog,
    server: LocalHTTPServer,
    tmp_path: Path,
    sql_store: SqlStore,
    siro: InMemorySiro,
    clock: Clock,
) -> None:
    with CountingListener("127.0.0.1") as ftp:
        offer_url(api, "file", "file:///etc/passwd", minute=1)
        offer_url(api, "ftp", f"ftp://127.0.0.1:{ftp.port}/recording.mp3", minute=2)
        offer_audio(api, "good", minute=3)
        settings = settings_for(server, tmp_path)
        assert poll(settings, sql_store, clock).ok

        worker_for(settings, sql_store, siro, clock).drain()

        assert ftp.connections == 0
    ftp_url = f"ftp://127.0.0.1:{ftp.port}/recording.mp3"
    for call_id, url in (("file", "file:///etc/passwd"), ("ftp", ftp_url)):
        reason = assert_failed_once(sql_store, call_id, "download_refused")
        scheme = url.split(":", 1)[0]
        assert reason == (
            f"refused to fetch {url}: only http and https URLs are fetched, never {scheme}://"
        )
    assert row(sql_store, "good").state == CallState.UPLOADED
    assert len(siro.created) == 1


def test_reasons_name_the_keys_of_the_providers_own_table(
    api: HostileCallLog,
    server: LocalHTTPServer,
    tmp_path: Path,
    sql_store: SqlStore,
    siro: InMemorySiro,
    clock: Clock,
) -> None:
    with CountingListener("127.0.0.2") as other_host:
        api.redirects["/recordings/away"] = f"{other_host.url}/audio.mp3"
        offer_url(api, "direct", f"{other_host.url}/audio.mp3", minute=1)
        offer_url(api, "redirected", f"{api.base_url}/recordings/away", minute=2)
        api.trickles["/recordings/slow"] = 3600
        offer_url(api, "slow", f"{api.base_url}/recordings/slow", minute=3)
        one = settings_for(server, tmp_path, provider={"deadline_seconds": 1.5})
        east = one.provider.model_dump() | {"name": "east"}
        settings = Settings(**(one.model_dump(exclude={"provider"}) | {"providers": [east]}))
        (provider,) = settings.providers
        poll_params = poll_params_from_settings(settings)
        assert poll_once(
            poll_params, GenericProvider(provider, retry=NO_WAIT), sql_store, clock()
        ).ok
        worker = build_worker(
            settings,
            sql_store,
            threading.Event(),
            providers={"east": GenericProvider(provider, retry=NO_WAIT)},
            siro=siro,
        )
        worker.clock = clock
        sync_users(siro, sql_store, clock(), default_region="US")

        worker.drain()

        assert other_host.connections == 0
    for call_id in ("direct", "redirected"):
        assert_failed_once(
            sql_store, call_id, "download_refused", "list it in providers.east.download_hosts"
        )
    slow = row(sql_store, "slow")
    assert (slow.state, slow.error_kind) == (CallState.PENDING, "download_deadline")
    assert "(providers.east.deadline_seconds)" in slow.last_error


# -- a body that never ends ------------------------------------------------------------------


def test_a_trickling_recording_is_cut_at_the_deadline_and_retried_later(
    api: HostileCallLog,
    server: LocalHTTPServer,
    tmp_path: Path,
    sql_store: SqlStore,
    siro: InMemorySiro,
    clock: Clock,
) -> None:
    api.trickles["/recordings/slow"] = 3600
    offer_url(api, "slow", f"{api.base_url}/recordings/slow", minute=1)
    offer_audio(api, "good", minute=2)
    settings = settings_for(server, tmp_path, provider={"deadline_seconds": 1.5})
    assert poll(settings, sql_store, clock).ok
    worker = worker_for(settings, sql_store, siro, clock)

    report = worker.drain()  # an hour of trickling, were it not cut

    call = row(sql_store, "slow")
    assert (call.state, call.error_kind, call.attempts) == (
        CallState.PENDING,
        "download_deadline",
        1,
    )
    assert "did not finish within the total deadline of 1.5 s" in call.last_error
    assert "provider.deadline_seconds" in call.last_error
    assert call.next_attempt_at > clock()
    assert (report.uploaded, report.retried) == (1, 1)
    assert row(sql_store, "good").state == CallState.UPLOADED
    assert list(worker.spool.iterdir()) == []  # no partial file left behind


def test_a_download_outliving_its_lease_is_not_taken_again_by_the_same_worker(
    api: HostileCallLog,
    server: LocalHTTPServer,
    tmp_path: Path,
    sql_store: SqlStore,
    siro: InMemorySiro,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A body slower than the lease: the row's lease runs out while its download still runs,
    # and the worker's next claim finds the row due again. The worker must not start a second
    # download of it into the same spool path.
    api.trickles["/recordings/slow"] = 8
    api.trickle_interval = 1.0
    offer_url(api, "slow", f"{api.base_url}/recordings/slow", minute=1)
    settings = settings_for(
        server,
        tmp_path,
        provider={"deadline_seconds": 30},
        lease_seconds=5,
        concurrency=2,
    )
    real_time = Clock(utcnow())
    assert poll(settings, sql_store, real_time).ok
    worker = worker_for(settings, sql_store, siro, None)
    # The lease heartbeat would keep the row; here it cannot reach the database.
    monkeypatch.setattr(worker, "renew_leases", lambda *_args: None)

    worker.drain()

    assert api.trickle_requests["/recordings/slow"] == 1
    call = row(sql_store, "slow")
    # The body was eight bytes of 0xff: no audio, failed once for that, never downloaded twice.
    assert (call.state, call.error_kind) == (CallState.FAILED, "not_audio"), call.last_error
    events = [(e.step, e.outcome) for e in sql_store.events_for(call.id)]
    # The lease did run out and the row was claimed again, by this same worker...
    assert ("lease", "rescued") in events
    # ...which let the download already running finish alone.
    assert [step for step in events if step[0] == "download"] == [("download", "fail")]
    assert list(worker.spool.iterdir()) == []


# -- a listing page over its cap -------------------------------------------------------------


def test_a_listing_page_over_max_page_bytes_is_an_error_and_the_cursor_stays(
    api: HostileCallLog,
    server: LocalHTTPServer,
    tmp_path: Path,
    sql_store: SqlStore,
    clock: Clock,
) -> None:
    for index in range(40):
        offer_url(api, f"c{index}", f"{api.base_url}/recordings/c{index}", minute=index)
    settings = settings_for(server, tmp_path, provider={"max_page_bytes": 2000})
    retrying = RetryPolicy(max_tries=3, base_delay=0.0, max_delay=0.0)

    report: PollReport = poll(settings, sql_store, clock, retry=retrying)

    assert not report.ok
    assert report.error is not None
    assert "over provider.max_page_bytes = 2000" in report.error
    assert len(api.list_requests()) == 1  # a page too big is not asked for again
    cursor = sql_store.get_cursor(settings.provider.name)
    assert cursor is not None
    assert cursor.cursor_value is None or cursor.cursor_value <= STARTED - timedelta(hours=1)
    assert cursor.last_error is not None and "provider.max_page_bytes" in cursor.last_error
    assert sql_store.find_calls("c0") == []

    # Raised to fit, the same window lists every call.
    bigger = settings_for(server, tmp_path, provider={"max_page_bytes": 1 << 20})
    assert poll(bigger, sql_store, clock).ok
    assert len(sql_store.find_calls("c39")) == 1


# -- the daemon ------------------------------------------------------------------------------


def test_the_daemon_stays_up_uploads_the_good_calls_once_and_fails_the_hostile_ones(
    state_database_url: str, tmp_path: Path
) -> None:
    url = state_database_url
    engine = make_engine(url)
    migrate.upgrade(engine)
    api = HostileCallLog(auth=("bearer", e2e.PROVIDER_TOKEN))
    with (
        LocalHTTPServer(HostileHandler, api) as provider,
        FakeSiro(verify_audio_type=True) as fake_siro,
        CountingListener("127.0.0.2") as other_host,
    ):
        api.base_url = provider.url
        world = e2e.World(
            api=api,
            provider=provider,
            siro=fake_siro,
            database_url=url,
            engine=engine,
            state_dir=tmp_path / "state",
            log_path=tmp_path / "daemon.log",
        )
        good = e2e.offer(world, 3)
        api.redirects["/recordings/to-metadata"] = f"http://{METADATA_NAME}/computeMetadata/v1/"
        hostile = {
            "to-other-host": (f"{other_host.url}/audio.mp3", "127.0.0.2"),
            "to-metadata-ip": (f"http://{METADATA_IP}/latest/meta-data/", METADATA_IP),
            "redirect-to-metadata": (f"{provider.url}/recordings/to-metadata", METADATA_NAME),
            "to-file": ("file:///etc/passwd", "file://"),
        }
        for offset, (call_id, (target, _named)) in enumerate(hostile.items()):
            started = e2e.STARTED + timedelta(minutes=10 + offset)
            api.add_call(quickstart_call(call_id, started, recording_url=target), started)

        daemon = world.start()
        try:
            e2e.wait_for(
                lambda: world.counts()["uploaded"] == 3 and world.counts()["failed"] == 4,
                60,
                "3 uploads and 4 refusals",
                world,
            )
            time.sleep(2)  # a few more poll and work turns: nothing changes, nothing dies
            assert daemon.poll() is None, world.log()[-4000:]
        finally:
            assert e2e.stop(daemon) == 0

        assert other_host.connections == 0
        e2e.assert_each_call_once_in_siro(world, good)
        assert len(fake_siro.state.recordings) == 3
        for call_id, (_target, named) in hostile.items():
            (call,) = world.store.find_calls(call_id)
            assert (call.state, call.error_kind, call.attempts) == (
                CallState.FAILED,
                "download_refused",
                1,
            ), call.last_error
            assert named in call.last_error
            if named != "file://":
                assert "provider.download_hosts" in call.last_error
        assert "Traceback" not in world.log()
        assert e2e.PROVIDER_TOKEN not in world.log()
    engine.dispose()
