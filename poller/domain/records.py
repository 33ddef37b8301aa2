"""What the state database holds, as plain typed records shared by every store."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

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
    contact_name: str | None = None
    contact_phone: str | None = None
    title: str | None = None
    recording_url: str | None = None
    audio_format: str | None = None
    size_bytes: int | None = None
    sha256: str | None = None
    spool_path: str | None = None
    siro_file_url: str | None = None
    siro_recording_id: str | None = None
    uploaded_at: datetime | None = None
    siro_create_sent_at: datetime | None = None
    raw: dict[str, Any] | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

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
