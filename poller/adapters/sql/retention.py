"""The SQL side of retention (:class:`poller.ports.store.RetentionStore`) and of the
re-mapping back-off, mixed into :class:`poller.adapters.sql.store.SqlStore`.

Every write takes at most ``limit`` rows, picked by one of the partial indexes of
:mod:`.models` (``ix_calls_prunable``, ``ix_call_events_prunable``, ``ix_unmapped_records_live``,
``ix_unmapped_records_done``), in its own short transaction: on SQLite the single writer lock is
held for one batch, never for a whole pass. The queries repeat the indexes' predicates word for
word, or SQLite would not use them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, delete, func, null, select, text, update
from sqlalchemy.exc import SQLAlchemyError

from poller.adapters.sql.database import read_transaction, write_transaction
from poller.adapters.sql.models import (
    DONE_UNMAPPED_SQL,
    EXPIRED_UNMAPPED_SQL,
    LIVE_UNMAPPED_SQL,
    PRUNABLE_CALLS_SQL,
    PRUNABLE_EVENTS_SQL,
    Base,
)
from poller.adapters.sql.models import call_events_table as call_events
from poller.adapters.sql.models import calls_table as calls
from poller.adapters.sql.models import unmapped_records_table as unmapped_records
from poller.adapters.sql.scrubbing import scrub_event_messages
from poller.domain.records import UnmappedRecord
from poller.domain.retention import PERSONAL_COLUMNS, TableSizes
from poller.domain.scrubbing import contact_values, scrub

log = logging.getLogger(__name__)

# Bounds of the VACUUM after a large pass: it waits for no lock (SKIP_LOCKED, and lock_timeout
# for the catalog's), and a run that outlasts the statement timeout is cancelled; the next large
# pass, or autovacuum, does the work then.
_VACUUM_LOCK_TIMEOUT = "5s"
_VACUUM_STATEMENT_TIMEOUT = "10min"

# SQL NULL, not JSON null, for the raw document too.
_PRUNED_VALUES: dict[str, Any] = {name: null() for name in PERSONAL_COLUMNS}


def vacuum(engine: Engine, tables: Sequence[str], *, after: str) -> bool:
    """A plain ``VACUUM (SKIP_LOCKED)`` of those of ``tables`` the poller owns, on PostgreSQL
    only, bounded by the timeouts above; returns whether it ran. A failure is logged (``after``
    says what it followed) and never raised: autovacuum does the work later."""
    if engine.dialect.name != "postgresql":
        return False
    known = set(Base.metadata.tables)
    names = sorted({name for name in tables if name in known})
    if not names:
        return False
    quote = engine.dialect.identifier_preparer.quote
    statement = f"VACUUM (SKIP_LOCKED) {', '.join(quote(name) for name in names)}"
    try:
        # VACUUM cannot run inside a transaction block: an autocommit connection, whose
        # isolation level SQLAlchemy resets when it goes back to the pool.
        connection = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        with connection:
            connection.exec_driver_sql(f"SET lock_timeout = '{_VACUUM_LOCK_TIMEOUT}'")
            connection.exec_driver_sql(f"SET statement_timeout = '{_VACUUM_STATEMENT_TIMEOUT}'")
            try:
                connection.exec_driver_sql(statement)
            finally:
                connection.exec_driver_sql("RESET lock_timeout")
                connection.exec_driver_sql("RESET statement_timeout")
    except SQLAlchemyError as error:
        log.warning(
            "VACUUM of %s after %s failed (autovacuum will do it later): %s",
            ", ".join(names),
            after,
            type(getattr(error, "orig", None) or error).__name__,
        )
        return False
    return True


class SqlRetention:
    engine: Engine

    # -- the re-mapping of unmapped records, with back-off ------------------------------------

    def unmapped_to_remap(
        self, provider: str, now: datetime, *, after_id: int = 0, limit: int = 100
    ) -> list[UnmappedRecord]:
        column = unmapped_records.c.next_remap_at
        query = (
            select(unmapped_records)
            .where(
                unmapped_records.c.provider == provider,
                text(LIVE_UNMAPPED_SQL),
                unmapped_records.c.id > after_id,
                column.is_(None) | (column <= now),
            )
            .order_by(unmapped_records.c.id)
            .limit(limit)
        )
        with read_transaction(self.engine) as conn:
            return [UnmappedRecord(**row._mapping) for row in conn.execute(query)]

    def count_live_unmapped(self, provider: str) -> int:
        query = (
            select(func.count())
            .select_from(unmapped_records)
            .where(unmapped_records.c.provider == provider, text(LIVE_UNMAPPED_SQL))
        )
        return self._count(query)

    def note_remap_failed(self, backoff: Mapping[int, tuple[int, datetime]]) -> None:
        if not backoff:
            return
        statement = (
            update(unmapped_records)
            .where(unmapped_records.c.id == bindparam("row_id"), text(LIVE_UNMAPPED_SQL))
            .values(
                remap_attempts=bindparam("attempts"),
                next_remap_at=bindparam("next_at", type_=unmapped_records.c.next_remap_at.type),
            )
        )
        rows = [
            {"row_id": row_id, "attempts": attempts, "next_at": next_at}
            for row_id, (attempts, next_at) in sorted(backoff.items())
        ]
        with write_transaction(self.engine) as conn:
            conn.execute(statement, rows)

    # -- retention ------------------------------------------------------------------------

    def prune_finished_calls(
        self,
        finished_before: datetime,
        now: datetime,
        *,
        limit: int,
        default_region: str,
        dry_run: bool = False,
    ) -> int:
        where = (text(PRUNABLE_CALLS_SQL), calls.c.updated_at < finished_before)
        if dry_run:
            return self._count(select(func.count()).select_from(calls).where(*where))
        with write_transaction(self.engine) as conn:
            ids = self._pick(
                conn, select(calls.c.id).where(*where).order_by(calls.c.updated_at), limit
            )
            if ids:
                self._scrub_texts(conn, ids, default_region)
                # updated_at stays: it says when the call was finished; pruned_at says this.
                conn.execute(
                    update(calls)
                    .where(calls.c.id.in_(ids), text(PRUNABLE_CALLS_SQL))
                    .values(**_PRUNED_VALUES, pruned_at=now)
                )
        return len(ids)

    @staticmethod
    def _scrub_texts(conn: Connection, ids: list[int], default_region: str) -> None:
        """Erase the quotes of the batch's personal values from their texts, while the
        columns still hold the values (the rows are locked by :meth:`_pick`)."""
        rows = conn.execute(
            select(
                calls.c.id,
                calls.c.contact_name,
                calls.c.contact_phone,
                calls.c.title,
                calls.c.last_error,
            ).where(calls.c.id.in_(ids))
        ).all()
        values_by_call = {
            row.id: contact_values(row.contact_name, row.contact_phone, row.title, default_region)
            for row in rows
        }
        scrub_event_messages(conn, values_by_call, default_region)
        changes = []
        for row in rows:
            clean = scrub(row.last_error, values_by_call[row.id], default_region)
            if clean != row.last_error:
                changes.append({"row_id": row.id, "clean": clean})
        if changes:
            conn.execute(
                update(calls)
                .where(calls.c.id == bindparam("row_id"))
                .values(last_error=bindparam("clean")),
                changes,
            )

    def prune_events(self, before: datetime, *, limit: int, dry_run: bool = False) -> int:
        where = (text(PRUNABLE_EVENTS_SQL), call_events.c.at < before)
        if dry_run:
            return self._count(select(func.count()).select_from(call_events).where(*where))
        with write_transaction(self.engine) as conn:
            ids = self._pick(
                conn,
                select(call_events.c.id).where(*where).order_by(call_events.c.at),
                limit,
            )
            if ids:
                conn.execute(delete(call_events).where(call_events.c.id.in_(ids)))
        return len(ids)

    def expire_unmapped(
        self,
        now: datetime,
        message: str,
        *,
        first_seen_before: datetime | None = None,
        min_attempts: int | None = None,
        limit: int,
        dry_run: bool = False,
    ) -> dict[str, int]:
        where: list[Any] = [text(LIVE_UNMAPPED_SQL)]
        if first_seen_before is not None:
            where.append(unmapped_records.c.first_seen_at < first_seen_before)
        if min_attempts is not None:
            where.append(unmapped_records.c.remap_attempts >= min_attempts)
        if len(where) == 1:
            return {}
        if dry_run:
            return self._count_by_provider(where)
        # No ORDER BY: the covering ix_unmapped_records_live answers without reading a row.
        query = select(unmapped_records.c.id, unmapped_records.c.provider).where(*where)
        with write_transaction(self.engine) as conn:
            rows = conn.execute(query.limit(limit).with_for_update(skip_locked=True)).all()
            return self._expire(conn, rows, now, message)

    def expire_unmapped_over_cap(
        self, now: datetime, message: str, *, max_kept: int, limit: int, dry_run: bool = False
    ) -> dict[str, int]:
        count = func.count()
        over_query = (
            select(unmapped_records.c.provider, count)
            .where(text(LIVE_UNMAPPED_SQL))
            .group_by(unmapped_records.c.provider)
            .having(count > max_kept)
            .order_by(unmapped_records.c.provider)
        )
        if dry_run:
            with read_transaction(self.engine) as conn:
                return {provider: n - max_kept for provider, n in conn.execute(over_query)}
        expired: dict[str, int] = {}
        with write_transaction(self.engine) as conn:
            room = limit
            for provider, kept in conn.execute(over_query).all():
                if room <= 0:
                    break
                rows = conn.execute(
                    select(unmapped_records.c.id, unmapped_records.c.provider)
                    .where(unmapped_records.c.provider == provider, text(LIVE_UNMAPPED_SQL))
                    .order_by(unmapped_records.c.id)
                    .limit(min(kept - max_kept, room))
                    .with_for_update(skip_locked=True)
                ).all()
                expired.update(self._expire(conn, rows, now, message))
                room -= len(rows)
        return expired

    def delete_done_unmapped(
        self, last_seen_before: datetime, *, limit: int, dry_run: bool = False
    ) -> int:
        expired_at = unmapped_records.c.expired_at
        where = (
            text(DONE_UNMAPPED_SQL),
            unmapped_records.c.last_seen_at < last_seen_before,
            # A marker stays as long again after its expiry, for `status` to count.
            expired_at.is_(None) | (expired_at < last_seen_before),
            # The emptied record of `calls forget` stays: it keeps the record from being kept
            # again when the vendor lists it again.
            unmapped_records.c.forgotten_at.is_(None),
        )
        if dry_run:
            return self._count(select(func.count()).select_from(unmapped_records).where(*where))
        with write_transaction(self.engine) as conn:
            query = select(unmapped_records.c.id).where(*where)
            ids = self._pick(conn, query.order_by(unmapped_records.c.last_seen_at), limit)
            if ids:
                conn.execute(delete(unmapped_records).where(unmapped_records.c.id.in_(ids)))
        return len(ids)

    def table_sizes(self) -> TableSizes:
        tables = sorted(Base.metadata.tables.values(), key=lambda table: table.name)
        with read_transaction(self.engine) as conn:
            rows = {
                table.name: int(conn.execute(select(func.count()).select_from(table)).scalar_one())
                for table in tables
            }
            expired = self.unmapped_expired_counts(conn)
            size = self._database_bytes(conn, [table.name for table in tables])
        return TableSizes(rows=rows, database_bytes=size, unmapped_expired=expired)

    def reclaim_space(self, tables: Sequence[str]) -> bool:
        # SQLite reuses the pages of deleted rows in its file by itself. PostgreSQL keeps a
        # deleted or updated row's old version (and its TOAST, the 60 KB raw text of an unmapped
        # record) until a VACUUM marks the space free; autovacuum comes when it comes, and a
        # hostile log fills new pages faster. A plain VACUUM takes no lock that stops reads or
        # writes, and leaves the files their size: new rows fill the freed space, so the bytes
        # stop growing. VACUUM FULL would rewrite the table under an exclusive lock; never here.
        return vacuum(self.engine, tables, after="retention")

    # -- helpers --------------------------------------------------------------------------

    @staticmethod
    def unmapped_expired_counts(conn: Connection) -> dict[str, int]:
        """Expired unmapped records per provider (for `status` and the metrics)."""
        query = (
            select(unmapped_records.c.provider, func.count())
            # From ix_unmapped_records_expired alone, never the rows and their raw text.
            .where(text(EXPIRED_UNMAPPED_SQL))
            .group_by(unmapped_records.c.provider)
            .order_by(unmapped_records.c.provider)
        )
        return {provider: n for provider, n in conn.execute(query)}

    def _database_bytes(self, conn: Connection, tables: list[str]) -> int | None:
        if self.engine.dialect.name == "sqlite":
            # The file's pages, free ones included: what the disk holds, not counting the WAL.
            pages = conn.exec_driver_sql("PRAGMA page_count").scalar_one()
            page_size = conn.exec_driver_sql("PRAGMA page_size").scalar_one()
            return int(pages) * int(page_size)
        if self.engine.dialect.name == "postgresql":
            # Tables with their indexes and TOAST: the poller's share of a shared server.
            total = conn.execute(
                text(
                    "SELECT coalesce(sum(pg_total_relation_size(to_regclass(name))), 0) "
                    "FROM unnest(CAST(:names AS text[])) AS name"
                ),
                {"names": tables},
            ).scalar_one()
            return int(total)
        return None

    def _count(self, query: Any) -> int:
        with read_transaction(self.engine) as conn:
            return int(conn.execute(query).scalar_one())

    def _count_by_provider(self, where: list[Any]) -> dict[str, int]:
        query = (
            select(unmapped_records.c.provider, func.count())
            .where(*where)
            .group_by(unmapped_records.c.provider)
            .order_by(unmapped_records.c.provider)
        )
        with read_transaction(self.engine) as conn:
            return {provider: n for provider, n in conn.execute(query)}

    @staticmethod
    def _pick(conn: Connection, query: Any, limit: int) -> list[int]:
        # SKIP LOCKED: a row a worker or a poller holds now is pruned by a later batch.
        return list(conn.execute(query.limit(limit).with_for_update(skip_locked=True)).scalars())

    @staticmethod
    def _expire(conn: Connection, rows: Any, now: datetime, message: str) -> dict[str, int]:
        if not rows:
            return {}
        conn.execute(
            update(unmapped_records)
            .where(unmapped_records.c.id.in_([row.id for row in rows]), text(LIVE_UNMAPPED_SQL))
            .values(expired_at=now, expired_reason=message, raw="", next_remap_at=None)
        )
        counts: dict[str, int] = {}
        for row in rows:
            counts[row.provider] = counts.get(row.provider, 0) + 1
        return counts
