"""Salesloft's published call data record through the Salesloft profile's real listing loop.

The body in ``salesloft/`` is the example of Salesloft's own OpenAPI document (see
``salesloft/SOURCES.md``). The Salesloft simulator serves it unchanged on 127.0.0.1, the
profile lists it as the poll cycle does and the domain's ingest rules plan it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from poller.adapters.http import RetryPolicy
from poller.adapters.providers.profiles.salesloft import SalesloftProvider, SalesloftSettings
from poller.domain.ingest import IngestAction
from poller.domain.states import Direction, RecordingState
from poller.domain.windows import Window
from poller.ports.provider import ProviderRefused
from poller.simulators.audio import mp3_bytes
from poller.simulators.salesloft_server import API_KEY, SalesloftSimulator, salesloft_cdr
from tests.vendor_payloads import conformance

WINDOW = Window(datetime(2022, 1, 1, 4, tzinfo=UTC), datetime(2022, 1, 1, 6, tzinfo=UTC))
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
FORMATS = {"datetime": re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:\d\d|Z)$")}


def published() -> dict[str, Any]:
    body = conformance.published("salesloft", "call_data_record.json")
    assert isinstance(body, dict)
    return body


@pytest.fixture
def sim() -> Iterator[SalesloftSimulator]:
    with SalesloftSimulator() as running:
        running.api.add_user(10, "rep1@example.com", "Rep One")
        yield running


def provider(sim: SalesloftSimulator) -> SalesloftProvider:
    settings = SalesloftSettings.model_validate(
        {"kind": "salesloft", "base_url": sim.url, "token": API_KEY}
    )
    return SalesloftProvider(settings, retry=RetryPolicy(max_tries=1))


def test_the_published_record_maps_to_its_rep_contact_and_recording(
    sim: SalesloftSimulator,
) -> None:
    body = published()
    sim.api.add_call(body)
    adapter = provider(sim)
    [record] = conformance.records_of(adapter.list_window(WINDOW)).values()
    assert record.provider_call_id == "1"
    assert record.started_at == datetime(2022, 1, 1, 5, tzinfo=UTC)
    assert (record.direction, record.duration_seconds) == (Direction.OUTBOUND, 60)
    assert (record.rep_provider_id, record.rep_email, record.rep_name) == (
        "10",
        "rep1@example.com",
        "Rep One",
    )
    assert record.contact_phone == body["to"]
    assert record.rep_phone is None
    assert record.recording_state is RecordingState.READY
    assert record.recording_url == "http://example.com/recording/1"
    plan = conformance.planned("salesloft", record, NOW)
    assert (plan.change.action, plan.change.message) == (
        IngestAction.INSERTED,
        "listed; recording ready",
    )
    # The example's number is both ends; as a rep identifier it would name the customer.
    assert record.rep_phone is None and body["from"] not in record.rep_identifiers
    # Its placeholder host is no Salesloft host and not allowed: refused, never fetched.
    with pytest.raises(ProviderRefused, match=r"provider\.download_hosts"):
        adapter.resolve_download(record)


def test_the_simulators_record_has_every_published_field_of_the_same_kind(
    sim: SalesloftSimulator,
) -> None:
    at = datetime(2022, 1, 1, 5, 30, tzinfo=UTC)
    sim.api.add_call(salesloft_cdr(2, at), mp3_bytes(1))
    answer = requests.get(
        f"{sim.url}/v2/call_data_records/2.json",
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=5,
    )
    served = answer.json()["data"]
    assert conformance.shape_differences(served, published(), FORMATS) == []
    assert conformance.shape_differences(published(), served, FORMATS) == []
    [record] = conformance.records_of(provider(sim).list_window(WINDOW)).values()
    assert record.started_at == at and record.recording_state is RecordingState.READY
    assert record.started_at - WINDOW.start == timedelta(minutes=90)
