"""The state store ports: everything the daemon and the CLI read or write about calls.

One class implements all of them (:class:`Store`); each part of the program asks only for the
role it uses: the poll cycle a :class:`PollStore`, the worker a :class:`WorkQueue`, the users
sync a :class:`UserDirectoryStore`, status and audits an :class:`AuditReader`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from poller.domain.attribution import UserDirectory
from poller.domain.audio import AudioFacts
from poller.domain.ingest import IngestChange, ListedCall
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
)
from poller.domain.retention import TableSizes
from poller.domain.source_deletion import DeletionCandidate, SourceDeletionPause
from poller.domain.states import CallState
from poller.domain.transitions import AttributionNote, RequeueSelection
from poller.ports.webhooks import Subscription, SubscriptionState


class NotRequeueable(Exception):
    """`calls retry` was asked to requeue a row that is not failed or skipped."""


class NotReplayable(Exception):
    """`calls replay` was asked to send again a row that was never uploaded."""


class AuditReader(Protocol):
    """What operators and auditors read: counts, rows, their events, the cursors."""

    def status(self, now: datetime) -> StatusSummary:
        """Counts by state, uploaded calls by attribution kind, what is due, where each
        provider's cursor stands, the credential pauses in force and the workers' heartbeats."""
        ...

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
        """Newest rows first, ``offset`` of them passed over; ``since`` keeps calls that
        started at or after it, ``attribution`` those attributed so (a ``calls.attribution``
        value, or ``none``: no attribution recorded)."""
        ...

    def error_kinds(self) -> dict[str, int]:
        """How many calls hold each ``error_kind``, most first (then by name)."""
        ...

    def get_call(self, call_id: int) -> Call | None: ...

    def find_calls(self, reference: str) -> list[Call]:
        """Rows whose id or provider call id is ``reference`` (one id may exist per provider)."""
        ...

    def events_for(self, call_id: int) -> list[CallEvent]:
        """The call's audit log, oldest first."""
        ...

    def cursors(self) -> list[PollCursor]: ...


class Requeue(Protocol):
    """`calls retry`: an operator puts parked rows back in the queue."""

    def requeue(self, call_id: int, now: datetime, *, actor: str = "cli") -> Call:
        """Put a failed or skipped row back in the queue, due now, with a fresh attempt budget.

        Raises :class:`NotRequeueable` for rows in any other state and ``KeyError`` for
        unknown ids.
        """
        ...

    def requeue_matching(
        self,
        selection: RequeueSelection,
        now: datetime,
        *,
        actor: str = "cli",
        dry_run: bool = False,
    ) -> list[Call]:
        """Requeue, as :meth:`requeue` does, every row ``selection`` matches, in one
        transaction; returns those rows as they were, by id. With ``dry_run`` nothing changes.
        """
        ...

    def replay(self, call_id: int, now: datetime, *, actor: str = "cli") -> Call:
        """Put an uploaded row back in the queue on purpose, so that the worker downloads and
        uploads it again as a second Siro recording (`calls replay --allow-duplicate`).

        Siro's recording id leaves the row for the ``replay`` event, which keeps it with who
        asked and when. Raises :class:`NotReplayable` for rows that are not uploaded and
        ``KeyError`` for unknown ids.
        """
        ...


class CredentialPauses(Protocol):
    """``credential_pauses``: shared by every process on the database (poller.domain.pauses)."""

    def pauses(self) -> list[CredentialPause]:
        """The pauses in force, by scope."""
        ...

    def record_pause(self, scope: str, reason: str, now: datetime) -> CredentialPause:
        """Pause ``scope`` from ``now``; a pause already in force keeps its ``since`` and its
        last probe, and takes the latest ``reason``."""
        ...

    def note_pause_probe(self, scope: str, now: datetime) -> None:
        """The credentials of ``scope`` were tried again at ``now`` (and still refused)."""
        ...

    def end_pause(self, scope: str) -> CredentialPause | None:
        """End the pause of ``scope``; returns it, or ``None`` when none was in force."""
        ...


class PollStore(CredentialPauses, Protocol):
    """The poll cycle's side: cursors and the upsert of listed calls."""

    def get_cursor(self, provider: str) -> PollCursor | None: ...

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
        """Upsert one page of listed calls by ``(provider, provider_call_id)``, atomically.

        Follows :mod:`poller.domain.ingest`: new calls are inserted, known ones get their
        changed metadata, rows never move backwards; every state change writes an event.
        A call listed twice in ``listed`` counts once (the last sighting). With ``dry_run``
        nothing is written and the changes that would be made are returned.

        In the same transaction: the page's ``unmapped`` records are kept in
        ``unmapped_records`` (one row per ``(provider, raw_sha256)``: a record seen again
        gets its latest position and reason, ``last_seen_at = now``, ``times_seen + 1``, and
        is unresolved again), and the unmapped rows named in ``resolving`` (row id ->
        provider call id of a call in ``listed``) are marked resolved as that call's row.
        """
        ...

    def unmapped_records(
        self,
        provider: str | None = None,
        *,
        resolved: bool | None = False,
        after_id: int = 0,
        limit: int = 100,
    ) -> list[UnmappedRecord]:
        """Rows of ``unmapped_records`` with an id above ``after_id``, by id; unresolved ones
        only by default (``resolved=True``: resolved only; ``None``: both)."""
        ...

    def unmapped_to_remap(
        self, provider: str, now: datetime, *, after_id: int = 0, limit: int = 100
    ) -> list[UnmappedRecord]:
        """The unresolved, unexpired rows of ``provider`` whose next re-mapping is due at
        ``now`` (``next_remap_at`` unset or past), with an id above ``after_id``, by id."""
        ...

    def count_live_unmapped(self, provider: str) -> int:
        """Unresolved, unexpired unmapped rows of ``provider``: those that keep their raw text."""
        ...

    def note_remap_failed(self, backoff: Mapping[int, tuple[int, datetime]]) -> None:
        """Record failed re-mappings: row id -> (failed attempts so far, next re-mapping)."""
        ...

    def advance_cursor(self, provider: str, to: datetime, now: datetime) -> PollCursor:
        """Move the cursor forward to ``to``; a cursor already past it stays where it is."""
        ...

    def record_poll_result(self, provider: str, now: datetime, error: str | None) -> None:
        """Note a finished cycle: its error (kept until a clean cycle clears it) or success."""
        ...

    def oldest_waiting_start(self, provider: str, not_before: datetime) -> datetime | None:
        """The start of the oldest call still waiting for its recording, at or after
        ``not_before``; ``None`` when no call waits."""
        ...

    def mark_waiting_rechecked(self, provider: str, now: datetime) -> None:
        """Note that the waiting calls were listed again at ``now``."""
        ...

    def expire_waiting(
        self,
        provider: str,
        listed_before: datetime,
        now: datetime,
        *,
        message: str,
        dry_run: bool = False,
    ) -> list[str]:
        """Skip (``no_recording``) calls still waiting for a recording, first listed before
        ``listed_before``; returns their provider call ids.

        Waiting means ``pending``, ``next_attempt_at IS NULL``, no lease, recording not ready.
        """
        ...


class WorkQueue(CredentialPauses, Protocol):
    """The worker's side: claim due rows, keep their leases, record each step.

    Every write below is guarded by the lease: it only happens while ``owner`` still holds
    the row, and returns False (or None) otherwise, so a worker whose lease ran out can
    never overwrite what the worker that took the row over recorded.
    """

    def get_call(self, call_id: int) -> Call | None: ...

    def user_directory(self) -> UserDirectory:
        """A snapshot of ``siro_users`` to resolve many calls against without a query each."""
        ...

    def count_due(self, now: datetime) -> int:
        """How many rows a claim at ``now`` could take: the backlog ahead of the workers."""
        ...

    def claim_due(
        self,
        owner: str,
        now: datetime,
        lease_until: datetime,
        limit: int,
        *,
        exclude_providers: Collection[str] = (),
    ) -> list[Call]:
        """Atomically lease up to ``limit`` due rows to ``owner`` and count an attempt on each.

        A row whose previous lease ran out (its worker died) is rescued, and the rescue is
        written to its events. Rows of ``exclude_providers`` (paused ones) are left alone.
        """
        ...

    def give_back(self, call_id: int, owner: str, now: datetime, event: EventDraft) -> bool:
        """Return a leased row exactly as it was before its claim: same state, no error written,
        the claim's attempt refunded, due again at ``now``; ``event`` says why (a credential
        pause is not the call's fault)."""
        ...

    def due_by_provider(self, now: datetime) -> dict[str, int]:
        """How many rows are due at ``now``, per provider (what a pause keeps waiting)."""
        ...

    def beat(self, owner: str, started_at: datetime, now: datetime) -> None:
        """The worker ``owner`` (running since ``started_at``) is alive at ``now``."""
        ...

    def forget_heartbeats(self, before: datetime) -> int:
        """Drop the heartbeats of workers last seen before ``before``; returns how many."""
        ...

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
        """The recording is in the spool, as Siro takes it; the row keeps its lease for the
        upload step. ``audio``, when given, is stored as :meth:`record_audio` does."""
        ...

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
        """Store what the downloaded audio is, with ``event``; the call's ``duration_seconds``
        becomes the audio's length when ``provider_duration_seconds`` is ``None``."""
        ...

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
        """Record, before the create call goes out, that Siro may soon hold this recording
        (``sent=False`` forgets it again once Siro refused the call); with ``attribution``,
        record the rep's resolution in the same transaction, its event first."""
        ...

    def mark_uploaded(
        self,
        call_id: int,
        owner: str,
        now: datetime,
        *,
        siro_recording_id: str,
        siro_file_url: str | None,
        event: EventDraft,
    ) -> bool: ...

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
        """Give the row back, due again at ``next_attempt_at`` (as ``pending`` when
        ``back_to_pending``, e.g. because the spool file is gone)."""
        ...

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
        """Park the row as failed or skipped with its reason."""
        ...

    def renew_leases(
        self, owner: str, call_ids: Collection[int], now: datetime, lease_until: datetime
    ) -> set[int]:
        """The heartbeat: extend to ``lease_until`` the leases ``owner`` still holds among
        ``call_ids``; returns those ids. A row missing from the answer was taken over after
        its lease ran out, and its step must stop writing."""
        ...

    def release_leases(self, owner: str, now: datetime) -> int:
        """On shutdown: give back every row ``owner`` still holds, due now, and return the
        attempt it was charged (an interrupted step is not a failed one)."""
        ...

    def record_attribution(
        self,
        call_id: int,
        owner: str,
        now: datetime,
        siro_user_id: str | None,
        attribution: str,
        detail: str,
    ) -> bool:
        """Store how the rep of a leased call was resolved, with an ``attribute`` event.

        Writes only while ``owner`` holds the row's lease; returns whether it did.
        """
        ...


class UserDirectoryStore(Protocol):
    """Siro's users as last synced (``siro_users``)."""

    def replace_siro_users(self, users: Sequence[DirectoryUser], now: datetime) -> UsersSyncResult:
        """Make ``siro_users`` what Siro listed at ``now``, in one transaction.

        Every listed user is inserted or updated, with ``synced_at = now`` and
        ``missing_since`` cleared. Known users not in ``users`` are kept and marked
        ``missing_since = now`` (unless already marked). Of a user listed twice, the last
        one counts. The records' own ``synced_at``/``missing_since`` are ignored.
        """
        ...

    def siro_users(self) -> list[DirectoryUser]:
        """Every row of ``siro_users``, by id."""
        ...

    def user_directory(self) -> UserDirectory:
        """A snapshot of ``siro_users`` to resolve many calls against without a query each.

        Its ``synced_at`` is the last sync's time, ``None`` when the table is empty.
        """
        ...


class BackfillStore(Protocol):
    """`siro-poller backfill`: where each run over a past range stands (``backfill_runs``)."""

    def start_backfill(
        self, provider: str, since: datetime, until: datetime, now: datetime
    ) -> BackfillRun:
        """The unfinished run of exactly this provider and range, to resume; else a new run
        with ``listed_until = since``."""
        ...

    def record_backfill_progress(
        self, run_id: int, listed_until: datetime, counts: BackfillCounts, now: datetime
    ) -> BackfillRun:
        """Everything before ``listed_until`` is listed: move there (never backwards) and
        add ``counts``. Raises ``KeyError`` for an unknown run."""
        ...

    def finish_backfill(self, run_id: int, now: datetime, error: str | None) -> BackfillRun:
        """Without ``error`` the run is finished; with one it stays resumable and keeps it as
        ``last_error``. Raises ``KeyError`` for an unknown run."""
        ...

    def backfill_runs(self, provider: str | None = None) -> list[BackfillRun]:
        """Every run (of ``provider``), by id."""
        ...


class RetentionStore(Protocol):
    """Retention of the state database (poller.domain.retention), in small batches.

    Each write method changes at most ``limit`` rows in one short transaction and returns how
    many it changed; with ``dry_run`` it changes nothing and counts every row it would change
    (``limit`` ignored). Only the SQL store implements it.
    """

    def prune_finished_calls(
        self,
        finished_before: datetime,
        now: datetime,
        *,
        limit: int,
        default_region: str,
        dry_run: bool = False,
    ) -> int:
        """Empty the personal columns of finished rows last changed before ``finished_before``
        and set their ``pruned_at``, after scrubbing their values out of the row's
        ``last_error`` and its events' messages (poller.domain.scrubbing, numbers read with
        ``default_region``); everything else on the row stays."""
        ...

    def prune_events(self, before: datetime, *, limit: int, dry_run: bool = False) -> int:
        """Delete events older than ``before``, except those that prove an upload."""
        ...

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
        """Expire live unmapped rows first seen before ``first_seen_before`` or with at least
        ``min_attempts`` failed re-mappings (whichever is given): ``expired_at = now``,
        ``expired_reason = message``, raw text emptied. Returns how many, per provider."""
        ...

    def expire_unmapped_over_cap(
        self, now: datetime, message: str, *, max_kept: int, limit: int, dry_run: bool = False
    ) -> dict[str, int]:
        """Expire, as :meth:`expire_unmapped` does, the oldest live unmapped rows of each
        provider that holds more than ``max_kept`` of them."""
        ...

    def delete_done_unmapped(
        self, last_seen_before: datetime, *, limit: int, dry_run: bool = False
    ) -> int:
        """Delete resolved and expired unmapped rows last listed before ``last_seen_before``
        (and, expired ones, expired before it too)."""
        ...

    def table_sizes(self) -> TableSizes:
        """Rows per table, the database's bytes, expired unmapped records per provider."""
        ...

    def reclaim_space(self, tables: Sequence[str]) -> bool:
        """Make the space of the rows deleted or emptied in ``tables`` reusable now, where the
        database does not do so by itself (PostgreSQL: a plain VACUUM, never FULL). Returns
        whether it asked the database; a failure is logged and never raised."""
        ...


@dataclass(frozen=True, slots=True)
class SavedSubscription:
    """One provider's row of ``webhook_subscriptions``: its subscription as last checked, and
    when its last verified event arrived."""

    provider: str
    # None: no check has run yet (only an event arrived).
    state: SubscriptionState | None
    vendor_id: str | None = None
    # The public webhook address, its query values masked; never a signed URL or a secret.
    url: str | None = None
    expires_at: datetime | None = None
    detail: str = ""
    checked_at: datetime | None = None
    last_event_at: datetime | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "provider": self.provider,
            "state": self.state.value if self.state is not None else None,
            "vendor_id": self.vendor_id,
            "url": self.url,
            "expires_at": self.expires_at,
            "detail": self.detail,
            "checked_at": self.checked_at,
            "last_event_at": self.last_event_at,
        }


class WebhookStore(Protocol):
    """``webhook_subscriptions``: each provider's subscription state and last event, for
    `webhooks status`, `doctor`, `status` and `/healthz`."""

    def save_webhook_subscription(self, subscription: Subscription, checked_at: datetime) -> None:
        """Keep ``subscription`` as the vendor reported it at ``checked_at``; the provider's
        ``last_event_at`` stays. Its URL is kept with every query value masked."""
        ...

    def webhook_event_arrived(self, provider: str, at: datetime) -> None:
        """A verified event of ``provider`` arrived at ``at``; an earlier time never replaces a
        later one."""
        ...

    def webhook_subscription_states(self) -> list[SavedSubscription]:
        """Every provider's row, by provider."""
        ...


class DaemonStore(WorkQueue, WebhookStore, Protocol):
    """The daemon's side: the worker's queue, the cursors its health check reads and the
    webhook subscriptions it reports."""

    def cursors(self) -> list[PollCursor]: ...


class Store(
    AuditReader, Requeue, PollStore, DaemonStore, UserDirectoryStore, BackfillStore, Protocol
):
    """Every role at once: what the SQL store and the in-memory fake implement."""


class SourceDeletionStore(Protocol):
    """Deletion at the source (``source_deletions``, ``source_deletion_pauses``): which uploaded
    rows may go, who is deleting which, what the vendor answered (poller.domain.source_deletion).

    A row is claimed with a lease, as the worker claims calls, so two processes never delete
    the same recording at once; a row marked ``deleted``, ``refused`` or ``failed`` is never
    claimed again.
    """

    def deletion_paused(self) -> SourceDeletionPause | None:
        """The operator's pause in force, or ``None``."""
        ...

    def pause_deletion(self, now: datetime, actor: str, reason: str) -> SourceDeletionPause:
        """Stop every process's deletions at their next check (kept across restarts)."""
        ...

    def resume_deletion(self) -> SourceDeletionPause | None:
        """End the pause; returns it, or ``None`` when none was in force."""
        ...

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
        """Uploaded rows of ``providers`` (name -> latest ``uploaded_at`` past its grace), by
        id above ``after_id``. ``due_only``: only rows no run marked done, refused or failed,
        not leased, and due again; otherwise every uploaded row of those providers.
        ``providers=None``: every provider's uploaded rows, whatever their upload time.
        ``flagged_only``: only rows replayed or adopted by title (never to be deleted);
        ``changed_since``: only rows updated since then."""
        ...

    def claim_deletion(
        self, call_id: int, provider: str, owner: str, now: datetime, lease_until: datetime
    ) -> bool:
        """Lease the row's deletion to ``owner``, if no one holds it and it is still due."""
        ...

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
        """Store what happened (``state``: pending, deleted, refused, failed) with ``event``,
        and let go of the lease; only while ``owner`` holds it."""
        ...

    def refuse_deletion(self, call_id: int, provider: str, now: datetime, reason: str) -> bool:
        """Mark an unclaimed row ``refused`` for good (replayed, reconciled), with an event;
        False when another run got there first."""
        ...
