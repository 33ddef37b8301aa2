"""The polling half of the store contract, on the in-memory fake, SQLite and PostgreSQL alike."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy import Engine, text

from poller.adapters.prometheus_metrics import StateTableCollector
from poller.adapters.sql.store import SqlStore
from poller.domain.audio import AudioFacts
from poller.domain.call_record import CallRecord
from poller.domain.filters import SkipReason, SkipVerdict
from poller.domain.ingest import IngestAction, ListedCall
from poller.domain.raw_record import fingerprint
from poller.domain.records import EventDraft, UnmappedDraft
from poller.domain.siro import AudioFormat
from poller.domain.states import CallState, Direction, RecordingState
from tests.seed import AnyStore, seed_call

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
STARTED = NOW - timedelta(minutes=30)
WAIT_MESSAGE = "no recording 48 h after the call was first listed"


def record(call_id: str, **fields: Any) -> CallRecord:
    values: dict[str, Any] = {
        "provider_call_id": call_id,
        "started_at": STARTED,
        "recording_state": RecordingState.READY,
        "recording_url": f"https://voip.example.com/recordings/{call_id}.mp3",
        "rep_email": "rep@yourcompany.com",
        "contact_name": "Jane Smith",
        "raw": {"call_id": call_id},
        **fields,
    }
    return CallRecord(**values)


def listed(*records: CallRecord, skip: SkipVerdict | None = None) -> list[ListedCall]:
    return [ListedCall(r, skip) for r in records]


def by_id(store: AnyStore, call_id: str) -> Any:
    [call] = store.find_calls(call_id)
    return call


def test_new_calls_are_inserted_due_waiting_or_skipped(any_store: AnyStore) -> None:
    too_short = SkipVerdict(SkipReason.TOO_SHORT, "call lasted 3 s")
    changes = any_store.ingest_page(
        "generic",
        [
            *listed(record("ready")),
            *listed(record("waiting", recording_state=RecordingState.PENDING, recording_url=None)),
            *listed(record("short", duration_seconds=3), skip=too_short),
            *listed(record("none", recording_state=RecordingState.NONE, recording_url=None)),
        ],
        NOW,
    )
    assert [(c.provider_call_id, c.action) for c in changes] == [
        ("ready", IngestAction.INSERTED),
        ("waiting", IngestAction.INSERTED),
        ("short", IngestAction.SKIPPED),
        ("none", IngestAction.SKIPPED),
    ]
    assert all(c.call_id is not None for c in changes)

    ready = by_id(any_store, "ready")
    assert (ready.state, ready.next_attempt_at, ready.attempts) == (CallState.PENDING, NOW, 0)
    assert ready.recording_state == "ready"
    assert ready.started_at == STARTED and ready.started_at.tzinfo is not None
    assert ready.rep_email == "rep@yourcompany.com"
    assert ready.raw == {"call_id": "ready"}
    assert (ready.created_at, ready.updated_at) == (NOW, NOW)

    waiting = by_id(any_store, "waiting")
    assert (waiting.state, waiting.next_attempt_at) == (CallState.PENDING, None)

    short = by_id(any_store, "short")
    assert (short.state, short.error_kind, short.last_error) == (
        CallState.SKIPPED,
        "too_short",
        "call lasted 3 s",
    )
    assert short.next_attempt_at is None
    none = by_id(any_store, "none")
    assert (none.state, none.error_kind) == (CallState.SKIPPED, "no_recording")

    [event] = any_store.events_for(short.id)
    assert (event.step, event.outcome, event.from_state, event.to_state) == (
        "poll",
        "skipped",
        None,
        "skipped",
    )
    [event] = any_store.events_for(ready.id)
    assert (event.outcome, event.to_state, event.message) == (
        "listed",
        "pending",
        "listed; recording ready",
    )
    assert any_store.status(NOW).due_now == 1


def test_listing_the_same_calls_again_changes_nothing(any_store: AnyStore) -> None:
    page = listed(record("a"), record("b", recording_state=RecordingState.PENDING))
    any_store.ingest_page("generic", page, NOW)
    later = NOW + timedelta(minutes=5)
    changes = any_store.ingest_page("generic", page, later)
    assert [c.action for c in changes] == [IngestAction.UNCHANGED] * 2
    a = by_id(any_store, "a")
    assert a.updated_at == NOW
    assert len(any_store.events_for(a.id)) == 1
    assert len(any_store.list_calls()) == 2


def test_a_call_listed_twice_in_one_page_is_one_row_with_the_last_sighting(
    any_store: AnyStore,
) -> None:
    changes = any_store.ingest_page(
        "generic", listed(record("a", contact_name="Old"), record("a", contact_name="New")), NOW
    )
    assert [c.action for c in changes] == [IngestAction.INSERTED]
    assert by_id(any_store, "a").contact_name == "New"


def test_changed_metadata_is_updated_with_an_event_naming_the_columns(
    any_store: AnyStore,
) -> None:
    any_store.ingest_page("generic", listed(record("a")), NOW)
    later = NOW + timedelta(minutes=5)
    [change] = any_store.ingest_page(
        "generic",
        listed(record("a", contact_name="Jane Doe", direction=Direction.INBOUND)),
        later,
    )
    assert change.action is IngestAction.UPDATED
    assert set(change.changed) == {"contact_name", "direction"}
    call = by_id(any_store, "a")
    assert (call.contact_name, call.direction, call.updated_at) == ("Jane Doe", "inbound", later)
    assert (call.state, call.next_attempt_at) == (CallState.PENDING, NOW)  # untouched
    event = any_store.events_for(call.id)[-1]
    assert (event.outcome, event.from_state, event.to_state) == ("updated", "pending", "pending")
    assert event.message == "metadata changed: direction, contact_name"


def test_a_raw_only_change_is_stored_quietly(any_store: AnyStore) -> None:
    any_store.ingest_page("generic", listed(record("a")), NOW)
    [change] = any_store.ingest_page(
        "generic", listed(record("a", raw={"call_id": "a", "views": 2})), NOW + timedelta(1)
    )
    assert change.action is IngestAction.UPDATED and change.changed == ("raw",)
    call = by_id(any_store, "a")
    assert call.raw == {"call_id": "a", "views": 2}
    assert len(any_store.events_for(call.id)) == 1


def test_a_waiting_call_becomes_due_when_its_recording_is_ready(any_store: AnyStore) -> None:
    waiting = record("a", recording_state=RecordingState.PENDING, recording_url=None)
    any_store.ingest_page("generic", listed(waiting), NOW)
    later = NOW + timedelta(minutes=10)
    [change] = any_store.ingest_page("generic", listed(record("a")), later)
    assert change.action is IngestAction.BECAME_DUE
    call = by_id(any_store, "a")
    assert (call.state, call.next_attempt_at) == (CallState.PENDING, later)
    assert call.recording_url == "https://voip.example.com/recordings/a.mp3"
    event = any_store.events_for(call.id)[-1]
    assert (event.outcome, event.from_state, event.to_state) == (
        "recording_ready",
        "pending",
        "pending",
    )
    assert any_store.status(later).due_now == 1


def test_rows_never_move_backwards(any_store: AnyStore) -> None:
    seed_call(any_store, "up", state=CallState.UPLOADED, siro_recording_id="r", uploaded_at=NOW)
    seed_call(any_store, "down", state=CallState.DOWNLOADED, next_attempt_at=NOW)
    seed_call(any_store, "failed", state=CallState.FAILED, error_kind="not_audio")
    seed_call(any_store, "skipped", state=CallState.SKIPPED, error_kind="no_recording")
    seed_call(
        any_store,
        "leased",
        next_attempt_at=NOW,
        lease_owner="worker-1",
        lease_expires_at=NOW + timedelta(minutes=30),
    )
    keys = ["up", "down", "failed", "skipped", "leased"]
    deny = SkipVerdict(SkipReason.REP_DENIED, "rep matches poll.rep_deny")
    gone = [record(key, recording_state=RecordingState.NONE, contact_name="X") for key in keys]
    changes = any_store.ingest_page("generic", listed(*gone, skip=deny), NOW)
    assert {c.action for c in changes} == {IngestAction.UPDATED}
    for key, state in zip(
        keys,
        [
            CallState.UPLOADED,
            CallState.DOWNLOADED,
            CallState.FAILED,
            CallState.SKIPPED,
            CallState.PENDING,
        ],
        strict=True,
    ):
        call = by_id(any_store, key)
        assert call.state == state, key
        assert call.contact_name == "X"
    assert by_id(any_store, "failed").error_kind == "not_audio"
    assert by_id(any_store, "leased").lease_owner == "worker-1"


def test_a_not_started_row_can_still_be_skipped(any_store: AnyStore) -> None:
    any_store.ingest_page("generic", listed(record("a")), NOW)
    verdict = SkipVerdict(SkipReason.TOO_SHORT, "call lasted 2 s")
    [change] = any_store.ingest_page(
        "generic", listed(record("a", duration_seconds=2), skip=verdict), NOW + timedelta(1)
    )
    assert (change.action, change.from_state, change.to_state) == (
        IngestAction.SKIPPED,
        CallState.PENDING,
        CallState.SKIPPED,
    )
    call = by_id(any_store, "a")
    assert (call.state, call.error_kind, call.next_attempt_at) == (
        CallState.SKIPPED,
        "too_short",
        None,
    )


def test_the_same_call_id_at_two_providers_is_two_rows(any_store: AnyStore) -> None:
    any_store.ingest_page("acme", listed(record("c-1")), NOW)
    [change] = any_store.ingest_page("globex", listed(record("c-1")), NOW)
    assert change.action is IngestAction.INSERTED
    assert sorted(call.provider for call in any_store.find_calls("c-1")) == ["acme", "globex"]


def test_a_dry_run_plans_without_writing(any_store: AnyStore) -> None:
    any_store.ingest_page(
        "generic", listed(record("known", recording_state=RecordingState.PENDING)), NOW
    )
    changes = any_store.ingest_page(
        "generic", listed(record("known"), record("new")), NOW, dry_run=True
    )
    assert [(c.provider_call_id, c.action) for c in changes] == [
        ("known", IngestAction.BECAME_DUE),
        ("new", IngestAction.INSERTED),
    ]
    assert changes[1].call_id is None
    assert [call.provider_call_id for call in any_store.list_calls()] == ["known"]
    assert by_id(any_store, "known").next_attempt_at is None


def test_ingesting_an_empty_page_is_harmless(any_store: AnyStore) -> None:
    assert any_store.ingest_page("generic", [], NOW) == []


def test_the_cursor_only_moves_forward(any_store: AnyStore) -> None:
    assert any_store.get_cursor("generic") is None
    cursor = any_store.advance_cursor("generic", NOW, NOW)
    assert (cursor.provider, cursor.cursor_value, cursor.last_polled_at) == ("generic", NOW, NOW)
    later = NOW + timedelta(minutes=5)
    cursor = any_store.advance_cursor("generic", NOW - timedelta(hours=1), later)
    assert (cursor.cursor_value, cursor.last_polled_at) == (NOW, later)
    cursor = any_store.advance_cursor("generic", later, later)
    assert cursor.cursor_value == later
    stored = any_store.get_cursor("generic")
    assert stored is not None and stored.cursor_value == later
    assert stored.cursor_value.tzinfo is not None
    assert any_store.get_cursor("other") is None


def test_poll_results_keep_the_error_until_a_clean_cycle(any_store: AnyStore) -> None:
    any_store.record_poll_result("generic", NOW, "page 3: HTTP 500")
    cursor = any_store.get_cursor("generic")
    assert cursor is not None
    assert (cursor.cursor_value, cursor.last_error, cursor.last_error_at) == (
        None,
        "page 3: HTTP 500",
        NOW,
    )
    assert cursor.last_success_at is None
    later = NOW + timedelta(minutes=5)
    any_store.advance_cursor("generic", NOW, later)
    any_store.record_poll_result("generic", later, None)
    cursor = any_store.get_cursor("generic")
    assert cursor is not None
    assert dataclasses.asdict(cursor) == {
        "provider": "generic",
        "cursor_value": NOW,
        "last_polled_at": later,
        "last_success_at": later,
        "last_error": None,
        "last_error_at": None,
        "waiting_rechecked_at": None,
    }
    assert any_store.cursors() == [cursor]


def test_calls_waiting_too_long_are_skipped_as_no_recording(any_store: AnyStore) -> None:
    long_ago = NOW - timedelta(hours=49)
    seed_call(any_store, "old-waiting", at=long_ago, recording_state="pending")
    seed_call(any_store, "old-no-state", at=long_ago)
    seed_call(any_store, "recent-waiting", at=NOW - timedelta(hours=47), recording_state="pending")
    seed_call(any_store, "old-due", at=long_ago, next_attempt_at=NOW, recording_state="ready")
    seed_call(any_store, "old-other-provider", provider="acme", at=long_ago)
    seed_call(
        any_store,
        "old-uploaded",
        at=long_ago,
        state=CallState.UPLOADED,
        siro_recording_id="r",
        uploaded_at=NOW,
    )
    seed_call(
        any_store,
        "old-leased",
        at=long_ago,
        next_attempt_at=None,
        lease_owner="w",
        lease_expires_at=NOW + timedelta(minutes=1),
    )
    cutoff = NOW - timedelta(hours=48)

    planned = any_store.expire_waiting("generic", cutoff, NOW, message=WAIT_MESSAGE, dry_run=True)
    assert planned == ["old-waiting", "old-no-state"]
    assert by_id(any_store, "old-waiting").state is CallState.PENDING

    expired = any_store.expire_waiting("generic", cutoff, NOW, message=WAIT_MESSAGE)
    assert expired == ["old-waiting", "old-no-state"]
    call = by_id(any_store, "old-waiting")
    assert (call.state, call.error_kind, call.last_error, call.updated_at) == (
        CallState.SKIPPED,
        "no_recording",
        WAIT_MESSAGE,
        NOW,
    )
    [event] = any_store.events_for(call.id)
    assert (event.step, event.outcome, event.from_state, event.to_state) == (
        "poll",
        "skipped",
        "pending",
        "skipped",
    )
    for untouched in ("recent-waiting", "old-due", "old-leased"):
        assert by_id(any_store, untouched).state is CallState.PENDING
    assert any_store.expire_waiting("generic", cutoff, NOW, message=WAIT_MESSAGE) == []


# -- records that failed mapping --------------------------------------------------------------


def unmapped(raw: str, *, page: int = 1, index: int = 0, reason: str = "no call id") -> Any:
    return UnmappedDraft(
        window_start=STARTED,
        window_end=NOW,
        page=page,
        item_index=index,
        reason=reason,
        raw=raw,
        raw_sha256=fingerprint(raw),
    )


def test_unmapped_records_are_kept_with_the_page_and_count_each_sighting(
    any_store: AnyStore,
) -> None:
    first = unmapped('{"start":"x"}', index=3)
    other = unmapped('{"start":"y"}', index=4, reason="bad time")
    changes = any_store.ingest_page("generic", listed(record("good")), NOW, unmapped=[first, other])
    assert [c.provider_call_id for c in changes] == ["good"]
    rows = any_store.unmapped_records("generic")
    assert [(r.raw, r.page, r.item_index, r.reason, r.times_seen) for r in rows] == [
        ('{"start":"x"}', 1, 3, "no call id", 1),
        ('{"start":"y"}', 1, 4, "bad time", 1),
    ]
    assert rows[0].first_seen_at == rows[0].last_seen_at == NOW
    assert (rows[0].window_start, rows[0].window_end) == (STARTED, NOW)
    assert rows[0].resolved_at is None and rows[0].resolved_call_id is None

    # The next cycle lists the same record again, elsewhere and for another reason: one row.
    later = NOW + timedelta(minutes=5)
    moved = unmapped('{"start":"x"}', page=2, index=0, reason="no start time")
    any_store.ingest_page("generic", [], later, unmapped=[moved, moved])
    [again, _other] = any_store.unmapped_records("generic")
    assert (again.id, again.page, again.item_index) == (rows[0].id, 2, 0)
    assert (again.reason, again.times_seen) == ("no start time", 2)
    assert (again.first_seen_at, again.last_seen_at) == (NOW, later)
    assert any_store.status(later).unmapped == {"generic": 2}


def test_an_unmapped_record_resolves_as_the_call_it_maps_to(any_store: AnyStore) -> None:
    any_store.ingest_page("generic", [], NOW, unmapped=[unmapped('{"id":"late"}')])
    [row] = any_store.unmapped_records("generic")
    later = NOW + timedelta(hours=3)
    [change] = any_store.ingest_page(
        "generic", listed(record("late")), later, resolving={row.id: "late"}
    )
    assert change.action is IngestAction.INSERTED
    assert any_store.unmapped_records("generic") == []
    [resolved] = any_store.unmapped_records("generic", resolved=True)
    assert (resolved.resolved_at, resolved.resolved_call_id) == (later, change.call_id)
    assert any_store.status(later).unmapped == {}

    # Seen failing again (the mapping broke once more): unresolved again.
    any_store.ingest_page("generic", [], later, unmapped=[unmapped('{"id":"late"}')])
    [row] = any_store.unmapped_records("generic")
    assert (row.resolved_at, row.resolved_call_id, row.times_seen) == (None, None, 2)


def test_unmapped_records_are_per_provider_and_page_through_by_id(any_store: AnyStore) -> None:
    drafts = [unmapped(f'{{"n":{n}}}', index=n) for n in range(5)]
    any_store.ingest_page("generic", [], NOW, unmapped=drafts)
    any_store.ingest_page("other", [], NOW, unmapped=[unmapped('{"n":0}')])
    first = any_store.unmapped_records("generic", limit=2)
    rest = any_store.unmapped_records("generic", after_id=first[-1].id)
    assert [r.item_index for r in first + rest] == [0, 1, 2, 3, 4]
    assert len(any_store.unmapped_records(None)) == 6
    assert any_store.status(NOW).unmapped == {"generic": 5, "other": 1}


def test_a_dry_run_keeps_no_unmapped_record(any_store: AnyStore) -> None:
    any_store.ingest_page("generic", [], NOW, dry_run=True, unmapped=[unmapped("{}")])
    assert any_store.unmapped_records(None, resolved=None) == []


def test_the_docs_unmapped_queries_run_on_both_backends(engine: Engine) -> None:
    page = Path(__file__).resolve().parent.parent / "docs" / "reference" / "state-database.md"
    after = page.read_text(encoding="utf-8").split("## Records the mapping could not read", 1)[1]
    section = after.split("\n## ", 1)[0]
    [block] = re.findall(r"```sql\n(.*?)```", section, flags=re.DOTALL)
    queries = [query.strip() for query in block.split(";") if query.strip()]
    store = SqlStore(engine)
    store.ingest_page(
        "generic",
        [],
        NOW,
        unmapped=[unmapped('{"a":1}'), unmapped('{"a":2}'), unmapped('{"a":3}', reason="bad")],
    )
    [first, *_rest] = store.unmapped_records("generic")
    [change] = store.ingest_page("generic", listed(record("c1")), NOW, resolving={first.id: "c1"})

    with engine.connect() as connection:
        results = [connection.execute(text(query)).all() for query in queries]

    assert len(results) == 3
    assert sorted((row.provider, row.reason, row.records) for row in results[0]) == [
        ("generic", "bad", 1),
        ("generic", "no call id", 1),
    ]
    assert [row.raw for row in results[1]] == ['{"a":2}', '{"a":3}']
    assert [(row.call_id, row.provider_call_id) for row in results[2]] == [(change.call_id, "c1")]


def test_unmapped_records_are_a_metric_per_provider(any_store: AnyStore) -> None:
    any_store.ingest_page("generic", [], NOW, unmapped=[unmapped("{}"), unmapped("[]")])
    registry = CollectorRegistry()
    registry.register(StateTableCollector(any_store, lambda: NOW))
    scraped = generate_latest(registry).decode()
    assert 'siro_poller_unmapped_records{provider="generic"} 2.0' in scraped


def test_a_call_another_poller_inserted_meanwhile_is_planned_again_against_its_row(
    sql_store: SqlStore, monkeypatch: Any
) -> None:
    """Two pollers listing the same new call: the second finds the first one's row when it
    inserts, and updates that row instead (one row, one `listed` event, no second insert)."""
    first = sql_store.ingest_page("generic", [ListedCall(record("c1"))], NOW)
    (row_id,) = [change.call_id for change in first]
    # The second poller read the page before the first committed: it saw no row.
    real_existing = sql_store._existing
    reads: list[int] = []

    def stale_then_real(*args: Any, **kwargs: Any) -> Any:
        reads.append(1)
        return {} if len(reads) == 1 else real_existing(*args, **kwargs)

    monkeypatch.setattr(sql_store, "_existing", stale_then_real)
    later = NOW + timedelta(minutes=1)
    moved = record("c1", contact_name="Jane Smith-Jones")
    (change,) = sql_store.ingest_page("generic", [ListedCall(moved)], later)

    assert len(reads) == 2
    assert (change.action, change.call_id) == (IngestAction.UPDATED, row_id)
    (row,) = sql_store.find_calls("c1")
    assert row.id == row_id and row.contact_name == "Jane Smith-Jones"
    outcomes = [event.outcome for event in sql_store.events_for(row_id)]
    assert outcomes == ["listed", "updated"]


def _upload_with_measured_duration(store: AnyStore, call_id: str, seconds: float) -> None:
    """What the worker does to a call whose listing had no duration: the audio's length fills
    it in, then the upload."""
    claimed = store.claim_due("worker-1", NOW, NOW + timedelta(minutes=30), limit=10)
    (call,) = [c for c in claimed if c.provider_call_id == call_id]
    audio = AudioFacts("mp3", "mp3", seconds, 1, 8000, AudioFormat.MP3)
    store.mark_downloaded(
        call.id,
        "worker-1",
        NOW,
        audio_format="mp3",
        size_bytes=1000,
        sha256="0" * 64,
        spool_path="spool/a.mp3",
        event=EventDraft("download", "ok"),
        audio=audio,
        provider_duration_seconds=call.duration_seconds,
    )
    store.mark_uploaded(
        call.id,
        "worker-1",
        NOW,
        siro_recording_id="rec-1",
        siro_file_url=None,
        event=EventDraft("upload", "ok"),
    )


def test_a_poll_after_upload_keeps_the_duration_measured_from_the_audio(
    any_store: AnyStore,
) -> None:
    any_store.ingest_page("generic", listed(record("a")), NOW)
    _upload_with_measured_duration(any_store, "a", 61.6)
    assert by_id(any_store, "a").duration_seconds == 62

    [change] = any_store.ingest_page("generic", listed(record("a")), NOW + timedelta(minutes=5))

    assert change.action is IngestAction.UNCHANGED
    call = by_id(any_store, "a")
    assert (call.state, call.duration_seconds) == (CallState.UPLOADED, 62)
    messages = [event.message or "" for event in any_store.events_for(call.id)]
    assert not [message for message in messages if "metadata changed" in message]


def test_a_duration_the_provider_reports_later_replaces_the_measured_one_with_an_event(
    any_store: AnyStore,
) -> None:
    any_store.ingest_page("generic", listed(record("a")), NOW)
    _upload_with_measured_duration(any_store, "a", 61.6)

    later = NOW + timedelta(minutes=5)
    [change] = any_store.ingest_page("generic", listed(record("a", duration_seconds=60)), later)
    [again] = any_store.ingest_page("generic", listed(record("a")), later + timedelta(1))

    assert change.action is IngestAction.UPDATED and change.changed == ("duration_seconds",)
    assert again.action is IngestAction.UNCHANGED
    call = by_id(any_store, "a")
    assert call.duration_seconds == 60
    changed = [e.message for e in any_store.events_for(call.id) if e.outcome == "updated"]
    assert changed == ["metadata changed: duration_seconds"]


def test_a_provider_duration_that_changes_is_updated_and_logged_in_any_state(
    any_store: AnyStore,
) -> None:
    seed_call(
        any_store,
        "failed",
        state=CallState.FAILED,
        error_kind="not_audio",
        started_at=STARTED,
        duration_seconds=30,
    )
    [change] = any_store.ingest_page("generic", listed(record("failed", duration_seconds=31)), NOW)
    assert change.action is IngestAction.UPDATED and "duration_seconds" in change.changed
    call = by_id(any_store, "failed")
    assert (call.state, call.duration_seconds) == (CallState.FAILED, 31)
    assert "duration_seconds" in (any_store.events_for(call.id)[-1].message or "")
