"""Retention of the poller's own state: what is pruned from the state database, and when.

Pure: the rules and the names; :mod:`poller.core.retention` runs a pass, the stores apply it.

- A FINISHED call (uploaded, skipped, failed) loses its personal data once it has been finished
  for ``personal_data_after``: the raw provider record and every column that names the customer
  (:data:`PERSONAL_COLUMNS`), and every quote of their values in the call's ``last_error`` and
  its events' messages becomes ``[erased]`` (the rule of `calls forget`,
  :mod:`poller.domain.scrubbing`). Its id, provider call id, states,
  times, Siro recording id and events stay, and ``pruned_at`` marks it, so the audit trail and
  the duplicate guard (``UNIQUE (provider, provider_call_id)``) outlive the data: a pruned call
  listed again is recognised as known and never uploaded twice, and the listing does not
  write its personal data back (:func:`without_personal_columns`).
- Events older than ``events_after`` are deleted, except those that prove what reached Siro
  (:func:`proves_upload`).
- An unmapped record is mapped again with back-off (:func:`remap_delay`), and expires (its raw
  text dropped, the row kept as a marker with ``expired_at`` and why) after ``unmapped_after``,
  after ``unmapped_max_attempts`` failed re-mappings, or when its provider holds more than
  ``unmapped_max_kept`` unresolved records (the oldest go first: a hostile log cannot grow the
  database without bound). Resolved rows and markers go once neither listed nor expired for
  ``unmapped_after``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from poller.domain.phones import DEFAULT_PHONE_REGION
from poller.domain.states import TERMINAL_STATES

# The columns of ``calls`` that name a customer, and the provider's record. Rep columns name an
# employee and stay: they explain the attribution. recording_url stays too: it names no one, is
# stored with its query values masked, and `calls retry` of a failed row downloads through it.
PERSONAL_COLUMNS: Final = ("contact_name", "contact_phone", "title", "raw")
FINISHED_STATE_VALUES: Final = tuple(sorted(state.value for state in TERMINAL_STATES))

# The events kept whatever their age: they say that (and when, and as which recording) Siro
# was asked to create a recording, created one, or was asked to again (see
# poller.core.upload_step and poller.domain.transitions).
UPLOAD_STEP: Final = "upload"
UPLOAD_PROOF_OUTCOMES: Final = ("adopted", "create_refused", "create_sent", "ok")
REPLAY_STEP: Final = "replay"
# Also kept for ever: the ledger of `calls forget` (who erased what, replayed after a restore)
# and each deletion at the source (when, what, the vendor's answer), which auditors ask for.
LEDGER_STEPS: Final = ("forget", "source_delete")

EXPIRED_BY_AGE: Final = "age"
EXPIRED_BY_ATTEMPTS: Final = "attempts"
EXPIRED_BY_CAP: Final = "cap"

# A pass that deleted or emptied at least this many rows asks the database to take their space
# back for reuse (PostgreSQL: a plain VACUUM of the tables it changed). Below it autovacuum's own
# pace is enough; a hostile log outruns autovacuum and the files keep growing.
RECLAIM_MIN_CHANGED_ROWS: Final = 1000


def proves_upload(step: str, outcome: str) -> bool:
    """Whether an event of ``step`` and ``outcome`` is kept whatever its age."""
    return (
        step == REPLAY_STEP
        or step in LEDGER_STEPS
        or (step == UPLOAD_STEP and outcome in UPLOAD_PROOF_OUTCOMES)
    )


def without_personal_columns(values: dict[str, Any]) -> dict[str, Any]:
    """A listing's columns for a pruned row: its personal data stays gone."""
    return {name: value for name, value in values.items() if name not in PERSONAL_COLUMNS}


def remap_delay(failed_attempts: int, base: timedelta, cap: timedelta) -> timedelta:
    """How long an unmapped record waits before its next re-mapping, after ``failed_attempts``
    failed ones: ``base`` doubled per attempt, never above ``cap``."""
    if failed_attempts <= 0:
        return min(base, cap)
    # 2**n overflows a timedelta long before the cap matters; stop doubling at the cap.
    doublings = min(failed_attempts - 1, 40)
    seconds = base.total_seconds() * (2**doublings)
    return timedelta(seconds=min(seconds, cap.total_seconds()))


def expiry_message(why: str, rules: RetentionRules) -> str:
    """The ``expired_reason`` of an unmapped record, naming the setting that expired it."""
    if why == EXPIRED_BY_AGE:
        return f"not mapped within retention.unmapped_days ({_days(rules.unmapped_after)})"
    if why == EXPIRED_BY_ATTEMPTS:
        return (
            f"not mapped after retention.unmapped_max_attempts "
            f"({rules.unmapped_max_attempts}) tries"
        )
    return f"over retention.unmapped_max_kept ({rules.unmapped_max_kept}) for its provider"


def _days(value: timedelta | None) -> str:
    return "forever" if value is None else f"{value.total_seconds() / 86400:g} days"


@dataclass(frozen=True, slots=True)
class RetentionRules:
    """The ``[retention]`` settings as the core takes them; ``None`` or 0 keeps forever."""

    personal_data_after: timedelta | None = timedelta(days=90)
    events_after: timedelta | None = timedelta(days=365)
    unmapped_after: timedelta | None = timedelta(days=30)
    unmapped_max_attempts: int = 0
    unmapped_max_kept: int = 0
    remap_base: timedelta = timedelta(minutes=5)
    remap_cap: timedelta = timedelta(hours=6)
    batch_size: int = 500
    max_batches: int = 100
    # siro.phone_default_region: how a number quoted without a country code is read when the
    # prune scrubs a call's texts (poller.domain.scrubbing).
    default_region: str = DEFAULT_PHONE_REGION


@dataclass(slots=True)
class RetentionReport:
    """What one retention pass removed (or, in a dry run, would remove)."""

    now: datetime
    dry_run: bool = False
    calls_pruned: int = 0
    events_deleted: int = 0
    unmapped_expired: dict[str, int] = field(default_factory=dict)
    unmapped_deleted: int = 0
    batches: int = 0
    # A part stopped at max_batches: the next pass goes on where this one stopped.
    unfinished: list[str] = field(default_factory=list)
    # The tables whose space the pass asked the database to take back (see reclaim_tables).
    reclaimed: list[str] = field(default_factory=list)

    def changed_rows(self) -> dict[str, int]:
        """Rows deleted or emptied per table of the state database."""
        return {
            "calls": self.calls_pruned,
            "call_events": self.events_deleted,
            "unmapped_records": sum(self.unmapped_expired.values()) + self.unmapped_deleted,
        }

    def reclaim_tables(self, min_changed_rows: int = RECLAIM_MIN_CHANGED_ROWS) -> list[str]:
        """The tables whose space is worth taking back after this pass: every table it changed,
        once it changed at least ``min_changed_rows`` rows in all; none after a dry run."""
        changed = self.changed_rows()
        if self.dry_run or sum(changed.values()) < min_changed_rows:
            return []
        return sorted(table for table, n in changed.items() if n)

    @property
    def removed_anything(self) -> bool:
        return bool(
            self.calls_pruned
            or self.events_deleted
            or sum(self.unmapped_expired.values())
            or self.unmapped_deleted
        )

    def summary(self) -> str:
        verb = "would remove" if self.dry_run else "removed"
        expired = ", ".join(f"{why} {n}" for why, n in sorted(self.unmapped_expired.items()))
        left = f"; more left for the next pass: {', '.join(self.unfinished)}"
        return (
            f"retention {verb}: personal data of {self.calls_pruned} finished call(s), "
            f"{self.events_deleted} event(s), {sum(self.unmapped_expired.values())} unmapped "
            f"record(s) expired{f' ({expired})' if expired else ''}, "
            f"{self.unmapped_deleted} unmapped marker(s) deleted"
            + (left if self.unfinished else "")
        )

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["unmapped_expired_total"] = sum(self.unmapped_expired.values())
        return values


@dataclass(frozen=True, slots=True)
class TableSizes:
    """Rows per table and, where the database tells it cheaply, its size in bytes."""

    rows: dict[str, int]
    database_bytes: int | None = None
    # Unmapped records that expired (raw text dropped), per provider.
    unmapped_expired: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
