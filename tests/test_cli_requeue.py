"""Putting calls back through the pipe on purpose: `calls retry` selectors, `calls replay`
against the fake provider and the fake Siro on real sockets, and `calls list` paging."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine

from poller.adapters.sql.store import SqlStore
from poller.cli import main
from poller.domain.states import CallState
from poller.simulators.audio import mp3_bytes
from poller.simulators.http_server import LocalHTTPServer
from poller.simulators.provider_server import FakeCallLog, quickstart_call, serve
from poller.simulators.siro_server import FakeSiro
from tests.conftest import database_url
from tests.daemon_process import env_text
from tests.seed import seed_call

STARTED = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


def run(engine: Engine, *args: str, **env: str) -> Result:
    environment = {"SIRO_POLLER_DATABASE__URL": database_url(engine), **env}
    return CliRunner().invoke(main, list(args), env=environment)


@pytest.fixture
def provider() -> Iterator[LocalHTTPServer]:
    api = FakeCallLog()
    with serve(api) as server:
        path = api.add_recording("/recordings/call-1", mp3_bytes())
        api.add_call(quickstart_call("call-1", STARTED, recording_url=server.url + path), STARTED)
        yield server


def test_replay_uploads_a_second_recording_and_the_events_say_why(
    engine: Engine, provider: LocalHTTPServer, tmp_path: Path
) -> None:
    with FakeSiro() as siro:
        env = {
            "SIRO_POLLER_STATE_DIR": str(tmp_path / "state"),
            "SIRO_POLLER_PROVIDER__BASE_URL": provider.url,
            "SIRO_POLLER_POLL__START_AT": (STARTED - timedelta(minutes=1)).isoformat(),
            "SIRO_POLLER_POLL__SETTLE_DELAY_SECONDS": "0",
            **{
                f"SIRO_POLLER_SIRO__{k.upper()}": env_text(v)
                for k, v in siro.settings_values().items()
            },
        }
        assert run(engine, "poll", **env).exit_code == 0
        assert run(engine, "work", "--until-idle", **env).exit_code == 0
        (first,) = siro.state.recordings
        store = SqlStore(engine)
        (call,) = store.find_calls("call-1")
        assert call.siro_recording_id == first

        refused = run(engine, "calls", "replay", "call-1", **env)
        assert refused.exit_code == 1
        assert f"already in Siro as recording {first}" in refused.stderr
        assert "second recording" in refused.stderr and "--allow-duplicate" in refused.stderr
        assert store.find_calls("call-1")[0].state == CallState.UPLOADED

        replayed = run(engine, "calls", "replay", "call-1", "--allow-duplicate", **env)
        assert replayed.exit_code == 0, replayed.output
        assert f"the previous Siro recording {first} stays in Siro" in replayed.stdout
        worked = run(engine, "work", "--until-idle", **env)
        assert "processed 1: 1 uploaded" in worked.stdout, worked.output

        assert len(siro.state.recordings) == 2
        (second,) = set(siro.state.recordings) - {first}
    (call,) = store.find_calls("call-1")
    assert call.state == CallState.UPLOADED and call.siro_recording_id == second
    replay_events = [e for e in store.events_for(call.id) if e.step == "replay"]
    (event,) = replay_events
    assert (event.from_state, event.to_state) == ("uploaded", "pending")
    assert event.message is not None
    assert f"previous Siro recording {first}" in event.message
    assert "(cli)" in event.message and "--allow-duplicate" in event.message

    not_uploaded = seed_call(store, "call-2", state=CallState.FAILED)
    refused_failed = run(engine, "calls", "replay", str(not_uploaded.id), "--allow-duplicate")
    assert refused_failed.exit_code == 1
    assert "not uploaded: nothing to replay" in refused_failed.stderr
    assert "calls retry" in refused_failed.stderr


@pytest.fixture
def parked(sql_store: SqlStore) -> SqlStore:
    recent, old = STARTED, STARTED - timedelta(days=3)
    for index, (state, kind, started) in enumerate(
        [
            (CallState.FAILED, "http_403", recent),
            (CallState.FAILED, "http_403", old),
            (CallState.FAILED, "not_audio", recent),
            (CallState.SKIPPED, "rep_unknown", recent),
            (CallState.SKIPPED, "no_recording", recent),
        ]
    ):
        seed_call(
            sql_store,
            f"parked-{index}",
            state=state,
            error_kind=kind,
            last_error=f"{kind} happened",
            started_at=started,
        )
    seed_call(
        sql_store,
        "uploaded",
        state=CallState.UPLOADED,
        error_kind=None,
        siro_recording_id="rec-1",
        uploaded_at=STARTED,
        started_at=STARTED,
    )
    return sql_store


def pending(store: SqlStore) -> set[str]:
    return {c.provider_call_id for c in store.list_calls(state=CallState.PENDING)}


def test_retry_selectors_combine_and_dry_run_changes_nothing(parked: SqlStore) -> None:
    engine = parked.engine
    dry = run(engine, "calls", "retry", "--failed", "--error-kind", "http_403", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert dry.stdout.startswith(
        "would requeue 2 calls (failed, error kind http_403); dry run: nothing changed"
    )
    assert "parked-0" in dry.stdout and "parked-1" in dry.stdout
    assert "parked-2" not in dry.stdout
    assert pending(parked) == set()
    one = run(engine, "calls", "retry", "parked-1", "--dry-run")
    assert one.stdout.startswith("would requeue call")
    refused = run(engine, "calls", "retry", "uploaded", "--dry-run")
    assert refused.exit_code == 1 and "only failed or skipped" in refused.stderr

    done = run(engine, "calls", "retry", "--failed", "--error-kind", "http_403", "--since", "1d")
    assert done.exit_code == 0, done.output
    assert done.stdout.startswith("requeued 1 call (failed, error kind http_403, started since ")
    assert pending(parked) == {"parked-0"}

    skipped = run(engine, "calls", "retry", "--skipped")
    assert skipped.stdout.strip() == "requeued 2 calls (skipped)"
    assert pending(parked) == {"parked-0", "parked-3", "parked-4"}

    by_kind = run(engine, "calls", "retry", "--error-kind", "not_audio")
    assert by_kind.stdout.strip() == "requeued 1 call (failed or skipped, error kind not_audio)"
    nothing = run(engine, "calls", "retry", "--failed", "--skipped")
    assert nothing.stdout.strip() == "requeued 1 call (failed or skipped)"  # parked-1, the old one
    assert pending(parked) == {f"parked-{index}" for index in range(5)}

    assert run(engine, "calls", "retry").exit_code == 2
    assert run(engine, "calls", "retry", "parked-0", "--failed").exit_code == 2


def test_calls_list_pages_on_with_offset(parked: SqlStore) -> None:
    engine = parked.engine
    first = run(engine, "calls", "list", "--limit", "4")
    assert first.exit_code == 0, first.output
    assert "more exist" in first.stderr and "go on with --offset 4" in first.stderr

    rest = run(engine, "calls", "list", "--limit", "4", "--offset", "4")
    assert rest.exit_code == 0, rest.output
    assert "parked-0" in rest.stdout and "parked-1" in rest.stdout
    assert "parked-2" not in rest.stdout and "more exist" not in rest.stderr

    past_the_end = run(engine, "calls", "list", "--offset", "10")
    assert past_the_end.stdout.strip() == "no calls after the first 10"
