"""The SQL side of `calls forget` and `calls export` (:mod:`poller.ports.erasure`).

On SQLite an erased value would otherwise live on in two places a byte search of the files
finds: the free space of the pages it was in, and older copies of those pages in the WAL. The
erasing transaction runs with ``PRAGMA secure_delete`` (freed space is zeroed), and
:meth:`SqlErasure.after_erasure` checkpoints the WAL and truncates it. On PostgreSQL an
UPDATE leaves the old row version as a dead tuple until VACUUM reuses its space: no dump or
query shows it, but the table's files may hold it for a while; :meth:`SqlErasure.after_erasure`
runs retention's plain VACUUM so that the space is reused sooner
(docs/operations/data-lifecycle.md).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, null, or_, select, tuple_, update

from poller.adapters.sql.database import read_transaction, write_transaction
from poller.adapters.sql.models import call_events_table as call_events
from poller.adapters.sql.models import calls_table as calls
from poller.adapters.sql.models import unmapped_records_table as unmapped_records
from poller.adapters.sql.retention import vacuum
from poller.adapters.sql.scrubbing import scrub_event_messages
from poller.domain import erasure
from poller.domain.erasure import ForgetOutcome, ForgetSelection
from poller.domain.phones import to_e164
from poller.domain.records import Call, CallEvent
from poller.domain.scrubbing import scrub
from poller.domain.states import CallState

# The tables a forget updates (the events too: their messages are scrubbed).
_FORGET_TABLES = ("calls", "call_events", "unmapped_records")

# Rows read per statement while scanning: memory stays flat whatever the tables hold.
SCAN_BATCH = 500


def _call(row: Any) -> Call:
    values = dict(row._mapping)
    values["state"] = CallState(values["state"])
    return Call(**values)


def _light_call(row: Any) -> Call:
    """A call read without its raw record: ``{}`` stands for one that is there."""
    values = dict(row._mapping)
    has_raw = values.pop("has_raw")
    values["state"] = CallState(values["state"])
    return Call(**values, raw={} if has_raw else None)


class SqlErasure:
    engine: Engine

    # -- choosing the calls --------------------------------------------------------------

    def forget_candidates(self, selection: ForgetSelection, default_region: str) -> list[Call]:
        # The raw records are not kept: a selection by date may choose most of the table.
        chosen: dict[int, Call] = {}
        light = select(
            *(column for column in calls.c if column.name != "raw"),
            calls.c.raw.is_not(None).label("has_raw"),
        )
        with read_transaction(self.engine) as conn:
            if selection.references:
                numbers = [int(ref) for ref in selection.references if ref.isdigit()]
                condition: Any = calls.c.provider_call_id.in_(selection.references)
                if numbers:
                    condition = or_(condition, calls.c.id.in_(numbers))
                for row in conn.execute(light.where(condition)):
                    chosen[row.id] = _light_call(row)
            if selection.keys:
                for start in range(0, len(selection.keys), SCAN_BATCH):
                    batch = list(selection.keys[start : start + SCAN_BATCH])
                    keyed = tuple_(calls.c.provider, calls.c.provider_call_id).in_(batch)
                    for row in conn.execute(light.where(keyed)):
                        chosen[row.id] = _light_call(row)
            if selection.before is not None:
                before = or_(
                    calls.c.started_at < selection.before,
                    (calls.c.started_at.is_(None)) & (calls.c.created_at < selection.before),
                )
                for row in conn.execute(light.where(before)):
                    chosen[row.id] = _light_call(row)
            if selection.contact_phone or selection.email:
                for call in self._scan_calls(conn):
                    if _matches(call, selection, default_region):
                        chosen[call.id] = dataclasses.replace(
                            call, raw=None if call.raw is None else {}
                        )
        return [chosen[key] for key in sorted(chosen)]

    @staticmethod
    def _scan_calls(conn: Connection) -> Iterator[Call]:
        """Every call, by id, a batch at a time (the contact's number and email may sit in the
        raw record in any spelling, which no index finds)."""
        after = 0
        while True:
            rows = conn.execute(
                select(calls).where(calls.c.id > after).order_by(calls.c.id).limit(SCAN_BATCH)
            ).all()
            if not rows:
                return
            for row in rows:
                yield _call(row)
            after = rows[-1].id

    # -- erasing -------------------------------------------------------------------------

    def forget_call(
        self, call_id: int, now: datetime, actor: str, default_region: str
    ) -> ForgetOutcome | None:
        with write_transaction(self.engine) as conn:
            if conn.dialect.name == "sqlite":
                # Zero what the statements below free, in the pages and (once checkpointed)
                # in the file. Left on for this connection: a CLI process, about to exit.
                conn.exec_driver_sql("PRAGMA secure_delete = ON")
            row = conn.execute(select(calls).where(calls.c.id == call_id).with_for_update()).first()
            if row is None:
                return None
            call = _call(row)
            values = erasure.personal_values(call, default_region)
            scrubbed = scrub_event_messages(conn, {call_id: values}, default_region)
            removed = self._remove_unmapped(conn, call, now, default_region)
            columns = erasure.erased_columns(call)
            to_state = erasure.state_after_forget(call)
            changes: dict[str, Any] = {name: None for name in erasure.ERASED_COLUMNS}
            changes["raw"] = null()  # SQL NULL: a plain None would be stored as JSON 'null'
            changes.update(
                last_error=scrub(call.last_error, values, default_region),
                forgotten_at=call.forgotten_at or now,
                lease_owner=None,
                lease_expires_at=None,
                spool_path=None,
                updated_at=now,
            )
            if to_state is not CallState.UPLOADED:
                changes.update(
                    state=to_state.value,
                    next_attempt_at=None,
                    error_kind=erasure.FORGOTTEN_KIND,
                    last_error=erasure.FORGOTTEN_MESSAGE,
                )
            conn.execute(update(calls).where(calls.c.id == call_id).values(**changes))
            message = erasure.forget_message(
                columns,
                actor,
                {"event messages scrubbed": scrubbed, "unmapped records emptied": removed},
            )
            conn.execute(
                insert(call_events).values(
                    call_id=call_id,
                    at=now,
                    from_state=call.state.value,
                    to_state=to_state.value,
                    step=erasure.FORGET_STEP,
                    outcome="erased",
                    message=message,
                )
            )
        return ForgetOutcome(
            call_id=call.id,
            provider=call.provider,
            provider_call_id=call.provider_call_id,
            state_before=call.state,
            state_after=to_state,
            erased_columns=columns,
            scrubbed_events=scrubbed,
            unmapped_removed=removed,
            spool_path=call.spool_path,
            siro_recording_id=call.siro_recording_id,
            siro_may_hold=call.siro_recording_id is None and call.siro_create_sent_at is not None,
            already_forgotten=call.forgotten_at is not None,
            was_leased=call.lease_owner is not None,
        )

    @staticmethod
    def _remove_unmapped(conn: Connection, call: Call, now: datetime, default_region: str) -> int:
        """Empty the kept unmapped records of this call, and any of its provider's that quote
        the contact's number or name."""
        e164 = to_e164(call.contact_phone, default_region) if call.contact_phone else None
        names = [v for v in (call.contact_name,) if v and len(v.strip()) >= 3]

        def quotes_the_contact(row: Any) -> bool:
            return bool(
                row.provider_call_id == call.provider_call_id
                or row.resolved_call_id == call.id
                or (e164 and erasure.raw_mentions_phone(row.raw, e164, default_region))
                or any(erasure.raw_mentions(row.raw, name) for name in names)
            )

        doomed = _unmapped_matching(conn, call.provider, quotes_the_contact)
        _empty_unmapped(conn, doomed, now)
        return len(doomed)

    def forget_unmapped(
        self, selection: ForgetSelection, now: datetime, default_region: str, *, dry_run: bool
    ) -> int:
        if not (selection.contact_phone or selection.email):
            return 0
        phone, email = selection.contact_phone, selection.email

        def quotes_the_subject(row: Any) -> bool:
            return bool(
                (phone and erasure.raw_mentions_phone(row.raw, phone, default_region))
                or (email and erasure.raw_mentions(row.raw, email))
            )

        if dry_run:
            with read_transaction(self.engine) as conn:
                return len(_unmapped_matching(conn, None, quotes_the_subject))
        with write_transaction(self.engine) as conn:
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("PRAGMA secure_delete = ON")  # as in forget_call
            doomed = _unmapped_matching(conn, None, quotes_the_subject)
            _empty_unmapped(conn, doomed, now)
        return len(doomed)

    def add_tombstones(self, keys: Sequence[tuple[str, str]], now: datetime, actor: str) -> int:
        if not keys:
            return 0
        added = 0
        with write_transaction(self.engine) as conn:
            for provider, provider_call_id in keys:
                exists = conn.execute(
                    select(calls.c.id).where(
                        calls.c.provider == provider, calls.c.provider_call_id == provider_call_id
                    )
                ).first()
                if exists is not None:
                    continue  # listed meanwhile: the next forget of the ledger takes it
                call_id = conn.execute(
                    insert(calls)
                    .values(
                        provider=provider,
                        provider_call_id=provider_call_id,
                        state=CallState.SKIPPED.value,
                        error_kind=erasure.FORGOTTEN_KIND,
                        last_error=erasure.FORGOTTEN_MESSAGE,
                        forgotten_at=now,
                        created_at=now,
                        updated_at=now,
                    )
                    .returning(calls.c.id)
                ).scalar_one()
                conn.execute(
                    insert(call_events).values(
                        call_id=call_id,
                        at=now,
                        from_state=None,
                        to_state=CallState.SKIPPED.value,
                        step=erasure.FORGET_STEP,
                        outcome="tombstone",
                        message=erasure.ledger_message(actor),
                    )
                )
                added += 1
        return added

    def after_erasure(self) -> str | None:
        if self.engine.dialect.name != "sqlite":
            # The old row versions are dead tuples no query or dump shows; the VACUUM
            # retention uses (no lock that stops the daemon, bounded) marks their space for
            # reuse now rather than when autovacuum comes.
            if vacuum(self.engine, _FORGET_TABLES, after="calls forget"):
                return (
                    f"VACUUM of {', '.join(_FORGET_TABLES)} done: the space of the old row "
                    "versions is free for reuse (only VACUUM FULL removes their bytes at once)"
                )
            return (
                "PostgreSQL keeps the old row versions as dead tuples, which no query or dump "
                "shows, until VACUUM reuses their space (autovacuum does, in time)"
            )
        with self.engine.connect() as conn:
            busy, _log, _done = conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()
            conn.commit()
        if busy:
            return (
                "the WAL could not be emptied: another process is reading the database; the "
                "erased values may stay in its -wal file until the next checkpoint (run the "
                "forget again with the daemon stopped to be sure)"
            )
        return "WAL checkpointed and truncated; freed space zeroed (secure_delete)"

    # -- audit export --------------------------------------------------------------------

    def export_calls(
        self, since: datetime, until: datetime | None, *, batch: int = 500
    ) -> Iterator[tuple[Call, list[CallEvent]]]:
        # A call without a start time counts from when it was first listed.
        started = func.coalesce(calls.c.started_at, calls.c.created_at)
        window = [started >= since]
        if until is not None:
            window.append(started < until)
        after = 0
        while True:
            # A short read per batch (no transaction held open across the whole export, which
            # on SQLite would keep the WAL from being checkpointed meanwhile).
            with read_transaction(self.engine) as conn:
                rows = conn.execute(
                    select(calls)
                    .where(calls.c.id > after, *window)
                    .order_by(calls.c.id)
                    .limit(batch)
                ).all()
                if not rows:
                    return
                chosen = [_call(row) for row in rows]
                events: dict[int, list[CallEvent]] = {call.id: [] for call in chosen}
                for event in conn.execute(
                    select(call_events)
                    .where(call_events.c.call_id.in_(list(events)))
                    .order_by(call_events.c.call_id, call_events.c.id)
                ):
                    events[event.call_id].append(CallEvent(**event._mapping))
            for call in chosen:
                yield call, events[call.id]
            after = chosen[-1].id


def _matches(call: Call, selection: ForgetSelection, default_region: str) -> bool:
    raw = json.dumps(call.raw, ensure_ascii=False) if call.raw is not None else None
    if selection.contact_phone:
        wanted = selection.contact_phone
        if to_e164(call.contact_phone, default_region) == wanted:
            return True
        rep = to_e164(call.rep_phone, default_region) if call.rep_phone else None
        if rep != wanted and erasure.raw_mentions_phone(raw, wanted, default_region):
            return True
    if selection.email:
        wanted_email = selection.email.lower()
        if (call.rep_email or "").lower() != wanted_email and erasure.raw_mentions(
            raw, wanted_email
        ):
            return True
    return False


def _unmapped_matching(
    conn: Connection, provider: str | None, matches: Callable[[Any], bool]
) -> list[int]:
    """The ids of the unmapped records (of ``provider``) not yet emptied that ``matches``
    takes, read a batch at a time (each row holds up to 64 KB of raw text)."""
    found: list[int] = []
    after = 0
    while True:
        query = (
            select(
                unmapped_records.c.id,
                unmapped_records.c.provider_call_id,
                unmapped_records.c.resolved_call_id,
                unmapped_records.c.raw,
            )
            .where(unmapped_records.c.id > after, unmapped_records.c.forgotten_at.is_(None))
            .order_by(unmapped_records.c.id)
            .limit(SCAN_BATCH)
        )
        if provider is not None:
            query = query.where(unmapped_records.c.provider == provider)
        rows = conn.execute(query).all()
        if not rows:
            return found
        found += [row.id for row in rows if matches(row)]
        after = rows[-1].id


def _empty_unmapped(conn: Connection, ids: list[int], now: datetime) -> None:
    """Empty the raw text of these unmapped records and keep each, resolved, as a tombstone:
    the poll cycle does not keep the same record again when it is listed again."""
    for start in range(0, len(ids), SCAN_BATCH):
        conn.execute(
            update(unmapped_records)
            .where(unmapped_records.c.id.in_(ids[start : start + SCAN_BATCH]))
            .values(
                raw="",
                reason=erasure.FORGOTTEN_KIND,
                provider_call_id=None,
                forgotten_at=now,
                resolved_at=func.coalesce(unmapped_records.c.resolved_at, now),
            )
        )
