"""Backlog progress: how many of the due calls the worker has done, how fast, and until when.

The worker tells a :class:`WorkProgress` when it starts a call, how each call ended and when a
drain is over; :class:`BacklogProgress` turns that into done, total, rate and ETA, and hands a
:class:`ProgressSnapshot` to whoever shows it (a progress line on a terminal, a summary line a
minute in a log) at most once per ``every``. How it is shown is not decided here.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

# The rate is measured over the calls done within this long, so that it follows the backlog's
# current pace (a provider that slows down) rather than its average since the start.
RATE_WINDOW = timedelta(minutes=10)
# No rate (and so no ETA) is given before this much of the backlog has been seen: the first
# call or two say little about the pace.
RATE_AFTER = timedelta(seconds=10)


class WorkProgress(Protocol):
    """What the worker reports as it drains; no-ops unless wired."""

    def call_started(self) -> None: ...

    def call_settled(self, outcome: str) -> None:
        """A call's turn ended: ``outcome`` is uploaded, retry, fail or skip."""
        ...

    def drain_finished(self) -> None: ...


class NoProgress:
    def call_started(self) -> None:
        pass

    def call_settled(self, outcome: str) -> None:
        pass

    def drain_finished(self) -> None:
        pass


@dataclass(frozen=True, slots=True)
class ProgressSnapshot:
    """The backlog as of ``at``: ``done`` of ``total`` calls had their turn since
    ``started_at`` (uploaded, failed, skipped or scheduled to retry)."""

    at: datetime
    started_at: datetime
    done: int
    total: int
    uploaded: int
    failed: int
    retried: int
    skipped: int
    # Calls a minute, over the last RATE_WINDOW; None until RATE_AFTER has passed.
    per_minute: float | None
    # The drain is over: the last snapshot of this backlog.
    finished: bool = False

    @property
    def remaining(self) -> int:
        return max(0, self.total - self.done)

    @property
    def eta(self) -> datetime | None:
        """When the calls due now should all have had their turn, at the current rate."""
        if self.per_minute is None or self.per_minute <= 0:
            return None
        return self.at + timedelta(minutes=self.remaining / self.per_minute)


_OUTCOMES = {"uploaded": "uploaded", "fail": "failed", "retry": "retried", "skip": "skipped"}


class BacklogProgress:
    """Counts the worker's calls into backlog snapshots for ``report``.

    A backlog begins with the first call a drain starts and ends with the drain. Its total is
    what is done, what is in flight and what is still due (``count_due``, asked at most once
    per ``recount_every``, since it is a query). ``report`` gets a snapshot at most every
    ``every`` while the backlog lasts (the first one ``first_after`` it began, by default
    ``every``, so that a backlog of a few seconds logs nothing), and a last one, ``finished``,
    when its drain ends if it had one before. Thread-safe: the worker's threads call it at once.
    """

    def __init__(
        self,
        *,
        count_due: Callable[[datetime], int],
        clock: Callable[[], datetime],
        report: Callable[[ProgressSnapshot], None],
        every: timedelta,
        first_after: timedelta | None = None,
        recount_every: timedelta = timedelta(seconds=10),
    ) -> None:
        self.count_due = count_due
        self.clock = clock
        self.report = report
        self.every = every
        self.first_after = every if first_after is None else first_after
        self.recount_every = recount_every
        self._lock = threading.Lock()
        self._started_at: datetime | None = None  # None while no backlog is under way
        self._in_flight = 0
        self._outcomes: dict[str, int] = {}
        self._done_at: deque[datetime] = deque()
        self._reported_at: datetime | None = None
        self._reported_any = False
        self._counted_at: datetime | None = None
        self._total = 0

    # -- the worker's hook ---------------------------------------------------------------

    def call_started(self) -> None:
        now = self.clock()
        with self._lock:
            if self._started_at is None:
                self._started_at = now
                self._reported_at = now - self.every + self.first_after
                self._outcomes = {}
                self._done_at.clear()
                self._reported_any = False
                self._counted_at = None
                self._total = 0
            self._in_flight += 1
        self._maybe_report(now)

    def call_settled(self, outcome: str) -> None:
        now = self.clock()
        with self._lock:
            if self._started_at is None:
                return
            self._in_flight = max(0, self._in_flight - 1)
            if outcome == "pause":
                return  # given back untouched for a credential pause: still ahead, not done
            name = _OUTCOMES.get(outcome, outcome)
            self._outcomes[name] = self._outcomes.get(name, 0) + 1
            self._done_at.append(now)
        self._maybe_report(now)

    def drain_finished(self) -> None:
        now = self.clock()
        with self._lock:
            if self._started_at is None:
                return
            shown = self._reported_any
            self._counted_at = None  # the last word counts what is left afresh
        snapshot = self.snapshot(now, finished=True) if shown else None
        with self._lock:
            self._started_at = None
            self._in_flight = 0
        if snapshot is not None:
            self.report(snapshot)

    # -- the arithmetic ------------------------------------------------------------------

    def snapshot(self, now: datetime, *, finished: bool = False) -> ProgressSnapshot:
        with self._lock:
            started_at = self._started_at or now
            recount = self._counted_at is None or now - self._counted_at >= self.recount_every
        # The query runs outside the lock: the worker's threads go on meanwhile.
        due = self.count_due(now) if recount else None
        with self._lock:
            done = sum(self._outcomes.values())
            if due is not None:
                self._counted_at = now
                self._total = done + self._in_flight + due
            # New calls may have become due since the count; the total never shows less
            # than what is done and in flight.
            self._total = max(self._total, done + self._in_flight)
            if finished:  # nothing is in flight any more; what is due waits for the next drain
                self._total = done + (due or 0)
            while self._done_at and now - self._done_at[0] > RATE_WINDOW:
                self._done_at.popleft()
            measured = min(now - started_at, RATE_WINDOW)
            per_minute = (
                len(self._done_at) / (measured.total_seconds() / 60)
                if measured >= RATE_AFTER
                else None
            )
            return ProgressSnapshot(
                at=now,
                started_at=started_at,
                done=done,
                total=self._total,
                uploaded=self._outcomes.get("uploaded", 0),
                failed=self._outcomes.get("failed", 0),
                retried=self._outcomes.get("retried", 0),
                skipped=self._outcomes.get("skipped", 0),
                per_minute=per_minute,
                finished=finished,
            )

    def _maybe_report(self, now: datetime) -> None:
        with self._lock:
            if self._reported_at is None or now - self._reported_at < self.every:
                return
            self._reported_at = now
            self._reported_any = True
        self.report(self.snapshot(now))
