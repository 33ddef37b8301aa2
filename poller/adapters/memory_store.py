"""An in-memory :class:`poller.ports.store.Store` for fast tests of the core.

It honours the same contract as :class:`poller.adapters.sql.store.SqlStore`; the contract tests
in ``tests/test_store_contract.py`` run against both.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import threading
from collections import Counter
from collections.abc import Collection, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from poller.adapters.lease_guarded import LeaseGuardedWrites
from poller.domain import transitions
from poller.domain.attribution import (
    NO_ATTRIBUTION,
    InMemoryUserDirectory,
    attribution_counts,
    plan_users_sync,
    snapshot_directory,
)
from poller.domain.clock import as_utc
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
from poller.domain.redaction import mask_url_query, mask_urls_in_text
from poller.domain.states import REQUEUEABLE_STATES, WORKABLE_STATES, CallState, RecordingState
from poller.domain.transitions import AttributionNote, RequeueSelection
from poller.ports.store import NotReplayable, NotRequeueable, SavedSubscription
from poller.ports.token_store import SealedTokens, TokenSlot
from poller.ports.webhooks import Subscription


class MemoryStore(LeaseGuardedWrites):
    def __init__(self) -> None:
        self.calls: dict[int, Call] = {}
        self.events: list[CallEvent] = []
        self.poll_cursors: dict[str, PollCursor] = {}
        self.directory_users: dict[str, DirectoryUser] = {}
        self.unmapped: dict[int, UnmappedRecord] = {}
        self.credential_pauses: dict[str, CredentialPause] = {}
        self.heartbeats: dict[str, WorkerHeartbeat] = {}
        self.backfills: dict[int, BackfillRun] = {}
        self.webhook_states: dict[str, SavedSubscription] = {}
        self._lock = threading.RLock()
        self._next_event_id = 1

    # -- webhook subscriptions -----------------------------------------------------------

    def save_webhook_subscription(self, subscription: Subscription, checked_at: datetime) -> None:
        with self._lock:
            known = self.webhook_states.get(subscription.provider)
            self.webhook_states[subscription.provider] = SavedSubscription(
                provider=subscription.provider,
                state=subscription.state,
                vendor_id=subscription.vendor_id,
                url=None if subscription.url is None else mask_url_query(subscription.url),
                expires_at=as_utc(subscription.expires_at) if subscription.expires_at else None,
                detail=mask_urls_in_text(subscription.detail),
                checked_at=as_utc(checked_at),
                last_event_at=known.last_event_at if known else None,
            )

    def webhook_event_arrived(self, provider: str, at: datetime) -> None:
        with self._lock:
            known = self.webhook_states.get(provider) or SavedSubscription(provider, None)
            if known.last_event_at is None or known.last_event_at < at:
                known = dataclasses.replace(known, last_event_at=as_utc(at))
            self.webhook_states[provider] = known

    def webhook_subscription_states(self) -> list[SavedSubscription]:
        with self._lock:
            return [self.webhook_states[name] for name in sorted(self.webhook_states)]

    # -- reading -------------------------------------------------------------------------

    def status(self, now: datetime) -> StatusSummary:
        with self._lock:
            counts = {state.value: 0 for state in CallState}
            by_attribution: dict[str | None, int] = {}
            for call in self.calls.values():
                counts[call.state.value] += 1
                if call.state is CallState.UPLOADED:
                    by_attribution[call.attribution] = by_attribution.get(call.attribution, 0) + 1
            due = [call for call in self.calls.values() if self._is_due(call, now)]
            times = [c.next_attempt_at for c in due if c.next_attempt_at is not None]
            forgotten: dict[str, int] = {}
            for call in self.calls.values():
                if call.forgotten_at is not None:
                    forgotten[call.provider] = forgotten.get(call.provider, 0) + 1
            unmapped: dict[str, int] = {}
            for row in self.unmapped.values():
                if row.resolved_at is None and row.expired_at is None:
                    unmapped[row.provider] = unmapped.get(row.provider, 0) + 1
            return StatusSummary(
                counts=counts,
                due_now=len(due),
                oldest_due_at=min(times) if times else None,
                cursors=self.cursors(),
                unmapped=dict(sorted(unmapped.items())),
                pauses=self.pauses(),
                workers=sorted(
                    self.heartbeats.values(),
                    key=lambda beat: (-beat.beat_at.timestamp(), beat.owner),
                ),
                uploaded_by_attribution=attribution_counts(by_attribution),
                forgotten=dict(sorted(forgotten.items())),
            )

    @staticmethod
    def _is_due(call: Call, now: datetime) -> bool:
        if call.lease_owner is not None:
            return call.lease_expires_at is not None and call.lease_expires_at <= now
        return (
            call.state in WORKABLE_STATES
            and call.next_attempt_at is not None
            and call.next_attempt_at <= now
        )

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
        with self._lock:
            rows = sorted(self.calls.values(), key=lambda call: call.id, reverse=True)
        if state is not None:
            rows = [row for row in rows if row.state == state]
        if error_kind is not None:
            rows = [row for row in rows if row.error_kind == error_kind]
        if attribution is not None:
            rows = [row for row in rows if (row.attribution or NO_ATTRIBUTION) == attribution]
        if since is not None:
            rows = [row for row in rows if row.started_at is not None and row.started_at >= since]
        return rows[offset : offset + limit]

    def error_kinds(self) -> dict[str, int]:
        with self._lock:
            found = Counter(call.error_kind for call in self.calls.values() if call.error_kind)
        return dict(sorted(found.items(), key=lambda item: (-item[1], item[0])))

    def get_call(self, call_id: int) -> Call | None:
        with self._lock:
            return self.calls.get(call_id)

    def find_calls(self, reference: str) -> list[Call]:
        with self._lock:
            found = [
                call
                for call in self.calls.values()
                if call.provider_call_id == reference
                or (reference.isdigit() and call.id == int(reference))
            ]
        return sorted(found, key=lambda call: call.id)

    def events_for(self, call_id: int) -> list[CallEvent]:
        with self._lock:
            return [event for event in self.events if event.call_id == call_id]

    def cursors(self) -> list[PollCursor]:
        with self._lock:
            return [self.poll_cursors[key] for key in sorted(self.poll_cursors)]

    # -- writing -------------------------------------------------------------------------

    def requeue(self, call_id: int, now: datetime, *, actor: str = "cli") -> Call:
        with self._lock:
            call = self.calls[call_id]
            if call.state not in REQUEUEABLE_STATES:
                raise NotRequeueable(
                    f"call {call_id} is {call.state}; only failed or skipped calls can be retried"
                )
            return self._requeue(call, now, actor)

    def requeue_matching(
        self,
        selection: RequeueSelection,
        now: datetime,
        *,
        actor: str = "cli",
        dry_run: bool = False,
    ) -> list[Call]:
        with self._lock:
            chosen = sorted(
                (call for call in self.calls.values() if selection.matches(call)),
                key=lambda call: call.id,
            )
            if not dry_run:
                for call in chosen:
                    self._requeue(call, now, actor)
            return chosen

    def replay(self, call_id: int, now: datetime, *, actor: str = "cli") -> Call:
        with self._lock:
            call = self.calls[call_id]
            if call.state is not CallState.UPLOADED:
                raise NotReplayable(
                    f"call {call_id} is {call.state}; only uploaded calls can be replayed"
                )
            updated = dataclasses.replace(
                call,
                **{**transitions.replayed(now), "state": CallState.PENDING},
                updated_at=now,
            )
            self.calls[call.id] = updated
            self.add_event(
                call_id=call.id,
                at=now,
                from_state=call.state.value,
                to_state=CallState.PENDING.value,
                step=transitions.REPLAY_STEP,
                outcome="requeued",
                message=transitions.replay_message(actor, call),
            )
            return updated

    def _requeue(self, call: Call, now: datetime, actor: str) -> Call:
        updated = dataclasses.replace(
            call,
            **{**transitions.requeued(now), "state": CallState.PENDING},
            updated_at=now,
        )
        self.calls[call.id] = updated
        self.add_event(
            call_id=call.id,
            at=now,
            from_state=call.state.value,
            to_state=CallState.PENDING.value,
            step="requeue",
            outcome="requeued",
            message=transitions.requeue_message(actor, call),
        )
        return updated

    def add_event(self, **fields: object) -> CallEvent:
        with self._lock:
            event = CallEvent(id=self._next_event_id, **fields)  # type: ignore[arg-type]
            self._next_event_id += 1
            self.events.append(event)
            return event

    # -- polling -------------------------------------------------------------------------

    def get_cursor(self, provider: str) -> PollCursor | None:
        with self._lock:
            return self.poll_cursors.get(provider)

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
        now = as_utc(now)
        with self._lock:
            by_key = {
                call.provider_call_id: call
                for call in self.calls.values()
                if call.provider == provider
            }
            plans = [
                plan_ingest(provider, by_key.get(item.record.provider_call_id), item, now)
                for item in last_sighting_per_call(listed)
            ]
            if dry_run:
                return [plan.change for plan in plans]
            # Ids continue after the highest one, as an identity column does (seeded rows too).
            next_ids = itertools.count(max(self.calls, default=0) + 1)
            changes = [self._apply(plan, now, next_ids) for plan in plans]
            # The same record twice on one page is one sighting (the last), as in SQL.
            for draft in {draft.raw_sha256: draft for draft in unmapped}.values():
                self._keep_unmapped(provider, draft, now)
            call_ids = {change.provider_call_id: change.call_id for change in changes}
            for row_id, key in (resolving or {}).items():
                if row_id in self.unmapped:
                    self.unmapped[row_id] = dataclasses.replace(
                        self.unmapped[row_id], resolved_at=now, resolved_call_id=call_ids.get(key)
                    )
            return changes

    def _keep_unmapped(self, provider: str, draft: UnmappedDraft, now: datetime) -> None:
        values = dataclasses.asdict(draft)
        values.update(
            {k: as_utc(v) for k, v in values.items() if isinstance(v, datetime)},
            last_seen_at=now,
            resolved_at=None,
            resolved_call_id=None,
        )
        known = next(
            (
                row
                for row in self.unmapped.values()
                if (row.provider, row.raw_sha256) == (provider, draft.raw_sha256)
            ),
            None,
        )
        if known is None:
            row_id = max(self.unmapped, default=0) + 1
            self.unmapped[row_id] = UnmappedRecord(
                id=row_id, provider=provider, first_seen_at=now, **values
            )
        else:
            # As in SQL: a sighting does not refill what retention emptied, nor undo an expiry.
            values.update(
                raw=known.raw if known.expired_at is not None else values["raw"],
                expired_at=known.expired_at,
                expired_reason=known.expired_reason,
            )
            self.unmapped[known.id] = dataclasses.replace(
                known, times_seen=known.times_seen + 1, **values
            )

    def unmapped_records(
        self,
        provider: str | None = None,
        *,
        resolved: bool | None = False,
        after_id: int = 0,
        limit: int = 100,
    ) -> list[UnmappedRecord]:
        with self._lock:
            rows = [
                row
                for row_id, row in sorted(self.unmapped.items())
                if row_id > after_id
                and (provider is None or row.provider == provider)
                and (resolved is None or (row.resolved_at is not None) == resolved)
            ]
        return rows[:limit]

    def unmapped_to_remap(
        self, provider: str, now: datetime, *, after_id: int = 0, limit: int = 100
    ) -> list[UnmappedRecord]:
        with self._lock:
            rows = [
                row
                for row_id, row in sorted(self.unmapped.items())
                if row_id > after_id
                and row.provider == provider
                and row.resolved_at is None
                and row.expired_at is None
                and (row.next_remap_at is None or row.next_remap_at <= now)
            ]
        return rows[:limit]

    def count_live_unmapped(self, provider: str) -> int:
        with self._lock:
            return sum(
                1
                for row in self.unmapped.values()
                if row.provider == provider and row.resolved_at is None and row.expired_at is None
            )

    def note_remap_failed(self, backoff: Mapping[int, tuple[int, datetime]]) -> None:
        with self._lock:
            for row_id, (attempts, next_at) in backoff.items():
                row = self.unmapped.get(row_id)
                if row is not None and row.resolved_at is None and row.expired_at is None:
                    self.unmapped[row_id] = dataclasses.replace(
                        row, remap_attempts=attempts, next_remap_at=as_utc(next_at)
                    )

    def _apply(self, plan: IngestPlan, now: datetime, next_ids: Iterator[int]) -> IngestChange:
        change = plan.change
        if not plan.values:
            return change
        # What a database does on the way in: instants are kept as UTC, states as their enum.
        values: dict[str, Any] = {
            k: as_utc(v) if isinstance(v, datetime) else v for k, v in plan.values.items()
        }
        if "state" in values:
            values["state"] = CallState(values["state"])
        if plan.inserts:
            call = Call(id=next(next_ids), **values)
            change = dataclasses.replace(change, call_id=call.id)
        else:
            assert change.call_id is not None
            call = dataclasses.replace(self.calls[change.call_id], **values)
        self.calls[call.id] = call
        if plan.event is not None:
            self.add_event(**plan.event.columns(call.id, now))
        return change

    def advance_cursor(self, provider: str, to: datetime, now: datetime) -> PollCursor:
        with self._lock:
            cursor = self.poll_cursors.get(provider) or PollCursor(provider=provider)
            if cursor.cursor_value is None or cursor.cursor_value < to:
                cursor = dataclasses.replace(cursor, cursor_value=to)
            cursor = dataclasses.replace(cursor, last_polled_at=now)
            self.poll_cursors[provider] = cursor
            return cursor

    def record_poll_result(self, provider: str, now: datetime, error: str | None) -> None:
        with self._lock:
            cursor = self.poll_cursors.get(provider) or PollCursor(provider=provider)
            if error is None:
                cursor = dataclasses.replace(
                    cursor,
                    last_polled_at=now,
                    last_success_at=now,
                    last_error=None,
                    last_error_at=None,
                )
            else:
                cursor = dataclasses.replace(
                    cursor, last_polled_at=now, last_error=error, last_error_at=now
                )
            self.poll_cursors[provider] = cursor

    def oldest_waiting_start(self, provider: str, not_before: datetime) -> datetime | None:
        with self._lock:
            starts = [
                call.started_at
                for call in self.calls.values()
                if _is_waiting(call, provider)
                and call.started_at is not None
                and call.started_at >= not_before
            ]
        return min(starts, default=None)

    def mark_waiting_rechecked(self, provider: str, now: datetime) -> None:
        with self._lock:
            cursor = self.poll_cursors.get(provider) or PollCursor(provider=provider)
            self.poll_cursors[provider] = dataclasses.replace(cursor, waiting_rechecked_at=now)

    def expire_waiting(
        self,
        provider: str,
        listed_before: datetime,
        now: datetime,
        *,
        message: str,
        dry_run: bool = False,
    ) -> list[str]:
        with self._lock:
            overdue = sorted(
                (
                    call
                    for call in self.calls.values()
                    if _is_waiting(call, provider)
                    and call.created_at is not None
                    and call.created_at < listed_before
                ),
                key=lambda call: call.id,
            )
            if dry_run:
                return [call.provider_call_id for call in overdue]
            for call in overdue:
                self.calls[call.id] = dataclasses.replace(
                    call,
                    state=CallState.SKIPPED,
                    error_kind=SkipReason.NO_RECORDING.value,
                    last_error=message,
                    updated_at=now,
                )
                self.add_event(
                    call_id=call.id,
                    at=now,
                    from_state=CallState.PENDING.value,
                    to_state=CallState.SKIPPED.value,
                    step=POLL_STEP,
                    outcome="skipped",
                    message=message,
                )
            return [call.provider_call_id for call in overdue]

    # -- the worker ----------------------------------------------------------------------

    def count_due(self, now: datetime) -> int:
        with self._lock:
            return sum(1 for call in self.calls.values() if self._is_due(call, now))

    def claim_due(
        self,
        owner: str,
        now: datetime,
        lease_until: datetime,
        limit: int,
        *,
        exclude_providers: Collection[str] = (),
    ) -> list[Call]:
        with self._lock:
            candidates = [
                call
                for call in self.calls.values()
                if call.provider not in exclude_providers and self._is_due(call, now)
            ]
            # As the SQL store does: rows whose lease ran out first, then the due ones.
            ran_out = sorted(
                (c for c in candidates if c.lease_owner),
                key=lambda call: (call.lease_expires_at or now, call.id),
            )
            unleased = sorted(
                (c for c in candidates if not c.lease_owner),
                key=lambda call: (call.next_attempt_at or now, call.id),
            )
            due = (ran_out + unleased)[: max(0, limit)]
            claimed = []
            for call in due:
                taken = dataclasses.replace(
                    call,
                    lease_owner=owner,
                    lease_expires_at=lease_until,
                    attempts=call.attempts + 1,
                    updated_at=now,
                )
                self.calls[call.id] = taken
                claimed.append(taken)
                if call.lease_owner is not None:
                    self.add_event(
                        call_id=call.id,
                        at=now,
                        from_state=call.state.value,
                        to_state=call.state.value,
                        step="lease",
                        outcome="rescued",
                        message=transitions.rescue_message(call.lease_owner, owner),
                    )
            return sorted(claimed, key=lambda call: (call.next_attempt_at or now, call.id))

    def renew_leases(
        self, owner: str, call_ids: Collection[int], now: datetime, lease_until: datetime
    ) -> set[int]:
        with self._lock:
            held = {
                call_id
                for call_id in call_ids
                if call_id in self.calls and self.calls[call_id].lease_owner == owner
            }
            for call_id in held:
                self.calls[call_id] = dataclasses.replace(
                    self.calls[call_id], lease_expires_at=lease_until
                )
            return held

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
        with self._lock:
            current = self.calls.get(call_id)
            first_sent = current.siro_create_sent_at if current else None
            changes = {"title": title, "siro_create_sent_at": (first_sent or now) if sent else None}
            event = transitions.create_sent_event(sent, owner)
            earlier: tuple[EventDraft, ...] = ()
            if attribution is not None:
                changes |= attribution.changes()
                earlier = (attribution.event(),)
            return (
                self._transition(call_id, owner, now, event, changes, earlier=earlier) is not None
            )

    def give_back(self, call_id: int, owner: str, now: datetime, event: EventDraft) -> bool:
        with self._lock:
            current = self.calls.get(call_id)
            attempts = max(0, current.attempts - 1) if current else 0
            changes = {**transitions.given_back(as_utc(now)), "attempts": attempts}
            return self._transition(call_id, owner, as_utc(now), event, changes) is not None

    def due_by_provider(self, now: datetime) -> dict[str, int]:
        counts: dict[str, int] = {}
        with self._lock:
            for call in self.calls.values():
                if self._is_due(call, now):
                    counts[call.provider] = counts.get(call.provider, 0) + 1
        return dict(sorted(counts.items()))

    def beat(self, owner: str, started_at: datetime, now: datetime) -> None:
        with self._lock:
            known = self.heartbeats.get(owner)
            started = known.started_at if known else as_utc(started_at)
            self.heartbeats[owner] = WorkerHeartbeat(owner, started, as_utc(now))

    def forget_heartbeats(self, before: datetime) -> int:
        with self._lock:
            gone = [owner for owner, beat in self.heartbeats.items() if beat.beat_at < before]
            for owner in gone:
                del self.heartbeats[owner]
            return len(gone)

    # -- credential pauses -----------------------------------------------------------------

    def pauses(self) -> list[CredentialPause]:
        with self._lock:
            return [self.credential_pauses[scope] for scope in sorted(self.credential_pauses)]

    def record_pause(self, scope: str, reason: str, now: datetime) -> CredentialPause:
        with self._lock:
            known = self.credential_pauses.get(scope)
            pause = (
                dataclasses.replace(known, reason=reason)
                if known
                else CredentialPause(scope=scope, reason=reason, since=as_utc(now))
            )
            self.credential_pauses[scope] = pause
            return pause

    def note_pause_probe(self, scope: str, now: datetime) -> None:
        with self._lock:
            known = self.credential_pauses.get(scope)
            if known is not None:
                self.credential_pauses[scope] = dataclasses.replace(
                    known, last_probe_at=as_utc(now)
                )

    def end_pause(self, scope: str) -> CredentialPause | None:
        with self._lock:
            return self.credential_pauses.pop(scope, None)

    def release_leases(self, owner: str, now: datetime) -> int:
        with self._lock:
            held = [call for call in self.calls.values() if call.lease_owner == owner]
            for call in held:
                self.calls[call.id] = dataclasses.replace(
                    call,
                    lease_owner=None,
                    lease_expires_at=None,
                    next_attempt_at=now,
                    attempts=max(0, call.attempts - 1),
                    updated_at=now,
                )
                self.add_event(
                    call_id=call.id,
                    at=now,
                    from_state=call.state.value,
                    to_state=call.state.value,
                    step="lease",
                    outcome="released",
                    message=transitions.release_message(owner),
                )
            return len(held)

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
        with self._lock:
            current = self.calls.get(call_id)
            if current is None or current.lease_owner != owner:
                return None
            if "state" in values:
                values = {**values, "state": CallState(values["state"])}
            updated = dataclasses.replace(current, **values, updated_at=now)
            self.calls[call_id] = updated
            for draft in (*earlier, event):
                self.add_event(
                    call_id=call_id,
                    at=now,
                    from_state=current.state.value,
                    to_state=updated.state.value,
                    **dataclasses.asdict(draft),
                )
            return updated

    # -- rep attribution: Siro's users directory and the attribution of a row --------------

    # -- backfill runs -------------------------------------------------------------------

    def start_backfill(
        self, provider: str, since: datetime, until: datetime, now: datetime
    ) -> BackfillRun:
        since, until, now = as_utc(since), as_utc(until), as_utc(now)
        with self._lock:
            for run in reversed(self.backfills.values()):
                if (run.provider, run.since, run.until) == (
                    provider,
                    since,
                    until,
                ) and not run.done:
                    return run
            run = BackfillRun(
                id=len(self.backfills) + 1,
                provider=provider,
                since=since,
                until=until,
                listed_until=since,
                started_at=now,
                updated_at=now,
            )
            self.backfills[run.id] = run
            return run

    def record_backfill_progress(
        self, run_id: int, listed_until: datetime, counts: BackfillCounts, now: datetime
    ) -> BackfillRun:
        with self._lock:
            run = self.backfills[run_id]
            added = {
                name: getattr(run, name) + value
                for name, value in dataclasses.asdict(counts).items()
            }
            run = dataclasses.replace(
                run,
                listed_until=max(run.listed_until, as_utc(listed_until)),
                updated_at=as_utc(now),
                **added,
            )
            self.backfills[run_id] = run
            return run

    def finish_backfill(self, run_id: int, now: datetime, error: str | None) -> BackfillRun:
        with self._lock:
            run = self.backfills[run_id]
            if error is None:
                run = dataclasses.replace(
                    run, finished_at=as_utc(now), last_error=None, updated_at=as_utc(now)
                )
            else:
                run = dataclasses.replace(run, last_error=error, updated_at=as_utc(now))
            self.backfills[run_id] = run
            return run

    def backfill_runs(self, provider: str | None = None) -> list[BackfillRun]:
        with self._lock:
            return [
                run
                for run in self.backfills.values()
                if provider is None or run.provider == provider
            ]

    def replace_siro_users(self, users: Sequence[DirectoryUser], now: datetime) -> UsersSyncResult:
        with self._lock:
            plan = plan_users_sync(self.directory_users, users, as_utc(now))
            for user in plan.upserts:
                self.directory_users[user.id] = user
            for user_id in plan.newly_missing:
                self.directory_users[user_id] = dataclasses.replace(
                    self.directory_users[user_id], missing_since=as_utc(now)
                )
            return plan.result

    def siro_users(self) -> list[DirectoryUser]:
        with self._lock:
            return [self.directory_users[key] for key in sorted(self.directory_users)]

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
        changes = note.changes()
        return self._transition(call_id, owner, as_utc(now), note.event(), changes) is not None


def _is_waiting(call: Call, provider: str) -> bool:
    """A call of ``provider`` listed without a ready recording, with nothing else to do."""
    return (
        call.provider == provider
        and call.state is CallState.PENDING
        and call.next_attempt_at is None
        and call.lease_owner is None
        and call.recording_state != RecordingState.READY.value
    )


class MemoryOAuthTokenStore:
    """An in-memory :class:`poller.ports.token_store.OAuthTokenStore`: one process's threads
    share it (tests, the demo); the SQL one is shared across processes."""

    def __init__(self) -> None:
        self._rows: dict[str, SealedTokens] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def peek(self, key: str) -> SealedTokens | None:
        with self._guard:
            return self._rows.get(key)

    @contextlib.contextmanager
    def exclusive(self, key: str) -> Iterator[TokenSlot]:
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            slot = _MemoryTokenSlot(self._rows.get(key))
            yield slot
            if slot.written is not None:
                with self._guard:
                    self._rows[key] = slot.written

    def rows(self) -> dict[str, SealedTokens]:
        with self._guard:
            return dict(self._rows)


class _MemoryTokenSlot:
    def __init__(self, row: SealedTokens | None) -> None:
        self._row = row
        self.written: SealedTokens | None = None

    def read(self) -> SealedTokens | None:
        return self.written or self._row

    def write(self, tokens: SealedTokens) -> None:
        self.written = tokens
