"""When a recording may be deleted at the phone system: the safety rules, as pure functions.

Deleting at the source cannot be undone, so a recording goes only when every rule holds
(docs/operations/deletion-at-source.md tells operators the same):

1. deletion is on (``[source_deletion] enabled``), not paused (`siro-poller source pause`), and
   the call's provider opted in (``delete_at_source = true``);
2. the row is ``uploaded``, with Siro's recording id and the vendor's id of the recording;
3. the row was never replayed (a second Siro recording exists, the first may be gone) and its
   Siro recording was never adopted by title alone (a create without an id, or a lost answer:
   the recording found may not be the bytes we sent);
4. the grace period has passed since the upload;
5. Siro, read back now, holds the recording under the stored id, not deleted, processed
   without error, and of our length where Siro says its length (:func:`siro_disagreement`).

Rules 1-4 need only the state database (:func:`local_verdict`); rule 5 needs Siro.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from poller.domain.siro import RecordingSummary

# The step name of source-deletion events in call_events.
EVENT_STEP = "source_delete"
# Length tolerance between our probe and Siro's duration: containers round, encoders pad.
DURATION_TOLERANCE_SECONDS = 2.0
DURATION_TOLERANCE_RATIO = 0.02


class Hold(StrEnum):
    """Why a row's recording is not deleted (now, or ever)."""

    OFF = "off"  # [source_deletion] enabled = false
    PROVIDER_OFF = "provider_off"  # the provider's delete_at_source is false (or unsupported)
    PAUSED = "paused"  # `siro-poller source pause`
    NOT_UPLOADED = "not_uploaded"
    NO_IDS = "no_ids"  # no Siro recording id or no vendor recording id to delete
    REPLAYED = "replayed"
    RECONCILED = "reconciled_by_title"
    GRACE = "grace"
    NOT_VERIFIED = "not_verified"  # Siro's read-back disagrees (or has not finished)
    DONE = "deleted"  # deleted already (a 404 counts)
    REFUSED = "refused"  # an earlier run found a rule that never changes
    GAVE_UP = "gave_up"  # the delete failed max_attempts times


@dataclass(frozen=True, slots=True)
class SourceDeletionPause:
    """An operator's stop on every deletion, kept in the state database across restarts."""

    since: datetime
    actor: str
    reason: str


@dataclass(frozen=True, slots=True)
class DeletionPolicy:
    """What the configuration and the operator allow right now."""

    enabled: bool
    paused: bool
    # Providers that opted in, with their grace period.
    grace_by_provider: dict[str, timedelta] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DeletionCandidate:
    """What the state database knows of one call, for the rules."""

    call_id: int
    provider: str
    provider_call_id: str
    state: str
    recording_id: str | None
    siro_recording_id: str | None
    uploaded_at: datetime | None
    audio_duration_seconds: float | None
    replayed: bool
    reconciled: bool
    # The row's source_deletions state, if a run has handled it: pending, deleted, refused,
    # failed.
    deletion_state: str | None = None
    deletion_reason: str | None = None
    deletion_attempts: int = 0


@dataclass(frozen=True, slots=True)
class Verdict:
    hold: Hold | None
    detail: str

    @property
    def eligible(self) -> bool:
        return self.hold is None


def local_verdict(candidate: DeletionCandidate, policy: DeletionPolicy, now: datetime) -> Verdict:
    """Rules 1-4. ``eligible`` means only "ask Siro now": rule 5 is :func:`siro_disagreement`."""
    done = {
        "deleted": Verdict(Hold.DONE, "already deleted at the source"),
        "refused": Verdict(Hold.REFUSED, candidate.deletion_reason or "refused earlier"),
        "failed": Verdict(Hold.GAVE_UP, candidate.deletion_reason or "the delete kept failing"),
    }.get(candidate.deletion_state or "")
    if done is not None:
        return done
    if not policy.enabled:
        return Verdict(Hold.OFF, "[source_deletion] enabled is false")
    grace = policy.grace_by_provider.get(candidate.provider)
    if grace is None:
        return Verdict(Hold.PROVIDER_OFF, f"delete_at_source is off for {candidate.provider}")
    if policy.paused:
        return Verdict(Hold.PAUSED, "deletion is paused (`siro-poller source resume`)")
    if candidate.state != "uploaded" or candidate.uploaded_at is None:
        return Verdict(Hold.NOT_UPLOADED, f"the call is {candidate.state}, not uploaded")
    vendor_id = candidate.recording_id or candidate.provider_call_id
    if not candidate.siro_recording_id or not vendor_id:
        return Verdict(Hold.NO_IDS, "no Siro recording id or no vendor recording id")
    never = never_verdict(candidate)
    if never is not None:
        return never
    due = candidate.uploaded_at + grace
    if now < due:
        return Verdict(Hold.GRACE, f"grace period: not before {due.isoformat()}")
    return Verdict(None, "uploaded, verified locally, grace passed")


# Holds that no later turn lifts: the row is marked refused when first seen.
NEVER = frozenset({Hold.REPLAYED, Hold.RECONCILED})


def never_verdict(candidate: DeletionCandidate) -> Verdict | None:
    """Rule 3: a replayed call, or one whose Siro recording was adopted by its title alone,
    is never deleted at the source, whatever else holds."""
    if candidate.replayed:
        return Verdict(
            Hold.REPLAYED, "the call was replayed: Siro may hold a copy other than the one stored"
        )
    if candidate.reconciled:
        return Verdict(
            Hold.RECONCILED,
            "Siro's recording was adopted by its title alone (created without an id or after a "
            "lost answer): nothing proves it holds these bytes",
        )
    return None


def siro_disagreement(
    candidate: DeletionCandidate, found: RecordingSummary | None
) -> tuple[str, bool] | None:
    """Rule 5: ``None`` when Siro holds the recording as we stored it; else why not, and
    whether that may still change (Siro still processing) rather than never.

    Siro documents no byte size on a recording, so the closest documented checks stand in for
    "the same size": the id, not ``deleted``, ``processingStatus`` ``complete`` (not
    ``in-progress``, never ``error``), and ``durationInMilliseconds`` within
    :data:`DURATION_TOLERANCE_SECONDS` (or :data:`DURATION_TOLERANCE_RATIO`) of the length we
    probed, when Siro returns it.
    """
    if found is None:
        return (f"Siro does not know recording {candidate.siro_recording_id}", False)
    if found.id != candidate.siro_recording_id:
        wanted = candidate.siro_recording_id
        return (f"Siro answered with recording {found.id}, not {wanted}", False)
    if found.deleted:
        return ("Siro marks the recording deleted", False)
    status = (found.processing_status or "").lower()
    if status == "error":
        return ("Siro's processing of the recording ended in an error", False)
    if status != "complete":
        return (f"Siro has not finished processing it (processingStatus {status or 'unset'})", True)
    ours = candidate.audio_duration_seconds
    theirs = found.duration_in_milliseconds
    if ours is not None and theirs is not None:
        gap = abs(theirs / 1000 - ours)
        if gap > max(DURATION_TOLERANCE_SECONDS, ours * DURATION_TOLERANCE_RATIO):
            return (
                f"Siro's recording lasts {theirs / 1000:.1f}s, the file we sent {ours:.1f}s",
                False,
            )
    return None


def retry_delay(attempts: int, base: timedelta, cap: timedelta) -> timedelta:
    """Back-off after the ``attempts``-th failed delete: doubling from ``base``, at most ``cap``."""
    delay: timedelta = base * (2 ** max(0, attempts - 1))
    return min(cap, delay)
