"""Operational errors are one line on stderr and exit status 2, naming the key to fix, never
the password; and the `db` commands an operator reaches for when the schema is in question."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from poller.adapters.sql import migrate
from poller.adapters.sql.database import make_engine
from poller.cli import main
from tests.conftest import database_url, postgres_admin_url
from tests.postgres_refusing import refusing_postgres

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


def test_a_wrong_postgresql_password_names_database_password_and_its_variable() -> None:
    with refusing_postgres() as port:
        url = f"postgresql+psycopg://siro@127.0.0.1:{port}/siro"
        result = run(
            "status", SIRO_POLLER_DATABASE__URL=url, SIRO_POLLER_DATABASE__PASSWORD=PASSWORD
        )
    line = assert_one_line(result, "refused the password for user siro")
    assert line.endswith(
        "check database.password (SIRO_POLLER_DATABASE__PASSWORD or the credential file "
        "database.password)"
    )
    assert "check database.url" not in line


def test_a_wrong_password_written_in_the_url_says_so() -> None:
    with refusing_postgres() as port:
        url = f"postgresql+psycopg://siro:{PASSWORD}@127.0.0.1:{port}/siro"
        result = run("db", "current", SIRO_POLLER_DATABASE__URL=url)
    assert_one_line(result, "refused the password for user siro written in database.url")


@contextmanager
def read_only(path: Path) -> Iterator[None]:
    """``path`` unwritable for this process: by its mode, or, for root, whom modes do not
    stop, by the immutable attribute (as a read-only mount or a foreign owner would)."""
    if os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(0o555 if path.is_dir() else 0o444)
        try:
            yield
        finally:
            path.chmod(mode)
        return
    chattr = shutil.which("chattr")
    if chattr is None:
        pytest.skip("running as root without chattr: nothing makes a file read-only for root")
    made = subprocess.run([chattr, "+i", str(path)], capture_output=True, check=False)
    if made.returncode != 0:
        pytest.skip(f"running as root and cannot make {path} immutable: {made.stderr!r}")
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", str(path)], check=True)


def sqlite_at_head(path: Path) -> str:
    """A migrated SQLite file with no connection left open (so no journal files beside it)."""
    url = f"sqlite:///{path}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    return url


def write_to(url: str) -> Result:
    """A poll of a provider that is not there: it writes its failure to the database."""
    return run(
        "poll",
        SIRO_POLLER_DATABASE__URL=url,
        SIRO_POLLER_PROVIDER__BASE_URL=f"http://127.0.0.1:{closed_port()}/",
        SIRO_POLLER_PROVIDER__AUTH="none",
        SIRO_POLLER_PROVIDER__MAX_RETRIES="0",
    )


def test_a_read_only_sqlite_file_is_named_as_read_only(tmp_path: Path) -> None:
    database = tmp_path / "state.sqlite3"
    url = sqlite_at_head(database)
    with read_only(database):
        result = write_to(url)
    line = assert_one_line(result, f"the file {database} is read-only for this user")
    assert "check database.url" in line


def test_a_sqlite_file_in_a_read_only_directory_names_the_directory(tmp_path: Path) -> None:
    directory = tmp_path / "state"
    directory.mkdir()
    url = sqlite_at_head(directory / "state.sqlite3")
    with read_only(directory):
        result = write_to(url)
    assert_one_line(result, f"the directory {directory} is read-only for this user")
