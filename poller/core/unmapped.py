"""The records a listing could not map (``unmapped_records``), for the poll cycle.

How one is kept (:func:`unmapped_draft`; beyond ``unmapped_max_kept`` of a provider, as an
expired marker without its raw text: :func:`within_cap`), and how the kept ones are mapped again
with the provider's current mapping at the start of each cycle, each with back-off
(:func:`map_unmapped_again`; see :mod:`poller.domain.retention`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from datetime import datetime

from poller.core.poll_report import PollParams, PollReport
from poller.domain.call_record import CallRecord
from poller.domain.ingest import ListedCall
from poller.domain.raw_record import fingerprint, load_raw
from poller.domain.records import UnmappedDraft, UnmappedRecord
from poller.domain.redaction import redact_text
from poller.domain.retention import remap_delay
from poller.domain.windows import Window
from poller.ports.provider import MalformedRecordError, ProviderPort, RecordPosition
from poller.ports.store import PollStore

# The poll cycle's lines, under its name: operators filter the log by it.
log = logging.getLogger("poller.core.poll")

# Unresolved unmapped records are mapped again this many at a time (bounded memory).
REMAP_BATCH = 500
_REASON_LIMIT = 1000


def within_cap(
    report: PollReport,
    params: PollParams,
    store: PollStore,
    malformed: Sequence[MalformedRecordError],
) -> list[UnmappedDraft]:
    """The page's unmapped records as kept: beyond ``unmapped_max_kept`` records of the
    provider with raw text, a new one is kept as an expired marker (why, where, its hash)
    at once, so that a flood of junk cannot fill the disk between two retention passes."""
    drafts = [unmapped_draft(error) for error in malformed]
    cap = params.unmapped_max_kept
    if not drafts or cap <= 0 or report.dry_run:
        return drafts
    room = max(0, cap - store.count_live_unmapped(params.provider_key))
    if room >= len(drafts):
        return drafts
    reason = f"over retention.unmapped_max_kept ({cap}) for its provider when first listed"
    report.unmapped_over_cap += len(drafts) - room
    return drafts[:room] + [
        dataclasses.replace(draft, raw="", expired_at=report.now, expired_reason=reason)
        for draft in drafts[room:]
    ]


def unmapped_draft(error: MalformedRecordError) -> UnmappedDraft:
    position = error.position
    raw = error.raw or ""
    return UnmappedDraft(
        window_start=position.window.start,
        window_end=position.window.end,
        page=position.page,
        item_index=position.index,
        reason=redact_text(error.reason)[:_REASON_LIMIT],
        raw=raw,
        # Without its raw text a record is told apart by where it was and why it failed.
        raw_sha256=fingerprint(raw or str(error)),
        provider_call_id=error.call_id,
    )


def map_unmapped_again(
    report: PollReport, params: PollParams, provider: ProviderPort, store: PollStore
) -> None:
    """Ingest the kept unmapped records the provider's current mapping can read; those it
    still cannot wait longer before the next try (a hostile log's junk is not re-read each
    cycle)."""
    after_id = 0
    while True:
        rows = store.unmapped_to_remap(
            params.provider_key, report.now, after_id=after_id, limit=REMAP_BATCH
        )
        if not rows:
            return
        after_id = rows[-1].id
        listed: list[ListedCall] = []
        resolving: dict[int, str] = {}
        backoff: dict[int, tuple[int, datetime]] = {}
        for row in rows:
            record = _map_again(row, provider)
            if record is not None:
                listed.append(ListedCall(record, params.call_filter.verdict(record)))
                resolving[row.id] = record.provider_call_id
            else:
                failed = row.remap_attempts + 1
                delay = remap_delay(failed, params.remap_base, params.remap_cap)
                backoff[row.id] = (failed, report.now + delay)
        if backoff and not report.dry_run:
            store.note_remap_failed(backoff)
        if report.dry_run:
            report.seen_in_dry_run.update(item.record.provider_call_id for item in listed)
        if listed:
            log.info(
                "%s: %d record(s) kept as unmapped map now; ingesting them",
                params.provider_key,
                len(listed),
            )
            report.add(
                store.ingest_page(
                    params.provider_key,
                    listed,
                    report.now,
                    dry_run=report.dry_run,
                    resolving=None if report.dry_run else resolving,
                )
            )
            report.remapped += len(resolving)
        if len(rows) < REMAP_BATCH:
            return


def _map_again(row: UnmappedRecord, provider: ProviderPort) -> CallRecord | None:
    if not row.raw:
        return None
    position = RecordPosition(Window(row.window_start, row.window_end), row.page, row.item_index)
    try:
        return provider.normalise(load_raw(row.raw), position)
    except Exception:  # still unreadable: it stays unresolved, tried again after its back-off
        return None
