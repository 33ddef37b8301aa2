"""The state store port: everything the daemon and the CLI read or write about calls."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from poller.domain.attribution import UserDirectory
from poller.domain.ingest import IngestChange, ListedCall
from poller.domain.records import (
    Call,
    CallEvent,
    DirectoryUser,
    PollCursor,
    StatusSummary,
    UsersSyncResult,
)
from poller.domain.states import CallState


class NotRequeueable(Exception):
    """`calls retry` was asked to requeue a row that is not failed or skipped."""


class Store(Protocol):
    def status(self, now: datetime) -> StatusSummary:
        """Counts by state, what is due, and where each provider's cursor stands."""
        ...

    def list_calls(
        self,
        *,
        state: CallState | None = None,
        since: datetime | None = None,
        limit: int = 100,
    ) -> list[Call]:
        """Newest rows first; ``since`` keeps calls that started at or after it."""
        ...

    def get_call(self, call_id: int) -> Call | None: ...

    def find_calls(self, reference: str) -> list[Call]:
        """Rows whose id or provider call id is ``reference`` (one id may exist per provider)."""
        ...

    def events_for(self, call_id: int) -> list[CallEvent]:
        """The call's audit log, oldest first."""
        ...

    def cursors(self) -> list[PollCursor]: ...

    def requeue(self, call_id: int, now: datetime, *, actor: str = "cli") -> Call:
        """Put a failed or skipped row back in the queue, due now, with a fresh attempt budget.

        Raises :class:`NotRequeueable` for rows in any other state and ``KeyError`` for
        unknown ids.
        """
        ...

    def requeue_failed(self, now: datetime, *, actor: str = "cli") -> int:
        """Requeue every failed row; returns how many."""
        ...

    # -- polling -------------------------------------------------------------------------

    def get_cursor(self, provider: str) -> PollCursor | None: ...

    def ingest_page(
        self,
        provider: str,
        listed: Sequence[ListedCall],
        now: datetime,
        *,
        dry_run: bool = False,
    ) -> list[IngestChange]:
        """Upsert one page of listed calls by ``(provider, provider_call_id)``, atomically.

        Follows :mod:`poller.domain.ingest`: new calls are inserted, known ones get their
        changed metadata, rows never move backwards; every state change writes an event.
        A call listed twice in ``listed`` counts once (the last sighting). With ``dry_run``
        nothing is written and the changes that would be made are returned.
        """
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

    # -- rep attribution: Siro's users directory and the attribution of a row --------------

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
