"""The worker's side of the store contract: claims, leases and lease-guarded transitions.

Runs against the in-memory fake, SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from poller.adapters.sql.store import SqlStore
from poller.domain.records import EventDraft
from poller.domain.states import CallState
from tests.seed import AnyStore, seed_call

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
LEASE = NOW + timedelta(minutes=30)
OK = EventDraft(step="download", outcome="ok", http_status=200, duration_ms=12, message="fine")


def due(store: AnyStore, call_id: str, minutes_ago: int = 1, **fields: object) -> int:
    return seed_call(
        store, call_id, next_attempt_at=NOW - timedelta(minutes=minutes_ago), **fields
    ).id


def test_claim_takes_due_rows_oldest_first_and_counts_an_attempt(any_store: AnyStore) -> None:
    newer = due(any_store, "newer", minutes_ago=1)
    older = due(any_store, "older", minutes_ago=10)
    due(any_store, "third", minutes_ago=5)
    seed_call(any_store, "waiting")  # no next_attempt_at
    seed_call(any_store, "later", next_attempt_at=NOW + timedelta(minutes=1))
    seed_call(any_store, "failed", state=CallState.FAILED, next_attempt_at=NOW)

    claimed = any_store.claim_due("worker-a", NOW, LEASE, limit=2)

    assert [c.provider_call_id for c in claimed] == ["older", "third"]
    assert all(c.lease_owner == "worker-a" and c.lease_expires_at == LEASE for c in claimed)
    assert all(c.attempts == 1 for c in claimed)
    assert [c.id for c in any_store.claim_due("worker-b", NOW, LEASE, limit=5)] == [newer]
    assert any_store.claim_due("worker-c", NOW, LEASE, limit=5) == []
    assert older not in {c.id for c in any_store.claim_due("worker-c", NOW, LEASE, limit=5)}


def test_count_due_is_what_claims_could_take(any_store: AnyStore) -> None:
    due(any_store, "due-1")
    due(any_store, "due-2", minutes_ago=10)
    seed_call(any_store, "waiting")  # no next_attempt_at
    seed_call(any_store, "later", next_attempt_at=NOW + timedelta(minutes=1))
    seed_call(any_store, "failed", state=CallState.FAILED, next_attempt_at=NOW)
    assert any_store.count_due(NOW) == 2

    any_store.claim_due("worker-a", NOW, NOW + timedelta(minutes=5), limit=1)
    assert any_store.count_due(NOW) == 1  # a leased row is no longer ahead
    # Its lease ran out: it can be claimed again, so it counts again (with "later").
    assert any_store.count_due(NOW + timedelta(minutes=6)) == 3


def test_a_row_whose_lease_ran_out_is_rescued_and_the_rescue_is_logged(
    any_store: AnyStore,
) -> None:
    row = due(any_store, "stuck")
    any_store.claim_due("dead-worker", NOW, NOW + timedelta(minutes=5), limit=1)
    assert any_store.claim_due("worker-b", NOW + timedelta(minutes=4), LEASE, limit=1) == []

    later = NOW + timedelta(minutes=6)
    (rescued,) = any_store.claim_due("worker-b", later, later + timedelta(minutes=30), limit=1)

    assert rescued.id == row and rescued.lease_owner == "worker-b" and rescued.attempts == 2
    (event,) = any_store.events_for(row)
    assert (event.step, event.outcome) == ("lease", "rescued")
    assert event.message is not None and "dead-worker" in event.message


def test_concurrent_claims_never_hand_one_row_to_two_workers(any_store: AnyStore) -> None:
    for index in range(120):
        due(any_store, f"c{index}")
    claims: dict[str, list[int]] = {}

    def claim_all(owner: str) -> None:
        mine: list[int] = []
        while batch := any_store.claim_due(owner, NOW, LEASE, limit=7):
            mine.extend(call.id for call in batch)
        claims[owner] = mine

    threads = [threading.Thread(target=claim_all, args=(f"w{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    every = [call_id for ids in claims.values() for call_id in ids]
    assert len(every) == len(set(every)) == 120


def test_transitions_need_the_lease(any_store: AnyStore) -> None:
    row = due(any_store, "x")
    assert len(any_store.claim_due("worker-a", NOW, LEASE, limit=1)) == 1
    assert (
        any_store.mark_downloaded(
            row,
            "worker-b",
            NOW,
            audio_format="mp3",
            size_bytes=10,
            sha256="ab",
            spool_path="/spool/x",
            event=OK,
        )
        is None
    )
    downloaded = any_store.mark_downloaded(
        row,
        "worker-a",
        NOW,
        audio_format="mp3",
        size_bytes=15846,
        sha256="e3b0",
        spool_path="/spool/call-1.mp3",
        event=OK,
    )

    assert downloaded is not None
    assert downloaded.state == CallState.DOWNLOADED
    assert (downloaded.audio_format, downloaded.size_bytes, downloaded.sha256) == (
        "mp3",
        15846,
        "e3b0",
    )
    assert downloaded.lease_owner == "worker-a"  # kept for the upload step
    (event,) = any_store.events_for(row)
    assert (event.from_state, event.to_state, event.step, event.outcome) == (
        "pending",
        "downloaded",
        "download",
        "ok",
    )
    assert (event.http_status, event.duration_ms, event.message) == (200, 12, "fine")


def test_create_sent_is_remembered_from_the_first_send_until_siro_refuses(
    any_store: AnyStore,
) -> None:
    row = due(any_store, "x", state=CallState.DOWNLOADED)
    any_store.claim_due("w", NOW, LEASE, limit=1)

    assert any_store.mark_create_sent(row, "w", NOW, "Inbound call [x]")
    assert any_store.mark_create_sent(row, "w", NOW + timedelta(minutes=1), "Inbound call [x]")
    call = any_store.get_call(row)
    assert call is not None
    assert call.siro_create_sent_at == NOW and call.title == "Inbound call [x]"

    assert any_store.mark_create_sent(row, "w", NOW, "Inbound call [x]", sent=False)
    call = any_store.get_call(row)
    assert call is not None and call.siro_create_sent_at is None
    assert not any_store.mark_create_sent(row, "someone-else", NOW, "t")


def test_uploaded_lets_the_row_go(any_store: AnyStore) -> None:
    row = due(any_store, "x", state=CallState.DOWNLOADED, spool_path="/spool/call-1.mp3")
    any_store.claim_due("w", NOW, LEASE, limit=1)

    assert any_store.mark_uploaded(
        row,
        "w",
        NOW,
        siro_recording_id="rec-9",
        siro_file_url="https://storage.example/f.mp3?[REDACTED]",
        event=EventDraft(step="upload", outcome="ok"),
    )

    call = any_store.get_call(row)
    assert call is not None
    assert (call.state, call.siro_recording_id, call.uploaded_at) == (
        CallState.UPLOADED,
        "rec-9",
        NOW,
    )
    assert (call.lease_owner, call.spool_path, call.next_attempt_at) == (None, None, None)
    assert any_store.status(NOW + timedelta(days=1)).due_now == 0


def test_a_retry_keeps_the_step_and_its_file_unless_sent_back(any_store: AnyStore) -> None:
    row = due(any_store, "x", state=CallState.DOWNLOADED, spool_path="/spool/call-1.mp3")
    any_store.claim_due("w", NOW, LEASE, limit=1)
    retry_at = NOW + timedelta(minutes=2)
    event = EventDraft(step="upload", outcome="retry", http_status=503)

    assert any_store.schedule_retry(row, "w", NOW, retry_at, "siro_put_unavailable", "503", event)

    call = any_store.get_call(row)
    assert call is not None
    assert (call.state, call.spool_path, call.next_attempt_at) == (
        CallState.DOWNLOADED,
        "/spool/call-1.mp3",
        retry_at,
    )
    assert (call.error_kind, call.last_error, call.lease_owner) == (
        "siro_put_unavailable",
        "503",
        None,
    )
    any_store.claim_due("w", retry_at, LEASE, limit=1)
    assert any_store.schedule_retry(
        row, "w", NOW, NOW, "spool_missing", "gone", event, back_to_pending=True
    )
    call = any_store.get_call(row)
    assert call is not None and (call.state, call.spool_path) == (CallState.PENDING, None)


@pytest.mark.parametrize("state", [CallState.FAILED, CallState.SKIPPED])
def test_finish_parks_the_row_with_its_reason(any_store: AnyStore, state: CallState) -> None:
    row = due(any_store, "x")
    any_store.claim_due("w", NOW, LEASE, limit=1)
    event = EventDraft(step="download", outcome="fail")

    assert any_store.finish(row, "w", NOW, state, "not_audio", "an HTML page", event)

    call = any_store.get_call(row)
    assert call is not None
    assert (call.state, call.error_kind, call.last_error) == (state, "not_audio", "an HTML page")
    assert (call.lease_owner, call.next_attempt_at) == (None, None)
    with pytest.raises(ValueError, match="failed or skipped"):
        any_store.finish(row, "w", NOW, CallState.UPLOADED, "x", "y", event)


def test_release_gives_rows_back_due_now_without_charging_the_attempt(
    any_store: AnyStore,
) -> None:
    mine = due(any_store, "mine")
    theirs = due(any_store, "theirs")
    any_store.claim_due("me", NOW, LEASE, limit=1)
    any_store.claim_due("them", NOW, LEASE, limit=1)

    assert any_store.release_leases("me", NOW + timedelta(seconds=5)) == 1

    call = any_store.get_call(mine)
    assert call is not None
    assert (call.lease_owner, call.attempts, call.next_attempt_at) == (
        None,
        0,
        NOW + timedelta(seconds=5),
    )
    assert [e.outcome for e in any_store.events_for(mine)] == ["released"]
    other = any_store.get_call(theirs)
    assert other is not None and other.lease_owner == "them"


def test_outcomes_and_their_events_can_be_audited_with_plain_sql(sql_store: SqlStore) -> None:
    row = due(sql_store, "audit")
    sql_store.claim_due("w", NOW, LEASE, limit=1)
    sql_store.finish(
        row, "w", NOW, CallState.FAILED, "oversize", "too big", EventDraft("download", "fail")
    )
    with sql_store.engine.connect() as connection:
        found = connection.execute(
            text(
                "SELECT c.state, c.error_kind, e.step, e.outcome FROM calls c "
                "JOIN call_events e ON e.call_id = c.id WHERE c.provider_call_id = 'audit'"
            )
        ).all()
    assert [tuple(r) for r in found] == [("failed", "oversize", "download", "fail")]


def test_a_heartbeat_renews_only_the_leases_the_worker_still_holds(any_store: AnyStore) -> None:
    mine = due(any_store, "mine", minutes_ago=3)
    taken = due(any_store, "taken-over", minutes_ago=2)
    any_store.claim_due("worker-a", NOW, NOW + timedelta(minutes=2), limit=2)
    # worker-a stalls past its lease on one row; worker-b rescues it.
    later = NOW + timedelta(minutes=3)
    with_b = any_store.claim_due("worker-b", later, later + timedelta(minutes=2), limit=1)
    assert [c.id for c in with_b] == [mine]  # the oldest run-out lease first

    held = any_store.renew_leases("worker-a", {mine, taken}, later, later + timedelta(minutes=2))

    assert held == {taken}
    renewed = any_store.get_call(taken)
    assert renewed is not None and renewed.lease_owner == "worker-a"
    assert renewed.lease_expires_at == later + timedelta(minutes=2)
    rescued = any_store.get_call(mine)
    assert rescued is not None and rescued.lease_owner == "worker-b"
    assert rescued.lease_expires_at == later + timedelta(minutes=2)
    # A renewed lease is not due: a third worker finds nothing to take.
    assert any_store.claim_due("worker-c", later + timedelta(minutes=1), LEASE, limit=5) == []


def test_claims_follow_their_indexes(sql_store: SqlStore) -> None:
    """Each lookup of a claim reads its own partial index, whatever the size of the table."""
    engine = sql_store.engine
    lookups = sql_store.claim_lookups(NOW, 8)
    with engine.connect() as connection:
        for lookup, index in zip(lookups, ("ix_calls_leased", "ix_calls_due"), strict=True):
            sql = str(lookup.compile(engine, compile_kwargs={"literal_binds": True}))
            if engine.dialect.name == "sqlite":
                plan = " ".join(
                    str(row[-1]) for row in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + sql)
                )
            else:
                # An empty table would be scanned whatever its indexes: ask as if it were large.
                connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
                plan = " ".join(row[0] for row in connection.exec_driver_sql("EXPLAIN " + sql))
            assert index in plan and "TEMP B-TREE" not in plan, plan
