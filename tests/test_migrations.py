"""Migrations are a public artefact: they build the schema auditors query, on both backends."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import IntegrityError

from poller.adapters.sql import migrate
from poller.adapters.sql.database import make_engine
from poller.adapters.sql.models import Base
from poller.app import open_store

ROOT = Path(__file__).resolve().parent.parent

# The column names auditors write SQL against. Adding is fine; renaming or removing is not.
PUBLIC_COLUMNS = {
    "calls": {
        "id", "provider", "provider_call_id", "state", "attempts", "next_attempt_at",
        "last_error", "error_kind", "lease_owner", "lease_expires_at", "started_at", "ended_at",
        "duration_seconds", "direction", "rep_email", "rep_phone", "rep_provider_id",
        "siro_user_id", "contact_name", "contact_phone", "title", "recording_url",
        "audio_format", "size_bytes", "sha256", "spool_path", "siro_file_url",
        "siro_recording_id", "uploaded_at", "raw", "created_at", "updated_at", "attribution",
    },
    "call_events": {
        "id", "call_id", "at", "from_state", "to_state", "step", "outcome", "http_status",
        "message", "duration_ms",
    },
    "poll_cursors": {"provider", "cursor_value", "last_polled_at", "last_success_at", "last_error"},
    "siro_users": {
        "id", "email", "email_lower", "phone_number", "phone_e164", "first_name", "last_name",
        "external_id", "organization_id", "disabled", "synced_at", "missing_since",
    },
    "unmapped_records": {
        "id", "provider", "raw_sha256", "provider_call_id", "window_start", "window_end", "page",
        "item_index", "reason", "raw", "first_seen_at", "last_seen_at", "times_seen",
        "resolved_at", "resolved_call_id",
    },
    "credential_pauses": {"scope", "reason", "since", "last_probe_at"},
    "worker_heartbeats": {"owner", "started_at", "beat_at"},
    "backfill_runs": {
        "id", "provider", "since", "until", "listed_until", "windows", "listed", "new_calls",
        "known", "unmapped", "started_at", "updated_at", "finished_at", "last_error",
    },
}  # fmt: skip


@pytest.fixture(params=["sqlite", "postgres"])
def empty_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A database with no schema at all."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    else:
        url = request.getfixturevalue("fresh_postgres_url")
    engine = make_engine(url)
    yield engine
    engine.dispose()


def table_columns(engine: Engine) -> dict[str, set[str]]:
    inspector = inspect(engine)
    return {
        table: {column["name"] for column in inspector.get_columns(table)}
        for table in inspector.get_table_names()
    }


def test_upgrade_creates_every_public_table_and_column(empty_engine: Engine) -> None:
    migrate.upgrade(empty_engine)
    columns = table_columns(empty_engine)
    for table, expected in PUBLIC_COLUMNS.items():
        assert expected <= columns[table], f"{table} lacks {expected - columns[table]}"
    assert migrate.current_revision(empty_engine) == migrate.head_revision(empty_engine)


def test_downgrade_to_base_and_upgrade_again(empty_engine: Engine) -> None:
    migrate.upgrade(empty_engine)
    migrate.downgrade(empty_engine, "base")
    assert set(table_columns(empty_engine)) <= {"alembic_version"}
    migrate.upgrade(empty_engine)
    assert PUBLIC_COLUMNS.keys() <= table_columns(empty_engine).keys()


def test_models_and_migrations_describe_the_same_schema(empty_engine: Engine) -> None:
    migrate.upgrade(empty_engine)
    with empty_engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_the_store_refuses_a_database_that_is_not_at_head(empty_engine: Engine) -> None:
    with pytest.raises(migrate.SchemaNotCurrent, match="run `siro-poller db upgrade`"):
        migrate.assert_at_head(empty_engine)


def test_the_start_checks_the_head_alembic_finds(empty_engine: Engine) -> None:
    """Each start compares the database with HEAD_REVISION, without alembic: it must name the
    newest script, or every command would refuse a database `db upgrade` just brought up."""
    assert migrate.head_revision(empty_engine) == migrate.HEAD_REVISION
    migrate.upgrade(empty_engine)
    migrate.assert_at_head(empty_engine)


def test_the_revision_is_read_as_alembic_records_it(empty_engine: Engine) -> None:
    assert migrate.current_revision(empty_engine) is None
    migrate.upgrade(empty_engine, "0012")
    with empty_engine.connect() as connection:
        assert MigrationContext.configure(connection).get_current_revision() == "0012"
    assert migrate.current_revision(empty_engine) == "0012"
    with pytest.raises(migrate.SchemaNotCurrent, match=r"at revision 0012, .* needs revision"):
        migrate.assert_at_head(empty_engine)


def test_a_version_table_with_two_revisions_is_refused(empty_engine: Engine) -> None:
    migrate.upgrade(empty_engine)
    with empty_engine.begin() as connection:
        connection.execute(text("INSERT INTO alembic_version (version_num) VALUES ('0012')"))
    with pytest.raises(migrate.SchemaNotCurrent, match=r"several revisions \(0012, 0013\)"):
        migrate.assert_at_head(empty_engine)


def _insert_call(engine: Engine, **overrides: object) -> None:
    now = datetime.now(UTC).replace(tzinfo=None)
    values = {"provider": "p", "provider_call_id": "c", "state": "pending", "now": now}
    values.update(overrides)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO calls (provider, provider_call_id, state, created_at, updated_at) "
                "VALUES (:provider, :provider_call_id, :state, :now, :now)"
            ),
            values,
        )


def test_the_schema_itself_guards_states_and_uniqueness(engine: Engine) -> None:
    _insert_call(engine)
    with pytest.raises(IntegrityError):
        _insert_call(engine)  # the same provider call twice
    with pytest.raises(IntegrityError):
        _insert_call(engine, provider_call_id="d", state="uploading")
    with pytest.raises(IntegrityError):
        # "uploaded" without Siro's recording id would hide a call that never reached Siro.
        _insert_call(engine, provider_call_id="e", state="uploaded")
    _insert_call(engine, provider="q")  # same call id, other provider: a different call


def test_open_store_checks_the_revision(empty_engine: Engine) -> None:
    from poller.config import Settings

    with pytest.raises(migrate.SchemaNotCurrent):
        open_store(Settings(), engine=empty_engine)
    migrate.upgrade(empty_engine)
    assert open_store(Settings(), engine=empty_engine).list_calls() == []


def test_the_wheel_carries_the_migrations(built_wheel: Path) -> None:
    names = set(zipfile.ZipFile(built_wheel).namelist())
    assert "poller/migrations/env.py" in names
    assert "poller/migrations/script.py.mako" in names
    shipped = {n for n in names if n.startswith("poller/migrations/versions/")}
    in_source = {
        f"poller/migrations/versions/{p.name}" for p in (ROOT / "migrations/versions").glob("*.py")
    }
    assert shipped == in_source
