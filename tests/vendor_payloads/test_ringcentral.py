"""RingCentral's published call-log records through the RingCentral adapter's real listing loop.

The stored body is RingCentral's own SDK fixture (``ringcentral/SOURCES.md``). Its records, and
the record shapes RingCentral's call-log guide documents, are served as they are by the
RingCentral simulator on 127.0.0.1, listed with :meth:`RingCentralProvider.list_window` and
planned with the domain's :func:`plan_ingest`, as a poll cycle does; each case asserts the row
the poll would write. The guide's samples carry no license to copy them, so its shapes are
rebuilt here with this suite's own values.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from poller.adapters.http import RetryPolicy
from poller.adapters.providers.ringcentral import RingCentralProvider, RingCentralSettings
from poller.domain.filters import CallFilter
from poller.domain.ingest import ListedCall, plan_ingest
from poller.domain.windows import Window
from poller.ports.provider import RecordPosition
from poller.simulators.ringcentral_server import (
    ACCOUNT,
    RingCentralState,
    call_record,
    serve,
)
from tests.vendor_payloads import conformance

JULY_27 = Window(datetime(2018, 7, 27, tzinfo=UTC), datetime(2018, 7, 28, tzinfo=UTC))
APRIL_10 = Window(datetime(2023, 4, 10, tzinfo=UTC), datetime(2023, 4, 11, tzinfo=UTC))
# The rep's extension as the account's extension list names it.
REP_EXTENSION = (664573005, "101", "Sam Seller", "sam@example.com")
REP_NUMBER = "+15625550101"
# The external parties of every case: none of them may ever be a rep.
CALLER = "+14155550908"
FORWARDED_TO = "+16505550233"
SYNC_CALLEE = "+1812345678"
CUSTOMERS = frozenset({CALLER, FORWARDED_TO, SYNC_CALLEE})

Records = Callable[[str], list[dict[str, Any]]]


def published(name: str) -> Any:
    return conformance.published("ringcentral", name)


def sync_record(index: int) -> dict[str, Any]:
    """A record of the published call-log-sync body, unchanged."""
    record: dict[str, Any] = copy.deepcopy(published("call_log_sync_fsync.json")["records"][index])
    return record


def recording(media: str, recording_id: str) -> dict[str, Any]:
    """``recording`` as the spec's CallLogRecord and the guide's samples have it."""
    return {
        "uri": f"https://platform.ringcentral.com/restapi/v1.0/account/{ACCOUNT}/recording/"
        f"{recording_id}",
        "id": recording_id,
        "type": "OnDemand",
        "contentUri": f"{media}/restapi/v1.0/account/{ACCOUNT}/recording/{recording_id}/content",
    }


def guide_inbound_record(media: str, *, reverse_legs: bool = False) -> dict[str, Any]:
    """The Detailed inbound record of RingCentral's call-log guide, in its shape: the recording
    on the record and on both legs, an Inbound ``Accept`` leg to the rep's number and an
    Outbound ``PstnToSip`` leg (the call forwarded on to another number, from the caller's
    number), both with the rep's extension; ``telephonySessionId`` on the record and its legs.
    """
    session = "s-a0d178729c49dz1876d9b9d11z19269ec0001"
    started = "2023-04-10T23:58:47.594Z"
    extension = {
        "uri": f"https://platform.ringcentral.com/restapi/v1.0/account/{ACCOUNT}/extension/"
        f"{REP_EXTENSION[0]}",
        "id": REP_EXTENSION[0],
    }
    caller = {"phoneNumber": CALLER, "name": "SAN FRANCISCO CA", "location": "San Francisco, CA"}
    rep = {"phoneNumber": REP_NUMBER, "name": "Sam Seller"}
    held = recording(media, "1662272101")
    accept = {
        "startTime": started,
        "duration": 55,
        "type": "Voice",
        "direction": "Inbound",
        "action": "Phone Call",
        "result": "Accepted",
        "to": rep,
        "from": caller,
        "recording": held,
        "telephonySessionId": session,
        "transport": "PSTN",
        "legType": "Accept",
        "extension": extension,
    }
    forwarded = {
        "startTime": started,
        "duration": 55,
        "type": "Voice",
        "direction": "Outbound",
        "action": "VoIP Call",
        "result": "Accepted",
        "to": {"phoneNumber": FORWARDED_TO, "location": "San Mateo, CA"},
        "from": {"phoneNumber": CALLER, "name": "Sam Seller"},
        "recording": held,
        "telephonySessionId": session,
        "transport": "VoIP",
        "legType": "PstnToSip",
        "extension": extension,
    }
    return {
        "uri": "https://platform.ringcentral.com/restapi/v1.0/account/~/call-log/ASaoRZ0001?"
        "view=Detailed",
        "id": "ASaoRZ0001",
        "sessionId": "13914700101",
        "startTime": started,
        "duration": 55,
        "type": "Voice",
        "direction": "Inbound",
        "action": "Phone Call",
        "result": "Accepted",
        "to": rep,
        "from": caller,
        "recording": held,
        "telephonySessionId": session,
        "transport": "PSTN",
        "lastModifiedTime": "2023-04-11T00:06:42.028Z",
        "billing": {"costIncluded": 0.137, "costPurchased": 0},
        "legs": [forwarded, accept] if reverse_legs else [accept, forwarded],
    }


@dataclass
class Poll:
    """What one poll of a window wrote, per call id, and what it kept as unmapped."""

    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    unmapped: list[str] = field(default_factory=list)
    media_url: str = ""


def provider_for(state: RingCentralState) -> RingCentralProvider:
    settings = {
        "kind": "ringcentral",
        "base_url": state.base_url,
        "media_base_url": state.media_url,
        "client_id": state.client_id,
        "client_secret": state.client_secret,
        "jwt": state.jwt,
    }
    return RingCentralProvider(
        RingCentralSettings.model_validate(settings), retry=RetryPolicy(max_tries=1)
    )


def poll(
    records: Records, window: Window, *, extensions: list[dict[str, Any]] | None = None
) -> Poll:
    """One listing of ``window``; ``extensions``: the account's extension list as published
    (by default the one extension :data:`REP_EXTENSION`)."""
    state = RingCentralState()
    result = Poll()
    with serve(state):
        if extensions is None:
            state.add_extension(*REP_EXTENSION)
        else:
            state.extensions.extend(extensions)
        for record in records(state.media_url):
            state.add_record(record)
        provider = provider_for(state)
        result.media_url = state.media_url
        now = datetime.now(UTC)
        for page in provider.list_window(window):
            for record in page.records:
                listed = ListedCall(record, CallFilter().verdict(record))
                result.rows[record.provider_call_id] = plan_ingest(
                    "ringcentral", None, listed, now
                ).values
            result.unmapped.extend(error.reason for error in page.malformed)
    return result


def content_path(recording_id: str) -> str:
    return f"/restapi/v1.0/account/{ACCOUNT}/recording/{recording_id}/content"


# -- the published body as it is ----------------------------------------------------------------


def test_the_published_records_carry_no_recording_so_none_is_listed() -> None:
    # The SDK's call-log body has no recording on either record, and the adapter asks for
    # recorded calls only (recordingType): RingCentral lists neither, nothing is written.
    result = poll(lambda media: [sync_record(0), sync_record(1)], JULY_27)
    assert result.rows == {}
    assert result.unmapped == []


# -- a record without telephonySessionId -------------------------------------------------------


def with_recording(record: dict[str, Any], media: str, recording_id: str) -> dict[str, Any]:
    # As RingCentral's own call-log sample has it: a recording, no telephonySessionId.
    assert "telephonySessionId" not in record
    return {**record, "recording": recording(media, recording_id)}


def test_a_recorded_call_without_telephony_session_id_is_a_call_keyed_on_its_recording() -> None:
    result = poll(lambda media: [with_recording(sync_record(0), media, "1662272004")], JULY_27)

    assert result.unmapped == []
    row = result.rows["1662272004"]
    assert (row["state"], row["error_kind"]) == ("pending", None)
    assert row["recording_state"] == "ready"
    assert row["recording_id"] == "1662272004"
    assert row["direction"] == "outbound"
    assert (row["rep_phone"], row["rep_name"]) == ("+987654321", "ac New1")
    assert (row["contact_phone"], row["contact_name"]) == (SYNC_CALLEE, "Something1 New1")
    assert row["started_at"] == datetime(2018, 7, 27, 9, 29, 26, 141000, tzinfo=UTC)
    assert row["duration_seconds"] == 59
    assert row["ended_at"] == row["started_at"] + timedelta(seconds=59)
    assert row["recording_url"] == result.media_url + content_path("1662272004")


def test_an_inbound_record_without_telephony_session_id_makes_its_callee_the_rep() -> None:
    # The published inbound record: called by extension 102, so the contact has no number.
    result = poll(lambda media: [with_recording(sync_record(1), media, "1662272005")], JULY_27)

    row = result.rows["1662272005"]
    assert row["direction"] == "inbound"
    assert (row["rep_phone"], row["rep_name"]) == ("+123456778", "ac New1")
    assert (row["contact_phone"], row["contact_name"]) == (None, None)
    assert row["duration_seconds"] == 80


def test_the_rep_of_a_published_extension_gets_its_email_from_the_published_list() -> None:
    # The SDK's published extension list: extension 208594004, number 101, with an email.
    [extension] = published("extension_list.json")["records"]

    def records(media: str) -> list[dict[str, Any]]:
        record = with_recording(sync_record(0), media, "1662272006")
        return [{**record, "extension": {"uri": extension["uri"], "id": extension["id"]}}]

    row = poll(records, JULY_27, extensions=[extension]).rows["1662272006"]
    assert row["rep_provider_id"] == "208594004"
    assert (row["rep_email"], row["rep_extension"]) == ("email@email.com", "101")
    assert row["rep_name"] == "Something1 New1"
    assert row["rep_phone"] == "+987654321"


# -- direction and rep whatever the order of the legs ------------------------------------------


@pytest.mark.parametrize("reverse_legs", [False, True], ids=["legs-as-published", "legs-reversed"])
def test_an_inbound_record_keeps_its_direction_and_rep_whatever_the_leg_order(
    reverse_legs: bool,
) -> None:
    result = poll(lambda media: [guide_inbound_record(media, reverse_legs=reverse_legs)], APRIL_10)

    assert result.unmapped == []
    row = result.rows["1662272101"]
    assert (row["state"], row["error_kind"]) == ("pending", None)
    assert row["direction"] == "inbound"
    assert row["rep_phone"] == REP_NUMBER
    assert row["rep_provider_id"] == str(REP_EXTENSION[0])
    assert (row["rep_email"], row["rep_extension"]) == ("sam@example.com", "101")
    assert (row["contact_phone"], row["contact_name"]) == (CALLER, "SAN FRANCISCO CA")
    assert row["started_at"] == datetime(2023, 4, 10, 23, 58, 47, 594000, tzinfo=UTC)
    assert row["recording_url"] == result.media_url + content_path("1662272101")


def test_a_record_whose_only_recorded_leg_goes_the_other_way_takes_the_rep_from_the_record() -> (
    None
):
    def records(media: str) -> list[dict[str, Any]]:
        record = guide_inbound_record(media)
        record["legs"] = [leg for leg in record["legs"] if leg["direction"] == "Outbound"]
        return [record]

    row = poll(records, APRIL_10).rows["1662272101"]
    assert row["direction"] == "inbound"
    assert row["rep_phone"] == REP_NUMBER
    assert row["rep_email"] == "sam@example.com"
    assert row["contact_phone"] == CALLER


def test_a_record_without_a_direction_names_only_its_extension_as_the_rep() -> None:
    # direction is in the spec's enum but not required: without it either party may be the
    # customer, while an extension is always the account's own.
    def records(media: str) -> list[dict[str, Any]]:
        record = guide_inbound_record(media)
        for holder in [record, *record["legs"]]:
            del holder["direction"]
        return [record]

    row = poll(records, APRIL_10).rows["1662272101"]
    assert (row["state"], row["error_kind"]) == ("pending", None)
    assert row["direction"] is None
    assert (row["rep_email"], row["rep_phone"]) == ("sam@example.com", None)
    assert row["contact_phone"] is None


def test_a_record_without_a_direction_or_an_extension_is_skipped_as_rep_undecided() -> None:
    def records(media: str) -> list[dict[str, Any]]:
        record = with_recording(sync_record(0), media, "1662272007")
        del record["direction"]
        return [record]

    row = poll(records, JULY_27).rows["1662272007"]
    assert (row["state"], row["error_kind"]) == ("skipped", "rep_undecided")
    assert "neither a direction" in row["last_error"]
    assert (row["rep_phone"], row["contact_phone"]) == (None, None)


def test_no_case_makes_an_external_party_the_rep() -> None:
    cases: list[tuple[Records, Window]] = [
        (lambda media: [with_recording(sync_record(0), media, "r0")], JULY_27),
        (lambda media: [with_recording(sync_record(1), media, "r1")], JULY_27),
        (lambda media: [guide_inbound_record(media)], APRIL_10),
        (lambda media: [guide_inbound_record(media, reverse_legs=True)], APRIL_10),
    ]
    for records, window in cases:
        for call_id, row in poll(records, window).rows.items():
            assert row["rep_phone"] not in CUSTOMERS, (call_id, row["rep_phone"])


# -- the simulator answers as the published bodies do ----------------------------------------

# RingCentral's instants: ISO 8601 in UTC with milliseconds.
FORMATS = {"iso8601": re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")}
# CallLogCallerInfo in the spec.
_PARTY_FIELDS = {"phoneNumber", "extensionNumber", "extensionId", "location", "name", "device"}


def _shape(value: Any) -> str:
    return conformance.json_kind(value, FORMATS)


def test_the_simulator_extension_has_the_fields_and_formats_of_the_published_one() -> None:
    [published_extension] = published("extension_list.json")["records"]
    state = RingCentralState(base_url="https://platform.ringcentral.com")
    simulated = state.add_extension(*REP_EXTENSION)
    for key, value in simulated.items():
        assert key in published_extension, key
        assert _shape(value) == _shape(published_extension[key]), key
    assert set(simulated["contact"]) <= set(published_extension["contact"])


@pytest.mark.parametrize("direction", ["Outbound", "Inbound"])
def test_the_simulator_record_has_the_fields_and_formats_of_the_published_ones(
    direction: str,
) -> None:
    simulated = call_record(
        "IaSim", datetime(2018, 7, 27, 9, 29, 26, tzinfo=UTC), session="s-sim", direction=direction
    )
    published_record = sync_record(0 if direction == "Outbound" else 1)
    for key, value in published_record.items():
        assert key in simulated, key
        assert _shape(simulated[key]) == _shape(value), key
    for holder in [simulated, *simulated["legs"]]:
        for side in ("from", "to"):
            assert set(holder[side]) <= _PARTY_FIELDS, (side, holder[side])
        assert _shape(holder["startTime"]) == "iso8601"
        assert holder["direction"] in ("Inbound", "Outbound")


def test_a_record_kept_as_unmapped_without_telephony_session_id_maps_when_read_again() -> None:
    # Before telephonySessionId was optional such records were kept as unmapped, raw as
    # listed; each poll maps the kept ones again through normalise.
    state = RingCentralState()
    with serve(state):
        provider = provider_for(state)
        state.add_extension(*REP_EXTENSION)
        kept = with_recording(sync_record(0), state.media_url, "1662272004")
        record = provider.normalise(kept, RecordPosition(JULY_27, 1, 0))
    assert record.provider_call_id == "1662272004"
    assert record.rep_phone == "+987654321"
    assert record.contact_phone == SYNC_CALLEE
