"""What each worker transition writes on a call row: one definition that every store applies.

The stores add the lease guard, ``updated_at`` and the event; the columns are decided here,
as they are stored (``state`` as its text value).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from poller.domain.attribution import ATTRIBUTE_STEP, NO_ATTRIBUTION
from poller.domain.audio import AudioFacts
from poller.domain.records import Call, EventDraft
from poller.domain.states import REQUEUEABLE_STATES, CallState

# Every step that ends a worker's hold on a row lets go of these.
LET_GO: dict[str, Any] = {
    "lease_owner": None,
    "lease_expires_at": None,
    "next_attempt_at": None,
    "spool_path": None,
}


def audio_probed(audio: AudioFacts, *, provider_duration_seconds: int | None) -> dict[str, Any]:
    """What the downloaded audio is; its length stands in for a duration the provider omitted."""
    values: dict[str, Any] = {
        "source_format": audio.container,
        "source_codec": audio.codec,
        "audio_duration_seconds": audio.duration_seconds,
        "audio_channels": audio.channels,
        "audio_sample_rate": audio.sample_rate,
    }
    if provider_duration_seconds is None:
        values["duration_seconds"] = round(audio.duration_seconds)
    return values


def downloaded(
    now: datetime, *, audio_format: str, size_bytes: int, sha256: str, spool_path: str
) -> dict[str, Any]:
    """The recording is in the spool, as Siro takes it; the lease stays for the upload that
    follows at once. ``size_bytes`` and ``sha256`` are those of the file that will be sent."""
    return {
        "state": CallState.DOWNLOADED.value,
        "audio_format": audio_format,
        "size_bytes": size_bytes,
        "sha256": sha256,
        "spool_path": spool_path,
        "next_attempt_at": now,  # due again at once should this worker stop before uploading
        "last_error": None,
        "error_kind": None,
    }


def uploaded(now: datetime, *, siro_recording_id: str, siro_file_url: str | None) -> dict[str, Any]:
    return {
        **LET_GO,
        "state": CallState.UPLOADED.value,
        "siro_recording_id": siro_recording_id,
        "siro_file_url": siro_file_url,
        "uploaded_at": now,
        "last_error": None,
        "error_kind": None,
    }


def retry_later(
    next_attempt_at: datetime, error_kind: str, message: str, *, back_to_pending: bool
) -> dict[str, Any]:
    changes: dict[str, Any] = {
        **LET_GO,
        "next_attempt_at": next_attempt_at,
        "error_kind": error_kind,
        "last_error": message,
    }
    if back_to_pending:
        changes["state"] = CallState.PENDING.value
    else:
        del changes["spool_path"]  # the downloaded file is still needed for the upload
    return changes


def given_back(now: datetime) -> dict[str, Any]:
    """Back in the queue as it was (state, spool file, last error kept), due at ``now``; the
    store also refunds the claim's attempt. For a credential pause: not the call's fault."""
    return {"lease_owner": None, "lease_expires_at": None, "next_attempt_at": now}


def parked(state: CallState, error_kind: str, message: str) -> dict[str, Any]:
    if state not in (CallState.FAILED, CallState.SKIPPED):
        raise ValueError(f"rows are parked as failed or skipped, not {state}")
    return {**LET_GO, "state": state.value, "error_kind": error_kind, "last_error": message}


def requeued(now: datetime) -> dict[str, Any]:
    """Back in the queue, due now, with a fresh attempt budget (`calls retry`)."""
    return {
        "state": CallState.PENDING.value,
        "attempts": 0,
        "next_attempt_at": now,
        "last_error": None,
        "error_kind": None,
        "lease_owner": None,
        "lease_expires_at": None,
    }


def requeue_message(actor: str, call: Call) -> str:
    return f"requeued by {actor}; was {call.error_kind or call.state}: {call.last_error or '-'}"


@dataclass(frozen=True, slots=True)
class RequeueSelection:
    """Which parked rows `calls retry` puts back: any of ``states``, narrowed by the rest."""

    states: frozenset[CallState] = REQUEUEABLE_STATES
    error_kind: str | None = None
    # Calls that started at or after this instant (as `calls list --since`).
    since: datetime | None = None
    # Calls whose rep was found so, or ``none`` (as `calls list --attribution`).
    attribution: str | None = None

    def __post_init__(self) -> None:
        if not self.states or not self.states <= REQUEUEABLE_STATES:
            raise ValueError("only failed or skipped calls can be requeued")

    def matches(self, call: Call) -> bool:
        return (
            call.state in self.states
            and (self.error_kind is None or call.error_kind == self.error_kind)
            and (
                self.since is None
                or (call.started_at is not None and call.started_at >= self.since)
            )
            and (
                self.attribution is None or (call.attribution or NO_ATTRIBUTION) == self.attribution
            )
        )


# A replay sends an uploaded call through the upload again, as a new Siro recording.
REPLAY_STEP = "replay"


def replayed(now: datetime) -> dict[str, Any]:
    """An uploaded row back in the queue, due now, to be downloaded and uploaded again.

    Siro's recording id and the duplicate guard's mark are cleared: the guard would otherwise
    find the first recording and adopt it instead of making the second one asked for.
    """
    return {
        **requeued(now),
        "siro_recording_id": None,
        "siro_file_url": None,
        "uploaded_at": None,
        "siro_create_sent_at": None,
        "spool_path": None,
    }


def replay_message(actor: str, call: Call) -> str:
    uploaded = call.uploaded_at.isoformat() if call.uploaded_at else "an unknown time"
    return (
        f"replayed by {actor} with --allow-duplicate: previous Siro recording "
        f"{call.siro_recording_id} (uploaded {uploaded}) stays in Siro; uploading again"
    )


@dataclass(frozen=True, slots=True)
class AttributionNote:
    """How the rep of a leased call was resolved: two columns of the row and an ``attribute``
    event. Written on its own, or with the create call's record (one transaction fewer)."""

    siro_user_id: str | None
    method: str
    detail: str

    def changes(self) -> dict[str, Any]:
        return {"siro_user_id": self.siro_user_id, "attribution": self.method}

    def event(self) -> EventDraft:
        return EventDraft(step=ATTRIBUTE_STEP, outcome=self.method, message=self.detail)


def create_sent_event(sent: bool, owner: str) -> EventDraft:
    if sent:
        return EventDraft(
            step="upload", outcome="create_sent", message=f"create call going out from {owner}"
        )
    return EventDraft(step="upload", outcome="create_refused", message="Siro made no recording")


def rescue_message(previous_owner: str, owner: str) -> str:
    return (
        f"the lease of {previous_owner} ran out (its worker stopped mid-step); "
        f"taken over by {owner}"
    )


def release_message(owner: str) -> str:
    return f"{owner} stopped before finishing; due again now"
