"""The worker: claim due rows, download each recording, upload it to Siro, record every step.

Everything the worker knows about a call lives in its row, so a restart resumes where the last
run stopped: a ``pending`` row is downloaded, a ``downloaded`` row uploaded, and a row whose
create call was sent but never answered is first looked up in Siro (the duplicate guard).

This module is the drain loop: the thread pool, the leases and their renewal, the heartbeat,
and how a step that ended badly is settled. The steps themselves live beside it:
``download_step`` (download, probe, convert), ``upload_step`` (plan, upload, reconcile),
``stages`` (the slots that let downloads and uploads of different rows overlap) and
``credential_pauses`` (what a refused credential holds back).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

from poller.core.credential_pauses import CredentialPauses
from poller.core.download_step import DownloadStep
from poller.core.progress import NoProgress, WorkProgress
from poller.core.spool_sweep import remove_spool_file, sweep_spool
from poller.core.stages import InFlight, Stages
from poller.core.upload_step import UploadStep
from poller.domain.audio import ConversionRules
from poller.domain.clock import utcnow
from poller.domain.failures import Disposition, StepFailure
from poller.domain.pauses import CredentialPause, PauseView
from poller.domain.records import Call, EventDraft
from poller.domain.retry import retry_delay
from poller.domain.states import CallState
from poller.domain.upload_plan import UploadRules
from poller.ports.audio import AudioPort
from poller.ports.download import RecordingFetcher
from poller.ports.provider import ProviderPort
from poller.ports.siro import SiroPort
from poller.ports.store import WorkQueue
from poller.ports.telemetry import NoTelemetry, Telemetry

log = logging.getLogger(__name__)

# How often the worker writes its heartbeat; how long a dead worker's heartbeat row is kept.
HEARTBEAT_EVERY = timedelta(seconds=10)
HEARTBEAT_KEPT = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class WorkerParams:
    """What the worker needs from the configuration (``[worker]`` and the create-body rules)."""

    spool_dir: Path
    upload_rules: UploadRules
    concurrency: int
    max_attempts: int
    retry_base_seconds: float
    retry_max_seconds: float
    lease_seconds: int
    conversion: ConversionRules
    # How often Siro is asked again, during a credential pause, whether the credentials work.
    credential_probe_seconds: float = 60.0


@dataclass(frozen=True, slots=True)
class WorkerReport:
    processed: int
    uploaded: int
    retried: int
    failed: int
    skipped: int
    # Rows given back untouched because their credentials were refused, and the credential
    # pauses in force when the drain ended (the work they hold back waits).
    given_back: int = 0
    paused: tuple[CredentialPause, ...] = ()


class Worker:
    def __init__(
        self,
        *,
        params: WorkerParams,
        store: WorkQueue,
        providers: Mapping[str, ProviderPort],
        siro: SiroPort,
        downloader: RecordingFetcher,
        audio: AudioPort,
        owner: str,
        stop: threading.Event,
        clock: Callable[[], datetime] = utcnow,
        telemetry: Telemetry | None = None,
        progress: WorkProgress | None = None,
    ) -> None:
        self.params = params
        self.store = store
        self.owner = owner
        self.stop = stop
        self.clock = clock
        self.telemetry = telemetry or NoTelemetry()
        self.progress = progress or NoProgress()
        self.spool = params.spool_dir
        self._tally_lock = threading.Lock()
        self._tally: dict[str, int] = {}
        self._lost: set[int] = set()  # rows in flight whose lease another worker took over
        # Files a worker killed mid-step left in the spool are removed when this one starts,
        # after a lease was lost (a step that outlived its lease may leave some), and when a
        # lease that spared some runs out (its worker may have been killed holding it).
        self._sweep_due = True
        self._sweep_again_at: datetime | None = None
        self.last_progress_at: datetime | None = None
        self.pauses = CredentialPauses(
            store=store,
            siro=siro,
            owner=owner,
            probe_every=timedelta(seconds=params.credential_probe_seconds),
            clock=self._now,
            telemetry=self.telemetry,
            on_lost_lease=self._note_lost_lease,
        )
        self.downloads = DownloadStep(
            store=store,
            providers=providers,
            downloader=downloader,
            audio=audio,
            conversion=params.conversion,
            spool=self.spool,
            owner=owner,
            stop=stop,
            clock=self._now,
            telemetry=self.telemetry,
            on_lost_lease=self._note_lost_lease,
        )
        self.stages = Stages(params.concurrency)
        self.uploads = UploadStep(
            store=store,
            siro=siro,
            stages=self.stages,
            upload_rules=params.upload_rules,
            owner=owner,
            clock=self._now,
            telemetry=self.telemetry,
            on_lost_lease=self._note_lost_lease,
        )
        self.started_at = clock()
        # When this worker last showed it is alive (written to worker_heartbeats too).
        self.last_beat_at: datetime | None = None
        self._beat_written_at: datetime | None = None

    def _now(self) -> datetime:
        # The parts read the clock through here: tests and the CLI set ``worker.clock`` after
        # construction.
        return self.clock()

    # -- the loop ------------------------------------------------------------------------

    def drain(self) -> WorkerReport:
        """Process due rows until none are due: up to ``worker.concurrency`` downloads at once
        and, of other rows, as many requests to each of Siro's hosts (see ``stages``).

        Stops claiming as soon as ``stop`` is set; steps already running finish (downloads
        notice the stop between chunks and give their row back), and so does the upload of a
        row whose download is done. A claimed row that has not started yet is left untouched
        for the shutdown to give back.
        """
        # Recordings are customer conversations: only the service user may read the spool.
        self.spool.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.spool.chmod(0o700)
        self._tally = {}
        self.heartbeat()
        self.check_pauses()
        stages = self.stages
        lease = timedelta(seconds=self.params.lease_seconds)
        # The heartbeat: leases are renewed every third of their length while steps run, so a
        # long step keeps its rows and a dead worker's rows come back after one lease.
        renew_every = lease.total_seconds() / 3
        next_renewal = time.monotonic() + renew_every
        claim_after = 0.0  # after a claim came back short, the next waits a moment
        with ThreadPoolExecutor(stages.threads, thread_name_prefix="siro-worker") as pool:
            flight = InFlight(pool, stages, self.process)
            while True:
                self.heartbeat()
                again_at = self._sweep_again_at
                if self._sweep_due or (again_at is not None and self.clock() >= again_at):
                    self.sweep_spool(flight.ids())
                woken = stages.room_freed()
                pauses = self.pauses.current()
                free = min(stages.room(), stages.threads - len(flight))
                worth_it = free >= stages.claim_batch and time.monotonic() >= claim_after
                if (
                    free > 0
                    and (worth_it or not flight)
                    and not self.stop.is_set()
                    and not pauses.claims_nothing
                ):
                    claimed = self._claim(flight, free, pauses, lease)
                    # Nothing more is due now: asking again at each row's end would cost a
                    # transaction each time (rows that come due meanwhile wait a second).
                    claim_after = time.monotonic() + (1.0 if claimed < free else 0.0)
                if not flight:
                    break
                done, _running = wait(
                    [*flight.futures, woken],
                    timeout=min(1.0, renew_every),
                    return_when=FIRST_COMPLETED,
                )
                for future in done:
                    if future is not woken:
                        self._turn_over(flight, future)
                if flight and time.monotonic() >= next_renewal:
                    self.renew_leases(flight.ids(), lease)
                    next_renewal = time.monotonic() + renew_every
        self.progress.drain_finished()
        given_back = self._tally.get("pause", 0)
        return WorkerReport(
            processed=sum(self._tally.values()) - given_back,
            uploaded=self._tally.get("uploaded", 0),
            retried=self._tally.get("retry", 0),
            failed=self._tally.get("fail", 0),
            skipped=self._tally.get("skip", 0),
            given_back=given_back,
            paused=self.pauses.current().pauses,
        )

    def _claim(self, flight: InFlight, limit: int, pauses: PauseView, lease: timedelta) -> int:
        """Claim up to ``limit`` due rows and hand each to a thread: how many came."""
        now = self.clock()
        claimed = self.store.claim_due(
            self.owner, now, now + lease, limit=limit, exclude_providers=pauses.paused_providers
        )
        for call in claimed:
            if call.id in flight.since:
                flight.reclaimed.add(call.id)
                if time.monotonic() - flight.since[call.id] >= lease.total_seconds():
                    _outlived_lease(call, self.params.lease_seconds)
                continue
            flight.submit(call)
        return len(claimed)

    def _turn_over(self, flight: InFlight, future: Future[None]) -> None:
        """A row's turn ended: hand it on again if a claim took it meanwhile and still holds
        it."""
        call_id = flight.finished(future)
        future.result()  # process() records its own errors; this surfaces bugs
        if call_id in flight.reclaimed:
            flight.reclaimed.discard(call_id)
            again = self._still_held(call_id)
            if again is not None:
                flight.submit(again)

    # -- heartbeat, credential pauses and leases ---------------------------------------

    def heartbeat(self) -> None:
        """Show that this worker is alive: in memory for `/healthz`, in the database (at most
        every HEARTBEAT_EVERY) for `status` in another process."""
        now = self.clock()
        self.last_beat_at = now
        written = self._beat_written_at
        if written is not None and now - written < HEARTBEAT_EVERY:
            return
        try:
            if written is None:
                self.store.forget_heartbeats(now - HEARTBEAT_KEPT)
            self.store.beat(self.owner, self.started_at, now)
            self._beat_written_at = now
        except Exception:
            # A missed heartbeat is a health signal, never a reason to stop working.
            log.exception("could not write this worker's heartbeat")

    def check_pauses(self, *, probe_now: bool = False) -> PauseView:
        """Read the credential pauses in force, probing Siro's when due (see CredentialPauses)."""
        return self.pauses.check(probe_now=probe_now)

    @property
    def on_siro_resumed(self) -> Callable[[], object] | None:
        """Called when a probe ends Siro's pause, before any upload (the daemon syncs Siro's
        users then: the sync that ran while the credentials were refused found none)."""
        return self.pauses.on_siro_resumed

    @on_siro_resumed.setter
    def on_siro_resumed(self, callback: Callable[[], object] | None) -> None:
        self.pauses.on_siro_resumed = callback

    def forget_user_directory(self) -> None:
        """Read ``siro_users`` afresh at the next upload (the daemon calls it after a sync)."""
        self.uploads.forget_user_directory()

    def renew_leases(self, call_ids: set[int], lease: timedelta) -> None:
        """Extend the leases of the rows in flight; a row found taken over stops writing."""
        now = self.clock()
        try:
            held = self.store.renew_leases(self.owner, call_ids, now, now + lease)
        except Exception:
            # The lease guard still protects every write; the next heartbeat tries again.
            log.exception("could not renew the leases of %d calls in flight", len(call_ids))
            return
        with self._tally_lock:
            self._lost |= call_ids - held
        if call_ids - held:
            self._sweep_due = True

    def sweep_spool(self, in_flight: set[int]) -> None:
        """Remove the spool files no call owns (none of the rows this worker has in flight)."""
        self._sweep_due = False
        try:
            swept = sweep_spool(self.spool, self.store.get_call, self.clock(), in_flight=in_flight)
            self._sweep_again_at = swept.again_at
        except Exception:
            # Orphans cost disk space only: the next lease loss or start tries again.
            log.exception("could not sweep the spool of files no call owns")

    def _still_held(self, call_id: int) -> Call | None:
        """A row claimed again while its turn here still ran: the row, if that claim still
        holds it once the turn is over (its step made it due at once, say by sending it back
        to be downloaded again), or None when the turn's own last write released it."""
        try:
            call = self.store.get_call(call_id)
        except Exception:
            # Its lease runs out and the row comes back by itself.
            log.exception("call %s: could not read the row claimed again", call_id)
            return None
        if call is None or call.lease_owner != self.owner:
            return None
        return call if call.state in (CallState.PENDING, CallState.DOWNLOADED) else None

    def _note_lost_lease(self, call: Call) -> None:
        _lost_lease(call)
        self._sweep_due = True

    def _lease_lost(self, call: Call) -> bool:
        with self._tally_lock:
            return call.id in self._lost

    def _count(self, outcome: str) -> None:
        with self._tally_lock:
            self._tally[outcome] = self._tally.get(outcome, 0) + 1
        self.last_progress_at = self.clock()
        self.progress.call_settled(outcome)

    # -- one row -------------------------------------------------------------------------

    def process(self, call: Call) -> None:
        """Take one claimed row as far as it goes, its download in a download slot and each of
        its upload's requests in a slot of their host (see ``stages``); never raises for a
        problem of the row."""
        needs_download = call.state == CallState.PENDING
        try:
            with self.stages.download() if needs_download else nullcontext():
                if self.stop.is_set():
                    return  # not started: the shutdown gives the row back as it was
                self.progress.call_started()
                current = self._attempt(call, self._first_step)
            if current is not None:
                self._attempt(current, partial(self._upload, downloaded_here=needs_download))
        finally:
            self.stages.leave(call.id)
            with self._tally_lock:
                self._lost.discard(call.id)

    def _first_step(self, call: Call) -> Call | None:
        """The row's download if it needs one: the row as it goes on to its upload, if it
        does."""
        if call.attempts > self.params.max_attempts:
            # A row that keeps killing its worker mid-step comes back through lease expiry
            # with its attempts spent; stop here instead of crashing forever.
            raise StepFailure.fail(
                "attempts_exhausted",
                f"gave up after {call.attempts - 1} attempts that never finished "
                "(the worker died or was stopped during each); see the call's events",
            )
        if call.state == CallState.PENDING:
            return self.downloads.download(call)
        return call

    def _upload(self, call: Call, *, downloaded_here: bool) -> None:
        if self._lease_lost(call):
            # Taken over while it was downloaded or waited for its turn at the upload.
            self._note_lost_lease(call)
            return
        if call.state == CallState.DOWNLOADED and self.uploads.upload(
            call, downloaded_here=downloaded_here
        ):
            self._count("uploaded")

    def _attempt(self, call: Call, step: Callable[[Call], Call | None]) -> Call | None:
        """Run ``step`` on the row: its result, or None once its failure is settled."""
        try:
            return step(call)
        except StepFailure as failure:
            self.settle(call, failure)
        except Exception as exc:  # a bug or an unforeseen library error: keep the daemon up
            log.exception("call %s: unexpected error", call.id)
            self.settle(
                call,
                StepFailure.retry(
                    "internal_error", f"unexpected {type(exc).__name__}; see the daemon log"
                ),
            )
        return None

    def settle(self, call: Call, failure: StepFailure) -> None:
        """Write down how a step ended badly: a retry later, or a parked row with its reason
        (or, for refused credentials, nothing but a pause)."""
        now = self.clock()
        current = self.store.get_call(call.id) or call
        if failure.disposition == Disposition.PAUSE:
            self.pauses.give_back(current, failure, failure.step or _step_of(current))
            self._count("pause")
            return
        event = EventDraft(
            step=failure.step or _step_of(current),
            outcome=failure.disposition.value,
            http_status=failure.http_status,
            message=failure.message,
        )
        disposition = failure.disposition
        message = failure.message
        self.telemetry.step_finished(event.step, disposition.value, kind=failure.kind)
        if disposition == Disposition.RETRY and current.attempts >= self.params.max_attempts:
            disposition = Disposition.FAIL
            message = f"gave up after {current.attempts} attempts; last: {failure.message}"
            event = EventDraft(
                step=event.step, outcome="fail", http_status=failure.http_status, message=message
            )
        if disposition == Disposition.RETRY:
            delay = retry_delay(
                max(1, current.attempts),
                base_seconds=self.params.retry_base_seconds,
                max_seconds=self.params.retry_max_seconds,
                retry_after_seconds=failure.retry_after_seconds,
            )
            self.store.schedule_retry(
                call.id, self.owner, now, now + delay, failure.kind, message, event
            )
            log.warning(
                "call %s (%s): %s; attempt %d of %d, next in %.1fs",
                call.id,
                call.provider_call_id,
                message,
                current.attempts,
                self.params.max_attempts,
                delay.total_seconds(),
            )
            self._count("retry")
            return
        final = CallState.FAILED if disposition == Disposition.FAIL else CallState.SKIPPED
        self.store.finish(call.id, self.owner, now, final, failure.kind, message, event)
        remove_spool_file(current.spool_path)
        log.log(
            logging.ERROR if final == CallState.FAILED else logging.INFO,
            "call %s (%s): %s (%s): %s",
            call.id,
            call.provider_call_id,
            final.value,
            failure.kind,
            message,
        )
        self._count(disposition.value)


def _step_of(call: Call) -> str:
    return "download" if call.state == CallState.PENDING else "upload"


def _lost_lease(call: Call) -> None:
    log.warning(
        "call %s: this worker's lease ran out mid-step and another took the row over; "
        "its result is not recorded here",
        call.id,
    )


def _outlived_lease(call: Call, lease_seconds: int) -> None:
    # The row's lease ran out while this process still works on it, so the claim just took
    # it again (renewing the lease). A second step on the same row would download into the
    # same spool path as the first: the step already running carries on alone, and the row
    # is taken up again afterwards only if that step leaves it claimed.
    log.warning(
        "call %s: its step has run longer than worker.lease_seconds = %d and is still "
        "running here; not starting it a second time",
        call.id,
        lease_seconds,
    )
