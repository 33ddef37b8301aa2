"""The SQL side of deletion at the source (:class:`poller.ports.store.SourceDeletionStore`).

Kept apart from :mod:`poller.adapters.sql.store`: its own two tables, and reads of ``calls``
and ``call_events`` that never write them (except the events it adds). A deletion is claimed
as the worker claims a call: an ``INSERT ... ON CONFLICT DO NOTHING`` of the row's
``source_deletions`` entry, or a conditional ``UPDATE`` of an entry whose lease is free and
whose retry is due. On PostgreSQL two processes racing for one row serialise on its key and
exactly one wins; on SQLite the writer lock does the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, and_, exists, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from poller.adapters.sql.database import read_transaction, write_transaction
from poller.adapters.sql.models import call_events_table as call_events
from poller.adapters.sql.models import calls_table as calls
from poller.adapters.sql.models import source_deletion_pauses_table as pauses
from poller.adapters.sql.models import source_deletions_table as deletions
from poller.domain.records import EventDraft
from poller.domain.source_deletion import (
    EVENT_STEP,
    DeletionCandidate,
    SourceDeletionPause,
)
from poller.domain.transitions import REPLAY_STEP

GLOBAL_SCOPE = "all"
DELETION_STATES = ("pending", "deleted", "refused", "failed")


class SqlSourceDeletions:
    """``source_deletions`` and ``source_deletion_pauses`` on SQLite or PostgreSQL."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert

    # -- the operator's pause ------------------------------------------------------------

    def deletion_paused(self) -> SourceDeletionPause | None:
        with read_transaction(self.engine) as conn:
            row = conn.execute(select(pauses).where(pauses.c.scope == GLOBAL_SCOPE)).first()
        if row is None:
            return None
        return SourceDeletionPause(since=row.since, actor=row.actor, reason=row.reason)

    def pause_deletion(self, now: datetime, actor: str, reason: str) -> SourceDeletionPause:
        with write_transaction(self.engine) as conn:
            conn.execute(
                self._insert(pauses)
                .values(scope=GLOBAL_SCOPE, since=now, actor=actor, reason=reason)
                .on_conflict_do_nothing(index_elements=["scope"])
            )
            row = conn.execute(select(pauses).where(pauses.c.scope == GLOBAL_SCOPE)).one()
        return SourceDeletionPause(since=row.since, actor=row.actor, reason=row.reason)

    def resume_deletion(self) -> SourceDeletionPause | None:
        with write_transaction(self.engine) as conn:
            row = conn.execute(
                pauses.delete().where(pauses.c.scope == GLOBAL_SCOPE).returning(*pauses.c)
            ).first()
        if row is None:
            return None
        return SourceDeletionPause(since=row.since, actor=row.actor, reason=row.reason)

    # -- candidates ----------------------------------------------------------------------

    def deletion_candidates(
        self,
        providers: Mapping[str, datetime] | None,
        now: datetime,
        limit: int,
        *,
        after_id: int = 0,
        due_only: bool = True,
        flagged_only: bool = False,
        changed_since: datetime | None = None,
    ) -> list[DeletionCandidate]:
        """See the port; ``providers=None`` (for `source purge --dry-run`): every uploaded row."""
        if providers is not None and not providers:
            return []
        replayed = exists().where(
            call_events.c.call_id == calls.c.id, call_events.c.step == REPLAY_STEP
        )
        # The duplicate guard and the unconfirmed-create search adopt a recording by its
        # title: their upload event says "adopted".
        adopted = exists().where(
            call_events.c.call_id == calls.c.id,
            call_events.c.step == "upload",
            call_events.c.outcome == "adopted",
        )
        query = (
            select(
                calls.c.id,
                calls.c.provider,
                calls.c.provider_call_id,
                calls.c.state,
                calls.c.recording_id,
                calls.c.siro_recording_id,
                calls.c.uploaded_at,
                calls.c.audio_duration_seconds,
                replayed.label("replayed"),
                adopted.label("reconciled"),
                deletions.c.state.label("deletion_state"),
                deletions.c.reason.label("deletion_reason"),
                deletions.c.attempts.label("deletion_attempts"),
            )
            .select_from(calls.outerjoin(deletions, deletions.c.call_id == calls.c.id))
            .where(calls.c.state == "uploaded", calls.c.id > after_id)
            .order_by(calls.c.id)
            .limit(limit)
        )
        if providers is not None:
            query = query.where(
                or_(
                    *(
                        and_(calls.c.provider == name, calls.c.uploaded_at <= latest)
                        for name, latest in providers.items()
                    )
                )
            )
        if changed_since is not None:
            # In the terms of ix_calls_state_updated_at, so the lookup follows that index.
            query = query.where(calls.c.updated_at >= changed_since)
        if flagged_only:
            query = query.where(or_(replayed, adopted))
        if due_only:
            query = query.where(
                or_(
                    deletions.c.call_id.is_(None),
                    and_(
                        deletions.c.state == "pending",
                        or_(
                            deletions.c.next_attempt_at.is_(None),
                            deletions.c.next_attempt_at <= now,
                        ),
                        or_(
                            deletions.c.lease_owner.is_(None),
                            deletions.c.lease_expires_at <= now,
                        ),
                    ),
                )
            )
        with read_transaction(self.engine) as conn:
            rows = conn.execute(query).all()
        return [_candidate(row._mapping) for row in rows]

    # -- claims and results --------------------------------------------------------------

    def claim_deletion(
        self, call_id: int, provider: str, owner: str, now: datetime, lease_until: datetime
    ) -> bool:
        with write_transaction(self.engine) as conn:
            inserted = conn.execute(
                self._insert(deletions)
                .values(
                    call_id=call_id,
                    provider=provider,
                    state="pending",
                    attempts=0,
                    lease_owner=owner,
                    lease_expires_at=lease_until,
                    created_at=now,
                    updated_at=now,
                )
                .on_conflict_do_nothing(index_elements=["call_id"])
                .returning(deletions.c.call_id)
            ).first()
            if inserted is not None:
                return True
            taken = conn.execute(
                update(deletions)
                .where(
                    deletions.c.call_id == call_id,
                    deletions.c.state == "pending",
                    or_(deletions.c.lease_owner.is_(None), deletions.c.lease_expires_at <= now),
                    or_(deletions.c.next_attempt_at.is_(None), deletions.c.next_attempt_at <= now),
                )
                .values(lease_owner=owner, lease_expires_at=lease_until, updated_at=now)
            )
            return taken.rowcount == 1

    def record_deletion(
        self,
        call_id: int,
        owner: str,
        now: datetime,
        *,
        state: str,
        event: EventDraft,
        next_attempt_at: datetime | None = None,
        count_attempt: bool = False,
        reason: str | None = None,
    ) -> bool:
        if state not in DELETION_STATES:
            raise ValueError(f"unknown source deletion state {state!r}")
        values: dict[str, Any] = {
            "state": state,
            "lease_owner": None,
            "lease_expires_at": None,
            "next_attempt_at": next_attempt_at,
            "reason": reason,
            "http_status": event.http_status,
            "updated_at": now,
        }
        if count_attempt:
            values["attempts"] = deletions.c.attempts + 1
        if state == "deleted":
            values["deleted_at"] = now
        with write_transaction(self.engine) as conn:
            done = conn.execute(
                update(deletions)
                .where(deletions.c.call_id == call_id, deletions.c.lease_owner == owner)
                .values(**values)
            )
            if done.rowcount != 1:
                return False
            conn.execute(call_events.insert().values(**_event(call_id, now, event)))
        return True

    def refuse_deletion(self, call_id: int, provider: str, now: datetime, reason: str) -> bool:
        with write_transaction(self.engine) as conn:
            inserted = conn.execute(
                self._insert(deletions)
                .values(
                    call_id=call_id,
                    provider=provider,
                    state="refused",
                    attempts=0,
                    reason=reason,
                    created_at=now,
                    updated_at=now,
                )
                .on_conflict_do_nothing(index_elements=["call_id"])
                .returning(deletions.c.call_id)
            ).first()
            if inserted is None:
                return False
            event = EventDraft(step=EVENT_STEP, outcome="refused", message=reason)
            conn.execute(call_events.insert().values(**_event(call_id, now, event)))
        return True

    def deletion_counts(self) -> dict[str, int]:
        """How many rows are in each ``source_deletions`` state, for `source status`."""
        with read_transaction(self.engine) as conn:
            rows = conn.execute(
                select(deletions.c.state, func.count()).group_by(deletions.c.state)
            ).all()
        return {row[0]: int(row[1]) for row in rows}


def _candidate(row: Mapping[Any, Any]) -> DeletionCandidate:
    return DeletionCandidate(
        call_id=row["id"],
        provider=row["provider"],
        provider_call_id=row["provider_call_id"],
        state=row["state"],
        recording_id=row["recording_id"],
        siro_recording_id=row["siro_recording_id"],
        uploaded_at=row["uploaded_at"],
        audio_duration_seconds=row["audio_duration_seconds"],
        replayed=bool(row["replayed"]),
        reconciled=bool(row["reconciled"]),
        deletion_state=row["deletion_state"],
        deletion_reason=row["deletion_reason"],
        deletion_attempts=row["deletion_attempts"] or 0,
    )


def _event(call_id: int, now: datetime, event: EventDraft) -> dict[str, Any]:
    # The call's state does not change: a deletion at the source is beside the upload.
    return {
        "call_id": call_id,
        "at": now,
        "from_state": None,
        "to_state": None,
        "step": event.step,
        "outcome": event.outcome,
        "http_status": event.http_status,
        "message": event.message,
        "duration_ms": event.duration_ms,
    }
