"""The attribution report: how each call's rep was found, in `status`, `calls list` and the
metrics, so a wrong-rep pattern (many calls by fallback, or all by one mapping) shows at once."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from click.testing import CliRunner, Result
from prometheus_client import CollectorRegistry, generate_latest

from poller.adapters.prometheus_metrics import StateTableCollector
from poller.adapters.sql.store import SqlStore
from poller.cli import main
from poller.domain.attribution import ATTRIBUTION_KINDS
from poller.domain.states import CallState
from tests.conftest import database_url
from tests.seed import AnyStore, seed_call

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def seed_calls(store: AnyStore) -> None:
    uploaded = {"state": CallState.UPLOADED, "siro_recording_id": "rec", "uploaded_at": NOW}
    for n in range(3):
        seed_call(store, f"known-{n}", attribution="siro_email", siro_user_id="u-1", **uploaded)
    for n in range(2):
        seed_call(
            store, f"guess-{n}", attribution="fallback_phone", rep_phone="+14155550123", **uploaded
        )
    seed_call(store, "mapped", attribution="map_extension", siro_user_id="u-2", **uploaded)
    seed_call(store, "old-upload", **uploaded)  # uploaded before calls.attribution existed
    seed_call(store, "waiting")
    # Attributed, then failed: not in Siro, so not in the uploaded counts.
    seed_call(store, "failed", state=CallState.FAILED, attribution="fallback_phone")


def test_status_counts_uploaded_calls_by_attribution_kind(any_store: AnyStore) -> None:
    seed_calls(any_store)

    counts = any_store.status(NOW).uploaded_by_attribution

    assert list(counts) == list(ATTRIBUTION_KINDS)
    assert {kind: n for kind, n in counts.items() if n} == {
        "map_extension": 1,
        "siro_email": 3,
        "fallback_phone": 2,
        "none": 1,
    }


def test_calls_list_filters_by_attribution_kind(any_store: AnyStore) -> None:
    seed_calls(any_store)

    def ids(kind: str, state: CallState | None = None) -> list[str]:
        rows = any_store.list_calls(attribution=kind, state=state)
        return [row.provider_call_id for row in rows]

    assert ids("fallback_phone") == ["failed", "guess-1", "guess-0"]
    assert ids("fallback_phone", CallState.UPLOADED) == ["guess-1", "guess-0"]
    assert ids("none") == ["waiting", "old-upload"]
    assert ids("siro_phone") == []


def test_uploaded_calls_by_attribution_are_a_metric(any_store: AnyStore) -> None:
    seed_calls(any_store)
    registry = CollectorRegistry()
    registry.register(StateTableCollector(any_store, lambda: NOW))

    scraped = generate_latest(registry).decode()

    metric = "siro_poller_uploaded_calls_by_attribution"
    assert f'{metric}{{attribution="siro_email"}} 3.0' in scraped
    assert f'{metric}{{attribution="fallback_phone"}} 2.0' in scraped
    assert f'{metric}{{attribution="none"}} 1.0' in scraped
    # Every kind has a series, so an alert on a share never meets an absent one.
    assert f'{metric}{{attribution="siro_phone"}} 0.0' in scraped


def run(store: SqlStore, *args: str) -> Result:
    env = {"SIRO_POLLER_DATABASE__URL": database_url(store.engine)}
    return CliRunner().invoke(main, list(args), env=env)


def test_the_cli_shows_the_attribution_of_each_call_and_the_counts(sql_store: SqlStore) -> None:
    seed_calls(sql_store)

    table = run(sql_store, "calls", "list").stdout
    listed = run(sql_store, "calls", "list", "--attribution", "fallback_phone", "--json")
    status = run(sql_store, "status").stdout
    document = json.loads(run(sql_store, "status", "--json").stdout)
    wrong = run(sql_store, "calls", "list", "--attribution", "by_guess")

    header, *rows = table.splitlines()
    assert "found by" in header
    (guess,) = [line for line in rows if " guess-0 " in line]
    assert "fallback_phone" in guess and "+14155550123" in guess
    assert [row["provider_call_id"] for row in json.loads(listed.stdout)] == [
        "failed",
        "guess-1",
        "guess-0",
    ]
    assert "uploaded by attribution" in status
    (line,) = [line for line in status.splitlines() if line.startswith("fallback_phone")]
    assert line.split() == ["fallback_phone", "2"]
    assert "calls list --attribution KIND" in status
    assert document["uploaded_by_attribution"]["siro_email"] == 3
    assert document["uploaded_by_attribution"]["none"] == 1
    assert wrong.exit_code == 2 and "fallback_email" in wrong.output


def test_status_shows_no_attribution_table_before_any_upload(sql_store: SqlStore) -> None:
    seed_call(sql_store, "waiting", started_at=NOW - timedelta(hours=1))

    assert "uploaded by attribution" not in run(sql_store, "status").stdout
