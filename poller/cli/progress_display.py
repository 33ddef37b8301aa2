"""How backlog progress is shown: a live progress line on a terminal, a summary line a minute
in a log (systemd's journal, a file, a pipe).

The arithmetic is :mod:`poller.core.progress`; this module only renders its snapshots.
"""

from __future__ import annotations

import logging
import sys
import threading
from datetime import timedelta
from typing import IO

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn

from poller.cli.output import is_terminal
from poller.core.progress import BacklogProgress, ProgressSnapshot
from poller.domain.clock import utcnow
from poller.ports.store import WorkQueue

log = logging.getLogger("poller.progress")

# Under systemd or into a file: one summary line a minute while a backlog lasts.
LOG_EVERY = timedelta(minutes=1)
# On a terminal the line is redrawn as calls finish, at most this often.
TERMINAL_EVERY = timedelta(seconds=0.5)


def backlog_progress(
    store: WorkQueue, *, verbosity: int, stream: IO[str] | None = None
) -> BacklogProgress:
    """The worker's progress hook for this invocation: a progress line when ``stream`` (stderr)
    is a terminal and -q was not given, otherwise summary lines in the log."""
    stream = stream or sys.stderr
    if is_terminal(stream) and verbosity >= 0:
        terminal = TerminalProgress(Console(file=stream, highlight=False))
        return BacklogProgress(
            count_due=store.count_due,
            clock=utcnow,
            report=terminal.report,
            every=TERMINAL_EVERY,
            first_after=timedelta(0),
        )
    return BacklogProgress(
        count_due=store.count_due, clock=utcnow, report=log_summary, every=LOG_EVERY
    )


def summary_line(snapshot: ProgressSnapshot) -> str:
    """``backlog: 240 of 600 done, 4.1 calls/min, ETA 12:40 UTC (220 uploaded, ...)``"""
    return (
        f"backlog: {snapshot.done} of {snapshot.total} done, {pace(snapshot)} "
        f"({snapshot.uploaded} uploaded, {snapshot.failed} failed, "
        f"{snapshot.retried} to retry, {snapshot.skipped} skipped)"
    )


def pace(snapshot: ProgressSnapshot) -> str:
    if snapshot.per_minute is None:
        return "rate not known yet"
    eta = snapshot.eta
    if eta is None:
        return f"{snapshot.per_minute:.1f} calls/min, no ETA"
    # The date too, when the backlog outlasts the day.
    shape = "%H:%M UTC" if eta.date() == snapshot.at.date() else "%Y-%m-%d %H:%M UTC"
    return f"{snapshot.per_minute:.1f} calls/min, ETA {eta.strftime(shape)}"


def log_summary(snapshot: ProgressSnapshot) -> None:
    # The drain's end is logged by whoever drains (the daemon's "work: ..." line, `work`'s
    # totals), so only the running summaries are logged here.
    if not snapshot.finished:
        log.info("%s", summary_line(snapshot))


class TerminalProgress:
    """A rich progress line on stderr while a backlog is drained, log lines printed above it."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._lock = threading.Lock()
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._redirected: list[tuple[logging.StreamHandler[IO[str]], IO[str]]] = []

    def report(self, snapshot: ProgressSnapshot) -> None:
        with self._lock:
            starting = self._progress is None
            if starting:
                if snapshot.finished:
                    return
                self._create()
            assert self._progress is not None and self._task is not None
            self._progress.update(
                self._task,
                completed=snapshot.done,
                total=max(snapshot.total, 1),
                done=snapshot.done,
                of=snapshot.total,
                pace=pace(snapshot),
                counts=f"{snapshot.uploaded} uploaded, {snapshot.failed} failed, "
                f"{snapshot.retried} to retry, {snapshot.skipped} skipped",
            )
            if starting:
                self._start()
            if snapshot.finished:
                self._stop()

    def _create(self) -> None:
        self._progress = Progress(
            TextColumn("backlog"),
            BarColumn(),
            TextColumn("{task.fields[done]} of {task.fields[of]} done"),
            TextColumn("{task.fields[pace]}"),
            TextColumn("{task.fields[counts]}"),
            console=self.console,
            refresh_per_second=4,
        )
        self._task = self._progress.add_task("backlog", total=1, done=0, of=0, pace="", counts="")

    def _start(self) -> None:
        assert self._progress is not None
        self._progress.start()
        # Log lines go through the console, above the line, instead of through it.
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream is self.console.file:
                self._redirected.append((handler, handler.stream))
                handler.setStream(_ConsoleLines(self.console))

    def _stop(self) -> None:
        assert self._progress is not None
        self._progress.stop()
        for handler, stream in self._redirected:
            handler.setStream(stream)
        self._redirected = []
        self._progress = None
        self._task = None


class _ConsoleLines:
    """A text stream whose lines the console prints above its live progress line."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._partial = ""

    def write(self, text: str) -> int:
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        for line in lines:
            self.console.print(line, markup=False, highlight=False, soft_wrap=True)
        return len(text)

    def flush(self) -> None:
        pass
