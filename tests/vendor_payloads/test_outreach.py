"""Outreach's published call schema against the Outreach simulator and profile.

Outreach publishes no example call body (see ``outreach/SOURCES.md``); its OpenAPI document's
call schema is restated in ``outreach/call_schema.json``, names and types only. The simulator's
calls must have exactly that shape, and a call as sparse as the schema allows must still map.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from poller.adapters.http import RetryPolicy
from poller.adapters.http.paginators import PageRequest
from poller.adapters.memory_store import MemoryOAuthTokenStore
from poller.adapters.providers.profiles.outreach import OutreachProvider, OutreachSettings
from poller.domain.ingest import IngestAction
from poller.domain.states import RecordingState
from poller.domain.windows import Window
from poller.simulators.audio import mp3_bytes
from poller.simulators.outreach_server import (
    CLIENT_ID,
    CLIENT_SECRET,
    REDIRECT_URI,
    OutreachSimulator,
    outreach_call,
)
from tests.vendor_payloads import conformance

AT = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)
WINDOW = Window(AT - timedelta(hours=1), AT + timedelta(hours=1))
NOW = datetime(2026, 3, 2, 16, 0, tzinfo=UTC)
DATE_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:\d\d|Z)$")
JSON_TYPES = {str: "string", bool: "boolean", list: "array", type(None): "null"}


def schema() -> dict[str, Any]:
    body = conformance.published("outreach", "call_schema.json")
    assert isinstance(body, dict)
    return body


@pytest.fixture
def sim() -> Iterator[OutreachSimulator]:
    with OutreachSimulator() as running:
        running.api.add_user(10, "rep1@example.com", "Rep One")
        yield running


def provider(sim: OutreachSimulator) -> OutreachProvider:
    settings = OutreachSettings.model_validate(
        {
            "kind": "outreach",
            "base_url": sim.url,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "redirect_uri": REDIRECT_URI,
            "refresh_token": sim.api.seed_refresh_token(),
        }
    )
    return OutreachProvider(
        settings, retry=RetryPolicy(max_tries=1), token_store=MemoryOAuthTokenStore()
    )


def served(sim: OutreachSimulator, call_id: int) -> dict[str, Any]:
    """The call as the simulator answers ``GET /api/v2/calls/{id}``, asked with the profile's
    own token and headers."""
    page = provider(sim).get_json(PageRequest(f"{sim.url}/api/v2/calls/{call_id}"), "call")
    body = page.body["data"]
    assert isinstance(body, dict)
    return body


def test_the_simulators_call_has_exactly_the_published_attributes_and_types(
    sim: OutreachSimulator,
) -> None:
    sim.api.add_call(outreach_call(1, AT, user_id=10), mp3_bytes(1))
    call = served(sim, 1)
    published = schema()
    assert sorted(call["attributes"]) == sorted(published["call"])
    for name, value in call["attributes"].items():
        declared = published["call"][name]
        assert JSON_TYPES[type(value)] in declared["type"], (name, value)
        if declared.get("format") == "date-time" and value is not None:
            assert DATE_TIME.match(value), (name, value)
    assert set(call["relationships"]) <= set(published["callRelationships"])
    assert (call["type"], call["relationships"]["user"]["data"]) == (
        "call",
        {"type": "user", "id": 10},
    )


def test_a_call_as_sparse_as_the_schema_allows_still_maps(sim: OutreachSimulator) -> None:
    record = outreach_call(2, AT, user_id=10)
    nullable = [name for name, declared in schema()["call"].items() if "null" in declared["type"]]
    # Every attribute may be null; the row's times stay, so the call is in the window.
    for name in nullable:
        if name not in ("createdAt", "updatedAt"):
            record["attributes"][name] = None
    sim.api.add_call(record)
    [mapped] = conformance.records_of(provider(sim).list_window(WINDOW)).values()
    assert mapped.started_at == AT  # neither dialed nor answered: when the row was written
    assert (mapped.direction, mapped.contact_phone, mapped.duration_seconds) == (None, None, None)
    assert mapped.rep_email == "rep1@example.com"
    assert mapped.recording_state is RecordingState.PENDING
    plan = conformance.planned("outreach", mapped, NOW)
    assert plan.change.action is IngestAction.INSERTED
