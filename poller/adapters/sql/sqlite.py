"""SQLite-only SQL: the claim's two lookups, pinned to their indexes.

SQLite plans without statistics unless someone runs ANALYZE, and then it may read the due rows
through ``ix_calls_state_updated_at`` and sort them all; ``INDEXED BY`` (which SQLAlchemy does
not render) keeps each lookup on its own partial index whatever the table holds.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import TextualSelect, bindparam, text

from poller.adapters.sql.models import LEASED_SQL, UNLEASED_SQL, WORKABLE_SQL
from poller.adapters.sql.models import calls_table as calls
from poller.adapters.sql.types import UTCDateTime

# A paused provider's rows are passed over (poller.domain.pauses): rarely, so the lookups
# without that condition stay the ones normally run.
_NOT_PAUSED = " AND provider NOT IN :excluded"


def _ran_out(excluding: bool) -> TextualSelect:
    return (
        text(
            "SELECT id, lease_owner FROM calls INDEXED BY ix_calls_leased"  # noqa: S608 (constants)
            f" WHERE {LEASED_SQL} AND lease_expires_at <= :now"
            + (_NOT_PAUSED if excluding else "")
            + " ORDER BY lease_expires_at LIMIT :limit"
        )
        .bindparams(bindparam("now", type_=UTCDateTime()))
        .bindparams(*([bindparam("excluded", expanding=True)] if excluding else []))
        .columns(calls.c.id, calls.c.lease_owner)
    )


def _due(excluding: bool) -> TextualSelect:
    return (
        text(
            "SELECT id FROM calls INDEXED BY ix_calls_due"  # noqa: S608 (constants)
            f" WHERE {WORKABLE_SQL} AND {UNLEASED_SQL} AND next_attempt_at <= :now"
            + (_NOT_PAUSED if excluding else "")
            + " ORDER BY next_attempt_at, id LIMIT :limit"
        )
        .bindparams(bindparam("now", type_=UTCDateTime()))
        .bindparams(*([bindparam("excluded", expanding=True)] if excluding else []))
        .columns(calls.c.id)
    )


_RAN_OUT = {excluding: _ran_out(excluding) for excluding in (False, True)}
_DUE = {excluding: _due(excluding) for excluding in (False, True)}


def _bound(
    query: TextualSelect, now: datetime, limit: int, excluded: Collection[str]
) -> TextualSelect:
    if excluded:
        return query.bindparams(now=now, limit=limit, excluded=sorted(excluded))
    return query.bindparams(now=now, limit=limit)


def ran_out_lookup(
    now: datetime, limit: int, exclude_providers: Collection[str] = ()
) -> TextualSelect:
    return _bound(_RAN_OUT[bool(exclude_providers)], now, limit, exclude_providers)


def due_lookup(now: datetime, limit: int, exclude_providers: Collection[str] = ()) -> TextualSelect:
    return _bound(_DUE[bool(exclude_providers)], now, limit, exclude_providers)


def claim_lookups(now: datetime, limit: int) -> list[Any]:
    return [ran_out_lookup(now, limit), due_lookup(now, limit)]
