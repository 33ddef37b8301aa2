"""The live progress line on a terminal, drawn with rich: loaded only when stderr is one.

What the line holds, and which fields fit, is :func:`poller.cli.progress_text.fit_line`.
"""

from __future__ import annotations

import logging
import threading
from typing import IO

from rich.console import Console, RenderableType
from rich.progress import Progress, ProgressColumn, Task, TaskID
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from poller.cli.progress_text import FIELD_GAP, LABEL, fit_line
from poller.core.progress import ProgressSnapshot


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
