"""One retention pass over the state database: the daemon's ``retention`` job and
`siro-poller db prune`.

The rules are in :mod:`poller.domain.retention`. A pass works in batches of ``batch_size`` rows,
each its own short transaction, at most ``max_batches`` of them per part (the next pass goes on
where one stopped), so it never holds SQLite's single writer lock for long nor keeps a poll
waiting. The parts, in order: unmapped records expire (over the cap, by attempts, by age), then
their markers go, then the personal data of finished calls, then old events.

``now`` is an argument so tests can simulate time; nothing here reads the clock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from poller.domain.clock import as_utc
from poller.domain.retention import (
    EXPIRED_BY_AGE,
    EXPIRED_BY_ATTEMPTS,
    EXPIRED_BY_CAP,
    RetentionReport,
    RetentionRules,
    expiry_message,
)
from poller.ports.store import RetentionStore

log = logging.getLogger(__name__)


def run_retention(
    rules: RetentionRules, store: RetentionStore, now: datetime, *, dry_run: bool = False
) -> RetentionReport:
    """Apply ``rules`` at ``now``; in a dry run, count what would go and change nothing."""
    now = as_utc(now)
    report = RetentionReport(now=now, dry_run=dry_run)

    def batches(part: str, batch: Callable[[int], int]) -> int:
        """Run ``batch`` until a batch finds less than a full one, or max_batches ran."""
        if dry_run:
            return batch(rules.batch_size)
        total = 0
        for _ in range(rules.max_batches):
            done = batch(rules.batch_size)
            report.batches += 1
            total += done
            if done < rules.batch_size:
                return total
        report.unfinished.append(part)
        return total

    def expired(why: str, batch: Callable[[int], dict[str, int]]) -> None:
        counts: dict[str, int] = {}

        def one(limit: int) -> int:
            found = batch(limit)
            for provider, n in found.items():
                counts[provider] = counts.get(provider, 0) + n
            return sum(found.values())

        if batches(f"unmapped ({why})", one):
            report.unmapped_expired[why] = sum(counts.values())
            if not dry_run:
                for provider, n in sorted(counts.items()):
                    # The "event" of an expiry: the rows keep when and why; this line says so.
                    log.warning(
                        "%s: %d unmapped record(s) expired, %s; their raw text is dropped "
                        "(siro-poller calls unmapped shows them)",
                        provider,
                        n,
                        expiry_message(why, rules),
                    )

    if rules.unmapped_max_kept > 0:
        message = expiry_message(EXPIRED_BY_CAP, rules)
        expired(
            EXPIRED_BY_CAP,
            lambda limit: store.expire_unmapped_over_cap(
                now, message, max_kept=rules.unmapped_max_kept, limit=limit, dry_run=dry_run
            ),
        )
    if rules.unmapped_max_attempts > 0:
        message = expiry_message(EXPIRED_BY_ATTEMPTS, rules)
        expired(
            EXPIRED_BY_ATTEMPTS,
            lambda limit: store.expire_unmapped(
                now,
                message,
                min_attempts=rules.unmapped_max_attempts,
                limit=limit,
                dry_run=dry_run,
            ),
        )
    if rules.unmapped_after is not None:
        cutoff = now - rules.unmapped_after
        message = expiry_message(EXPIRED_BY_AGE, rules)
        expired(
            EXPIRED_BY_AGE,
            lambda limit: store.expire_unmapped(
                now, message, first_seen_before=cutoff, limit=limit, dry_run=dry_run
            ),
        )
        report.unmapped_deleted = batches(
            "unmapped markers",
            lambda limit: store.delete_done_unmapped(cutoff, limit=limit, dry_run=dry_run),
        )
    if rules.personal_data_after is not None:
        finished_before = now - rules.personal_data_after
        report.calls_pruned = batches(
            "calls",
            lambda limit: store.prune_finished_calls(
                finished_before,
                now,
                limit=limit,
                default_region=rules.default_region,
                dry_run=dry_run,
            ),
        )
    if rules.events_after is not None:
        events_before = now - rules.events_after
        report.events_deleted = batches(
            "events",
            lambda limit: store.prune_events(events_before, limit=limit, dry_run=dry_run),
        )
    if report.removed_anything and not dry_run:
        log.info("%s", report.summary())
        reclaim = report.reclaim_tables()
        # At most once per pass, and only after a pass large enough to outrun autovacuum.
        if reclaim and store.reclaim_space(reclaim):
            report.reclaimed = reclaim
            changed = report.changed_rows()
            log.debug(
                "retention asked the database to reuse the space of %s",
                ", ".join(f"{table} ({changed[table]} rows changed)" for table in reclaim),
            )
    return report
