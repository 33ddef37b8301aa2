"""`siro-poller calls forget`: a data subject's calls leave no personal trace in the state
database, on SQLite and PostgreSQL, and are never ingested or uploaded again.

Calls go in through the real poll cycle (the generic adapter against the call-log simulator)
and the real worker (the Siro client against the Siro simulator); the forget runs as the
command line runs it; a full dump of the database is then searched for the subject.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine, inspect, text

from poller.adapters.http import RetryPolicy
from poller.adapters.providers.generic import GenericProvider
from poller.adapters.sql.store import SqlStore
from poller.app import build_siro_client, build_worker
from poller.cli import main
from poller.config import Settings
from poller.core.poll import poll_once
from poller.core.users_sync import sync_users
from poller.domain.erasure import FORGOTTEN_KIND
from poller.domain.error_kinds import error_kind
from poller.domain.failures import Disposition
from poller.domain.states import CallState
from poller.simulators.audio import mp3_bytes
from poller.simulators.provider_server import FakeCallLog, quickstart_call, serve
from poller.simulators.siro_server import FakeSiro
from poller.wiring import poll_params_from_settings
from tests.conftest import database_url
from tests.daemon_process import env_text

STARTED = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
NO_WAIT = RetryPolicy(max_tries=1, base_delay=0.0, max_delay=0.0)

# The data subject, and how the vendor spells their number.
SUBJECT_NAME = "Zelda Quintessa"
SUBJECT_PHONE = "+1 (415) 555-0199"
SUBJECT_EMAIL = "Zelda.Q@example.org"
# What must not be found anywhere afterwards (a name, the number in each spelling).
NEEDLES = ("Quintessa", "4155550199", "555-0199", "zelda.q@example.org")


@dataclass
class World:
    api: FakeCallLog
    provider_url: str
    siro: FakeSiro
    engine: Engine
    store: SqlStore
    settings: Settings
    env: dict[str, str]

    def offer(self, call_id: str, minute: int, *, ready: bool = True, **fields: Any) -> None:
        at = STARTED + timedelta(minutes=minute)
        url = None
        if ready:
            path = self.api.add_recording(f"/recordings/{call_id}", mp3_bytes(1))
            url = self.provider_url + path
        self.api.add_call({**quickstart_call(call_id, at, recording_url=url), **fields}, at)

    def poll(self) -> None:
        provider = GenericProvider(self.settings.provider, retry=NO_WAIT)
        params = poll_params_from_settings(self.settings)
        report = poll_once(params, provider, self.store, datetime.now(UTC))
        assert report.ok, report.error

    def drain(self) -> None:
        providers = {"generic": GenericProvider(self.settings.provider, retry=NO_WAIT)}
        siro = build_siro_client(self.settings)
        sync_users(siro, self.store, datetime.now(UTC), default_region="US")
        worker = build_worker(
            self.settings, self.store, threading.Event(), providers=providers, siro=siro
        )
        worker.drain()

    def cli(self, *arguments: str, stdin: str | None = None) -> Result:
        return CliRunner().invoke(main, list(arguments), env=self.env, input=stdin)

    def call(self, provider_call_id: str) -> Any:
        (found,) = self.store.find_calls(provider_call_id)
        return found


@pytest.fixture
def world(engine: Engine, tmp_path: Path) -> Iterator[World]:
    api = FakeCallLog()
    with serve(api) as provider, FakeSiro() as siro:
        poll = {
            "start_at": (STARTED - timedelta(minutes=5)).isoformat(),
            "settle_delay_seconds": 0,
            # Every poll lists the last hours again: a forgotten call comes back each time.
            "lookback_minutes": 240,
        }
        values = {
            "database": {"url": database_url(engine)},
            "state_dir": tmp_path / "state",
            "provider": {"base_url": provider.url},
            "poll": poll,
            "siro": siro.settings_values(),
        }
        env = {
            "SIRO_POLLER_DATABASE__URL": database_url(engine),
            "SIRO_POLLER_STATE_DIR": str(tmp_path / "state"),
            "SIRO_POLLER_PROVIDER__BASE_URL": provider.url,
            **{f"SIRO_POLLER_POLL__{k.upper()}": env_text(v) for k, v in poll.items()},
            **{
                f"SIRO_POLLER_SIRO__{k.upper()}": env_text(v)
                for k, v in siro.settings_values().items()
            },
        }
        yield World(api, provider.url, siro, engine, SqlStore(engine), Settings(**values), env)


def subject_calls(world: World) -> None:
    """Two calls of the subject (one uploaded, one still waiting for its recording), one of
    someone else, and a record of the subject's the mapping cannot read."""
    world.offer("c-subject", 1, contact_name=SUBJECT_NAME, contact_phone=SUBJECT_PHONE)
    world.offer(
        "c-subject-waiting",
        2,
        ready=False,
        contact_name=SUBJECT_NAME,
        contact_phone="4155550199",
        contact_email=SUBJECT_EMAIL,
    )
    world.offer("c-other", 3, contact_name="Ann Lee", contact_phone="+15551234567")
    broken = quickstart_call("ignored", STARTED + timedelta(minutes=4))
    broken.pop("call_id")
    broken.update(contact_name=SUBJECT_NAME, contact_phone="415.555.0199")
    world.api.add_call(broken, STARTED + timedelta(minutes=4), key="no-id")


def full_dump(engine: Engine) -> str:
    """Every row of every table, as text; on SQLite, the SQL dump."""
    if engine.dialect.name == "sqlite":
        path = engine.url.database
        assert path
        connection = sqlite3.connect(path)
        try:
            return "\n".join(connection.iterdump())
        finally:
            connection.close()
    lines = []
    with engine.connect() as connection:
        for table in inspect(engine).get_table_names():
            rows = connection.execute(text(f'SELECT t::text FROM "{table}" t'))  # noqa: S608
            lines += [f"{table}: {row[0]}" for row in rows]
    return "\n".join(lines)


def raw_files(engine: Engine) -> bytes:
    """The bytes of the SQLite database and its WAL, as a disk search would read them."""
    path = Path(engine.url.database or "")
    return b"".join(
        candidate.read_bytes() for candidate in (path, Path(f"{path}-wal")) if candidate.exists()
    )


def assert_no_trace(engine: Engine) -> None:
    dump = full_dump(engine).lower()
    for needle in NEEDLES:
        assert needle.lower() not in dump, f"{needle!r} is still in the dump"
    if engine.dialect.name == "sqlite":
        engine.dispose()  # the store's pooled connections
        data = raw_files(engine).lower()
        for needle in NEEDLES:
            assert needle.lower().encode() not in data, f"{needle!r} is still in the files"


def manual_vacuums(engine: Engine) -> dict[str, int]:
    """How many times each of the poller's tables was vacuumed by hand (PostgreSQL's count)."""
    with engine.connect() as conn:
        conn.exec_driver_sql("SELECT pg_stat_clear_snapshot()")
        rows = conn.exec_driver_sql(
            "SELECT relname, vacuum_count FROM pg_stat_user_tables "
            "WHERE relname IN ('calls', 'call_events', 'unmapped_records')"
        ).all()
    return {name: int(count) for name, count in rows}


def test_a_forget_by_phone_leaves_no_trace_and_the_call_never_comes_back(world: World) -> None:
    subject_calls(world)
    world.poll()
    world.drain()
    uploaded = world.call("c-subject")
    assert uploaded.state is CallState.UPLOADED
    assert len(world.siro.state.recordings) == 2
    assert "Quintessa" in full_dump(world.engine)  # the search below can find it

    postgres = world.engine.dialect.name == "postgresql"
    vacuumed_before = manual_vacuums(world.engine) if postgres else {}

    result = world.cli(
        "calls", "forget", "--contact-phone", "(415) 555 0199", "--yes", "--by", "DPO ticket 7"
    )

    assert result.exit_code == 0, result.output
    assert "forgot 2 calls" in result.stdout
    assert uploaded.siro_recording_id in result.stdout
    if postgres:
        # The dead row versions' space is marked for reuse now, not when autovacuum comes.
        assert "database: VACUUM of calls, call_events, unmapped_records done" in result.stdout
        assert manual_vacuums(world.engine) == {
            table: count + 1 for table, count in vacuumed_before.items()
        }
    assert "documents no recording deletion" in result.stdout
    assert_no_trace(world.engine)
    other = world.call("c-other")
    assert (other.contact_name, other.state) == ("Ann Lee", CallState.UPLOADED)
    assert other.raw is not None and other.title
    for key in ("c-subject", "c-subject-waiting"):
        tombstone = world.call(key)
        assert tombstone.forgotten_at is not None
        assert (tombstone.contact_name, tombstone.contact_phone, tombstone.raw) == (None,) * 3
        (event,) = [e for e in world.store.events_for(tombstone.id) if e.step == "forget"]
        assert "by DPO ticket 7" in event.message
        assert "contact_name" in event.message and "raw" in event.message
    assert world.call("c-subject").siro_recording_id == uploaded.siro_recording_id
    assert world.call("c-subject-waiting").state is CallState.SKIPPED

    # The vendor lists both again, the waiting one now with its recording ready.
    world.api.update_call(
        "c-subject-waiting", recording_url=world.provider_url + "/recordings/late"
    )
    world.api.add_recording("/recordings/late", mp3_bytes(1))
    world.poll()
    world.drain()

    assert_no_trace(world.engine)
    assert len(world.siro.state.recordings) == 2
    assert world.call("c-subject-waiting").state is CallState.SKIPPED
    assert world.store.unmapped_records() == []
    retried = world.cli("calls", "retry", "c-subject-waiting")
    assert retried.exit_code == 1
    assert "forgotten" in retried.stderr


def test_a_dry_run_changes_nothing(world: World) -> None:
    subject_calls(world)
    world.poll()
    before = full_dump(world.engine)

    result = world.cli("calls", "forget", "--contact-phone", "+14155550199", "--dry-run")

    assert result.exit_code == 0, result.output
    assert (
        "would forget 2 calls and empty 1 unmapped record that quote the subject; "
        "dry run: nothing changed"
    ) in result.stdout
    assert full_dump(world.engine) == before


def test_a_forget_by_call_id_email_or_date_takes_those_calls_only(world: World) -> None:
    subject_calls(world)
    world.offer("c-late", 90, contact_name="Bo Late")
    world.poll()

    by_id = world.cli("calls", "forget", "--call-id", "c-other", "--yes")
    assert by_id.exit_code == 0, by_id.output
    assert world.call("c-other").forgotten_at is not None
    assert world.call("c-subject").forgotten_at is None

    # The email sits only in the waiting call's raw record; the rep's email never selects.
    by_email = world.cli("calls", "forget", "--email", "zelda.q@EXAMPLE.org", "--yes")
    assert by_email.exit_code == 0, by_email.output
    assert "forgot 1 call;" in by_email.stdout
    assert world.call("c-subject-waiting").forgotten_at is not None
    rep = world.cli("calls", "forget", "--email", "rep@yourcompany.com", "--dry-run")
    assert "no call matches" in rep.stdout

    cutoff = (STARTED + timedelta(minutes=30)).isoformat()
    by_date = world.cli("calls", "forget", "--before", cutoff, "--yes")
    assert by_date.exit_code == 0, by_date.output
    assert world.call("c-subject").forgotten_at is not None
    assert world.call("c-late").forgotten_at is None
    assert world.call("c-late").contact_name == "Bo Late"


def test_a_forget_asks_first_and_refuses_unknown_ids(world: World) -> None:
    subject_calls(world)
    world.poll()

    declined = world.cli("calls", "forget", "--call-id", "c-other", stdin="n\n")
    assert declined.exit_code == 1
    assert world.call("c-other").forgotten_at is None

    unknown = world.cli("calls", "forget", "--call-id", "c-other", "--call-id", "nope", "--yes")
    assert unknown.exit_code == 1
    assert "'nope'" in unknown.stderr
    assert world.call("c-other").forgotten_at is None

    nothing = world.cli("calls", "forget", "--yes")
    assert nothing.exit_code == 2


def test_the_forgotten_kind_is_in_the_error_catalog() -> None:
    entry = error_kind(FORGOTTEN_KIND)
    assert entry is not None and entry.disposition is Disposition.SKIP


def test_a_forget_removes_the_calls_files_from_the_spool(world: World) -> None:
    world.offer("c-spooled", 1, contact_name=SUBJECT_NAME)
    world.poll()
    call = world.call("c-spooled")
    spool = world.settings.spool_dir
    spool.mkdir(parents=True)
    recording, part = spool / f"call-{call.id}.mp3", spool / f"call-{call.id}.download.part"
    recording.write_bytes(b"ID3 audio of the subject")
    part.write_bytes(b"half a download")
    someone_else = spool / f"call-{call.id + 100}.mp3"
    someone_else.write_bytes(b"not the subject's")
    with world.engine.begin() as connection:
        connection.execute(
            text("UPDATE calls SET state = 'downloaded', spool_path = :path WHERE id = :id"),
            {"path": str(recording), "id": call.id},
        )

    result = world.cli("calls", "forget", "--call-id", str(call.id), "--yes")

    assert result.exit_code == 0, result.output
    assert "spool files removed: 2" in result.stdout
    assert not recording.exists() and not part.exists()
    assert someone_else.exists()
    forgotten = world.call("c-spooled")
    assert (forgotten.state, forgotten.spool_path) == (CallState.SKIPPED, None)
    assert forgotten.error_kind == FORGOTTEN_KIND


def test_a_worker_holding_a_forgotten_call_can_no_longer_write_to_it(world: World) -> None:
    world.offer("c-leased", 1, contact_name=SUBJECT_NAME)
    world.offer("c-kept", 2)
    world.poll()
    now = datetime.now(UTC)
    claimed = world.store.claim_due("worker-a", now, now + timedelta(minutes=5), 10)
    assert len(claimed) == 2

    result = world.cli("calls", "forget", "--call-id", "c-leased", "--yes")

    assert result.exit_code == 0, result.output
    leased = world.call("c-leased")
    assert leased.lease_owner is None
    assert not world.store.mark_create_sent(leased.id, "worker-a", now, "Phone call with Zelda")
    assert world.call("c-leased").title is None
    kept = world.call("c-kept")
    assert kept.lease_owner == "worker-a"
    assert world.store.mark_create_sent(kept.id, "worker-a", now, "a title")


def test_the_erased_raw_record_is_sql_null(world: World) -> None:
    world.offer("c-raw", 1, contact_name=SUBJECT_NAME)
    world.poll()

    assert world.cli("calls", "forget", "--call-id", "c-raw", "--yes").exit_code == 0

    with world.engine.connect() as connection:
        found = connection.execute(
            text("SELECT count(*) FROM calls WHERE provider_call_id = 'c-raw' AND raw IS NULL")
        ).scalar_one()
    assert found == 1


def test_a_record_no_call_came_of_is_emptied_when_it_quotes_the_subject(world: World) -> None:
    broken = quickstart_call("ignored", STARTED)
    broken.pop("call_id")
    broken.update(contact_name=SUBJECT_NAME, contact_email=SUBJECT_EMAIL)
    world.api.add_call(broken, STARTED, key="no-id")
    world.offer("c-other", 3, contact_name="Ann Lee")
    world.poll()
    assert len(world.store.unmapped_records()) == 1

    result = world.cli("calls", "forget", "--email", SUBJECT_EMAIL, "--yes")

    assert result.exit_code == 0, result.output
    assert "forgot 0 calls" in result.stdout
    assert "other unmapped records emptied: 1" in result.stdout
    assert_no_trace(world.engine)
    world.poll()  # listed again: not kept again
    assert world.store.unmapped_records() == []
    assert_no_trace(world.engine)
    assert world.call("c-other").contact_name == "Ann Lee"


def test_replaying_the_ledger_after_a_restore_forgets_again_and_keeps_new_calls_out(
    world: World, tmp_path: Path
) -> None:
    world.offer("c-old", 1, contact_name=SUBJECT_NAME, contact_phone=SUBJECT_PHONE)
    world.offer("c-other", 2, contact_name="Ann Lee")
    world.poll()  # <- the backup is taken here
    world.offer("c-new", 3, contact_name=SUBJECT_NAME, contact_phone=SUBJECT_PHONE)
    world.poll()
    forgot = world.cli("calls", "forget", "--contact-phone", SUBJECT_PHONE, "--yes")
    assert "forgot 2 calls" in forgot.stdout, forgot.output
    ledger = tmp_path / "ledger.jsonl"
    since = (STARTED - timedelta(days=1)).isoformat()
    exported = world.cli("calls", "export", "--since", since, "--output", str(ledger))
    assert exported.exit_code == 0, exported.output

    # The restore: the database as it was at the backup (c-new not listed yet).
    with world.engine.begin() as connection:
        for table in ("call_events", "unmapped_records", "calls", "poll_cursors"):
            connection.execute(text(f"DELETE FROM {table}"))  # noqa: S608
    later = world.api.calls.pop("c-new")
    world.poll()
    assert world.call("c-old").contact_name == SUBJECT_NAME
    world.api.calls["c-new"] = later

    result = world.cli("calls", "forget", "--replay-ledger", str(ledger), "--yes", "--by", "ops")

    assert result.exit_code == 0, result.output
    assert "forgot 1 call;" in result.stdout
    assert "tombstones added: 1" in result.stdout
    world.poll()  # c-new is listed again: its tombstone keeps it out
    assert_no_trace(world.engine)
    new = world.call("c-new")
    assert (new.state, new.error_kind, new.contact_name) == (CallState.SKIPPED, "forgotten", None)
    assert world.store.events_for(new.id)[0].outcome == "tombstone"
    assert world.call("c-other").contact_name == "Ann Lee"


def test_a_ledger_that_is_not_an_export_is_refused(world: World, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.jsonl"
    ledger.write_text('{"forgotten": true, "provider": "generic"}\n')

    result = world.cli("calls", "forget", "--replay-ledger", str(ledger), "--yes")

    assert result.exit_code == 2
    assert "line 1 is not a call of `calls export --format jsonl`" in result.stderr
