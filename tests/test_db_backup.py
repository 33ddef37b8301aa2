"""`siro-poller db backup`: a SQLite copy taken while the daemon writes opens, is whole and
holds the rows; PostgreSQL is pointed at pg_dump."""

from __future__ import annotations

import sqlite3
import stat
import threading
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, insert

from poller.adapters.sql.database import write_transaction
from poller.adapters.sql.models import call_events_table, calls_table
from poller.cli import main
from tests.conftest import database_url


def write_calls(engine: Engine, stop: threading.Event, written: list[int]) -> None:
    """What the daemon does all day: a call and its event per transaction."""
    while not stop.is_set():
        now = datetime.now(UTC)
        with write_transaction(engine) as connection:
            call_id = connection.execute(
                insert(calls_table)
                .values(
                    provider="generic",
                    provider_call_id=f"c-{len(written)}",
                    state="pending",
                    raw={"padding": "x" * 2000},
                    created_at=now,
                    updated_at=now,
                )
                .returning(calls_table.c.id)
            ).scalar_one()
            connection.execute(
                insert(call_events_table).values(
                    call_id=call_id, at=now, step="poll", outcome="listed"
                )
            )
        written.append(call_id)


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_a_backup_taken_while_the_daemon_writes_is_whole(engine: Engine, tmp_path: Path) -> None:
    stop, written = threading.Event(), []
    writer = threading.Thread(target=write_calls, args=(engine, stop, written))
    writer.start()
    try:
        while len(written) < 200:
            assert writer.is_alive(), "the writer stopped"
            threading.Event().wait(0.01)
        target = tmp_path / "backup.sqlite3"
        env = {"SIRO_POLLER_DATABASE__URL": database_url(engine)}
        result = CliRunner().invoke(main, ["db", "backup", str(target)], env=env)
        more = len(written)
        while len(written) < more + 50:  # the daemon went on writing after the copy
            assert writer.is_alive(), "the writer stopped"
            threading.Event().wait(0.01)
    finally:
        stop.set()
        writer.join()

    assert result.exit_code == 0, result.output
    assert "integrity ok" in result.stdout
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    with closing(sqlite3.connect(target)) as copy:
        assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        calls = copy.execute("SELECT count(*) FROM calls").fetchone()[0]
        events = copy.execute("SELECT count(*) FROM call_events").fetchone()[0]
        revision = copy.execute("SELECT version_num FROM alembic_version").fetchone()
    assert 200 <= calls < len(written)
    assert events == calls  # each transaction whole: no call without its event
    assert revision is not None
    assert not Path(f"{target}-wal").exists()


def test_a_backup_never_overwrites_a_file(engine: Engine, tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.write_text("keep me")
    env = {"SIRO_POLLER_DATABASE__URL": database_url(engine)}

    result = CliRunner().invoke(main, ["db", "backup", str(target)], env=env)

    assert result.exit_code == 1
    if engine.dialect.name == "postgresql":
        assert "pg_dump --format=custom" in result.stderr
        assert "postgres@" in result.stderr or "postgresql://" in result.stderr
    else:
        assert "exists: choose a new file name" in result.stderr
    assert target.read_text() == "keep me"
