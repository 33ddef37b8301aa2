"""A backfill: list a past range of a provider's call log, apart from the live cursor.

The poll cycle goes back only ``poll.lookback_minutes`` before its cursor, and ``poll.start_at``
counts on the very first run only. To bring in calls from before that, a backfill lists any
past range ``[since, until)`` through the poll cycle's own listing
(:func:`poller.core.poll.list_window`): windows no longer than the provider accepts, listed in
spans sized by the calls they hold as a poll's are (a quiet month is one request, a busy day
is split so that progress is saved often), halved when a span hits the provider's row cap,
the same upsert (a known call stays one row), and records that fail mapping kept in
``unmapped_records``.

It never moves the poll cursor and does not count as a poll: the daemon may run at the same
time. Its progress goes to ``backfill_runs`` after each span, in its own transaction, after
the span's pages: an interrupted backfill, run again with the same range, resumes at the end
of the last span it finished and lists none of the finished spans again. A stop asked for
takes effect after the span being listed.

``now`` is an argument so tests can simulate time; nothing here reads the clock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from poller.core.poll import list_window
from poller.core.poll_report import PollParams, PollReport
from poller.domain.clock import as_utc
from poller.domain.ingest import IngestAction
from poller.domain.records import BackfillCounts, BackfillRun
from poller.domain.windows import Window, split_window
from poller.ports.provider import ProviderPort
from poller.ports.store import BackfillStore, PollStore


class BackfillStores(PollStore, BackfillStore, Protocol):
    """The store roles a backfill uses."""


class BackfillRangeError(ValueError):
    """The range asked for cannot be listed (empty, reversed or not yet settled)."""


class _Stopped(Exception):
    """The stop event was set: the run ends after the span whose progress was just saved."""


@dataclass(frozen=True, slots=True)
class BackfillPlan:
    """What a backfill is about to list: windows as long as the provider accepts, each
    listed in spans sized by what they hold."""

    run: BackfillRun
    windows: list[Window]
    resumed: bool
    # Set when the provider's history limit cut the start of the range off.
    history_starts_at: datetime | None = None


@dataclass
class BackfillResult:
    run: BackfillRun
    windows_listed: int = 0
    error: str | None = None
    interrupted: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None and not self.interrupted


def plan_backfill(
    params: PollParams,
    provider: ProviderPort,
    store: BackfillStore,
    since: datetime,
    until: datetime,
    now: datetime,
) -> BackfillPlan:
    """Open (or find, to resume) the run of ``[since, until)`` and split what remains of it
    into the windows to list. Raises :class:`BackfillRangeError` for a range it cannot list."""
    since, until, now = as_utc(since), as_utc(until), as_utc(now)
    capabilities = provider.capabilities
    settled = now - max(params.settle_delay, capabilities.settle_delay)
    if since >= until:
        raise BackfillRangeError(f"--since {since.isoformat()} is not before --until")
    if until > settled:
        raise BackfillRangeError(
            f"--until must be at or before {settled.isoformat()} (now less the settle delay); "
            "the poll cycle lists what is more recent"
        )
    run = store.start_backfill(params.provider_key, since, until, now)
    start = run.listed_until
    history_starts_at = None
    if capabilities.history_limit is not None and start < now - capabilities.history_limit:
        history_starts_at = now - capabilities.history_limit
        start = min(history_starts_at, until)
    windows = split_window(Window(start, until), capabilities.max_window) if start < until else []
    return BackfillPlan(
        run=run,
        windows=windows,
        # A run this call did not just create: interrupted, or stopped by an error.
        resumed=run.started_at < now or run.listed_until > run.since or run.last_error is not None,
        history_starts_at=history_starts_at,
    )


def run_backfill(
    plan: BackfillPlan,
    params: PollParams,
    provider: ProviderPort,
    store: BackfillStores,
    now: datetime,
    *,
    span_done: Callable[[Window, BackfillRun], None] | None = None,
    stop: threading.Event | None = None,
    clock: Callable[[], datetime] | None = None,
) -> BackfillResult:
    """List the plan's windows in order, saving progress after each span and then telling
    ``span_done``. Never raises a provider error: it ends the run (resumable) and is in the
    result and on the run's row.

    ``now`` stamps the calls the run writes, as a poll cycle's does; ``clock`` (default:
    ``now``) stamps its progress, which a long run saves over minutes or hours."""
    now = as_utc(now)
    stamp = clock or (lambda: now)
    result = BackfillResult(run=plan.run)
    if plan.history_starts_at is not None:
        result.notes.append(
            f"the provider keeps {provider.capabilities.history_limit} of history: calls "
            f"before {plan.history_starts_at.isoformat()} can no longer be listed"
        )
    report = PollReport(provider=params.provider_key, now=now, dry_run=False)
    tally = _Tally(report)

    def span_listed(span: Window) -> None:
        result.run = store.record_backfill_progress(result.run.id, span.end, tally.take(), stamp())
        if span_done is not None:
            span_done(span, result.run)
        if stop is not None and stop.is_set():
            raise _Stopped

    for window in plan.windows:
        if stop is not None and stop.is_set():
            result.interrupted = True
            return result
        try:
            list_window(report, window, params, provider, store, span_listed=span_listed)
        except _Stopped:
            result.interrupted = True
            return result
        if report.error is not None:
            result.error = report.error
            result.run = store.finish_backfill(result.run.id, stamp(), report.error)
            return result
        result.windows_listed += 1
    result.run = store.finish_backfill(result.run.id, stamp(), None)
    return result


class _Tally:
    """What the report gained since the last span: the counts one span adds to its run."""

    def __init__(self, report: PollReport) -> None:
        self.report = report
        self.listed = 0
        self.unmapped = 0
        self.ingested = 0

    def take(self) -> BackfillCounts:
        report = self.report
        ingested = sum(report.counts[action.value] for action in IngestAction)
        # Changes that made a row are those without a previous state; the report keeps them
        # only until here, so its memory does not grow with the range.
        new = sum(1 for change in report.changes if change.from_state is None)
        report.changes.clear()
        counts = BackfillCounts(
            windows=1,
            listed=report.listed - self.listed,
            new_calls=new,
            known=ingested - self.ingested - new,
            unmapped=report.malformed_count - self.unmapped,
        )
        self.listed, self.unmapped, self.ingested = (
            report.listed,
            report.malformed_count,
            ingested,
        )
        return counts
