"""PostgreSQL-only SQL: a page of listed calls in one statement, and the poller's advisory lock.

SQLite has one writer on one host and needs neither.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Column, Connection, Engine, RowMapping, Table, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import DBAPIError

from poller.adapters.sql.models import call_events_table as call_events
from poller.adapters.sql.models import calls_table as calls
from poller.adapters.sql.page_writes import UPDATABLE_COLUMNS, PageWrites

log = logging.getLogger(__name__)

_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]


def _json_value(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


def _as_json(rows: Sequence[dict[str, Any]]) -> str:
    return json.dumps(list(rows), default=_json_value, separators=(",", ":"))


def _record_type(table: Table, names: Sequence[str], extra: str = "") -> str:
    """``name type, ...`` of ``names``: the shape of ``jsonb_to_recordset`` rows."""
    columns: list[Column[Any]] = [table.c[name] for name in names]
    described = [f'"{c.name}" {c.type.compile(dialect=_DIALECT)}' for c in columns]
    return ", ".join([*described, *([extra] if extra else [])])


def _columns(names: Sequence[str], prefix: str = "") -> str:
    return ", ".join(f'{prefix}"{name}"' for name in names)


_EVENT_COLUMNS = ("at", "from_state", "to_state", "step", "outcome", "message")


def _page_statement(insert_columns: Sequence[str]) -> str:
    """Insert the new rows, update the known ones and write every event: one statement.

    Each part reads its rows from one JSON parameter, so the statement's text stays the same
    whatever the size of the page (no thousands of placeholders to send and parse).
    """
    updates = ", ".join(f'"{name}" = u."{name}"' for name in UPDATABLE_COLUMNS)
    # Only names from the table's own metadata go into the text; every value is a parameter.
    return f"""
WITH new_rows AS (
    INSERT INTO calls ({_columns(insert_columns)})
    SELECT {_columns(insert_columns, "r.")}
    FROM jsonb_to_recordset(CAST(:inserts AS jsonb)) AS r({_record_type(calls, insert_columns)})
    ON CONFLICT (provider, provider_call_id) DO NOTHING
    RETURNING id, provider_call_id
),
changed AS (
    UPDATE calls SET {updates}
    FROM jsonb_to_recordset(CAST(:updates AS jsonb))
        AS u({_record_type(calls, ("id", *UPDATABLE_COLUMNS))})
    WHERE calls.id = u.id
    RETURNING calls.id
),
events AS (
    INSERT INTO call_events (call_id, {_columns(_EVENT_COLUMNS)})
    SELECT coalesce(e.call_id, new_rows.id), {_columns(_EVENT_COLUMNS, "e.")}
    FROM jsonb_to_recordset(CAST(:events AS jsonb))
        AS e({_record_type(call_events, ("call_id", *_EVENT_COLUMNS), "provider_call_id text")})
    LEFT JOIN new_rows ON e.call_id IS NULL AND new_rows.provider_call_id = e.provider_call_id
    WHERE e.call_id IS NOT NULL OR new_rows.id IS NOT NULL
    RETURNING call_id
)
SELECT id, provider_call_id FROM new_rows
-- A page need not wait for its WAL flush: a crash only loses the last transactions in commit
-- order, and the cursor moves after its pages, so a lost page is one the next cycle lists
-- again. This saves a disk flush per page of a backfill (and a round trip, said here).
CROSS JOIN (SELECT set_config('synchronous_commit', 'off', true)) AS no_flush_wait
"""  # noqa: S608


def _existing_statement(lock: str) -> Any:
    return text(
        f"""
SELECT {_columns([column.name for column in calls.c], "c.")}
FROM unnest(CAST(:keys AS text[])) WITH ORDINALITY AS k(key, position)
CROSS JOIN LATERAL (
    SELECT * FROM calls WHERE provider = :provider AND provider_call_id = k.key {lock}
) AS c
ORDER BY k.position
"""  # noqa: S608  (names from the table's metadata only; values are parameters)
    ).columns(*calls.c)


_EXISTING = _existing_statement("")
_EXISTING_LOCKED = _existing_statement("FOR UPDATE")


class PostgresPageWriter:
    """A page in two round trips: read and lock the known rows, then one statement writes."""

    def __init__(self) -> None:
        self._statements: dict[tuple[str, ...], Any] = {}

    def existing(
        self, conn: Connection, provider: str, keys: Sequence[str], *, lock: bool
    ) -> list[RowMapping]:
        # One index lookup per key, in the order of the keys (sorted: one lock order for every
        # poller, so two of them never deadlock on a page). The nested loop is the query's own
        # shape, not the planner's choice, so it holds even before the table has statistics.
        statement = _EXISTING_LOCKED if lock else _EXISTING
        rows = conn.execute(statement, {"provider": provider, "keys": list(keys)})
        return [row._mapping for row in rows]

    def write(self, conn: Connection, provider: str, writes: PageWrites) -> dict[str, int]:
        insert_columns = tuple(sorted({name for row in writes.inserts for name in row}))
        statement = self._statements.get(insert_columns)
        if statement is None:
            statement = text(_page_statement(insert_columns or ("provider", "provider_call_id")))
            self._statements[insert_columns] = statement
        rows = conn.execute(
            statement,
            {
                "inserts": _as_json(writes.inserts),
                "updates": _as_json(writes.updates),
                "events": _as_json(writes.events),
            },
        )
        return {row.provider_call_id: row.id for row in rows}


class PostgresPollLock:
    """A session advisory lock per provider: the process holding it is the one that polls.

    The lock lives as long as a dedicated connection, so when the process dies, even by
    SIGKILL, the server ends its session and the lock is free for another process to take.
    """

    def __init__(self, engine: Engine, provider: str) -> None:
        self.engine = engine
        self.provider = provider
        self._connection: Connection | None = None
        # The poll job tries the lock while, at shutdown, the main thread gives it back.
        self._guard = threading.Lock()

    def try_acquire(self) -> bool:
        with self._guard:
            return self._try_acquire()

    def _try_acquire(self) -> bool:
        if self._connection is not None:
            if self._still_connected(self._connection):
                return True
            log.warning("%s: lost the poll lock with its database connection", self.provider)
            self._close()
        connection = self.engine.connect()
        try:
            held = connection.execute(
                text("SELECT pg_try_advisory_lock(hashtextextended(:key, 0))"),
                {"key": lock_key(self.provider)},
            ).scalar_one()
            # Keep no transaction open on this connection while it waits for its next check.
            connection.commit()
        except Exception:
            connection.close()
            raise
        if not held:
            connection.close()
            return False
        self._connection = connection
        return True

    def release(self) -> None:
        with self._guard:
            self._release()

    def _release(self) -> None:
        if self._connection is None:
            return
        try:
            self._connection.execute(
                text("SELECT pg_advisory_unlock(hashtextextended(:key, 0))"),
                {"key": lock_key(self.provider)},
            )
            self._connection.commit()
        except DBAPIError:
            pass  # the session is gone, and its lock with it
        self._close()

    @staticmethod
    def _still_connected(connection: Connection) -> bool:
        try:
            connection.execute(text("SELECT 1")).scalar_one()
            connection.commit()
            return True
        except DBAPIError:
            return False

    def _close(self) -> None:
        if self._connection is not None:
            try:
                # The pool must not hand a connection that may still hold the lock to others.
                self._connection.invalidate()
                self._connection.close()
            except DBAPIError:
                pass
            self._connection = None


def lock_key(provider: str) -> str:
    """What the advisory lock is taken on (hashed by the server into its 64-bit key)."""
    return f"siro-poller poll {provider}"
