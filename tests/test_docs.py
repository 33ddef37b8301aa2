"""The README's commands are the ones CI runs, and its audit SQL runs on both databases."""

from __future__ import annotations

import re
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine

from poller.adapters.sql.store import SqlStore
from poller.config import Settings
from poller.domain.states import CallState
from tests.seed import seed_call, seed_event

ROOT = Path(__file__).resolve().parent.parent


def test_ci_runs_exactly_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = re.findall(r"```sh\n(pip install '\.\[test\]'.*)\n```", readme)
    assert len(commands) == 1, "the README must show one install-and-test command"
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert commands[0] in ci.splitlines()
    assert "POLLER_TEST_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test" in ci


def test_every_toml_example_in_the_readme_is_a_valid_config() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```toml\n(.*?)```", readme, re.DOTALL)
    assert blocks
    for block in blocks:
        Settings(**tomllib.loads(block))


def audit_statements() -> list[tuple[str, str, str | None]]:
    """Every SQL statement of the README's state-database section: (comment, SQL, dialect).

    A statement whose comment ends in ``(PostgreSQL)`` or ``(SQLite)`` is for that database
    only; every other one must run on both."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## The state database", 1)[1].split("\n## ", 1)[0]
    statements: list[tuple[str, str, str | None]] = []
    for block in re.findall(r"```sql\n(.*?)```", section, re.DOTALL):
        comment, lines = "", []
        for line in block.splitlines():
            if line.startswith("--"):
                comment = line
                continue
            if line.strip():
                lines.append(line)
            if line.rstrip().endswith(";"):
                dialect = {"(PostgreSQL)": "postgresql", "(SQLite)": "sqlite"}.get(
                    comment.split()[-1]
                )
                statements.append((comment, "\n".join(lines).rstrip(";"), dialect))
                lines = []
        assert not lines, f"a statement without its closing semicolon: {lines}"
    return statements


def test_every_audit_query_of_the_readme_runs_and_finds_the_stuck_row(engine: Engine) -> None:
    store = SqlStore(engine)
    now = datetime.now(UTC)
    stuck = seed_call(store, "stuck", next_attempt_at=now - timedelta(hours=2), attempts=3)
    seed_call(store, "fresh", next_attempt_at=now - timedelta(minutes=5))
    uploaded = seed_call(
        store,
        "call-789",
        state=CallState.UPLOADED,
        siro_recording_id="rec-1",
        uploaded_at=now,
        started_at=now - timedelta(days=1),
        rep_email="rep@example.com",
    )
    seed_event(store, uploaded.id, step="replay", outcome="requeued", message="previous rec-0")
    dialect = engine.dialect.name
    statements = audit_statements()
    for only in ("postgresql", "sqlite"):
        # Each dialect-specific query has its counterpart for the other database.
        assert sum(1 for *_, d in statements if d == only) == 2
    ran = 0
    with engine.connect() as connection:
        for comment, sql, only in statements:
            if only not in (None, dialect):
                continue
            rows = connection.exec_driver_sql(sql).all()
            ran += 1
            if comment.startswith("-- Rows stuck in the queue"):
                assert [row.id for row in rows] == [stuck.id], sql
            if comment.startswith("-- Calls sent to Siro again on purpose"):
                assert [row.message for row in rows] == ["previous rec-0"]
    assert ran >= 10
