"""Polling the providers: each provider's cycle behind its poll lock, one poll of a provider at
a time whichever job asks (the interval job, or a nudge's), and a nudge that finds a poll under
way asking it for one more pass, nudged."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Protocol

from poller.core.nudges import timer_key
from poller.core.poll import PollCycle
from poller.core.poll_report import PollReport
from poller.domain.ingest import IngestAction
from poller.ports.poll_lock import PollLock
from poller.ports.telemetry import Telemetry

log = logging.getLogger(__name__)


class JobTracker(Protocol):
    """Where a job's runs are noted, for the watchdog."""

    def started(self, job: str) -> None: ...

    def finished(self, job: str) -> None: ...


class LockedPollCycle:
    """A provider's poll cycle that runs only while this process holds that provider's poll
    lock; otherwise it stands by (returns ``None``) and tries again at the next interval."""

    def __init__(self, provider: str, cycle: Callable[[], PollReport], lock: PollLock) -> None:
        self.provider = provider
        self.cycle = cycle
        self.lock = lock
        self.holding: bool | None = None  # as of the last try, to log only the changes

    def __call__(self, *, reach_now: bool = False) -> PollReport | None:
        """One cycle, or ``None`` while another process holds the lock. ``reach_now``: a
        nudged cycle, where the cycle can list up to now (a :class:`PollCycle`)."""
        try:
            holding = self.lock.try_acquire()
        except Exception:
            log.exception(
                "%s: could not take the poll lock; trying again next interval", self.provider
            )
            holding = False
        if holding != self.holding:
            if holding:
                log.info("%s: this process polls it now (it holds the poll lock)", self.provider)
            else:
                log.info("%s: another process polls it; this one stands by", self.provider)
            self.holding = holding
        if not holding:
            return None
        if reach_now and isinstance(self.cycle, PollCycle):
            return self.cycle(reach_now=True)
        return self.cycle()

    def release(self) -> None:
        try:
            self.lock.release()
        except Exception:
            log.exception("%s: could not give the poll lock back", self.provider)


class ProviderPolls:
    """The daemon's poll cycles, by provider."""

    def __init__(
        self,
        poll_cycles: Sequence[Callable[[], PollReport | None]],
        *,
        telemetry: Telemetry,
        wake_work: Callable[[], None],
        health: JobTracker,
        polls: bool,
        stop: threading.Event,
    ) -> None:
        self.poll_cycles = poll_cycles
        self.telemetry = telemetry
        self.wake_work = wake_work
        self.health = health
        self.polls = polls
        self.stop = stop
        self.cycles = {
            cycle.provider: cycle for cycle in poll_cycles if isinstance(cycle, LockedPollCycle)
        }
        self._polling = {name: threading.Lock() for name in self.cycles}
        self._poll_again = {name: threading.Event() for name in self.cycles}

    @property
    def providers(self) -> tuple[str, ...]:
        return tuple(self.cycles)

    def poll_all(self) -> None:
        """One cycle for each provider in turn; one provider's failure never skips the next."""
        for poll_cycle in self.poll_cycles:
            if isinstance(poll_cycle, LockedPollCycle):
                # A provider being polled already (nudged) is skipped: that poll is as new.
                self._poll_one(poll_cycle, reach_now=False)
            else:
                self._run_cycle(poll_cycle)

    def poll_provider(self, provider: str, reach_now: bool = True) -> bool:
        """Poll ``provider`` now, in this thread (a nudge's job): nudged with ``reach_now``.
        Whether this process polls it; one that does not (another holds its poll lock, or
        this one only works) ignores the nudge."""
        cycle = self.cycles.get(provider)
        if cycle is None or not self.polls or self.stop.is_set():
            log.debug("%s: not polled by this process; a nudge is ignored", provider)
            return False
        polled = self._poll_one(cycle, reach_now=reach_now, job=timer_key(provider))
        if not polled:
            log.debug("%s: another process holds its poll lock; a nudge is ignored", provider)
        return polled

    def _poll_one(self, cycle: LockedPollCycle, *, reach_now: bool, job: str | None = None) -> bool:
        """Run ``cycle`` unless a poll of its provider is under way; a nudge then marks that
        poll to run once more, nudged, as soon as it ends. Whether this process polls it."""
        busy = self._polling[cycle.provider]
        again = self._poll_again[cycle.provider]
        while True:
            if not busy.acquire(blocking=False):
                if reach_now:
                    again.set()
                return True
            try:
                again.clear()
                if job is not None:
                    self.health.started(job)
                try:
                    polled = self._run_cycle(cycle, reach_now=reach_now)
                finally:
                    if job is not None:
                        self.health.finished(job)
            finally:
                busy.release()
            # A nudge that came during the poll: its call may have come after the listing.
            if not polled or not again.is_set():
                return polled
            reach_now = True

    def _run_cycle(
        self, poll_cycle: Callable[[], PollReport | None], *, reach_now: bool = False
    ) -> bool:
        """One cycle, its failures logged; whether it ran (``False``: another process polls)."""
        try:
            if isinstance(poll_cycle, LockedPollCycle):
                report = poll_cycle(reach_now=reach_now)
            else:
                report = poll_cycle()
            if report is None:  # another process polls this provider
                return False
            self.telemetry.poll_finished(ok=report.ok, listed=report.listed)
            if brought_work(report):
                self.wake_work()
        except Exception:
            self.telemetry.poll_finished(ok=False, listed=0)
            # The cycle records its own failures on poll_cursors; this is the last
            # resort that keeps an unforeseen error from silently ending the schedule.
            log.exception("poll job failed")
        return True

    def release_locks(self) -> None:
        for cycle in self.cycles.values():
            cycle.release()


def brought_work(report: PollReport) -> bool:
    """Whether a poll cycle put calls in the queue that may be due now."""
    counts = report.counts
    return bool(
        counts[IngestAction.INSERTED.value]
        or counts[IngestAction.BECAME_DUE.value]
        or report.remapped
    )
