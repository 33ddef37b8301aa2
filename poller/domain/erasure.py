"""Erasure of a data subject's personal data (`siro-poller calls forget`). Pure: the rules.

The data subject is the customer on the other end of the call, not the rep: the rep is an
employee whose work the audit trail records, and ``siro_users`` is a copy of Siro's own user
list, synced again every cycle. So a forget erases what names or reaches the customer:

- on the call row, :data:`ERASED_COLUMNS` (the contact's name and number, the title built from
  them, the raw provider record, the recording's URL at the provider and the file's URL in
  Siro, both of which may carry a signature) become NULL; the spool file goes;
- in the call's own texts (``last_error``, its events' messages) every personal value of the
  call (:func:`personal_values`) is replaced with ``[erased]`` (the rule of
  :mod:`poller.domain.scrubbing`, which retention's prune applies too);
- kept records of the call that failed mapping (``unmapped_records``), and any of its
  provider's quoting the contact, are emptied and kept as tombstones (the same record listed
  again is not kept again).

What stays is a tombstone: ids, provider call id, states, times, sizes, the Siro recording id
and the events, with ``forgotten_at`` set. The poll cycle recognises the provider call id and
takes nothing from a listing of it again (:mod:`poller.domain.ingest`), and a row not yet in
Siro is parked as ``skipped`` / :data:`FORGOTTEN_KIND`, which `calls retry` and `calls replay`
refuse. The ``forget`` event says which columns were erased (names, never values) and by whom.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from poller.domain.phones import to_e164
from poller.domain.records import Call
from poller.domain.scrubbing import PHONE_LIKE, contact_values
from poller.domain.states import CallState

FORGET_STEP: Final = "forget"
FORGOTTEN_KIND: Final = "forgotten"
FORGOTTEN_MESSAGE: Final = "personal data erased on request (calls forget); never uploaded"

# The columns of ``calls`` a forget sets to NULL.
ERASED_COLUMNS: Final = (
    "contact_name",
    "contact_phone",
    "title",
    "raw",
    "recording_url",
    "siro_file_url",
)
# The columns whose text may quote a personal value, rewritten with ERASED.
SCRUBBED_COLUMNS: Final = ("last_error",)


@dataclass(frozen=True, slots=True)
class ForgetSelection:
    """Which calls to forget; a call matching any one of the criteria is chosen.

    ``references`` are row ids or provider call ids; ``contact_phone`` is E.164; ``email`` is
    matched, case-insensitively, anywhere in the raw provider record (where the vendor keeps a
    contact's email) but never as the call's ``rep_email``; ``before`` takes calls that started
    before it (or, without a start time, were first listed before it).
    """

    references: tuple[str, ...] = ()
    contact_phone: str | None = None
    email: str | None = None
    before: datetime | None = None
    # (provider, provider call id) of an erasure ledger: calls forgotten before a restore.
    keys: tuple[tuple[str, str], ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.references or self.contact_phone or self.email or self.before or self.keys)


@dataclass(frozen=True, slots=True)
class ForgetOutcome:
    """What forgetting one call did (or, in a dry run, would do)."""

    call_id: int
    provider: str
    provider_call_id: str
    state_before: CallState
    state_after: CallState
    erased_columns: tuple[str, ...]
    scrubbed_events: int = 0
    unmapped_removed: int = 0
    spool_path: str | None = None
    siro_recording_id: str | None = None
    # The create call went out but no recording id came back: Siro may hold the call anyway.
    siro_may_hold: bool = False
    already_forgotten: bool = False
    was_leased: bool = False

    @property
    def siro_holds(self) -> bool:
        return self.siro_recording_id is not None or self.siro_may_hold


@dataclass(frozen=True, slots=True)
class ForgetReport:
    outcomes: list[ForgetOutcome] = field(default_factory=list)
    spool_files_removed: int = 0
    # Kept unmapped records that quoted the subject with no call of theirs.
    unmapped_emptied: int = 0
    # Ledger keys with no row (listed after the restored backup was taken): tombstones added.
    tombstones_added: int = 0
    compaction: str | None = None
    dry_run: bool = False


def personal_values(call: Call, default_region: str) -> set[str]:
    """The texts of ``call`` that name or reach its contact (:func:`contact_values`), and the
    URLs of its recording, which may carry a signature."""
    values = contact_values(call.contact_name, call.contact_phone, call.title, default_region)
    if call.recording_url and len(call.recording_url.strip()) >= 3:
        values.add(call.recording_url.strip())
    if call.siro_file_url:
        values.add(call.siro_file_url)
    return values


def erased_columns(call: Call) -> tuple[str, ...]:
    """The :data:`ERASED_COLUMNS` of ``call`` that hold something."""
    return tuple(name for name in ERASED_COLUMNS if getattr(call, name) is not None)


def state_after_forget(call: Call) -> CallState:
    """An uploaded call stays uploaded (Siro holds it); any other is parked as skipped."""
    return CallState.UPLOADED if call.state is CallState.UPLOADED else CallState.SKIPPED


def forget_message(columns: Iterable[str], actor: str, extra: Mapping[str, int]) -> str:
    """The ``forget`` event: which columns and how many other records went, and who asked."""
    named = ", ".join(columns) or "none (already empty)"
    others = "; ".join(f"{what}: {count}" for what, count in extra.items() if count)
    return f"personal data erased by {actor}: columns {named}" + (f"; {others}" if others else "")


def raw_mentions(raw: Mapping[str, Any] | str | None, needle: str) -> bool:
    """Whether ``needle`` (an email) is one of the raw record's values, case-insensitively."""
    if raw is None:
        return False
    text = raw if isinstance(raw, str) else json.dumps(raw, ensure_ascii=False)
    return needle.lower() in text.lower()


def raw_mentions_phone(raw: str | None, e164: str, default_region: str) -> bool:
    """Whether an unmapped record's raw text holds the number ``e164``, in any spelling."""
    if not raw:
        return False
    if e164 in raw or e164[1:] in raw:
        return True
    return any(
        to_e164(match.group(0), default_region) == e164 for match in PHONE_LIKE.finditer(raw)
    )


def siro_instructions(outcome: ForgetOutcome) -> list[str]:
    """What the operator must still do in Siro, which documents no way to delete a recording
    through its API (docs/operations/data-lifecycle.md)."""
    if outcome.siro_recording_id is not None:
        return [
            f"Siro still holds recording {outcome.siro_recording_id} of call {outcome.call_id} "
            "(audio, title, contact name and number as uploaded).",
            "Siro's API documents no recording deletion: delete it in the Siro dashboard "
            "(open the recording, delete) or ask Siro support to, quoting the recording id.",
        ]
    if outcome.siro_may_hold:
        return [
            f"Siro may hold call {outcome.call_id}: a create call went out and no answer came "
            "back. Search Siro for its title around the call's time and delete it there.",
        ]
    return []


def source_instructions(
    outcomes: Iterable[ForgetOutcome],
    *,
    enabled: bool,
    grace_by_provider: Mapping[str, timedelta],
) -> list[str]:
    """What becomes of the recordings at the phone system of the forgotten calls that were
    uploaded: a forget deletes nothing there itself (docs/operations/data-lifecycle.md)."""
    counts: dict[str, int] = {}
    for outcome in outcomes:
        if outcome.state_before is CallState.UPLOADED:
            counts[outcome.provider] = counts.get(outcome.provider, 0) + 1
    lines = []
    for provider, count in sorted(counts.items()):
        grace = grace_by_provider.get(provider)
        if enabled and grace is not None:
            lines.append(
                f"{provider}: deletion at the source deletes the {count} recording(s) there once "
                f"its rules allow (grace {grace.total_seconds() / 86400:g} days, Siro read "
                "back); `siro-poller source purge --dry-run` says when or why not."
            )
        else:
            lines.append(
                f"{provider}: the {count} recording(s) stay at the phone system (deletion at "
                "the source is off for it): delete them in its console if the request covers "
                "them."
            )
    return lines


def ledger_keys(lines: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """The (provider, provider call id) of every forgotten call in a `calls export --format
    jsonl` file. Raises ValueError naming the first line that is not such a document."""
    keys: dict[tuple[str, str], None] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            document = json.loads(line)
            if document.get("forgotten"):
                keys[(str(document["provider"]), str(document["provider_call_id"]))] = None
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ValueError(
                f"line {number} is not a call of `calls export --format jsonl`"
            ) from None
    return tuple(keys)


def ledger_message(actor: str) -> str:
    return (
        f"tombstone re-applied from an erasure ledger by {actor}: the call was forgotten "
        "before this database was restored"
    )
