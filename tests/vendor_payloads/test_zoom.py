"""Zoom Phone's published bodies through the Zoom adapter's real listing loop.

The bodies in ``zoom/`` are Zoom's API-reference examples (see ``zoom/SOURCES.md``). They are
served unchanged, item by item, by the Zoom simulator on 127.0.0.1; the adapter lists them as
the poll cycle does and each record's outcome is planned by the domain's ingest rules. The
named variants change only what Zoom's reference allows to differ: the owner's type (a call
queue, a common area) with the agent in ``accepted_by``/``outgoing_by``, an agent Zoom does not
list as a phone user, a queue recording nobody answered.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from poller.adapters.http import RetryPolicy
from poller.adapters.providers.zoom import ZoomProvider, ZoomSettings
from poller.domain.attribution import (
    AttributionMethod,
    InMemoryUserDirectory,
    RepRules,
    RepSkipReason,
    attribute,
)
from poller.domain.call_record import CallRecord
from poller.domain.failures import StepFailure
from poller.domain.ingest import (
    IngestAction,
    IngestPlan,
)
from poller.domain.records import Call
from poller.domain.redaction import MASK
from poller.domain.siro import SiroUser
from poller.domain.states import CallState, Direction, RecordingState
from poller.domain.windows import Window
from poller.ports.provider import ListedPage, ProviderRefused
from poller.simulators.zoom_server import (
    ACCOUNT_ID,
    CLIENT_ID,
    CLIENT_SECRET,
    ZoomPhone,
    recording_item,
    serve_zoom,
)
from tests.vendor_payloads import conformance

WINDOW = Window(datetime(2022, 3, 8, tzinfo=UTC), datetime(2022, 3, 9, tzinfo=UTC))
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
QUEUE = {"id": "cq-sales-1", "name": "Sales Queue", "type": "call queue", "extension_number": 800}


def published(name: str) -> Any:
    return conformance.published("zoom", name)


def published_recording() -> dict[str, Any]:
    """The one item of Zoom's ``GET /phone/recordings`` example, unchanged."""
    [item] = published("phone-recordings_GET.json")["recordings"]
    assert isinstance(item, dict)
    return item


def published_user() -> dict[str, Any]:
    [user] = published("phone-users_GET.json")["users"]
    assert isinstance(user, dict)
    return user


@pytest.fixture
def phone() -> Iterator[ZoomPhone]:
    zoom = ZoomPhone()
    with serve_zoom(zoom):
        zoom.users.append(published_user())
        yield zoom


def adapter(phone: ZoomPhone) -> ZoomProvider:
    settings = ZoomSettings.model_validate(
        {
            "kind": "zoom",
            "base_url": f"{phone.api_url}/v2",
            "token_url": f"{phone.web_url}/oauth/token",
            "account_id": ACCOUNT_ID,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        }
    )
    return ZoomProvider(settings, retry=RetryPolicy(max_tries=1))


def list_all(phone: ZoomPhone) -> list[ListedPage]:
    return list(adapter(phone).list_window(WINDOW))


def records_of(pages: list[ListedPage]) -> dict[str, CallRecord]:
    return {record.provider_call_id: record for page in pages for record in page.records}


def planned(record: CallRecord) -> IngestPlan:
    return conformance.planned("zoom", record, NOW)


def assert_never_the_rep(record: CallRecord, *not_reps: object) -> None:
    """None of the record's rep identifiers is the customer's or the queue's."""
    conformance.assert_never_the_rep(record, not_reps)


def siro_users(*users: SiroUser) -> InMemoryUserDirectory:
    return conformance.siro_users(*users, now=NOW)


def stored(record: CallRecord) -> Call:
    return conformance.stored("zoom", record)


def queue_recording(direction: str, agent: dict[str, Any] | None, **owner: Any) -> dict[str, Any]:
    """Zoom's example recording as a queue's: the queue owns it, the agent took or placed it."""
    item = copy.deepcopy(published_recording())
    item["direction"] = direction
    item["owner"] = {**QUEUE, **owner}
    item.pop("accepted_by")
    item.pop("outgoing_by")
    if agent is not None:
        item["accepted_by" if direction == "inbound" else "outgoing_by"] = agent
    return item


def contact_of(item: dict[str, Any]) -> tuple[str, str]:
    party = "caller" if item["direction"] == "inbound" else "callee"
    return item[f"{party}_name"], item[f"{party}_number"]


# -- the published bodies as they are -------------------------------------------------------


def test_the_published_recording_maps_to_its_user_owner(phone: ZoomPhone) -> None:
    item = published_recording()
    phone.add_recording(item)
    pages = list_all(phone)
    [record] = records_of(pages).values()
    # The owner is a user, but not the one user of the published users example: no email.
    assert (record.rep_provider_id, record.rep_email, record.rep_name, record.rep_extension) == (
        "NL3cEpSdRc-c2t8aLoZqiw",
        None,
        "user@test.com",
        "1000123476",
    )
    assert (record.contact_name, record.contact_phone, record.direction) == (
        "User A",
        "1000001004",
        Direction.OUTBOUND,
    )
    assert record.started_at == datetime(2022, 3, 8, 5, 37, 23, tzinfo=UTC)
    assert record.ended_at == datetime(2022, 3, 8, 5, 39, 19, tzinfo=UTC)
    assert record.duration_seconds == 115
    assert record.recording_id == "6f9c294840ad46bc870034ca2d098098"
    assert record.recording_state is RecordingState.READY
    assert record.recording_url == "https://domain/recording/download/EvVNLihbQ1WpeG_ALwnNzg"
    assert record.raw["call_id"] == "7072598989368295984"
    plan = planned(record)
    assert (plan.change.action, plan.change.to_state) == (IngestAction.INSERTED, CallState.PENDING)
    assert plan.change.message == "listed; recording ready"
    assert_never_the_rep(record, *contact_of(item))


def test_a_user_owner_gets_the_email_of_the_phone_user_with_its_id(phone: ZoomPhone) -> None:
    item = published_recording()
    item["owner"]["id"] = published_user()["id"]
    phone.add_recording(item)
    [record] = records_of(list_all(phone)).values()
    assert (record.rep_provider_id, record.rep_email) == (
        "w0RChiauQeqRlv5fgxYULQ",
        "202007160003@testapi.com",
    )


def test_a_recording_without_its_file_yet_waits_and_times_come_from_what_zoom_gives(
    phone: ZoomPhone,
) -> None:
    # Every field is optional in Zoom's types: no download_url yet (the file is not ready), no
    # duration; then neither end_time.
    waiting = published_recording()
    del waiting["download_url"], waiting["duration"]
    phone.add_recording(waiting)
    bare = copy.deepcopy(waiting)
    del bare["end_time"]
    bare["id"] = "no-end-time"
    phone.add_recording(bare)
    records = records_of(list_all(phone))
    first = records["6f9c294840ad46bc870034ca2d098098"]
    assert (first.recording_state, first.recording_url) == (RecordingState.PENDING, None)
    assert first.duration_seconds == 116  # end_time minus date_time
    plan = planned(first)
    assert (plan.change.action, plan.change.message) == (
        IngestAction.INSERTED,
        "listed; waiting for the recording",
    )
    assert (records["no-end-time"].ended_at, records["no-end-time"].duration_seconds) == (
        None,
        None,
    )


def test_an_owner_without_a_type_is_the_rep_only_as_a_known_phone_user(phone: ZoomPhone) -> None:
    # Zoom's types make owner.type optional: untyped, the owner is a person only if it is listed.
    known = published_recording()
    known["owner"] = {"id": published_user()["id"], "name": "APITA AUTO"}
    phone.add_recording(known)
    unknown = queue_recording("inbound", {"name": "User A", "extension_number": "10201"})
    del unknown["owner"]["type"]
    unknown["id"] = "untyped-unknown-owner"
    phone.add_recording(unknown)
    records = records_of(list_all(phone))
    assert records["6f9c294840ad46bc870034ca2d098098"].rep_email == "202007160003@testapi.com"
    assert records["untyped-unknown-owner"].rep_identifiers == ("10201", "User A")
    assert_never_the_rep(records["untyped-unknown-owner"], *QUEUE.values())


def test_the_published_queue_recording_with_an_unreadable_time_is_kept_malformed(
    phone: ZoomPhone,
) -> None:
    # Zoom's call-queue recordings example carries "Microsoft.OpenApi.Any.OpenApiDate" as its
    # date_time (an artefact of the published example): the record is reported, not dropped.
    [item] = published("phone-call_queues-callQueueId-recordings_GET.json")["recordings"]
    with phone.lock:
        phone.recordings[item["id"]] = (WINDOW.start + timedelta(hours=1), item)
    [page] = list_all(phone)
    assert page.records == []
    [bad] = page.malformed
    assert bad.call_id == "08096c0e2cba4315a963813d1ce9635e"
    assert "started_at (date_time)" in bad.reason
    assert "does not parse as iso8601" in bad.reason


def test_a_recording_fetched_again_by_call_id_gives_zooms_download_url(phone: ZoomPhone) -> None:
    # The published GET /phone/call_logs/{id}/recordings body, asked for when the stored
    # download_url had lost its query string. Its host is the example's placeholder "domain",
    # no Zoom host: the download is refused before any credential is sent.
    body = published("phone-call_logs-id-recordings_GET.json")
    phone.add_recording(body)
    [record] = records_of(list_all(phone)).values()
    assert record.recording_url == "https://domain/recording/download/EvVNLihbQ1WpeG_ALwnNzg"
    assert (record.rep_name, record.contact_name) == ("user@test.com", "User B")

    class Stored:
        provider_call_id = record.provider_call_id
        recording_id = record.recording_id
        recording_url = f"https://zoom.us/v2/phone/recording/download/x?token={MASK}"
        raw = record.raw

    with pytest.raises(ProviderRefused, match="domain"):
        adapter(phone).resolve_download(Stored())
    assert len(phone.requests_to("/v2/phone/call_logs/7069775907364530379/recordings")) == 1


# -- queue owners: the agent is the rep, never the queue ----------------------------------


@pytest.mark.parametrize("owner_type", ["call queue", "callQueue", "commonArea"])
def test_an_inbound_queue_recording_goes_to_the_agent_who_accepted_it(
    phone: ZoomPhone, owner_type: str
) -> None:
    user = published_user()
    agent = {"name": user["name"], "extension_number": str(user["extension_number"])}
    item = queue_recording("inbound", agent, type=owner_type)
    phone.add_recording(item)
    [record] = records_of(list_all(phone)).values()
    assert (record.rep_provider_id, record.rep_email, record.rep_name, record.rep_extension) == (
        "w0RChiauQeqRlv5fgxYULQ",
        "202007160003@testapi.com",
        "APITA AUTO",
        "1000001036",
    )
    assert (record.contact_name, record.contact_phone, record.direction) == (
        "User B",
        "1000123476",
        Direction.INBOUND,
    )
    assert planned(record).change.action is IngestAction.INSERTED
    assert_never_the_rep(record, *contact_of(item), *QUEUE.values())


def test_an_outbound_queue_recording_goes_to_the_agent_who_placed_it_found_by_name(
    phone: ZoomPhone,
) -> None:
    # outgoing_by names the agent; its extension is none of the phone users': the name is.
    item = queue_recording("outbound", {"name": "apita auto", "extension_number": "123476"})
    phone.add_recording(item)
    [record] = records_of(list_all(phone)).values()
    assert (record.rep_provider_id, record.rep_email, record.rep_name, record.rep_extension) == (
        "w0RChiauQeqRlv5fgxYULQ",
        "202007160003@testapi.com",
        "apita auto",
        "123476",
    )
    assert (record.contact_name, record.contact_phone) == ("User A", "1000001004")
    assert_never_the_rep(record, *contact_of(item), *QUEUE.values())


def test_an_agent_who_is_no_phone_user_keeps_the_name_and_extension_zoom_gives(
    phone: ZoomPhone,
) -> None:
    # The agent of Zoom's own example: no phone user has that extension or name, so there is
    # no email; the extension is still there for siro.rep_map.extension.
    item = queue_recording("inbound", {"name": "User A", "extension_number": "10201"})
    phone.add_recording(item)
    [record] = records_of(list_all(phone)).values()
    assert (record.rep_provider_id, record.rep_email, record.rep_name, record.rep_extension) == (
        None,
        None,
        "User A",
        "10201",
    )
    assert_never_the_rep(record, *contact_of(item), *QUEUE.values())


def test_a_queue_recording_without_its_agent_names_no_rep(phone: ZoomPhone) -> None:
    # Inbound, and only outgoing_by is there: nothing names who took the call.
    item = queue_recording("outbound", {"name": "APITA AUTO", "extension_number": "1000001036"})
    item["direction"] = "inbound"
    phone.add_recording(item)
    [record] = records_of(list_all(phone)).values()
    assert record.rep_identifiers == ()
    # Skipped when listed, saying why: the queue is never the rep, and nothing is downloaded
    # for a call Siro could not attribute.
    plan = planned(record)
    assert plan.change.action is IngestAction.SKIPPED
    assert plan.values["error_kind"] == "rep_undecided"
    assert plan.values["last_error"] == (
        "the Zoom recording belongs to the call queue 'Sales Queue', not a person, and names "
        "no agent in accepted_by; it is never given to the queue"
    )
    assert_never_the_rep(record, *contact_of(item), *QUEUE.values())


def test_siro_gets_a_queue_call_as_the_agents_never_as_the_queues_or_the_callers(
    phone: ZoomPhone,
) -> None:
    user = published_user()
    agent = {"name": user["name"], "extension_number": str(user["extension_number"])}
    phone.add_recording(queue_recording("inbound", agent))
    [record] = records_of(list_all(phone)).values()
    directory = siro_users(
        SiroUser(id="siro-agent", email=user["email"]),
        SiroUser(id="siro-caller", phone_number="+1 100-012-3476"),  # the caller's number
        SiroUser(id="siro-queue", email="sales-queue@example.com", external_id="cq-sales-1"),
    )
    attribution = attribute(stored(record), directory, RepRules())
    assert (attribution.method, attribution.siro_user_id) == (
        AttributionMethod.SIRO_EMAIL,
        "siro-agent",
    )


def test_a_queue_call_naming_no_agent_goes_to_nobody(phone: ZoomPhone) -> None:
    phone.add_recording(queue_recording("inbound", None))
    [record] = records_of(list_all(phone)).values()
    directory = siro_users(SiroUser(id="siro-caller", phone_number="+1 100-012-3476"))
    with pytest.raises(StepFailure) as skipped:
        attribute(stored(record), directory, RepRules())
    assert skipped.value.kind == RepSkipReason.NO_REP_IDENTITY


def test_an_agent_zoom_added_since_the_last_load_makes_the_users_load_again(
    phone: ZoomPhone,
) -> None:
    now = [NOW]
    settings = adapter(phone).settings
    provider = ZoomProvider(settings, retry=RetryPolicy(max_tries=1), clock=lambda: now[0])
    phone.add_recording(published_recording())
    list(provider.list_window(WINDOW))
    assert len(phone.requests_to("/v2/phone/users")) == 1
    phone.add_user("new-agent", "nina@example.com", name="Nina New", ext=1077)
    queued = queue_recording("inbound", {"name": "Nina New", "extension_number": "1077"})
    queued["id"] = "queued-recording-1"
    phone.add_recording(queued)
    now[0] += timedelta(minutes=2)
    records = records_of(list(provider.list_window(WINDOW)))
    assert records["queued-recording-1"].rep_email == "nina@example.com"
    assert len(phone.requests_to("/v2/phone/users")) == 2


# -- the simulator against the published bodies ---------------------------------------------


# Zoom writes instants in ISO 8601, with or without a zone or seconds.
FORMATS = {
    "instant": re.compile(
        r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$"
    )
}


def shape_differences(simulated: Any, published_value: Any) -> list[str]:
    return conformance.shape_differences(simulated, published_value, FORMATS)


# Published fields the simulator leaves out because Zoom documents them as conditional.
CONDITIONAL_RECORDING_FIELDS = {
    "owner.extension_deleted_time",  # only for a deleted extension
    "meeting_uuid",  # only for a call elevated to a meeting
    "caller_account_code",  # only when the account uses account codes
    "callee_account_code",
    # The customer's side of the call: an outside number has no extension (the example's call
    # is between two users, so both sides have one).
    "accepted_by.extension_number",
    "outgoing_by.extension_number",
}
CONDITIONAL_USER_FIELDS = {
    "calling_plans.[0].billing_account_id",  # only for plans under a billing account
    "calling_plans.[0].billing_account_name",
    "calling_plans.[0].billing_subscription_id",
    "calling_plans.[0].billing_subscription_name",
    "department",  # only when the admin filled them in
    "cost_center",
}


@pytest.mark.parametrize("direction", ["outbound", "inbound"])
def test_the_simulators_recordings_carry_the_published_fields_and_kinds(direction: str) -> None:
    simulated = recording_item(
        "sim-1", WINDOW.start, direction=direction, download_url="https://zoom.us/x"
    )
    problems = shape_differences(simulated, published_recording())
    assert [p for p in problems if p.split(":")[0] not in CONDITIONAL_RECORDING_FIELDS] == []


# Fields of a single recording only a soft-deleted one has.
SOFT_DELETED_FIELDS = {"deleted_time", "days_left_auto_permantely_delete", "soft_deleted_type"}


def test_the_simulators_recording_by_call_id_carries_the_published_fields_and_kinds(
    phone: ZoomPhone,
) -> None:
    phone.add_recording(
        recording_item("sim-1", WINDOW.start, call_id="7001", download_url="https://zoom.us/x")
    )
    provider = adapter(phone)
    token = provider.auth.headers_for_request()
    answer = requests.get(
        f"{phone.api_url}/v2/phone/call_logs/7001/recordings", headers=token, timeout=10
    )
    problems = shape_differences(answer.json(), published("phone-call_logs-id-recordings_GET.json"))
    conditional = CONDITIONAL_RECORDING_FIELDS | SOFT_DELETED_FIELDS
    assert [p for p in problems if p.split(":")[0] not in conditional] == []


def test_the_simulators_phone_users_carry_the_published_fields_and_kinds() -> None:
    zoom = ZoomPhone()
    zoom.add_user("sim-user", "sim@example.com")
    [simulated] = zoom.users
    problems = shape_differences(simulated, published_user())
    assert [p for p in problems if p.split(":")[0] not in CONDITIONAL_USER_FIELDS] == []
