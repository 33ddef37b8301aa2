"""Freshcaller's published body, and the simulator held to what is known of its shapes.

Freshcaller's reference publishes one example body that could be reached: its error response
(``freshcaller/SOURCES.md``). The simulator answers errors in that shape, and the profile turns
one into a clear failure. Its call and user objects are held to the property names of Airbyte's
Freshcaller connector, a third party's reading of the API.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from poller.adapters.http import RetryPolicy
from poller.adapters.providers.profiles.freshcaller import FreshcallerProvider, FreshcallerSettings
from poller.domain.windows import Window
from poller.ports.provider import PermanentProviderError
from poller.simulators.audio import mp3_bytes
from poller.simulators.freshcaller_server import API_KEY, FreshcallerSimulator, freshcaller_call
from tests.vendor_payloads import conformance

T0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
HEADERS = {"X-Api-Auth": API_KEY, "Accept": "application/json"}
# Property names of Airbyte's schemas.calls and schemas.users (see SOURCES.md).
CALL_KEYS = {
    *("assigned_agent_id", "assigned_agent_name", "assigned_call_queue_id"),
    *("assigned_call_queue_name", "assigned_ivr_id", "assigned_ivr_name", "assigned_team_id"),
    *("assigned_team_name", "bill_duration", "bill_duration_unit", "call_notes", "created_time"),
    *("direction", "id", "integrated_resources", "parallel_call_groups", "parent_call_id"),
    *("participants", "phone_number", "phone_number_id", "recording", "recording_to_redact"),
    *("root_call_id", "updated_time"),
}
PARTICIPANT_KEYS = {
    *("call_id", "call_status", "caller_id", "caller_name", "caller_number", "connection_type"),
    *("cost", "cost_unit", "created_time", "duration", "duration_unit", "enqueued_time", "id"),
    *("participant_id", "participant_type", "updated_time"),
}
RECORDING_KEYS = {"duration", "duration_unit", "id", "transcription_url", "url"}
USER_KEYS = {
    *("confirmed", "deleted", "email", "id", "language", "last_call_time", "last_seen_time"),
    *("mobile_app_preference", "name", "phone", "preference", "role", "status", "teams"),
    "time_zone",
}


@dataclass(frozen=True)
class StoredCall:
    provider_call_id: str
    recording_id: str | None = None
    recording_url: str | None = None


@pytest.fixture
def sim() -> Iterator[FreshcallerSimulator]:
    with FreshcallerSimulator() as running:
        running.api.add_user(10, "rep1@example.com", "Rep One")
        yield running


def published_error() -> dict[str, Any]:
    body = conformance.published("freshcaller", "error_response.json")
    assert isinstance(body, dict)
    return body


def test_the_simulator_answers_errors_in_the_published_shape(sim: FreshcallerSimulator) -> None:
    missing = requests.get(f"{sim.url}/api/v1/calls/404", headers=HEADERS, timeout=5)
    assert missing.status_code == 404
    assert conformance.shape_differences(missing.json(), published_error()) == []
    assert conformance.shape_differences(published_error(), missing.json()) == []


def test_a_call_freshcaller_no_longer_has_fails_its_download_for_good(
    sim: FreshcallerSimulator,
) -> None:
    settings = FreshcallerSettings.model_validate(
        {"kind": "freshcaller", "base_url": sim.url, "api_key": API_KEY}
    )
    adapter = FreshcallerProvider(settings, retry=RetryPolicy(max_tries=1))
    gone = StoredCall("404")
    with pytest.raises(PermanentProviderError) as caught:
        adapter.resolve_download(gone)
    assert caught.value.status == 404 and "call 404: HTTP 404" in str(caught.value)


def test_the_simulators_call_and_user_have_the_known_properties(
    sim: FreshcallerSimulator,
) -> None:
    sim.api.add_call(freshcaller_call(1, T0), mp3_bytes(1))
    listing = requests.get(
        f"{sim.url}/api/v1/calls",
        params={"by_time[from]": "2026-03-02T13:00:00Z", "by_time[to]": "2026-03-02T15:00:00Z"},
        headers=HEADERS,
        timeout=5,
    ).json()
    assert set(listing) == {"calls", "meta"}
    assert set(listing["meta"]) == {"current", "total_pages", "total_count"}
    [call] = listing["calls"]
    assert set(call) == CALL_KEYS
    assert all(set(p) == PARTICIPANT_KEYS for p in call["participants"])
    assert set(call["recording"]) == RECORDING_KEYS
    [user] = requests.get(f"{sim.url}/api/v1/users", headers=HEADERS, timeout=5).json()["users"]
    assert set(user) == USER_KEYS
    # Its times are UTC with a Z, read as the instant they name.
    settings = FreshcallerSettings.model_validate(
        {"kind": "freshcaller", "base_url": sim.url, "api_key": API_KEY}
    )
    adapter = FreshcallerProvider(settings, retry=RetryPolicy(max_tries=1))
    window = Window(T0 - timedelta(hours=1), T0 + timedelta(hours=1))
    [record] = conformance.records_of(adapter.list_window(window)).values()
    assert call["created_time"].endswith("Z") and record.started_at == T0
