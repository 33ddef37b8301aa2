"""Operational errors are one line on stderr and exit status 2, naming the key to fix, never
the password; and the `db` commands an operator reaches for when the schema is in question."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

from click.testing import CliRunner, Result
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from poller.adapters.sql import migrate
from poller.cli import main
from tests.conftest import database_url, postgres_admin_url

PASSWORD = "pw-never-shown-7d1c"


def run(*args: str, **env: str) -> Result:
    return CliRunner().invoke(main, list(args), env=env)


def assert_one_line(result: Result, *expected: str) -> str:
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    for text in expected:
        assert text in lines[0]
    assert "Traceback" not in result.output and PASSWORD not in result.output
    return lines[0]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port  # closed again: nothing listens there


def test_postgresql_unreachable_is_one_line_from_the_installed_command(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://siro:{PASSWORD}@127.0.0.1:{closed_port()}/siro"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIRO_POLLER_")}
    for command in (["status"], ["db", "upgrade"], ["calls", "list"]):
        finished = subprocess.run(
            [sys.executable, "-m", "poller", *command],
            env={**env, "SIRO_POLLER_DATABASE__URL": url},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=False,
        )
        assert finished.returncode == 2, finished.stderr
        (line,) = finished.stderr.splitlines()
        assert line.startswith("siro-poller: the state database postgresql+psycopg://siro:")
        assert "Connection refused" in line and line.endswith("check database.url")
        assert PASSWORD not in finished.stderr + finished.stdout


def test_a_missing_postgresql_database_names_it_and_the_key(tmp_path: Path) -> None:
    name = f"siro_poller_missing_{uuid.uuid4().hex[:8]}"
    url = make_url(postgres_admin_url()).set(database=name, password=PASSWORD)
    result = run("status", SIRO_POLLER_DATABASE__URL=url.render_as_string(hide_password=False))
    assert_one_line(result, f'database "{name}" does not exist', "check database.url")


def test_a_password_given_apart_from_the_url_is_not_shown_either() -> None:
    url = f"postgresql+psycopg://siro@127.0.0.1:{closed_port()}/siro"
    result = run(
        "db", "current", SIRO_POLLER_DATABASE__URL=url, SIRO_POLLER_DATABASE__PASSWORD=PASSWORD
    )
    assert_one_line(result, "check database.url")


def test_a_state_dir_that_cannot_be_a_directory(tmp_path: Path) -> None:
    in_the_way = tmp_path / "a-file"
    in_the_way.write_text("not a directory")
    for command in (["status"], ["db", "upgrade"]):
        result = run(*command, SIRO_POLLER_STATE_DIR=str(in_the_way / "state"))
        assert_one_line(result, str(in_the_way), "check state_dir")


def test_a_sqlite_url_in_a_directory_that_cannot_be_made(tmp_path: Path) -> None:
    in_the_way = tmp_path / "a-file"
    in_the_way.write_text("not a directory")
    url = f"sqlite:///{in_the_way / 'sub' / 'state.sqlite3'}"
    result = run("db", "upgrade", SIRO_POLLER_DATABASE__URL=url)
    assert_one_line(result, str(in_the_way), "check database.url")


def test_unknown_revisions_are_one_line(engine: Engine) -> None:
    env = {"SIRO_POLLER_DATABASE__URL": database_url(engine)}
    for command in (["db", "downgrade", "9999", "--yes"], ["db", "upgrade", "--revision", "9999"]):
        result = run(*command, **env)
        assert_one_line(result, "Can't locate revision identified by '9999'", "db history")
    assert migrate.current_revision(engine) == migrate.head_revision(engine)


def test_db_history_marks_the_current_revision_and_downgrade_takes_minus_one(
    engine: Engine,
) -> None:
    env = {"SIRO_POLLER_DATABASE__URL": database_url(engine)}
    revisions = migrate.revisions(engine)
    head, previous = revisions[-1].revision, revisions[-2].revision

    history = run("db", "history", **env)
    assert history.exit_code == 0, history.output
    lines = history.stdout.splitlines()
    assert [line.split()[0] for line in lines] == [r.revision for r in revisions]
    assert lines[-1].endswith("(current, head)")

    stepped = run("db", "downgrade", "-1", "--yes", **env)
    assert stepped.exit_code == 0, stepped.output
    assert stepped.stdout.strip() == f"downgraded to {previous}"
    marked = run("db", "history", **env).stdout.splitlines()
    assert marked[-2].endswith("(current)") and marked[-1].endswith("(head)")

    assert run("db", "upgrade", **env).exit_code == 0
    by_steps = run("db", "downgrade", "--steps", "1", "--yes", **env)
    assert by_steps.stdout.strip() == f"downgraded to {previous}"
    assert run("db", "upgrade", **env).exit_code == 0
    assert migrate.current_revision(engine) == head

    assert run("db", "downgrade", "--yes", **env).exit_code == 2  # neither REVISION nor --steps
    assert run("db", "downgrade", "-x", "--yes", **env).exit_code == 2


def test_db_history_on_an_empty_database_says_how_to_create_it(tmp_path: Path) -> None:
    result = run("db", "history", SIRO_POLLER_STATE_DIR=str(tmp_path / "state"))
    assert result.exit_code == 0, result.output
    assert "`siro-poller db upgrade` creates it" in result.stdout
    assert "(current" not in result.stdout


def test_the_daemon_refuses_a_spool_it_cannot_make_before_starting(
    engine: Engine, tmp_path: Path
) -> None:
    in_the_way = tmp_path / "a-file"
    in_the_way.write_text("not a directory")
    env = {
        "SIRO_POLLER_DATABASE__URL": database_url(engine),
        "SIRO_POLLER_STATE_DIR": str(in_the_way / "state"),
        "SIRO_POLLER_PROVIDER__BASE_URL": "http://127.0.0.1:9/",
        "SIRO_POLLER_SIRO__API_TOKEN": "siro-token",
        "SIRO_POLLER_SIRO__CLIENT_ID": "client",
        "SIRO_POLLER_SIRO__CLIENT_SECRET": "client-secret",
        "SIRO_POLLER_SIRO__TOKEN_USER_ID": "user-1",
    }
    for command in (["run"], ["work", "--until-idle"]):
        result = run(*command, **env)
        assert_one_line(result, str(in_the_way), "check state_dir")
