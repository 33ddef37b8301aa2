"""CallRail's published call list and recording answers through the CallRail profile.

The bodies in ``callrail/`` are the examples of CallRail's own API reference (see
``callrail/SOURCES.md``). The CallRail simulator serves the published calls on 127.0.0.1 (each
written in the zone the listing asks for, as CallRail does), the profile lists them as the poll
cycle does and the domain's ingest rules plan them; the published recording answers go through
the profile's recording step.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from poller.adapters.http import RetryPolicy
from poller.adapters.providers.profiles.callrail import CallRailProvider, CallRailSettings
from poller.domain.ingest import IngestAction
from poller.domain.states import Direction, RecordingState
from poller.domain.windows import Window
from poller.ports.provider import RecordPosition
from poller.simulators.audio import mp3_bytes
from poller.simulators.callrail_server import (
    ACCOUNT_ID,
    API_KEY,
    CallRailSimulator,
    callrail_call,
)
from poller.simulators.kit import Answer, HeaderAuth, Request, VendorApi, serve
from tests.vendor_payloads import conformance

WINDOW = Window(datetime(2017, 1, 24, 16, tzinfo=UTC), datetime(2017, 1, 25, 1, tzinfo=UTC))
NOW = datetime(2017, 2, 1, 12, 0, tzinfo=UTC)  # within CallRail's 25 months of the calls
FORMATS = {"datetime": re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:\d\d|Z)$")}
AUTH = {"Authorization": f'Token token="{API_KEY}"'}


def published_calls() -> list[dict[str, Any]]:
    body = conformance.published("callrail", "calls_list.json")
    assert isinstance(body, dict)
    calls = body["calls"]
    assert isinstance(calls, list)
    return calls


@pytest.fixture
def sim() -> Iterator[CallRailSimulator]:
    # The simulator's clock at NOW: the published calls of 2017 are within its retention.
    with CallRailSimulator(clock=NOW.timestamp) as running:
        yield running


def provider(base_url: str) -> CallRailProvider:
    settings = CallRailSettings.model_validate(
        {"kind": "callrail", "base_url": base_url, "account_id": ACCOUNT_ID, "api_key": API_KEY}
    )
    return CallRailProvider(settings, retry=RetryPolicy(max_tries=1))


def test_the_published_recorded_call_maps_to_its_agent_customer_and_recording(
    sim: CallRailSimulator,
) -> None:
    call = published_calls()[0]
    sim.api.add_call(dict(call))
    [record] = conformance.records_of(provider(sim.url).list_window(WINDOW)).values()
    assert record.provider_call_id == "CAL8154748ae6bd4e278a7cddd38a662f4f"
    assert record.started_at == datetime(2017, 1, 24, 16, 27, 48, 119000, tzinfo=UTC)
    assert (record.direction, record.duration_seconds) == (Direction.INBOUND, 4)
    assert record.rep_email == "gil@televised.com"
    assert (record.contact_phone, record.contact_name) == ("+13036231131", "RUEGSEGGER SIMO")
    # Unanswered, yet with a recording in the example: the recording decides.
    assert record.recording_state is RecordingState.READY
    assert record.recording_url is None
    plan = conformance.planned("callrail", record, NOW)
    assert (plan.change.action, plan.change.message) == (
        IngestAction.INSERTED,
        "listed; recording ready",
    )
    numbers = [call["tracking_phone_number"], call["customer_phone_number"], call["customer_name"]]
    conformance.assert_never_the_rep(record, numbers)


def test_the_published_call_without_a_recording_has_none_to_wait_for(
    sim: CallRailSimulator,
) -> None:
    sim.api.add_call(dict(published_calls()[1]))
    [record] = conformance.records_of(provider(sim.url).list_window(WINDOW)).values()
    assert record.rep_email == "elbert@bpp.com"
    assert record.recording_state is RecordingState.NONE
    assert record.no_recording_reason == "CallRail has no recording: the call was not answered"


@pytest.mark.parametrize(
    ("name", "host"),
    [
        ("recording.json", "app.callrail.com"),
        ("recording_hipaa.json", "calltrk-production.s3.amazonaws.com"),
    ],
)
def test_each_published_recording_answer_leads_to_an_allowed_host_without_the_key(
    name: str, host: str
) -> None:
    body = conformance.published("callrail", name)
    api = VendorApi(HeaderAuth("authorization", AUTH["Authorization"]))

    def recording(_request: Request, _match: re.Match[str]) -> Answer:
        return Answer.json(body)

    api.route("GET", rf"/v3/a/{ACCOUNT_ID}/calls/(?P<id>\w+)/recording\.json", recording)
    with serve(api):
        adapter = provider(api.url)
        sim_call = callrail_call("CAL1", WINDOW.start)
        sim_call["recording"] = "https://api.callrail.com/v3/a/x/calls/CAL1/recording.json"
        raw = sim_call | {"start_time": "2017-01-24T11:27:48.119-05:00"}
        record = adapter.map_record(raw, RecordPosition(WINDOW, 1, 0))
        request = adapter.resolve_download(record)
    assert request.url == body["url"]
    # The profile's default download_hosts hold both hosts the reference shows; neither is a
    # credential host, so the API key is never sent there.
    assert host in request.download_hosts and host not in request.credential_hosts
    assert request.secret_path and request.refreshable


def test_the_simulators_answers_have_every_published_field_of_the_same_kind(
    sim: CallRailSimulator,
) -> None:
    # Like the published pair: an unanswered call with a recording, and one without.
    sim.api.add_call(callrail_call("CAL2", WINDOW.start, answered=False), mp3_bytes(1))
    sim.api.add_call(callrail_call("CAL3", WINDOW.end, answered=False))
    listing = requests.get(
        f"{sim.url}/v3/a/{ACCOUNT_ID}/calls.json",
        params={
            "fields": "agent_email",
            "start_date": "2017-01-24",
            "end_date": "2017-01-25",
            "sort": "start_time",
            "order": "asc",
        },
        headers=AUTH,
        timeout=5,
    ).json()
    assert set(listing) == set(conformance.published("callrail", "calls_list.json"))
    for served, call in zip(listing["calls"], published_calls(), strict=True):
        assert conformance.shape_differences(served, call, FORMATS) == []
        assert conformance.shape_differences(call, served, FORMATS) == []
    answer = requests.get(
        f"{sim.url}/v3/a/{ACCOUNT_ID}/calls/CAL2/recording.json", headers=AUTH, timeout=5
    ).json()
    assert set(answer) == set(conformance.published("callrail", "recording.json"))
