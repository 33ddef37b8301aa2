"""Put rows straight into a store, in any state, for tests that start from a given situation."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select

from poller.adapters.memory_store import MemoryStore
from poller.adapters.sql.models import CallEventRow, CallRow, PollCursorRow
from poller.adapters.sql.store import SqlStore
from poller.domain.clock import as_utc, utcnow
from poller.domain.records import Call, CallEvent, PollCursor
from poller.domain.states import CallState

AnyStore = MemoryStore | SqlStore


def seed_call(
    store: AnyStore,
    provider_call_id: str,
    *,
    provider: str = "generic",
    state: CallState = CallState.PENDING,
    at: datetime | None = None,
    **fields: Any,
) -> Call:
    at = at or utcnow()
    values: dict[str, Any] = {
        "provider": provider,
        "provider_call_id": provider_call_id,
        "state": state.value,
        "created_at": at,
        "updated_at": at,
        **fields,
    }
    if isinstance(store, SqlStore):
        with store.engine.begin() as connection:
            call_id = connection.execute(
                insert(CallRow.__table__).values(values).returning(CallRow.__table__.c.id)
            ).scalar_one()
        found = store.get_call(call_id)
        assert found is not None
        return found
    call_id = max(store.calls, default=0) + 1
    # What a database does on the way in: every instant is kept as UTC.
    values = {k: as_utc(v) if isinstance(v, datetime) else v for k, v in values.items()}
    call = Call(id=call_id, **{**values, "state": state})
    store.calls[call_id] = call
    return call


def seed_event(store: AnyStore, call_id: int, **fields: Any) -> CallEvent:
    values: dict[str, Any] = {
        "call_id": call_id,
        "at": utcnow(),
        "from_state": None,
        "to_state": None,
        "step": "poll",
        "outcome": "inserted",
        **fields,
    }
    if isinstance(store, SqlStore):
        table = CallEventRow.__table__
        with store.engine.begin() as connection:
            event_id = connection.execute(
                insert(table).values(values).returning(table.c.id)
            ).scalar_one()
            row = connection.execute(select(table).where(table.c.id == event_id)).one()
        return CallEvent(**row._mapping)
    return store.add_event(**values)


def seed_cursor(store: AnyStore, cursor: PollCursor) -> None:
    if isinstance(store, SqlStore):
        with store.engine.begin() as connection:
            connection.execute(insert(PollCursorRow.__table__).values(dataclasses.asdict(cursor)))
        return
    store.poll_cursors[cursor.provider] = cursor
