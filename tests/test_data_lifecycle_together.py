"""P17's parts together, on SQLite and PostgreSQL: retention, `calls forget`, deletion at the
source and `calls export` over the same calls, in the orders an operator meets them.

What an operator would notice: a retention pass never loses the erasure ledger or the record of
a deletion at the source, never lets a forgotten record be kept again, and never brings
personal data back; a forget of a pruned call and a prune of a forgotten one both work; a call
uploaded and then forgotten is still deleted at the vendor, once, when the rules allow it; an
audit export says which calls retention pruned.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from click.testing import CliRunner, Result
from sqlalchemy import text

from poller.adapters.siro_fake import InMemorySiro
from poller.adapters.sql.source_deletions import SqlSourceDeletions
from poller.adapters.sql.store import SqlStore
from poller.cli import main
from poller.core.erasure import forget
from poller.core.retention import run_retention
from poller.core.source_deletion import SourceDeletionJob, SourceDeletionParams
from poller.domain.call_record import CallRecord, RecordingLocator
from poller.domain.erasure import ForgetReport, ForgetSelection, source_instructions
from poller.domain.ingest import ListedCall
from poller.domain.raw_record import fingerprint
from poller.domain.records import UnmappedDraft
from poller.domain.retention import RetentionRules
from poller.domain.siro import RecordingSummary
from poller.domain.states import CallState, RecordingState
from poller.ports.provider import SourceDeletion
from tests.conftest import database_url
from tests.seed import seed_call, seed_event

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
LONG_AGO = NOW - timedelta(days=400)
RULES = RetentionRules(
    personal_data_after=timedelta(days=90),
    events_after=timedelta(days=30),
    unmapped_after=timedelta(days=30),
)
NAME, PHONE = "Zelda Quintessa", "+14155550199"
NEEDLES = ("Quintessa", "4155550199")
GRACE = timedelta(days=7)


def uploaded(store: SqlStore, key: str, *, at: datetime = LONG_AGO, **fields: Any) -> int:
    """An uploaded call of the subject, finished at ``at``."""
    values: dict[str, Any] = {
        "contact_name": NAME,
        "contact_phone": PHONE,
        "title": f"Call with {NAME}",
        "raw": {"call_id": key, "contact_name": NAME, "contact_phone": PHONE},
        "recording_url": f"https://voip.example.com/rec/{key}.mp3",
        "recording_id": key,
        "siro_recording_id": f"siro-{key}",
        "siro_create_sent_at": at,
        "uploaded_at": at,
        "recording_state": "ready",
        "started_at": at - timedelta(hours=1),
        "audio_duration_seconds": 95.0,
        **fields,
    }
    return seed_call(store, key, state=CallState.UPLOADED, at=at, **values).id


def forget_now(store: SqlStore, selection: ForgetSelection, now: datetime) -> ForgetReport:
    return forget(
        store,
        selection,
        now,
        actor="DPO ticket 9",
        default_region="US",
        remove_files=lambda _call_id, _path: 0,
    )


def listing(key: str) -> ListedCall:
    """The vendor lists the call again, with the subject's data."""
    return ListedCall(
        CallRecord(
            provider_call_id=key,
            started_at=LONG_AGO - timedelta(hours=1),
            recording_state=RecordingState.READY,
            recording_url=f"https://voip.example.com/rec/{key}.mp3",
            contact_name=NAME,
            contact_phone=PHONE,
            raw={"call_id": key, "contact_name": NAME, "contact_phone": PHONE},
        )
    )


def unmapped_draft(name: str = NAME, phone: str = PHONE, index: int = 0) -> UnmappedDraft:
    """A record (by default the subject's) the mapping cannot read."""
    raw = json.dumps({"contact_name": name, "contact_phone": phone, "started_at": "never"})
    return UnmappedDraft(
        window_start=LONG_AGO - timedelta(hours=1),
        window_end=LONG_AGO,
        page=1,
        item_index=index,
        reason="started_at 'never' does not parse as iso8601",
        raw=raw,
        raw_sha256=fingerprint(raw),
        provider_call_id=None,
    )


def dump(store: SqlStore) -> str:
    """The rows of the tables that hold calls, as text, to search for the subject."""
    lines: list[str] = []
    with store.engine.connect() as conn:
        for table in ("calls", "call_events", "unmapped_records", "source_deletions"):
            for row in conn.execute(text(f"SELECT * FROM {table}")):  # noqa: S608
                lines.append(f"{table}: {tuple(row)}")
    return "\n".join(lines)


def assert_no_trace(store: SqlStore) -> None:
    found = dump(store)
    for needle in NEEDLES:
        assert needle not in found, f"{needle!r} is back in the database"


def steps(store: SqlStore, call_id: int) -> list[tuple[str, str]]:
    return [(event.step, event.outcome) for event in store.events_for(call_id)]


# -- retention keeps the ledgers ------------------------------------------------------------


def test_retention_keeps_forget_and_source_delete_events_however_old(
    sql_store: SqlStore,
) -> None:
    call_id = uploaded(sql_store, "c-1")
    old = LONG_AGO + timedelta(days=1)
    for step, outcome in [
        ("poll", "inserted"),
        ("download", "ok"),
        ("upload", "ok"),
        ("forget", "erased"),
        ("source_delete", "deleted"),
        ("source_delete", "refused"),
        ("poll", "metadata changed"),
    ]:
        seed_event(sql_store, call_id, step=step, outcome=outcome, at=old)
    recent = seed_event(sql_store, call_id, step="poll", outcome="unchanged", at=NOW)

    report = run_retention(RULES, sql_store, NOW)

    assert report.events_deleted == 3
    assert steps(sql_store, call_id) == [
        ("upload", "ok"),
        ("forget", "erased"),
        ("source_delete", "deleted"),
        ("source_delete", "refused"),
        (recent.step, recent.outcome),
    ]
    # Years on, the ledger is still there.
    run_retention(RULES, sql_store, NOW + timedelta(days=3650))
    assert [s for s, _ in steps(sql_store, call_id)] == [
        "upload",
        "forget",
        "source_delete",
        "source_delete",
    ]


def test_a_forgotten_unmapped_record_outlives_unmapped_days_and_is_not_kept_again(
    sql_store: SqlStore,
) -> None:
    stranger = unmapped_draft(name="Ann Lee", phone="+15551234567", index=1)
    sql_store.ingest_page("generic", [], LONG_AGO, unmapped=[unmapped_draft(), stranger])
    report = forget_now(sql_store, ForgetSelection(contact_phone=PHONE), LONG_AGO)
    assert report.unmapped_emptied == 1
    assert_no_trace(sql_store)

    # Past unmapped_days twice over: the stranger's record expires, then its marker goes;
    # the forgotten one stays.
    assert run_retention(RULES, sql_store, NOW).unmapped_expired == {"age": 1}
    assert run_retention(RULES, sql_store, NOW + timedelta(days=90)).unmapped_deleted == 1

    [kept] = sql_store.unmapped_records("generic", resolved=None, limit=10)
    assert kept.forgotten_at is not None and kept.raw == ""
    # The vendor lists the record again: it is recognised, not kept again with its text.
    sql_store.ingest_page("generic", [], NOW + timedelta(days=91), unmapped=[unmapped_draft()])
    [again] = sql_store.unmapped_records("generic", resolved=None, limit=10)
    assert again.id == kept.id and again.raw == ""
    assert sql_store.unmapped_to_remap("generic", NOW + timedelta(days=200)) == []
    assert_no_trace(sql_store)


# -- a forget and a prune, in either order -----------------------------------------------------


def test_a_pruned_call_can_still_be_forgotten_and_nothing_comes_back(
    sql_store: SqlStore,
) -> None:
    call_id = uploaded(sql_store, "c-1")
    assert run_retention(RULES, sql_store, NOW).calls_pruned == 1
    pruned = sql_store.get_call(call_id)
    assert pruned is not None and pruned.pruned_at == NOW and pruned.contact_name is None

    later = NOW + timedelta(hours=1)
    report = forget_now(sql_store, ForgetSelection(references=("c-1",)), later)

    [outcome] = report.outcomes
    # What retention left that a forget erases: the URLs (they may carry a signature).
    assert outcome.erased_columns == ("recording_url",)
    call = sql_store.get_call(call_id)
    assert call is not None
    assert (call.state, call.siro_recording_id) == (CallState.UPLOADED, "siro-c-1")
    assert (call.forgotten_at, call.pruned_at) == (later, NOW)
    assert (call.contact_name, call.contact_phone, call.title, call.raw) == (None,) * 4
    # Listed again: neither retention's nor the forget's tombstone lets the data back.
    sql_store.ingest_page("generic", [listing("c-1")], later + timedelta(minutes=5))
    assert_no_trace(sql_store)
    assert ("forget", "erased") in steps(sql_store, call_id)


def test_a_forgotten_call_is_pruned_without_error_and_keeps_its_tombstone(
    sql_store: SqlStore,
) -> None:
    uploaded_id = uploaded(sql_store, "c-up")
    waiting = seed_call(
        sql_store,
        "c-wait",
        state=CallState.PENDING,
        at=LONG_AGO,
        contact_name=NAME,
        contact_phone=PHONE,
        raw={"call_id": "c-wait", "contact_phone": PHONE},
    )
    forgot_at = LONG_AGO + timedelta(days=1)
    report = forget_now(sql_store, ForgetSelection(contact_phone=PHONE), forgot_at)
    assert len(report.outcomes) == 2
    assert_no_trace(sql_store)

    pruned = run_retention(RULES, sql_store, NOW)

    # Both are finished now (uploaded; skipped as forgotten): retention marks them pruned.
    assert pruned.calls_pruned == 2
    for call_id in (uploaded_id, waiting.id):
        call = sql_store.get_call(call_id)
        assert call is not None
        assert (call.forgotten_at, call.pruned_at) == (forgot_at, NOW)
        assert any(s == "forget" for s, _ in steps(sql_store, call_id))
    assert sql_store.get_call(waiting.id).state is CallState.SKIPPED  # type: ignore[union-attr]
    assert sql_store.status(NOW).forgotten == {"generic": 2}
    # Listed again after both: still a tombstone, still nothing personal.
    sql_store.ingest_page(
        "generic", [listing("c-up"), listing("c-wait")], NOW + timedelta(minutes=1)
    )
    assert_no_trace(sql_store)
    assert sql_store.get_call(waiting.id).state is CallState.SKIPPED  # type: ignore[union-attr]


# -- deletion at the source of a forgotten call ----------------------------------------------


class Vendor:
    """A vendor's delete endpoint: what it was asked, in order."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def delete_recording(self, call: RecordingLocator) -> SourceDeletion:
        self.asked.append(call.recording_id or call.provider_call_id)
        return SourceDeletion("deleted", 204, "deleted")


def deletion_job(store: SqlStore, siro: InMemorySiro, vendor: Vendor, now: datetime) -> Any:
    return SourceDeletionJob(
        params=SourceDeletionParams(
            enabled=True,
            grace_by_provider={"generic": GRACE},
            batch_size=10,
            max_attempts=3,
            retry_base=timedelta(minutes=5),
            retry_max=timedelta(hours=1),
        ),
        store=SqlSourceDeletions(store.engine),
        siro=siro,
        deleters={"generic": vendor},
        owner="test-owner",
        clock=lambda: now,
    )


def in_siro(keys: Iterable[str]) -> InMemorySiro:
    siro = InMemorySiro()
    for key in keys:
        siro.add_recording(
            RecordingSummary(id=f"siro-{key}", processing_status="complete", deleted=False)
        )
    return siro


def test_an_uploaded_call_forgotten_later_is_still_deleted_at_the_source_once(
    sql_store: SqlStore,
) -> None:
    uploaded_at = NOW - GRACE - timedelta(hours=1)
    forgotten = uploaded(sql_store, "c-gone", at=uploaded_at)
    within_grace = uploaded(sql_store, "c-young", at=NOW - timedelta(days=1))
    forget_now(sql_store, ForgetSelection(contact_phone=PHONE), NOW - timedelta(hours=2))
    assert_no_trace(sql_store)
    vendor = Vendor()
    siro = in_siro(["c-gone", "c-young"])

    report = deletion_job(sql_store, siro, vendor, NOW).run_once()

    # The subject asked for erasure: the recording goes at the vendor too, under the same
    # rules as any other (Siro read back, grace passed); the forget did not skip the grace.
    assert report.deleted == 1
    assert vendor.asked == ["c-gone"]
    assert [o for s, o in steps(sql_store, forgotten) if s == "source_delete"] == ["deleted"]
    assert not [s for s, _ in steps(sql_store, within_grace) if s == "source_delete"]
    assert_no_trace(sql_store)
    # Never twice, and retention keeps the record of it.
    assert deletion_job(sql_store, siro, vendor, NOW + timedelta(days=1)).run_once().deleted == 0
    run_retention(RULES, sql_store, NOW + timedelta(days=400))
    assert [o for s, o in steps(sql_store, forgotten) if s == "source_delete"] == ["deleted"]
    assert vendor.asked == ["c-gone"]


def test_a_call_deleted_at_the_source_can_then_be_forgotten(sql_store: SqlStore) -> None:
    call_id = uploaded(sql_store, "c-1", at=NOW - GRACE - timedelta(hours=1))
    vendor = Vendor()
    assert deletion_job(sql_store, in_siro(["c-1"]), vendor, NOW).run_once().deleted == 1

    report = forget_now(sql_store, ForgetSelection(references=("c-1",)), NOW)

    assert len(report.outcomes) == 1
    assert_no_trace(sql_store)
    assert [s for s, _ in steps(sql_store, call_id)][-2:] == ["source_delete", "forget"]


# -- the audit export of a pruned call ---------------------------------------------------------


def export(store: SqlStore, *arguments: str) -> Result:
    env = {"SIRO_POLLER_DATABASE__URL": database_url(store.engine)}
    return CliRunner().invoke(main, ["calls", "export", *arguments], env=env)


def test_calls_export_of_a_pruned_call_says_it_was_pruned_and_keeps_its_trail(
    sql_store: SqlStore,
) -> None:
    call_id = uploaded(sql_store, "c-1")
    seed_event(sql_store, call_id, step="upload", outcome="ok", at=LONG_AGO)
    run_retention(RULES, sql_store, NOW)

    since = (LONG_AGO - timedelta(days=1)).isoformat()
    plain = export(sql_store, "--since", since)
    personal = export(sql_store, "--since", since, "--include-personal")

    assert plain.exit_code == 0 and personal.exit_code == 0, plain.output + personal.output
    [document] = [json.loads(line) for line in plain.stdout.splitlines()]
    assert document["provider_call_id"] == "c-1"
    assert document["siro_recording_id"] == "siro-c-1"
    assert document["pruned_at"] == NOW.isoformat()
    assert document["forgotten"] is False
    assert [e["step"] for e in document["events"]] == ["upload"]
    [with_personal] = [json.loads(line) for line in personal.stdout.splitlines()]
    assert (with_personal["contact_name"], with_personal["contact_phone"]) == (None, None)
    csv_export = export(sql_store, "--since", since, "--format", "csv")
    assert csv_export.exit_code == 0, csv_export.output
    assert "pruned_at" in csv_export.stdout.splitlines()[0]
    for needle in NEEDLES:
        assert needle not in plain.stdout + personal.stdout + csv_export.stdout


def test_a_forget_says_what_becomes_of_the_recording_at_the_phone_system(
    sql_store: SqlStore,
) -> None:
    uploaded(sql_store, "c-1")
    env = {
        "SIRO_POLLER_DATABASE__URL": database_url(sql_store.engine),
        "SIRO_POLLER_PROVIDER__BASE_URL": "http://127.0.0.1:9",
    }

    result = CliRunner().invoke(main, ["calls", "forget", "--call-id", "c-1", "--yes"], env=env)

    assert result.exit_code == 0, result.output
    assert "what the phone system still holds:" in result.stdout
    assert "generic: the 1 recording(s) stay at the phone system" in result.stdout
    # With deletion at the source on for the provider, the job does it when the rules allow.
    [outcome] = forget_now(sql_store, ForgetSelection(references=("c-1",)), NOW).outcomes
    [line] = source_instructions([outcome], enabled=True, grace_by_provider={"generic": GRACE})
    assert line.startswith("generic: deletion at the source deletes the 1 recording(s)")
    assert "grace 7 days" in line
    assert source_instructions([outcome], enabled=False, grace_by_provider={"generic": GRACE})[
        0
    ].endswith("if the request covers them.")
