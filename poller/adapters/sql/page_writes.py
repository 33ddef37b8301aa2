"""How one page of listed calls is written: every row and event of the page in a few statements.

:class:`PageWrites` is what :meth:`SqlStore.ingest_page` decided for a page. A
:class:`PageWriter` applies it: :class:`CorePageWriter` with portable SQL (SQLite, where a
statement costs no round trip), :class:`poller.adapters.sql.postgres.PostgresPageWriter` in one
statement per page.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import Connection, RowMapping, bindparam, insert, select, update
from sqlalchemy.dialects import sqlite

from poller.adapters.sql.models import call_events_table as call_events
from poller.adapters.sql.models import calls_table as calls
from poller.domain.ingest import LISTING_COLUMNS

# Call ids looked up per statement, well under SQLite's variable limit (999 before 3.32).
KEYS_PER_STATEMENT = 500
# What ingesting may change on a known row: the listing's columns and the plan's decision.
UPDATABLE_COLUMNS = (
    *LISTING_COLUMNS,
    "state",
    "next_attempt_at",
    "error_kind",
    "last_error",
    "updated_at",
)


@dataclass
class PageWrites:
    """The rows to insert, the known rows to update and the events, of one page.

    ``updates`` carry every column of :data:`UPDATABLE_COLUMNS` as the row is to be (the row is
    locked since it was read), so that one statement can update rows that changed differently.
    An event of a new row names it by ``provider_call_id`` (its ``call_id`` is ``None``).
    """

    inserts: list[dict[str, Any]] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.inserts or self.updates or self.events)


class PageWriter(Protocol):
    def existing(
        self, conn: Connection, provider: str, keys: Sequence[str], *, lock: bool
    ) -> list[RowMapping]:
        """The rows of ``provider`` with these call ids, locked against workers if ``lock``."""
        ...

    def write(self, conn: Connection, provider: str, writes: PageWrites) -> dict[str, int]:
        """Apply ``writes``; returns the ids of the inserted rows by provider call id.

        A row another poller inserted since it was read is left alone, and so is its event:
        its call id is missing from the answer.
        """
        ...


def existing_query(provider: str, keys_clause: Any, *, lock: bool) -> Any:
    query = (
        select(calls)
        .where(calls.c.provider == provider, keys_clause)
        # One lock order for every poller, so two of them never deadlock on a page.
        .order_by(calls.c.provider_call_id)
    )
    # PostgreSQL: a worker cannot lease these rows until the page commits. SQLite needs no row
    # locks, the write transaction already holds the database lock.
    return query.with_for_update() if lock else query


class CorePageWriter:
    """Portable statements: one executemany each for inserts, updates and events."""

    def existing(
        self, conn: Connection, provider: str, keys: Sequence[str], *, lock: bool
    ) -> list[RowMapping]:
        rows: list[RowMapping] = []
        # In batches: SQLite refuses a statement with more variables than its limit.
        for first in range(0, len(keys), KEYS_PER_STATEMENT):
            batch = keys[first : first + KEYS_PER_STATEMENT]
            query = existing_query(provider, calls.c.provider_call_id.in_(batch), lock=lock)
            rows.extend(row._mapping for row in conn.execute(query))
        return rows

    def write(self, conn: Connection, provider: str, writes: PageWrites) -> dict[str, int]:
        inserted: dict[str, int] = {}
        if writes.inserts:
            statement = (
                sqlite.insert(calls)
                .on_conflict_do_nothing(index_elements=["provider", "provider_call_id"])
                .returning(calls.c.id, calls.c.provider_call_id)
            )
            rows = conn.execute(statement, writes.inserts)
            inserted = {row.provider_call_id: row.id for row in rows}
        if writes.updates:
            conn.execute(
                update(calls)
                .where(calls.c.id == bindparam("row_id"))
                .values({name: bindparam(name) for name in UPDATABLE_COLUMNS}),
                [{**row, "row_id": row["id"]} for row in writes.updates],
            )
        events = [
            {**event, "call_id": event["call_id"] or inserted[key]}
            for event in writes.events
            if event["call_id"] is not None or (key := event["provider_call_id"]) in inserted
        ]
        if events:
            conn.execute(
                insert(call_events),
                [{k: v for k, v in event.items() if k != "provider_call_id"} for event in events],
            )
        return inserted
