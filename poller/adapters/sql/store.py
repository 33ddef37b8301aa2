"""The SQL implementation of :class:`poller.ports.store.Store`, for SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, RowMapping, func, insert, or_, select, update

from poller.adapters.sql.database import read_transaction, write_transaction
from poller.adapters.sql.models import call_events_table as call_events
from poller.adapters.sql.models import calls_table as calls
from poller.adapters.sql.models import poll_cursors_table as poll_cursors
from poller.domain.records import Call, CallEvent, PollCursor, StatusSummary
from poller.domain.states import REQUEUEABLE_STATES, WORKABLE_STATES, CallState
from poller.ports.store import NotRequeueable


def call_from_row(row: RowMapping) -> Call:
    values = dict(row)
    values["state"] = CallState(values["state"])
    return Call(**values)


def due_clause(now: datetime) -> Any:
    """Rows a worker may take now: workable and due, or holding a lease that has run out.

    ``next_attempt_at IS NULL`` means nothing to do yet (a call waiting for its recording).
    """
    return or_(
        (calls.c.state.in_([s.value for s in WORKABLE_STATES]))
        & (calls.c.lease_owner.is_(None))
        & (calls.c.next_attempt_at <= now),
        (calls.c.lease_owner.is_not(None)) & (calls.c.lease_expires_at <= now),
    )


class SqlStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- reading -------------------------------------------------------------------------

    def status(self, now: datetime) -> StatusSummary:
        with read_transaction(self.engine) as conn:
            counts = {state.value: 0 for state in CallState}
            for state, count in conn.execute(
                select(calls.c.state, func.count()).group_by(calls.c.state)
            ):
                counts[state] = count
            due = conn.execute(
                select(func.count(), func.min(calls.c.next_attempt_at)).where(due_clause(now))
            ).one()
            cursors = self._cursors(conn)
        return StatusSummary(counts=counts, due_now=due[0], oldest_due_at=due[1], cursors=cursors)

    def list_calls(
        self,
        *,
        state: CallState | None = None,
        since: datetime | None = None,
        limit: int = 100,
    ) -> list[Call]:
        query = select(calls).order_by(calls.c.id.desc()).limit(limit)
        if state is not None:
            query = query.where(calls.c.state == state.value)
        if since is not None:
            query = query.where(calls.c.started_at >= since)
        with read_transaction(self.engine) as conn:
            return [call_from_row(row._mapping) for row in conn.execute(query)]

    def get_call(self, call_id: int) -> Call | None:
        with read_transaction(self.engine) as conn:
            row = conn.execute(select(calls).where(calls.c.id == call_id)).first()
        return call_from_row(row._mapping) if row else None

    def find_calls(self, reference: str) -> list[Call]:
        condition = calls.c.provider_call_id == reference
        if reference.isdigit():
            condition = or_(condition, calls.c.id == int(reference))
        with read_transaction(self.engine) as conn:
            rows = conn.execute(select(calls).where(condition).order_by(calls.c.id))
            return [call_from_row(row._mapping) for row in rows]

    def events_for(self, call_id: int) -> list[CallEvent]:
        query = (
            select(call_events).where(call_events.c.call_id == call_id).order_by(call_events.c.id)
        )
        with read_transaction(self.engine) as conn:
            return [CallEvent(**row._mapping) for row in conn.execute(query)]

    def cursors(self) -> list[PollCursor]:
        with read_transaction(self.engine) as conn:
            return self._cursors(conn)

    def _cursors(self, conn: Connection) -> list[PollCursor]:
        rows = conn.execute(select(poll_cursors).order_by(poll_cursors.c.provider))
        return [PollCursor(**row._mapping) for row in rows]

    # -- writing -------------------------------------------------------------------------

    def requeue(self, call_id: int, now: datetime, *, actor: str = "cli") -> Call:
        with write_transaction(self.engine) as conn:
            row = conn.execute(select(calls).where(calls.c.id == call_id)).first()
            if row is None:
                raise KeyError(call_id)
            call = call_from_row(row._mapping)
            if call.state not in REQUEUEABLE_STATES:
                raise NotRequeueable(
                    f"call {call_id} is {call.state}; only failed or skipped calls can be retried"
                )
            self._requeue_rows(conn, [call], now, actor)
            updated = conn.execute(select(calls).where(calls.c.id == call_id)).one()
        return call_from_row(updated._mapping)

    def requeue_failed(self, now: datetime, *, actor: str = "cli") -> int:
        with write_transaction(self.engine) as conn:
            rows = conn.execute(select(calls).where(calls.c.state == CallState.FAILED.value))
            failed = [call_from_row(row._mapping) for row in rows]
            self._requeue_rows(conn, failed, now, actor)
        return len(failed)

    def _requeue_rows(self, conn: Connection, rows: list[Call], now: datetime, actor: str) -> None:
        if not rows:
            return
        conn.execute(
            update(calls)
            .where(calls.c.id.in_([row.id for row in rows]))
            .values(
                state=CallState.PENDING.value,
                attempts=0,
                next_attempt_at=now,
                last_error=None,
                error_kind=None,
                lease_owner=None,
                lease_expires_at=None,
                updated_at=now,
            )
        )
        conn.execute(
            insert(call_events),
            [
                {
                    "call_id": row.id,
                    "at": now,
                    "from_state": row.state.value,
                    "to_state": CallState.PENDING.value,
                    "step": "requeue",
                    "outcome": "requeued",
                    "message": f"requeued by {actor}; was {row.error_kind or row.state}: "
                    f"{row.last_error or '-'}",
                }
                for row in rows
            ],
        )
