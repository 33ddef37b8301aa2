"""CloudTalk's published call history through the CloudTalk profile's real listing loop.

The body in ``cloudtalk/`` is the example of CloudTalk's own OpenAPI document (see
``cloudtalk/SOURCES.md``). The CloudTalk simulator serves it unchanged on 127.0.0.1, the
profile lists it as the poll cycle does and the domain's ingest rules plan it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from poller.adapters.http import RetryPolicy
from poller.adapters.providers.profiles.cloudtalk import CloudTalkProvider, CloudTalkSettings
from poller.domain.ingest import IngestAction
from poller.domain.states import Direction, RecordingState
from poller.domain.windows import Window
from poller.simulators.audio import wav_bytes
from poller.simulators.cloudtalk_server import (
    KEY_ID,
    KEY_SECRET,
    CloudTalkApi,
    cloudtalk_agent,
    cloudtalk_call,
)
from poller.simulators.kit import basic_header, serve
from tests.vendor_payloads import conformance

WINDOW = Window(datetime(2017, 10, 4, 6, tzinfo=UTC), datetime(2017, 10, 4, 8, tzinfo=UTC))
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
FORMATS = {"datetime": re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:\d\d|Z)$")}


def published() -> dict[str, Any]:
    body = conformance.published("cloudtalk", "calls_index.json")
    assert isinstance(body, dict)
    return body


def published_item() -> dict[str, Any]:
    item = published()["responseData"]["data"][0]
    assert isinstance(item, dict)
    return item


@pytest.fixture
def api() -> Iterator[CloudTalkApi]:
    with serve(CloudTalkApi()) as running:
        yield running


def provider(api: CloudTalkApi) -> CloudTalkProvider:
    settings = CloudTalkSettings.model_validate(
        {"kind": "cloudtalk", "base_url": api.url, "username": KEY_ID, "password": KEY_SECRET}
    )
    return CloudTalkProvider(settings, retry=RetryPolicy(max_tries=1))


def test_the_published_call_maps_to_its_agent_contact_and_recording(api: CloudTalkApi) -> None:
    item = published_item()
    api.add_call(item, wav_bytes(0.5))
    adapter = provider(api)
    [record] = conformance.records_of(adapter.list_window(WINDOW)).values()
    assert record.provider_call_id == "27"
    assert record.started_at == datetime(2017, 10, 4, 6, 33, 37, tzinfo=UTC)
    assert record.direction is Direction.OUTBOUND
    # billsec "0", talking_time "21", 12 s from start to end: the longest is kept.
    assert record.duration_seconds == 21
    assert (record.rep_provider_id, record.rep_email, record.rep_name) == (
        "1234",
        "max.yellow@cloudtalk.io",
        "Max Yellow",
    )
    assert (record.contact_phone, record.contact_name) == ("+421904247371", "Jon Doe")
    assert record.recording_state is RecordingState.READY
    plan = conformance.planned("cloudtalk", record, NOW)
    assert (plan.change.action, plan.change.message) == (
        IngestAction.INSERTED,
        "listed; recording ready",
    )
    # Neither the customer's number nor the company number the call went through is the rep.
    cdr = item["Cdr"]
    conformance.assert_never_the_rep(record, [cdr["public_external"], cdr["public_internal"]])
    # The play page is never taken for the audio: the download is the recording endpoint.
    assert record.recording_url is None
    assert adapter.resolve_download(record).url == f"{api.url}/api/calls/recording/27.json"


def test_the_simulators_call_has_every_published_field_of_the_same_kind(
    api: CloudTalkApi,
) -> None:
    at = datetime(2017, 10, 4, 7, tzinfo=UTC)
    agent = cloudtalk_agent(1234, "rep1@example.com", "Rep One")
    api.add_call(cloudtalk_call(2, at, agent=agent), wav_bytes(0.5))
    answer = requests.get(
        f"{api.url}/api/calls/index.json",
        params={"date_from": "2017-10-04 06:00:00", "date_to": "2017-10-04 08:00:00"},
        headers={"Authorization": basic_header(KEY_ID, KEY_SECRET), "Accept": "application/json"},
        timeout=5,
    )
    served = answer.json()
    envelope = {key: value for key, value in served["responseData"].items() if key != "data"}
    assert set(envelope) == set(published()["responseData"]) - {"data"}
    [served_item] = served["responseData"]["data"]
    assert conformance.shape_differences(served_item, published_item(), FORMATS) == []
    assert conformance.shape_differences(published_item(), served_item, FORMATS) == []
    [record] = conformance.records_of(provider(api).list_window(WINDOW)).values()
    assert record.started_at == at and record.recording_state is RecordingState.READY
