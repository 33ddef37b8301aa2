"""Each vendor's delete, against its simulator: the documented request, 204 as deleted, 404 as
deleted already (done), other answers as errors, and what the simulators count.

The calls are listed first, as the daemon lists them, and the listed record is what is deleted:
the ids it carries are the ones the adapter sends.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from poller.adapters.providers.base import ProviderAdapter
from poller.domain.call_record import CallRecord
from poller.ports.provider import PermanentProviderError, SourceDeleter, TransientProviderError
from poller.simulators.siro_server import FakeSiro
from tests.provider_contract import T0, WINDOW, HttpWorld
from tests.test_provider_aircall import AircallWorld
from tests.test_provider_ringcentral import RingCentralWorld
from tests.test_provider_twilio import TwilioWorld
from tests.test_provider_zoom import ZoomWorld

WORLDS: dict[str, Callable[[], AbstractContextManager[Any]]] = {
    "ringcentral": RingCentralWorld,
    "zoom": ZoomWorld,
    "aircall": AircallWorld,
    "twilio": TwilioWorld,
}


@pytest.fixture(params=sorted(WORLDS))
def world(request: pytest.FixtureRequest) -> Iterator[HttpWorld]:
    with WORLDS[request.param]() as running:
        yield running


def deletes(world: HttpWorld) -> list[tuple[str, int]]:
    """What the simulator counted, as (recording or call id, status)."""
    if isinstance(world, RingCentralWorld):
        return [(",".join(ids), status) for ids, status in world.api.deletes]
    if isinstance(world, ZoomWorld):
        return list(world.phone.deletes)
    if isinstance(world, AircallWorld):
        return list(world.sim.api.deletes)
    assert isinstance(world, TwilioWorld)
    return list(world.api.deletes)


def listed(world: HttpWorld, call_id: str) -> tuple[ProviderAdapter[Any], CallRecord]:
    world.add_call(call_id, T0 + timedelta(minutes=5))
    provider = world.provider()
    assert isinstance(provider, ProviderAdapter) and isinstance(provider, SourceDeleter)
    [record] = [r for page in provider.list_window(WINDOW) for r in page.records]
    return provider, record


def test_a_delete_is_sent_once_and_a_second_one_is_a_404_that_counts_as_done(
    world: HttpWorld,
) -> None:
    provider, record = listed(world, "c0001")
    assert isinstance(provider, SourceDeleter)
    first = provider.delete_recording(record)
    assert (first.outcome, first.http_status) == ("deleted", 204)
    again = provider.delete_recording(record)
    assert (again.outcome, again.http_status) == ("gone", 404)
    [(sent, status), (sent_again, status_again)] = deletes(world)
    assert (status, status_again) == (204, 404)
    assert sent == sent_again == (record.recording_id or record.provider_call_id)


def test_a_server_error_is_retried_within_bounds_then_raised_as_transient() -> None:
    with TwilioWorld() as world:
        provider, record = listed(world, "c0002")
        world.api.fail("delete", 503, times=None)
        assert isinstance(provider, SourceDeleter)
        with pytest.raises(TransientProviderError) as raised:
            provider.delete_recording(record)
        assert raised.value.status == 503
        assert world.api.deletes == []  # refused before anything was deleted
        assert len([r for r in world.api.requests if r[0] == "delete"]) == 3  # max_tries


def test_ringcentral_sends_the_ids_in_a_body_and_names_the_permission_it_lacks() -> None:
    with RingCentralWorld() as world:
        provider, record = listed(world, "c0003")
        assert isinstance(provider, SourceDeleter)
        world.api.delete_permission = False
        with pytest.raises(PermanentProviderError) as raised:
            provider.delete_recording(record)
        assert raised.value.status == 403
        assert "EditCallLog" in str(raised.value)
        assert "EditCompanyCallRecordings" in str(raised.value)
        sent = [r for r in world.api.requests if r.method == "DELETE"]
        assert sent  # (a 403 is tried once more with a fresh token, as every request is)
        assert all(r.path == "/restapi/v1.0/account/~/call-recordings" for r in sent)
        assert all(r.headers["Authorization"].startswith("Bearer ") for r in sent)
        assert [status for _ids, status in world.api.deletes] == [403] * len(sent)


def test_ringcentral_deletes_keep_to_the_heavy_group() -> None:
    with RingCentralWorld() as world:
        for n in range(2):
            world.add_call(f"c01{n:02d}", T0 + timedelta(minutes=5 + n))
        provider = world.provider()
        assert isinstance(provider, SourceDeleter)
        first, second = [r for page in provider.list_window(WINDOW) for r in page.records]
        # One request of the Heavy group a minute, and a minute's penalty past it.
        world.api.groups["Heavy"] = (1, 60, 60)
        world.clock.now += 60  # past the listing, which is in the Heavy group too
        assert provider.delete_recording(first).outcome == "deleted"
        sent = len(world.api.requests)
        # The group is used up for a minute, longer than a request waits: the delete is not
        # sent now (sent, it would restart the penalty) and the deletion job tries it later.
        with pytest.raises(TransientProviderError, match="rate limit"):
            provider.delete_recording(second)
        assert len(world.api.requests) == sent
        assert [status for _ids, status in world.api.deletes] == [204]
        world.clock.now += 60  # the job's next attempt
        assert provider.delete_recording(second).outcome == "deleted"
        assert [status for _ids, status in world.api.deletes] == [204, 204]


def test_the_delete_body_is_ringcentrals_call_recording_ids() -> None:
    with RingCentralWorld() as world:
        provider, record = listed(world, "c0004")
        assert isinstance(provider, SourceDeleter)
        sent: list[bytes] = []
        original = provider.http.request

        def spy(method: str, url: str, **kwargs: Any) -> Any:
            sent.append(json.dumps(kwargs.get("json")).encode())
            return original(method, url, **kwargs)

        provider.http.request = spy  # type: ignore[method-assign]
        provider.delete_recording(record)
        assert json.loads(sent[0]) == {"records": [{"id": record.recording_id}]}


# -- provider check, with delete_at_source on --------------------------------------------------


@pytest.fixture
def rc() -> Iterator[RingCentralWorld]:
    with RingCentralWorld() as running:
        yield running


def test_provider_check_says_deletion_would_work(rc: RingCentralWorld) -> None:
    from click.testing import CliRunner

    from poller.cli import main
    from tests.test_provider_ringcentral import _check_env

    env = _check_env(rc, SIRO_POLLER_PROVIDER__DELETE_AT_SOURCE="true")
    result = CliRunner().invoke(main, ["provider", "check"], env=env)
    assert result.exit_code == 0, result.output
    assert "provider ringcentral: deletion at the source: ok" in result.stdout
    [asked] = [r for r in rc.api.requests if r.path.endswith("/authz-profile/check")]
    assert asked.query == {"permissionId": ["EditCompanyCallRecordings"]}
    assert rc.api.deletes == []  # checked without deleting anything


@pytest.mark.parametrize(
    ("app_may", "user_may", "missing"),
    [
        (False, True, ["EditCallLog"]),
        (True, False, ["EditCompanyCallRecordings"]),
        (False, False, ["EditCallLog", "EditCompanyCallRecordings"]),
    ],
)
def test_provider_check_names_each_permission_deleting_lacks(
    rc: RingCentralWorld, app_may: bool, user_may: bool, missing: list[str]
) -> None:
    from click.testing import CliRunner

    from poller.cli import main
    from tests.test_provider_ringcentral import _check_env

    rc.api.delete_permission = app_may
    if not user_may:
        rc.api.user_permissions.discard("EditCompanyCallRecordings")
    env = _check_env(rc, SIRO_POLLER_PROVIDER__DELETE_AT_SOURCE="true")
    result = CliRunner().invoke(main, ["provider", "check"], env=env)
    assert result.exit_code == 1
    lines = [line for line in result.stdout.splitlines() if "deletion at the source" in line]
    assert len(lines) == len(missing)
    for line, permission in zip(lines, missing, strict=True):
        assert f"lacks the {permission} permission" in line
    assert "provider check failed for ringcentral: deletion at the source" in result.output


def test_provider_check_asks_nothing_of_deletion_while_it_is_off(rc: RingCentralWorld) -> None:
    from click.testing import CliRunner

    from poller.cli import main
    from tests.test_provider_ringcentral import _check_env

    rc.api.delete_permission = False
    result = CliRunner().invoke(main, ["provider", "check"], env=_check_env(rc))
    assert result.exit_code == 0, result.output
    assert "deletion" not in result.output
    assert not [r for r in rc.api.requests if r.path.endswith("/authz-profile/check")]


def test_doctor_checks_deletion_for_a_provider_that_opted_in(
    rc: RingCentralWorld, tmp_path: Path
) -> None:
    from tests.test_doctor import _drop_provider_keys, doctor, lines_of, write_config

    rc.api.user_permissions.discard("EditCompanyCallRecordings")
    with FakeSiro() as siro:
        provider = {
            "kind": "ringcentral",
            "media_base_url": rc.api.media_url,
            "client_id": rc.api.client_id,
            "client_secret": rc.api.client_secret,
            "jwt": rc.api.jwt,
            "delete_at_source": True,
        }
        config = write_config(
            tmp_path,
            siro,
            rc.api.base_url,
            f"sqlite:///{tmp_path / 'state.sqlite3'}",
            provider=provider,
        )
        _drop_provider_keys(config, "auth", "token")
        result = doctor(config)
    line = lines_of(result)["deletion at the source (ringcentral)"]
    assert line.startswith("✗ deletion at the source (ringcentral): deletes would be refused")
    assert "EditCompanyCallRecordings" in line
    assert result.exit_code == 1
