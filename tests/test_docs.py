"""The documentation's commands are the ones that exist and the ones CI runs, its examples are
valid configurations, and its audit SQL runs on both databases."""

from __future__ import annotations

import re
import shlex
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
from sqlalchemy import Engine

from poller.adapters.providers.registry import KINDS
from poller.adapters.sql.store import SqlStore
from poller.cli import main
from poller.config import Settings
from poller.domain.states import CallState
from tests.seed import seed_call, seed_event

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
# Every page a reader meets: the front page, the contributor's guide and the site's pages.
PAGES = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted(DOCS.rglob("*.md"))]


def text_of(page: Path) -> str:
    return page.read_text(encoding="utf-8")


def test_ci_runs_exactly_the_documented_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    for page in ("README.md", "CONTRIBUTING.md"):
        commands = re.findall(r"```sh\n(pip install '\.\[test\]'.*)\n```", text_of(ROOT / page))
        assert len(commands) == 1, f"{page} must show one install-and-test command"
        assert commands[0] in ci.splitlines(), f"CI does not run {page}'s test command"
    assert "POLLER_TEST_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test" in ci


def test_ci_builds_the_documentation_as_contributing_shows_it() -> None:
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()]
    contributing = text_of(ROOT / "CONTRIBUTING.md")
    for builder in ("html", "man"):
        shown = re.search(
            rf"\.venv/bin/(sphinx-build -W --keep-going .* -b {builder} .*)", contributing
        )
        assert shown, f"CONTRIBUTING.md shows no {builder} build"
        assert shown.group(1) in ci, f"CI does not build {builder} as CONTRIBUTING.md shows"


def test_every_toml_example_in_the_docs_is_a_valid_config() -> None:
    checked = 0
    for page in PAGES:
        for block in re.findall(r"```toml\n(.*?)```", text_of(page), re.DOTALL):
            Settings(**tomllib.loads(block))
            checked += 1
    assert checked >= 7, "the provider pages show their TOML; the parser found too few"


# Pages of the providers index that are about no single kind.
PROVIDER_PAGES_NOT_KINDS = {"reach", "generic-auth"}


def test_every_provider_kind_has_its_page_in_the_providers_index() -> None:
    index = text_of(DOCS / "providers" / "index.md")
    toctree = re.search(r"```\{toctree\}\n(.*?)```", index, re.DOTALL)
    assert toctree
    entries = set(re.findall(r"^([a-z0-9-]+)$", toctree.group(1), re.MULTILINE))
    assert sorted(entries - PROVIDER_PAGES_NOT_KINDS) == sorted(KINDS)
    for kind in KINDS:
        assert (DOCS / "providers" / f"{kind}.md").is_file()


def test_the_reach_table_links_every_kind_to_its_page() -> None:
    # A kind added without its row would leave readers thinking their phone system is not read.
    reach = text_of(DOCS / "providers" / "reach.md")
    rows = re.findall(r"^\| .+ \| \[([a-z0-9]+)\]\(([a-z0-9]+)\.md\) \|$", reach, re.MULTILINE)
    assert sorted(kind for kind, page in rows if kind == page) == sorted(KINDS)


def test_the_front_pages_link_to_pages_and_headings_that_exist() -> None:
    # Sphinx checks the links between the docs pages; these two are read outside it.
    for page in (ROOT / "README.md", ROOT / "CONTRIBUTING.md"):
        for target in re.findall(r"\]\(([^)#]+\.md)(?:#([^)]+))?\)", text_of(page)):
            path, heading = ROOT / target[0], target[1]
            assert path.is_file(), f"{page.name} links to {target[0]}, which does not exist"
            if heading:
                slugs = {_slug(h) for h in re.findall(r"^#+ (.+)$", text_of(path), re.MULTILINE)}
                assert heading in slugs, f"{page.name}: no heading #{heading} in {target[0]}"


def _slug(heading: str) -> str:
    """The anchor GitHub and MyST give a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_the_readme_is_a_short_front_page() -> None:
    assert len(text_of(ROOT / "README.md").splitlines()) <= 250


def audit_statements() -> list[tuple[str, str, str | None]]:
    """Every SQL statement of the documentation: (comment, SQL, dialect).

    A statement whose comment ends in ``(PostgreSQL)`` or ``(SQLite)`` is for that database
    only; every other one must run on both."""
    blocks = [
        block
        for page in PAGES
        for block in re.findall(r"```sql\n(.*?)```", text_of(page), re.DOTALL)
    ]
    statements: list[tuple[str, str, str | None]] = []
    for block in blocks:
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


def test_every_audit_query_of_the_docs_runs_and_finds_the_stuck_row(engine: Engine) -> None:
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
    for page in (ROOT / "README.md", DOCS / "getting-started.md"):
        text = text_of(page)
        first_section = re.search(r"^## (.+)$", text, re.MULTILINE)
        assert first_section and first_section.group(1) in ("Quick start", "Install"), page
        first_block = re.search(r"```sh\n(.*?)```", text, re.DOTALL)
        assert first_block
        lines = [line.split("#")[0].strip() for line in first_block.group(1).splitlines()]
        # From a fresh machine: pipx, this checkout (not on PyPI), PATH, the demo.
        assert lines[0] == "sudo apt install pipx"
        assert "pipx install ." in lines
        assert lines[-1] == "siro-poller demo"
    venv = re.findall(r"```sh\n(sudo apt install python3-venv\n.*?)```", text, re.DOTALL)
    assert venv, "getting started shows the install without pipx"
    assert re.search(r"^\S+/bin/pip install \.$", venv[0], re.MULTILINE)


def test_every_siro_poller_command_in_the_docs_exists() -> None:
    problems = []
    shown = 0
    for page in PAGES:
        invocations = page_invocations(text_of(page))
        shown += len(invocations)
        problems += [
            f"{page.relative_to(ROOT)}: {' '.join(args)!r}: {problem}"
            for args in invocations
            if (problem := check(args))
        ]
    assert shown > 80, "the docs show many commands; the parser found too few"
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


def page_invocations(page: str) -> list[list[str]]:
    """The arguments of every `siro-poller` command a page shows.

    Shell blocks, the `$ ` lines of other blocks (the rest is output), and inline code that run
    `siro-poller` (or a path ending in it), and each code span of the first column of the
    command table (its section "Commands at a glance"), which leaves the program name out.
    """
    found: list[list[str]] = []
    for language, block in CODE_BLOCK.findall(page):
        for line in block.splitlines():
            if language == "sh" or line.startswith("$ "):
                found.extend(_invocations(line))
    prose = CODE_BLOCK.sub("", page)
    for span in CODE_SPAN.findall(prose):
        found.extend(_invocations(span))
    _, heading, after = prose.partition("## Commands at a glance")
    table = after.split("\n## ", 1)[0] if heading else ""
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
