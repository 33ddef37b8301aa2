"""Tables as people and scripts see them: fitted and coloured on a terminal, plain when piped."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine

from poller.adapters.sql.store import SqlStore
from poller.cli import main
from poller.cli.output import fitted_widths, render_table
from poller.domain.states import CallState
from tests.conftest import database_url
from tests.seed import seed_call
from tests.terminal import run_on_terminal

STARTED = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
LONG_ERROR = (
    "the body is HTML, not mp3, wav or aac: the provider served its login page [302 -> /login] "
    "instead of the recording"
)
ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture
def calls(sql_store: SqlStore) -> SqlStore:
    seed_call(
        sql_store,
        "call-1",
        state=CallState.FAILED,
        started_at=STARTED,
        attempts=8,
        error_kind="not_audio",
        last_error=LONG_ERROR,
        rep_email="a.very.long.rep.address@yourcompany.example.com",
    )
    seed_call(
        sql_store,
        "call-2",
        state=CallState.UPLOADED,
        started_at=STARTED + timedelta(minutes=1),
        siro_recording_id="rec-1",
        uploaded_at=STARTED + timedelta(minutes=5),
    )
    seed_call(
        sql_store,
        "call-3",
        state=CallState.SKIPPED,
        started_at=STARTED + timedelta(minutes=2),
        error_kind="no_rep",
        last_error="no rep on the call",
    )
    seed_call(sql_store, "call-4", started_at=STARTED + timedelta(minutes=3))
    return sql_store


def environment(engine: Engine, **extra: str) -> dict[str, str]:
    return {"SIRO_POLLER_DATABASE__URL": database_url(engine), **extra}


def test_piped_tables_are_plain_one_row_per_line_whatever_columns_says(calls: SqlStore) -> None:
    result = CliRunner().invoke(
        main, ["calls", "list"], env=environment(calls.engine, COLUMNS="40")
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "id", "provider", "call", "state", "tries", "started", "rep", "found", "by", "next",
        "try", "error",
    ]  # fmt: skip
    assert set(lines[1]) == {"-", " "}
    rows = lines[2:]
    assert [row.split()[2:4] for row in rows] == [
        ["call-4", "pending"],
        ["call-3", "skipped"],
        ["call-2", "uploaded"],
        ["call-1", "failed"],
    ]
    assert "a.very.long.rep.address@yourcompany.example.com" in rows[3]
    assert "not_audio: the body is HTML" in rows[3]  # on the row's own line, unwrapped
    assert not ESCAPE.search(result.stdout)
    assert all(line == line.rstrip() for line in lines)


def test_the_json_output_is_unchanged_by_the_table_rendering(calls: SqlStore) -> None:
    result = CliRunner().invoke(
        main, ["calls", "list", "--json"], env=environment(calls.engine, COLUMNS="40")
    )
    rows = json.loads(result.stdout)
    assert [row["state"] for row in rows] == ["pending", "skipped", "uploaded", "failed"]
    assert rows[3]["last_error"] == LONG_ERROR


def test_on_a_terminal_a_table_fits_its_width_and_states_are_coloured(calls: SqlStore) -> None:
    shown = run_on_terminal(["calls", "show", "call-1"], environment(calls.engine, COLUMNS="70"))
    plain = ESCAPE.sub("", shown)
    assert max(len(line) for line in plain.splitlines()) <= 70
    # The long error wrapped within its column, and nothing of it was cut.
    assert " ".join(plain.split()).count("[302 -> /login] instead of the recording") == 1

    listed = run_on_terminal(["calls", "list"], environment(calls.engine, COLUMNS="90"))
    plain = ESCAPE.sub("", listed)
    assert max(len(line) for line in plain.splitlines()) <= 90
    assert "\x1b[32muploaded" in listed  # green
    assert "\x1b[31mfailed" in listed  # red
    assert re.search(r"\x1b\[[0-9;]*33[0-9;]*mskipped", listed)  # yellow
    assert re.search(r"(^|\s)pending\s", listed, re.MULTILINE)  # plain


def test_no_color_keeps_a_terminal_table_free_of_escape_codes(calls: SqlStore) -> None:
    shown = run_on_terminal(
        ["calls", "list"], environment(calls.engine, COLUMNS="90", NO_COLOR="1")
    )
    assert "uploaded" in shown and "failed" in shown
    assert not ESCAPE.search(shown)


def test_a_cell_is_shown_as_written_never_read_as_markup() -> None:
    text = render_table(
        [["[bold]not markup[/bold]", "[red]"]], ["message", "state"], width=80, colour=True
    )
    assert "[bold]not markup[/bold]" in ESCAPE.sub("", text)


def test_the_widest_columns_give_way_first_and_none_below_its_longest_word() -> None:
    # Everything fits: every column at its natural width.
    assert fitted_widths([5, 20, 60], [3, 10, 10], available=100) == [5, 20, 60]
    # Too wide: the widest column narrows alone while it is the widest.
    assert fitted_widths([5, 20, 60], [3, 10, 10], available=60) == [5, 20, 35]
    # Then the two wide ones together, down to their least.
    assert fitted_widths([5, 20, 60], [3, 10, 10], available=35) == [5, 15, 15]
    # Nothing narrower than the least: the table is wider than asked rather than cut.
    assert fitted_widths([5, 20, 60], [3, 10, 10], available=10) == [3, 10, 10]


def test_calls_list_says_when_more_rows_exist_than_it_shows(calls: SqlStore) -> None:
    env = environment(calls.engine)
    cut = CliRunner().invoke(main, ["calls", "list", "--limit", "3"], env=env)
    assert cut.exit_code == 0, cut.output
    assert len(cut.stdout.splitlines()) == 2 + 3  # header, dashes, three rows
    assert cut.stderr.strip() == (
        "siro-poller: showing the first 3 calls; more exist: raise --limit or narrow with "
        "--state, --error-kind, --since or --attribution, or go on with --offset 3"
    )
    as_json = CliRunner().invoke(main, ["calls", "list", "--limit", "3", "--json"], env=env)
    assert len(json.loads(as_json.stdout)) == 3  # stdout stays one JSON document
    assert "more exist" in as_json.stderr

    whole = CliRunner().invoke(main, ["calls", "list", "--limit", "4"], env=env)
    assert len(whole.stdout.splitlines()) == 2 + 4
    assert whole.stderr == ""
