"""Two phone systems in one daemon: each polled under its own name, cursor and credentials."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine

from poller.adapters.siro_fake import InMemorySiro
from poller.adapters.sql.store import SqlStore
from poller.app import build_worker
from poller.cli import main
from poller.config import load_settings
from poller.core.users_sync import sync_users
from poller.domain.siro import SiroUser
from poller.domain.states import CallState
from poller.simulators.audio import mp3_bytes
from poller.simulators.http_server import LocalHTTPServer
from poller.simulators.provider_server import FakeCallLog, quickstart_call, serve
from tests.conftest import database_url

TOKENS = {"east": "east-token-123456", "west": "west-token-654321"}


@pytest.fixture
def logs() -> Iterator[dict[str, tuple[FakeCallLog, LocalHTTPServer]]]:
    east = FakeCallLog(auth=("bearer", TOKENS["east"]))
    west = FakeCallLog(auth=("bearer", TOKENS["west"]))
    with serve(east) as east_server, serve(west) as west_server:
        east.base_url, west.base_url = east_server.url, west_server.url
        yield {"east": (east, east_server), "west": (west, west_server)}


def offer(log: FakeCallLog, call_id: str, started: datetime) -> None:
    path = log.add_recording(f"/recordings/{call_id}.mp3", mp3_bytes(1))
    log.add_call(quickstart_call(call_id, started, recording_url=log.base_url + path), started)


def config(tmp_path: Path, logs: dict[str, tuple[FakeCallLog, LocalHTTPServer]]) -> Path:
    tables = "".join(
        f'[[providers]]\nname = "{name}"\nbase_url = "{server.url}"\nauth = "bearer"\n'
        for name, (_log, server) in logs.items()
    )
    path = tmp_path / "c.toml"
    path.write_text(tables + "[poll]\nsettle_delay_seconds = 0\n", encoding="utf-8")
    return path


def environment(engine: Engine) -> dict[str, str]:
    return {
        "SIRO_POLLER_DATABASE__URL": database_url(engine),
        "SIRO_POLLER_PROVIDERS__EAST__TOKEN": TOKENS["east"],
        "SIRO_POLLER_PROVIDERS__WEST__TOKEN": TOKENS["west"],
    }


def test_each_provider_is_polled_under_its_name_and_its_calls_reach_siro(
    engine: Engine,
    logs: dict[str, tuple[FakeCallLog, LocalHTTPServer]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recent = datetime.now(UTC) - timedelta(minutes=30)
    # The same call id at both providers: two calls, told apart by provider.
    offer(logs["east"][0], "call-1", recent)
    offer(logs["west"][0], "call-1", recent)
    offer(logs["west"][0], "call-2", recent + timedelta(minutes=1))
    path = config(tmp_path, logs)
    env = environment(engine)

    polled = CliRunner().invoke(main, ["--config", str(path), "poll"], env=env)
    assert polled.exit_code == 0, polled.output
    assert "provider east:" in polled.stdout and "provider west:" in polled.stdout
    store = SqlStore(engine)
    assert sorted((c.provider, c.provider_call_id) for c in store.list_calls()) == [
        ("east", "call-1"),
        ("west", "call-1"),
        ("west", "call-2"),
    ]
    assert sorted(cursor.provider for cursor in store.cursors()) == ["east", "west"]

    # Each download carries its own provider's credentials (each fake refuses the other's).
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = load_settings(path)
    siro = InMemorySiro(users=[SiroUser(id="user-9", email="manager@example.com")])
    sync_users(siro, store, datetime.now(UTC), default_region="US")
    worker = build_worker(settings, store, threading.Event(), siro=siro)
    worker.drain()
    assert {c.state for c in store.list_calls()} == {CallState.UPLOADED}
    assert len(siro.created) == 3


def test_poll_can_be_limited_to_one_provider(
    engine: Engine, logs: dict[str, tuple[FakeCallLog, LocalHTTPServer]], tmp_path: Path
) -> None:
    recent = datetime.now(UTC) - timedelta(minutes=30)
    offer(logs["east"][0], "call-1", recent)
    offer(logs["west"][0], "call-9", recent)
    path = config(tmp_path, logs)

    result = CliRunner().invoke(
        main, ["--config", str(path), "poll", "--provider", "west"], env=environment(engine)
    )
    assert result.exit_code == 0, result.output
    assert [c.provider for c in SqlStore(engine).list_calls()] == ["west"]
    assert logs["east"][0].list_requests() == []


def test_one_failing_provider_does_not_stop_the_other(
    engine: Engine, logs: dict[str, tuple[FakeCallLog, LocalHTTPServer]], tmp_path: Path
) -> None:
    recent = datetime.now(UTC) - timedelta(minutes=30)
    offer(logs["east"][0], "call-1", recent)
    offer(logs["west"][0], "call-2", recent)
    logs["east"][0].fail_page(1, 500, times=None)
    path = config(tmp_path, logs)

    result = CliRunner().invoke(main, ["--config", str(path), "poll"], env=environment(engine))
    assert result.exit_code == 1
    assert "poll failed for east:" in result.stderr and "HTTP 500" in result.stderr
    assert [c.provider_call_id for c in SqlStore(engine).list_calls()] == ["call-2"]


def test_a_call_of_a_provider_no_longer_configured_fails_with_its_reason(
    engine: Engine,
    logs: dict[str, tuple[FakeCallLog, LocalHTTPServer]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recent = datetime.now(UTC) - timedelta(minutes=30)
    offer(logs["east"][0], "call-1", recent)
    offer(logs["west"][0], "call-2", recent)
    path = config(tmp_path, logs)
    env = environment(engine)
    assert CliRunner().invoke(main, ["--config", str(path), "poll"], env=env).exit_code == 0

    # West is removed from the configuration; its call stays, and says why it cannot go on.
    path.write_text(
        path.read_text(encoding="utf-8").split('[[providers]]\nname = "west"')[0]
        + "[poll]\nsettle_delay_seconds = 0\n",
        encoding="utf-8",
    )
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = load_settings(path)
    store = SqlStore(engine)
    siro = InMemorySiro(users=[SiroUser(id="user-9", email="manager@example.com")])
    sync_users(siro, store, datetime.now(UTC), default_region="US")
    build_worker(settings, store, threading.Event(), siro=siro).drain()
    (east,) = store.find_calls("call-1")
    (west,) = store.find_calls("call-2")
    assert east.state is CallState.UPLOADED
    assert west.state is CallState.FAILED
    assert west.last_error is not None and "'west'" in west.last_error
    assert west.error_kind == "provider_not_configured"
