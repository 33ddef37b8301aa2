"""Quo's published call list, recordings and user answers through the Quo profile.

The bodies in ``quo/`` are the examples of Quo's own API reference (see ``quo/SOURCES.md``).
The Quo simulator serves the published call and user on 127.0.0.1, the profile lists them as
the poll cycle does and the domain's ingest rules plan them; the published recordings answer
goes through the profile's recording step.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from poller.adapters.http import RetryPolicy
from poller.adapters.providers.profiles.quo import QuoProvider, QuoSettings
from poller.domain.ingest import IngestAction
from poller.domain.states import Direction, RecordingState
from poller.domain.windows import Window
from poller.ports.provider import RecordPosition
from poller.simulators.audio import mp3_bytes
from poller.simulators.kit import Answer, HeaderAuth, Request, VendorApi, serve
from poller.simulators.quo_server import API_KEY, QuoSimulator, quo_call
from tests.vendor_payloads import conformance

WINDOW = Window(datetime(2021, 12, 31, 23, tzinfo=UTC), datetime(2022, 1, 1, 1, tzinfo=UTC))
NOW = datetime(2022, 1, 2, 12, 0, tzinfo=UTC)
FORMATS = {"datetime": re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:\d\d|Z)$")}
HEADERS = {"Authorization": API_KEY, "Quo-Api-Version": "2026-03-30"}
# Present in the published call only because its request asked for include=summary,voicemail.
INCLUDED_ONLY = {"summary", "voicemail"}


def published_call() -> dict[str, Any]:
    body = conformance.published("quo", "calls_list.json")
    [call] = body["data"]
    assert isinstance(call, dict)
    return call


@pytest.fixture
def sim() -> Iterator[QuoSimulator]:
    with QuoSimulator() as running:
        user = conformance.published("quo", "user.json")["data"]
        with running.api.lock:
            running.api.users[user["id"]] = dict(user)
        yield running


def provider(base_url: str, **settings: Any) -> QuoProvider:
    values = {"kind": "quo", "base_url": base_url, "api_key": API_KEY, **settings}
    return QuoProvider(QuoSettings.model_validate(values), retry=RetryPolicy(max_tries=1))


def test_the_published_call_maps_to_its_users_email_line_and_contact(sim: QuoSimulator) -> None:
    call = published_call()
    sim.api.add_call({k: v for k, v in call.items() if k not in INCLUDED_ONLY})
    [record] = conformance.records_of(provider(sim.url).list_window(WINDOW)).values()
    assert record.provider_call_id == "AC123abc"
    assert record.started_at == datetime(2022, 1, 1, tzinfo=UTC)
    assert (record.direction, record.duration_seconds) == (Direction.INBOUND, 60)
    # actorId US123abc is the published user John Doe.
    assert (record.rep_email, record.rep_name, record.rep_provider_id) == (
        "johndoe@example.com",
        "John Doe",
        "US123abc",
    )
    # The participant with the call's actorId is the rep's line; the one outside, the contact.
    assert (record.rep_phone, record.contact_phone) == ("+15555555555", "+15555555556")
    assert record.recording_state is RecordingState.READY
    plan = conformance.planned("quo", record, NOW)
    assert (plan.change.action, plan.change.message) == (
        IngestAction.INSERTED,
        "listed; recording ready",
    )
    conformance.assert_never_the_rep(record, ["+15555555556", "US456def"])


def test_the_published_recordings_answer_leads_to_its_first_segment_without_the_key() -> None:
    body = conformance.published("quo", "call_recordings.json")
    api = VendorApi(HeaderAuth("authorization", API_KEY))

    def recordings(request: Request, _match: re.Match[str]) -> Answer:
        assert request.header("quo-api-version") == "2026-03-30"
        return Answer.json(body)

    api.route("GET", r"/calls/(?P<id>AC\w+)/recordings", recordings)
    with serve(api):
        # The published URL's host is a placeholder; allowed here so the step can be followed.
        adapter = provider(api.url, download_hosts=["examplestorage.com"])
        raw = quo_call("AC123abc", WINDOW.start)
        record = adapter.map_record(raw, RecordPosition(WINDOW, 1, 0))
        request = adapter.resolve_download(record)
    assert request.url == body["data"][0]["url"]
    assert "examplestorage.com" not in request.credential_hosts
    assert request.secret_path and request.refreshable
    assert request.format_hint == "mp3"


def test_the_simulators_answers_have_every_published_field_of_the_same_kind(
    sim: QuoSimulator,
) -> None:
    at = datetime(2022, 1, 1, tzinfo=UTC)
    sim.api.add_call(quo_call("AC1", at, user_id="US123abc"), mp3_bytes(1))
    listing = requests.get(
        f"{sim.url}/calls",
        params={"createdAt[gte]": "2021-12-31T00:00:00Z", "limit": "1"},
        headers=HEADERS,
        timeout=5,
    ).json()
    published = conformance.published("quo", "calls_list.json")
    assert set(listing) == set(published)
    expected = {k: v for k, v in published_call().items() if k not in INCLUDED_ONLY}
    [served] = listing["data"]
    # Nullable fields the simulator leaves null where the catalogue shows a value.
    nullable = {"answeredBy", "initiatedBy", "callRoute", "forwardedFrom", "forwardedTo"}
    comparable = {k: v for k, v in expected.items() if k not in nullable | {"aiHandled"}}
    assert conformance.shape_differences(served, comparable, FORMATS) == []
    assert set(served) == set(expected)
    answer = requests.get(f"{sim.url}/calls/AC1/recordings", headers=HEADERS, timeout=5).json()
    recordings = conformance.published("quo", "call_recordings.json")
    assert set(answer) == set(recordings)
    assert conformance.shape_differences(answer["data"][0], recordings["data"][0], FORMATS) == []
    user = requests.get(f"{sim.url}/users/US123abc", headers=HEADERS, timeout=5).json()
    assert user == conformance.published("quo", "user.json")


def test_the_simulator_refuses_what_quo_refuses(sim: QuoSimulator) -> None:
    def status(path: str, headers: dict[str, str] = HEADERS, **params: str) -> int:
        return requests.get(
            f"{sim.url}{path}", params=params, headers=headers, timeout=5
        ).status_code

    assert status("/calls", headers={"Authorization": API_KEY}) == 400  # no version header
    assert status("/calls", headers={**HEADERS, "Authorization": f"Bearer {API_KEY}"}) == 401
    assert status("/calls", limit="51") == 400
    assert status("/calls", **{"createdAt[gt]": "2022-01-01T00:00:00Z"}) == 400
    assert status("/calls", **{"createdAt[gte]": "2022-01-01T00:00:00"}) == 400  # no zone
    assert status("/calls/abc123/recordings") == 400
    assert status("/calls/ACnone/recordings") == 404
    assert status("/users/US123abc") == 200 and status("/users/123") == 400


def test_a_refusal_names_the_input_and_the_value_sent(sim: QuoSimulator) -> None:
    def errors(path: str, **params: str) -> list[dict[str, Any]]:
        answer = requests.get(f"{sim.url}{path}", params=params, headers=HEADERS, timeout=5)
        body = answer.json()
        assert answer.status_code == 400 and body["message"] == "The input was invalid"
        assert body["title"] == "Bad Request" and body["docs"] and body["trace"]
        found: list[dict[str, Any]] = body["errors"]
        return found

    unknown = {"path": "/createdAt[gt]", "message": "Unexpected property", "value": "2022"}
    assert errors("/calls", **{"createdAt[gt]": "2022"}) == [unknown]
    assert errors("/calls/AC1/recordings", foo="1")[0]["path"] == "/foo"
    limit = {"path": "/limit", "message": "Expected an integer 1 to 50", "value": "+5"}
    assert errors("/calls", limit="+5") == [limit]
    assert errors("/calls", **{"createdAt[lte]": "2022-01-01T00:00:00"})[0]["path"] == (
        "/createdAt[lte]"
    )
    assert errors("/users/123")[0] == {
        "path": "/userId",
        "message": "Expected string to match '^US(.*)$'",
        "value": "123",
    }
