"""How backlog progress is shown: a live progress line on a terminal, a summary line a minute
in a log (systemd's journal, a file, a pipe).

The arithmetic is :mod:`poller.core.progress`; the words are :mod:`poller.cli.progress_text`.
The terminal's line is as wide as the terminal: it drops whole fields that do not fit (the outcomes,
then the rate and ETA; the bar takes the room left), and never cuts one mid-word. rich draws
it (:mod:`poller.cli.progress_terminal`), loaded only when there is a terminal to draw on.
"""

from __future__ import annotations

import logging
import sys
from datetime import timedelta
from typing import IO

from poller.cli.output import is_terminal
from poller.cli.progress_text import summary_line
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
        # rich only for a terminal: the daemon under systemd, and each daemon a test starts,
        # never draws the line and need not load it.
        from rich.console import Console

        from poller.cli.progress_terminal import TerminalProgress

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


def log_summary(snapshot: ProgressSnapshot) -> None:
    # The drain's end is logged by whoever drains (the daemon's "work: ..." line, `work`'s
    # totals), so only the running summaries are logged here.
    if not snapshot.finished:
        log.info("%s", summary_line(snapshot))
