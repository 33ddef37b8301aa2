"""One poll cycle: list the provider's call log since the cursor and upsert what it says.

The same function serves ``siro-poller poll`` and the scheduler. Its contract:

1. Read the cursor; on the first run start at ``poll.start_at`` or ``now - initial_lookback``.
2. List the window ``[cursor - lookback, now - settle_delay)``, split into spans the provider
   accepts and sized by the records they hold, not by the calendar: a stretch without calls
   costs one request, a span that turns out full is split (never below ``split_floor``) and
   its halves listed completely; a provider that answers a split span with calls from outside
   it is paged through instead (see :mod:`poller.domain.windows` for the boundary rule and
   :class:`SpanSizer`).
3. Commit each page as it arrives (one transaction per page, or per chunk of a page of many
   records), so a failure later in a window keeps what was already read.
4. Move the cursor to the end of each span once all of that span's pages are in, never past a
   failed page and never beyond ``now - settle_delay``. A failed span ends the cycle and its
   error goes on ``poll_cursors.last_error``; the next cycle lists it again. A nudged cycle
   (``reach_now``: a webhook announced a call) lists up to ``now``, past the settle delay,
   but its cursor stops at the same place, so the next cycle reads that stretch again.
5. Re-list, at most every ``recheck_waiting_minutes``, the older stretch back to the oldest
   call still waiting for its recording: a recording may arrive hours after its call, long
   after the lookback has passed it by.
6. Skip, as ``no_recording``, calls that have waited longer than ``recording_wait_hours``.
7. A listing the provider refuses for its credentials (:class:`ProviderAuthError`) pauses the
   work on that provider's calls (:mod:`poller.domain.pauses`); a listing that succeeds ends
   that pause.
8. Keep every record that fails mapping in ``unmapped_records``, in the transaction of its
   page. Each cycle first maps again, with the provider's current mapping, the unresolved ones
   whose back-off has passed (``remap_base`` doubled per failed try, up to ``remap_cap``): once
   the mapping is fixed they become calls, however old they are, until retention expires them
   (:mod:`poller.core.retention`); beyond ``unmapped_max_kept`` of a provider, a new one is
   kept as an expired marker without its raw text. A page where the share
   of such records reaches ``max_unmapped_ratio`` (by default: all of them) fails its span, so
   the cursor does not move past calls it could not read.

``now`` is an argument so tests can simulate time; nothing here reads the clock.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from poller.core.poll_report import PollParams, PollReport
from poller.core.unmapped import map_unmapped_again, within_cap
from poller.domain.clock import as_utc, human_age
from poller.domain.ingest import IngestChange, ListedCall, no_recording_message
from poller.domain.pauses import provider_scope
from poller.domain.records import PollCursor
from poller.domain.redaction import redact_text
from poller.domain.windows import (
    MIN_SPAN,
    SpanSizer,
    Window,
    cursor_limit,
    first_cursor,
    outside_span,
    poll_window,
)
from poller.ports.provider import (
    ListedPage,
    ProviderAuthError,
    ProviderError,
    ProviderPort,
)
from poller.ports.store import PollStore

log = logging.getLogger(__name__)

REPORTED_MALFORMED = 100
_REASONS_KEPT = 50


def poll_once(
    params: PollParams,
    provider: ProviderPort,
    store: PollStore,
    now: datetime,
    *,
    dry_run: bool = False,
    keep_changes: int | None = None,
    on_change: Callable[[IngestChange], None] | None = None,
    reach_now: bool = False,
) -> PollReport:
    """Run one poll cycle at simulated or real time ``now``. Never raises a provider error:
    it is in the report and, unless ``dry_run``, on ``poll_cursors.last_error``.

    The report keeps the first ``keep_changes`` changes (all when ``None``); ``on_change``
    sees each one as it is made (see :class:`PollReport`). ``reach_now`` lists up to ``now``
    (a nudged poll); the cursor still stops before the settle delay."""
    now = as_utc(now)
    key = params.provider_key
    capabilities = provider.capabilities
    cursor = store.get_cursor(key)
    report = PollReport(
        provider=key, now=now, dry_run=dry_run, keep_changes=keep_changes, on_change=on_change
    )
    report.cursor_before = report.cursor_after = cursor.cursor_value if cursor else None
    settle_delay = max(params.settle_delay, capabilities.settle_delay)
    report.window = poll_window(
        report.cursor_before,
        now=now,
        lookback=params.lookback,
        settle_delay=settle_delay,
        initial_start=first_cursor(
            now, start_at=params.start_at, initial_lookback=params.initial_lookback
        ),
        floor=params.start_at,
        history_limit=capabilities.history_limit,
        reach_now=reach_now,
    )
    history = capabilities.history_limit
    if report.cursor_before is not None and history is not None:
        lost_until = now - history
        if report.cursor_before - params.lookback < lost_until:
            log.warning(
                "%s: the cursor (%s) is older than the provider's %s of history; calls "
                "before %s can no longer be listed",
                key,
                report.cursor_before,
                history,
                lost_until,
            )
    try:
        map_unmapped_again(report, params, provider, store)
        if report.window is not None:
            list_window(
                report,
                report.window,
                params,
                provider,
                store,
                cursor_until=cursor_limit(now, settle_delay),
            )
            if report.error is None:
                _recheck_waiting(report, report.window, params, provider, store, cursor)
    except Exception as exc:
        # Not a provider failure but a bug or a database problem: still leave a trace where
        # operators look (`status`), then let the scheduler see it.
        if not dry_run:
            message = f"unexpected {type(exc).__name__}: {redact_text(str(exc))[:500]}"
            store.record_poll_result(key, now, message)
        raise
    report.expired = store.expire_waiting(
        key,
        now - params.recording_wait,
        now,
        message=no_recording_message(params.recording_wait.total_seconds() / 3600),
        dry_run=dry_run,
    )
    if not dry_run:
        store.record_poll_result(key, now, report.error)
        _settle_credential_pause(report, store)
    if report.unmapped_over_cap:
        log.warning(
            "%s: %d unmapped record(s) kept without their raw text: the provider already "
            "holds retention.unmapped_max_kept (%d) unmapped records",
            key,
            report.unmapped_over_cap,
            params.unmapped_max_kept,
        )
    _log_summary(report, nudged=reach_now)
    return report


@dataclass(frozen=True, slots=True)
class PollCycle:
    """The daemon's poll cycle of one provider, at the clock's time; ``reach_now=True`` is
    a nudged cycle (see :func:`poll_once`)."""

    params: PollParams
    provider: ProviderPort
    store: PollStore
    clock: Callable[[], datetime]
    # The daemon's report counts its changes: a long backlog must not grow its memory.
    keep_changes: int | None = 0

    def __call__(self, *, reach_now: bool = False) -> PollReport:
        return poll_once(
            self.params,
            self.provider,
            self.store,
            self.clock(),
            keep_changes=self.keep_changes,
            reach_now=reach_now,
        )


def list_window(
    report: PollReport,
    window: Window,
    params: PollParams,
    provider: ProviderPort,
    store: PollStore,
    *,
    span_listed: Callable[[Window], None] | None = None,
    cursor_until: datetime | None = None,
) -> None:
    """List ``window`` span by span into the store, the cursor following each span (but
    never past ``cursor_until``), or, with ``span_listed`` (a backfill, which leaves the
    cursor alone), that callback.

    A failed span ends the listing with ``report.error`` set, not logged: the caller reports
    it once (a poll cycle in its summary line, a backfill in its result)."""
    key = params.provider_key
    row_cap = provider.capabilities.max_rows_per_query
    spans = SpanSizer(
        window,
        provider.capabilities.max_window,
        full_rows=row_cap or params.full_span_rows,
        floor=MIN_SPAN if row_cap is not None else params.split_floor,
    )
    if report.spans_ignored and row_cap is None:
        spans.ignore_spans(spans.window)
    while (span := spans.next_span()) is not None:
        items_in_span = 0
        unmapped_error: str | None = None
        tally: _PageTally | None = None
        relist = False
        pages = provider.list_window(span)
        try:
            for page in pages:
                report.credentials_accepted = True
                if tally is None or page.first_index == 0:
                    # A new page; a page of many records comes in chunks, judged together.
                    report.pages += 1
                    if tally is not None and unmapped_error is None:
                        unmapped_error = tally.verdict(params.max_unmapped_ratio)
                    tally = _PageTally(page.window, page.number)
                tally.add(page)
                # A page begun after a span's first pages held enough: the span goes on, full.
                full = page.first_index == 0 and items_in_span >= params.full_span_rows
                items_in_span += page.item_count
                report.rate_limit = page.rate_limit
                for malformed in page.malformed:
                    log.warning("%s: a malformed record, kept as unmapped: %s", key, malformed)
                report.malformed_count += len(page.malformed)
                room = max(0, REPORTED_MALFORMED - len(report.malformed))
                report.malformed.extend(page.malformed[:room])
                listed = [
                    ListedCall(record, params.call_filter.verdict(record))
                    for record in page.records
                ]
                if report.dry_run:
                    listed = [
                        item
                        for item in listed
                        if item.record.provider_call_id not in report.seen_in_dry_run
                    ]
                    report.seen_in_dry_run.update(item.record.provider_call_id for item in listed)
                report.listed += len(page.records)
                changes = store.ingest_page(
                    key,
                    listed,
                    report.now,
                    dry_run=report.dry_run,
                    unmapped=within_cap(report, params, store, page.malformed),
                )
                report.add(changes)
                if row_cap is None:
                    # What was read is in and harmless to read again: relisting loses nothing.
                    relist = _split_or_widen(report, spans, span, page, full, params)
                    if relist:
                        break
        except ProviderError as exc:
            report.error = redact_text(str(exc))
            report.credentials_refused = isinstance(exc, ProviderAuthError)
            return
        finally:
            _stop_paging(pages)
        if relist:
            continue
        if tally is not None and unmapped_error is None:
            unmapped_error = tally.verdict(params.max_unmapped_ratio)
        if unmapped_error is not None:
            # The span's other pages went in; its cursor waits for the mapping to be fixed.
            report.error = unmapped_error
            return
        if row_cap is not None and items_in_span >= row_cap:
            if not spans.full(span):
                report.error = (
                    f"window {span}: the provider returned its row cap ({row_cap}) for a "
                    "single second; provider.listing.max_rows_per_query may be wrong"
                )
                return
            # The cap may have cut the span short: list both halves again, which is harmless.
            log.info("%s: window %s hit the row cap of %d; splitting it", key, span, row_cap)
            continue
        spans.listed(span, items_in_span)
        report.spans_listed += 1
        if span_listed is not None:
            span_listed(span)
            continue
        cursor_to = span.end if cursor_until is None else min(span.end, cursor_until)
        if report.dry_run:
            before = report.cursor_after
            report.cursor_after = cursor_to if before is None else max(before, cursor_to)
        else:
            report.cursor_after = store.advance_cursor(key, cursor_to, report.now).cursor_value


def _split_or_widen(
    report: PollReport,
    spans: SpanSizer,
    span: Window,
    page: ListedPage,
    full: bool,
    params: PollParams,
) -> bool:
    """For a provider without a row cap, after each page (or chunk) of ``span``: whether to
    stop listing it and list from its start again, in a shorter span (``full``: pages follow
    pages that held ``full_span_rows``) or a longer one (the provider ignores spans, so
    splitting cannot help). A span whose last page came is listed, however many it held."""
    if spans.splits and spans.honoured:
        # Only once a span was split does a provider that ignores spans cost more than paging.
        stray = next((r for r in page.records if outside_span(span, r.started_at)), None)
        if stray is not None:
            report.spans_ignored = True
            log.warning(
                "%s: the provider answered window %s with call %s of %s, outside it: it does "
                "not filter by the window asked, so windows are no longer split but paged "
                "through",
                params.provider_key,
                span,
                stray.provider_call_id,
                stray.started_at.isoformat(),
            )
            return spans.ignore_spans(span)
    if full and spans.full(span):
        log.info(
            "%s: window %s holds more than %d records; listing it again in halves",
            params.provider_key,
            span,
            params.full_span_rows,
        )
        return True
    return False


def _stop_paging(pages: Iterator[ListedPage]) -> None:
    """End a listing left before its last page: its paging (and connection) ends now."""
    if isinstance(pages, Generator):
        pages.close()


def _settle_credential_pause(report: PollReport, store: PollStore) -> None:
    """A refused listing pauses the provider's calls; a page listed ends the pause."""
    scope = provider_scope(report.provider)
    if report.credentials_refused and report.error is not None:
        store.record_pause(scope, report.error, report.now)
    elif report.credentials_accepted:
        ended = store.end_pause(scope)
        if ended is not None:
            log.warning(
                "%s: the provider accepts the credentials again; its calls are worked again "
                "after a pause of %s",
                report.provider,
                human_age(ended.age(report.now)),
            )


@dataclass
class _PageTally:
    """The records of one page that failed mapping, over all of its chunks."""

    window: Window
    number: int
    failed: int = 0
    items: int = 0
    reasons: Counter[str] = field(default_factory=Counter)

    def add(self, chunk: ListedPage) -> None:
        self.failed += len(chunk.malformed)
        self.items += max(chunk.item_count, len(chunk.malformed) + len(chunk.records))
        for error in chunk.malformed:
            # Bounded: a page of 300,000 records failing each its own way keeps a few reasons.
            if error.reason in self.reasons or len(self.reasons) < _REASONS_KEPT:
                self.reasons[error.reason] += 1

    def verdict(self, max_ratio: float) -> str | None:
        """Why the page must hold its span's cursor back, or ``None``."""
        if self.failed == 0 or self.failed / self.items < max_ratio:
            return None
        first = "; ".join(
            f"{reason} ({count}x)" if count > 1 else reason
            for reason, count in self.reasons.most_common(3)
        )
        return redact_text(
            f"window {self.window}, page {self.number}: {self.failed} of {self.items} records "
            f"failed mapping (poll.max_unmapped_ratio = {max_ratio:g}), so the cursor stays "
            f"before them: {first}. They are kept (siro-poller calls unmapped) and mapped again "
            "with back-off; check the provider.fields mapping"
        )


def _recheck_waiting(
    report: PollReport,
    window: Window,
    params: PollParams,
    provider: ProviderPort,
    store: PollStore,
    cursor: PollCursor | None,
) -> None:
    """List again the stretch before ``window`` that holds calls still waiting for audio."""
    last = cursor.waiting_rechecked_at if cursor else None
    if last is not None and report.now - last < params.recheck_waiting:
        return
    not_before = report.now - params.recording_wait
    history = provider.capabilities.history_limit
    if history is not None:
        not_before = max(not_before, report.now - history)
    oldest = store.oldest_waiting_start(params.provider_key, not_before)
    if oldest is None or oldest >= window.start:
        return
    stretch = Window(oldest, window.start)
    log.info(
        "%s: listing %s again for calls still waiting for a recording", report.provider, stretch
    )
    list_window(report, stretch, params, provider, store)
    if report.error is None and not report.dry_run:
        store.mark_waiting_rechecked(params.provider_key, report.now)


def _log_summary(report: PollReport, *, nudged: bool = False) -> None:
    """One line per cycle: what it did, or, when it failed, why and what to check."""
    counts = ", ".join(f"{name} {count}" for name, count in sorted(report.counts.items()))
    marks = [mark for mark, on in (("dry run", report.dry_run), ("nudged", nudged)) if on]
    provider = report.provider + (f" ({', '.join(marks)})" if marks else "")
    if report.error is not None:
        # The error names the page, the URL and the setting to check; what went in before it
        # is kept, so the line says how far the cycle got.
        log.error(
            "%s: poll failed after %d page(s) and %d call(s) listed; %s: %s",
            provider,
            report.pages,
            report.listed,
            f"the cursor stays at {report.cursor_after.isoformat()}"
            if report.cursor_after
            else "no cursor is set yet",
            report.error,
        )
        return
    log.info(
        "%s: window %s, %d page(s), %d call(s) listed (%s), %d malformed, %d remapped, "
        "%d expired; cursor %s -> %s",
        provider,
        report.window or "empty",
        report.pages,
        report.listed,
        counts or "nothing new",
        report.malformed_count,
        report.remapped,
        len(report.expired),
        report.cursor_before,
        report.cursor_after,
    )
