"""Webex's published converged-recording examples through the Webex profile's listing loop.

The bodies in ``webex/`` are the examples of Webex's own OpenAPI document (see
``webex/SOURCES.md``). The Webex simulator serves them unchanged on 127.0.0.1, the profile
lists them as the poll cycle does and the domain's ingest rules plan them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from poller.adapters.http import RetryPolicy
from poller.adapters.http.paginators import PageRequest
from poller.adapters.memory_store import MemoryOAuthTokenStore
from poller.adapters.providers.profiles.webex import WebexProvider, WebexSettings
from poller.domain.ingest import IngestAction
from poller.domain.states import RecordingState
from poller.domain.windows import Window
from poller.simulators.audio import mp3_bytes
from poller.simulators.webex_server import (
    CLIENT_ID,
    CLIENT_SECRET,
    WebexSimulator,
    webex_recording,
)
from tests.vendor_payloads import conformance

# The listed examples' files were generated on 30 and 31 October 2023 (+08:00).
WINDOW = Window(datetime(2023, 10, 30, 12, tzinfo=UTC), datetime(2023, 10, 31, 12, tzinfo=UTC))
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
FORMATS = {"datetime": re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:\d\d|Z)$")}


def published(name: str) -> dict[str, Any]:
    body = conformance.published("webex", name)
    assert isinstance(body, dict)
    return body


@pytest.fixture
def sim() -> Iterator[WebexSimulator]:
    with WebexSimulator() as running:
        yield running


def provider(sim: WebexSimulator, **settings: Any) -> WebexProvider:
    values = {
        "kind": "webex",
        "base_url": sim.url,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "refresh_token": sim.api.seed_refresh_token(),
        **settings,
    }
    return WebexProvider(
        WebexSettings.model_validate(values),
        retry=RetryPolicy(max_tries=1),
        token_store=MemoryOAuthTokenStore(),
    )


def test_the_published_recordings_map_to_their_time_length_and_owner(sim: WebexSimulator) -> None:
    items = published("admin_list_recordings.json")["items"]
    for item in items:
        sim.api.add_recording(item, mp3_bytes(1))
    records = conformance.records_of(provider(sim).list_window(WINDOW))
    assert sorted(records) == sorted(item["id"] for item in items)
    first = records["baa93e55c62e4663ae24f13fbfdb247f"]
    assert first.started_at == datetime(2023, 10, 31, 2, 41, 28, tzinfo=UTC)  # +08:00 read
    assert first.duration_seconds == 60
    assert first.recording_state is RecordingState.READY
    # A virtual line's recording names an administrator's email: never taken as the rep.
    assert (first.rep_email, first.rep_provider_id) == (None, items[0]["ownerId"])
    assert "Rbs_TA_Admin@wbxlab.us".casefold() not in {
        value.casefold() for value in first.rep_identifiers
    }
    plan = conformance.planned("webex", first, NOW)
    assert (plan.change.action, plan.change.message) == (
        IngestAction.INSERTED,
        "listed; recording ready",
    )


def test_the_published_detail_gives_a_download_on_webex_without_the_token(
    sim: WebexSimulator,
) -> None:
    detail = published("recording_details.json")
    listed_item = {k: v for k, v in detail.items() if k != "temporaryDirectDownloadLinks"}
    listed_item["createTime"] = "2023-10-31T10:00:00+08:00"  # inside the window
    sim.api.add_recording(listed_item, mp3_bytes(1), detail=detail)
    adapter = provider(sim)  # download_hosts left at Webex's default
    [record] = conformance.records_of(adapter.list_window(WINDOW)).values()
    assert record.rep_email == detail["ownerEmail"]  # a user's recording: the owner is the rep
    request = adapter.resolve_download(record)
    assert request.url == detail["temporaryDirectDownloadLinks"]["audioDownloadLink"]
    assert request.format_hint == "mp3"
    assert "nsq1wss.dmz.webex.com" not in request.credential_hosts
    assert request.credential_hosts == frozenset({sim.url.removeprefix("http://"), "webexapis.com"})


def test_the_simulators_recordings_have_every_published_field_of_the_same_kind(
    sim: WebexSimulator,
) -> None:
    at = datetime(2023, 10, 31, 1, 0, tzinfo=UTC)
    sim.api.add_recording(webex_recording("4f914b1dfe3c4d11a61730f18c0f5387", at), mp3_bytes(1))
    adapter = provider(sim)
    [record] = conformance.records_of(adapter.list_window(WINDOW)).values()
    listed = dict(record.raw)
    [item] = published("admin_list_recordings.json")["items"][:1]
    assert conformance.shape_differences(listed, item, FORMATS) == []
    assert conformance.shape_differences(item, listed, FORMATS) == []
    page = adapter.get_json(
        PageRequest(f"{sim.url}/v1/convergedRecordings/{record.provider_call_id}"), "detail"
    )
    detail = published("recording_details.json")
    assert conformance.shape_differences(page.body, detail, FORMATS) == []
    assert conformance.shape_differences(detail, page.body, FORMATS) == []
