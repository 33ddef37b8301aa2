"""The store contract, run against the in-memory fake, SQLite and PostgreSQL alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from poller.domain.records import BackfillCounts, PollCursor
from poller.domain.states import CallState
from poller.domain.transitions import RequeueSelection
from poller.ports.store import NotReplayable, NotRequeueable
from tests.seed import AnyStore, seed_call, seed_cursor, seed_event

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def test_an_empty_store_reports_zero_everywhere(any_store: AnyStore) -> None:
    summary = any_store.status(NOW)
    assert summary.counts == {s.value: 0 for s in CallState}
    assert summary.due_now == 0
    assert summary.oldest_due_at is None
    assert summary.cursors == []
    assert any_store.list_calls() == []


def test_status_counts_states_and_finds_what_is_due(any_store: AnyStore) -> None:
    seed_call(any_store, "due-1", next_attempt_at=NOW - timedelta(minutes=30))
    seed_call(any_store, "due-2", state=CallState.DOWNLOADED, next_attempt_at=NOW)
    seed_call(any_store, "waiting-for-recording")  # next_attempt_at NULL: nothing to do yet
    seed_call(any_store, "later", next_attempt_at=NOW + timedelta(minutes=5))
    seed_call(
        any_store,
        "leased",
        next_attempt_at=NOW - timedelta(hours=1),
        lease_owner="worker-a",
        lease_expires_at=NOW + timedelta(minutes=10),
    )
    seed_call(
        any_store,
        "lease-ran-out",
        next_attempt_at=NOW - timedelta(hours=2),
        lease_owner="worker-b",
        lease_expires_at=NOW - timedelta(seconds=1),
    )
    seed_call(
        any_store,
        "done",
        state=CallState.UPLOADED,
        siro_recording_id="rec-1",
        uploaded_at=NOW,
        next_attempt_at=NOW - timedelta(days=1),
    )
    seed_call(any_store, "broken", state=CallState.FAILED, next_attempt_at=NOW - timedelta(days=2))

    summary = any_store.status(NOW)

    assert summary.counts == {
        "pending": 5,
        "downloaded": 1,
        "uploaded": 1,
        "failed": 1,
        "skipped": 0,
    }
    assert summary.due_now == 3  # due-1, due-2 and the row whose lease ran out
    assert summary.oldest_due_at == NOW - timedelta(hours=2)


def test_list_calls_is_newest_first_and_filters(any_store: AnyStore) -> None:
    early = seed_call(any_store, "a", started_at=NOW - timedelta(days=3))
    failed = seed_call(any_store, "b", state=CallState.FAILED, started_at=NOW - timedelta(hours=2))
    late = seed_call(any_store, "c", started_at=NOW - timedelta(hours=1))

    assert [c.id for c in any_store.list_calls()] == [late.id, failed.id, early.id]
    assert [c.id for c in any_store.list_calls(state=CallState.FAILED)] == [failed.id]
    recent = any_store.list_calls(since=NOW - timedelta(hours=2))
    assert [c.id for c in recent] == [late.id, failed.id]
    assert [c.id for c in any_store.list_calls(limit=1)] == [late.id]


def test_times_come_back_as_the_same_instant_in_utc(any_store: AnyStore) -> None:
    pacific = timezone(timedelta(hours=-8))
    started = datetime(2026, 11, 23, 22, 15, 30, 123456, tzinfo=pacific)
    call = seed_call(any_store, "tz", started_at=started)

    loaded = any_store.get_call(call.id)

    assert loaded is not None and loaded.started_at is not None
    assert loaded.started_at == started
    assert loaded.started_at.utcoffset() == timedelta(0)


def test_find_calls_by_id_or_provider_call_id(any_store: AnyStore) -> None:
    first = seed_call(any_store, "call-789", provider="acme")
    second = seed_call(any_store, "call-789", provider="other")
    third = seed_call(any_store, "x-1")

    assert [c.id for c in any_store.find_calls("call-789")] == [first.id, second.id]
    assert [c.id for c in any_store.find_calls(str(third.id))] == [third.id]
    assert any_store.find_calls("nope") == []
    assert any_store.get_call(999_999) is None


def test_events_are_per_call_and_oldest_first(any_store: AnyStore) -> None:
    call = seed_call(any_store, "e")
    other = seed_call(any_store, "f")
    seed_event(any_store, call.id, step="poll", outcome="inserted", at=NOW)
    seed_event(any_store, other.id, step="poll", outcome="inserted", at=NOW)
    seed_event(
        any_store,
        call.id,
        step="download",
        outcome="ok",
        at=NOW + timedelta(seconds=5),
        http_status=200,
        duration_ms=420,
    )

    events = any_store.events_for(call.id)

    assert [(e.step, e.outcome) for e in events] == [("poll", "inserted"), ("download", "ok")]
    assert events[1].http_status == 200 and events[1].duration_ms == 420


def test_requeue_puts_a_failed_call_back_with_a_fresh_budget(any_store: AnyStore) -> None:
    call = seed_call(
        any_store,
        "g",
        state=CallState.FAILED,
        attempts=8,
        error_kind="http_403",
        last_error="provider refused the download",
    )

    requeued = any_store.requeue(call.id, NOW, actor="test")

    assert requeued.state == CallState.PENDING
    assert requeued.attempts == 0
    assert requeued.next_attempt_at == NOW
    assert requeued.error_kind is None and requeued.last_error is None
    assert any_store.status(NOW).due_now == 1
    (event,) = any_store.events_for(call.id)
    assert (event.from_state, event.to_state, event.step) == ("failed", "pending", "requeue")
    assert event.message is not None and "provider refused the download" in event.message


def test_requeue_refuses_rows_that_are_not_failed_or_skipped(any_store: AnyStore) -> None:
    uploaded = seed_call(
        any_store, "h", state=CallState.UPLOADED, siro_recording_id="r", uploaded_at=NOW
    )
    with pytest.raises(NotRequeueable):
        any_store.requeue(uploaded.id, NOW)
    with pytest.raises(KeyError):
        any_store.requeue(123_456, NOW)
    assert any_store.events_for(uploaded.id) == []


def test_requeue_matching_failed_takes_every_failed_row_and_nothing_else(
    any_store: AnyStore,
) -> None:
    for index in range(3):
        seed_call(any_store, f"f{index}", state=CallState.FAILED)
    skipped = seed_call(any_store, "s", state=CallState.SKIPPED, error_kind="no_recording")
    only_failed = RequeueSelection(states=frozenset({CallState.FAILED}))

    assert len(any_store.requeue_matching(only_failed, NOW)) == 3
    assert any_store.requeue_matching(only_failed, NOW) == []
    assert any_store.status(NOW).counts["pending"] == 3
    still = any_store.get_call(skipped.id)
    assert still is not None and still.state == CallState.SKIPPED


def test_requeue_matching_combines_state_error_kind_and_start(any_store: AnyStore) -> None:
    early, late = NOW - timedelta(days=2), NOW - timedelta(hours=1)
    wanted = seed_call(
        any_store, "a", state=CallState.SKIPPED, error_kind="rep_unknown", started_at=late
    )
    seed_call(any_store, "b", state=CallState.SKIPPED, error_kind="rep_unknown", started_at=early)
    seed_call(any_store, "c", state=CallState.SKIPPED, error_kind="no_recording", started_at=late)
    failed = seed_call(
        any_store, "d", state=CallState.FAILED, error_kind="rep_unknown", started_at=late
    )
    seed_call(any_store, "e", state=CallState.UPLOADED, siro_recording_id="r", uploaded_at=NOW)
    selection = RequeueSelection(error_kind="rep_unknown", since=NOW - timedelta(hours=6))

    planned = any_store.requeue_matching(selection, NOW, dry_run=True)
    assert [call.id for call in planned] == [wanted.id, failed.id]
    assert any_store.status(NOW).counts["pending"] == 0  # a dry run changes nothing
    assert any_store.events_for(wanted.id) == []

    done = any_store.requeue_matching(selection, NOW, actor="ops (cli)")
    assert [(call.id, call.state) for call in done] == [
        (wanted.id, CallState.SKIPPED),
        (failed.id, CallState.FAILED),
    ]
    assert any_store.status(NOW).counts == {
        "pending": 2, "downloaded": 0, "uploaded": 1, "failed": 0, "skipped": 2,
    }  # fmt: skip
    (event,) = any_store.events_for(wanted.id)
    assert event.step == "requeue" and event.message is not None
    assert "ops (cli)" in event.message and "rep_unknown" in event.message

    skipped_only = RequeueSelection(states=frozenset({CallState.SKIPPED}))
    assert {call.provider_call_id for call in any_store.requeue_matching(skipped_only, NOW)} == {
        "b",
        "c",
    }


def test_calls_are_chosen_by_error_kind_and_attribution_for_list_and_requeue(
    any_store: AnyStore,
) -> None:
    found = seed_call(any_store, "a", state=CallState.FAILED, error_kind="oversize")
    seed_call(any_store, "b", state=CallState.FAILED, error_kind="not_audio", attribution="email")
    seed_call(any_store, "c", state=CallState.SKIPPED, error_kind="not_audio")
    seed_call(
        any_store,
        "d",
        state=CallState.UPLOADED,
        attribution="email",
        siro_recording_id="r",
        uploaded_at=NOW,
    )

    assert [c.provider_call_id for c in any_store.list_calls(error_kind="not_audio")] == [
        "c",
        "b",
    ]
    assert any_store.error_kinds() == {"not_audio": 2, "oversize": 1}
    unattributed = RequeueSelection(attribution="none", error_kind="oversize")
    assert [c.id for c in any_store.requeue_matching(unattributed, NOW, dry_run=True)] == [found.id]
    by_email = RequeueSelection(attribution="email")
    assert [c.provider_call_id for c in any_store.requeue_matching(by_email, NOW)] == ["b"]


def test_replay_puts_an_uploaded_call_back_and_keeps_the_previous_recording_in_its_events(
    any_store: AnyStore,
) -> None:
    uploaded_at = NOW - timedelta(days=1)
    call = seed_call(
        any_store,
        "r",
        state=CallState.UPLOADED,
        attempts=1,
        siro_recording_id="rec-first",
        siro_file_url="https://storage.example/f.mp3",
        uploaded_at=uploaded_at,
        siro_create_sent_at=uploaded_at,
    )

    replayed = any_store.replay(call.id, NOW, actor="ops (cli)")

    assert replayed.state == CallState.PENDING
    assert replayed.next_attempt_at == NOW and replayed.attempts == 0
    # Cleared, or the duplicate guard would adopt the first recording instead of a new one.
    assert replayed.siro_recording_id is None and replayed.siro_create_sent_at is None
    assert replayed.uploaded_at is None and replayed.siro_file_url is None
    assert any_store.get_call(call.id) == replayed
    assert any_store.status(NOW).due_now == 1
    (event,) = any_store.events_for(call.id)
    assert (event.from_state, event.to_state, event.step) == ("uploaded", "pending", "replay")
    assert event.at == NOW and event.message is not None
    assert "ops (cli)" in event.message and "rec-first" in event.message


def test_replay_refuses_calls_that_were_not_uploaded(any_store: AnyStore) -> None:
    failed = seed_call(any_store, "x", state=CallState.FAILED)
    with pytest.raises(NotReplayable):
        any_store.replay(failed.id, NOW)
    with pytest.raises(KeyError):
        any_store.replay(123_456, NOW)
    assert any_store.events_for(failed.id) == []


def test_list_calls_pages_with_offset(any_store: AnyStore) -> None:
    for index in range(5):
        seed_call(any_store, f"p{index}", started_at=NOW + timedelta(minutes=index))
    seed_call(any_store, "old", started_at=NOW - timedelta(days=1))

    page = any_store.list_calls(limit=2, offset=2)
    assert [call.provider_call_id for call in page] == ["p3", "p2"]  # newest (by id) first
    assert [c.provider_call_id for c in any_store.list_calls(since=NOW, offset=4)] == ["p0"]


def test_cursors_are_listed_by_provider(any_store: AnyStore) -> None:
    seed_cursor(any_store, PollCursor(provider="zeta", cursor_value=NOW))
    seed_cursor(
        any_store,
        PollCursor(provider="acme", cursor_value=NOW, last_error="HTTP 500 on page 3"),
    )

    assert [c.provider for c in any_store.cursors()] == ["acme", "zeta"]
    assert any_store.status(NOW).cursors[0].last_error == "HTTP 500 on page 3"


def test_backfill_runs_resume_unfinished_ranges_and_never_move_backwards(
    any_store: AnyStore,
) -> None:
    since, until = NOW - timedelta(days=10), NOW - timedelta(days=5)
    run = any_store.start_backfill("acme", since, until, NOW)
    assert (run.listed_until, run.windows, run.done) == (since, 0, False)
    assert any_store.start_backfill("acme", since, until, NOW).id == run.id
    other = any_store.start_backfill("zeta", since, until, NOW)
    assert other.id != run.id

    day = timedelta(days=1)
    counts = BackfillCounts(windows=1, listed=7, new_calls=5, known=2, unmapped=1)
    any_store.record_backfill_progress(run.id, since + 2 * day, counts, NOW)
    moved = any_store.record_backfill_progress(run.id, since + day, counts, NOW + day)
    assert moved.listed_until == since + 2 * day  # never backwards
    assert (moved.windows, moved.listed, moved.new_calls, moved.known, moved.unmapped) == (
        2, 14, 10, 4, 2,
    )  # fmt: skip
    assert moved.updated_at == NOW + day

    stopped = any_store.finish_backfill(run.id, NOW, "HTTP 502")
    assert stopped.last_error == "HTTP 502" and not stopped.done
    assert any_store.start_backfill("acme", since, until, NOW).id == run.id  # resumable
    finished = any_store.finish_backfill(run.id, NOW, None)
    assert finished.done and finished.last_error is None
    anew = any_store.start_backfill("acme", since, until, NOW)
    assert anew.id not in (run.id, other.id) and anew.listed_until == since
    assert [r.id for r in any_store.backfill_runs("acme")] == [run.id, anew.id]
    assert len(any_store.backfill_runs()) == 3
    with pytest.raises(KeyError):
        any_store.record_backfill_progress(999_999, until, counts, NOW)
    with pytest.raises(KeyError):
        any_store.finish_backfill(999_999, NOW, None)
