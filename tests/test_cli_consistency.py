"""The CLI says things one way: --json on every command that reads, the same selectors on
`calls list` and `calls retry`, and an unknown value refused with the values that exist."""

from __future__ import annotations

import json

import click
import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine

from poller.adapters.sql import migrate
from poller.adapters.sql.store import SqlStore
from poller.cli import main
from poller.domain.states import CallState
from tests.conftest import database_url
from tests.seed import seed_call

READ_COMMANDS = [
    "backfill",
    "calls explain",
    "calls list",
    "calls show",
    "calls unmapped",
    "config check",
    "db current",
    "db history",
    "doctor",
    "poll",
    "provider check",
    "siro connections",
    "siro conversation-types",
    "siro sync-users",
    "siro users",
    "status",
]


def command(path: str) -> click.Command:
    found: click.Command = main
    for name in path.split():
        assert isinstance(found, click.Group)
        found = found.commands[name]
    return found


def options(path: str) -> dict[str, click.Option]:
    return {
        param.opts[0]: param
        for param in command(path).params
        if isinstance(param, click.Option) and not param.hidden
    }


@pytest.mark.parametrize("path", READ_COMMANDS)
def test_every_command_that_reads_has_json(path: str) -> None:
    assert "--json" in options(path)


def test_calls_list_and_retry_take_the_same_selectors() -> None:
    # Measured on an earlier version: `calls list --state failed` worked, `calls retry
    # --state failed` did not.
    selectors = ["--state", "--error-kind", "--since", "--attribution"]
    listing, retrying = options("calls list"), options("calls retry")
    for name in selectors:
        assert name in listing and name in retrying
        assert type(listing[name].type) is type(retrying[name].type)
    assert set(retrying["--state"].type.choices) == {"failed", "skipped"}  # type: ignore[attr-defined]


def run(engine: Engine, *args: str) -> Result:
    return CliRunner().invoke(
        main, list(args), env={"SIRO_POLLER_DATABASE__URL": database_url(engine)}
    )


@pytest.fixture
def parked(sql_store: SqlStore) -> SqlStore:
    for index, (state, kind) in enumerate(
        [
            (CallState.FAILED, "not_audio"),
            (CallState.FAILED, "not_audio"),
            (CallState.FAILED, "oversize"),
            (CallState.SKIPPED, "no_recording"),
        ]
    ):
        seed_call(sql_store, f"parked-{index}", state=state, error_kind=kind)
    seed_call(sql_store, "pending", state=CallState.PENDING, error_kind="download_deadline")
    return sql_store


def test_an_unknown_error_kind_is_refused_with_the_kinds_calls_have(parked: SqlStore) -> None:
    # Measured on an earlier version: `calls retry --error-kind no_such_kind` printed
    # "requeued 0" and exited 0.
    for args in (["calls", "retry"], ["calls", "list"]):
        refused = run(parked.engine, *args, "--error-kind", "no_such_kind")
        assert refused.exit_code == 2, refused.output
        assert "Invalid value for '--error-kind'" in refused.stderr
        assert "'no_such_kind' is no error kind siro-poller records" in refused.stderr
        assert "not_audio (2), download_deadline (1), no_recording (1), oversize (1)" in " ".join(
            refused.stderr.split()
        )
    assert {c.state for c in parked.list_calls()} == {
        CallState.FAILED,
        CallState.SKIPPED,
        CallState.PENDING,
    }
    # A kind that exists but matches no parked call is an empty selection, not a typo.
    for kind in ("download_deadline", "audio_bomb", "download_http_404"):
        none_parked = run(parked.engine, "calls", "retry", "--error-kind", kind)
        assert none_parked.exit_code == 0, none_parked.output
        assert none_parked.stdout.startswith("requeued 0 calls")


def test_retry_selects_by_state_error_kind_and_attribution_as_list_does(
    parked: SqlStore,
) -> None:
    listed = run(parked.engine, "calls", "list", "--state", "failed", "--error-kind", "not_audio")
    assert listed.exit_code == 0, listed.output
    assert "parked-0" in listed.stdout and "parked-1" in listed.stdout
    assert "parked-2" not in listed.stdout

    planned = run(
        parked.engine,
        "calls",
        "retry",
        "--state",
        "failed",
        "--error-kind",
        "not_audio",
        "--dry-run",
    )
    assert planned.exit_code == 0, planned.output
    assert planned.stdout.startswith("would requeue 2 calls (failed, error kind not_audio)")

    by_attribution = run(parked.engine, "calls", "retry", "--attribution", "none")
    assert by_attribution.stdout.startswith("requeued 4 calls (failed or skipped, found by none)")

    not_parked = run(parked.engine, "calls", "retry", "--state", "uploaded")
    assert not_parked.exit_code == 2
    assert "'uploaded' is not one of 'failed', 'skipped'" in not_parked.stderr


def test_db_current_and_history_as_json(engine: Engine) -> None:
    head = migrate.head_revision(engine)
    current = run(engine, "db", "current", "--json")
    assert current.exit_code == 0, current.output
    assert json.loads(current.stdout) == {
        "current_revision": head,
        "head_revision": head,
        "up_to_date": True,
    }
    history = json.loads(run(engine, "db", "history", "--json").stdout)
    assert [entry["revision"] for entry in history] == [
        r.revision for r in migrate.revisions(engine)
    ]
    assert history[-1]["current"] and history[-1]["head"]
    assert history[0]["down_revision"] is None and history[0]["summary"]
