"""How backlog progress is shown: a live progress line on a terminal, a summary line a minute
in a log (systemd's journal, a file, a pipe).

The arithmetic is :mod:`poller.core.progress`; this module only renders its snapshots. The
terminal's line is as wide as the terminal: it drops whole fields that do not fit (the outcomes,
then the rate and ETA; the bar takes the room left), and never cuts one mid-word.
"""

from __future__ import annotations

import logging
import sys
import threading
from dataclasses import dataclass
from datetime import timedelta
from typing import IO

from rich.console import Console, RenderableType
from rich.progress import Progress, ProgressColumn, Task, TaskID
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

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
    return f"backlog: {done(snapshot)}, {pace(snapshot)} ({outcomes(snapshot)})"


def done(snapshot: ProgressSnapshot) -> str:
    return f"{snapshot.done} of {snapshot.total} done"


def outcomes(snapshot: ProgressSnapshot) -> str:
    return (
        f"{snapshot.uploaded} uploaded, {snapshot.failed} failed, "
        f"{snapshot.retried} to retry, {snapshot.skipped} skipped"
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


# The terminal line: "backlog", the bar, then the fields, two spaces apart.
LABEL = "backlog"
FIELD_GAP = 2
# A bar narrower than this says nothing: it is left out. Wider than BAR_MOST it adds nothing.
BAR_LEAST = 10
BAR_MOST = 40


@dataclass(frozen=True, slots=True)
class FittedLine:
    """What the terminal line shows at a given width: whole fields, and the label and a bar
    when there is room for them (a bar width of 0: no bar)."""

    label: str
    bar_width: int
    fields: tuple[str, ...]

    def text(self) -> str:
        """The line as plain text, the bar drawn as dashes (what the tests measure)."""
        head = [part for part in (self.label, "-" * self.bar_width) if part]
        return " ".join([*head, (" " * FIELD_GAP).join(self.fields)])


def fit_line(snapshot: ProgressSnapshot, width: int) -> FittedLine:
    """The fields of the progress line that fit ``width`` columns, whole, most needed first:
    how many are done (always), then the rate and ETA, then the outcomes; the bar takes what
    room is left. On a terminal too narrow even for the label, the count alone."""
    fields = [done(snapshot)]
    used = len(LABEL) + 1 + len(fields[0])
    if used > width:
        return FittedLine("", 0, tuple(fields))
    for optional in (pace(snapshot), outcomes(snapshot)):
        if used + FIELD_GAP + len(optional) > width:
            break  # a later field never shows without the one before it
        fields.append(optional)
        used += FIELD_GAP + len(optional)
    bar_width = min(BAR_MOST, width - used - 1)
    return FittedLine(LABEL, bar_width if bar_width >= BAR_LEAST else 0, tuple(fields))


class _FittedColumn(ProgressColumn):
    """The whole line as one column, fitted to the console's width at each refresh."""

    def __init__(self, console: Console) -> None:
        super().__init__()
        self.console = console

    def render(self, task: Task) -> RenderableType:
        snapshot: ProgressSnapshot | None = task.fields.get("snapshot")
        if snapshot is None:
            return Text(LABEL)
        line = fit_line(snapshot, self.console.width)
        grid = Table.grid(padding=(0, 1))
        cells: list[RenderableType] = [Text(line.label)] if line.label else []
        if line.bar_width:
            cells.append(
                ProgressBar(
                    total=max(snapshot.total, 1), completed=snapshot.done, width=line.bar_width
                )
            )
        cells.append(Text((" " * FIELD_GAP).join(line.fields), no_wrap=True))
        for _ in cells:
            grid.add_column(no_wrap=True)
        grid.add_row(*cells)
        return grid


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
                snapshot=snapshot,
            )
            if starting:
                self._start()
            if snapshot.finished:
                self._stop()

    def _create(self) -> None:
        self._progress = Progress(
            _FittedColumn(self.console), console=self.console, refresh_per_second=4
        )
        self._task = self._progress.add_task(LABEL, total=1, snapshot=None)

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
