"""The CLI as an operator uses it: db, status, calls list/show/retry, on both backends."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine

from poller.adapters.sql.store import SqlStore
from poller.cli import main
from poller.domain.attribution import ATTRIBUTION_KINDS
from poller.domain.records import PollCursor
from poller.domain.states import CallState
from poller.simulators.siro_server import FakeSiro
from tests.conftest import database_url
from tests.daemon_process import env_text
from tests.seed import seed_call, seed_cursor, seed_event

STARTED = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)


def run(engine: Engine, *args: str) -> Result:
    env = {"SIRO_POLLER_DATABASE__URL": database_url(engine)}
    return CliRunner().invoke(main, list(args), env=env)


@pytest.fixture
def populated(sql_store: SqlStore) -> SqlStore:
    seed_call(
        sql_store,
        "call-789",
        provider="acme",
        started_at=STARTED,
        rep_email="rep@yourcompany.com",
        next_attempt_at=datetime.now(UTC) - timedelta(minutes=3),
        raw={"call_id": "call-789", "email": "rep@yourcompany.com"},
    )
    failed = seed_call(
        sql_store,
        "call-790",
        provider="acme",
        state=CallState.FAILED,
        started_at=STARTED + timedelta(hours=1),
        attempts=8,
        error_kind="not_audio",
        last_error="the body is HTML, not mp3, wav or aac",
    )
    seed_event(sql_store, failed.id, step="download", outcome="failed", http_status=200)
    seed_call(
        sql_store,
        "call-791",
        provider="acme",
        state=CallState.UPLOADED,
        started_at=STARTED + timedelta(hours=2),
        siro_recording_id="rec-1",
        uploaded_at=STARTED + timedelta(hours=3),
    )
    seed_cursor(
        sql_store,
        PollCursor(provider="acme", cursor_value=STARTED, last_success_at=STARTED),
    )
    return sql_store


def test_db_upgrade_is_idempotent(tmp_path: Path) -> None:
    env = {"SIRO_POLLER_STATE_DIR": str(tmp_path / "state")}
    first = CliRunner().invoke(main, ["db", "upgrade"], env=env)
    assert first.exit_code == 0, first.output
    assert "upgraded from empty to revision" in first.output
    second = CliRunner().invoke(main, ["db", "upgrade"], env=env)
    assert "already at revision" in second.output
    assert (tmp_path / "state" / "siro-poller.sqlite3").stat().st_mode & 0o077 == 0


def test_commands_refuse_a_database_that_was_never_upgraded(tmp_path: Path) -> None:
    env = {"SIRO_POLLER_STATE_DIR": str(tmp_path / "state")}
    result = CliRunner().invoke(main, ["status"], env=env)
    assert result.exit_code == 2
    assert "run `siro-poller db upgrade` first" in result.stderr


def test_status_json_on_an_empty_database(engine: Engine) -> None:
    result = run(engine, "status", "--json")
    assert result.exit_code == 1, result.output  # nothing has polled or worked yet: degraded
    document = json.loads(result.stdout)
    health = document.pop("health")
    database = document.pop("database")
    assert database["database_bytes"] > 0
    assert set(database["rows"].values()) == {0}
    assert document == {
        "counts": {"pending": 0, "downloaded": 0, "uploaded": 0, "failed": 0, "skipped": 0},
        "total": 0,
        "uploaded_by_attribution": dict.fromkeys(ATTRIBUTION_KINDS, 0),
        "due_now": 0,
        "oldest_due_at": None,
        "oldest_due_age_seconds": None,
        "cursors": [],
        "unmapped": {},
        "unmapped_expired": {},
        "forgotten": {},
        "pauses": [],
        "workers": [],
        "webhooks": [],
    }
    assert (health["healthy"], health["status"]) == (False, "degraded")
    assert [reason["message"] for reason in health["reasons"]] == [
        "polling generic never succeeded",
        "no worker has reported a heartbeat",
    ]


def test_status_json_on_a_populated_database(populated: SqlStore) -> None:
    result = run(populated.engine, "status", "--json")
    assert result.exit_code == 1  # its one poll success is days old
    document = json.loads(result.stdout)
    assert document["counts"] == {
        "pending": 1, "downloaded": 0, "uploaded": 1, "failed": 1, "skipped": 0,
    }  # fmt: skip
    assert document["total"] == 3
    assert document["due_now"] == 1
    assert 170 <= document["oldest_due_age_seconds"] < 3600
    (cursor,) = document["cursors"]
    assert cursor["provider"] == "acme"
    assert cursor["cursor_value"] == "2026-11-23T14:00:00+00:00"


def test_status_table_is_readable(populated: SqlStore) -> None:
    output = run(populated.engine, "status").stdout
    assert "failed" in output and "due now: 1, oldest due for" in output
    assert "acme" in output and "2026-11-23 14:00:00Z" in output


def test_calls_list_json_empty_and_populated(engine: Engine) -> None:
    assert json.loads(run(engine, "calls", "list", "--json").stdout) == []
    seed_call(SqlStore(engine), "x-1", started_at=STARTED, raw={"big": "record"})
    (row,) = json.loads(run(engine, "calls", "list", "--json").stdout)
    assert row["provider_call_id"] == "x-1"
    assert row["state"] == "pending"
    assert row["started_at"] == "2026-11-23T14:00:00+00:00"
    assert "raw" not in row


def test_calls_list_filters_by_state_and_start_time(populated: SqlStore) -> None:
    failed = json.loads(
        run(populated.engine, "calls", "list", "--state", "failed", "--json").stdout
    )
    assert [row["provider_call_id"] for row in failed] == ["call-790"]
    recent = json.loads(
        run(populated.engine, "calls", "list", "--since", "2026-11-23T14:30:00Z", "--json").stdout
    )
    assert [row["provider_call_id"] for row in recent] == ["call-791", "call-790"]
    table = run(populated.engine, "calls", "list").stdout
    assert table.splitlines()[0].split()[:4] == ["id", "provider", "call", "state"]
    assert "not_audio: the body is HTML" in table


def test_calls_list_rejects_a_bad_since(engine: Engine) -> None:
    result = run(engine, "calls", "list", "--since", "yesterday-ish")
    assert result.exit_code == 2
    assert "neither ISO 8601" in result.output


def test_calls_show_by_provider_call_id_with_events(populated: SqlStore) -> None:
    result = run(populated.engine, "calls", "show", "call-790", "--json")
    document = json.loads(result.stdout)
    assert document["call"]["error_kind"] == "not_audio"
    assert [(e["step"], e["outcome"]) for e in document["events"]] == [("download", "failed")]
    human = run(populated.engine, "calls", "show", "call-789").stdout
    assert "rep@yourcompany.com" in human and "raw provider record" in human


def test_calls_show_explains_unknown_and_ambiguous_references(populated: SqlStore) -> None:
    unknown = run(populated.engine, "calls", "show", "nope")
    assert unknown.exit_code == 1
    assert "no call with id or provider call id 'nope'" in unknown.stderr
    seed_call(populated, "call-789", provider="other")
    ambiguous = run(populated.engine, "calls", "show", "call-789")
    assert ambiguous.exit_code == 1
    assert "matches several calls" in ambiguous.stderr


def test_calls_retry_requeues_failed_rows_only(populated: SqlStore) -> None:
    result = run(populated.engine, "calls", "retry", "call-790")
    assert result.exit_code == 0, result.output
    assert "requeued call" in result.stdout
    row = populated.find_calls("call-790")[0]
    assert row.state == CallState.PENDING and row.attempts == 0

    refused = run(populated.engine, "calls", "retry", "call-791")
    assert refused.exit_code == 1
    assert "only failed or skipped calls can be retried" in refused.stderr

    seed_call(populated, "call-792", provider="acme", state=CallState.FAILED)
    seed_call(populated, "call-793", provider="acme", state=CallState.FAILED)
    assert run(populated.engine, "calls", "retry", "--failed").stdout.strip() == (
        "requeued 2 calls (failed)"
    )
    assert run(populated.engine, "calls", "retry").exit_code == 2


def test_the_console_entry_point_runs_as_a_process(tmp_path: Path) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("SIRO_POLLER_") and key != "STATE_DIRECTORY"
    }
    env["SIRO_POLLER_STATE_DIR"] = str(tmp_path / "state")
    upgrade = subprocess.run(
        [sys.executable, "-m", "poller", "db", "upgrade"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert upgrade.returncode == 0, upgrade.stderr
    assert upgrade.stderr == ""  # no library's chatter beside the one line on stdout
    status = subprocess.run(
        [sys.executable, "-m", "poller", "status", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert json.loads(status.stdout)["total"] == 0


def test_db_downgrade_asks_first_and_works_with_yes(engine: Engine) -> None:
    refused = run(engine, "db", "downgrade", "base")
    assert refused.exit_code == 1
    assert "Aborted" in refused.output
    done = run(engine, "db", "downgrade", "base", "--yes")
    assert done.exit_code == 0, done.output
    assert "downgraded to base" in done.stdout
    assert run(engine, "db", "upgrade").exit_code == 0


def _start_environment(engine: Engine, siro: FakeSiro, tmp_path: Path) -> dict[str, str]:
    return {
        "SIRO_POLLER_DATABASE__URL": database_url(engine),
        "SIRO_POLLER_STATE_DIR": str(tmp_path / "state"),
        "SIRO_POLLER_PROVIDER__BASE_URL": "http://127.0.0.1:9/api",
        "SIRO_POLLER_LOGGING__FORMAT": "human",
        **{
            f"SIRO_POLLER_SIRO__{key.upper()}": env_text(value)
            for key, value in siro.settings_values().items()
            if key != "api_token"
        },
    }


def test_start_logs_the_config_warnings(engine: Engine, tmp_path: Path) -> None:
    with FakeSiro() as siro:
        config = tmp_path / "config.toml"
        config.write_text(f'[siro]\napi_token = "{siro.state.org_token}"\n', encoding="utf-8")
        config.chmod(0o644)
        env = {
            **_start_environment(engine, siro, tmp_path),
            "SIRO_POLLER_WROKER__CONCURRENCY": "8",
        }
        result = CliRunner().invoke(
            main, ["--config", str(config), "work", "--until-idle"], env=env
        )
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if " WARNING " in line]
    assert [line.split(" WARNING ", 1)[1] for line in warnings] == [
        "poller.cli.run: config: SIRO_POLLER_WROKER__CONCURRENCY: the config has no section or "
        "key 'wroker', so siro-poller ignores this variable; did you mean "
        "SIRO_POLLER_WORKER__CONCURRENCY? (or unset it, if it is meant for something else)",
        f"poller.cli.run: config: {config}: holds secrets (siro.api_token) and can be read by "
        f"group and others (mode 0644); chmod 600 {config}, or move the secrets to credential "
        "files (LoadCredential= in the systemd unit) or the environment",
    ]
    assert siro.state.org_token not in result.output


def test_start_refuses_the_example_s_placeholders(engine: Engine, tmp_path: Path) -> None:
    with FakeSiro() as siro:
        env = {
            **_start_environment(engine, siro, tmp_path),
            "SIRO_POLLER_SIRO__API_TOKEN": siro.state.org_token,
            "SIRO_POLLER_SIRO__TOKEN_USER_ID": "replace-with-a-siro-user-id",
        }
        result = CliRunner().invoke(main, ["work", "--until-idle"], env=env)
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "siro-poller: config error: siro.token_user_id: still the example's placeholder "
        "'replace-with-a-siro-user-id'; set your own value in the config file or in "
        "SIRO_POLLER_SIRO__TOKEN_USER_ID"
    ]
