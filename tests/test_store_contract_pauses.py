"""Credential pauses, the give-back of a row, claims that pass over a paused provider, and the
workers' heartbeats: the same contract on the in-memory fake, SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from poller.domain.pauses import SIRO, provider_scope
from poller.domain.records import EventDraft
from poller.domain.states import CallState
from tests.seed import AnyStore, seed_call

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
LEASE = NOW + timedelta(minutes=30)
PAUSED = EventDraft(step="upload", outcome="paused", http_status=401, message="credential pause")


def test_a_pause_keeps_its_start_takes_the_latest_reason_and_ends_once(
    any_store: AnyStore,
) -> None:
    assert any_store.pauses() == []
    first = any_store.record_pause(
        SIRO, "Siro refused the client secret; check siro.client_secret", NOW
    )
    assert (first.scope, first.since, first.last_probe_at) == (SIRO, NOW, None)

    any_store.note_pause_probe(SIRO, NOW + timedelta(minutes=1))
    again = any_store.record_pause(
        SIRO, "HTTP 403; check siro.token_user_id", NOW + timedelta(minutes=2)
    )
    any_store.record_pause(provider_scope("acme"), "HTTP 401; check provider.token", NOW)

    assert again.since == NOW and again.reason == "HTTP 403; check siro.token_user_id"
    assert again.last_probe_at == NOW + timedelta(minutes=1)
    assert [p.scope for p in any_store.pauses()] == ["provider:acme", "siro"]
    assert [p.scope for p in any_store.status(NOW).pauses] == ["provider:acme", "siro"]

    ended = any_store.end_pause(SIRO)
    assert ended is not None and ended.since == NOW
    assert any_store.end_pause(SIRO) is None
    assert [p.provider for p in any_store.pauses()] == ["acme"]


def test_a_row_given_back_is_as_it_was_with_its_attempt_refunded(any_store: AnyStore) -> None:
    row = seed_call(
        any_store,
        "c-1",
        state=CallState.DOWNLOADED,
        attempts=2,
        next_attempt_at=NOW - timedelta(minutes=1),
        spool_path="/spool/call-1.mp3",
        audio_format="mp3",
        error_kind="siro_create_unavailable",
        last_error="HTTP 503 earlier",
    )
    (claimed,) = any_store.claim_due("worker-a", NOW, LEASE, limit=1)
    assert claimed.attempts == 3

    assert not any_store.give_back(row.id, "worker-b", NOW, PAUSED)  # not the lease holder
    assert any_store.give_back(row.id, "worker-a", NOW, PAUSED)

    back = any_store.get_call(row.id)
    assert back is not None
    assert (back.state, back.attempts, back.spool_path) == (
        CallState.DOWNLOADED,
        2,
        "/spool/call-1.mp3",
    )
    assert (back.error_kind, back.last_error) == ("siro_create_unavailable", "HTTP 503 earlier")
    assert (back.lease_owner, back.lease_expires_at, back.next_attempt_at) == (None, None, NOW)
    (event,) = any_store.events_for(row.id)
    assert (event.step, event.outcome, event.from_state, event.to_state) == (
        "upload",
        "paused",
        "downloaded",
        "downloaded",
    )
    assert [c.id for c in any_store.claim_due("worker-c", NOW, LEASE, limit=5)] == [row.id]


def test_a_claim_passes_over_the_rows_of_paused_providers(any_store: AnyStore) -> None:
    held = seed_call(any_store, "a-1", provider="acme", next_attempt_at=NOW - timedelta(minutes=9))
    other = seed_call(any_store, "b-1", provider="bell", next_attempt_at=NOW - timedelta(minutes=1))
    stuck = seed_call(
        any_store, "a-2", provider="acme", next_attempt_at=NOW - timedelta(minutes=30)
    )
    # a-2's worker died: its lease ran out, and a rescue would normally take it first.
    (taken,) = any_store.claim_due(
        "dead", NOW - timedelta(minutes=20), NOW - timedelta(minutes=1), limit=3
    )
    assert taken.id == stuck.id
    assert any_store.due_by_provider(NOW) == {"acme": 2, "bell": 1}

    claimed = any_store.claim_due("worker", NOW, LEASE, limit=5, exclude_providers={"acme"})

    assert [c.id for c in claimed] == [other.id]
    assert {c.id for c in any_store.claim_due("worker", NOW, LEASE, limit=5)} == {
        held.id,
        stuck.id,
    }


def test_heartbeats_keep_the_start_and_the_freshest_comes_first(any_store: AnyStore) -> None:
    any_store.beat("host:1:aa", NOW - timedelta(hours=2), NOW - timedelta(hours=1))
    any_store.beat("host:2:bb", NOW - timedelta(minutes=5), NOW - timedelta(minutes=1))
    any_store.beat("host:2:bb", NOW, NOW)

    workers = any_store.status(NOW).workers
    assert [(w.owner, w.started_at, w.beat_at) for w in workers] == [
        ("host:2:bb", NOW - timedelta(minutes=5), NOW),
        ("host:1:aa", NOW - timedelta(hours=2), NOW - timedelta(hours=1)),
    ]
    assert any_store.forget_heartbeats(NOW - timedelta(minutes=30)) == 1
    assert [w.owner for w in any_store.status(NOW).workers] == ["host:2:bb"]
