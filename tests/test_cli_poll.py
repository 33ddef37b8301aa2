"""`siro-poller poll` as an operator runs it: real database, fake provider on a real socket."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine

from poller.adapters.sql.store import SqlStore
from poller.cli import main
from poller.cli.poll import SHOWN_CHANGES
from poller.domain.states import CallState
from poller.simulators.http_server import LocalHTTPServer
from poller.simulators.provider_server import FakeCallLog, quickstart_call, serve
from tests.conftest import database_url

TOKEN = "provider-bearer-token-value"


@pytest.fixture
def api() -> FakeCallLog:
    log = FakeCallLog(page_size=2, auth=("bearer", TOKEN))
    # The CLI polls at the real "now": put calls in the last hour.
    recent = datetime.now(UTC) - timedelta(minutes=30)
    for n in range(3):
        url = f"https://voip.example.com/recordings/call-{n}.mp3"
        log.add_call(quickstart_call(f"call-{n}", recent, recording_url=url), recent)
    log.add_call(quickstart_call("call-waiting", recent), recent)
    return log


@pytest.fixture
def server(api: FakeCallLog) -> Iterator[LocalHTTPServer]:
    with serve(api) as running:
        yield running


def run(engine: Engine, server: LocalHTTPServer, *args: str, **env: str) -> Result:
    environment = {
        "SIRO_POLLER_DATABASE__URL": database_url(engine),
        "SIRO_POLLER_PROVIDER__BASE_URL": server.url,
        "SIRO_POLLER_PROVIDER__AUTH": "bearer",
        "SIRO_POLLER_PROVIDER__TOKEN": TOKEN,
        "SIRO_POLLER_PROVIDER__MAX_RETRIES": "0",
        **env,
    }
    return CliRunner().invoke(main, ["poll", *args], env=environment)


def test_poll_inserts_the_calls_and_moves_the_cursor(
    engine: Engine, server: LocalHTTPServer
) -> None:
    result = run(engine, server)
    assert result.exit_code == 0, result.output
    assert "call-0" in result.stdout and "inserted" in result.stdout
    assert "changed: inserted 4" in result.stdout
    assert TOKEN not in result.output
    store = SqlStore(engine)
    calls = {c.provider_call_id: c for c in store.list_calls()}
    assert set(calls) == {"call-0", "call-1", "call-2", "call-waiting"}
    assert calls["call-waiting"].next_attempt_at is None
    [cursor] = store.cursors()
    assert cursor.cursor_value is not None and cursor.last_error is None

    again = run(engine, server, "--json")
    assert again.exit_code == 0, again.output
    document = json.loads(again.stdout)
    assert document["counts"]["inserted"] == 0
    assert document["counts"]["unchanged"] == 4
    assert document["changes"] == [] and document["error"] is None


def test_dry_run_prints_the_plan_and_changes_nothing(
    engine: Engine, server: LocalHTTPServer
) -> None:
    result = run(engine, server, "--dry-run")
    assert result.exit_code == 0, result.output
    for call_id in ("call-0", "call-1", "call-2", "call-waiting"):
        assert call_id in result.stdout
    assert "would change: inserted 4" in result.stdout
    assert "dry run: not moved" in result.stdout
    store = SqlStore(engine)
    assert store.list_calls() == []
    assert store.cursors() == []

    as_json = run(engine, server, "--dry-run", "--json")
    document = json.loads(as_json.stdout)
    assert document["dry_run"] is True
    assert sorted(c["provider_call_id"] for c in document["changes"]) == [
        "call-0",
        "call-1",
        "call-2",
        "call-waiting",
    ]
    assert {c["action"] for c in document["changes"]} == {"inserted"}
    assert store.list_calls() == []


def test_a_failed_listing_exits_1_and_is_recorded(
    engine: Engine, server: LocalHTTPServer, api: FakeCallLog
) -> None:
    api.fail_page(2, 502, times=None)
    result = run(engine, server)
    assert result.exit_code == 1
    assert "poll failed" in result.stderr and "HTTP 502" in result.stderr
    assert TOKEN not in result.output
    store = SqlStore(engine)
    [cursor] = store.cursors()
    assert cursor.cursor_value is None
    assert cursor.last_error is not None and "HTTP 502" in cursor.last_error
    assert sorted(c.provider_call_id for c in store.list_calls()) == ["call-0", "call-1"]
    assert {c.state for c in store.list_calls()} == {CallState.PENDING}


def test_a_rejected_token_exits_1_without_showing_it(
    engine: Engine, server: LocalHTTPServer
) -> None:
    result = run(engine, server, SIRO_POLLER_PROVIDER__TOKEN="wrong-token-value-123")
    assert result.exit_code == 1
    assert "HTTP 401" in result.stderr
    assert "wrong-token-value-123" not in result.output


def test_missing_provider_settings_exit_2(engine: Engine, server: LocalHTTPServer) -> None:
    result = run(engine, server, SIRO_POLLER_PROVIDER__BASE_URL="")
    assert result.exit_code == 2
    assert "provider.base_url" in result.stderr
    no_token = CliRunner().invoke(
        main,
        ["poll"],
        env={
            "SIRO_POLLER_DATABASE__URL": database_url(engine),
            "SIRO_POLLER_PROVIDER__BASE_URL": server.url,
            "SIRO_POLLER_PROVIDER__AUTH": "bearer",
        },
    )
    assert no_token.exit_code == 2
    assert "provider.token: required" in no_token.stderr


def test_a_wrong_field_mapping_fails_the_poll_and_keeps_the_cursor_until_it_is_fixed(
    engine: Engine,
) -> None:
    # Measured on an earlier version: "0 call(s) listed, 15 malformed record(s) skipped",
    # the cursor moved past the calls and the exit status was 0; they never came back.
    api = FakeCallLog(page_size=100, auth=("bearer", TOKEN))
    recent = datetime.now(UTC) - timedelta(minutes=30)
    for n in range(15):
        at = recent + timedelta(seconds=n)
        api.add_call(quickstart_call(f"call-{n:02d}", at), at)
    wrong = {"SIRO_POLLER_PROVIDER__FIELDS__STARTED_AT": "start_time"}
    with serve(api) as server:
        failed = run(engine, server, **wrong)
        assert failed.exit_code == 1, failed.output
        assert "0 call(s) listed, 15 record(s) failed mapping and were kept" in failed.stdout
        assert "poll failed" in failed.stderr
        assert "15 of 15 records failed mapping" in failed.stderr
        assert "started_at has no value at path start_time (15x)" in failed.stderr
        store = SqlStore(engine)
        [cursor] = store.cursors()
        assert cursor.cursor_value is None and cursor.last_error is not None
        assert "15 of 15 records failed mapping" in cursor.last_error

        environment = {"SIRO_POLLER_DATABASE__URL": database_url(engine)}
        status = CliRunner().invoke(main, ["status"], env=environment)
        assert "unmapped: 15 record(s) of generic failed the field mapping" in status.stdout
        document = json.loads(
            CliRunner().invoke(main, ["status", "--json"], env=environment).stdout
        )
        assert document["unmapped"] == {"generic": 15}
        listing = CliRunner().invoke(main, ["calls", "unmapped"], env=environment)
        assert listing.exit_code == 0, listing.output
        assert "started_at has no value at path start_time" in listing.stdout
        assert '{"call_id":"call-00"' in listing.stdout
        rows = json.loads(
            CliRunner().invoke(main, ["calls", "unmapped", "--json"], env=environment).stdout
        )
        assert len(rows) == 15 and {row["page"] for row in rows} == {1}
        assert sorted(row["item_index"] for row in rows) == list(range(15))
        assert json.loads(rows[0]["raw"])["call_id"] == "call-00"

        fixed = run(engine, server)
        assert fixed.exit_code == 0, fixed.output
        assert "15 record(s) kept as unmapped before map now and went in" in fixed.stdout
    assert len(store.list_calls()) == 15
    [cursor] = store.cursors()
    assert cursor.cursor_value is not None and cursor.last_error is None
    assert store.status(datetime.now(UTC)).unmapped == {}
    resolved = CliRunner().invoke(main, ["calls", "unmapped", "--resolved"], env=environment)
    assert "call-00" in resolved.stdout
    assert (
        "no unmapped records"
        in CliRunner().invoke(main, ["calls", "unmapped"], env=environment).stdout
    )


def test_a_large_poll_shows_the_first_changes_and_counts_the_rest(engine: Engine) -> None:
    # Measured on an earlier version: a 100,000-call catch-up printed a 100,000-row table
    # (44.6 s, 657 MiB); the table is now a screenful and the rest a count.
    api = FakeCallLog(page_size=40, auth=("bearer", TOKEN))
    recent = datetime.now(UTC) - timedelta(minutes=30)
    for n in range(SHOWN_CHANGES + 25):
        at = recent + timedelta(seconds=n)
        api.add_call(quickstart_call(f"call-{n:03d}", at, recording_url=f"https://v/{n}"), at)
    with serve(api) as server:
        planned = run(engine, server, "--dry-run", "--json")
        assert planned.exit_code == 0, planned.output
        document = json.loads(planned.stdout)
        # Streamed as it went, and still the document every --json prints.
        assert planned.stdout == json.dumps(document, indent=2, sort_keys=True) + "\n"
        assert [c["provider_call_id"] for c in document["changes"]] == [
            f"call-{n:03d}" for n in range(SHOWN_CHANGES + 25)
        ]

        result = run(engine, server)
    assert result.exit_code == 0, result.output
    rows = [line for line in result.stdout.splitlines() if line.startswith("inserted ")]
    assert len(rows) == SHOWN_CHANGES
    assert "call-019" in result.stdout and "call-020" not in result.stdout
    assert "25 more; --json for all" in result.stdout
    assert f"changed: inserted {SHOWN_CHANGES + 25}" in result.stdout
    assert len(SqlStore(engine).list_calls(limit=100)) == SHOWN_CHANGES + 25


def test_json_of_several_providers_is_one_list_written_as_it_goes(
    engine: Engine, tmp_path: Path
) -> None:
    recent = datetime.now(UTC) - timedelta(minutes=30)
    west, east = (FakeCallLog(page_size=2, auth=("bearer", TOKEN)) for _ in range(2))
    for n in range(3):
        west.add_call(quickstart_call(f"west-{n}", recent, recording_url="https://v/w"), recent)
    with serve(west) as west_server, serve(east) as east_server:
        config = tmp_path / "config.toml"
        config.write_text(
            "".join(
                f'[[providers]]\nname = "{name}"\nbase_url = "{server.url}"\nauth = "bearer"\n'
                for name, server in (("west", west_server), ("east", east_server))
            ),
            encoding="utf-8",
        )
        environment = {
            "SIRO_POLLER_DATABASE__URL": database_url(engine),
            "SIRO_POLLER_PROVIDERS__WEST__TOKEN": TOKEN,
            "SIRO_POLLER_PROVIDERS__EAST__TOKEN": TOKEN,
        }
        result = CliRunner().invoke(
            main, ["--config", str(config), "poll", "--json"], env=environment
        )
    assert result.exit_code == 0, result.output
    documents = json.loads(result.stdout)
    assert result.stdout == json.dumps(documents, indent=2, sort_keys=True) + "\n"
    assert [d["provider"] for d in documents] == ["west", "east"]
    assert [len(d["changes"]) for d in documents] == [3, 0]
    assert documents[0]["counts"]["inserted"] == 3
