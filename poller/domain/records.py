"""What the state database holds, as plain typed records shared by every store."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from poller.domain.pauses import CredentialPause
from poller.domain.states import CallState


@dataclass(frozen=True, slots=True)
class Call:
    """One provider call recording and everything known about its way into Siro."""

    id: int
    provider: str
    provider_call_id: str
    state: CallState
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    error_kind: str | None = None
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    recording_id: str | None = None
    recording_state: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    duration_seconds: int | None = None
    direction: str | None = None
    rep_email: str | None = None
    rep_phone: str | None = None
    rep_provider_id: str | None = None
    rep_name: str | None = None
    rep_extension: str | None = None
    siro_user_id: str | None = None
    attribution: str | None = None  # how siro_user_id was found: an AttributionMethod value
    contact_name: str | None = None
    contact_phone: str | None = None
    title: str | None = None
    recording_url: str | None = None
    audio_format: str | None = None
    size_bytes: int | None = None
    sha256: str | None = None
    spool_path: str | None = None
    source_format: str | None = None  # container of the downloaded file: m4a, ogg, wav...
    source_codec: str | None = None
    audio_duration_seconds: float | None = None
    audio_channels: int | None = None
    audio_sample_rate: int | None = None
    siro_file_url: str | None = None
    siro_recording_id: str | None = None
    uploaded_at: datetime | None = None
    siro_create_sent_at: datetime | None = None
    raw: dict[str, Any] | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    # Set by `calls forget`: personal data erased, never ingested or uploaded again.
    forgotten_at: datetime | None = None
    # When retention removed the personal data (poller.domain.retention); None: not pruned.
    pruned_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class CallEvent:
    """One line of a call's append-only audit log: a transition or an attempt."""

    id: int
    call_id: int
    at: datetime
    from_state: str | None
    to_state: str | None
    step: str
    outcome: str
    http_status: int | None = None
    message: str | None = None
    duration_ms: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class EventDraft:
    """An audit-log line the worker asks the store to write along with a transition."""

    step: str
    outcome: str
    http_status: int | None = None
    message: str | None = None
    duration_ms: int | None = None


@dataclass(frozen=True, slots=True)
class PollCursor:
    """Where polling of one provider stands: everything before ``cursor_value`` is listed."""

    provider: str
    cursor_value: datetime | None = None
    last_polled_at: datetime | None = None
    last_success_at: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    waiting_rechecked_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class StatusSummary:
    """The numbers an operator wants first: what is where, and what is stuck."""

    counts: dict[str, int]
    due_now: int
    oldest_due_at: datetime | None
    cursors: list[PollCursor] = field(default_factory=list)
    # Per provider: records that failed mapping and have not mapped since (unmapped_records).
    unmapped: dict[str, int] = field(default_factory=dict)
    # Credential pauses in force (credential_pauses), by scope.
    pauses: list[CredentialPause] = field(default_factory=list)
    # Worker processes by their last heartbeat, freshest first (worker_heartbeats).
    workers: list[WorkerHeartbeat] = field(default_factory=list)
    # Uploaded calls per attribution kind (attribution.ATTRIBUTION_KINDS, every kind listed):
    # how the rep of each recording in Siro was found.
    uploaded_by_attribution: dict[str, int] = field(default_factory=dict)
    # Per provider: unmapped records retention expired, never mapped (their raw text is gone).
    unmapped_expired: dict[str, int] = field(default_factory=dict)
    # Per provider: calls `calls forget` erased, kept as tombstones (forgotten_at set). They are
    # in ``counts`` too, by state: uploaded if Siro has them, otherwise skipped.
    forgotten: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class WorkerHeartbeat:
    """One row of ``worker_heartbeats``: a worker process that was alive at ``beat_at``."""

    owner: str
    started_at: datetime
    beat_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class DirectoryUser:
    """One row of ``siro_users``: a Siro user as last listed, with the keys reps are matched by.

    ``email_lower`` and ``phone_e164`` are the normalised forms lookups use. A user Siro no
    longer lists is kept, with ``missing_since`` set, so old rows can still be explained.
    """

    id: str
    email: str | None = None
    email_lower: str | None = None
    phone_number: str | None = None
    phone_e164: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    external_id: str | None = None
    organization_id: str | None = None
    disabled: bool = False
    synced_at: datetime | None = None  # when Siro last listed this user
    missing_since: datetime | None = None  # first sync that no longer listed the user

    @property
    def active(self) -> bool:
        """Listed by Siro and not disabled: someone a recording may be attributed to."""
        return not self.disabled and self.missing_since is None

    @property
    def full_name(self) -> str:
        return " ".join(part for part in (self.first_name, self.last_name) if part)

    @property
    def label(self) -> str:
        """``id (Name)`` for messages; the email when there is no name."""
        shown = self.full_name or self.email
        return f"{self.id} ({shown})" if shown else self.id

    @property
    def status(self) -> str:
        if self.missing_since is not None:
            return "no longer listed by Siro"
        return "disabled" if self.disabled else "active"

    def same_profile(self, other: DirectoryUser) -> bool:
        """Whether Siro says the same about both, whatever the sync times."""
        return all(
            getattr(self, name) == getattr(other, name) for name in DIRECTORY_PROFILE_COLUMNS
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# The columns of siro_users that come from Siro; the rest is the sync's bookkeeping.
DIRECTORY_PROFILE_COLUMNS = (
    "email",
    "email_lower",
    "phone_number",
    "phone_e164",
    "first_name",
    "last_name",
    "external_id",
    "organization_id",
    "disabled",
)


@dataclass(frozen=True, slots=True)
class UsersSyncResult:
    """What one copy of Siro's user list into ``siro_users`` changed."""

    listed: int  # users in Siro's list
    added: int  # new to the table
    updated: int  # known, with a changed profile (email, phone, name, disabled...)
    returned: int  # listed again after having been missing
    missing: int  # newly marked missing: known, no longer listed
    disabled: int  # of the listed, how many Siro marks disabled

    def summary(self) -> str:
        return (
            f"{self.listed} users listed by Siro ({self.disabled} disabled): {self.added} new, "
            f"{self.updated} changed, {self.returned} back, {self.missing} no longer listed"
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class UnmappedDraft:
    """A listed record that failed mapping, as the poll cycle hands it to the store.

    ``raw`` is the stored form of the record (sanitised, capped JSON text); ``raw_sha256``
    keys it, so a record listed again each cycle stays one row.
    """

    window_start: datetime
    window_end: datetime
    page: int
    item_index: int
    reason: str
    raw: str
    raw_sha256: str
    provider_call_id: str | None = None
    # Set when the record is kept as a marker only, its raw text dropped at once: its provider
    # already holds retention.unmapped_max_kept unmapped records (poller.domain.retention).
    expired_at: datetime | None = None
    expired_reason: str | None = None


@dataclass(frozen=True, slots=True)
class UnmappedRecord:
    """One row of ``unmapped_records``: a record kept because it failed mapping.

    Where it was last seen (window, page, index), why it failed the last time, and, once a
    later mapping read it, when and as which call row (``resolved_at``, ``resolved_call_id``).
    """

    id: int
    provider: str
    raw_sha256: str
    window_start: datetime
    window_end: datetime
    page: int
    item_index: int
    reason: str
    raw: str
    first_seen_at: datetime
    last_seen_at: datetime
    times_seen: int = 1
    provider_call_id: str | None = None
    resolved_at: datetime | None = None
    resolved_call_id: int | None = None
    forgotten_at: datetime | None = None  # emptied by `calls forget`
    # Failed re-mappings so far, and when the next one is due (None: at the next cycle).
    remap_attempts: int = 0
    next_remap_at: datetime | None = None
    # When retention gave up on it, and why; its raw text is gone then (poller.domain.retention).
    expired_at: datetime | None = None
    expired_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class BackfillRun:
    """One row of ``backfill_runs``: a past range listed on request, apart from the cursor.

    ``listed_until`` is where the listing stands: everything of ``[since, listed_until)`` is
    in ``calls``; an interrupted run resumes there. The counts add up over every resumption.
    """

    id: int
    provider: str
    since: datetime
    until: datetime
    listed_until: datetime
    started_at: datetime
    updated_at: datetime
    windows: int = 0  # spans listed to the end
    listed: int = 0  # records the provider returned
    new_calls: int = 0  # inserted rows (skipped ones included: known as skipped from now on)
    known: int = 0  # rows that were already in the table
    unmapped: int = 0  # records that failed mapping, kept in unmapped_records
    finished_at: datetime | None = None
    last_error: str | None = None

    @property
    def done(self) -> bool:
        return self.finished_at is not None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class BackfillCounts:
    """What one listed span added to a :class:`BackfillRun`'s counts."""

    windows: int = 0
    listed: int = 0
    new_calls: int = 0
    known: int = 0
    unmapped: int = 0
