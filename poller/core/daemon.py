"""`siro-poller run`: the poll and work jobs on an APScheduler clock, under systemd.

Beside the interval jobs, a webhook event (:attr:`Daemon.nudges`) runs one provider's poll
early as a one-off job of its own (``poll-now-<provider>``); one poll of a provider runs at a
time, whichever job asked for it.

APScheduler 3 swallows job exceptions, skips runs behind a hung job and installs no signal
handlers, so this module does those parts itself: job bodies catch and log, a listener reports
errors and missed runs, the main thread owns SIGTERM/SIGINT, readiness and the watchdog.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import TYPE_CHECKING, Literal

from poller.core.nudges import Nudges, call_lookup
from poller.core.poll_report import PollReport
from poller.core.polling import ProviderPolls
from poller.core.users_sync import UsersSyncError
from poller.core.worker import Worker
from poller.domain.clock import utcnow
from poller.domain.health import Health, HealthRules, assess
from poller.domain.pauses import CredentialPause
from poller.ports.notifier import NoNotifier, ServiceNotifier
from poller.ports.store import DaemonStore
from poller.ports.telemetry import NoTelemetry, Telemetry

if TYPE_CHECKING:
    # APScheduler is imported by Daemon.run: the commands that read DaemonParams or the
    # health rules from poller.wiring never start a scheduler.
    from apscheduler.events import SchedulerEvent
    from apscheduler.schedulers.background import BackgroundScheduler

log = logging.getLogger(__name__)

# While work is paused for credentials, the log says so this often (not once per call).
PAUSE_REMINDER_EVERY = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class DaemonParams:
    """What the daemon needs from the configuration: its job intervals and its limits."""

    poll_interval_seconds: int
    work_interval_seconds: int
    users_refresh_minutes: int
    lease_seconds: int
    concurrency: int
    shutdown_grace_seconds: float
    # "all" polls and works, "poller" only polls, "worker" only works.
    role: Literal["all", "poller", "worker"] = "all"
    # The configured providers, by name: each must be polled for the daemon to be healthy.
    providers: tuple[str, ...] = ()
    # Seconds between two retention passes (poller.core.retention), run by the polling side.
    retention_interval_seconds: int = 900
    # The providers whose webhook is enabled: /healthz warns of a subscription they lost.
    webhook_providers: tuple[str, ...] = ()
    # Webhook nudges (poller.core.nudges): events this close together make one early poll;
    # the nudged polls after each event; each provider's effective settle delay in seconds
    # (the larger of poll.settle_delay_seconds and its adapter's), for the plain follow-up.
    nudge_debounce_seconds: float = 2.0
    nudge_follow_up_seconds: tuple[float, ...] = (10.0, 30.0)
    settle_delays: Mapping[str, float] = field(default_factory=dict)

    @property
    def polls(self) -> bool:
        return self.role in ("all", "poller")

    @property
    def works(self) -> bool:
        return self.role in ("all", "worker")


@dataclass
class JobHealth:
    """When each job last finished a run, for the watchdog and `systemctl status`."""

    finished_at: dict[str, datetime] = field(default_factory=dict)
    running: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def started(self, job: str) -> None:
        with self.lock:
            self.running.add(job)

    def finished(self, job: str) -> None:
        with self.lock:
            self.running.discard(job)
            self.finished_at[job] = utcnow()

    def any_running(self) -> bool:
        with self.lock:
            return bool(self.running)


class Daemon:
    def __init__(
        self,
        params: DaemonParams,
        *,
        store: DaemonStore,
        poll_cycles: Sequence[Callable[[], PollReport | None]],
        worker: Worker,
        stop: threading.Event,
        notifier: ServiceNotifier | None = None,
        telemetry: Telemetry | None = None,
        users_sync: Callable[[], object] | None = None,
        about: str | None = None,
        extra_jobs: Sequence[tuple[str, Callable[[], None], float]] = (),
        retention: Callable[[], object] | None = None,
        polling_jobs: Sequence[tuple[str, Callable[[], None], float]] = (),
    ) -> None:
        self.params = params
        # What the start-up line says of this process beyond the daemon's own parameters
        # (the version, the database, the providers, the metrics address, the role).
        self.about = about or f"role {params.role}"
        self.store = store
        self.poll_cycles = poll_cycles
        self.worker = worker
        self.stop = stop
        self.notifier = notifier or NoNotifier()
        self.telemetry = telemetry or NoTelemetry()
        self.users_sync = users_sync
        # Jobs beside polling and work (deletion at the source), run where the worker runs.
        self.extra_jobs = tuple(extra_jobs)
        # Jobs run where polling runs (the webhook subscriptions' check, beside the receiver).
        self.polling_jobs = tuple(polling_jobs)
        self.retention = retention
        # Uploads wait for the first users sync of this run (one quick request, normally) so
        # that reps are resolved against Siro's users as they are now.
        self.first_users_sync_done = threading.Event()
        if users_sync is None:
            self.first_users_sync_done.set()
        else:
            worker.on_siro_resumed = self.users_job
        self.health = JobHealth()
        self.started_at = utcnow()
        self.scheduler: BackgroundScheduler | None = None
        # One drain at a time; a wake that finds one under way asks it to look once more.
        self._draining = threading.Lock()
        self._drain_again = threading.Event()
        self._pauses_reminded_at: datetime | None = None
        self.polls = ProviderPolls(
            poll_cycles,
            telemetry=self.telemetry,
            wake_work=self.wake_work,
            health=self.health,
            polls=params.polls,
            stop=stop,
        )
        self.nudges = Nudges(
            poll=self.poll_provider,
            call_known=call_lookup(store),
            timer=self,
            clock=utcnow,
            providers=self.polls.providers if params.polls else (),
            debounce=timedelta(seconds=params.nudge_debounce_seconds),
            follow_ups=[timedelta(seconds=every) for every in params.nudge_follow_up_seconds],
            settle_delays={
                name: timedelta(seconds=delay) for name, delay in params.settle_delays.items()
            },
        )

    # -- jobs ----------------------------------------------------------------------------

    def poll_job(self) -> None:
        """One cycle for each provider in turn; one provider's failure never skips the next."""
        self.health.started("poll")
        try:
            self.polls.poll_all()
        finally:
            self.health.finished("poll")

    def poll_provider(self, provider: str, reach_now: bool = True) -> bool:
        """Poll ``provider`` now, in this thread (a nudge's job); see
        :meth:`ProviderPolls.poll_provider`."""
        return self.polls.poll_provider(provider, reach_now=reach_now)

    def call_at(self, key: str, when: datetime, action: Callable[[], None]) -> None:
        """The nudges' timer: ``action`` as a one-off job ``key`` at ``when``."""
        scheduler = self.scheduler
        if scheduler is None or self.stop.is_set():
            log.debug("not running: job %s is not scheduled", key)
            return
        scheduler.add_job(
            action,
            "date",
            run_date=when,
            id=key,
            replace_existing=True,
            # A timer set while its last run still polls must fire all the same: the provider's
            # poll then finds that poll under way and asks it for one more pass.
            max_instances=2,
        )

    def users_job(self) -> None:
        """Copy Siro's users into ``siro_users``; the worker reads them afresh afterwards."""
        if self.users_sync is None:
            return
        self.health.started("users")
        try:
            self.users_sync()
            self.worker.forget_user_directory()
        except UsersSyncError as exc:
            log.error("%s; attribution goes on with the users of the last sync", exc)
        except Exception:
            log.exception("users sync failed")
        finally:
            self.health.finished("users")
            if not self.first_users_sync_done.is_set():
                self.first_users_sync_done.set()
                self.wake_work()  # the work job's first turn found the sync not done yet

    def retention_job(self) -> None:
        """One retention pass, in small batches, on its own schedule: never inside a poll."""
        if self.retention is None:
            return
        self.health.started("retention")
        try:
            self.retention()
        except Exception:
            # The next pass tries again; retention failing never stops polling or uploads.
            log.exception("retention pass failed")
        finally:
            self.health.finished("retention")

    def work_job(self) -> None:
        if not self.first_users_sync_done.is_set():
            self.worker.heartbeat()  # alive, waiting for Siro's users
            return
        while True:
            if not self._draining.acquire(blocking=False):
                self._drain_again.set()  # the drain under way looks once more before it ends
                return
            try:
                self._drain_again.clear()
                self._drain()
            finally:
                self._draining.release()
            # A wake that came while draining: its calls may have come after the last claim.
            if not self._drain_again.is_set():
                return

    def _drain(self) -> None:
        self.health.started("work")
        try:
            report = self.worker.drain()
            if report.given_back:
                log.info(
                    "work: %d calls given back untouched for a credential pause",
                    report.given_back,
                )
            if report.processed:
                log.info(
                    "work: %d processed, %d uploaded, %d to retry, %d failed, %d skipped",
                    report.processed,
                    report.uploaded,
                    report.retried,
                    report.failed,
                    report.skipped,
                )
        except Exception:
            log.exception("work job failed")
        finally:
            self.health.finished("work")

    def wake_work(self) -> None:
        """Run the work job now instead of at its next interval: calls have become due."""
        scheduler = self.scheduler
        if scheduler is None or not self.params.works or self.stop.is_set():
            return
        # A one-off job of its own: the interval job may be running (APScheduler would skip a
        # second instance of it), and work_job itself lets one drain run at a time.
        scheduler.add_job(self.work_job, id="work-now", replace_existing=True)

    def jobs(self) -> list[tuple[str, Callable[[], None], float]]:
        """Each scheduled job: its id, its body and its interval in seconds (first run: now)."""
        jobs: list[tuple[str, Callable[[], None], float]] = []
        if self.params.polls:
            jobs.append(("poll", self.poll_job, self.params.poll_interval_seconds))
        if self.params.works:
            jobs.append(("work", self.work_job, self.params.work_interval_seconds))
        if self.params.works and self.users_sync is not None:
            refresh = self.params.users_refresh_minutes * 60
            jobs.append(("users", self.users_job, refresh))
        if self.params.works:
            jobs.extend(self.extra_jobs)
        if self.params.polls:
            jobs.extend(self.polling_jobs)
        if self.params.polls and self.retention is not None:
            # With the polling side only; two pollers' passes at once are harmless, as each
            # batch passes over the rows another transaction holds (SKIP LOCKED).
            jobs.append(("retention", self.retention_job, self.params.retention_interval_seconds))
        return jobs

    @staticmethod
    def on_scheduler_event(event: SchedulerEvent) -> None:
        from apscheduler.events import (
            EVENT_JOB_ERROR,
            EVENT_JOB_MAX_INSTANCES,
            EVENT_JOB_MISSED,
            JobExecutionEvent,
        )

        job = getattr(event, "job_id", "?")
        if event.code == EVENT_JOB_ERROR and isinstance(event, JobExecutionEvent):
            log.error("job %s raised %r", job, event.exception)
        elif event.code == EVENT_JOB_MISSED:
            log.warning("job %s missed its run time; the host may have been suspended", job)
        elif event.code == EVENT_JOB_MAX_INSTANCES:
            # A backlog, not a fault: a long poll or drain simply runs into its next turn.
            log.debug("job %s is still running from its last turn; this turn is skipped", job)

    # -- lifecycle -----------------------------------------------------------------------

    def healthy(self, now: datetime) -> bool:
        """Both jobs finished a run recently, or the worker made progress within one."""
        limits = {
            "poll": timedelta(seconds=3 * self.params.poll_interval_seconds)
            + timedelta(minutes=15),
            "work": timedelta(seconds=3 * self.params.work_interval_seconds)
            + timedelta(seconds=self.params.lease_seconds),
        }
        scheduled = {job for job, _body, _every in self.jobs()}
        for job, limit in limits.items():
            if job not in scheduled:
                continue
            last = self.health.finished_at.get(job, self.started_at)
            if job == "work" and self.worker.last_progress_at is not None:
                last = max(last, self.worker.last_progress_at)
            if now - last > limit:
                return False
        return True

    def health_check(self, now: datetime) -> Health:
        """`/healthz`: what this process does is healthy (its polling, per the database, and its
        worker's heartbeat), and no credential pause is in force."""
        rules = HealthRules(
            providers=self.params.providers,
            poll_interval=timedelta(seconds=self.params.poll_interval_seconds),
            work_interval=timedelta(seconds=self.params.work_interval_seconds),
            check_polling=self.params.polls,
            check_worker=self.params.works,
            webhook_providers=self.params.webhook_providers,
        )
        return assess(
            rules,
            now,
            pauses=self.store.pauses(),
            cursors=self.store.cursors(),
            last_worker_beat=self.worker.last_beat_at,
            webhook_states=self._webhook_states(),
        )

    def _webhook_states(self) -> dict[str, str | None]:
        """Each enabled webhook's subscription state as last saved; only a warning rides on
        it, so a failed read is logged and leaves the verdict to the checks that matter."""
        if not self.params.webhook_providers:
            return {}
        try:
            saved = self.store.webhook_subscription_states()
        except Exception:
            log.exception("could not read the webhook subscription states")
            return {}
        return {row.provider: row.state.value if row.state else None for row in saved}

    def remind_pauses(self, now: datetime) -> None:
        """Once a minute while work is paused: why, for how long, and how many calls wait."""
        last = self._pauses_reminded_at
        if last is not None and now - last < PAUSE_REMINDER_EVERY:
            return
        self._pauses_reminded_at = now
        try:
            pauses = self.store.pauses()
            waiting = self.store.due_by_provider(now) if pauses else {}
        except Exception:
            log.exception("could not read the credential pauses")
            return
        for pause in pauses:
            log.warning("%s; %s", pause.describe(now), _waiting(pause, waiting, self.params))

    def run(self) -> int:
        from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.background import BackgroundScheduler

        grace = self.params.shutdown_grace_seconds
        scheduler = BackgroundScheduler(
            timezone=UTC,
            # Poll and work may each run long; the short jobs (users, retention) get a third, and
            # each extra job (deletion at the source) and each provider's nudged polls a thread
            # of its own.
            executors={
                "default": ThreadPoolExecutor(
                    max_workers=3
                    + len(self.extra_jobs)
                    + len(self.polling_jobs)
                    + len(self.polls.providers)
                )
            },
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                # A run delayed by a busy host still happens; one delayed past a whole interval
                # is dropped (and logged) because the next one is already due.
                "misfire_grace_time": 60,
            },
        )
        scheduler.add_listener(
            self.on_scheduler_event, EVENT_JOB_ERROR | EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES
        )
        now = datetime.now(UTC)
        for job_id, job, every in self.jobs():
            scheduler.add_job(job, "interval", seconds=every, id=job_id, next_run_time=now)
        self.scheduler = scheduler  # before the first poll, which may wake the work job
        scheduler.start()
        role = self.params.role
        self.notifier.ready(
            {"all": "polling and working", "poller": "polling"}.get(role, "working")
        )
        log.info(
            "siro-poller running as %s: %s; poll every %ss, work every %ss, worker.concurrency %d",
            self.worker.owner,
            self.about,
            self.params.poll_interval_seconds,
            self.params.work_interval_seconds,
            self.params.concurrency,
        )
        ping_every = self._ping_interval()
        while not self.stop.wait(ping_every):
            self.remind_pauses(utcnow())
            if self.healthy(utcnow()):
                self.notifier.watchdog()
            else:
                log.error("a job has made no progress for too long; not pinging the watchdog")

        log.info("stopping: no new work is claimed; in-flight steps have %.0fs to finish", grace)
        self.notifier.stopping("finishing in-flight work")
        self.scheduler = None
        scheduler.shutdown(wait=False)
        deadline = time.monotonic() + grace
        while self.health.any_running() and time.monotonic() < deadline:
            time.sleep(0.1)
        self.polls.release_locks()
        released = self.store.release_leases(self.worker.owner, utcnow())
        if released:
            log.warning("gave back %d unfinished rows; they resume on the next start", released)
        if self.health.any_running():
            # A step stuck in a long network call must not keep the process past the grace:
            # its row is already released, and its result would be discarded anyway.
            log.warning("in-flight work did not finish within %.0fs; exiting anyway", grace)
            logging.shutdown()
            os._exit(0)
        log.info("stopped")
        return 0

    def _ping_interval(self) -> float:
        interval = self.notifier.watchdog_interval
        if interval is None:
            return 30.0
        return max(1.0, interval.total_seconds() / 2)


def _waiting(pause: CredentialPause, due: dict[str, int], params: DaemonParams) -> str:
    if pause.provider is None:
        return (
            f"{sum(due.values())} call(s) wait; a fresh token mint asks Siro again every "
            "worker.credential_probe_seconds"
        )
    return (
        f"{due.get(pause.provider, 0)} call(s) of {pause.provider} wait; the next listing that "
        f"{pause.provider} accepts (every {params.poll_interval_seconds}s) ends the pause"
    )


def stop_on_signals(stop: threading.Event) -> None:
    """Turn SIGTERM and SIGINT into ``stop``: installed first thing, so that a stop request
    arriving while the daemon still starts up ends it cleanly too."""

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
