"""The store's side of erasure and audit export (`calls forget`, `calls export`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Protocol

from poller.domain.erasure import ForgetOutcome, ForgetSelection
from poller.domain.records import Call, CallEvent


class ErasureStore(Protocol):
    def forget_candidates(self, selection: ForgetSelection, default_region: str) -> list[Call]:
        """The calls ``selection`` chooses, by id; forgotten ones included (a forget may be
        run again, e.g. after a restore). Their raw records are not read: ``raw`` is ``{}``
        for a call that has one."""
        ...

    def forget_call(
        self, call_id: int, now: datetime, actor: str, default_region: str
    ) -> ForgetOutcome | None:
        """Erase the call's personal data and leave its tombstone, with a ``forget`` event, in
        one transaction (see :mod:`poller.domain.erasure`); ``None`` for an unknown id.

        A lease on the row ends: the worker holding it can no longer write to it."""
        ...

    def forget_unmapped(
        self, selection: ForgetSelection, now: datetime, default_region: str, *, dry_run: bool
    ) -> int:
        """Empty every kept unmapped record, of any provider, whose raw text holds the
        selection's phone number or email (a record no call came of, so no call's forget
        reaches it); returns how many (would be) emptied."""
        ...

    def add_tombstones(self, keys: Sequence[tuple[str, str]], now: datetime, actor: str) -> int:
        """A tombstone (``skipped``, ``forgotten``, no personal data, a ``forget`` event) for
        each (provider, provider call id) with no row, so the poll cycle never ingests it;
        returns how many were added."""
        ...

    def after_erasure(self) -> str | None:
        """Make the erased bytes unreachable in the database files where the backend keeps
        old versions (SQLite's WAL), or their space free for reuse (PostgreSQL: a plain VACUUM
        of the tables a forget changes); says what it did, or could not do. Never raises."""
        ...


class AuditExportStore(Protocol):
    def export_calls(
        self, since: datetime, until: datetime | None, *, batch: int = 500
    ) -> Iterator[tuple[Call, list[CallEvent]]]:
        """Every call that started (without a start time: was first listed) in
        ``[since, until)``, by id, with its events, read
        ``batch`` calls at a time so that memory stays flat whatever the table holds."""
        ...
