"""Dialpad's published bodies through the Dialpad adapter's real listing loop.

Dialpad's OpenAPI spec (``dialpad/dialpad-python-sdk``, see ``dialpad/SOURCES.md``) has one
example ``CallProto``, the answer of ``call.get_call_info``; ``call.list`` answers a
``CallCollection`` of the same objects and has no example of its own. The simulator serves the
example unchanged as the collection's item; the adapter lists it as the poll cycle does and the
domain's ingest rules plan each outcome. The named variants change only what the spec allows:
the target's type (``callcenter``, ``department``, ``office``), a call with its recording
details, optional fields left out.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from poller.adapters.http import RetryPolicy
from poller.adapters.providers.dialpad import DialpadProvider, DialpadSettings
from poller.domain.attribution import (
    AttributionMethod,
    InMemoryUserDirectory,
    RepRules,
    RepSkipReason,
    attribute,
)
from poller.domain.call_record import CallRecord
from poller.domain.failures import StepFailure
from poller.domain.filters import SkipReason
from poller.domain.ingest import (
    IngestAction,
    IngestPlan,
)
from poller.domain.records import Call
from poller.domain.siro import SiroUser
from poller.domain.states import CallState, Direction, RecordingState
from poller.domain.windows import Window
from poller.simulators.dialpad_server import DialpadServers, call_proto, recording_detail
from tests.vendor_payloads import conformance

API_KEY = "dialpad-conformance-key"
STARTED = datetime(2013, 1, 1, tzinfo=UTC)  # the example's date_started, 1356998400000
WINDOW = Window(STARTED - timedelta(minutes=30), STARTED + timedelta(minutes=30))
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
# A call center as the spec's examples show groups (the operators example names this id).
CALL_CENTER = {
    "email": "",
    "id": "5220648944236254",
    "name": "Support Line",
    "phone": "+14155551000",
    "type": "callcenter",
}


def published(name: str) -> Any:
    return conformance.published("dialpad", name)


def published_call() -> dict[str, Any]:
    """The spec's ``CallProto`` example, unchanged."""
    call = published("call-get_call_info-json_example.json")
    assert isinstance(call, dict)
    return call


@pytest.fixture
def dialpad() -> Iterator[DialpadServers]:
    with DialpadServers(API_KEY) as servers:
        yield servers


def listed_records(servers: DialpadServers) -> dict[str, CallRecord]:
    settings = DialpadSettings.model_validate(
        {"kind": "dialpad", "base_url": servers.url, "api_key": API_KEY}
    )
    provider = DialpadProvider(settings, retry=RetryPolicy(max_tries=1))
    return conformance.records_of(provider.list_window(WINDOW))


def planned(record: CallRecord) -> IngestPlan:
    return conformance.planned("dialpad", record, NOW)


def assert_never_the_rep(record: CallRecord, call: dict[str, Any]) -> None:
    """No rep identifier of the record is the customer's, or a group's the call went through."""
    groups = [
        party
        for party in (call.get("target"), call.get("entry_point_target"), call.get("proxy_target"))
        if isinstance(party, dict) and party.get("type") != "user"
    ]
    contact = call.get("contact") or {}
    not_reps = (
        contact.get("phone"),
        contact.get("name"),
        contact.get("id"),
        call.get("external_number"),
        *(group.get(key) for group in groups for key in ("id", "name", "phone", "email")),
    )
    conformance.assert_never_the_rep(record, not_reps)


def siro_users(*users: SiroUser) -> InMemoryUserDirectory:
    return conformance.siro_users(*users, now=NOW)


def stored(record: CallRecord) -> Call:
    return conformance.stored("dialpad", record)


# Siro users who could wrongly receive a call: one holds the call center's line, one the
# customer's number; the user target's own email belongs to the third.
DIRECTORY = (
    SiroUser(id="siro-queue-line", phone_number=CALL_CENTER["phone"]),
    SiroUser(id="siro-customer", phone_number="+14155557777"),
    SiroUser(id="siro-bot", email="bot@fuzz-ball.com"),
)


def recorded(call: dict[str, Any]) -> dict[str, Any]:
    """The example call with a call recording Dialpad has filled in."""
    call = copy.deepcopy(call)
    call["was_recorded"] = True
    call["recording_details"] = [recording_detail("rec-1002", STARTED)]
    return call


# -- the published body as it is ------------------------------------------------------------


def test_the_published_call_maps_to_its_user_target(dialpad: DialpadServers) -> None:
    call = published_call()
    dialpad.state.add_call(call)
    [record] = listed_records(dialpad).values()
    assert record.provider_call_id == "1002"
    assert (record.rep_email, record.rep_phone, record.rep_provider_id, record.rep_name) == (
        "bot@fuzz-ball.com",
        "+14155551001",
        "2",
        "テÉst Bot",
    )
    assert (record.contact_name, record.contact_phone, record.direction) == (
        "(415) 555-7777",
        "+14155557777",
        Direction.INBOUND,
    )
    assert record.started_at == STARTED
    # The example is a call still connected: no end, no duration.
    assert (record.ended_at, record.duration_seconds) == (None, None)
    # was_recorded false and no recording details: skipped at once, with that reason.
    assert (record.recording_state, record.recording_id, record.recording_url) == (
        RecordingState.NONE,
        None,
        None,
    )
    plan = planned(record)
    assert (plan.change.action, plan.change.to_state) == (IngestAction.SKIPPED, CallState.SKIPPED)
    assert plan.values["error_kind"] == SkipReason.NO_RECORDING
    assert plan.values["last_error"] == "the provider reports no recording"
    assert_never_the_rep(record, call)


def test_the_published_call_with_its_recording_is_ready_for_upload(
    dialpad: DialpadServers,
) -> None:
    call = recorded(published_call())
    dialpad.state.add_call(call)
    [record] = listed_records(dialpad).values()
    assert record.recording_state is RecordingState.READY
    assert record.recording_id == "callrecording:rec-1002"
    assert record.recording_url == "https://dialpad.com/r/rec-1002"
    assert record.rep_email == "bot@fuzz-ball.com"
    plan = planned(record)
    assert (plan.change.action, plan.change.message) == (
        IngestAction.INSERTED,
        "listed; recording ready",
    )


def test_a_recorded_call_whose_recording_is_not_filled_in_yet_waits(
    dialpad: DialpadServers,
) -> None:
    call = published_call()
    call["was_recorded"] = True  # and no recording_details yet
    dialpad.state.add_call(call)
    [record] = listed_records(dialpad).values()
    assert (record.recording_state, record.recording_id) == (RecordingState.PENDING, None)
    plan = planned(record)
    assert (plan.change.action, plan.change.message) == (
        IngestAction.INSERTED,
        "listed; waiting for the recording",
    )


def test_a_voicemail_is_never_the_calls_recording(dialpad: DialpadServers) -> None:
    call = published_call()
    call["recording_details"] = [
        recording_detail(
            "vm-1", STARTED, recording_type="voicemail", url="https://dialpad.com/r/vm"
        )
    ]
    dialpad.state.add_call(call)
    [record] = listed_records(dialpad).values()
    assert (record.recording_state, record.recording_id) == (RecordingState.NONE, None)
    assert planned(record).change.action is IngestAction.SKIPPED


# -- group targets: never the rep -----------------------------------------------------------


@pytest.mark.parametrize("group_type", ["callcenter", "department", "office"])
def test_a_group_target_is_never_the_rep(dialpad: DialpadServers, group_type: str) -> None:
    call = recorded(published_call())
    call["target"] = {**CALL_CENTER, "type": group_type}
    # The group's line is the internal number of its calls.
    call["internal_number"] = CALL_CENTER["phone"]
    call["group_id"] = f"CallCenter:{CALL_CENTER['id']}"
    dialpad.state.add_call(call)
    [record] = listed_records(dialpad).values()
    # The spec names no agent for such a call: no rep at all, not the group's line.
    assert record.rep_identifiers == ()
    assert (record.contact_phone, record.direction) == ("+14155557777", Direction.INBOUND)
    # Skipped when listed, its reason naming the group: nothing is downloaded for a call Siro
    # could not attribute, and the admin reads why.
    plan = planned(record)
    assert (plan.change.action, plan.change.to_state) == (IngestAction.SKIPPED, CallState.SKIPPED)
    assert plan.values["error_kind"] == SkipReason.REP_UNDECIDED
    assert plan.values["last_error"] == (
        f"the Dialpad call went to the {group_type} 'Support Line', not a person, and Dialpad "
        "names no agent for such a call; the agent's own leg is listed as a call of its own"
    )
    assert_never_the_rep(record, call)


def test_siro_never_gets_a_call_center_call_as_the_call_centers_line(
    dialpad: DialpadServers,
) -> None:
    call = recorded(published_call())
    call["target"] = CALL_CENTER
    call["internal_number"] = CALL_CENTER["phone"]
    dialpad.state.add_call(call)
    [record] = listed_records(dialpad).values()
    with pytest.raises(StepFailure) as skipped:
        attribute(stored(record), siro_users(*DIRECTORY), RepRules())
    assert skipped.value.kind == RepSkipReason.NO_REP_IDENTITY


def test_siro_gets_the_published_call_as_its_user_targets(dialpad: DialpadServers) -> None:
    dialpad.state.add_call(recorded(published_call()))
    [record] = listed_records(dialpad).values()
    attribution = attribute(stored(record), siro_users(*DIRECTORY), RepRules())
    assert (attribution.method, attribution.siro_user_id) == (
        AttributionMethod.SIRO_EMAIL,
        "siro-bot",
    )


def test_a_user_target_reached_through_a_call_center_is_the_rep(
    dialpad: DialpadServers,
) -> None:
    # The agent's own leg: the call center is where it entered, the user took it.
    call = recorded(published_call())
    call["entry_point_target"] = CALL_CENTER
    dialpad.state.add_call(call)
    [record] = listed_records(dialpad).values()
    assert (record.rep_email, record.rep_provider_id, record.rep_phone) == (
        "bot@fuzz-ball.com",
        "2",
        "+14155551001",
    )
    assert_never_the_rep(record, call)


# -- optional fields absent -----------------------------------------------------------------


def test_a_user_target_without_a_phone_takes_the_internal_number(dialpad: DialpadServers) -> None:
    call = recorded(published_call())
    del call["target"]["phone"]
    dialpad.state.add_call(call)
    [record] = listed_records(dialpad).values()
    assert record.rep_phone == "+14155551001"  # the example's internal_number
    assert_never_the_rep(record, call)


def test_a_call_without_target_or_contact_names_no_rep_and_keeps_the_external_number(
    dialpad: DialpadServers,
) -> None:
    call = recorded(published_call())
    del call["target"], call["contact"]
    dialpad.state.add_call(call)
    [record] = listed_records(dialpad).values()
    assert record.rep_identifiers == ()
    assert record.contact_phone == "+14155557777"  # the example's external_number
    assert record.rep_undecided_reason == (
        "the Dialpad call has no target, so it names no one who took or placed it"
    )
    assert_never_the_rep(record, call)


def test_an_outbound_call_with_a_proxy_caller_id_keeps_its_user_as_the_rep(
    dialpad: DialpadServers,
) -> None:
    # proxy_target: the caller ID the user dialled out with (a department's line).
    call = recorded(published_call())
    call["direction"] = "outbound"
    call["proxy_target"] = {**CALL_CENTER, "type": "department"}
    dialpad.state.add_call(call)
    [record] = listed_records(dialpad).values()
    assert (record.rep_email, record.direction) == ("bot@fuzz-ball.com", Direction.OUTBOUND)
    assert_never_the_rep(record, call)


# -- the simulator against the published body -----------------------------------------------


def kind_differences(simulated: dict[str, Any], example: dict[str, Any]) -> list[str]:
    """Fields both carry whose JSON kind differs (int64 as strings, as the example has them);
    the fields either leaves out are compared by the tests themselves."""
    differences = conformance.shape_differences(simulated, example)
    return [difference for difference in differences if not difference.endswith(": missing")]


# Fields of the example the simulator's ended calls leave out: the spec makes every CallProto
# field optional and these belong to calls that came in through a group or carry custom data.
ABSENT_FROM_SIMULATED_CALLS = {"custom_data", "entry_point_call_id", "entry_point_target"}


def test_the_simulators_calls_carry_the_published_fields_and_kinds() -> None:
    simulated = call_proto(1002, STARTED, direction="inbound")
    example = published_call()
    assert kind_differences(simulated, example) == []
    assert set(example) - set(simulated) == ABSENT_FROM_SIMULATED_CALLS
    assert set(example["target"]) == set(simulated["target"])
    assert set(example["contact"]) == set(simulated["contact"])


def test_the_simulators_share_links_carry_the_published_fields_and_kinds(
    dialpad: DialpadServers,
) -> None:
    example = published("recordingsharelink-create-json_example.json")
    dialpad.state.add_call(recorded(published_call()))
    dialpad.state.add_audio("callrecording", "rec-1002", b"ID3 audio")
    status, body, _ = dialpad.state.create_share_link(
        {"recording_id": "rec-1002", "recording_type": "callrecording", "privacy": "public"}
    )
    assert status == 200
    assert kind_differences(body, example) == []
    assert set(body) == set(example)
