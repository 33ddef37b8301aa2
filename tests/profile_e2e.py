"""The daemon end-to-end contract: what `siro-poller run` must do against any profiled vendor.

A vendor's e2e module fills in a small world and keeps only its own checks (the style of
``tests/provider_contract.py``)::

    class TestSalesloft(DaemonProfileContract[SalesloftSimulator]):
        kind = "salesloft"
        skipped = 1

        def simulator(self) -> AbstractContextManager[SalesloftSimulator]: ...
        def settings(self, sim: SalesloftSimulator) -> dict[str, str]: ...
        def seed(self, sim: SalesloftSimulator) -> dict[str, Expected]: ...
        def check(self, sim: SalesloftSimulator, run: DaemonRun) -> None: ...

The suite starts the vendor's simulator and the Siro fake, migrates the state database (SQLite
and PostgreSQL, through the ``state_database_url`` fixture), runs the real daemon as a process
with a page size of two and two workers, waits for every seeded call to be settled, stops the
daemon cleanly, and asserts each call reached Siro once, with its rep and contact, and that no
secret reached the log.
"""

from __future__ import annotations

import subprocess
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar, Generic, TypeVar

import pytest

from poller.adapters.sql import migrate
from poller.adapters.sql.database import make_engine
from poller.adapters.sql.store import SqlStore
from poller.simulators.siro_server import FakeSiro
from tests.daemon_process import daemon_environment
from tests.test_daemon_e2e import STARTED_LINE, stop, wait_for

# Whole minutes: some vendors (CallRail, Quo) filter their listing to the minute.
STARTED = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=3)

S = TypeVar("S")


@dataclass(frozen=True)
class Expected:
    """Where one seeded call must land in Siro."""

    user: str
    # What the recording's contactPhone must end with; None where the vendor names no contact.
    contact: str | None = None


@dataclass
class DaemonRun:
    """Siro and the state database one daemon process works against, and its log."""

    siro: FakeSiro
    database_url: str
    state_dir: Path
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def counts(self) -> dict[str, int]:
        engine = make_engine(self.database_url)
        try:
            return SqlStore(engine).status(datetime.now(UTC)).counts
        finally:
            engine.dispose()

    def wait_for(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        wait_for(condition, timeout, what, self)  # type: ignore[arg-type]


@dataclass
class DaemonWorld(Generic[S]):
    sim: S
    run: DaemonRun


class DaemonProfileContract(ABC, Generic[S]):
    """One vendor's profile, run whole by the daemon on both databases."""

    # Seeded calls the daemon must skip (missed, unanswered, not recorded).
    skipped: ClassVar[int] = 0
    # Seeded calls still waiting for their recording when first listed; :meth:`while_running`
    # makes them available and waits for their uploads.
    pending: ClassVar[int] = 0

    @abstractmethod
    def simulator(self) -> AbstractContextManager[S]:
        """The vendor's simulator, started."""

    @abstractmethod
    def settings(self, sim: S) -> dict[str, str]:
        """The daemon's PROVIDER__* (and any vendor-specific) settings, without the page size
        and worker count the suite sets."""

    @abstractmethod
    def secrets(self, sim: S) -> list[str]:
        """Every credential the settings carry: none may appear in the daemon's log."""

    @abstractmethod
    def seed(self, sim: S) -> dict[str, Expected]:
        """Seed the vendor's calls; the uploads expected, by the id in the recording's title."""

    def while_running(self, sim: S, run: DaemonRun) -> None:
        """What happens at the vendor after the first settled state (e.g. a late recording)."""

    def check(self, sim: S, run: DaemonRun) -> None:
        """The vendor's own assertions, after the daemon stopped."""

    @pytest.fixture
    def world(self, state_database_url: str, tmp_path: Path) -> Iterator[DaemonWorld[S]]:
        engine = make_engine(state_database_url)
        migrate.upgrade(engine)
        engine.dispose()
        with self.simulator() as sim, FakeSiro(verify_audio_type=True) as siro:
            run = DaemonRun(siro, state_database_url, tmp_path / "state", tmp_path / "daemon.log")
            yield DaemonWorld(sim, run)

    def env(self, sim: S, run: DaemonRun) -> dict[str, str]:
        return daemon_environment(
            state_dir=run.state_dir,
            database_url=run.database_url,
            siro=run.siro,
            start_at=STARTED - timedelta(minutes=5),
            # A page of two: the listing must walk the vendor's paging to its end.
            settings={"PROVIDER__PAGE_SIZE": "2", "WORKER__CONCURRENCY": "2"} | self.settings(sim),
        )

    def test_every_call_reaches_siro_once_with_its_rep_and_contact(
        self, world: DaemonWorld[S]
    ) -> None:
        sim, run = world.sim, world.run
        expected = self.seed(sim)
        uploads = len(expected)
        env = self.env(sim, run)
        log = run.log_path.open("ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "poller", "run"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=run.state_dir.parent,
        )
        try:
            run.wait_for(
                lambda: STARTED_LINE in run.log() or process.poll() is not None,
                30,
                "the daemon to start",
            )

            def settled() -> bool:
                counts = run.counts()
                return (
                    counts.get("uploaded", 0) == uploads
                    and counts.get("skipped", 0) == self.skipped
                    and (not self.pending or counts.get("pending", 0) == self.pending)
                )

            run.wait_for(
                settled,
                60,
                f"{uploads} uploads, {self.skipped} skipped, {self.pending} pending",
            )
            self.while_running(sim, run)
        finally:
            assert stop(process) == 0
            log.close()

        with run.siro.state.lock:
            recordings = list(run.siro.state.recordings.values())
        assert len(recordings) == uploads + self.pending
        creates = [r.json for r in run.siro.state.requests_for("create") if r.json]
        for call_id, want in expected.items():
            [body] = [b for b in creates if f"[{call_id}]" in b["title"]]
            assert body["userId"] == want.user
            if want.contact is not None:
                assert body["contactPhone"].endswith(want.contact)
        text = run.log()
        for secret in self.secrets(sim):
            assert secret not in text
        self.check(sim, run)
