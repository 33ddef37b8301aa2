"""8x8's published Cloud Storage Service bodies through the 8x8 profile's real listing loop.

The bodies in ``eightbyeight/`` are the samples of 8x8's developer docs (see
``eightbyeight/SOURCES.md``). The 8x8 simulator serves the published call recording object
unchanged on 127.0.0.1, the profile lists it as the poll cycle does and the domain's ingest
rules plan it; the simulator's own answers are compared with the published shapes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from poller.adapters.http import RetryPolicy
from poller.adapters.providers.profiles.eightbyeight import (
    EightByEightProvider,
    EightByEightSettings,
)
from poller.domain.ingest import IngestAction
from poller.domain.states import Direction, RecordingState
from poller.domain.windows import Window
from poller.simulators.audio import mp3_bytes
from poller.simulators.eightbyeight_server import (
    CLIENT_ID,
    CLIENT_SECRET,
    EightByEightSimulator,
    call_recording,
)
from poller.simulators.kit import basic_header
from tests.vendor_payloads import conformance

WINDOW = Window(datetime(2022, 11, 1, 21, tzinfo=UTC), datetime(2022, 11, 1, 22, tzinfo=UTC))
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
FORMATS = {
    "datetime": re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$"),
    "digits": re.compile(r"^\d+$"),
}


def published(name: str) -> dict[str, Any]:
    body = conformance.published("eightbyeight", name)
    assert isinstance(body, dict)
    return body


@pytest.fixture
def sim() -> Iterator[EightByEightSimulator]:
    with EightByEightSimulator() as running:
        yield running


def provider(sim: EightByEightSimulator) -> EightByEightProvider:
    settings = EightByEightSettings.model_validate(
        {"kind": "8x8", "base_url": sim.url, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    )
    return EightByEightProvider(settings, retry=RetryPolicy(max_tries=1))


def test_the_published_call_recording_maps_to_its_rep_contact_and_recording(
    sim: EightByEightSimulator,
) -> None:
    body = published("callrecording_object.json")
    sim.api.add(body, mp3_bytes(1))
    adapter = provider(sim)
    [record] = conformance.records_of(adapter.list_window(WINDOW)).values()
    assert record.provider_call_id == "9984564e-557c-42bf-9b7c-40c7b909d489"
    assert record.started_at == datetime(2022, 11, 1, 21, 22, 22, tzinfo=UTC)
    # The startTime tag, in milliseconds, is the same instant: createdTime is UTC.
    assert abs(record.started_at.timestamp() * 1000 - 1667337742543) < 1000
    assert (record.direction, record.duration_seconds) == (Direction.OUTBOUND, 3)
    assert (record.rep_email, record.rep_name, record.rep_extension) == (
        "user@example.com",
        "Alex Wilber",
        "117209",
    )
    assert record.rep_provider_id == "2xEVyEt2SFmZfL3v5UuEdw"
    assert record.contact_phone == "+16695555518"
    conformance.assert_never_the_rep(record, ["+16695555518", "acmecorp"])
    assert record.recording_state is RecordingState.READY
    plan = conformance.planned("8x8", record, NOW)
    assert (plan.change.action, plan.change.message) == (
        IngestAction.INSERTED,
        "listed; recording ready",
    )
    request = adapter.resolve_download(record)
    assert request.url.endswith(f"/storage/us-east/v3/objects/{record.provider_call_id}/content")


def test_the_simulators_answers_have_every_published_field_of_the_same_kind(
    sim: EightByEightSimulator,
) -> None:
    token = requests.post(
        f"{sim.url}/oauth/v2/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": basic_header(CLIENT_ID, CLIENT_SECRET)},
        timeout=5,
    ).json()
    assert conformance.shape_differences(token, published("token.json"), FORMATS) == []
    sim.api.add(call_recording("obj-1", WINDOW.start + timedelta(minutes=5)), mp3_bytes(1))
    page = requests.get(
        f"{sim.url}/storage/us-east/v3/objects",
        params={"filter": "type==callrecording", "pageKey": "0", "limit": "100"},
        headers={"Authorization": f"Bearer {token['access_token']}"},
        timeout=5,
    ).json()
    envelope = published("find_objects_page.json")
    assert conformance.shape_differences(page, envelope, FORMATS) == []
    [served] = page["content"]
    for reference in (published("callrecording_object.json"), envelope["content"][0]):
        assert conformance.shape_differences(served, reference, FORMATS) == []
    # Every tag the published call recording carries, the simulator's carries too.
    keys = {tag["key"] for tag in published("callrecording_object.json")["tags"]}
    assert keys == {tag["key"] for tag in served["tags"]}
