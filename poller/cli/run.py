"""`siro-poller run` (the daemon) and `siro-poller work` (the worker in the foreground)."""

from __future__ import annotations

import logging
import os
import threading

import click

from poller.cli.root import CliContext, ConfigProblem, config_problem, main_group, pass_cli
from poller.domain.clock import utcnow

log = logging.getLogger(__name__)


def _ready(cli: CliContext) -> None:
    """Refuse to start on a config the daemon cannot work with, or on an old schema; log what
    the config has that is risky or probably not meant (`config check` prints the same)."""
    from poller.config import config_path_from, requirements_for_daemon
    from poller.config_checks import config_findings

    settings = cli.settings  # loading the settings set up logging
    findings = config_findings(
        settings, config_path=config_path_from(cli.config_path), environ=os.environ
    )
    for finding in findings:
        if finding.level == "warning":
            log.warning("config: %s", finding.line())
    problems = [f.line() for f in findings if f.level == "error"]
    problems += requirements_for_daemon(settings)
    if problems:
        raise config_problem(problems)
    cli.store  # noqa: B018  (opening the store checks the schema revision)
    # Now rather than at the first download: a spool that cannot be made is one line, exit 2.
    cli.settings.spool_dir.mkdir(parents=True, exist_ok=True, mode=0o700)


@main_group.command("run")
@pass_cli
def run(cli: CliContext) -> None:
    """Run the daemon: poll the call log and upload recordings until SIGTERM."""
    from poller import app
    from poller.cli.progress_display import backlog_progress
    from poller.core.daemon import stop_on_signals

    stop = threading.Event()
    stop_on_signals(stop)
    _ready(cli)
    progress = backlog_progress(cli.store, verbosity=cli.verbosity)
    daemon = app.build_daemon(cli.settings, cli.store, stop, progress=progress)
    try:
        status = daemon.run()
    finally:
        progress.drain_finished()  # a progress line left by a drain that raised is closed
    raise SystemExit(status)


@main_group.command("work")
@click.option(
    "--until-idle",
    is_flag=True,
    help="Return once no row is due, instead of waiting for more.",
)
@pass_cli
def work(cli: CliContext, until_idle: bool) -> None:
    """Run the worker in the foreground, without polling.

    Stops with exit status 2 while a credential pause is in force (Siro or a provider refuses
    the credentials): no call is failed for it and no attempt is spent."""
    from poller import app
    from poller.cli.progress_display import backlog_progress
    from poller.core.daemon import stop_on_signals
    from poller.core.users_sync import UsersSyncError, sync_users

    stop = threading.Event()
    stop_on_signals(stop)
    _ready(cli)
    siro = app.build_siro_client(cli.settings)
    progress = backlog_progress(cli.store, verbosity=cli.verbosity)
    worker = app.build_worker(cli.settings, cli.store, stop, siro=siro, progress=progress)
    # A person is waiting: ask Siro at once whether a recorded pause can end.
    paused = worker.check_pauses(probe_now=True).pauses
    try:
        synced = sync_users(
            siro, cli.store, utcnow(), default_region=cli.settings.siro.phone_default_region
        )
        log.info("Siro users synced: %s", synced.summary())
    except UsersSyncError as exc:
        click.echo(f"siro-poller: warning: {exc}", err=True)
    totals = {"processed": 0, "uploaded": 0, "retried": 0, "failed": 0, "skipped": 0}
    try:
        while not stop.is_set():
            report = worker.drain()
            for key in totals:
                totals[key] += getattr(report, key)
            paused = report.paused
            if until_idle or paused:
                break
            stop.wait(cli.settings.worker.interval_seconds)
    finally:
        progress.drain_finished()  # a progress line left by a drain that raised is closed
    released = cli.store.release_leases(worker.owner, worker.clock())
    click.echo(
        f"processed {totals['processed']}: {totals['uploaded']} uploaded, "
        f"{totals['retried']} to retry, {totals['failed']} failed, {totals['skipped']} skipped"
        + (f"; {released} unfinished rows given back" if released else "")
    )
    if paused:
        now = worker.clock()
        raise ConfigProblem(
            "\n".join(
                f"work paused: {pause.describe(now)}; no call failed and no attempt was spent: "
                "fix the credential, then run again"
                for pause in paused
            )
        )
