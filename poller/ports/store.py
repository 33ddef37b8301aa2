"""The state store port: everything the daemon and the CLI read or write about calls."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from poller.domain.records import Call, CallEvent, PollCursor, StatusSummary
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
