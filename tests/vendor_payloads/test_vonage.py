"""Vonage's published company call recording and token answer through the Vonage profile.

The bodies in ``vonage/`` come from Vonage's own ``Vonage/vbc-developer`` repository (see
``vonage/SOURCES.md``): the recording assembled from the property examples of its OpenAPI
document, the token answer from its "Create an Access Token" guide. The Vonage simulator serves
the recording unchanged on 127.0.0.1 and the profile lists it as the poll cycle does.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from poller.adapters.http import RetryPolicy
from poller.adapters.providers.profiles.vonage import VonageProvider, VonageSettings
from poller.domain.ingest import IngestAction
from poller.domain.states import Direction, RecordingState
from poller.domain.windows import Window
from poller.simulators.audio import mp3_bytes
from poller.simulators.vonage_server import (
    CLIENT_ID,
    CLIENT_SECRET,
    PASSWORD,
    USERNAME,
    VonageSimulator,
    company_recording,
)
from tests.vendor_payloads import conformance

WINDOW = Window(datetime(2018, 12, 31, 23, tzinfo=UTC), datetime(2019, 1, 1, 1, tzinfo=UTC))
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
FORMATS = {"datetime": re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}$")}


def published(name: str) -> dict[str, Any]:
    body = conformance.published("vonage", name)
    assert isinstance(body, dict)
    return body


@pytest.fixture
def sim() -> Iterator[VonageSimulator]:
    with VonageSimulator() as running:
        yield running


def provider(sim: VonageSimulator) -> VonageProvider:
    settings = VonageSettings.model_validate(
        {
            "kind": "vonage",
            "base_url": sim.url,
            "username": USERNAME,
            "password": PASSWORD,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        }
    )
    return VonageProvider(settings, retry=RetryPolicy(max_tries=1))


def test_the_published_recording_maps_to_its_extension_contact_and_recording(
    sim: VonageSimulator,
) -> None:
    body = published("company_call_recording.json")
    sim.api.add(body, mp3_bytes(1))
    adapter = provider(sim)
    [record] = conformance.records_of(adapter.list_window(WINDOW)).values()
    assert record.provider_call_id == "193228"
    assert record.started_at == datetime(2019, 1, 1, tzinfo=UTC)
    assert (record.direction, record.duration_seconds) == (Direction.INBOUND, 60)
    # The example's caller_id and extension are numbers (the schema says strings): both read.
    assert (record.contact_phone, record.contact_name) == ("17325550100", "JOHN SMITH")
    assert record.rep_extension == "999"
    conformance.assert_never_the_rep(record, [body["caller_id"], body["dnis"], body["cnam"]])
    assert record.recording_state is RecordingState.READY
    plan = conformance.planned("vonage", record, NOW)
    assert (plan.change.action, plan.change.message) == (
        IngestAction.INSERTED,
        "listed; recording ready",
    )
    # The recording is fetched by its id from Vonage's own path, as download_url names it.
    request = adapter.resolve_download(record)
    assert request.url.removeprefix(sim.url) == body["download_url"].removeprefix(
        "https://api.vonage.com"
    )


def test_the_simulators_answers_have_every_published_field_of_the_same_kind(
    sim: VonageSimulator,
) -> None:
    token = requests.post(
        f"{sim.url}/token",
        data={
            "grant_type": "password",
            "scope": "openid",
            "username": f"{USERNAME}@vbc.prod",
            "password": PASSWORD,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        },
        timeout=5,
    ).json()
    assert conformance.shape_differences(token, published("token_password_grant.json")) == []
    sim.api.add(company_recording(7, datetime(2019, 1, 1, 0, 30, tzinfo=UTC)), mp3_bytes(1))
    page = requests.get(
        f"{sim.url}/t/vbc.prod/call_recording/api/accounts/self/company_call_recordings",
        headers={"Authorization": f"Bearer {token['access_token']}"},
        timeout=5,
    ).json()
    [served] = page["_embedded"]["recordings"]
    reference = published("company_call_recording.json")
    # The simulator follows the schema's types where its examples disagree with them.
    assert conformance.shape_differences(served, reference, FORMATS) == [
        "caller_id: string for number",
        "extensions.[0]: string for number",
    ]
    assert conformance.shape_differences(reference, served, FORMATS) == [
        "caller_id: number for string",
        "extensions.[0]: number for string",
    ]
    assert {"page", "page_size", "total_items", "total_pages", "_links"} <= set(page)
