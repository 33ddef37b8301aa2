"""`siro-poller status` as a monitoring check: pauses first, exit 0 healthy, 1 degraded."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from click.testing import CliRunner, Result
from sqlalchemy import Engine

from poller.adapters.sql.store import SqlStore
from poller.cli import main
from poller.domain.pauses import SIRO, provider_scope
from poller.domain.records import PollCursor
from poller.domain.states import CallState
from tests.conftest import database_url
from tests.seed import seed_call, seed_cursor

REASON = "Siro mint-token: HTTP 401; check siro.client_id, siro.client_secret"


def status(engine: Engine, *args: str) -> Result:
    env = {
        "SIRO_POLLER_DATABASE__URL": database_url(engine),
        "SIRO_POLLER_POLL__INTERVAL_SECONDS": "300",
        "SIRO_POLLER_WORKER__INTERVAL_SECONDS": "15",
    }
    return CliRunner().invoke(main, ["status", *args], env=env)


def working(store: SqlStore, *, polled_ago: timedelta, beat_ago: timedelta) -> None:
    now = datetime.now(UTC)
    seed_cursor(store, PollCursor(provider="generic", last_success_at=now - polled_ago))
    store.beat("host:1:ab", now - timedelta(hours=1), now - beat_ago)


def test_status_exits_0_while_polling_and_the_worker_are_current(sql_store: SqlStore) -> None:
    working(sql_store, polled_ago=timedelta(minutes=4), beat_ago=timedelta(seconds=20))

    result = status(sql_store.engine)

    assert result.exit_code == 0, result.output
    assert "health: ok" in result.stdout
    assert "workers: last heartbeat" in result.stdout and "host:1:ab" in result.stdout
    assert json.loads(status(sql_store.engine, "--json").stdout)["health"]["healthy"] is True


def test_a_credential_pause_comes_first_and_makes_status_exit_1(sql_store: SqlStore) -> None:
    working(sql_store, polled_ago=timedelta(minutes=1), beat_ago=timedelta(seconds=5))
    sql_store.record_pause(SIRO, REASON, datetime.now(UTC) - timedelta(minutes=7))
    sql_store.record_pause(
        provider_scope("generic"), "HTTP 403; check provider.token", datetime.now(UTC)
    )

    result = status(sql_store.engine)

    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith("PAUSED (provider:generic) since ")
    assert lines[1].startswith("PAUSED (siro) since ") and lines[1].endswith(f"7m: {REASON}")
    assert "health: degraded" in result.stdout
    document = json.loads(status(sql_store.engine, "--json").stdout)
    assert [p["scope"] for p in document["pauses"]] == ["provider:generic", "siro"]
    assert [(r["check"], r["subject"]) for r in document["health"]["reasons"]] == [
        ("credentials", "provider:generic"),
        ("credentials", "siro"),
    ]


def test_status_exits_1_when_polling_is_stale_or_no_worker_beats(sql_store: SqlStore) -> None:
    working(sql_store, polled_ago=timedelta(hours=2), beat_ago=timedelta(minutes=10))

    result = status(sql_store.engine, "--json")

    assert result.exit_code == 1
    messages = [r["message"] for r in json.loads(result.stdout)["health"]["reasons"]]
    assert messages[0].startswith("polling generic last succeeded 2.0h ago (more than 15m)")
    assert messages[1].startswith("the last worker heartbeat is 10m old (more than 75s)")


def in_siro(key: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {"siro_recording_id": f"siro-{key}", "uploaded_at": now, "siro_create_sent_at": now}


def test_status_counts_forgotten_calls_beside_their_states(sql_store: SqlStore) -> None:
    working(sql_store, polled_ago=timedelta(minutes=1), beat_ago=timedelta(seconds=5))
    now = datetime.now(UTC)
    seed_call(sql_store, "c-1", state=CallState.UPLOADED, forgotten_at=now, **in_siro("c-1"))
    seed_call(sql_store, "c-2", state=CallState.SKIPPED, forgotten_at=now)
    seed_call(sql_store, "c-3", state=CallState.UPLOADED, **in_siro("c-3"))
    seed_call(sql_store, "r-1", provider="rc", state=CallState.SKIPPED, forgotten_at=now)

    result = status(sql_store.engine)

    assert result.exit_code == 0, result.output
    assert "forgotten: 2 call(s) of generic erased by `calls forget`" in result.stdout
    assert "forgotten: 1 call(s) of rc" in result.stdout
    document = json.loads(status(sql_store.engine, "--json").stdout)
    assert document["forgotten"] == {"generic": 2, "rc": 1}
    assert (document["counts"]["uploaded"], document["counts"]["skipped"]) == (2, 2)


def test_status_shows_no_forgotten_line_when_none_was_forgotten(sql_store: SqlStore) -> None:
    working(sql_store, polled_ago=timedelta(minutes=1), beat_ago=timedelta(seconds=5))
    seed_call(sql_store, "c-1", state=CallState.UPLOADED, **in_siro("c-1"))

    result = status(sql_store.engine)

    assert "forgotten:" not in result.stdout
    assert json.loads(status(sql_store.engine, "--json").stdout)["forgotten"] == {}
