"""Aircall calls through the Aircall adapter's real listing loop.

No response body published by Aircall itself could be reached (see ``aircall/SOURCES.md``), so
the calls here are the simulator's, which follow the call object's fields and kinds as
Airbyte's Aircall connector schema (a third party) lists them; a test below holds the simulator
to that schema. Each case serves its calls on 127.0.0.1, lists them as the poll cycle does and
asserts what the domain's ingest rules do with each one.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from poller.adapters.http import RetryPolicy
from poller.adapters.providers.aircall import AircallProvider, AircallSettings
from poller.domain.call_record import CallRecord
from poller.domain.filters import SkipReason
from poller.domain.ingest import IngestAction, IngestPlan
from poller.domain.states import CallState, Direction, RecordingState
from poller.domain.windows import Window
from poller.simulators.aircall_server import AircallSimulator, aircall_call, aircall_contact
from tests.vendor_payloads import conformance

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
WINDOW = Window(T0, T0 + timedelta(hours=1))
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
AUDIO = b"ID3\x04\x00aircall-audio"


@pytest.fixture
def aircall() -> Iterator[AircallSimulator]:
    with AircallSimulator() as sim:
        yield sim


def listed_records(sim: AircallSimulator) -> dict[str, CallRecord]:
    settings = AircallSettings.model_validate(
        {
            "kind": "aircall",
            "base_url": sim.url,
            "api_id": sim.api.api_id,
            "api_token": sim.api.api_token,
            "download_hosts": [sim.media_host],
        }
    )
    provider = AircallProvider(settings, retry=RetryPolicy(max_tries=1))
    return conformance.records_of(provider.list_window(WINDOW))


def planned(record: CallRecord) -> IngestPlan:
    return conformance.planned("aircall", record, NOW)


def assert_never_the_rep(record: CallRecord, call: dict[str, Any]) -> None:
    """The customer's number and name are never among the rep's identifiers."""
    contact = call.get("contact") or {}
    numbers = [entry.get("value") for entry in contact.get("phone_numbers") or []]
    conformance.assert_never_the_rep(
        record, (call.get("raw_digits"), contact.get("first_name"), *numbers)
    )


def test_an_answered_recorded_call_maps_to_its_user_and_line(aircall: AircallSimulator) -> None:
    call = aircall_call(
        101,
        T0 + timedelta(minutes=5),
        direction="inbound",
        contact=aircall_contact("Casey", "Caller", "+1 415-555-0142"),
        raw_digits="+1 415-555-0142",
    )
    aircall.api.add_call(call, recording=AUDIO)
    [record] = listed_records(aircall).values()
    assert (record.rep_email, record.rep_name, record.rep_provider_id, record.rep_phone) == (
        "rep@example.com",
        "Rep Name",
        "42",
        "+1 415-555-0199",  # the Aircall line the call came in on
    )
    assert (record.contact_name, record.contact_phone, record.direction) == (
        "Casey Caller",
        "+1 415-555-0142",
        Direction.INBOUND,
    )
    assert record.started_at == T0 + timedelta(minutes=5)
    assert record.duration_seconds == 190
    assert record.recording_state is RecordingState.READY
    # The signed URL is stored with every query value masked; a fresh one is asked for at
    # download.
    assert record.recording_url is not None
    assert "X-Amz-Signature=[REDACTED]" in record.recording_url
    assert "?" in record.recording_url and all(
        value == "[REDACTED]"
        for pair in record.recording_url.split("?", 1)[1].split("&")
        for value in [pair.partition("=")[2]]
    )
    plan = planned(record)
    assert (plan.change.action, plan.change.message) == (
        IngestAction.INSERTED,
        "listed; recording ready",
    )
    assert_never_the_rep(record, call)


def test_an_answered_call_on_a_recording_line_waits_for_its_late_recording(
    aircall: AircallSimulator,
) -> None:
    call = aircall_call(102, T0 + timedelta(minutes=6))
    aircall.api.add_call(call)  # recording: null for now
    [record] = listed_records(aircall).values()
    assert record.recording_state is RecordingState.PENDING
    plan = planned(record)
    assert (plan.change.action, plan.change.to_state) == (IngestAction.INSERTED, CallState.PENDING)
    assert plan.values["next_attempt_at"] is None  # waits, up to poll.recording_wait_hours
    assert_never_the_rep(record, call)


def test_a_call_on_a_line_that_does_not_record_is_skipped_at_once(
    aircall: AircallSimulator,
) -> None:
    call = aircall_call(103, T0 + timedelta(minutes=7), line_records=False)
    aircall.api.add_call(call)
    [record] = listed_records(aircall).values()
    assert record.recording_state is RecordingState.NONE
    plan = planned(record)
    assert (plan.change.action, plan.change.to_state) == (IngestAction.SKIPPED, CallState.SKIPPED)
    assert plan.values["error_kind"] == SkipReason.NO_RECORDING
    assert plan.values["last_error"] == (
        "the Aircall line Sales US does not record calls (number.live_recording_activated is false)"
    )


def test_a_line_that_does_not_say_whether_it_records_keeps_the_call_waiting(
    aircall: AircallSimulator,
) -> None:
    call = aircall_call(104, T0 + timedelta(minutes=8))
    del call["number"]["live_recording_activated"]
    aircall.api.add_call(call)
    [record] = listed_records(aircall).values()
    assert record.recording_state is RecordingState.PENDING
    assert planned(record).change.action is IngestAction.INSERTED


def test_a_call_still_going_on_a_line_that_does_not_record_is_not_decided_yet(
    aircall: AircallSimulator,
) -> None:
    call = aircall_call(105, T0 + timedelta(minutes=9), status="answered", line_records=False)
    aircall.api.add_call(call)
    [record] = listed_records(aircall).values()
    assert record.recording_state is RecordingState.PENDING


def test_a_missed_call_is_skipped_as_never_recorded(aircall: AircallSimulator) -> None:
    call = aircall_call(106, T0 + timedelta(minutes=10), answered=False)
    aircall.api.add_call(call)
    [record] = listed_records(aircall).values()
    plan = planned(record)
    assert (plan.change.action, plan.values["last_error"]) == (
        IngestAction.SKIPPED,
        "the provider reports no recording",
    )


def test_an_outbound_call_without_a_user_names_only_its_line(aircall: AircallSimulator) -> None:
    call = aircall_call(107, T0 + timedelta(minutes=11), direction="outbound", user={})
    aircall.api.add_call(call, recording=AUDIO)
    [record] = listed_records(aircall).values()
    assert (record.rep_email, record.rep_provider_id, record.rep_phone) == (
        None,
        None,
        "+1 415-555-0199",
    )
    assert record.contact_phone == "+1 415-555-0100"
    assert_never_the_rep(record, call)


# -- the simulator against the call object's published schema -------------------------------

# Every property of the call object in Airbyte's Aircall connector schema
# (airbytehq/airbyte, airbyte-integrations/connectors/source-aircall/manifest.yaml, commit
# 153f098764e18b3eadbd3d998592fddbaea0243c, schemas.calls), with the JSON kinds it allows.
CALL_SCHEMA: dict[str, set[str]] = {
    "answered_at": {"number", "null"},
    "archived": {"boolean", "null"},
    "asset": {"string", "null"},
    "assigned_to": {"object", "null"},
    "comments": {"array", "null"},
    "contact": {"object", "null"},
    "cost": {"string", "null"},
    "country_code_a2": {"string", "null"},
    "direct_link": {"string", "null"},
    "direction": {"string", "null"},
    "duration": {"number", "null"},
    "ended_at": {"number", "null"},
    "id": {"number"},
    "missed_call_reason": {"string", "null"},
    "number": {"object", "null"},
    "pricing_type": {"string", "null"},
    "raw_digits": {"string", "null"},
    "recording": {"string", "null"},
    "started_at": {"number", "null"},
    "status": {"string", "null"},
    "tags": {"array", "null"},
    "teams": {"array", "null"},
    "transferred_by": {"object", "null"},
    "transferred_to": {"object", "null"},
    "user": {"object", "null"},
    "voicemail": {"string", "null"},
}
NUMBER_SCHEMA: dict[str, set[str]] = {
    "availability_status": {"string", "null"},
    "country": {"string", "null"},
    "created_at": {"string", "null"},
    "digits": {"string", "null"},
    "direct_link": {"string", "null"},
    "id": {"number", "null"},
    "is_ivr": {"boolean", "null"},
    "live_recording_activated": {"boolean", "null"},
    "name": {"string", "null"},
    "open": {"boolean", "null"},
    "priority": {"string", "null"},
    "time_zone": {"string", "null"},
}


@pytest.mark.parametrize("answered", [True, False])
def test_the_simulators_calls_carry_the_schemas_fields_and_kinds(
    aircall: AircallSimulator, answered: bool
) -> None:
    aircall.api.add_call(aircall_call(201, T0, answered=answered), recording=AUDIO)
    status, body = aircall.api.single("201")
    assert status == 200
    served = body["call"]
    assert set(CALL_SCHEMA) <= set(served)
    assert {
        k: conformance.json_kind(served[k])
        for k in CALL_SCHEMA
        if conformance.json_kind(served[k]) not in CALL_SCHEMA[k]
    } == {}
    assert set(NUMBER_SCHEMA) == set(served["number"])
    line = served["number"]
    assert {
        k: conformance.json_kind(line[k])
        for k in NUMBER_SCHEMA
        if conformance.json_kind(line[k]) not in NUMBER_SCHEMA[k]
    } == {}
