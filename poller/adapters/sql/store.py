"""The SQL implementation of :class:`poller.ports.store.Store`, for SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Integer,
    Select,
    Text,
    and_,
    bindparam,
    case,
    cast,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    text,
    true,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.elements import BindParameter, ClauseElement

from poller.adapters.lease_guarded import LeaseGuardedWrites
from poller.adapters.sql import sqlite as sqlite_sql
from poller.adapters.sql.database import (
    read_transaction,
    single_statement,
    write_transaction,
)
from poller.adapters.sql.erasure import SqlErasure
from poller.adapters.sql.models import LEASED_SQL, LIVE_UNMAPPED_SQL, UNLEASED_SQL, WORKABLE_SQL
from poller.adapters.sql.models import backfill_runs_table as backfill_runs
from poller.adapters.sql.models import call_events_table as call_events
from poller.adapters.sql.models import calls_table as calls
from poller.adapters.sql.models import credential_pauses_table as credential_pauses
from poller.adapters.sql.models import poll_cursors_table as poll_cursors
from poller.adapters.sql.models import siro_users_table as siro_users
from poller.adapters.sql.models import unmapped_records_table as unmapped_records
from poller.adapters.sql.models import worker_heartbeats_table as worker_heartbeats
from poller.adapters.sql.page_writes import (
    UPDATABLE_COLUMNS,
    CorePageWriter,
    PageWriter,
    PageWrites,
)
from poller.adapters.sql.postgres import PostgresPageWriter
from poller.adapters.sql.retention import SqlRetention
from poller.adapters.sql.webhook_subscriptions import SqlWebhookSubscriptions
from poller.domain import transitions
from poller.domain.attribution import (
    NO_ATTRIBUTION,
    InMemoryUserDirectory,
    attribution_counts,
    plan_users_sync,
    snapshot_directory,
)
from poller.domain.filters import SkipReason
from poller.domain.ingest import (
    POLL_STEP,
    IngestChange,
    IngestPlan,
    ListedCall,
    last_sighting_per_call,
    plan_ingest,
)
from poller.domain.pauses import CredentialPause
from poller.domain.records import (
    BackfillCounts,
    BackfillRun,
    Call,
    CallEvent,
    DirectoryUser,
    EventDraft,
    PollCursor,
    StatusSummary,
    UnmappedDraft,
    UnmappedRecord,
    UsersSyncResult,
    WorkerHeartbeat,
)
from poller.domain.states import REQUEUEABLE_STATES, CallState, RecordingState
from poller.domain.transitions import AttributionNote, RequeueSelection
from poller.ports.store import NotReplayable, NotRequeueable

# Changes by expression, for _transition (whose UPDATE binds the time of the change as "now").
# The first send is the one Siro may have acted on: keep it across retries.
FIRST_SEND_AT = func.coalesce(
    calls.c.siro_create_sent_at, bindparam("now", type_=calls.c.updated_at.type)
)
REFUNDED_ATTEMPT = case((calls.c.attempts > 0, calls.c.attempts - 1), else_=0)


def _is_plain(value: object) -> bool:
    """A value to send as a parameter, not a SQL expression of the row's own columns."""
    return not isinstance(value, ClauseElement)


def _shape_of(values: Mapping[str, Any]) -> tuple[tuple[str, object], ...]:
    """What a transition's statements depend on: which columns change, and the expressions
    (shared constants, such as REFUNDED_ATTEMPT) that some of them change by."""
    return tuple((name, None if _is_plain(value) else id(value)) for name, value in values.items())


def call_from_row(row: Mapping[Any, Any]) -> Call:
    values = dict(row)
    values["state"] = CallState(values["state"])
    return Call(**values)


def due_unleased_clause(now: datetime | BindParameter[datetime]) -> Any:
    """Workable rows no worker holds, due by ``now``: the entries of ``ix_calls_due``.

    ``next_attempt_at IS NULL`` means nothing to do yet (a call waiting for its recording).
    """
    return and_(text(WORKABLE_SQL), text(UNLEASED_SQL), calls.c.next_attempt_at <= now)


def lease_ran_out_clause(now: datetime | BindParameter[datetime]) -> Any:
    """Rows whose worker stopped renewing its lease: the entries of ``ix_calls_leased``."""
    return and_(text(LEASED_SQL), calls.c.lease_expires_at <= now)


def page_writes(
    plans: Mapping[str, IngestPlan], existing: Mapping[str, Call], now: datetime
) -> PageWrites:
    """The inserts, updates and events of a planned page, for a :class:`PageWriter`."""
    writes = PageWrites()
    for key, plan in plans.items():
        if plan.inserts:
            writes.inserts.append(plan.values)
        elif plan.values:
            row = existing[key]
            current = {name: getattr(row, name) for name in UPDATABLE_COLUMNS}
            current["state"] = row.state.value
            writes.updates.append({**current, **plan.values, "id": row.id})
        if plan.event is not None:
            event = plan.event.columns(plan.change.call_id, now)  # type: ignore[arg-type]
            writes.events.append({**event, "provider_call_id": key})
    return writes


def ran_out_lookup(
    now: datetime, limit: int, exclude_providers: Collection[str] = ()
) -> Select[tuple[int, str]]:
    """The claim's first lookup: rows whose lease ran out, oldest expiry first."""
    query = (
        select(calls.c.id, calls.c.lease_owner)
        .where(lease_ran_out_clause(now))
        .order_by(calls.c.lease_expires_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if exclude_providers:
        query = query.where(calls.c.provider.not_in(sorted(exclude_providers)))
    return query


def due_lookup(
    now: datetime, limit: int, exclude_providers: Collection[str] = ()
) -> Select[tuple[int]]:
    """The claim's second lookup: unleased due rows, in the order of ``ix_calls_due``."""
    query = (
        select(calls.c.id)
        .where(due_unleased_clause(now))
        .order_by(calls.c.next_attempt_at, calls.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if exclude_providers:
        query = query.where(calls.c.provider.not_in(sorted(exclude_providers)))
    return query


def claim_lookups(now: datetime, limit: int) -> list[Select[Any]]:
    """Both lookups of a claim (PostgreSQL's; SQLite's are in :mod:`.sqlite`)."""
    return [ran_out_lookup(now, limit), due_lookup(now, limit)]


def waiting_clause(provider: str) -> Any:
    """Calls of ``provider`` listed without a ready recording, with nothing else to do."""
    return and_(
        calls.c.provider == provider,
        calls.c.state == CallState.PENDING.value,
        calls.c.next_attempt_at.is_(None),
        calls.c.lease_owner.is_(None),
        or_(
            calls.c.recording_state.is_(None),
            calls.c.recording_state != RecordingState.READY.value,
        ),
    )


def _call_filters(
    state: CallState | None,
    since: datetime | None,
    attribution: str | None = None,
    error_kind: str | None = None,
) -> list[Any]:
    """The conditions of `calls list --state/--error-kind/--since/--attribution`."""
    filters: list[Any] = []
    if state is not None:
        filters.append(calls.c.state == state.value)
    if error_kind is not None:
        filters.append(calls.c.error_kind == error_kind)
    if since is not None:
        filters.append(calls.c.started_at >= since)
    if attribution == NO_ATTRIBUTION:
        filters.append(calls.c.attribution.is_(None))
    elif attribution is not None:
        filters.append(calls.c.attribution == attribution)
    return filters


def _postgres_transition(
    held: Any,
    changes: dict[str, Any],
    now: Any,
    event_columns: Sequence[str],
    events: int,
    flush: bool,
) -> Any:
    """A lease-guarded transition in one PostgreSQL statement: lock the row and read its state
    (only while the lease is held), change it, and insert ``events`` events (parameters
    ``e_<column>_<n>``) in their order, each from the state before to the state after.

    The events are a CTE the answer does not read: PostgreSQL runs a data-changing CTE to
    completion whatever the statement reads of it. With ``flush`` false the commit does not
    wait for its WAL flush (``synchronous_commit`` off for this transaction).
    """
    before = select(calls.c.id, calls.c.state).where(held).with_for_update().cte("before")
    changed = (
        update(calls)
        .where(calls.c.id == before.c.id)
        .values(**changes, updated_at=now)
        .returning(*calls.c, before.c.state.label("state_before"))
        .cte("changed")
    )
    numbered = [
        select(
            changed.c.id.label("call_id"),
            changed.c.state_before.label("from_state"),
            changed.c.state.label("to_state"),
            *(
                cast(
                    bindparam(f"e_{name}_{number}", type_=call_events.c[name].type),
                    call_events.c[name].type,
                ).label(name)
                for name in event_columns
            ),
            literal(number).label("position"),
        )
        for number in range(events)
    ]
    drafts = (
        union_all(*numbered).subquery("drafts") if events > 1 else numbered[0].subquery("drafts")
    )
    written = (
        insert(call_events)
        .from_select(
            ["call_id", "from_state", "to_state", *event_columns],
            select(
                drafts.c.call_id,
                drafts.c.from_state,
                drafts.c.to_state,
                *(drafts.c[name] for name in event_columns),
            ).order_by(drafts.c.position),  # event ids in the order the events happened
        )
        .cte("written")
    )
    answer = select(*(changed.c[column.name] for column in calls.c)).add_cte(written)
    if not flush:
        no_flush_wait = select(
            func.set_config("synchronous_commit", "off", true()).label("setting")
        ).subquery("no_flush_wait")
        answer = answer.join_from(changed, no_flush_wait, true())
    return answer


def _postgres_claim(excluding: bool) -> Any:
    """A claim in one PostgreSQL statement, run in autocommit (one round trip): the two
    lookups of :meth:`SqlStore.claim_due` (run-out leases first, then due rows, each locked
    with SKIP LOCKED), the leases taken, and a ``rescued`` event for each run-out lease, all
    at once. The claimed rows are the answer.

    Built once per shape (with or without paused providers) with named parameters: building
    and keying a statement this size costs more than running it.
    """
    now: BindParameter[datetime] = bindparam("now", type_=calls.c.updated_at.type)
    limit = bindparam("limit", type_=Integer)
    ran_out_query = (
        select(calls.c.id, calls.c.lease_owner)
        .where(lease_ran_out_clause(now))
        .order_by(calls.c.lease_expires_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    due_query = (
        select(calls.c.id)
        .where(due_unleased_clause(now))
        .order_by(calls.c.next_attempt_at, calls.c.id)
        .with_for_update(skip_locked=True)
    )
    if excluding:
        excluded: BindParameter[list[str]] = bindparam("excluded", expanding=True)
        ran_out_query = ran_out_query.where(calls.c.provider.not_in(excluded))
        due_query = due_query.where(calls.c.provider.not_in(excluded))
    ran_out = ran_out_query.cte("ran_out")
    still_free = select(limit - func.count()).select_from(ran_out).scalar_subquery()
    due = due_query.limit(still_free).cte("due")
    picked = union_all(
        select(ran_out.c.id, ran_out.c.lease_owner.label("previous_owner")),
        select(due.c.id, cast(null(), calls.c.lease_owner.type).label("previous_owner")),
    ).subquery("picked")
    claimed = (
        update(calls)
        .where(calls.c.id == picked.c.id)
        .values(
            lease_owner=bindparam("owner", type_=calls.c.lease_owner.type),
            lease_expires_at=bindparam("lease_until", type_=calls.c.lease_expires_at.type),
            attempts=calls.c.attempts + 1,
            updated_at=now,
        )
        .returning(*calls.c, picked.c.previous_owner)
        .cte("claimed")
    )
    rescued = (
        insert(call_events)
        .from_select(
            ["call_id", "at", "from_state", "to_state", "step", "outcome", "message"],
            select(
                claimed.c.id,
                cast(now, call_events.c.at.type),
                claimed.c.state,
                claimed.c.state,
                cast(literal("lease"), call_events.c.step.type),
                cast(literal("rescued"), call_events.c.outcome.type),
                # The previous owner goes in by format(): a value, never read as a pattern.
                func.format(cast(bindparam("rescue_message"), Text), claimed.c.previous_owner),
            ).where(claimed.c.previous_owner.is_not(None)),
        )
        .cte("rescued")
    )
    return select(*(claimed.c[column.name] for column in calls.c)).add_cte(rescued)


_POSTGRES_CLAIM = {excluding: _postgres_claim(excluding) for excluding in (False, True)}


@dataclass(frozen=True)
class ClaimLookups:
    ran_out: Callable[[datetime, int, Collection[str]], Any]
    due: Callable[[datetime, int, Collection[str]], Any]


class SqlStore(SqlErasure, SqlRetention, SqlWebhookSubscriptions, LeaseGuardedWrites):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # Both backends spell INSERT ... ON CONFLICT alike, each through its own construct.
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        self._casts_parameters = engine.dialect.name == "postgresql"
        self._transitions: dict[Any, tuple[Any, ...]] = {}
        if engine.dialect.name == "postgresql":
            self._pages: PageWriter = PostgresPageWriter()
            self._claim_lookups: ClaimLookups = ClaimLookups(ran_out_lookup, due_lookup)
        else:
            self._pages = CorePageWriter()
            self._claim_lookups = ClaimLookups(sqlite_sql.ran_out_lookup, sqlite_sql.due_lookup)

    def claim_lookups(self, now: datetime, limit: int) -> list[Any]:
        """Both lookups of a claim, as this backend runs them (for EXPLAIN)."""
        return [
            self._claim_lookups.ran_out(now, limit, ()),
            self._claim_lookups.due(now, limit, ()),
        ]

    # -- reading -------------------------------------------------------------------------

    def status(self, now: datetime) -> StatusSummary:
        with read_transaction(self.engine) as conn:
            counts = {state.value: 0 for state in CallState}
            for state, count in conn.execute(
                select(calls.c.state, func.count()).group_by(calls.c.state)
            ):
                counts[state] = count
            by_attribution = attribution_counts(
                dict(
                    conn.execute(
                        select(calls.c.attribution, func.count())
                        .where(calls.c.state == CallState.UPLOADED.value)
                        .group_by(calls.c.attribution)
                    ).all()
                )
            )
            due_now, oldest = self._due(conn, now)
            cursors = self._cursors(conn)
            pauses = self._pauses(conn)
            workers = [
                WorkerHeartbeat(**row._mapping)
                for row in conn.execute(
                    select(worker_heartbeats).order_by(
                        worker_heartbeats.c.beat_at.desc(), worker_heartbeats.c.owner
                    )
                )
            ]
            unmapped: dict[str, int] = {
                provider: count
                for provider, count in conn.execute(
                    select(unmapped_records.c.provider, func.count())
                    # Expired ones are no longer mapped again: ix_unmapped_records_live.
                    .where(text(LIVE_UNMAPPED_SQL))
                    .group_by(unmapped_records.c.provider)
                    .order_by(unmapped_records.c.provider)
                )
            }
            unmapped_expired = self.unmapped_expired_counts(conn)
            forgotten: dict[str, int] = {
                provider: count
                for provider, count in conn.execute(
                    select(calls.c.provider, func.count())
                    .where(calls.c.forgotten_at.is_not(None))
                    .group_by(calls.c.provider)
                    .order_by(calls.c.provider)
                )
            }
        return StatusSummary(
            counts=counts,
            due_now=due_now,
            oldest_due_at=min(oldest, default=None),
            cursors=cursors,
            unmapped=unmapped,
            pauses=pauses,
            workers=workers,
            uploaded_by_attribution=by_attribution,
            unmapped_expired=unmapped_expired,
            forgotten=forgotten,
        )

    def count_due(self, now: datetime) -> int:
        with read_transaction(self.engine) as conn:
            return self._due(conn, now)[0]

    @staticmethod
    def _due(conn: Connection, now: datetime) -> tuple[int, list[datetime]]:
        """How many rows are due, and the oldest due time of each kind of due row."""
        # Two lookups, each on its own index (an OR of the two would scan the table).
        due_now = 0
        oldest: list[datetime] = []
        for clause in (due_unleased_clause(now), lease_ran_out_clause(now)):
            count, first = conn.execute(
                select(func.count(), func.min(calls.c.next_attempt_at)).where(clause)
            ).one()
            due_now += count
            if first is not None:
                oldest.append(first)
        return due_now, oldest

    def list_calls(
        self,
        *,
        state: CallState | None = None,
        error_kind: str | None = None,
        since: datetime | None = None,
        attribution: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Call]:
        query = select(calls).order_by(calls.c.id.desc()).limit(limit).offset(offset)
        query = query.where(*_call_filters(state, since, attribution, error_kind))
        with read_transaction(self.engine) as conn:
            return [call_from_row(row._mapping) for row in conn.execute(query)]

    def error_kinds(self) -> dict[str, int]:
        count = func.count().label("calls")
        query = (
            select(calls.c.error_kind, count)
            .where(calls.c.error_kind.is_not(None))
            .group_by(calls.c.error_kind)
            .order_by(count.desc(), calls.c.error_kind)
        )
        with read_transaction(self.engine) as conn:
            return {kind: number for kind, number in conn.execute(query)}

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
            if call.forgotten_at is not None:
                raise NotRequeueable(f"call {call_id} was forgotten (calls forget): never again")
            self._requeue_rows(conn, [call], now, actor)
            updated = conn.execute(select(calls).where(calls.c.id == call_id)).one()
        return call_from_row(updated._mapping)

    def requeue_matching(
        self,
        selection: RequeueSelection,
        now: datetime,
        *,
        actor: str = "cli",
        dry_run: bool = False,
    ) -> list[Call]:
        query = (
            select(calls)
            .where(calls.c.state.in_(sorted(state.value for state in selection.states)))
            .order_by(calls.c.id)
        )
        if selection.error_kind is not None:
            query = query.where(calls.c.error_kind == selection.error_kind)
        # A forgotten call is never downloaded or uploaded again (poller.domain.erasure).
        query = query.where(calls.c.forgotten_at.is_(None))
        query = query.where(*_call_filters(None, selection.since, selection.attribution))
        if dry_run:
            with read_transaction(self.engine) as conn:
                return [call_from_row(row._mapping) for row in conn.execute(query)]
        with write_transaction(self.engine) as conn:
            rows = conn.execute(query.with_for_update())
            chosen = [call_from_row(row._mapping) for row in rows]
            self._requeue_rows(conn, chosen, now, actor)
        return chosen

    def replay(self, call_id: int, now: datetime, *, actor: str = "cli") -> Call:
        with write_transaction(self.engine) as conn:
            row = conn.execute(select(calls).where(calls.c.id == call_id).with_for_update()).first()
            if row is None:
                raise KeyError(call_id)
            call = call_from_row(row._mapping)
            if call.state is not CallState.UPLOADED:
                raise NotReplayable(
                    f"call {call_id} is {call.state}; only uploaded calls can be replayed"
                )
            if call.forgotten_at is not None:
                raise NotReplayable(f"call {call_id} was forgotten (calls forget): never again")
            updated = conn.execute(
                update(calls)
                .where(calls.c.id == call_id)
                .values(**transitions.replayed(now), updated_at=now)
                .returning(*calls.c)
            ).one()
            conn.execute(
                insert(call_events).values(
                    call_id=call_id,
                    at=now,
                    from_state=call.state.value,
                    to_state=CallState.PENDING.value,
                    step=transitions.REPLAY_STEP,
                    outcome="requeued",
                    message=transitions.replay_message(actor, call),
                )
            )
        return call_from_row(updated._mapping)

    def _requeue_rows(self, conn: Connection, rows: list[Call], now: datetime, actor: str) -> None:
        if not rows:
            return
        conn.execute(
            update(calls)
            .where(calls.c.id.in_([row.id for row in rows]))
            .values(**transitions.requeued(now), updated_at=now)
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
                    "message": transitions.requeue_message(actor, row),
                }
                for row in rows
            ],
        )

    # -- polling -------------------------------------------------------------------------

    def get_cursor(self, provider: str) -> PollCursor | None:
        with read_transaction(self.engine) as conn:
            row = conn.execute(
                select(poll_cursors).where(poll_cursors.c.provider == provider)
            ).first()
        return PollCursor(**row._mapping) if row else None

    def ingest_page(
        self,
        provider: str,
        listed: Sequence[ListedCall],
        now: datetime,
        *,
        dry_run: bool = False,
        unmapped: Sequence[UnmappedDraft] = (),
        resolving: Mapping[int, str] | None = None,
    ) -> list[IngestChange]:
        items = last_sighting_per_call(listed)
        if dry_run:
            if not items:
                return []
            with read_transaction(self.engine) as conn:
                existing = self._existing(conn, provider, items, lock=False)
                return [
                    plan_ingest(provider, existing.get(i.record.provider_call_id), i, now).change
                    for i in items
                ]
        if not items and not unmapped:
            return []
        with write_transaction(self.engine) as conn:
            changes = self._ingest(conn, provider, items, now) if items else []
            if unmapped:
                self._keep_unmapped(conn, provider, unmapped, now)
            if resolving:
                self._resolve_unmapped(conn, resolving, changes, now)
            return changes

    def _keep_unmapped(
        self, conn: Connection, provider: str, drafts: Sequence[UnmappedDraft], now: datetime
    ) -> None:
        # One row per record: the same record twice on a page is one sighting (the last).
        latest = {draft.raw_sha256: draft for draft in drafts}
        # The record of a forgotten call is not kept again (poller.domain.erasure).
        keys = sorted({d.provider_call_id for d in latest.values() if d.provider_call_id})
        if keys:
            forgotten = set(
                conn.execute(
                    select(calls.c.provider_call_id).where(
                        calls.c.provider == provider,
                        calls.c.provider_call_id.in_(keys),
                        calls.c.forgotten_at.is_not(None),
                    )
                ).scalars()
            )
            latest = {k: d for k, d in latest.items() if d.provider_call_id not in forgotten}
        emptied = set(
            conn.execute(
                select(unmapped_records.c.raw_sha256).where(
                    unmapped_records.c.provider == provider,
                    unmapped_records.c.raw_sha256.in_(sorted(latest)),
                    unmapped_records.c.forgotten_at.is_not(None),
                )
            ).scalars()
        )
        latest = {k: d for k, d in latest.items() if k not in emptied}
        if not latest:
            return
        statement = self._insert(unmapped_records)
        seen_again = {
            name: getattr(statement.excluded, name)
            for name in (
                "provider_call_id",
                "window_start",
                "window_end",
                "page",
                "item_index",
                "reason",
                "last_seen_at",
            )
        }
        conn.execute(
            statement.on_conflict_do_update(
                index_elements=["provider", "raw_sha256"],
                set_={
                    **seen_again,
                    "times_seen": unmapped_records.c.times_seen + 1,
                    "resolved_at": None,
                    "resolved_call_id": None,
                },
            ),
            [
                {
                    **dataclasses.asdict(draft),
                    "provider": provider,
                    "first_seen_at": now,
                    "last_seen_at": now,
                    "times_seen": 1,
                }
                for draft in latest.values()
            ],
        )

    def _resolve_unmapped(
        self,
        conn: Connection,
        resolving: Mapping[int, str],
        changes: Sequence[IngestChange],
        now: datetime,
    ) -> None:
        call_ids = {change.provider_call_id: change.call_id for change in changes}
        rows = [
            {"row_id": row_id, "call_row_id": call_ids.get(key), "at": now}
            for row_id, key in resolving.items()
        ]
        conn.execute(
            update(unmapped_records)
            .where(unmapped_records.c.id == bindparam("row_id"))
            .values(resolved_at=bindparam("at"), resolved_call_id=bindparam("call_row_id")),
            rows,
        )

    def unmapped_records(
        self,
        provider: str | None = None,
        *,
        resolved: bool | None = False,
        after_id: int = 0,
        limit: int = 100,
    ) -> list[UnmappedRecord]:
        query = (
            select(unmapped_records)
            .where(unmapped_records.c.id > after_id)
            .order_by(unmapped_records.c.id)
            .limit(limit)
        )
        if provider is not None:
            query = query.where(unmapped_records.c.provider == provider)
        if resolved is not None:
            column = unmapped_records.c.resolved_at
            query = query.where(column.is_not(None) if resolved else column.is_(None))
        with read_transaction(self.engine) as conn:
            return [UnmappedRecord(**row._mapping) for row in conn.execute(query)]

    def _ingest(
        self, conn: Connection, provider: str, items: list[ListedCall], now: datetime
    ) -> list[IngestChange]:
        existing = self._existing(conn, provider, items, lock=True)
        plans = {
            item.record.provider_call_id: plan_ingest(
                provider, existing.get(item.record.provider_call_id), item, now
            )
            for item in items
        }
        inserted = self._pages.write(conn, provider, page_writes(plans, existing, now))
        # A key planned as an insert but not inserted was inserted by another poller after
        # our read: plan it again against that row.
        raced = [
            item
            for item in items
            if plans[item.record.provider_call_id].inserts
            and item.record.provider_call_id not in inserted
        ]
        if raced:
            rows = self._existing(conn, provider, raced, lock=True)
            replanned = {
                item.record.provider_call_id: plan_ingest(
                    provider, rows[item.record.provider_call_id], item, now
                )
                for item in raced
            }
            self._pages.write(conn, provider, page_writes(replanned, rows, now))
            plans.update(replanned)
        changes: list[IngestChange] = []
        for key, plan in plans.items():
            if plan.inserts:
                changes.append(dataclasses.replace(plan.change, call_id=inserted[key]))
            else:
                changes.append(plan.change)
        return changes

    def _existing(
        self, conn: Connection, provider: str, items: Iterable[ListedCall], *, lock: bool
    ) -> dict[str, Call]:
        keys = sorted({item.record.provider_call_id for item in items})
        rows = self._pages.existing(conn, provider, keys, lock=lock)
        return {row["provider_call_id"]: call_from_row(row) for row in rows}

    def advance_cursor(self, provider: str, to: datetime, now: datetime) -> PollCursor:
        with write_transaction(self.engine) as conn:
            statement = self._cursor_upsert(
                conn, {"provider": provider, "cursor_value": to, "last_polled_at": now}
            )
            current = poll_cursors.c.cursor_value
            conn.execute(
                statement.on_conflict_do_update(
                    index_elements=["provider"],
                    set_={
                        # Never backwards: a slower concurrent cycle cannot undo a faster one.
                        "cursor_value": case(
                            (
                                current.is_(None) | (current < statement.excluded.cursor_value),
                                statement.excluded.cursor_value,
                            ),
                            else_=current,
                        ),
                        "last_polled_at": statement.excluded.last_polled_at,
                    },
                )
            )
            row = conn.execute(
                select(poll_cursors).where(poll_cursors.c.provider == provider)
            ).one()
        return PollCursor(**row._mapping)

    def record_poll_result(self, provider: str, now: datetime, error: str | None) -> None:
        values: dict[str, Any] = {"last_polled_at": now}
        if error is None:
            values.update(last_success_at=now, last_error=None, last_error_at=None)
        else:
            values.update(last_error=error, last_error_at=now)
        with write_transaction(self.engine) as conn:
            statement = self._cursor_upsert(conn, {"provider": provider, **values})
            conn.execute(
                statement.on_conflict_do_update(
                    index_elements=["provider"],
                    set_={name: getattr(statement.excluded, name) for name in values},
                )
            )

    def _cursor_upsert(self, conn: Connection, values: dict[str, Any]) -> Any:
        return self._insert(poll_cursors).values(**values)

    def oldest_waiting_start(self, provider: str, not_before: datetime) -> datetime | None:
        query = select(func.min(calls.c.started_at)).where(
            waiting_clause(provider), calls.c.started_at >= not_before
        )
        with read_transaction(self.engine) as conn:
            value: datetime | None = conn.execute(query).scalar_one()
        return value

    def mark_waiting_rechecked(self, provider: str, now: datetime) -> None:
        with write_transaction(self.engine) as conn:
            statement = self._cursor_upsert(
                conn, {"provider": provider, "waiting_rechecked_at": now}
            )
            conn.execute(
                statement.on_conflict_do_update(
                    index_elements=["provider"],
                    set_={"waiting_rechecked_at": statement.excluded.waiting_rechecked_at},
                )
            )

    def expire_waiting(
        self,
        provider: str,
        listed_before: datetime,
        now: datetime,
        *,
        message: str,
        dry_run: bool = False,
    ) -> list[str]:
        query = (
            select(calls.c.id, calls.c.provider_call_id)
            .where(waiting_clause(provider), calls.c.created_at < listed_before)
            .order_by(calls.c.id)
        )
        if dry_run:
            with read_transaction(self.engine) as conn:
                return [row.provider_call_id for row in conn.execute(query)]
        with write_transaction(self.engine) as conn:
            overdue = conn.execute(query.with_for_update()).all()
            if not overdue:
                return []
            ids = [row.id for row in overdue]
            conn.execute(
                update(calls)
                .where(calls.c.id.in_(ids))
                .values(
                    state=CallState.SKIPPED.value,
                    error_kind=SkipReason.NO_RECORDING.value,
                    last_error=message,
                    updated_at=now,
                )
            )
            conn.execute(
                insert(call_events),
                [
                    {
                        "call_id": call_id,
                        "at": now,
                        "from_state": CallState.PENDING.value,
                        "to_state": CallState.SKIPPED.value,
                        "step": POLL_STEP,
                        "outcome": "skipped",
                        "message": message,
                    }
                    for call_id in ids
                ],
            )
        return [row.provider_call_id for row in overdue]

    # -- the worker ----------------------------------------------------------------------

    def claim_due(
        self,
        owner: str,
        now: datetime,
        lease_until: datetime,
        limit: int,
        *,
        exclude_providers: Collection[str] = (),
    ) -> list[Call]:
        if limit <= 0:
            return []
        if self.engine.dialect.name == "postgresql":
            parameters: dict[str, Any] = {
                "now": now,
                "limit": limit,
                "owner": owner,
                "lease_until": lease_until,
                "rescue_message": transitions.rescue_message("%s", owner.replace("%", "%%")),
            }
            if exclude_providers:
                parameters["excluded"] = sorted(exclude_providers)
            claim = _POSTGRES_CLAIM[bool(exclude_providers)]
            with single_statement(self.engine) as conn:
                claimed = [call_from_row(row._mapping) for row in conn.execute(claim, parameters)]
            return sorted(claimed, key=lambda call: (call.next_attempt_at or now, call.id))
        with write_transaction(self.engine) as conn:
            # Two lookups that each read the first entries of their own partial index, so a
            # claim costs the same at ten thousand rows as at ten million: first the rows whose
            # worker died (ix_calls_leased), then the due ones (ix_calls_due). On PostgreSQL,
            # SKIP LOCKED lets workers on other hosts pass over rows this one is taking; SQLite
            # has one writer, and this transaction holds its lock (BEGIN IMMEDIATE).
            excluded = exclude_providers
            ran_out = conn.execute(self._claim_lookups.ran_out(now, limit, excluded)).all()
            previous: dict[int, str] = {row.id: row.lease_owner for row in ran_out}
            due: list[int] = []
            if len(previous) < limit:
                due = [
                    row.id
                    for row in conn.execute(
                        self._claim_lookups.due(now, limit - len(previous), excluded)
                    )
                ]
            if not previous and not due:
                return []
            rows = conn.execute(
                update(calls)
                .where(calls.c.id.in_([*previous, *due]))
                .values(
                    lease_owner=owner,
                    lease_expires_at=lease_until,
                    attempts=calls.c.attempts + 1,
                    updated_at=now,
                )
                .returning(*calls.c)
            ).all()
            claimed = [call_from_row(row._mapping) for row in rows]
            rescued = [call for call in claimed if call.id in previous]
            if rescued:
                conn.execute(
                    insert(call_events),
                    [
                        {
                            "call_id": call.id,
                            "at": now,
                            "from_state": call.state.value,
                            "to_state": call.state.value,
                            "step": "lease",
                            "outcome": "rescued",
                            "message": transitions.rescue_message(previous[call.id], owner),
                        }
                        for call in rescued
                    ],
                )
        return sorted(claimed, key=lambda call: (call.next_attempt_at or now, call.id))

    def renew_leases(
        self, owner: str, call_ids: Collection[int], now: datetime, lease_until: datetime
    ) -> set[int]:
        if not call_ids:
            return set()
        with write_transaction(self.engine) as conn:
            renewed = conn.execute(
                update(calls)
                .where(calls.c.id.in_(sorted(call_ids)), calls.c.lease_owner == owner)
                .values(lease_expires_at=lease_until)
                .returning(calls.c.id)
            ).scalars()
            return set(renewed)

    def mark_create_sent(
        self,
        call_id: int,
        owner: str,
        now: datetime,
        title: str,
        *,
        sent: bool = True,
        attribution: AttributionNote | None = None,
    ) -> bool:
        changes = {"title": title, "siro_create_sent_at": FIRST_SEND_AT if sent else None}
        event = transitions.create_sent_event(sent, owner)
        if attribution is None:
            return self._transition(call_id, owner, now, event, changes) is not None
        changes |= attribution.changes()
        earlier = (attribution.event(),)
        return self._transition(call_id, owner, now, event, changes, earlier=earlier) is not None

    def give_back(self, call_id: int, owner: str, now: datetime, event: EventDraft) -> bool:
        changes = {**transitions.given_back(now), "attempts": REFUNDED_ATTEMPT}
        return self._transition(call_id, owner, now, event, changes) is not None

    def due_by_provider(self, now: datetime) -> dict[str, int]:
        counts: dict[str, int] = {}
        with read_transaction(self.engine) as conn:
            for clause in (due_unleased_clause(now), lease_ran_out_clause(now)):
                query = select(calls.c.provider, func.count()).where(clause)
                for provider, count in conn.execute(query.group_by(calls.c.provider)):
                    counts[provider] = counts.get(provider, 0) + count
        return dict(sorted(counts.items()))

    def beat(self, owner: str, started_at: datetime, now: datetime) -> None:
        with write_transaction(self.engine) as conn:
            statement = self._insert(worker_heartbeats).values(
                owner=owner, started_at=started_at, beat_at=now
            )
            conn.execute(
                statement.on_conflict_do_update(
                    index_elements=["owner"], set_={"beat_at": statement.excluded.beat_at}
                )
            )

    def forget_heartbeats(self, before: datetime) -> int:
        with write_transaction(self.engine) as conn:
            gone = conn.execute(
                worker_heartbeats.delete().where(worker_heartbeats.c.beat_at < before)
            )
        return gone.rowcount

    # -- credential pauses -----------------------------------------------------------------

    def pauses(self) -> list[CredentialPause]:
        with read_transaction(self.engine) as conn:
            return self._pauses(conn)

    def _pauses(self, conn: Connection) -> list[CredentialPause]:
        rows = conn.execute(select(credential_pauses).order_by(credential_pauses.c.scope))
        return [CredentialPause(**row._mapping) for row in rows]

    def record_pause(self, scope: str, reason: str, now: datetime) -> CredentialPause:
        with write_transaction(self.engine) as conn:
            statement = self._insert(credential_pauses).values(
                scope=scope, reason=reason, since=now, last_probe_at=None
            )
            conn.execute(
                statement.on_conflict_do_update(
                    index_elements=["scope"], set_={"reason": statement.excluded.reason}
                )
            )
            row = conn.execute(
                select(credential_pauses).where(credential_pauses.c.scope == scope)
            ).one()
        return CredentialPause(**row._mapping)

    def note_pause_probe(self, scope: str, now: datetime) -> None:
        with write_transaction(self.engine) as conn:
            conn.execute(
                update(credential_pauses)
                .where(credential_pauses.c.scope == scope)
                .values(last_probe_at=now)
            )

    def end_pause(self, scope: str) -> CredentialPause | None:
        with write_transaction(self.engine) as conn:
            row = conn.execute(
                credential_pauses.delete()
                .where(credential_pauses.c.scope == scope)
                .returning(*credential_pauses.c)
            ).first()
        return CredentialPause(**row._mapping) if row else None

    def release_leases(self, owner: str, now: datetime) -> int:
        with write_transaction(self.engine) as conn:
            rows = conn.execute(
                update(calls)
                .where(calls.c.lease_owner == owner)
                .values(
                    lease_owner=None,
                    lease_expires_at=None,
                    next_attempt_at=now,
                    attempts=case((calls.c.attempts > 0, calls.c.attempts - 1), else_=0),
                    updated_at=now,
                )
                .returning(calls.c.id, calls.c.state)
            ).all()
            if rows:
                conn.execute(
                    insert(call_events),
                    [
                        {
                            "call_id": row.id,
                            "at": now,
                            "from_state": row.state,
                            "to_state": row.state,
                            "step": "lease",
                            "outcome": "released",
                            "message": transitions.release_message(owner),
                        }
                        for row in rows
                    ],
                )
        return len(rows)

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
        """Apply ``values`` and write ``earlier`` then ``event``, only while ``owner`` holds the
        row's lease.

        On PostgreSQL one statement does it all, in autocommit (one round trip, no BEGIN or
        COMMIT of its own): the row locked with its state before, the change, and the events
        copied from both. SQLite runs no data-changing
        CTE, so there each event is copied from the row itself (its state before, only while
        the lease is ``owner``'s), then the row changes. The statements are built once per
        shape of change and reused (building and keying SQLAlchemy constructs cost more than
        running them).
        """
        drafts = (*earlier, event)
        key = (_shape_of(values), len(drafts), flush)
        statements = self._transitions.get(key)
        if statements is None:
            statements = self._transition_statements(values, len(drafts), flush)
            if len(self._transitions) < 64:  # a bound, should a caller make expressions afresh
                self._transitions[key] = statements
        parameters = {
            "row_id": call_id,
            "owner": owner,
            "now": now,
            "e_to_state": values.get("state"),
            **{f"v_{name}": value for name, value in values.items() if _is_plain(value)},
        }
        drafted = [
            {"e_at": now, **{f"e_{k}": v for k, v in dataclasses.asdict(draft).items()}}
            for draft in drafts
        ]
        if len(statements) == 1:
            numbered = {
                f"{name}_{number}": value
                for number, draft_values in enumerate(drafted)
                for name, value in draft_values.items()
            }
            with single_statement(self.engine) as conn:
                row = conn.execute(statements[0], {**parameters, **numbered}).first()
            return None if row is None else call_from_row(row._mapping)
        with write_transaction(self.engine) as conn:
            copy_event, change_row = statements
            for draft_values in drafted:
                if conn.execute(copy_event, {**parameters, **draft_values}).first() is None:
                    return None
            row = conn.execute(change_row, parameters).one()
        return call_from_row(row._mapping)

    def _transition_statements(
        self, values: dict[str, Any], events: int, flush: bool
    ) -> tuple[Any, ...]:
        held = and_(calls.c.id == bindparam("row_id"), calls.c.lease_owner == bindparam("owner"))
        changes = {
            name: bindparam(f"v_{name}", type_=calls.c[name].type) if _is_plain(value) else value
            for name, value in values.items()
        }
        now = bindparam("now", type_=calls.c.updated_at.type)
        event_columns = ["at", *(field.name for field in dataclasses.fields(EventDraft))]
        if self.engine.dialect.name == "postgresql":
            return (_postgres_transition(held, changes, now, event_columns, events, flush),)
        to_state = (
            self._selected(call_events.c.to_state, "e_to_state")
            if "state" in values
            else calls.c.state
        )
        copy_event = (
            insert(call_events)
            .from_select(
                ["call_id", "from_state", "to_state", *event_columns],
                select(
                    calls.c.id,
                    calls.c.state,
                    to_state,
                    *(self._selected(call_events.c[name], f"e_{name}") for name in event_columns),
                )
                .where(held)
                .with_for_update(),
            )
            .returning(call_events.c.id)
        )
        change_row = update(calls).where(held).values(**changes, updated_at=now).returning(*calls.c)
        return (copy_event, change_row)

    def _selected(self, column: Any, name: str) -> Any:
        """A parameter of ``column``'s type, as a column of a SELECT."""
        parameter = bindparam(name, type_=column.type)
        # PostgreSQL types a bare parameter in a SELECT list as text (NULL too), which an
        # integer or timestamp column then refuses; SQLite must not cast (its CAST to a
        # timestamp type would make a number of the text).
        return cast(parameter, column.type) if self._casts_parameters else parameter

    # -- backfill runs -------------------------------------------------------------------

    def start_backfill(
        self, provider: str, since: datetime, until: datetime, now: datetime
    ) -> BackfillRun:
        with write_transaction(self.engine) as conn:
            row = conn.execute(
                select(backfill_runs)
                .where(
                    backfill_runs.c.provider == provider,
                    backfill_runs.c.since == since,
                    backfill_runs.c.until == until,
                    backfill_runs.c.finished_at.is_(None),
                )
                .order_by(backfill_runs.c.id.desc())
                .limit(1)
            ).first()
            if row is None:
                row = conn.execute(
                    insert(backfill_runs)
                    .values(
                        provider=provider,
                        since=since,
                        until=until,
                        listed_until=since,
                        started_at=now,
                        updated_at=now,
                    )
                    .returning(*backfill_runs.c)
                ).one()
        return BackfillRun(**row._mapping)

    def record_backfill_progress(
        self, run_id: int, listed_until: datetime, counts: BackfillCounts, now: datetime
    ) -> BackfillRun:
        current = backfill_runs.c.listed_until
        added = {
            name: getattr(backfill_runs.c, name) + value
            for name, value in dataclasses.asdict(counts).items()
        }
        return self._update_backfill(
            run_id,
            # Never backwards: a run resumed twice at once cannot undo the other's progress.
            listed_until=case((current < listed_until, listed_until), else_=current),
            updated_at=now,
            **added,
        )

    def finish_backfill(self, run_id: int, now: datetime, error: str | None) -> BackfillRun:
        if error is None:
            return self._update_backfill(run_id, finished_at=now, last_error=None, updated_at=now)
        return self._update_backfill(run_id, last_error=error, updated_at=now)

    def _update_backfill(self, run_id: int, **values: Any) -> BackfillRun:
        with write_transaction(self.engine) as conn:
            row = conn.execute(
                update(backfill_runs)
                .where(backfill_runs.c.id == run_id)
                .values(**values)
                .returning(*backfill_runs.c)
            ).first()
        if row is None:
            raise KeyError(run_id)
        return BackfillRun(**row._mapping)

    def backfill_runs(self, provider: str | None = None) -> list[BackfillRun]:
        query = select(backfill_runs).order_by(backfill_runs.c.id)
        if provider is not None:
            query = query.where(backfill_runs.c.provider == provider)
        with read_transaction(self.engine) as conn:
            return [BackfillRun(**row._mapping) for row in conn.execute(query)]

    # -- rep attribution: Siro's users directory and the attribution of a row --------------

    def replace_siro_users(self, users: Sequence[DirectoryUser], now: datetime) -> UsersSyncResult:
        with write_transaction(self.engine) as conn:
            # Locked, so two daemons syncing at once count and mark from the same rows.
            rows = conn.execute(select(siro_users).order_by(siro_users.c.id).with_for_update())
            existing = {row.id: DirectoryUser(**row._mapping) for row in rows}
            plan = plan_users_sync(existing, users, now)
            if plan.upserts:
                statement = self._insert(siro_users)
                columns = [column.name for column in siro_users.columns]
                conn.execute(
                    statement.on_conflict_do_update(
                        index_elements=["id"],
                        set_={
                            name: getattr(statement.excluded, name)
                            for name in columns
                            if name != "id"
                        },
                    ),
                    [dataclasses.asdict(user) for user in plan.upserts],
                )
            if plan.newly_missing:
                conn.execute(
                    update(siro_users)
                    .where(siro_users.c.id.in_(plan.newly_missing))
                    .values(missing_since=now)
                )
        return plan.result

    def siro_users(self) -> list[DirectoryUser]:
        with read_transaction(self.engine) as conn:
            rows = conn.execute(select(siro_users).order_by(siro_users.c.id))
            return [DirectoryUser(**row._mapping) for row in rows]

    def user_directory(self) -> InMemoryUserDirectory:
        return snapshot_directory(self.siro_users())

    def record_attribution(
        self,
        call_id: int,
        owner: str,
        now: datetime,
        siro_user_id: str | None,
        attribution: str,
        detail: str,
    ) -> bool:
        note = AttributionNote(siro_user_id, attribution, detail)
        # Lost in a database crash, it is worked out and written again by the next attempt.
        changed = self._transition(call_id, owner, now, note.event(), note.changes(), flush=False)
        return changed is not None
