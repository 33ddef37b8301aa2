"""`siro-poller calls forget`: erase a data subject's calls from the state database.

The rules (what is erased, what stays as the tombstone) are :mod:`poller.domain.erasure`; the
store applies them a call per transaction, so an interrupted run leaves every call either
whole or forgotten, and running it again finishes the job.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from poller.domain.erasure import (
    ForgetOutcome,
    ForgetReport,
    ForgetSelection,
    erased_columns,
    state_after_forget,
)
from poller.domain.states import CallState
from poller.ports.erasure import ErasureStore

log = logging.getLogger(__name__)


def plan_forget(
    store: ErasureStore, selection: ForgetSelection, default_region: str
) -> list[ForgetOutcome]:
    """What a forget of ``selection`` would do, changing nothing (``--dry-run``)."""
    return [
        ForgetOutcome(
            call_id=call.id,
            provider=call.provider,
            provider_call_id=call.provider_call_id,
            state_before=call.state,
            state_after=state_after_forget(call),
            erased_columns=erased_columns(call),
            spool_path=call.spool_path,
            siro_recording_id=call.siro_recording_id,
            siro_may_hold=call.siro_recording_id is None and call.siro_create_sent_at is not None,
            already_forgotten=call.forgotten_at is not None,
            was_leased=call.lease_owner is not None,
        )
        for call in store.forget_candidates(selection, default_region)
    ]


def forget(
    store: ErasureStore,
    selection: ForgetSelection,
    now: datetime,
    *,
    actor: str,
    default_region: str,
    remove_files: Callable[[int, str | None], int],
    dry_run: bool = False,
    planned: list[ForgetOutcome] | None = None,
) -> ForgetReport:
    """Forget every call ``selection`` chooses; ``remove_files(call id, spool path)`` deletes
    the call's files in the spool and says how many there were. ``planned``: what
    :func:`plan_forget` said (and the operator confirmed), so the calls are not chosen twice."""
    if selection.empty:
        raise ValueError("a forget needs a selection: call ids, a phone, an email or a date")
    if planned is None:
        planned = plan_forget(store, selection, default_region)
    if dry_run:
        unmapped = store.forget_unmapped(selection, now, default_region, dry_run=True)
        return ForgetReport(outcomes=planned, unmapped_emptied=unmapped, dry_run=True)
    outcomes: list[ForgetOutcome] = []
    removed_files = 0
    for plan in planned:
        outcome = store.forget_call(plan.call_id, now, actor, default_region)
        if outcome is None:
            continue  # deleted meanwhile: nothing left to erase
        removed_files += remove_files(outcome.call_id, outcome.spool_path)
        if outcome.was_leased:
            log.warning(
                "call %d was being worked on when it was forgotten; its worker can no longer "
                "write to it",
                outcome.call_id,
            )
        outcomes.append(outcome)
    log.info(
        "forgot %d calls (%d uploaded to Siro) for %s",
        len(outcomes),
        sum(1 for o in outcomes if o.state_before is CallState.UPLOADED),
        actor,
    )
    unmapped = store.forget_unmapped(selection, now, default_region, dry_run=False)
    tombstones = store.add_tombstones(missing_keys(selection, planned), now, actor)
    compaction = store.after_erasure() if outcomes or unmapped else None
    return ForgetReport(
        outcomes=outcomes,
        spool_files_removed=removed_files,
        unmapped_emptied=unmapped,
        tombstones_added=tombstones,
        compaction=compaction,
    )


def missing_keys(selection: ForgetSelection, planned: list[ForgetOutcome]) -> list[tuple[str, str]]:
    """The ledger's keys no row holds: calls forgotten after the restored backup was taken,
    which the poll cycle would otherwise list and upload again."""
    present = {(o.provider, o.provider_call_id) for o in planned}
    return [key for key in selection.keys if key not in present]
