"""The worker's lease-guarded writes, shared by every store.

Each store supplies one primitive, :meth:`LeaseGuardedWrites._transition` (apply changes and an
event only while the owner holds the lease); the writes themselves are defined once, here, in
terms of :mod:`poller.domain.transitions`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from poller.domain import transitions
from poller.domain.audio import AudioFacts
from poller.domain.records import Call, EventDraft
from poller.domain.states import CallState


class LeaseGuardedWrites(ABC):
    @abstractmethod
    def _transition(
        self,
        call_id: int,
        owner: str,
        now: datetime,
        event: EventDraft,
        values: dict[str, Any],
        *,
        earlier: Sequence[EventDraft] = (),
        flush: bool = True,
    ) -> Call | None:
        """Apply ``values`` and write ``earlier`` then ``event``, all at once and only while
        ``owner`` holds the row's lease.

        ``flush=False`` lets the commit return before the database has flushed it to disk
        (where the backend can): for writes whose loss in a database crash only repeats
        work, never the ones the duplicate guard stands on (the create call's record and
        the upload's result).
        """

    def mark_downloaded(
        self,
        call_id: int,
        owner: str,
        now: datetime,
        *,
        audio_format: str,
        size_bytes: int,
        sha256: str,
        spool_path: str,
        event: EventDraft,
        audio: AudioFacts | None = None,
        provider_duration_seconds: int | None = None,
    ) -> Call | None:
        changes = transitions.downloaded(
            now,
            audio_format=audio_format,
            size_bytes=size_bytes,
            sha256=sha256,
            spool_path=spool_path,
        )
        if audio is not None:
            changes |= transitions.audio_probed(
                audio, provider_duration_seconds=provider_duration_seconds
            )
        # Lost in a database crash, the row is downloaded again: no flush to wait for.
        return self._transition(call_id, owner, now, event, changes, flush=False)

    def record_audio(
        self,
        call_id: int,
        owner: str,
        now: datetime,
        audio: AudioFacts,
        event: EventDraft,
        *,
        provider_duration_seconds: int | None = None,
    ) -> bool:
        changes = transitions.audio_probed(
            audio, provider_duration_seconds=provider_duration_seconds
        )
        return self._transition(call_id, owner, now, event, changes, flush=False) is not None

    def mark_uploaded(
        self,
        call_id: int,
        owner: str,
        now: datetime,
        *,
        siro_recording_id: str,
        siro_file_url: str | None,
        event: EventDraft,
    ) -> bool:
        changes = transitions.uploaded(
            now, siro_recording_id=siro_recording_id, siro_file_url=siro_file_url
        )
        return self._transition(call_id, owner, now, event, changes) is not None

    def schedule_retry(
        self,
        call_id: int,
        owner: str,
        now: datetime,
        next_attempt_at: datetime,
        error_kind: str,
        message: str,
        event: EventDraft,
        *,
        back_to_pending: bool = False,
    ) -> bool:
        changes = transitions.retry_later(
            next_attempt_at, error_kind, message, back_to_pending=back_to_pending
        )
        return self._transition(call_id, owner, now, event, changes) is not None

    def finish(
        self,
        call_id: int,
        owner: str,
        now: datetime,
        state: CallState,
        error_kind: str,
        message: str,
        event: EventDraft,
    ) -> bool:
        changes = transitions.parked(state, error_kind, message)
        return self._transition(call_id, owner, now, event, changes) is not None
