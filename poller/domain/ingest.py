"""How one listed call changes its row. Pure: every store applies the same plan.

The rules, which keep rows from ever moving backwards:

- A new call is inserted ``pending``: due now if its recording is ready, waiting
  (``next_attempt_at IS NULL``) if not, or straight to ``skipped`` when a rule says so or the
  provider says there is no recording.
- A call seen again only refreshes its metadata, and only the columns that changed. A column
  the worker may fill in itself (:data:`MEASURED_COLUMNS`) keeps its value when the listing has
  none: the provider not saying is no change. A value the provider does give replaces it, with a
  ``metadata changed`` event, in any state (the audit shows what the provider said).
- A row no worker has started on (``pending``, no lease) can still be decided: a rule or a
  recording-less listing skips it, and a waiting row whose recording is now ready becomes due.
- ``downloaded``, ``uploaded``, ``failed`` and ``skipped`` rows, and leased rows, keep their
  state whatever the listing says.
- A forgotten row (``forgotten_at``, see :mod:`poller.domain.erasure`) takes nothing from a
  listing: its personal data stays erased and its state stays as `calls forget` left it.
- A row whose personal data retention pruned (``pruned_at``) does not take it back from a
  listing (see :mod:`poller.domain.retention`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from poller.domain.call_record import CallRecord
from poller.domain.filters import SkipReason, SkipVerdict
from poller.domain.records import Call
from poller.domain.retention import without_personal_columns
from poller.domain.states import CallState, RecordingState

POLL_STEP = "poll"

# The columns a provider listing owns. Everything else on a row belongs to the worker.
LISTING_COLUMNS = (
    "recording_id",
    "recording_state",
    "started_at",
    "ended_at",
    "duration_seconds",
    "direction",
    "rep_email",
    "rep_phone",
    "rep_provider_id",
    "rep_name",
    "rep_extension",
    "contact_name",
    "contact_phone",
    "recording_url",
    "raw",
)

# Listing columns the worker fills in from the downloaded audio when the provider gave no value
# (see transitions.audio_probed): a later listing without a value must not wipe the measurement.
MEASURED_COLUMNS = frozenset({"duration_seconds"})


class IngestAction(StrEnum):
    INSERTED = "inserted"
    SKIPPED = "skipped"
    BECAME_DUE = "became_due"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


@dataclass(frozen=True, slots=True)
class ListedCall:
    """A call from a listing, with the configuration's verdict on it."""

    record: CallRecord
    skip: SkipVerdict | None = None


@dataclass(frozen=True, slots=True)
class IngestChange:
    """What ingesting one listed call did (or, in a dry run, would do) to its row."""

    provider_call_id: str
    action: IngestAction
    call_id: int | None
    from_state: CallState | None
    to_state: CallState
    changed: tuple[str, ...] = ()
    message: str | None = None


@dataclass(frozen=True, slots=True)
class PlannedEvent:
    from_state: CallState | None
    to_state: CallState
    outcome: str
    message: str
    step: str = POLL_STEP

    def columns(self, call_id: int, at: datetime) -> dict[str, Any]:
        return {
            "call_id": call_id,
            "at": at,
            "from_state": self.from_state.value if self.from_state else None,
            "to_state": self.to_state.value,
            "step": self.step,
            "outcome": self.outcome,
            "message": self.message,
        }


@dataclass(frozen=True, slots=True)
class IngestPlan:
    """The change, the columns to write (all of them for an insert) and the audit event."""

    change: IngestChange
    values: dict[str, Any] = field(default_factory=dict)
    event: PlannedEvent | None = None

    @property
    def inserts(self) -> bool:
        return self.change.call_id is None and self.change.from_state is None


def listing_columns(record: CallRecord) -> dict[str, Any]:
    return {
        "recording_id": record.recording_id,
        "recording_state": record.recording_state.value,
        "started_at": record.started_at,
        "ended_at": record.ended_at,
        "duration_seconds": record.duration_seconds,
        "direction": record.direction.value if record.direction else None,
        "rep_email": record.rep_email,
        "rep_phone": record.rep_phone,
        "rep_provider_id": record.rep_provider_id,
        "rep_name": record.rep_name,
        "rep_extension": record.rep_extension,
        "contact_name": record.contact_name,
        "contact_phone": record.contact_phone,
        "recording_url": record.recording_url,
        "raw": dict(record.raw),
    }


def _verdict(listed: ListedCall) -> SkipVerdict | None:
    if listed.skip is not None:
        return listed.skip
    if listed.record.recording_state is RecordingState.NONE:
        if listed.record.recording_too_short:
            return SkipVerdict(
                SkipReason.SHORT_RECORDING,
                "the provider kept no recording: it was too short (shortRecording)",
            )
        reason = listed.record.no_recording_reason or "the provider reports no recording"
        return SkipVerdict(SkipReason.NO_RECORDING, reason)
    if listed.record.rep_undecided_reason is not None:
        return SkipVerdict(SkipReason.REP_UNDECIDED, listed.record.rep_undecided_reason)
    return None


def plan_ingest(
    provider: str, existing: Call | None, listed: ListedCall, now: datetime
) -> IngestPlan:
    if existing is None:
        return _plan_insert(provider, listed, now)
    return _plan_update(existing, listed, now)


def _plan_insert(provider: str, listed: ListedCall, now: datetime) -> IngestPlan:
    record = listed.record
    values: dict[str, Any] = {
        "provider": provider,
        "provider_call_id": record.provider_call_id,
        **listing_columns(record),
        "attempts": 0,
        "error_kind": None,
        "last_error": None,
        "created_at": now,
        "updated_at": now,
    }
    verdict = _verdict(listed)
    if verdict is not None:
        values.update(
            state=CallState.SKIPPED.value,
            next_attempt_at=None,
            error_kind=verdict.reason.value,
            last_error=verdict.message,
        )
        return IngestPlan(
            IngestChange(
                record.provider_call_id,
                IngestAction.SKIPPED,
                None,
                None,
                CallState.SKIPPED,
                message=f"{verdict.reason}: {verdict.message}",
            ),
            values,
            PlannedEvent(None, CallState.SKIPPED, "skipped", verdict.message),
        )
    ready = record.recording_state is RecordingState.READY
    message = "listed; recording ready" if ready else "listed; waiting for the recording"
    values.update(state=CallState.PENDING.value, next_attempt_at=now if ready else None)
    return IngestPlan(
        IngestChange(
            record.provider_call_id,
            IngestAction.INSERTED,
            None,
            None,
            CallState.PENDING,
            message=message,
        ),
        values,
        PlannedEvent(None, CallState.PENDING, "listed", message),
    )


def _plan_update(existing: Call, listed: ListedCall, now: datetime) -> IngestPlan:
    record = listed.record
    if existing.forgotten_at is not None:
        change = IngestChange(
            record.provider_call_id,
            IngestAction.UNCHANGED,
            existing.id,
            existing.state,
            existing.state,
        )
        return IngestPlan(change)
    columns = {
        name: value
        for name, value in listing_columns(record).items()
        if value is not None or name not in MEASURED_COLUMNS
    }
    if existing.pruned_at is not None:
        # Retention removed the personal data on purpose: a listing does not bring it back.
        columns = without_personal_columns(columns)
    changed = tuple(name for name, value in columns.items() if getattr(existing, name) != value)
    values: dict[str, Any] = {name: columns[name] for name in changed}
    not_started = existing.state is CallState.PENDING and existing.lease_owner is None
    waiting = not_started and existing.next_attempt_at is None
    verdict = _verdict(listed) if not_started else None

    def plan(action: IngestAction, to_state: CallState, event: PlannedEvent | None) -> IngestPlan:
        if values:
            values["updated_at"] = now
        change = IngestChange(
            record.provider_call_id,
            action,
            existing.id,
            existing.state,
            to_state,
            changed,
            event.message if event else None,
        )
        return IngestPlan(change, values, event)

    if verdict is not None:
        values.update(
            state=CallState.SKIPPED.value,
            next_attempt_at=None,
            error_kind=verdict.reason.value,
            last_error=verdict.message,
        )
        event = PlannedEvent(existing.state, CallState.SKIPPED, "skipped", verdict.message)
        return plan(IngestAction.SKIPPED, CallState.SKIPPED, event)
    if waiting and record.recording_state is RecordingState.READY:
        values["next_attempt_at"] = now
        event = PlannedEvent(existing.state, existing.state, "recording_ready", "recording ready")
        return plan(IngestAction.BECAME_DUE, existing.state, event)
    if not changed:
        return plan(IngestAction.UNCHANGED, existing.state, None)
    # The raw document alone changes often (counters, rotating links) and says little to an
    # auditor; it is refreshed quietly, while real metadata changes get an event.
    visible = [name for name in changed if name != "raw"]
    update_event = (
        PlannedEvent(
            existing.state, existing.state, "updated", "metadata changed: " + ", ".join(visible)
        )
        if visible
        else None
    )
    return plan(IngestAction.UPDATED, existing.state, update_event)


def last_sighting_per_call(listed: Iterable[ListedCall]) -> list[ListedCall]:
    """One entry per call id, the last one listed, in first-seen order."""
    by_id: dict[str, ListedCall] = {}
    for item in listed:
        by_id[item.record.provider_call_id] = item
    return list(by_id.values())


def no_recording_message(wait_hours: float) -> str:
    return f"no recording {wait_hours:g} h after the call was first listed"
