"""Twilio's own published bodies through the Twilio adapter's real listing loop.

The bodies are twilio-python's integration-test fixtures (``twilio/SOURCES.md``), the same
examples as the 2010-04-01 OpenAPI spec's. They are served as they are by the Twilio simulator
on 127.0.0.1, listed with :meth:`TwilioProvider.list_window` and planned with the domain's
:func:`plan_ingest`, as a poll cycle does; each case asserts the row the poll would write.
Variants the spec allows (every ``direction`` of its enum, ``encryption_details`` null, a
direction Twilio may add later) are named cases built from the published bodies.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from poller.adapters.http import RetryPolicy
from poller.adapters.providers.twilio import TwilioProvider, TwilioSettings
from poller.domain.filters import CallFilter
from poller.domain.ingest import IngestAction, ListedCall, plan_ingest
from poller.domain.records import Call
from poller.domain.states import CallState
from poller.domain.windows import Window
from poller.simulators.twilio_server import (
    AUTH_TOKEN,
    FakeTwilio,
    serve,
    twilio_call,
    twilio_recording,
)
from tests.vendor_payloads import conformance

# The account every published body names.
ACCOUNT = "AC" + "a" * 32
RECORDING = "RE" + "a" * 32
CALL = "CA" + "a" * 32
# ListCall's readFullPage1: an outbound-api call from +13051416799 to +13051913581 and an
# inbound one from +13051416798 to the Twilio number +13051913580.
TWILIO_NUMBER = "+13051913581"
OUTBOUND_CALLER = "+13051416799"
INBOUND_CALLER = "+13051416798"
INBOUND_TWILIO_NUMBER = "+13051913580"
OCTOBER_14 = Window(datetime(2016, 10, 14, tzinfo=UTC), datetime(2016, 10, 15, tzinfo=UTC))
FEBRUARY_14 = Window(datetime(2022, 2, 14, tzinfo=UTC), datetime(2022, 2, 15, tzinfo=UTC))


def published(name: str) -> Any:
    return conformance.published("twilio", name)


def published_call(direction: str | None, *, sid: str = CALL) -> dict[str, Any]:
    """ListCall's first published call (outbound-api), with another ``direction``."""
    call: dict[str, Any] = copy.deepcopy(published("calls_read_full_page1.json")["calls"][0])
    call["direction"] = direction
    call["sid"] = sid
    return call


def unencrypted(recording: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A published recording as an account without Call Recording Encryption lists it
    (``encryption_details`` is nullable in the spec)."""
    return {**copy.deepcopy(recording), "encryption_details": None, **changes}


@dataclass
class Poll:
    """What one poll of a window wrote, per recording SID, and what it kept as unmapped."""

    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    unmapped: dict[str, str] = field(default_factory=dict)
    base_url: str = ""
    listed: dict[str, ListedCall] = field(default_factory=dict)


def poll(
    recordings: list[dict[str, Any]],
    calls: list[dict[str, Any]],
    window: Window,
    **settings: Any,
) -> Poll:
    api = FakeTwilio(account_sid=ACCOUNT)
    for recording in recordings:
        api.add(recording)
    for call in calls:
        api.calls[call["sid"]] = call
    result = Poll()
    with serve(api) as server:
        provider = TwilioProvider(
            TwilioSettings.model_validate(
                {
                    "kind": "twilio",
                    "base_url": server.url,
                    "account_sid": ACCOUNT,
                    "auth_token": AUTH_TOKEN,
                    **settings,
                }
            ),
            retry=RetryPolicy(max_tries=1),
        )
        result.base_url = server.url
        now = datetime.now(UTC)
        for page in provider.list_window(window):
            for record in page.records:
                listed = ListedCall(record, CallFilter().verdict(record))
                result.listed[record.provider_call_id] = listed
                result.rows[record.provider_call_id] = plan_ingest(
                    "twilio", None, listed, now
                ).values
            for malformed in page.malformed:
                result.unmapped[malformed.call_id or str(malformed.position)] = malformed.reason
    return result


def media_path(sid: str) -> str:
    return f"/2010-04-01/Accounts/{ACCOUNT}/Recordings/{sid}.mp3"


# -- the published bodies as they are -----------------------------------------------------------


def test_the_published_recording_of_the_published_call_is_kept_as_encrypted() -> None:
    # ListRecording's readFull carries encryption_details: Twilio encrypted it with the
    # account's public key, which the poller cannot undo. FetchCall's body is its call.
    recording = published("recordings_read_full.json")["recordings"][0]
    result = poll([recording], [published("call_fetch.json")], OCTOBER_14)

    row = result.rows[RECORDING]
    assert row["state"] == "skipped"
    assert row["error_kind"] == "no_recording"
    assert "Call Recording Encryption" in row["last_error"]
    assert row["started_at"] == datetime(2016, 10, 14, 21, 56, 34, tzinfo=UTC)
    assert row["duration_seconds"] == 4
    assert row["direction"] == "outbound"
    assert (row["rep_phone"], row["contact_phone"]) == (OUTBOUND_CALLER, TWILIO_NUMBER)
    # media_url names api.twilio.com, a credential host: the audio is Twilio's own .mp3.
    assert urlsplit(row["recording_url"]).path == media_path(RECORDING)
    assert result.unmapped == {}


def test_an_unencrypted_published_recording_is_due_with_the_caller_of_an_outbound_call() -> None:
    recording = unencrypted(published("recordings_read_full.json")["recordings"][0])
    result = poll([recording], [published("call_fetch.json")], OCTOBER_14)

    row = result.rows[RECORDING]
    assert (row["state"], row["error_kind"]) == ("pending", None)
    assert row["recording_state"] == "ready"
    assert row["direction"] == "outbound"
    assert row["rep_phone"] == OUTBOUND_CALLER
    assert row["rep_provider_id"] is None
    assert row["contact_phone"] == TWILIO_NUMBER
    # The contact was called, so the caller's CNAM (caller_name) is not the contact's name.
    assert row["contact_name"] is None
    assert row["ended_at"] == datetime(2016, 10, 14, 21, 56, 38, tzinfo=UTC)


def test_a_published_call_recording_with_two_channels_asks_for_both() -> None:
    # Calls/{CallSid}/Recordings readFull: a dual-channel StartCallRecordingAPI recording.
    recording = unencrypted(published("call_recordings_read_full.json")["recordings"][0])
    result = poll([recording], [published("call_fetch.json")], OCTOBER_14)

    row = result.rows[RECORDING]
    url = urlsplit(row["recording_url"])
    assert (url.path, url.query) == (media_path(RECORDING), "RequestedChannels=2")
    assert (row["rep_phone"], row["contact_phone"]) == (OUTBOUND_CALLER, TWILIO_NUMBER)


def test_the_published_soft_deleted_listing_skips_the_deleted_one_and_keeps_the_callless_one() -> (
    None
):
    # readIncludeSoftDeleted: a deleted recording of the published call, and a completed one
    # whose call (CA…ab) Twilio published no body for.
    body = published("recordings_read_include_soft_deleted.json")
    result = poll(body["recordings"], [published("call_fetch.json")], FEBRUARY_14)

    deleted = result.rows[RECORDING]
    assert (deleted["state"], deleted["error_kind"]) == ("skipped", "no_recording")
    assert deleted["last_error"] == "the recording was deleted in Twilio"
    # 22:23 +0100 is 21:23 UTC.
    assert deleted["started_at"] == datetime(2022, 2, 14, 21, 23, tzinfo=UTC)
    assert deleted["rep_phone"] == OUTBOUND_CALLER
    orphan = "RE" + "a" * 31 + "b"
    assert orphan not in result.rows
    assert result.unmapped == {orphan: f"call_sid: Twilio has no call {'CA' + 'a' * 31 + 'b'}"}


def test_the_published_inbound_call_makes_the_twilio_number_the_rep() -> None:
    inbound = published("calls_read_full_page1.json")["calls"][1]
    recording = unencrypted(
        published("recordings_read_full.json")["recordings"][0], call_sid=inbound["sid"]
    )
    result = poll([recording], [inbound], OCTOBER_14)

    row = result.rows[RECORDING]
    assert row["direction"] == "inbound"
    assert (row["rep_phone"], row["contact_phone"]) == (INBOUND_TWILIO_NUMBER, INBOUND_CALLER)
    assert row["contact_name"] == "callerid2"


# -- every direction of the spec's enum, and one it does not list ----------------------------

# (direction, Siro direction, rep, contact) for the published call from OUTBOUND_CALLER to
# TWILIO_NUMBER. Elastic SIP Trunking: "trunking-originating" is a PSTN call coming in to the
# customer's infrastructure, "trunking-terminating" one going out from it to the PSTN.
DIRECTIONS = [
    pytest.param("inbound", "inbound", TWILIO_NUMBER, OUTBOUND_CALLER, id="inbound"),
    pytest.param("outbound-api", "outbound", OUTBOUND_CALLER, TWILIO_NUMBER, id="outbound-api"),
    pytest.param("outbound-dial", "outbound", OUTBOUND_CALLER, TWILIO_NUMBER, id="outbound-dial"),
    pytest.param(
        "trunking-originating", "inbound", TWILIO_NUMBER, OUTBOUND_CALLER, id="trunk-originating"
    ),
    pytest.param(
        "trunking-terminating", "outbound", OUTBOUND_CALLER, TWILIO_NUMBER, id="trunk-terminating"
    ),
]


@pytest.mark.parametrize(("direction", "expected", "rep", "contact"), DIRECTIONS)
def test_every_direction_of_the_spec_decides_the_rep(
    direction: str, expected: str, rep: str, contact: str
) -> None:
    recording = unencrypted(published("recordings_read_full.json")["recordings"][0])
    result = poll([recording], [published_call(direction)], OCTOBER_14)

    row = result.rows[RECORDING]
    assert (row["state"], row["error_kind"]) == ("pending", None)
    assert row["direction"] == expected
    assert (row["rep_phone"], row["contact_phone"]) == (rep, contact)


def test_an_inbound_sip_trunk_recording_never_makes_the_caller_the_rep() -> None:
    # The measured defect: a Trunking recording of a trunking-originating call named the PSTN
    # caller as the rep and sent the customer's number to Siro as userPhone.
    recording = unencrypted(
        published("recordings_read_full.json")["recordings"][0], source="Trunking"
    )
    result = poll([recording], [published_call("trunking-originating")], OCTOBER_14)

    row = result.rows[RECORDING]
    assert row["direction"] == "inbound"
    assert row["rep_phone"] == TWILIO_NUMBER
    assert row["contact_phone"] == OUTBOUND_CALLER


@pytest.mark.parametrize(
    "direction", [pytest.param("trunking-sideways", id="unknown"), pytest.param(None, id="null")]
)
def test_a_direction_the_spec_does_not_list_makes_no_party_the_rep(direction: str | None) -> None:
    recording = unencrypted(published("recordings_read_full.json")["recordings"][0])
    result = poll([recording], [published_call(direction)], OCTOBER_14)

    row = result.rows[RECORDING]
    assert (row["state"], row["error_kind"]) == ("skipped", "rep_undecided")
    assert "provider.rep_parties" in row["last_error"]
    assert row["direction"] is None
    for column in ("rep_phone", "rep_provider_id", "rep_email", "contact_phone"):
        assert row[column] is None, column


def test_a_rep_party_decides_a_direction_the_spec_does_not_list() -> None:
    recording = unencrypted(published("recordings_read_full.json")["recordings"][0])
    result = poll(
        [recording],
        [published_call("trunking-sideways")],
        OCTOBER_14,
        rep_parties=["+1305191*"],
    )

    row = result.rows[RECORDING]
    assert (row["state"], row["error_kind"]) == ("pending", None)
    assert (row["rep_phone"], row["contact_phone"]) == (TWILIO_NUMBER, OUTBOUND_CALLER)


def test_no_published_case_makes_a_customer_the_rep() -> None:
    # Every direction, each published caller: the rep is a Twilio number or nobody.
    customers = {OUTBOUND_CALLER, INBOUND_CALLER}
    directions = [param.values[0] for param in DIRECTIONS]
    for index, direction in enumerate([*directions, "trunking-sideways", None]):
        for customer in sorted(customers):
            call = published_call(direction, sid=f"CA{index:032x}")
            if direction in ("inbound", "trunking-originating"):
                call["from"], call["to"] = customer, TWILIO_NUMBER
            else:
                call["from"], call["to"] = TWILIO_NUMBER, customer
            recording = unencrypted(
                published("recordings_read_full.json")["recordings"][0], call_sid=call["sid"]
            )
            row = poll([recording], [call], OCTOBER_14).rows[RECORDING]
            assert row["rep_phone"] not in customers, (direction, call["from"], call["to"])


# -- the simulator answers as the published bodies do ----------------------------------------


# The string formats of Twilio's bodies.
FORMATS = {
    "rfc2822": re.compile(
        r"^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} [+-]\d{4}$"
    ),
    "sid": re.compile(r"^[A-Z]{2}[0-9a-f]{32}$"),
    "relative uri": re.compile(r"^/2010-04-01/"),
}


def _shape(value: Any) -> str:
    return conformance.json_kind(value, FORMATS)


def _assert_same_shape(
    simulated: dict[str, Any],
    published_body: dict[str, Any],
    *,
    dropped: frozenset[str] = frozenset(),
) -> None:
    """``dropped``: fields of the (2023) fixture that the current spec no longer documents."""
    assert sorted(simulated) == sorted(set(published_body) - dropped)
    for key, value in published_body.items():
        if key in dropped or value is None or simulated[key] is None:
            continue  # nullable in the spec: either side may leave it out
        assert _shape(simulated[key]) == _shape(value), key


def test_the_simulator_call_has_the_fields_and_formats_of_the_published_call() -> None:
    at = datetime(2016, 10, 14, 21, 56, 34, tzinfo=UTC)
    simulated = twilio_call(CALL, at, from_=OUTBOUND_CALLER, to=TWILIO_NUMBER)
    # The call's deprecated "annotation" is gone from the 2026-04 spec's call schema.
    _assert_same_shape(simulated, published("call_fetch.json"), dropped=frozenset({"annotation"}))


def test_the_simulator_recording_has_the_fields_and_formats_of_the_published_one() -> None:
    at = datetime(2016, 10, 14, 21, 56, 34, tzinfo=UTC)
    simulated = twilio_recording(RECORDING, CALL, at)
    bodies = [
        published("recording_fetch.json"),
        published("recording_fetch_include_soft_deleted.json"),
        *published("recordings_read_full.json")["recordings"],
        *published("recordings_read_include_soft_deleted.json")["recordings"],
    ]
    for body in bodies:
        _assert_same_shape(simulated, body)


def test_the_simulator_listing_envelope_is_the_published_one() -> None:
    api = FakeTwilio(account_sid=ACCOUNT)
    recording = published("recordings_read_full.json")["recordings"][0]
    api.add(recording)
    with serve(api) as server:
        answer = requests.get(
            f"{server.url}/2010-04-01/Accounts/{ACCOUNT}/Recordings.json",
            params={"DateCreated>": "2016-10-14", "PageSize": "1"},
            auth=(ACCOUNT, AUTH_TOKEN),
            timeout=5,
        )
    body = answer.json()
    expected = published("recordings_read_full.json")
    assert sorted(body) == sorted(expected)
    assert body["recordings"] == expected["recordings"]
    for key in ("uri", "first_page_uri"):
        assert _shape(body[key]) == _shape(expected[key]) == "relative uri"


def test_a_rep_undecided_call_listed_again_after_rep_parties_is_set_gets_its_rep() -> None:
    # What the skip reason tells the operator to do: set rep_parties, list the call again
    # (a backfill), then retry it. Listing it again fills in the skipped row's rep.
    recording = unencrypted(published("recordings_read_full.json")["recordings"][0])
    calls = [published_call("trunking-sideways")]
    first = poll([recording], calls, OCTOBER_14).rows[RECORDING]
    assert first["error_kind"] == "rep_undecided"
    columns = {name: value for name, value in first.items() if name in Call.__dataclass_fields__}
    stored = Call(**{**columns, "id": 1, "state": CallState(first["state"])})

    again = poll([recording], calls, OCTOBER_14, rep_parties=["+1305191*"])
    plan = plan_ingest("twilio", stored, again.listed[RECORDING], datetime.now(UTC))

    assert (plan.change.action, plan.change.to_state) == (IngestAction.UPDATED, CallState.SKIPPED)
    assert (plan.values["rep_phone"], plan.values["contact_phone"]) == (
        TWILIO_NUMBER,
        OUTBOUND_CALLER,
    )
