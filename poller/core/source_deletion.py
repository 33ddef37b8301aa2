"""Deletion at the source: the daemon's job that deletes verified recordings at the vendor.

Off the hot path: a job of its own, a small batch a turn. Each row goes through the rules of
:mod:`poller.domain.source_deletion` in the state database, is claimed with a lease (so two
processes never delete it both), is read back from Siro, and only then deleted at the vendor,
after one more look at the operator's pause. Every outcome is an event on the call; a 404
counts as done; a failure is retried with back-off until ``max_attempts``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from poller.domain.records import EventDraft
from poller.domain.source_deletion import (
    EVENT_STEP,
    NEVER,
    DeletionCandidate,
    DeletionPolicy,
    Hold,
    Verdict,
    local_verdict,
    never_verdict,
    retry_delay,
    siro_disagreement,
)
from poller.ports.provider import ProviderError, SourceDeleter, TransientProviderError
from poller.ports.siro import SiroCredentialError, SiroError, SiroPort
from poller.ports.store import SourceDeletionStore

log = logging.getLogger(__name__)

# Rows the dry run reads at a time.
PLAN_PAGE = 500
# How far before the longest grace the refusal pass looks for replayed or adopted rows.
FLAG_MARGIN = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class SourceDeletionParams:
    """What the configuration says: the global switch, the opted-in providers, the limits."""

    enabled: bool
    # The providers whose delete_at_source is on, with their grace period.
    grace_by_provider: Mapping[str, timedelta]
    batch_size: int = 20
    max_attempts: int = 8
    retry_base: timedelta = timedelta(minutes=5)
    retry_max: timedelta = timedelta(hours=6)
    # Longer than a delete and a Siro read can take with their retries; a row whose process
    # died is taken again after it (and a repeated delete is answered 404: done).
    lease: timedelta = timedelta(hours=1)

    @property
    def active(self) -> bool:
        return self.enabled and bool(self.grace_by_provider)


@dataclass
class DeletionReport:
    deleted: int = 0
    gone: int = 0  # the vendor answered 404: deleted already
    refused: int = 0
    waiting: int = 0  # Siro has not finished processing: asked again later
    retried: int = 0
    failed: int = 0
    paused: bool = False
    candidates: int = 0

    @property
    def done(self) -> int:
        return self.deleted + self.gone

    def summary(self) -> str:
        return (
            f"{self.deleted} deleted, {self.gone} already gone (404), {self.refused} refused, "
            f"{self.waiting} waiting for Siro, {self.retried} to retry, {self.failed} failed"
        )


@dataclass(frozen=True, slots=True)
class PlannedRow:
    """One uploaded row in `source purge --dry-run`: would it go now, and if not, why not."""

    candidate: DeletionCandidate
    verdict: Verdict


@dataclass(frozen=True, slots=True)
class _Locator:
    """What a deleter needs of the call (a :class:`RecordingLocator`)."""

    provider_call_id: str
    recording_id: str | None
    recording_url: str | None = None


@dataclass
class SourceDeletionJob:
    params: SourceDeletionParams
    store: SourceDeletionStore
    siro: SiroPort
    deleters: Mapping[str, SourceDeleter]
    owner: str
    clock: Callable[[], datetime]
    stop: threading.Event = field(default_factory=threading.Event)

    def grace_by_provider(self) -> dict[str, timedelta]:
        """The opted-in providers whose adapter can delete (config checks it already)."""
        return {
            name: grace
            for name, grace in self.params.grace_by_provider.items()
            if name in self.deleters
        }

    def policy(self) -> DeletionPolicy:
        return DeletionPolicy(
            enabled=self.params.enabled,
            paused=self.store.deletion_paused() is not None,
            grace_by_provider=self.grace_by_provider(),
        )

    # -- the daemon's turn ---------------------------------------------------------------

    def run_once(self) -> DeletionReport:
        """One batch of at most ``batch_size`` rows."""
        report = DeletionReport()
        now = self.clock()
        graces = self.grace_by_provider()
        if not self.params.enabled or not graces:
            return report
        # Replayed and title-matched rows are marked refused as soon as they are seen, grace
        # or pause notwithstanding: the events that tell are kept in the marks for good.
        # Rows past their grace are seen by the pass below; a replay or an adoption updates
        # the row, so those still within it were updated within the longest grace.
        flagged = self.store.deletion_candidates(
            dict.fromkeys(graces, now),
            now,
            self.params.batch_size,
            flagged_only=True,
            changed_since=now - max(graces.values()) - FLAG_MARGIN,
        )
        for candidate in flagged:
            never = never_verdict(candidate)
            if never is not None and self.store.refuse_deletion(
                candidate.call_id, candidate.provider, now, never.detail
            ):
                report.refused += 1
        policy = self.policy()
        if policy.paused:
            report.paused = True
            return report
        cutoffs = {name: now - grace for name, grace in graces.items()}
        candidates = self.store.deletion_candidates(cutoffs, now, self.params.batch_size)
        report.candidates = len(candidates)
        for candidate in candidates:
            if self.stop.is_set():
                break
            verdict = local_verdict(candidate, policy, now)
            if verdict.hold in NEVER:
                if self.store.refuse_deletion(
                    candidate.call_id, candidate.provider, now, verdict.detail
                ):
                    report.refused += 1
                continue
            if not verdict.eligible:
                continue
            if not self.store.claim_deletion(
                candidate.call_id, candidate.provider, self.owner, now, now + self.params.lease
            ):
                continue  # another process has it
            if not self._delete_one(candidate, report):
                break  # Siro refused our credentials, or a pause came in: stop this turn
        return report

    def run_until_done(self, max_batches: int = 1000) -> DeletionReport:
        """Batches until one finds nothing more to do (`source purge`)."""
        total = DeletionReport()
        for _ in range(max_batches):
            report = self.run_once()
            for name in ("deleted", "gone", "refused", "waiting", "retried", "failed"):
                setattr(total, name, getattr(total, name) + getattr(report, name))
            total.paused = report.paused
            total.candidates += report.candidates
            if report.paused or report.candidates < self.params.batch_size or self.stop.is_set():
                break
        return total

    def job(self) -> None:
        """The daemon's scheduled body: never raises."""
        try:
            report = self.run_once()
        except Exception:
            log.exception("deletion at the source failed this turn; trying again next turn")
            return
        if report.done or report.failed or report.refused:
            log.info("deletion at the source: %s", report.summary())

    # -- one row -------------------------------------------------------------------------

    def _delete_one(self, candidate: DeletionCandidate, report: DeletionReport) -> bool:
        """Read Siro back, then delete at the vendor; False when this turn should stop."""
        siro_id = candidate.siro_recording_id
        assert siro_id is not None  # local_verdict checked it
        try:
            found = self.siro.get_recording(siro_id)
        except SiroError as exc:
            self._retry_or_give_up(
                candidate,
                report,
                "retry",
                f"Siro could not be read back ({exc}); nothing was deleted",
                http_status=exc.http_status,
            )
            return not isinstance(exc, SiroCredentialError)
        disagreement = siro_disagreement(candidate, found)
        if disagreement is not None:
            reason, may_change = disagreement
            if may_change:
                self._retry_or_give_up(candidate, report, "waiting", reason)
            else:
                self._record(candidate, "refused", "refused", reason, reason=reason)
                report.refused += 1
            return True
        # The last look before an irreversible call: an operator's pause counts from now.
        if self.store.deletion_paused() is not None:
            self._record(
                candidate, "pending", "released", "deletion paused before the delete was sent"
            )
            report.paused = True
            return False
        deleter = self.deleters[candidate.provider]
        locator = _Locator(candidate.provider_call_id, candidate.recording_id)
        started = time.monotonic()
        try:
            answer = deleter.delete_recording(locator)
        except ProviderError as exc:
            hint = exc.retry_after if isinstance(exc, TransientProviderError) else None
            self._retry_or_give_up(
                candidate, report, "retry", str(exc), http_status=exc.status, retry_after=hint
            )
            return True
        kept = "deleted" if answer.outcome == "deleted" else "gone (404): deleted already"
        self._record(
            candidate,
            "deleted",
            answer.outcome,
            f"recording {locator.recording_id or locator.provider_call_id} {kept} at "
            f"{candidate.provider}; Siro holds it as {siro_id}. Vendor: {answer.detail}",
            http_status=answer.http_status,
            count_attempt=True,
            duration_ms=int((time.monotonic() - started) * 1000),
        )
        if answer.outcome == "deleted":
            report.deleted += 1
        else:
            report.gone += 1
        return True

    def _retry_or_give_up(
        self,
        candidate: DeletionCandidate,
        report: DeletionReport,
        outcome: str,
        message: str,
        *,
        http_status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        """Count an attempt: again after a back-off (at least ``retry_after``), or, once
        ``max_attempts`` are spent, never (``failed``). Nothing was deleted either way."""
        attempts = candidate.deletion_attempts + 1
        if attempts >= self.params.max_attempts:
            text = f"{message}; gave up after {attempts} attempts: nothing more is sent"
            self._record(
                candidate,
                "failed",
                "failed",
                text,
                reason=text,
                http_status=http_status,
                count_attempt=True,
            )
            report.failed += 1
            log.warning("call %s: deleting at the source: %s", candidate.call_id, text)
            return
        wait = retry_delay(attempts, self.params.retry_base, self.params.retry_max)
        if retry_after is not None:  # the vendor's own Retry-After
            wait = max(wait, timedelta(seconds=retry_after))
        text = f"{message}; attempt {attempts} of {self.params.max_attempts}"
        self._record(
            candidate,
            "pending",
            outcome,
            text,
            reason=text,
            http_status=http_status,
            count_attempt=True,
            next_attempt_at=self.clock() + wait,
        )
        if outcome == "waiting":
            report.waiting += 1
        else:
            report.retried += 1

    def _record(
        self,
        candidate: DeletionCandidate,
        state: str,
        outcome: str,
        message: str,
        *,
        reason: str | None = None,
        http_status: int | None = None,
        count_attempt: bool = False,
        next_attempt_at: datetime | None = None,
        duration_ms: int | None = None,
    ) -> None:
        written = self.store.record_deletion(
            candidate.call_id,
            self.owner,
            self.clock(),
            state=state,
            event=EventDraft(
                step=EVENT_STEP,
                outcome=outcome,
                http_status=http_status,
                message=message,
                duration_ms=duration_ms,
            ),
            next_attempt_at=next_attempt_at,
            count_attempt=count_attempt,
            reason=reason,
        )
        if not written:
            log.warning(
                "call %s: the deletion lease ran out before its result was written (%s)",
                candidate.call_id,
                outcome,
            )

    # -- the dry run ---------------------------------------------------------------------

    def plan(self, *, read_siro: bool = True) -> list[PlannedRow]:
        """Every uploaded row: would it be deleted now, and if not, why not. Reads Siro for
        the rows the state database would let go; writes nothing."""
        now = self.clock()
        policy = self.policy()
        planned: list[PlannedRow] = []
        after = 0
        while True:
            page = self.store.deletion_candidates(
                None, now, PLAN_PAGE, after_id=after, due_only=False
            )
            for candidate in page:
                verdict = local_verdict(candidate, policy, now)
                if verdict.eligible and read_siro:
                    verdict = self._read_back(candidate)
                planned.append(PlannedRow(candidate, verdict))
            if len(page) < PLAN_PAGE:
                return planned
            after = page[-1].call_id

    def _read_back(self, candidate: DeletionCandidate) -> Verdict:
        assert candidate.siro_recording_id is not None
        try:
            found = self.siro.get_recording(candidate.siro_recording_id)
        except SiroError as exc:
            return Verdict(Hold.NOT_VERIFIED, f"Siro could not be read back: {exc}")
        disagreement = siro_disagreement(candidate, found)
        if disagreement is not None:
            return Verdict(Hold.NOT_VERIFIED, disagreement[0])
        return Verdict(None, f"Siro holds it as {candidate.siro_recording_id}, verified")
