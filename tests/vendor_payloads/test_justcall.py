"""JustCall's published call, as its OpenAPI document's own example values give it, through the
JustCall profile's real listing loop.

The body in ``justcall/`` is assembled from the property values of JustCall's ``api-v21.json``
(see ``justcall/SOURCES.md``). The JustCall simulator serves it unchanged on 127.0.0.1, the
profile lists it as the poll cycle does and the domain's ingest rules plan it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from poller.adapters.http import RetryPolicy
from poller.adapters.providers.profiles.justcall import JustCallProvider, JustCallSettings
from poller.domain.ingest import IngestAction
from poller.domain.states import RecordingState
from poller.domain.windows import Window
from poller.simulators.audio import mp3_bytes
from poller.simulators.justcall_server import API_KEY, API_SECRET, JustCallSimulator, justcall_call
from tests.vendor_payloads import conformance

WINDOW = Window(datetime(2017, 12, 18, 13, tzinfo=UTC), datetime(2017, 12, 18, 15, tzinfo=UTC))
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
FORMATS = {
    "date": re.compile(r"^\d{4}-\d\d-\d\d$"),
    "time": re.compile(r"^\d{1,2}:\d\d:\d\d$"),
}


def published() -> dict[str, Any]:
    body = conformance.published("justcall", "call_defaults.json")
    assert isinstance(body, dict)
    return body


@pytest.fixture
def sim() -> Iterator[JustCallSimulator]:
    with JustCallSimulator() as running:
        yield running


def provider(sim: JustCallSimulator) -> JustCallProvider:
    settings = JustCallSettings.model_validate(
        {
            "kind": "justcall",
            "base_url": sim.url,
            "api_key": API_KEY,
            "api_secret": API_SECRET,
            "time_zone": "America/New_York",
        }
    )
    return JustCallProvider(settings, retry=RetryPolicy(max_tries=1))


def test_the_published_call_maps_to_its_rep_contact_and_recording(
    sim: JustCallSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    body = published()
    sim.api.add_call(body)
    adapter = provider(sim)
    with caplog.at_level(logging.WARNING):
        [record] = conformance.records_of(adapter.list_window(WINDOW)).values()
    assert record.provider_call_id == "123456"
    # The start is the UTC pair; the user time, 29½ hours off it, only warns.
    assert record.started_at == datetime(2017, 12, 18, 13, 55, 43, tzinfo=UTC)
    [warning] = [r.getMessage() for r in caplog.records if "time zone" in r.getMessage()]
    assert "UTC-29:30" in warning
    assert (record.rep_email, record.rep_provider_id, record.rep_name) == (
        "john@abc.com",
        "1308",
        "John Smith",
    )
    assert (record.contact_phone, record.contact_name) == ("13801136XXX", "Rachel G.")
    assert record.rep_phone is None  # justcall_number is the line, not the rep
    assert record.direction is None  # "Outgoing/Incoming" is no direction
    assert record.duration_seconds == 155
    assert record.recording_state is RecordingState.READY
    plan = conformance.planned("justcall", record, NOW)
    assert (plan.change.action, plan.change.message) == (
        IngestAction.INSERTED,
        "listed; recording ready",
    )
    # The link is on justcall.io: allowed, and fetched without the account's key.
    request = adapter.resolve_download(record)
    assert request.url == body["call_info"]["recording"]
    assert "justcall.io" not in request.credential_hosts


def test_the_simulators_call_has_every_published_field_of_the_same_kind(
    sim: JustCallSimulator,
) -> None:
    at = datetime(2017, 12, 18, 14, 30, tzinfo=UTC)
    sim.api.add_call(justcall_call(2, at), mp3_bytes(1))
    answer = requests.get(
        f"{sim.url}/v2.1/calls",
        headers={"Authorization": f"{API_KEY}:{API_SECRET}"},
        timeout=5,
    )
    [served] = answer.json()["data"]
    assert conformance.shape_differences(served, published(), FORMATS) == []
    assert conformance.shape_differences(published(), served, FORMATS) == []
    [record] = conformance.records_of(provider(sim).list_window(WINDOW)).values()
    assert record.started_at == at and record.recording_state is RecordingState.READY
    assert record.started_at - WINDOW.start == timedelta(minutes=90)
