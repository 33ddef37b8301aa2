"""SQLite-only SQL: the claim's two lookups, pinned to their indexes.

SQLite plans without statistics unless someone runs ANALYZE, and then it may read the due rows
through ``ix_calls_state_updated_at`` and sort them all; ``INDEXED BY`` (which SQLAlchemy does
not render) keeps each lookup on its own partial index whatever the table holds.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import TextualSelect, bindparam, text

from poller.adapters.sql.models import LEASED_SQL, UNLEASED_SQL, WORKABLE_SQL
from poller.adapters.sql.models import calls_table as calls
from poller.adapters.sql.types import UTCDateTime

_RAN_OUT = (
    text(
        "SELECT id, lease_owner FROM calls INDEXED BY ix_calls_leased"  # noqa: S608 (constants)
        f" WHERE {LEASED_SQL} AND lease_expires_at <= :now"
        " ORDER BY lease_expires_at LIMIT :limit"
    )
    .bindparams(bindparam("now", type_=UTCDateTime()))
    .columns(calls.c.id, calls.c.lease_owner)
)

_DUE = (
    text(
        "SELECT id FROM calls INDEXED BY ix_calls_due"  # noqa: S608 (constants)
        f" WHERE {WORKABLE_SQL} AND {UNLEASED_SQL} AND next_attempt_at <= :now"
        " ORDER BY next_attempt_at, id LIMIT :limit"
    )
    .bindparams(bindparam("now", type_=UTCDateTime()))
    .columns(calls.c.id)
)


def ran_out_lookup(now: datetime, limit: int) -> TextualSelect:
    return _RAN_OUT.bindparams(now=now, limit=limit)


def due_lookup(now: datetime, limit: int) -> TextualSelect:
    return _DUE.bindparams(now=now, limit=limit)


def claim_lookups(now: datetime, limit: int) -> list[Any]:
    return [ran_out_lookup(now, limit), due_lookup(now, limit)]
