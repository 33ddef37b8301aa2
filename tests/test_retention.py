"""Retention of our own state, on SQLite and PostgreSQL: what a pass prunes, what it keeps (the
audit trail and the duplicate guard), the unmapped records' back-off and expiry, the batches,
and `status` / `db prune` as an operator sees them."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy import text

from poller.adapters.http import RetryPolicy
from poller.adapters.prometheus_metrics import TableSizeCollector
from poller.adapters.providers.generic import GenericProvider
from poller.adapters.sql.store import SqlStore
from poller.cli import main
from poller.config import Settings
from poller.core.poll import poll_once
from poller.core.retention import run_retention
from poller.domain.call_record import CallRecord
from poller.domain.ingest import IngestAction, ListedCall
from poller.domain.raw_record import fingerprint
from poller.domain.records import UnmappedDraft
from poller.domain.retention import RetentionRules, remap_delay
from poller.domain.states import CallState, RecordingState
from poller.simulators.http_server import LocalHTTPServer
from poller.simulators.provider_server import FakeCallLog, quickstart_call, serve
from poller.wiring import poll_params_from_settings
from tests.conftest import database_url
from tests.seed import seed_call, seed_event

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
LONG_AGO = NOW - timedelta(days=120)
RECENTLY = NOW - timedelta(days=3)
RULES = RetentionRules(
    personal_data_after=timedelta(days=90),
    events_after=timedelta(days=30),
    unmapped_after=timedelta(days=30),
    unmapped_max_attempts=5,
    unmapped_max_kept=0,
)
PERSONAL = {
    "contact_name": "Jane Smith",
    "contact_phone": "+15551234567",
    "title": "Inbound call with Jane Smith [c-1]",
    "recording_url": "https://voip.example.com/recordings/c-1.mp3?sig=abc",
    "raw": {"call_id": "c-1", "contact_name": "Jane Smith", "contact_phone": "+15551234567"},
}


def row_of(store: SqlStore, call_id: int) -> dict[str, Any]:
    """The row as SQL sees it (raw as SQL NULL, not JSON null)."""
    with store.engine.connect() as conn:
        row = conn.execute(
            text("SELECT *, raw IS NULL AS raw_is_null FROM calls WHERE id = :id"), {"id": call_id}
        ).one()
    return dict(row._mapping)


def dump(store: SqlStore) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, to compare a database before and after."""
    tables = ["calls", "call_events", "unmapped_records", "poll_cursors"]
    with store.engine.connect() as conn:
        return {
            table: [tuple(row) for row in conn.execute(text(f"SELECT * FROM {table} ORDER BY 1"))]  # noqa: S608
            for table in tables
        }


def uploaded(store: SqlStore, key: str, *, at: datetime = LONG_AGO, **fields: Any) -> int:
    values = {**PERSONAL, "raw": {**PERSONAL["raw"], "call_id": key}, **fields}
    call = seed_call(
        store,
        key,
        state=CallState.UPLOADED,
        at=at,
        siro_recording_id=f"rec-{key}",
        uploaded_at=at,
        siro_create_sent_at=at,
        recording_state="ready",
        started_at=at - timedelta(hours=1),
        **values,
    )
    return call.id


def listing(key: str) -> ListedCall:
    return ListedCall(
        CallRecord(
            provider_call_id=key,
            started_at=LONG_AGO - timedelta(hours=1),
            recording_state=RecordingState.READY,
            recording_url=f"https://voip.example.com/recordings/{key}.mp3",
            contact_name="Jane Smith",
            contact_phone="+15551234567",
            raw={"call_id": key, "contact_name": "Jane Smith"},
        )
    )


# -- finished calls: personal data goes, the audit trail and the duplicate guard stay --------


def test_a_pruned_uploaded_call_loses_its_personal_data_and_keeps_its_audit_trail(
    sql_store: SqlStore,
) -> None:
    call_id = uploaded(sql_store, "c-1")

    report = run_retention(RULES, sql_store, NOW)

    assert report.calls_pruned == 1
    row = row_of(sql_store, call_id)
    assert row["raw_is_null"] in (True, 1)
    for column in ("contact_name", "contact_phone", "title"):
        assert row[column] is None, column
    assert (row["state"], row["siro_recording_id"]) == ("uploaded", "rec-c-1")
    assert row["provider_call_id"] == "c-1" and row["uploaded_at"] is not None
    assert row["rep_email"] is None or "@" in row["rep_email"]
    call = sql_store.get_call(call_id)
    assert call is not None and call.pruned_at == NOW and call.updated_at == LONG_AGO


def test_a_pruned_call_listed_again_is_known_and_never_uploaded_twice(
    sql_store: SqlStore,
) -> None:
    call_id = uploaded(sql_store, "c-1")
    run_retention(RULES, sql_store, NOW)

    later = NOW + timedelta(hours=1)
    [change] = sql_store.ingest_page("generic", [listing("c-1")], later)

    assert change.call_id == call_id and change.action is not IngestAction.INSERTED
    assert change.to_state is CallState.UPLOADED
    assert [c.id for c in sql_store.find_calls("c-1")] == [call_id]
    assert sql_store.count_due(later) == 0
    assert sql_store.claim_due("w", later, later + timedelta(minutes=2), 10) == []
    row = row_of(sql_store, call_id)
    # The listing does not write the personal data back.
    assert row["contact_name"] is None and row["contact_phone"] is None
    assert row["raw_is_null"] in (True, 1)


def test_unfinished_and_recently_finished_rows_are_left_alone(sql_store: SqlStore) -> None:
    pending = seed_call(sql_store, "p", state=CallState.PENDING, at=LONG_AGO, **PERSONAL)
    downloaded = seed_call(sql_store, "d", state=CallState.DOWNLOADED, at=LONG_AGO, **PERSONAL)
    recent = uploaded(sql_store, "r", at=RECENTLY)
    skipped = seed_call(sql_store, "s", state=CallState.SKIPPED, at=LONG_AGO, **PERSONAL)
    failed = seed_call(sql_store, "f", state=CallState.FAILED, at=LONG_AGO, **PERSONAL)

    report = run_retention(RULES, sql_store, NOW)

    assert report.calls_pruned == 2
    for kept in (pending.id, downloaded.id, recent):
        row = row_of(sql_store, kept)
        assert row["contact_name"] == "Jane Smith" and row["pruned_at"] is None
        assert row["raw_is_null"] in (False, 0)
    for pruned in (skipped.id, failed.id):
        assert row_of(sql_store, pruned)["contact_name"] is None


def test_old_events_go_but_those_proving_an_upload_stay(sql_store: SqlStore) -> None:
    call_id = uploaded(sql_store, "c-1")
    old = LONG_AGO
    for step, outcome in [
        ("poll", "listed"),
        ("download", "ok"),
        ("upload", "retry"),
        ("attribute", "siro_email"),
        ("upload", "create_sent"),
        ("upload", "ok"),
        ("upload", "adopted"),
        ("replay", "requeued"),
    ]:
        seed_event(sql_store, call_id, at=old, step=step, outcome=outcome)
    seed_event(sql_store, call_id, at=RECENTLY, step="poll", outcome="updated")

    report = run_retention(RULES, sql_store, NOW)

    assert report.events_deleted == 4
    left = [(e.step, e.outcome) for e in sql_store.events_for(call_id)]
    assert left == [
        ("upload", "create_sent"),
        ("upload", "ok"),
        ("upload", "adopted"),
        ("replay", "requeued"),
        ("poll", "updated"),
    ]


def test_a_prune_erases_the_contact_quoted_in_the_calls_error_and_event_messages(
    sql_store: SqlStore,
) -> None:
    call_id = uploaded(
        sql_store, "c-1", last_error="Siro said 503 for Jane Smith at 555-123-4567; retried"
    )
    failed = seed_call(
        sql_store,
        "f-1",
        state=CallState.FAILED,
        at=LONG_AGO,
        **{**PERSONAL, "raw": {"call_id": "f-1"}},
        last_error="download refused: 404 for caller 15551234567 (JANE SMITH)",
    )
    seed_event(
        sql_store,
        call_id,
        at=LONG_AGO,
        step="upload",
        outcome="create_sent",
        message="creating 'Inbound call with Jane Smith [c-1]' for +15551234567",
    )
    seed_event(sql_store, call_id, at=LONG_AGO, step="upload", outcome="ok", message="rec-c-1")
    seed_event(
        sql_store,
        call_id,
        at=RECENTLY,
        step="poll",
        outcome="updated",
        message="listed again: caller +1 555.123.4567, status 200",
    )
    seed_event(
        sql_store,
        failed.id,
        at=RECENTLY,
        step="download",
        outcome="failed",
        message="gave up on jane smith after 5 attempts",
    )
    # The same contact on a call not yet due for pruning: its texts are not the prune's to touch.
    recent = uploaded(sql_store, "r-1", at=RECENTLY, last_error="retried for Jane Smith")

    report = run_retention(RULES, sql_store, NOW)

    assert report.calls_pruned == 2
    assert (
        row_of(sql_store, call_id)["last_error"]
        == "Siro said 503 for [erased] at [erased]; retried"
    )
    assert row_of(sql_store, failed.id)["last_error"] == (
        "download refused: 404 for caller [erased] ([erased])"
    )
    left = [(e.step, e.outcome, e.message) for e in sql_store.events_for(call_id)]
    assert left == [
        # The events proving the upload stay, their text scrubbed.
        ("upload", "create_sent", "creating '[erased]' for [erased]"),
        ("upload", "ok", "rec-c-1"),
        ("poll", "updated", "listed again: caller [erased], status 200"),
    ]
    assert [e.message for e in sql_store.events_for(failed.id)] == [
        "gave up on [erased] after 5 attempts"
    ]
    assert row_of(sql_store, recent)["last_error"] == "retried for Jane Smith"
    with sql_store.engine.connect() as conn:
        texts = conn.execute(
            text(
                "SELECT coalesce(last_error, '') FROM calls WHERE pruned_at IS NOT NULL "
                "UNION ALL SELECT coalesce(message, '') FROM call_events WHERE call_id IN (:a, :b)"
            ),
            {"a": call_id, "b": failed.id},
        ).scalars()
        joined = " ".join(texts).lower()
    for needle in ("jane", "smith", "5551234567", "123-4567", "123.4567"):
        assert needle not in joined, needle


def test_a_pass_works_in_bounded_batches_and_the_next_goes_on(sql_store: SqlStore) -> None:
    ids = [uploaded(sql_store, f"c-{n}") for n in range(7)]
    small = RetentionRules(
        personal_data_after=timedelta(days=90),
        events_after=None,
        unmapped_after=None,
        batch_size=2,
        max_batches=2,
    )

    first = run_retention(small, sql_store, NOW)

    assert (first.calls_pruned, first.batches, first.unfinished) == (4, 2, ["calls"])
    assert sum(row_of(sql_store, i)["pruned_at"] is not None for i in ids) == 4
    second = run_retention(small, sql_store, NOW)
    assert (second.calls_pruned, second.unfinished) == (3, [])
    assert all(row_of(sql_store, i)["pruned_at"] is not None for i in ids)
    assert run_retention(small, sql_store, NOW).calls_pruned == 0


def test_zero_days_keeps_everything(sql_store: SqlStore) -> None:
    call_id = uploaded(sql_store, "c-1")
    seed_event(sql_store, call_id, at=LONG_AGO - timedelta(days=3000))
    forever = RetentionRules(personal_data_after=None, events_after=None, unmapped_after=None)

    report = run_retention(forever, sql_store, NOW)

    assert not report.removed_anything
    assert row_of(sql_store, call_id)["contact_name"] == "Jane Smith"
    assert len(sql_store.events_for(call_id)) == 1


# -- unmapped records: back-off, expiry, the count in status --------------------------------


def draft(n: int, *, size: int = 100) -> UnmappedDraft:
    raw = json.dumps({"id": n, "blob": "x" * size})
    return UnmappedDraft(
        window_start=NOW - timedelta(hours=1),
        window_end=NOW,
        page=1,
        item_index=n,
        reason="started_at has no value at path started_at",
        raw=raw,
        raw_sha256=fingerprint(raw),
        provider_call_id=f"bad-{n}",
    )


def keep_unmapped(store: SqlStore, count: int, at: datetime, *, provider: str = "generic") -> None:
    store.ingest_page(provider, [], at, unmapped=[draft(n) for n in range(count)])


def test_a_failed_re_mapping_waits_longer_each_time_up_to_the_cap(sql_store: SqlStore) -> None:
    keep_unmapped(sql_store, 1, NOW)
    [row] = sql_store.unmapped_to_remap("generic", NOW)
    base, cap = timedelta(minutes=5), timedelta(hours=6)
    assert [remap_delay(n, base, cap) for n in (1, 2, 3, 7, 8, 50)] == [
        timedelta(minutes=5),
        timedelta(minutes=10),
        timedelta(minutes=20),
        timedelta(minutes=320),
        cap,
        cap,
    ]

    sql_store.note_remap_failed({row.id: (1, NOW + timedelta(minutes=5))})

    assert sql_store.unmapped_to_remap("generic", NOW + timedelta(minutes=4)) == []
    [due] = sql_store.unmapped_to_remap("generic", NOW + timedelta(minutes=5))
    assert (due.remap_attempts, due.next_remap_at) == (1, NOW + timedelta(minutes=5))


def test_unmapped_records_expire_by_attempts_age_and_cap_with_a_count_in_status(
    sql_store: SqlStore, caplog: pytest.LogCaptureFixture
) -> None:
    keep_unmapped(sql_store, 3, LONG_AGO, provider="old")  # first seen past unmapped_days,
    keep_unmapped(sql_store, 3, NOW - timedelta(hours=1), provider="old")  # still listed
    keep_unmapped(sql_store, 4, NOW - timedelta(hours=1), provider="flood")
    keep_unmapped(sql_store, 2, NOW - timedelta(hours=1), provider="tried")
    tried = sql_store.unmapped_to_remap("tried", NOW)
    sql_store.note_remap_failed({row.id: (5, NOW - timedelta(minutes=1)) for row in tried})
    rules = RetentionRules(
        personal_data_after=None,
        events_after=None,
        unmapped_after=timedelta(days=30),
        unmapped_max_attempts=5,
        unmapped_max_kept=1,
    )
    caplog.set_level(logging.WARNING, "poller.core.retention")

    report = run_retention(rules, sql_store, NOW)

    # Over the cap of 1: old loses 2 (its oldest), flood 3, tried 1; then attempts, then age.
    assert report.unmapped_expired == {"cap": 6, "attempts": 1, "age": 1}
    summary = sql_store.status(NOW)
    assert summary.unmapped == {"flood": 1}
    assert summary.unmapped_expired == {"flood": 3, "old": 3, "tried": 2}
    expired = sql_store.unmapped_records("old", resolved=None, limit=10)
    assert {row.raw for row in expired} == {""}
    assert all(row.expired_at == NOW and row.expired_reason for row in expired)
    assert "unmapped_max_kept (1)" in (expired[0].expired_reason or "")
    assert any("unmapped record(s) expired" in r.getMessage() for r in caplog.records)
    # An expired record listed again stays a marker: its raw text does not come back.
    keep_unmapped(sql_store, 3, NOW + timedelta(minutes=1), provider="old")
    again = sql_store.unmapped_records("old", resolved=None, limit=10)
    assert {(row.raw, row.times_seen) for row in again} == {("", 3)}
    assert sql_store.unmapped_to_remap("old", NOW + timedelta(days=1)) == []


def test_expired_markers_go_once_no_longer_listed(sql_store: SqlStore) -> None:
    keep_unmapped(sql_store, 2, LONG_AGO)
    rules = RetentionRules(personal_data_after=None, events_after=None)
    first = run_retention(rules, sql_store, LONG_AGO + timedelta(days=31))
    assert first.unmapped_expired == {"age": 2} and first.unmapped_deleted == 0

    later = run_retention(rules, sql_store, LONG_AGO + timedelta(days=62))

    assert later.unmapped_deleted == 2
    assert sql_store.unmapped_records(resolved=None) == []


# -- the poll cycle's back-off, through a real listing -------------------------------------


@pytest.fixture
def call_log() -> Iterator[tuple[FakeCallLog, LocalHTTPServer]]:
    api = FakeCallLog(page_size=100)
    with serve(api) as running:
        yield api, running


def test_the_poll_cycle_maps_unmapped_records_again_only_when_their_back_off_passed(
    sql_store: SqlStore, call_log: tuple[FakeCallLog, LocalHTTPServer]
) -> None:
    api, server = call_log
    t0 = NOW - timedelta(hours=2)
    for n in range(3):
        record = quickstart_call(f"bad-{n}", t0)
        record["started_at"] = "not a time"
        api.add_call(record, t0)
    settings = Settings(
        provider={"base_url": server.url},
        poll={"start_at": t0 - timedelta(minutes=5), "lookback_minutes": 0},
        retention={"unmapped_remap_base_seconds": 600, "unmapped_remap_max_seconds": 3600},
    )
    provider = GenericProvider(settings.provider, retry=RetryPolicy(max_tries=1))
    params = poll_params_from_settings(settings)

    def attempts() -> list[int]:
        return [row.remap_attempts for row in sql_store.unmapped_records("generic", limit=10)]

    poll_once(params, provider, sql_store, NOW)
    assert attempts() == [0, 0, 0]
    poll_once(params, provider, sql_store, NOW + timedelta(minutes=1))
    assert attempts() == [1, 1, 1]  # tried once, next in 10 minutes
    for minute in range(2, 11):
        poll_once(params, provider, sql_store, NOW + timedelta(minutes=minute))
    assert attempts() == [1, 1, 1]  # not re-read every cycle
    poll_once(params, provider, sql_store, NOW + timedelta(minutes=11))
    assert attempts() == [2, 2, 2]  # then 20 minutes
    poll_once(params, provider, sql_store, NOW + timedelta(minutes=30))
    assert attempts() == [2, 2, 2]
    poll_once(params, provider, sql_store, NOW + timedelta(minutes=31))
    assert attempts() == [3, 3, 3]


# -- what an operator sees: status, metrics, db prune ------------------------------------------


def cli(store: SqlStore, *args: str, **env: str) -> Result:
    environment = {
        "SIRO_POLLER_DATABASE__URL": database_url(store.engine),
        "SIRO_POLLER_RETENTION__EVENTS_DAYS": "30",
        **env,
    }
    return CliRunner().invoke(main, list(args), env=environment)


def test_status_and_metrics_show_the_size_of_each_table(sql_store: SqlStore) -> None:
    uploaded(sql_store, "c-1")
    keep_unmapped(sql_store, 2, NOW)

    result = cli(sql_store, "status", "--json")

    document = json.loads(result.stdout)
    database = document["database"]
    assert database["rows"]["calls"] == 1 and database["rows"]["unmapped_records"] == 2
    assert database["rows"]["call_events"] == 0
    assert database["database_bytes"] > 0
    assert "database: " in cli(sql_store, "status").stdout
    registry = CollectorRegistry()
    registry.register(TableSizeCollector(sql_store))
    scraped = generate_latest(registry).decode()
    assert 'siro_poller_table_rows{table="unmapped_records"} 2.0' in scraped
    assert "siro_poller_database_bytes " in scraped


def test_db_prune_dry_run_says_what_would_go_and_changes_nothing(sql_store: SqlStore) -> None:
    call_id = uploaded(sql_store, "c-1", at=datetime.now(UTC) - timedelta(days=200))
    seed_event(sql_store, call_id, at=datetime.now(UTC) - timedelta(days=200))
    before = dump(sql_store)

    result = cli(sql_store, "db", "prune", "--dry-run")

    assert result.exit_code == 0, result.output
    assert "would remove: personal data of 1 finished call(s), 1 event(s)" in result.stdout
    assert dump(sql_store) == before

    done = cli(sql_store, "db", "prune", "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["calls_pruned"] == 1
    assert row_of(sql_store, call_id)["contact_name"] is None
    assert sql_store.events_for(call_id) == []


def test_beyond_the_cap_a_new_unmapped_record_is_kept_as_a_marker_at_once(
    sql_store: SqlStore,
    call_log: tuple[FakeCallLog, LocalHTTPServer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    api, server = call_log
    t0 = NOW - timedelta(hours=2)
    for n in range(5):
        record = quickstart_call(f"bad-{n}", t0 + timedelta(seconds=n))
        record["started_at"] = f"not a time {n}"
        api.add_call(record, t0 + timedelta(seconds=n))
    settings = Settings(
        provider={"base_url": server.url},
        poll={"start_at": t0 - timedelta(minutes=5)},
        retention={"unmapped_max_kept": 2},
    )
    provider = GenericProvider(settings.provider, retry=RetryPolicy(max_tries=1))
    caplog.set_level(logging.WARNING, "poller.core.poll")

    report = poll_once(poll_params_from_settings(settings), provider, sql_store, NOW)

    assert report.malformed_count == 5 and report.unmapped_over_cap == 3
    rows = sql_store.unmapped_records("generic", resolved=None, limit=10)
    assert [(row.provider_call_id, bool(row.raw)) for row in rows] == [
        ("bad-0", True),
        ("bad-1", True),
        ("bad-2", False),
        ("bad-3", False),
        ("bad-4", False),
    ]
    assert all("unmapped_max_kept (2)" in (row.expired_reason or "") for row in rows[2:])
    assert sql_store.status(NOW).unmapped == {"generic": 2}
    assert sql_store.status(NOW).unmapped_expired == {"generic": 3}
    assert any("kept without their raw text" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(("role", "runs"), [("all", True), ("poller", True), ("worker", False)])
def test_the_daemon_runs_retention_as_a_job_of_its_own_on_the_polling_side(
    tmp_path: Path, role: str, runs: bool, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.test_daemon_roles import SwitchableLock, daemon_for

    daemon = daemon_for(tmp_path, role, SwitchableLock(), [])
    passes: list[int] = []

    def failing_pass() -> None:
        passes.append(1)
        raise RuntimeError("database gone")

    daemon.retention = failing_pass
    jobs = {job: every for job, _body, every in daemon.jobs()}
    assert ("retention" in jobs) is runs
    if runs:
        assert jobs["retention"] == 900
    daemon.retention_job()  # a failing pass is logged; the daemon goes on
    assert passes == [1]
    assert "retention pass failed" in caplog.text
    assert "retention" not in daemon.health.running


# -- the space of what a large pass removed, on PostgreSQL --------------------------------------


def vacuums(store: SqlStore) -> int:
    """How many times the unmapped_records table was vacuumed by hand (PostgreSQL's counter)."""
    with store.engine.connect() as conn:
        conn.exec_driver_sql("SELECT pg_stat_clear_snapshot()")
        return int(
            conn.execute(
                text(
                    "SELECT vacuum_count FROM pg_stat_user_tables "
                    "WHERE relname = 'unmapped_records'"
                )
            ).scalar_one()
        )


def test_a_large_pass_asks_postgresql_to_reuse_the_space_once_a_small_one_does_not(
    sql_store: SqlStore, caplog: pytest.LogCaptureFixture
) -> None:
    postgres = sql_store.engine.dialect.name == "postgresql"
    rules = RetentionRules(
        personal_data_after=None, events_after=None, unmapped_after=None, unmapped_max_kept=1
    )
    keep_unmapped(sql_store, 5, NOW)
    before = vacuums(sql_store) if postgres else 0

    small = run_retention(rules, sql_store, NOW)

    assert small.unmapped_expired == {"cap": 4} and small.reclaimed == []
    keep_unmapped(sql_store, 1200, NOW + timedelta(minutes=1), provider="flood")
    caplog.set_level(logging.DEBUG, "poller.core.retention")
    assert run_retention(rules, sql_store, NOW, dry_run=True).reclaimed == []

    large = run_retention(rules, sql_store, NOW + timedelta(minutes=2))

    assert large.unmapped_expired == {"cap": 1199}
    if postgres:
        # One plain VACUUM of the table the pass changed, said at DEBUG.
        assert large.reclaimed == ["unmapped_records"]
        assert vacuums(sql_store) == before + 1
        [line] = [r for r in caplog.records if "reuse the space" in r.getMessage()]
        assert line.levelno == logging.DEBUG
        assert "unmapped_records (1199 rows changed)" in line.getMessage()
    else:
        # SQLite reuses the pages of deleted rows by itself: nothing to ask.
        assert large.reclaimed == []
