"""A refused credential pauses the work instead of failing calls, and the work resumes by itself.

The worker runs on every store backend against the in-memory Siro and provider: whichever step
Siro refuses the credentials on (the token mint, the PUT, the create) or the provider refuses
them on (the download), every row stays as it was, no attempt is spent, the pause is recorded
for every process to see, and the work goes on once the credentials work again.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from poller.adapters.providers.memory import InMemoryProvider, InMemoryRecordings
from poller.adapters.siro_fake import InMemorySiro
from poller.app import build_worker
from poller.config import Settings
from poller.core.daemon import Daemon
from poller.core.poll import poll_once
from poller.core.poll_report import PollParams
from poller.core.users_sync import sync_users
from poller.core.worker import Worker
from poller.domain.call_record import DownloadRequest, RecordingLocator
from poller.domain.pauses import SIRO, provider_scope
from poller.domain.siro import SiroUser
from poller.domain.states import CallState
from poller.ports.provider import ProviderAuthError
from poller.ports.siro import SiroCredentialError
from poller.simulators.audio import mp3_bytes
from poller.simulators.provider_server import quickstart_call
from poller.wiring import daemon_params_from_settings
from tests.seed import AnyStore

STARTED = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
NOW = STARTED + timedelta(hours=1)
MINT_REFUSED = "Siro mint-token: HTTP 401 from POST /v1/core/oauth/apps/app-1/access-token"
REASON = f"{MINT_REFUSED}; check siro.client_id, siro.client_secret and siro.token_user_id"


@dataclass
class RefusingProvider(InMemoryProvider):
    """A phone system that can refuse its credentials when asked for a recording."""

    refusing: bool = False

    def resolve_download(self, call: RecordingLocator) -> DownloadRequest:
        if self.refusing:
            raise ProviderAuthError(
                "HTTP 401 from GET /recordings: the provider refused the credentials; check "
                "provider.auth and its keys",
                status=401,
            )
        return super().resolve_download(call)


class World:
    def __init__(self, store: AnyStore, tmp_path: Path) -> None:
        self.store = store
        self.now = NOW
        self.providers = {name: RefusingProvider(name=name) for name in ("memory", "other")}
        self.recordings = InMemoryRecordings()
        self.siro = InMemorySiro(
            clock=self.clock, users=[SiroUser(id="user-1", email="rep@yourcompany.com")]
        )
        self.settings = Settings(
            state_dir=tmp_path / "state",
            provider={"name": "memory"},
            worker={"concurrency": 4, "credential_probe_seconds": 60},
        )

    def clock(self) -> datetime:
        return self.now

    def offer(self, call_id: str, minute: int, provider: str = "memory") -> None:
        url = f"https://media.example.com/{call_id}.mp3"
        at = STARTED + timedelta(minutes=minute)
        self.providers[provider].add(quickstart_call(call_id, at, recording_url=url), at)
        self.recordings.add(url, mp3_bytes(1))

    def poll(self, provider: str = "memory") -> None:
        params = PollParams(
            provider_key=provider, start_at=STARTED - timedelta(hours=1), settle_delay=timedelta(0)
        )
        poll_once(params, self.providers[provider], self.store, self.now)

    def worker(self) -> Worker:
        worker = build_worker(
            self.settings,
            self.store,
            threading.Event(),
            providers=dict(self.providers),
            siro=self.siro,
            downloader=self.recordings,
        )
        worker.clock = self.clock
        sync_users(self.siro, self.store, self.now, default_region="US")
        return worker

    def calls(self, provider: str | None = None) -> list:  # type: ignore[type-arg]
        return [c for c in self.store.list_calls() if provider in (None, c.provider)]


@pytest.fixture
def world(any_store: AnyStore, tmp_path: Path) -> World:
    return World(any_store, tmp_path)


@pytest.mark.parametrize(
    ("method", "step", "status"),
    [
        ("request_upload", "mint-token", 401),
        ("put_audio", "put", 403),
        ("create_recording", "create", 403),
    ],
)
def test_siro_refusing_the_credentials_fails_no_call_and_spends_no_attempt(
    world: World, method: str, step: str, status: int
) -> None:
    for n in range(3):
        world.offer(f"call-{n}", n)
    world.poll()
    for _ in range(3):  # one refusal for each of the rows in flight at once
        world.siro.fail_next(method, SiroCredentialError(REASON, step=step, http_status=status))
    worker = world.worker()

    report = worker.drain()

    assert (report.failed, report.retried, report.uploaded, report.given_back) == (0, 0, 0, 3)
    assert [p.scope for p in report.paused] == [SIRO]
    for call in world.calls():
        # The download was real progress and stays; nothing else about the row changed.
        assert call.state is CallState.DOWNLOADED
        assert (call.attempts, call.error_kind, call.last_error) == (0, None, None)
        assert call.lease_owner is None and call.siro_create_sent_at is None
        assert call.spool_path is not None and Path(call.spool_path).is_file()
        event = world.store.events_for(call.id)[-1]
        assert (event.outcome, event.http_status) == ("paused", status)
    (pause,) = world.store.pauses()
    assert (pause.scope, pause.reason, pause.since) == (SIRO, REASON, NOW)
    assert world.siro.created == []

    # While paused nothing is claimed, and Siro is not asked again before the probe is due.
    world.offer("call-late", 9)
    world.poll()
    calls_before = list(world.siro.calls)
    assert worker.drain().processed == 0
    assert world.siro.calls == calls_before
    assert world.store.find_calls("call-late")[0].attempts == 0

    # A minute on, the probe mints afresh; still refused, the pause goes on.
    world.now += timedelta(seconds=61)
    world.siro.fail_next("verify_credentials", SiroCredentialError(REASON, step="mint-token"))
    assert [p.scope for p in worker.drain().paused] == [SIRO]
    assert world.store.pauses()[0].last_probe_at == world.now
    assert {c.attempts for c in world.calls()} == {0}

    # Fixed: the next probe succeeds, the pause ends and every call goes up once.
    world.now += timedelta(seconds=61)
    resumed = worker.drain()

    assert (resumed.uploaded, resumed.paused) == (4, ())
    assert world.store.pauses() == []
    assert {c.state for c in world.calls()} == {CallState.UPLOADED}
    assert {c.attempts for c in world.calls()} == {1}  # only the real upload counted
    assert len(world.siro.created) == 4


def test_a_pause_recorded_by_another_process_holds_this_worker_back(world: World) -> None:
    world.offer("call-1", 1)
    world.poll()
    world.store.record_pause(SIRO, REASON, NOW)

    report = world.worker().drain()

    assert (report.processed, [p.scope for p in report.paused]) == (0, [SIRO])
    (call,) = world.calls()
    assert (call.state, call.attempts) == (CallState.PENDING, 0)
    assert "verify_credentials" not in world.siro.calls  # the probe is not due yet


def test_a_provider_refusing_the_download_holds_back_only_its_own_calls(world: World) -> None:
    for n in range(3):
        world.offer(f"mem-{n}", n, "memory")
        world.offer(f"oth-{n}", n, "other")
    world.poll("memory")
    world.poll("other")
    world.providers["memory"].refusing = True
    worker = world.worker()

    first = worker.drain()
    second = worker.drain()

    assert first.failed == second.failed == 0
    assert [p.scope for p in second.paused] == [provider_scope("memory")]
    assert {c.state for c in world.calls("other")} == {CallState.UPLOADED}
    held = world.calls("memory")
    assert {(c.state, c.attempts, c.error_kind) for c in held} == {(CallState.PENDING, 0, None)}
    (pause,) = world.store.pauses()
    assert "provider.auth" in pause.reason

    # The credentials fixed, the next listing that succeeds ends the pause.
    world.providers["memory"].refusing = False
    world.poll("memory")
    assert world.store.pauses() == []
    worker.drain()
    assert {(c.state, c.attempts) for c in world.calls()} == {(CallState.UPLOADED, 1)}


def test_a_listing_refused_for_its_credentials_pauses_the_provider_until_one_succeeds(
    world: World,
) -> None:
    world.offer("mem-1", 1, "memory")
    world.offer("oth-1", 1, "other")
    world.poll("memory")
    world.poll("other")
    refusal = ProviderAuthError(
        "HTTP 401: the provider refused the credentials; check provider.auth", status=401
    )
    world.providers["memory"].failures.append(refusal)
    world.poll("memory")
    (pause,) = world.store.pauses()
    assert pause.scope == provider_scope("memory") and "check provider.auth" in pause.reason

    world.worker().drain()
    assert [c.state for c in world.calls("other")] == [CallState.UPLOADED]
    assert [(c.state, c.attempts) for c in world.calls("memory")] == [(CallState.PENDING, 0)]

    world.poll("memory")
    assert world.store.pauses() == []


def test_the_daemon_says_once_a_minute_why_work_waits(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    world.offer("call-1", 1)
    world.poll()
    world.store.record_pause(SIRO, REASON, NOW - timedelta(minutes=5))
    daemon = Daemon(
        daemon_params_from_settings(world.settings),
        store=world.store,
        poll_cycles=[],
        worker=world.worker(),
        stop=threading.Event(),
    )
    with caplog.at_level("WARNING"):
        daemon.remind_pauses(NOW)
        daemon.remind_pauses(NOW + timedelta(seconds=30))  # not per call, not per loop
        daemon.remind_pauses(NOW + timedelta(seconds=61))
    reminders = [r.getMessage() for r in caplog.records if "credential pause (siro)" in r.message]
    assert len(reminders) == 2
    assert "for 5m" in reminders[0] and REASON in reminders[0] and "1 call(s) wait" in reminders[0]
