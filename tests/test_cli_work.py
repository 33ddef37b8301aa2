"""`siro-poller work --until-idle`: the worker in the foreground, for backfills and debugging."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
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

STARTED = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


@pytest.fixture
def provider() -> Iterator[tuple[FakeCallLog, LocalHTTPServer]]:
    api = FakeCallLog()
    with serve(api) as server:
        for index in range(5):
            call_id = f"w-{index}"
            path = api.add_recording(f"/recordings/{call_id}", mp3_bytes())
            at = STARTED + timedelta(minutes=index)
            api.add_call(quickstart_call(call_id, at, recording_url=server.url + path), at)
        yield api, server


def test_work_until_idle_uploads_what_is_due_and_returns(
    engine: Engine, provider: tuple[FakeCallLog, LocalHTTPServer], tmp_path: Path
) -> None:
    _, server = provider
    with FakeSiro() as siro:
        env = {
            "SIRO_POLLER_DATABASE__URL": database_url(engine),
            "SIRO_POLLER_STATE_DIR": str(tmp_path / "state"),
            "SIRO_POLLER_PROVIDER__BASE_URL": server.url,
            "SIRO_POLLER_POLL__START_AT": (STARTED - timedelta(minutes=1)).isoformat(),
            "SIRO_POLLER_POLL__SETTLE_DELAY_SECONDS": "0",
            **{
                f"SIRO_POLLER_SIRO__{k.upper()}": env_text(v)
                for k, v in siro.settings_values().items()
            },
        }
        runner = CliRunner()
        assert runner.invoke(main, ["poll"], env=env).exit_code == 0
        result = runner.invoke(main, ["work", "--until-idle"], env=env)

        assert result.exit_code == 0, result.output
        assert "processed 5: 5 uploaded, 0 to retry, 0 failed, 0 skipped" in result.stdout
        assert len(siro.state.recordings) == 5
    assert SqlStore(engine).status(datetime.now(UTC)).counts[CallState.UPLOADED.value] == 5


def test_work_refuses_to_start_without_siro_credentials(engine: Engine) -> None:
    result = CliRunner().invoke(
        main, ["work", "--until-idle"], env={"SIRO_POLLER_DATABASE__URL": database_url(engine)}
    )
    assert result.exit_code == 2
    assert "siro.api_token: required" in result.stderr
