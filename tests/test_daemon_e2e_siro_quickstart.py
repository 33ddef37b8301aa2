"""`siro-poller run` as a process against a Siro that speaks the phone quickstart's form.

That Siro takes ``{fileType, fileSizeInBytes, organizationId}`` for a signed URL and refuses
the API reference's ``{fileType, fileSize}`` with a 422 whose issues have code ``custom``, as
measured. The daemon learns the form from the first refusal and uploads every call exactly
once, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from poller.adapters.sql import migrate
from poller.adapters.sql.database import make_engine
from poller.simulators.provider_server import FakeCallLog, serve
from poller.simulators.siro_server import FakeSiro
from tests.test_daemon_e2e import (
    PROVIDER_TOKEN,
    World,
    assert_each_call_once_in_siro,
    offer,
    stop,
    wait_for,
)

LEARNED = "Siro takes the signed-url body as {fileType, fileSizeInBytes, organizationId}"


@pytest.fixture
def world(state_database_url: str, tmp_path: Path) -> Iterator[World]:
    engine = make_engine(state_database_url)
    migrate.upgrade(engine)
    api = FakeCallLog(auth=("bearer", PROVIDER_TOKEN), page_size=50)
    quickstart_siro = FakeSiro(
        verify_audio_type=True,
        signed_url_size_field="fileSizeInBytes",
        signed_url_requires_organization_id=True,
        zod_key_issues="custom",
    )
    with serve(api) as provider, quickstart_siro as siro:
        api.base_url = provider.url
        yield World(
            api=api,
            provider=provider,
            siro=siro,
            database_url=state_database_url,
            engine=engine,
            state_dir=tmp_path / "state",
            log_path=tmp_path / "daemon.log",
        )
    engine.dispose()


def test_every_call_reaches_a_quickstart_form_siro_exactly_once(world: World) -> None:
    call_ids = offer(world, 30)
    daemon = world.start()
    try:
        wait_for(lambda: world.counts()["uploaded"] == 30, 90, "30 uploads", world)
    finally:
        assert stop(daemon) == 0

    assert world.counts()["failed"] == 0
    assert_each_call_once_in_siro(world, call_ids)
    assert len(world.siro.state.requests_for("create")) == 30
    assert len(world.siro.state.recordings) == 30
    signed_urls = [r.json for r in world.siro.state.requests_for("signed-url")]
    refused = [body for body in signed_urls if "fileSize" in body]
    # Only callers that started before the form was learned were refused, once each.
    assert 1 <= len(refused) <= 4  # worker.concurrency
    assert len(signed_urls) == 30 + len(refused)
    accepted = [body for body in signed_urls if "fileSize" not in body]
    assert all(set(body) == {"fileType", "fileSizeInBytes", "organizationId"} for body in accepted)
    assert world.log().count(LEARNED) == 1
