"""The README's commands are the ones CI runs, and its audit SQL runs on both databases."""

from __future__ import annotations

import re
import shlex
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
from sqlalchemy import Engine

from poller.adapters.sql.store import SqlStore
from poller.cli import main
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


def test_the_readme_starts_with_the_install_and_the_demo() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first_section = re.search(r"^## (.+)$", readme, re.MULTILINE)
    assert first_section and first_section.group(1) == "Quick start"
    first_block = re.search(r"```sh\n(.*?)```", readme, re.DOTALL)
    assert first_block
    lines = [line.split("#")[0].strip() for line in first_block.group(1).splitlines()]
    # From python3 alone: venv's pip bootstrap, a venv, this checkout (not on PyPI), the demo.
    assert lines[0] == "sudo apt install python3-venv"
    assert any(re.fullmatch(r"\S+/bin/pip install \.", line) for line in lines)
    assert lines[-1] == "siro-poller demo"


def test_every_siro_poller_command_in_the_readme_exists() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    invocations = readme_invocations(readme)
    assert len(invocations) > 40, "the README shows many commands; the parser found too few"
    problems = [
        f"{' '.join(args)!r}: {problem}" for args in invocations if (problem := check(args))
    ]
    assert not problems, "\n".join(problems)


def test_the_command_check_catches_what_does_not_exist() -> None:
    assert check(["calls", "list", "--state", "failed", "--json"]) is None
    assert check(["--config", "config.toml", "db", "upgrade"]) is None
    assert check(["calls", "lst"]) == "no command 'lst' in `siro-poller calls`"
    assert (
        check(["calls", "list", "--sate", "x"]) == "no option --sate for `siro-poller calls list`"
    )
    assert check(["--json", "status"]) == "no option --json for `siro-poller`"


# Where a line of shell runs a command: its start, after an operator, a `sudo`, the `--` that
# ends another command's options (`runuser -u siro-poller -- siro-poller ...`) or an assignment.
COMMAND_POSITION_AFTER = {"&&", "||", "|", ";", "$", "--", "sudo", "exec"}
SHELL_OPERATOR = re.compile(r"^(&&|\|\||\||;|>>?|<|2>&1|\))$")
CODE_BLOCK = re.compile(r"```([a-z]*)\n(.*?)```", re.DOTALL)
CODE_SPAN = re.compile(r"`([^`\n]+)`")


def readme_invocations(readme: str) -> list[list[str]]:
    """The arguments of every `siro-poller` command the README shows.

    Shell blocks, the `$ ` lines of other blocks (the rest is output), and inline code that run
    `siro-poller` (or a path ending in it), and each code span of the first column of the
    command table, which leaves the program name out.
    """
    found: list[list[str]] = []
    for language, block in CODE_BLOCK.findall(readme):
        for line in block.splitlines():
            if language == "sh" or line.startswith("$ "):
                found.extend(_invocations(line))
    prose = CODE_BLOCK.sub("", readme)
    for span in CODE_SPAN.findall(prose):
        found.extend(_invocations(span))
    table = prose.split("## The command line", 1)[1].split("\n## ", 1)[0]
    for row in re.findall(r"^\| (`.+?) \|", table, re.MULTILINE):
        for span in CODE_SPAN.findall(row):
            found.append(_words(span.replace("\\|", " ").replace("[", "").replace("]", "")))
    return found


def _words(text: str) -> list[str]:
    try:
        return shlex.split(text, comments=True)
    except ValueError:  # an unbalanced quote in prose
        return text.split()


def _invocations(line: str) -> list[list[str]]:
    words = _words(line.removeprefix("$ "))
    found = []
    for index, word in enumerate(words):
        if word.rsplit("/", 1)[-1] != "siro-poller" or not _command_position(words, index):
            continue
        args = []
        for arg in words[index + 1 :]:
            if SHELL_OPERATOR.match(arg):
                break
            args.append(arg)
        found.append(args)
    return found


def _command_position(words: list[str], index: int) -> bool:
    while index > 0 and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", words[index - 1]):
        index -= 1  # VARIABLE=value siro-poller ...
    return index == 0 or words[index - 1] in COMMAND_POSITION_AFTER


def check(args: list[str]) -> str | None:
    """Why ``siro-poller ARGS`` names a command or option that does not exist, or None."""
    command: click.Command = main
    path = ["siro-poller"]
    index = 0
    while index < len(args):
        word = args[index]
        index += 1
        if word in ("-h", "--help"):
            return None
        # `db downgrade -1` (or `-N` in the command table) steps back by N revisions: a value.
        if word.startswith("-") and word != "-" and not re.fullmatch(r"-(\d+|N)", word):
            name = word.split("=", 1)[0]
            option = next(
                (
                    p
                    for p in command.params
                    if isinstance(p, click.Option) and name in (*p.opts, *p.secondary_opts)
                ),
                None,
            )
            if option is None:
                return f"no option {name} for `{' '.join(path)}`"
            if not (option.is_flag or option.count) and "=" not in word:
                index += 1  # its value
            continue
        if isinstance(command, click.Group):
            sub = command.commands.get(word)
            if sub is None:
                return f"no command {word!r} in `{' '.join(path)}`"
            command = sub
            path.append(word)
    return None
