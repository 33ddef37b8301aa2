"""Backlog progress: done, total, rate and ETA; a summary line a minute in a log, a progress
line on a terminal, and one log line per call no more."""

from __future__ import annotations

import dataclasses
import io
import logging
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console
from sqlalchemy import Engine

from poller.adapters.memory_store import MemoryStore
from poller.adapters.siro_fake import InMemorySiro
from poller.cli import main
from poller.cli.progress_display import log_summary
from poller.cli.progress_terminal import TerminalProgress
from poller.cli.progress_text import fit_line, summary_line
from poller.core.progress import BacklogProgress, ProgressSnapshot
from poller.domain.clock import utcnow
from poller.domain.siro import SiroUser
from poller.simulators.audio import LOGIN_PAGE, mp3_bytes
from poller.simulators.http_server import LocalHTTPServer
from poller.simulators.provider_server import FakeCallLog, quickstart_call, serve
from poller.simulators.siro_server import FakeSiro
from tests.conftest import database_url
from tests.daemon_process import env_text
from tests.terminal import run_on_terminal
from tests.test_worker import Clock, poll, settings_for, worker_for

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


class TickingClock:
    """Each reading is ``step`` later than the one before: time passes as the code looks."""

    def __init__(self, start: datetime, step: timedelta) -> None:
        self.now = start - step
        self.step = step

    def __call__(self) -> datetime:
        self.now += self.step
        return self.now


# -- the arithmetic ------------------------------------------------------------------------


def test_done_total_rate_and_eta_of_a_backlog() -> None:
    clock = Clock(T0)
    due = [600]
    reports: list[ProgressSnapshot] = []
    progress = BacklogProgress(
        count_due=lambda now: due[0],
        clock=clock,
        report=reports.append,
        every=timedelta(minutes=1),
    )
    for _minute in range(3):
        for _call in range(4):
            progress.call_started()
            due[0] -= 1
            clock.advance(seconds=15)
            progress.call_settled("uploaded")
    progress.call_started()  # one in flight when the third minute's summary is taken
    due[0] -= 1
    clock.advance(seconds=1)
    progress.call_settled("fail")

    assert [r.done for r in reports] == [4, 8, 12]  # one a minute, not one a call
    third = reports[-1]
    assert third.total == 600  # done + in flight + still due
    assert third.per_minute == pytest.approx(4.0)
    assert third.eta == T0 + timedelta(minutes=3) + timedelta(minutes=588 / 4)
    assert summary_line(third) == (
        "backlog: 12 of 600 done, 4.0 calls/min, ETA 14:30 UTC "
        "(12 uploaded, 0 failed, 0 to retry, 0 skipped)"
    )
    slower = dataclasses.replace(third, per_minute=0.5)  # past midnight: the date too
    assert "0.5 calls/min, ETA 2026-11-25 07:39 UTC" in summary_line(slower)

    progress.drain_finished()
    last = reports[-1]
    assert last.finished and last.done == 13 and last.failed == 1
    assert last.total == 13 + 587  # what is still due waits for the next drain


def test_a_short_backlog_reports_nothing_and_the_next_one_starts_afresh() -> None:
    clock = Clock(T0)
    reports: list[ProgressSnapshot] = []
    progress = BacklogProgress(
        count_due=lambda now: 0, clock=clock, report=reports.append, every=timedelta(minutes=1)
    )
    progress.call_started()
    clock.advance(seconds=20)
    progress.call_settled("uploaded")
    progress.drain_finished()
    assert reports == []

    clock.advance(hours=1)
    for _call in range(3):
        progress.call_started()
        clock.advance(seconds=30)
        progress.call_settled("skip")
    (report,) = reports
    assert (report.done, report.skipped, report.uploaded) == (2, 2, 0)
    assert report.started_at == T0 + timedelta(hours=1, seconds=20)


def test_no_rate_is_claimed_from_the_first_seconds() -> None:
    clock = Clock(T0)
    progress = BacklogProgress(
        count_due=lambda now: 10, clock=clock, report=lambda s: None, every=timedelta(0)
    )
    progress.call_started()
    clock.advance(seconds=2)
    progress.call_settled("uploaded")
    snapshot = progress.snapshot(clock())
    assert snapshot.per_minute is None and snapshot.eta is None
    assert "rate not known yet" in summary_line(snapshot)


# -- the worker, in a log ------------------------------------------------------------------


@pytest.fixture
def api() -> FakeCallLog:
    return FakeCallLog(auth=("bearer", "provider-token-123"))


@pytest.fixture
def server(api: FakeCallLog) -> Iterator[LocalHTTPServer]:
    with serve(api) as running:
        api.base_url = running.url
        yield running


def offer(api: FakeCallLog, count: int, *, bad: int = 0) -> None:
    started = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
    for index in range(count):
        call_id = f"call-{index:03d}"
        body = LOGIN_PAGE if index < bad else mp3_bytes()
        path = api.add_recording(f"/recordings/{call_id}", body)
        at = started + timedelta(seconds=index)
        api.add_call(quickstart_call(call_id, at, recording_url=f"{api.base_url}{path}"), at)


def test_a_backlog_logs_a_summary_a_minute_instead_of_a_line_a_call(
    api: FakeCallLog, server: LocalHTTPServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    offer(api, 12, bad=2)
    # Leases outlast the progress clock's four minutes, as they outlast a call in real time.
    settings = settings_for(server, tmp_path, concurrency=1, lease_seconds=3600)
    store = MemoryStore()
    clock = Clock(datetime(2026, 11, 23, 15, 0, tzinfo=UTC))
    siro = InMemorySiro(clock=clock, users=[SiroUser(id="u-9", email="m@yourcompany.com")])
    poll(settings, store, clock)
    worker = worker_for(settings, store, siro, clock)
    # Each call takes 20 s of the progress clock: a start and an end, 10 s apart each.
    worker.progress = BacklogProgress(
        count_due=store.count_due,
        clock=TickingClock(clock(), timedelta(seconds=10)),
        report=log_summary,
        every=timedelta(minutes=1),
    )
    caplog.clear()

    report = worker.drain()

    assert (report.uploaded, report.failed) == (10, 2)
    summaries = [r.getMessage() for r in caplog.records if r.name == "poller.progress"]
    assert summaries == [
        "backlog: 3 of 12 done, 3.0 calls/min, ETA 15:04 UTC "
        "(1 uploaded, 2 failed, 0 to retry, 0 skipped)",
        "backlog: 6 of 12 done, 3.0 calls/min, ETA 15:04 UTC "
        "(4 uploaded, 2 failed, 0 to retry, 0 skipped)",
        "backlog: 9 of 12 done, 3.0 calls/min, ETA 15:04 UTC "
        "(7 uploaded, 2 failed, 0 to retry, 0 skipped)",
    ]
    # Failures keep their own line with their reason; successes have none at INFO.
    per_call = [r for r in caplog.records if r.name == "poller.core.worker"]
    assert [r.levelno for r in per_call] == [logging.ERROR, logging.ERROR]
    assert all("not_audio" in r.getMessage() for r in per_call)


# -- the CLI: a terminal, -v and -q --------------------------------------------------------


STARTED = utcnow().replace(microsecond=0) - timedelta(hours=1)


@pytest.fixture
def five_calls(api: FakeCallLog, server: LocalHTTPServer) -> FakeCallLog:
    for index in range(5):
        call_id = f"w-{index}"
        path = api.add_recording(f"/recordings/{call_id}", mp3_bytes())
        at = STARTED + timedelta(minutes=index)
        api.add_call(quickstart_call(call_id, at, recording_url=server.url + path), at)
    return api


@pytest.fixture
def cli_env(
    engine: Engine, five_calls: FakeCallLog, server: LocalHTTPServer, tmp_path: Path
) -> Iterator[dict[str, str]]:
    with FakeSiro() as siro:
        yield {
            "SIRO_POLLER_DATABASE__URL": database_url(engine),
            "SIRO_POLLER_STATE_DIR": str(tmp_path / "state"),
            "SIRO_POLLER_PROVIDER__BASE_URL": server.url,
            "SIRO_POLLER_PROVIDER__AUTH": "bearer",
            "SIRO_POLLER_PROVIDER__TOKEN": "provider-token-123",
            "SIRO_POLLER_POLL__START_AT": (STARTED - timedelta(minutes=1)).isoformat(),
            "SIRO_POLLER_POLL__SETTLE_DELAY_SECONDS": "0",
            "SIRO_POLLER_LOGGING__FORMAT": "human",
            **{
                f"SIRO_POLLER_SIRO__{k.upper()}": env_text(v)
                for k, v in siro.settings_values().items()
            },
        }


def test_work_on_a_terminal_shows_a_progress_line(cli_env: dict[str, str]) -> None:
    assert CliRunner().invoke(main, ["poll"], env=cli_env).exit_code == 0
    shown = run_on_terminal(["work", "--until-idle"], {**cli_env, "COLUMNS": "160"})
    assert "processed 5: 5 uploaded" in shown
    assert "backlog" in shown and "5 of 5 done" in shown
    assert "uploaded as Siro recording" not in shown


def test_verbose_and_quiet_override_the_configured_level(cli_env: dict[str, str]) -> None:
    runner = CliRunner()
    quiet = runner.invoke(main, ["-q", "poll"], env=cli_env)
    assert quiet.exit_code == 0, quiet.output
    assert " INFO " not in quiet.stderr  # the poll's summary line is INFO

    verbose = runner.invoke(main, ["-v", "work", "--until-idle"], env=cli_env)
    assert verbose.exit_code == 0, verbose.output
    assert verbose.stderr.count("uploaded as Siro recording") == 5  # the poller's DEBUG lines
    assert "urllib3" not in verbose.stderr  # the libraries' stay quiet

    # -vv: the libraries' debug lines too, whatever logging.level says.
    very = runner.invoke(
        main, ["-vv", "poll"], env={**cli_env, "SIRO_POLLER_LOGGING__LEVEL": "WARNING"}
    )
    assert very.exit_code == 0, very.output
    assert "DEBUG   urllib3.connectionpool" in very.stderr

    default = runner.invoke(
        main, ["poll"], env={**cli_env, "SIRO_POLLER_LOGGING__LEVEL": "WARNING"}
    )
    assert " INFO " not in default.stderr and " DEBUG " not in default.stderr

    both = runner.invoke(main, ["-v", "-q", "status"], env=cli_env)
    assert both.exit_code == 2 and "contradict" in both.stderr


def test_threads_report_into_one_backlog() -> None:
    clock = Clock(T0)
    reports: list[ProgressSnapshot] = []
    progress = BacklogProgress(
        count_due=lambda now: 0, clock=clock, report=reports.append, every=timedelta(0)
    )

    def one_call() -> None:
        progress.call_started()
        progress.call_settled("uploaded")

    threads = [threading.Thread(target=one_call) for _ in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    progress.drain_finished()
    assert reports[-1].finished and reports[-1].done == reports[-1].total == 40


# -- the terminal line at any width ---------------------------------------------------------

BACKLOG = ProgressSnapshot(
    at=T0,
    started_at=T0 - timedelta(minutes=5),
    done=240,
    total=600,
    uploaded=228,
    failed=4,
    retried=8,
    skipped=0,
    per_minute=4.1,
)
FIELDS = (
    "240 of 600 done",
    "4.1 calls/min, ETA 13:27 UTC",
    "228 uploaded, 4 failed, 8 to retry, 0 skipped",
)
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def drawn_on_terminal(width: int, snapshot: ProgressSnapshot) -> str:
    """The progress line as a terminal ``width`` columns wide shows it, last frame."""
    screen = io.StringIO()
    terminal = TerminalProgress(Console(file=screen, width=width, force_terminal=True))
    terminal.report(snapshot)
    terminal.report(dataclasses.replace(snapshot, finished=True))
    frames = [line for line in ANSI.sub("", screen.getvalue()).split("\r") if line.strip()]
    return frames[-1].strip("\n")


@pytest.mark.parametrize(
    ("width", "shown"),
    [(200, FIELDS), (100, FIELDS), (80, FIELDS[:2]), (50, FIELDS[:1]), (24, FIELDS[:1])],
)
def test_the_progress_line_drops_whole_fields_to_fit_the_terminal(
    width: int, shown: tuple[str, ...]
) -> None:
    # Measured on an earlier version: at 80 columns the line ended "228 upl".
    line = drawn_on_terminal(width, BACKLOG)
    assert len(line) <= width
    assert line.startswith("backlog")
    assert line.endswith(shown[-1])
    for field in FIELDS:
        assert (field in line) == (field in shown)


def test_no_width_cuts_a_field_and_the_bar_only_takes_the_room_left() -> None:
    for width in range(len("240 of 600 done"), 220):
        line = fit_line(BACKLOG, width)
        assert len(line.text()) <= width
        assert line.fields == FIELDS[: len(line.fields)]
        assert line.bar_width == 0 or 10 <= line.bar_width <= 40
    assert fit_line(BACKLOG, 18).text() == "240 of 600 done"  # too narrow even for the label
