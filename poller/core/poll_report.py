"""What a poll cycle is given and what it reports: :class:`PollParams` from the configuration,
:class:`PollReport` (counts, the first changes, the malformed records) for the CLI, the daemon
and the metrics."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from poller.domain.call_record import RateLimitHints
from poller.domain.filters import CallFilter
from poller.domain.ingest import IngestAction, IngestChange
from poller.domain.windows import Window
from poller.ports.provider import MalformedRecordError

# Ten pages of RingCentral's or Twilio's 1,000 records: a minute of RingCentral's Heavy group.
FULL_SPAN_ROWS = 10_000
# A full span shorter than twice this is listed whole: a busier quarter hour than FULL_SPAN_ROWS
# is rare, and each split costs a re-read of up to FULL_SPAN_ROWS records.
SPLIT_FLOOR = timedelta(minutes=15)


@dataclass(frozen=True, slots=True)
class PollParams:
    """What a poll cycle needs from the configuration."""

    provider_key: str
    lookback: timedelta = timedelta(minutes=60)
    settle_delay: timedelta = timedelta(seconds=120)
    initial_lookback: timedelta = timedelta(hours=24)
    start_at: datetime | None = None
    recording_wait: timedelta = timedelta(hours=48)
    recheck_waiting: timedelta = timedelta(minutes=30)
    call_filter: CallFilter = field(default_factory=CallFilter)
    # A page whose share of records failing mapping reaches this fails its span (0: any).
    max_unmapped_ratio: float = 1.0
    # Records that make a span full for a provider without a row cap: such a span is split,
    # so that the cursor moves (and a failure re-lists) at most about this many at a time.
    full_span_rows: int = FULL_SPAN_ROWS
    # The shortest span such a split or the sizing makes (a row cap splits down to a second).
    split_floor: timedelta = SPLIT_FLOOR
    # An unmapped record that still fails is mapped again after this, doubled per failure, up
    # to remap_cap (retention.unmapped_remap_*; see poller.domain.retention.remap_delay).
    remap_base: timedelta = timedelta(minutes=5)
    remap_cap: timedelta = timedelta(hours=6)
    # Unmapped records a provider keeps with their raw text at most (0: no cap); beyond it a
    # new one is kept as an expired marker at once (retention.unmapped_max_kept).
    unmapped_max_kept: int = 0


@dataclass
class PollReport:
    """What one cycle did (or, with ``dry_run``, would do).

    Every row the cycle touched is counted in ``counts`` and handed to ``on_change`` as it is
    made; ``changes`` keeps the first ``keep_changes`` of them (all when ``None``). The daemon
    keeps none and `siro-poller poll` a screenful: their memory must not grow with the number
    of calls listed. Unchanged re-reads are only counted.
    """

    provider: str
    now: datetime
    dry_run: bool
    window: Window | None = None
    cursor_before: datetime | None = None
    cursor_after: datetime | None = None
    spans_listed: int = 0
    pages: int = 0
    listed: int = 0
    # Unmapped records kept as markers only: their provider was at retention.unmapped_max_kept.
    unmapped_over_cap: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    changes: list[IngestChange] = field(default_factory=list)
    # The first REPORTED_MALFORMED records that failed mapping (each carries its raw text, so
    # a long backfill must not keep them all); ``malformed_count`` counts every one.
    malformed: list[MalformedRecordError] = field(default_factory=list)
    malformed_count: int = 0
    # Records kept unmapped by earlier cycles that the current mapping turned into calls.
    remapped: int = 0
    expired: list[str] = field(default_factory=list)
    rate_limit: RateLimitHints | None = None
    error: str | None = None
    # A dry run writes nothing, so a call listed again later in the cycle would look new again.
    seen_in_dry_run: set[str] = field(default_factory=set, repr=False)
    keep_changes: int | None = None
    on_change: Callable[[IngestChange], None] | None = field(default=None, repr=False)
    # Whether the provider accepted the credentials (a page came), or refused them.
    credentials_accepted: bool = False
    credentials_refused: bool = False
    # The provider answered a split span with calls from outside it: spans are not split.
    spans_ignored: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def changed(self) -> int:
        """How many rows the cycle touched (or would), ``changes`` kept or not."""
        unchanged = IngestAction.UNCHANGED.value
        return sum(count for action, count in self.counts.items() if action != unchanged)

    def add(self, changes: list[IngestChange]) -> None:
        for change in changes:
            self.counts[change.action.value] += 1
            if change.action is IngestAction.UNCHANGED:
                continue
            if self.on_change is not None:
                self.on_change(change)
            if self.keep_changes is None or len(self.changes) < self.keep_changes:
                self.changes.append(change)

    def to_dict(self) -> dict[str, Any]:
        """The ``poll --json`` document."""
        return {
            "provider": self.provider,
            "dry_run": self.dry_run,
            "now": self.now,
            "window": {"start": self.window.start, "end": self.window.end} if self.window else None,
            "cursor_before": self.cursor_before,
            "cursor_after": self.cursor_after,
            "spans_listed": self.spans_listed,
            "pages": self.pages,
            "listed": self.listed,
            "counts": {action.value: self.counts[action.value] for action in IngestAction}
            | {
                "malformed": self.malformed_count,
                "remapped": self.remapped,
                "expired": len(self.expired),
            },
            "changes": [change_document(change) for change in self.changes],
            "malformed": [
                {
                    "page": error.position.page,
                    "index": error.position.index,
                    "window_start": error.position.window.start,
                    "window_end": error.position.window.end,
                    "call_id": error.call_id,
                    "reason": error.reason,
                }
                for error in self.malformed
            ],
            "expired": self.expired,
            "error": self.error,
        }


def change_document(change: IngestChange) -> dict[str, Any]:
    """One change as ``poll --json`` lists it."""
    return {
        "provider_call_id": change.provider_call_id,
        "action": change.action.value,
        "call_id": change.call_id,
        "from_state": change.from_state.value if change.from_state else None,
        "to_state": change.to_state.value,
        "changed": list(change.changed),
        "message": change.message,
    }
