"""The webhook end-to-end contract: what `siro-poller run` does with a native vendor's events.

An event is only a nudge: with a poll every 300 s, a call the vendor's simulator announces, signed
as the vendor signs it, is in Siro seconds later; a forged, unsigned or replayed event is answered
401 and polls nothing; with the events lost, the call still arrives by the poll. A vendor's module
is its world and the contract (the style of ``tests/profile_e2e.py``)::

    class ZoomWorld(VendorWorld):
        kind = "zoom"
        secret = "..."
        def start(self, stack: ExitStack) -> None: ...
        ...

    class TestZoomWebhooks(WebhookContract):
        world = ZoomWorld

The daemon runs as a process with its receiver on a free port, against the vendor's simulator
and the Siro fake, on SQLite and PostgreSQL (the ``state_database_url`` fixture).
"""

from __future__ import annotations

import subprocess
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Self

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from poller.adapters.sql import migrate
from poller.adapters.sql.database import make_engine
from poller.simulators.fresh_calls import VendorEvents, fresh_call
from poller.simulators.siro_server import FakeSiro
from tests.daemon_process import daemon_environment, free_port
from tests.test_daemon_e2e import STARTED_LINE, stop, wait_for

Headers = dict[str, str]
# What must happen within the promise: an announced call in Siro within 15 s.
ANNOUNCED_CALL_LIMIT = 15.0
# A "nothing was polled" check watches the vendor's listing this many times as long as an
# accepted event took, in the same run, to bring the listing request of its nudged poll.
NO_POLL_WATCH_FACTOR = 1.5
PATIENCE = 60.0


class VendorWorld(ABC):
    """One native vendor's simulator, started for a ``with`` block, and what the contract needs
    to know of it."""

    kind: ClassVar[str]
    # provider.webhook.secret; None where the vendor signs with a credential the provider
    # already has (Twilio's Auth Token).
    secret: ClassVar[str | None]
    # The Siro user the calls of :meth:`add_ended_call` belong to (the fresh calls' rep).
    rep_user: ClassVar[str] = "user-1"
    # Seconds the adapter keeps clear of the newest calls whatever the settings say (Aircall's
    # minute): a poll without a nudge lists a call only once it ended that long ago.
    fixed_settle_seconds: ClassVar[float] = 0.0
    # Whether the provider has its own settle_delay_seconds setting (Zoom, RingCentral).
    settle_setting: ClassVar[bool] = False

    def __init__(self) -> None:
        self._stack = ExitStack()

    def __enter__(self) -> Self:
        self.start(self._stack)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._stack.close()

    @abstractmethod
    def start(self, stack: ExitStack) -> None:
        """Start the vendor's simulator servers on ``stack`` and add the rep."""

    @property
    @abstractmethod
    def events(self) -> VendorEvents:
        """The simulator's event side (send_events_to, announce, signed_event...)."""

    @abstractmethod
    def settings(self, receiver_url: str) -> dict[str, str]:
        """The daemon's PROVIDER__* settings for the simulator, beyond the webhook's enabled
        and secret; ``receiver_url`` is where the events are posted."""

    def add_ended_call(self, n: int, *, ended_ago: float = 0.0) -> str:
        """Add a short call of the rep that ended ``ended_ago`` seconds ago with its small
        recording ready; the id the simulator's ``announce`` takes (and Siro's title shows)."""
        return fresh_call(self.events, n, ended_ago=ended_ago)

    @abstractmethod
    def forge(self, headers: Headers, body: bytes) -> tuple[Headers, bytes]:
        """A signed event made to fail verification while keeping its shape: a tampered body
        under an HMAC, or the wrong token for a token vendor."""

    @abstractmethod
    def strip(self, headers: Headers, body: bytes) -> tuple[Headers, bytes]:
        """A signed event without its signature or token."""

    @abstractmethod
    def listings(self) -> int:
        """How many listing requests the simulator has answered so far."""

    def credentials(self) -> list[str]:
        """Secrets that must never reach the daemon's log, besides the webhook secret."""
        return []


@dataclass
class Daemon:
    """One `siro-poller run` process and the Siro fake it uploads to."""

    siro: FakeSiro
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def log(self) -> str:
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def start(self, env: dict[str, str], cwd: Path) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "poller", "run"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=cwd,
            )
        process = self.process
        self.wait_for(
            lambda: STARTED_LINE in self.log() or process.poll() is not None, 30, "the start"
        )
        assert process.poll() is None, self.log()[-4000:]

    def stop(self) -> None:
        if self.process is not None:
            assert stop(self.process) == 0, self.log()[-4000:]
            self.process = None

    def wait_for(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        wait_for(condition, timeout, what, self)  # type: ignore[arg-type]

    def creates(self, call_id: str) -> list[dict[str, object]]:
        """Siro's uploads of ``call_id`` (its id is in the recording's title)."""
        bodies = [r.json for r in self.siro.state.requests_for("create") if r.json]
        return [body for body in bodies if f"[{call_id}]" in str(body.get("title"))]

    def in_siro(self, call_id: str) -> bool:
        with self.siro.state.lock:
            titles = [str(r.get("title")) for r in self.siro.state.recordings.values()]
        return any(f"[{call_id}]" in title for title in titles)


def post(url: str, event: tuple[Headers, bytes]) -> int:
    headers, body = event
    return requests.post(url, data=body, headers=headers, timeout=PATIENCE).status_code


def samples(metrics_url: str, name: str) -> list[tuple[dict[str, str], float]]:
    """The labels and value of each series of ``name`` on the daemon's /metrics."""
    text = requests.get(metrics_url, timeout=PATIENCE).text
    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


def polls_finished(metrics_url: str) -> float:
    """Poll passes the daemon has finished, whatever asked for them and however they ended:
    counted once a pass's last listing request has been answered."""
    return sum(value for _labels, value in samples(metrics_url, "siro_poller_polls_total"))


def webhook_outcomes(metrics_url: str) -> dict[str, float]:
    """Requests to the webhook receiver by outcome (accepted, refused, replayed...)."""
    outcomes: dict[str, float] = {}
    for labels, value in samples(metrics_url, "siro_poller_webhook_requests_total"):
        outcomes[labels["outcome"]] = outcomes.get(labels["outcome"], 0.0) + value
    return outcomes


def wait_for_more(count: Callable[[], int], than: int, what: str, daemon: Daemon) -> float:
    """Seconds until ``count`` exceeds ``than``: finer-grained than :meth:`Daemon.wait_for`, as
    the time measured sizes a watch window."""
    began = time.monotonic()
    while count() <= than:
        if time.monotonic() - began > PATIENCE:
            raise AssertionError(f"no {what}; daemon log:\n{daemon.log()[-6000:]}")
        time.sleep(0.02)
    return time.monotonic() - began


class WebhookContract(ABC):
    """A native vendor's events, run whole by the daemon."""

    world: ClassVar[type[VendorWorld]]

    @pytest.fixture
    def vendor(self) -> Iterator[VendorWorld]:
        with self.world() as world:
            yield world

    def wired(self, vendor: VendorWorld, database_url: str) -> tuple[str, str]:
        """A migrated state database, and where the daemon will take events and serve its
        metrics: the receiver's URL (the vendor's simulator posts there) and the metrics URL."""
        engine = make_engine(database_url)
        migrate.upgrade(engine)
        engine.dispose()
        receiver = f"http://127.0.0.1:{free_port()}/webhooks/{vendor.kind}"
        vendor.events.send_events_to(receiver, vendor.secret)
        return receiver, f"http://127.0.0.1:{free_port()}/metrics"

    def daemon_env(
        self,
        vendor: VendorWorld,
        siro: FakeSiro,
        database_url: str,
        tmp_path: Path,
        receiver: str,
        metrics: str,
        **overrides: str,
    ) -> dict[str, str]:
        port = receiver.split(":")[-1].split("/")[0]
        settings = {
            "METRICS__LISTEN": metrics.removeprefix("http://").removesuffix("/metrics"),
            "POLL__INTERVAL_SECONDS": "300",
            # daemon_environment's quick cycles set it to 0; the default is what a user runs.
            "POLL__SETTLE_DELAY_SECONDS": "120",
            "WORKER__CONCURRENCY": "2",
            "WEBHOOKS__LISTEN": f"127.0.0.1:{port}",
            # One follow-up, due with the debounced poll (2 s by default): an event into an idle
            # daemon is one poll pass, which the contract counts on. The settle-delay follow-up
            # comes two minutes later, after the test.
            "WEBHOOKS__FOLLOW_UP_SECONDS": "[2.0]",
            "PROVIDER__WEBHOOK__ENABLED": "true",
            **vendor.settings(receiver),
        }
        if vendor.secret is not None:
            settings["PROVIDER__WEBHOOK__SECRET"] = vendor.secret
        settings.update(overrides)
        return daemon_environment(
            state_dir=tmp_path / "state",
            database_url=database_url,
            siro=siro,
            start_at=datetime.now(UTC) - timedelta(hours=1),
            settings=settings,
        )

    def test_an_announced_call_reaches_siro_within_15_seconds_and_bad_events_poll_nothing(
        self, vendor: VendorWorld, state_database_url: str, tmp_path: Path
    ) -> None:
        receiver, metrics = self.wired(vendor, state_database_url)
        with FakeSiro(verify_audio_type=True) as siro:
            daemon = Daemon(siro, tmp_path / "daemon.log")
            env = self.daemon_env(vendor, siro, state_database_url, tmp_path, receiver, metrics)
            daemon.start(env, tmp_path)
            try:
                # The simulator's count first: the daemon's metrics are read once it moved.
                daemon.wait_for(
                    lambda: vendor.listings() >= 1 and polls_finished(metrics) >= 1,
                    PATIENCE,
                    "the first poll",
                )

                # An event the test posts itself, into a daemon with nothing planned: exactly
                # one nudged poll pass (the follow-up is due with the debounced poll), after
                # which nothing is planned before the settle-delay follow-up, minutes away.
                call_b = vendor.add_ended_call(2)
                event_b = vendor.events.signed_event(call_b)
                listed = vendor.listings()
                assert post(receiver, event_b) == 200
                nudge_took = wait_for_more(vendor.listings, listed, "nudged listing", daemon)
                daemon.wait_for(
                    lambda: daemon.in_siro(call_b) and polls_finished(metrics) >= 2,
                    PATIENCE,
                    "the posted event's call",
                )
                assert polls_finished(metrics) == 2, "an event into an idle daemon: one poll pass"

                # Every refusal in one watch: a forged and an unsigned event of a call not yet
                # polled, and event_b again. One that slipped through would take event_b's path
                # (the debounce, then a nudged poll that lists first), so the watch is that
                # path's time, measured just now under this machine's load, and half again.
                listed = vendor.listings()
                call_a = vendor.add_ended_call(1)
                signed = vendor.events.signed_event(call_a)
                assert post(receiver, vendor.forge(*signed)) == 401
                assert post(receiver, vendor.strip(*signed)) == 401
                assert post(receiver, event_b) == 401, "a replayed event was accepted"
                time.sleep(NO_POLL_WATCH_FACTOR * nudge_took)
                assert vendor.listings() == listed, "a refused or replayed event caused a poll"
                assert not daemon.in_siro(call_a)
                assert webhook_outcomes(metrics) == {"accepted": 1, "refused": 2, "replayed": 1}

                announced = time.monotonic()
                statuses = vendor.events.announce(call_a)
                assert statuses and all(status == 200 for status in statuses), statuses
                daemon.wait_for(
                    lambda: daemon.in_siro(call_a), ANNOUNCED_CALL_LIMIT, "the announced call"
                )
                took = time.monotonic() - announced
                backend = state_database_url.split(":", 1)[0].split("+", 1)[0]
                print(
                    f"\n{vendor.kind} on {backend}: announced call in Siro after {took:.1f} s "
                    f"(a nudged listing {nudge_took:.2f} s after its event)"
                )
            finally:
                daemon.stop()

            for call_id in (call_a, call_b):
                (body,) = daemon.creates(call_id)
                assert body["userId"] == vendor.rep_user
            text = daemon.log()
        for secret in [vendor.secret, *vendor.credentials()]:
            assert secret is None or secret not in text

    def test_with_events_dropped_the_call_still_arrives_by_the_poll(
        self, vendor: VendorWorld, tmp_path: Path
    ) -> None:
        """A lost event costs latency, never a call.

        The poll runs every second with settle delays of 0 here: it is the same poll path a
        300 s interval runs, and waiting 300 s in CI is not affordable. (SQLite only, to keep
        CI short; the poll path on PostgreSQL is the other test's and every daemon test's.)
        """
        database_url = f"sqlite:///{tmp_path / 'state.sqlite3'}"
        receiver, metrics = self.wired(vendor, database_url)
        vendor.events.drop_events = True
        with FakeSiro(verify_audio_type=True) as siro:
            daemon = Daemon(siro, tmp_path / "daemon.log")
            env = self.daemon_env(
                vendor,
                siro,
                database_url,
                tmp_path,
                receiver,
                metrics,
                POLL__INTERVAL_SECONDS="1",
                POLL__SETTLE_DELAY_SECONDS="0",
                **({"PROVIDER__SETTLE_DELAY_SECONDS": "0"} if vendor.settle_setting else {}),
            )
            daemon.start(env, tmp_path)
            try:
                call = vendor.add_ended_call(1, ended_ago=vendor.fixed_settle_seconds)
                assert vendor.events.announce(call) == []
                daemon.wait_for(lambda: daemon.in_siro(call), PATIENCE, "the polled call")
                assert webhook_outcomes(metrics).get("accepted", 0) == 0
            finally:
                daemon.stop()
            assert len(daemon.creates(call)) == 1
        assert vendor.events.events_sent == []
